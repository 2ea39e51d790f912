/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CHECK_DIAG_H
/* Not OUTBOX_CHECK_H: tests/unit/check.h uses that guard. */
#define OUTBOX_CHECK_DIAG_H
/*
 * `outbox check` as pure code: the report model (steps with a status, plain
 * words, a machine-readable value and the fix), its text and JSON forms,
 * and the advice rules that turn what the glue (src/cli/check*.c) observed
 * on the network into steps. No I/O and no clock: "now" is an argument.
 *
 * The glue fills the observation structs below; check_*_report() append
 * the steps. A report is fine (exit 0) only when no step is CHK_FAIL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/mx.h"

enum check_status { CHK_OK, CHK_INFO, CHK_WARN, CHK_FAIL };

#define CHECK_TEXT_MAX 512

struct check_step {
	char group[96];              /* "port 587", "mx1.example.com", "" */
	char name[32];               /* "connect", "banner", "tls", ... */
	enum check_status status;
	char value[CHECK_TEXT_MAX];  /* for scripts: "TLSv1.3", "PLAIN LOGIN" */
	char text[CHECK_TEXT_MAX];   /* what was seen, in plain words */
	char fix[CHECK_TEXT_MAX];    /* what to do about it ("" = nothing) */
};

struct check_report {
	char command[16];            /* "smtp", "imap", "pop3", "mx", "relay" */
	char target[300];
	struct check_step *steps;    /* heap, owned */
	size_t n, cap;
	bool oom;                    /* a step could not be stored */
};

void check_report_init(struct check_report *r, const char *command,
		       const char *target);
void check_report_free(struct check_report *r);
/* Append a step (text formatted, sanitized to printable ASCII). Returns
 * it for check_step_fix/value, or NULL when out of memory (r->oom). */
