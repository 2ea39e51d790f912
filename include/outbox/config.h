/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CONFIG_H
#define OUTBOX_CONFIG_H
/*
 * Configuration. Loading is two steps (LIBRARIES.md 3.4):
 *  1. config_load()/config_load_string() (daemon/config.c): inih collects
 *     raw section/key/value strings with their source ("FILE:LINE" is known
 *     for every key), then OUTBOX_<SECTION>_<KEY> environment variables are
 *     applied on top;
 *  2. config_check() (proto/config_check.c, pure): validates the raw
 *     entries into a struct config. Errors are "SOURCE: message", where the
 *     source is "FILE:LINE" or "environment OUTBOX_X_Y".
 * struct config is plain data with fixed-size arrays: copying it is safe,
 * and nothing in it needs freeing.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/limits.h"
#include "outbox/log.h"

#define CONFIG_PATH_DEFAULT "/etc/outbox/outbox.ini"
#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ALLOW 32
#define CONFIG_MAX_RELAYS 8
#define CONFIG_PATH_MAX 4096
#define CONFIG_ERR_MAX 512

struct config_hostport {
	char host[HOSTNAME_MAX + 1]; /* name or IP literal, without brackets */
	uint16_t port;
};

struct config_cidr {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network byte order; 4 bytes used for AF_INET */
	unsigned prefix;
};

enum config_tls { CONFIG_TLS_AUTO, CONFIG_TLS_STARTTLS, CONFIG_TLS_IMPLICIT,
		  CONFIG_TLS_NONE };
enum config_bare_newline { CONFIG_BARE_NL_NORMALIZE, CONFIG_BARE_NL_STRICT };
enum config_mx_tls { CONFIG_MX_TLS_OPPORTUNISTIC, CONFIG_MX_TLS_REQUIRED,
		     CONFIG_MX_TLS_NONE };
#define CONFIG_MAX_DNS 8

struct config {
	struct {
		struct config_hostport address[CONFIG_MAX_LISTEN];
		size_t naddress;
		char hostname[HOSTNAME_MAX + 1]; /* "" = the host's FQDN, filled by the daemon */
		struct config_cidr allow[CONFIG_MAX_ALLOW];
		size_t nallow;
		uint64_t max_message_size;    /* bytes */
		unsigned max_recipients;
		unsigned max_connections;
		uint64_t timeout_ms;
		enum config_bare_newline bare_newline;
	} listen;
	struct {
		char dir[CONFIG_PATH_MAX];
		uint64_t max_lifetime_s;
		uint64_t retry_min_s;
		uint64_t retry_max_s;
		uint64_t min_free;        /* bytes; MAIL gets 452 4.3.1 below this (0 = off) */
	} spool;
	struct {
		struct config_hostport host[CONFIG_MAX_RELAYS]; /* failover order */
		size_t nhost;        /* 0 = direct MX delivery (not built yet) */
		enum config_tls tls; /* AUTO resolved per host: 465 implicit, else STARTTLS */
		bool verify;
		char ca_file[CONFIG_PATH_MAX];       /* "" = system store */
		char user[256];
		char password_file[CONFIG_PATH_MAX];
	} relay;
	struct {
		uint16_t port;                     /* 25 */
		enum config_mx_tls tls;            /* opportunistic */
		struct config_hostport dns_servers[CONFIG_MAX_DNS]; /* IP literals; port 53 default */
		size_t ndns_servers;               /* 0 = /etc/resolv.conf */
		unsigned connections_per_domain;   /* 10 */
		char ca_file[CONFIG_PATH_MAX];     /* for verifying MX certificates; "" = system store */
	} mx;
	struct {
		char domain[HOSTNAME_MAX + 1];      /* "" = the host's domain, filled at run time */
		char aliases[CONFIG_PATH_MAX];      /* /etc/aliases format; "" = none */
		char admin[SMTP_PATH_MAX + 1];      /* "" = none */
		char from[SMTP_PATH_MAX + 1];       /* "" = keep the sender */
		bool from_header_rewrite;          /* from_header = rewrite (default keep) */
	} rewrite;
	struct {
		enum log_target target;
		enum log_level level;
		bool json;                         /* format = json (default text) */
	} log;
	struct {
		char user[64];  /* started as root: drop to this user after binding; "" = stay */
	} daemon;
	struct {
		char textfile[CONFIG_PATH_MAX];    /* Prometheus text file; "" = off */
		uint64_t interval_s;               /* how often it is rewritten (15s) */
		uint64_t stuck_after_s;            /* status --check: oldest deferred older = stuck (1h) */
	} metrics;
};