struct check_step *check_report_add(struct check_report *r, const char *group,
				    const char *name, enum check_status st,
				    const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Both accept NULL (a step lost to OOM). */
void check_step_fix(struct check_step *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void check_step_value(struct check_step *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t check_report_count(const struct check_report *r, enum check_status st);
/* No CHK_FAIL step and nothing lost. */
bool check_report_ok(const struct check_report *r);
const char *check_status_name(enum check_status st); /* "ok", "fail", ... */

/* Human text, steps grouped, fixes indented under their step. 0 or -ENOBUFS. */
int check_report_text(const struct check_report *r, struct buf *out);
/*
 * One JSON object and a newline:
 * {"command":"smtp","target":"h","ok":false,"problems":1,"warnings":0,
 *  "steps":[{"group":"port 587","step":"connect","status":"ok",
 *            "value":"127.0.0.1","text":"...","fix":""}, ...]}
 */
int check_report_json(const struct check_report *r, struct buf *out);

/* ---- observations ------------------------------------------------------ */

/* How a connection attempt ended. */
enum check_conn {
	CHECK_CONN_NONE,      /* not tried */
	CHECK_CONN_OK,
	CHECK_CONN_REFUSED,
	CHECK_CONN_TIMEOUT,
	CHECK_CONN_ERROR,     /* unreachable, reset, ... (error says) */
	CHECK_CONN_NO_ADDR,   /* the name did not resolve */
};

/* The peer's leaf certificate, copied from io's struct tls_result. */
struct check_cert {
	bool seen;
	bool chain_ok;
	bool name_ok;
	char chain_error[128];
	char subject[256];
	char issuer[256];
	char sans[512];
	long long not_before, not_after; /* epoch seconds, 0 = unknown */
};

struct check_tls {
	bool tried;
	bool ok;                 /* handshake completed */
	char version[16];
	char cipher[64];
	char error[256];         /* handshake failure */
	struct check_cert cert;
};

enum check_tls_mode { CHECK_TLS_NONE, CHECK_TLS_STARTTLS, CHECK_TLS_IMPLICIT };

/* What a second look found when the first way of talking failed. */
enum check_mismatch {
	CHECK_MISMATCH_NONE,
	CHECK_MISMATCH_TLS_ON_PLAIN,  /* we spoke TLS; the port greets in plaintext */
	CHECK_MISMATCH_PLAIN_ON_TLS,  /* we waited for a greeting; the port wants TLS */
};

#define CHECK_CAPS_MAX 1024

/* One SMTP port, as probed. */
struct check_smtp_obs {
	const char *host;         /* as given by the user */
	unsigned port;
	const char *group;        /* report group; NULL = "port N" */
	enum check_tls_mode mode; /* how we spoke to it */
	bool auto_port;           /* tried because no port was given */
	enum check_conn conn;
	char addr[64];            /* the address connected to */
	char conn_error[160];
	bool greeting_timeout;    /* connected, then silence */
	char banner[CHECK_TEXT_MAX];  /* "" = none */
	int banner_code;
	char ehlo[CHECK_CAPS_MAX];     /* keywords before TLS, space separated */
	char ehlo_tls[CHECK_CAPS_MAX]; /* after TLS ("" = not reached) */
	bool ehlo_tls_seen;
	struct check_tls tls;
	enum check_mismatch mismatch;
	char failure[CHECK_TEXT_MAX];  /* session failure text ("" = none) */
	/* AUTH (relay doctor only). */
	bool auth_tried;
	bool auth_ok;
	char auth_error[CHECK_TEXT_MAX];
	const char *tls_key;       /* the config key that fixes TLS ("tls") */
	bool verify;               /* a bad certificate is a failure */
};

/* Steps for one probed SMTP port, group "port N". now: epoch seconds. */
void check_smtp_report(const struct check_smtp_obs *o, long long now,
		       struct check_report *r);

/* The certificate step (shared by SMTP, IMAP and POP3). */
void check_cert_report(const char *group, const struct check_cert *c,
		       const char *host, bool verify, long long now,
		       struct check_report *r);

/*
 * EHLO keyword helpers: caps is a space-separated list built from EHLO
 * reply lines ("250-AUTH PLAIN LOGIN" adds "AUTH PLAIN LOGIN" as one
 * keyword line; lines are separated by '\n' inside caps).
 */
/* Append one EHLO line's text (after "250-"/"250 "). 0 or -1 when full. */
int check_caps_add(char *caps, size_t size, const char *line, size_t len);
/* The argument list of keyword kw ("AUTH" -> "PLAIN LOGIN"), or NULL when
 * absent; kw matched case-insensitively; "AUTH=PLAIN" counts as AUTH. */
const char *check_caps_find(const char *caps, const char *kw, char *arg,
			    size_t size);

/* ---- IMAP and POP3 ---------------------------------------------------- */

enum check_mbox_proto { CHECK_IMAP, CHECK_POP3 };

struct check_mbox_obs {
	const char *host;
	unsigned port;
	enum check_mbox_proto proto;
	enum check_tls_mode mode;
	enum check_conn conn;
	char addr[64];
	char conn_error[160];
	bool greeting_timeout;
	char greeting[CHECK_TEXT_MAX];
	char caps[CHECK_CAPS_MAX];      /* before TLS */
	char caps_tls[CHECK_CAPS_MAX];  /* after TLS */
	bool caps_tls_seen;
	bool starttls_offered;
	struct check_tls tls;
	enum check_mismatch mismatch;
	char failure[CHECK_TEXT_MAX];
};

void check_mbox_report(const struct check_mbox_obs *o, long long now,
		       struct check_report *r);

/* ---- MX ----------------------------------------------------------------- */

#define CHECK_MX_ADDRS 16

struct check_mx_host {
	char name[HOSTNAME_MAX + 1];
	unsigned pref;
	bool resolved;             /* the address lookup answered */
	char addrs[CHECK_MX_ADDRS][64];
	size_t naddrs;
	char error[160];           /* why no address */
};

struct check_mx_obs {
	const char *domain;
	char servers[256];         /* the DNS servers asked, for the user */
	enum mx_status status;
	char status_text[160];     /* resolver's words for failures */
	struct check_mx_host host[MX_MAX_HOSTS];
	size_t nhosts;
	unsigned port;             /* [mx] port */
};

void check_mx_report(const struct check_mx_obs *o, struct check_report *r);

#endif