/* One raw key = value, as read; the source says where it came from. */
struct config_entry {
	char section[32];
	char key[64];
	char value[CONFIG_PATH_MAX];
	char source[CONFIG_PATH_MAX + 32]; /* "FILE:LINE" or "environment OUTBOX_..." */
};

struct config_raw {
	struct config_entry *entries; /* heap, owned; config_raw_free() */
	size_t n, cap;
};

void config_raw_free(struct config_raw *raw);
/* Append (or replace an earlier entry of the same section/key). 0 or -1. */
int config_raw_set(struct config_raw *raw, const char *section,
		   const char *key, const char *value, const char *source);

/* Pure: defaults, then every raw entry validated in order. 0, or -1 with
 * err = "SOURCE: message". */
int config_check(const struct config_raw *raw, struct config *out, char *err,
		 size_t errlen);
void config_defaults(struct config *out);

/*
 * Additive (pure, config_check.c): the pieces config_check() is made of, so
 * the loader can validate each key as it is read and report errors in file
 * order.
 */
/* The longest line config_load() accepts, without its line end. */
#define CONFIG_LINE_MAX 4093
/* The entry of section/key, or NULL. */
struct config_entry *config_raw_find(const struct config_raw *raw,
				     const char *section, const char *key);
/* 0 if [section] is known, else -1 with msg (no source):
 * "unknown section [foo]". */
int config_check_section(const char *section, char *msg, size_t msglen);
/* Validate one entry into out (defaults or earlier values). 0, or -1 with
 * err = "SOURCE: message". Cross-field rules are left to config_check(). */
int config_check_entry(const struct config_entry *e, struct config *out,
		       char *err, size_t errlen);

/*
 * Additive (pure, config_value.c): value syntax. 0, or -1 (with msg, where
 * there is one, saying what is wrong).
 */
/* "35M": a decimal number with an optional K, M or G (powers of 1024). */
int config_value_size(const char *s, uint64_t *out);
/* "5m": a number with ms, s, m, h or d; a plain number is seconds. */
int config_value_duration_ms(const char *s, uint64_t *out);
/* yes/no, true/false, on/off, 1/0 (any case). */
int config_value_bool(const char *s, bool *out);
/* "host", "host:port", "1.2.3.4:25", "[::1]:25" in s[0..n); a missing port
 * is defport; port 0 only if port0_ok. */
int config_value_hostport(const char *s, size_t n, uint16_t defport,
			  bool port0_ok, struct config_hostport *out,
			  char *msg, size_t msglen);
/* "10.0.0.0/8", "::1/128", or a bare address (/32, /128); host bits are
 * cleared. */
int config_value_cidr(const char *s, size_t n, struct config_cidr *out,
		      char *msg, size_t msglen);
/* A DNS name (letters, digits, '-', '_', dots) or an IPv4 literal. */
bool config_value_hostname(const char *s);
/* An IPv4 or IPv6 literal (without brackets). */
bool config_value_is_ip(const char *s);

/*
 * Read path (inih; lines up to 4096 bytes), then the OUTBOX_* environment.
 * A missing file is an error. 0, or -1 with err = "FILE:LINE: message".
 * Also checks the files it names: each must exist and be a regular file
 * (ca_file in [relay] and [mx], [rewrite] aliases), and the password file
 * must not be readable by others (mode 0600 or 0640).
 */
int config_load(const char *path, struct config *out, char *err, size_t errlen);
/* The same for an in-memory INI text, named name in messages. */
int config_load_string(const char *text, const char *name, struct config *out,
		       char *err, size_t errlen);
/* The embedded configuration of `outboxd --local`: 127.0.0.1:2525, ./spool, stderr. */
extern const char config_local_ini[];
/* Read the relay password (first line, without the line end) into out. */
int config_read_password(const struct config *cfg, char *out, size_t size,
			 char *err, size_t errlen);

#endif
