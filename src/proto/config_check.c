/* SPDX-License-Identifier: MIT */
/*
 * config_check: raw section/key/value strings into a validated struct
 * config. Pure: the loader (daemon/config.c) does the file and environment
 * reading and hands over a struct config_raw whose entries each carry their
 * source ("FILE:LINE" or "environment OUTBOX_X_Y"), so every message here
 * can point at the line to fix.
 *
 * One table (config_keys) names every key with its default and its setter;
 * config_defaults() runs the setters on the defaults, so the defaults are
 * parsed by the same code as the file and cannot drift from it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/addr.h"
#include "outbox/config.h"
#include "outbox/str.h"

/* Distinct keys in one raw set; far above the real key count. */
#define CONFIG_RAW_MAX 1024
/* Values echoed in messages are cut and made printable. */
#define SHOW_MAX 80

struct config_key;
typedef int (*config_setter)(const struct config_key *k, const char *v,
			     struct config *c, char *msg, size_t msglen);

struct config_key {
	const char *section;
	const char *key;
	const char *def;      /* default, as written in etc/outbox.ini */
	config_setter set;
	size_t off;           /* field, for the generic setters */
	size_t size;          /* string fields: the array size */
	uint64_t min, max;    /* numbers; durations in ms, or s for *_s */
	const char *why;      /* reason for min, appended to its message */
};

static const char *
show(char *buf, size_t size, const char *v)
{
	return str_sanitize(buf, size, v, strlen(v));
}

static void __attribute__((format(printf, 3, 4)))
key_msg(char *msg, size_t msglen, const char *fmt, ...)
{
	if (msg == NULL || msglen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

static void *
key_field(const struct config_key *k, struct config *c)
{
	return (char *)c + k->off;
}

static int
key_range(const struct config_key *k, uint64_t v, char *msg, size_t msglen)
{
	if (v < k->min) {
		if (k->min == 1)
			key_msg(msg, msglen, "%s must not be 0", k->key);
		else
			key_msg(msg, msglen, "%s must be at least %llu%s",
				k->key, (unsigned long long)k->min,
				k->why ? k->why : "");
		return -1;
	}
	if (v > k->max) {
		key_msg(msg, msglen, "%s is too large (at most %llu)", k->key,
			(unsigned long long)k->max);
		return -1;
	}
	return 0;
}

static int
set_size(const struct config_key *k, const char *v, struct config *c,
	 char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	uint64_t n;
	if (config_value_size(v, &n) < 0) {
		key_msg(msg, msglen, "bad size '%s' for %s (use a number "
			"with K, M or G)", show(s, sizeof s, v), k->key);
		return -1;
	}
	if (key_range(k, n, msg, msglen) < 0)
		return -1;
	*(uint64_t *)key_field(k, c) = n;
	return 0;
}

static int
key_duration(const struct config_key *k, const char *v, uint64_t *ms,
	     char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	if (config_value_duration_ms(v, ms) == 0)
		return 0;
	key_msg(msg, msglen, "bad duration '%s' for %s (use a number with "
		"s, m, h or d)", show(s, sizeof s, v), k->key);
	return -1;
}

static int
set_ms(const struct config_key *k, const char *v, struct config *c,
       char *msg, size_t msglen)
{
	uint64_t ms;
	if (key_duration(k, v, &ms, msg, msglen) < 0 ||
	    key_range(k, ms, msg, msglen) < 0)
		return -1;
	*(uint64_t *)key_field(k, c) = ms;
	return 0;
}

static int
set_sec(const struct config_key *k, const char *v, struct config *c,
	char *msg, size_t msglen)
{
	uint64_t ms;
	if (key_duration(k, v, &ms, msg, msglen) < 0)
		return -1;
	if (ms % 1000 != 0) {
		key_msg(msg, msglen, "%s must be whole seconds", k->key);
		return -1;
	}
	if (key_range(k, ms / 1000, msg, msglen) < 0)
		return -1;
	*(uint64_t *)key_field(k, c) = ms / 1000;
	return 0;
}

/* A plain number within the key's range. 0, or -1 with msg. */
static int
key_number(const struct config_key *k, const char *v, uint64_t *n,
	   char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	if (str_to_u64(v, 0, UINT64_MAX, n) < 0) {
		key_msg(msg, msglen, "bad number '%s' for %s",
			show(s, sizeof s, v), k->key);
		return -1;
	}
	return key_range(k, *n, msg, msglen);
}

static int
set_uint(const struct config_key *k, const char *v, struct config *c,
	 char *msg, size_t msglen)
{
	uint64_t n;
	if (key_number(k, v, &n, msg, msglen) < 0)
		return -1;
	*(unsigned *)key_field(k, c) = (unsigned)n;
	return 0;
}

/* A uint16_t field, such as a port; the range comes from the table. */
static int
set_u16(const struct config_key *k, const char *v, struct config *c,
	char *msg, size_t msglen)
{
	uint64_t n;
	if (key_number(k, v, &n, msg, msglen) < 0)
		return -1;
	*(uint16_t *)key_field(k, c) = (uint16_t)n;
	return 0;
}

/* A string field; min 1 means it must not be empty. */
static int
set_string(const struct config_key *k, const char *v, struct config *c,
	   char *msg, size_t msglen)
{
	if (k->min > 0 && v[0] == '\0') {
		key_msg(msg, msglen, "%s must not be empty", k->key);
		return -1;
	}
	if (strlen(v) >= k->size) {
		key_msg(msg, msglen, "%s is too long (at most %zu bytes)",
			k->key, k->size - 1);
		return -1;
	}
	return str_copy(key_field(k, c), k->size, v);
}

static int
set_hostname(const struct config_key *k, const char *v, struct config *c,
	     char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	if (v[0] != '\0' && !config_value_hostname(v)) {
		key_msg(msg, msglen, "bad hostname '%s'", show(s, sizeof s, v));
		return -1;
	}
	return set_string(k, v, c, msg, msglen);
}

static int
set_bool(const struct config_key *k, const char *v, struct config *c,
	 char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	if (config_value_bool(v, key_field(k, c)) == 0)
		return 0;
	key_msg(msg, msglen, "bad value '%s' for %s (use yes or no)",
		show(s, sizeof s, v), k->key);
	return -1;
}

/* Index of v in names (NULL-terminated), or -1 with the message. */
static int
key_enum(const struct config_key *k, const char *v,
	 const char *const *names, char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1], list[128] = "";
	size_t n = 0;
	while (names[n] != NULL) {
		if (strcmp(v, names[n]) == 0)
			return (int)n;
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list);
		snprintf(list + len, sizeof list - len, "%s%s",
			 i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
	}
	key_msg(msg, msglen, "bad value '%s' for %s (use %s)",
		show(s, sizeof s, v), k->key, list);
	return -1;
}

static int
set_bare_newline(const struct config_key *k, const char *v,
		 struct config *c, char *msg, size_t msglen)
{
	static const char *const names[] = { "normalize", "strict", NULL };
	static const enum config_bare_newline vals[] = {
		CONFIG_BARE_NL_NORMALIZE, CONFIG_BARE_NL_STRICT };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->listen.bare_newline = vals[i];
	return 0;
}

static int
set_tls(const struct config_key *k, const char *v, struct config *c,
	char *msg, size_t msglen)
{
	static const char *const names[] = { "auto", "starttls", "implicit",
					     "none", NULL };
	static const enum config_tls vals[] = { CONFIG_TLS_AUTO,
		CONFIG_TLS_STARTTLS, CONFIG_TLS_IMPLICIT, CONFIG_TLS_NONE };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->relay.tls = vals[i];
	return 0;
}

static int
set_mx_tls(const struct config_key *k, const char *v, struct config *c,
	   char *msg, size_t msglen)
{
	static const char *const names[] = { "opportunistic", "required",
					     "none", NULL };
	static const enum config_mx_tls vals[] = {
		CONFIG_MX_TLS_OPPORTUNISTIC, CONFIG_MX_TLS_REQUIRED,
		CONFIG_MX_TLS_NONE };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->mx.tls = vals[i];
	return 0;
}

static int
set_log_target(const struct config_key *k, const char *v, struct config *c,
	       char *msg, size_t msglen)
{
	static const char *const names[] = { "stderr", "syslog", NULL };
	static const enum log_target vals[] = { LOG_TO_STDERR, LOG_TO_SYSLOG };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->log.target = vals[i];
	return 0;
}

static int
set_log_level(const struct config_key *k, const char *v, struct config *c,
	      char *msg, size_t msglen)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug", NULL };
	static const enum log_level vals[] = { LOG_LVL_ERR, LOG_LVL_WARN,
		LOG_LVL_INFO, LOG_LVL_DEBUG };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->log.level = vals[i];
	return 0;
}

/*
 * [rewrite] domain qualifies bare names ("root" -> "root@domain"), so it
 * must be a mail domain: a DNS name in ASCII, not an IP address or an
 * address literal, and without the rooting dot that SMTP does not allow.
 */
static int
set_domain(const struct config_key *k, const char *v, struct config *c,
	   char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	bool eightbit = false;
	size_t n = strlen(v);
	if (n > 0 && (v[0] == '[' || config_value_is_ip(v) ||
		      !config_value_hostname(v) || v[n - 1] == '.' ||
		      addr_check_domain(v, n, &eightbit) != ADDR_OK ||
		      eightbit)) {
		key_msg(msg, msglen, "bad domain '%s' for %s (use a name such "
			"as example.org)", show(s, sizeof s, v), k->key);
		return -1;
	}
	return set_string(k, v, c, msg, msglen);
}

/*
 * admin and from are mailboxes as they go into MAIL FROM/RCPT TO, so they
 * are checked by the same parser as client input and must carry a domain
 * (a bare name would itself need rewriting). ASCII only: the relay may not
 * offer SMTPUTF8. Empty means unset.
 */
static int
set_mailbox(const struct config_key *k, const char *v, struct config *c,
	    char *msg, size_t msglen)
{
	char s[SHOW_MAX + 1];
	struct addr_path p;
	if (v[0] == '\0')
		return set_string(k, v, c, msg, msglen);
	if (addr_parse_path(v, strlen(v), &p) != ADDR_OK || !p.has_domain ||
	    p.route || p.eightbit || p.local_len == 0) {
		key_msg(msg, msglen, "bad address '%s' for %s (use "
			"local@domain)", show(s, sizeof s, v), k->key);
		return -1;
	}
	return set_string(k, p.mailbox, c, msg, msglen);
}

static int
set_from_header(const struct config_key *k, const char *v, struct config *c,
		char *msg, size_t msglen)
{
	static const char *const names[] = { "keep", "rewrite", NULL };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->rewrite.from_header_rewrite = i == 1;
	return 0;
}

static int
set_log_format(const struct config_key *k, const char *v, struct config *c,
	       char *msg, size_t msglen)
{
	static const char *const names[] = { "text", "json", NULL };
	int i = key_enum(k, v, names, msg, msglen);
	if (i < 0)
		return -1;
	c->log.json = i == 1;
	return 0;
}

/* Lists are separated by blanks or commas. */
static const char *
list_next(const char *p, size_t *n)
{
	static const char seps[] = " \t,";
	p += strspn(p, seps);
	*n = strcspn(p, seps);
	return *n > 0 ? p : NULL;
}

static int
list_too_many(const struct config_key *k, size_t max, char *msg,
	      size_t msglen)
{
	key_msg(msg, msglen, "too many entries in %s (at most %zu)", k->key,
		max);
	return -1;
}

/* How one host:port list is read. */
struct hostport_rule {
	uint16_t defport;
	bool port0_ok;
	const char *ip_only; /* NULL: names allowed; else why they are not */
};

/* key_hostports() parses into one scratch array sized for the longest list. */
#define HOSTPORT_TMP_MAX CONFIG_MAX_LISTEN
_Static_assert(CONFIG_MAX_RELAYS <= HOSTPORT_TMP_MAX &&
	       CONFIG_MAX_DNS <= HOSTPORT_TMP_MAX, "hostport scratch size");

/* Parse a host:port list into out[max]; *count is set on success only. */
static int
key_hostports(const struct config_key *k, const char *v,
	      const struct hostport_rule *r, struct config_hostport *out,
	      size_t max, size_t *count, char *msg, size_t msglen)
{
	struct config_hostport tmp[HOSTPORT_TMP_MAX];
	size_t n = 0, len;
	char s[SHOW_MAX + 1];
	/* Zeroed, so that equal configs are equal byte for byte. */
	memset(tmp, 0, sizeof tmp);
	for (const char *p = v; (p = list_next(p, &len)) != NULL; p += len) {
		if (n == max)
			return list_too_many(k, max, msg, msglen);
		if (config_value_hostport(p, len, r->defport, r->port0_ok,
					  &tmp[n], msg, msglen) < 0)
			return -1;
		if (r->ip_only != NULL && !config_value_is_ip(tmp[n].host)) {
			key_msg(msg, msglen, "%s, in '%s'", r->ip_only,
				str_sanitize(s, sizeof s, p, len));
			return -1;
		}
		n++;
	}
	memcpy(out, tmp, max * sizeof tmp[0]);
	*count = n;
	return 0;
}

static int
set_listen(const struct config_key *k, const char *v, struct config *c,
	   char *msg, size_t msglen)
{
	static const struct hostport_rule rule = { 25, true,
		"listen address must be an IP address, not a name" };
	size_t len;
	if (list_next(v, &len) == NULL) {
		key_msg(msg, msglen, "%s must not be empty", k->key);
		return -1;
	}
	return key_hostports(k, v, &rule, c->listen.address,
			     CONFIG_MAX_LISTEN, &c->listen.naddress, msg,
			     msglen);
}

static int
set_relay_host(const struct config_key *k, const char *v, struct config *c,
	       char *msg, size_t msglen)
{
	static const struct hostport_rule rule = { 587, false, NULL };
	return key_hostports(k, v, &rule, c->relay.host, CONFIG_MAX_RELAYS,
			     &c->relay.nhost, msg, msglen);
}

/*
 * c-ares takes only IP addresses ("localhost:53" is a misformatted
 * string) and wraps ports above 65535 silently (LIBRARIES.md 3.3), so
 * both are refused here, where the message can name the line. Port 0
 * would mean "the default" to c-ares; it is refused as a likely typo.
 */
static int
set_dns_servers(const struct config_key *k, const char *v, struct config *c,
		char *msg, size_t msglen)
{
	static const struct hostport_rule rule = { 53, false,
		"DNS server must be an IP address, not a name" };
	return key_hostports(k, v, &rule, c->mx.dns_servers, CONFIG_MAX_DNS,
			     &c->mx.ndns_servers, msg, msglen);
}

static int
set_allow(const struct config_key *k, const char *v, struct config *c,
	  char *msg, size_t msglen)
{
	struct config_cidr tmp[CONFIG_MAX_ALLOW];
	size_t n = 0, len;
	for (const char *p = v; (p = list_next(p, &len)) != NULL; p += len) {
		if (n == CONFIG_MAX_ALLOW)
			return list_too_many(k, CONFIG_MAX_ALLOW, msg, msglen);
		if (config_value_cidr(p, len, &tmp[n++], msg, msglen) < 0)
			return -1;
	}
	memset(tmp + n, 0, (CONFIG_MAX_ALLOW - n) * sizeof tmp[0]);
	memcpy(c->listen.allow, tmp, sizeof tmp);
	c->listen.nallow = n;
	return 0;
}

#define F(field) offsetof(struct config, field)
#define SZ(field) sizeof(((struct config *)0)->field)
#define DAY_S 86400ull

/* Designated fields, so each row names only what its setter uses. */
#define KEY(sec, name, dflt, fn, ...) \
	{ .section = sec, .key = name, .def = dflt, .set = fn, __VA_ARGS__ }

static const struct config_key config_keys[] = {
	KEY("listen", "address", "127.0.0.1:25 [::1]:25", set_listen),
	KEY("listen", "hostname", "", set_hostname, .off = F(listen.hostname),
	    .size = SZ(listen.hostname)),
	KEY("listen", "allow", "127.0.0.0/8 ::1/128", set_allow),
	KEY("listen", "max_message_size", "35M", set_size,
	    .off = F(listen.max_message_size), .min = 1,
	    .max = UINT64_MAX / 2),
	KEY("listen", "max_recipients", "1000", set_uint,
	    .off = F(listen.max_recipients), .min = 100, .max = 1000000,
	    .why = " (RFC 5321 4.5.3.1.8)"),
	KEY("listen", "max_connections", "512", set_uint,
	    .off = F(listen.max_connections), .min = 1, .max = 1000000),
	KEY("listen", "timeout", "5m", set_ms, .off = F(listen.timeout_ms),
	    .min = 1, .max = DAY_S * 1000),
	KEY("listen", "bare_newline", "normalize", set_bare_newline),
	KEY("spool", "dir", "/var/spool/outbox", set_string,
	    .off = F(spool.dir), .size = SZ(spool.dir), .min = 1),
	KEY("spool", "max_lifetime", "5d", set_sec,
	    .off = F(spool.max_lifetime_s), .min = 1, .max = 3650 * DAY_S),
	KEY("spool", "retry_min", "1m", set_sec, .off = F(spool.retry_min_s),
	    .min = 1, .max = 365 * DAY_S),
	KEY("spool", "retry_max", "1h", set_sec, .off = F(spool.retry_max_s),
	    .min = 1, .max = 365 * DAY_S),
	KEY("spool", "min_free", "70M", set_size, .off = F(spool.min_free),
	    .min = 0, .max = UINT64_MAX / 2),
	KEY("relay", "host", "", set_relay_host),
	KEY("relay", "tls", "auto", set_tls),
	KEY("relay", "verify", "yes", set_bool, .off = F(relay.verify)),
	KEY("relay", "ca_file", "", set_string, .off = F(relay.ca_file),
	    .size = SZ(relay.ca_file)),
	KEY("relay", "user", "", set_string, .off = F(relay.user),
	    .size = SZ(relay.user)),
	KEY("relay", "password_file", "", set_string,
	    .off = F(relay.password_file), .size = SZ(relay.password_file)),
	KEY("mx", "port", "25", set_u16, .off = F(mx.port), .min = 1,
	    .max = 65535),
	KEY("mx", "tls", "opportunistic", set_mx_tls),
	KEY("mx", "dns_servers", "", set_dns_servers),
	KEY("mx", "connections_per_domain", "10", set_uint,
	    .off = F(mx.connections_per_domain), .min = 1, .max = 1000),
	KEY("mx", "ca_file", "", set_string, .off = F(mx.ca_file),
	    .size = SZ(mx.ca_file)),
	KEY("rewrite", "domain", "", set_domain, .off = F(rewrite.domain),
	    .size = SZ(rewrite.domain)),
	KEY("rewrite", "aliases", "", set_string, .off = F(rewrite.aliases),
	    .size = SZ(rewrite.aliases)),
	KEY("rewrite", "admin", "", set_mailbox, .off = F(rewrite.admin),
	    .size = SZ(rewrite.admin)),
	KEY("rewrite", "from", "", set_mailbox, .off = F(rewrite.from),
	    .size = SZ(rewrite.from)),
	KEY("rewrite", "from_header", "keep", set_from_header),
	KEY("log", "target", "stderr", set_log_target),
	KEY("log", "level", "info", set_log_level),
	KEY("log", "format", "text", set_log_format),
	KEY("daemon", "user", "", set_string, .off = F(daemon.user),
	    .size = SZ(daemon.user)),
	KEY("metrics", "textfile", "", set_string, .off = F(metrics.textfile),
	    .size = SZ(metrics.textfile)),
	KEY("metrics", "interval", "15s", set_sec, .off = F(metrics.interval_s),
	    .min = 1, .max = DAY_S),
	KEY("metrics", "stuck_after", "1h", set_sec,
	    .off = F(metrics.stuck_after_s), .min = 1, .max = 365 * DAY_S),
};

#define NKEYS (sizeof config_keys / sizeof config_keys[0])

static const struct config_key *
key_find(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].key, key) == 0)
			return &config_keys[i];
	return NULL;
}

void
config_defaults(struct config *out)
{
	memset(out, 0, sizeof *out);
	/* The defaults are valid by construction (test_config_check). */
	for (size_t i = 0; i < NKEYS; i++)
		(void)config_keys[i].set(&config_keys[i], config_keys[i].def,
					 out, NULL, 0);
}

int
config_check_section(const char *section, char *msg, size_t msglen)
{
	static const char *const known[] = { "listen", "spool", "relay",
					     "mx", "rewrite", "log", "daemon",
					     "metrics" };
	char s[SHOW_MAX + 1];
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(section, known[i]) == 0)
			return 0;
	key_msg(msg, msglen, "unknown section [%s]", show(s, sizeof s,
							  section));
	return -1;
}

static int __attribute__((format(printf, 4, 5)))
check_fail(char *err, size_t errlen, const char *source, const char *fmt,
	   ...)
{
	char msg[CONFIG_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", source, msg);
	return -1;
}

int
config_check_entry(const struct config_entry *e, struct config *out,
		   char *err, size_t errlen)
{
	char msg[CONFIG_ERR_MAX], s[SHOW_MAX + 1];
	if (e->section[0] == '\0')
		return check_fail(err, errlen, e->source, "key '%s' is outside "
				  "any section (add [listen], [spool], "
				  "[relay], [mx], [rewrite] or [log] above "
				  "it)",
				  show(s, sizeof s, e->key));
	if (config_check_section(e->section, msg, sizeof msg) < 0)
		return check_fail(err, errlen, e->source, "%s", msg);
	const struct config_key *k = key_find(e->section, e->key);
	if (k == NULL)
		return check_fail(err, errlen, e->source, "unknown key '%s' "
				  "in [%s]", show(s, sizeof s, e->key),
				  e->section);
	if (k->set(k, e->value, out, msg, sizeof msg) < 0)
		return check_fail(err, errlen, e->source, "%s", msg);
	return 0;
}

/* The text behind a value: its raw entry, else the default. */
static const char *
check_text(const struct config_raw *raw, const char *section,
	   const char *key)
{
	const struct config_entry *e = config_raw_find(raw, section, key);
	return e != NULL ? e->value : key_find(section, key)->def;
}

static const char *
check_source(const struct config_raw *raw, const char *section,
	     const char *key, const char *other)
{
	const struct config_entry *e = config_raw_find(raw, section, key);
	if (e == NULL && other != NULL)
		e = config_raw_find(raw, section, other);
	return e != NULL ? e->source : "defaults";
}

static int
check_retry(const struct config_raw *raw, const struct config *c,
	    char *err, size_t errlen)
{
	char a[SHOW_MAX + 1], b[SHOW_MAX + 1];
	if (c->spool.retry_max_s >= c->spool.retry_min_s)
		return 0;
	return check_fail(err, errlen, check_source(raw, "spool", "retry_max",
						    "retry_min"),
			  "retry_max (%s) must not be less than retry_min (%s)",
			  show(a, sizeof a, check_text(raw, "spool",
						       "retry_max")),
			  show(b, sizeof b, check_text(raw, "spool",
						       "retry_min")));
}

static int
check_auth(const struct config_raw *raw, const struct config *c,
	   char *err, size_t errlen)
{
	bool user = c->relay.user[0] != '\0';
	bool pass = c->relay.password_file[0] != '\0';
	if (user && !pass)
		return check_fail(err, errlen, check_source(raw, "relay",
				  "user", NULL),
				  "user is set but password_file is not");
	if (pass && !user)
		return check_fail(err, errlen, check_source(raw, "relay",
				  "password_file", NULL),
				  "password_file is set but user is not");
	return 0;
}

int
config_check(const struct config_raw *raw, struct config *out, char *err,
	     size_t errlen)
{
	struct config c;
	config_defaults(&c);
	for (size_t i = 0; i < raw->n; i++)
		if (config_check_entry(&raw->entries[i], &c, err, errlen) < 0)
			return -1;
	if (check_retry(raw, &c, err, errlen) < 0 ||
	    check_auth(raw, &c, err, errlen) < 0)
		return -1;
	*out = c;
	return 0;
}

struct config_entry *
config_raw_find(const struct config_raw *raw, const char *section,
		const char *key)
{
	for (size_t i = 0; i < raw->n; i++)
		if (strcmp(raw->entries[i].section, section) == 0 &&
		    strcmp(raw->entries[i].key, key) == 0)
			return &raw->entries[i];
	return NULL;
}

static int
raw_grow(struct config_raw *raw)
{
	if (raw->n < raw->cap)
		return 0;
	if (raw->cap >= CONFIG_RAW_MAX)
		return -1;
	size_t cap = raw->cap == 0 ? 16 : raw->cap * 2;
	struct config_entry *p = realloc(raw->entries, cap * sizeof *p);
	if (p == NULL)
		return -1;
	raw->entries = p;
	raw->cap = cap;
	return 0;
}

int
config_raw_set(struct config_raw *raw, const char *section, const char *key,
	       const char *value, const char *source)
{
	struct config_entry *e;
	if (strlen(section) >= sizeof e->section ||
	    strlen(key) >= sizeof e->key || strlen(value) >= sizeof e->value ||
	    strlen(source) >= sizeof e->source)
		return -1;
	/* A repeated key replaces the earlier one in place: the later wins. */
	e = config_raw_find(raw, section, key);
	if (e == NULL) {
		if (raw_grow(raw) < 0)
			return -1;
		e = &raw->entries[raw->n++];
		str_copy(e->section, sizeof e->section, section);
		str_copy(e->key, sizeof e->key, key);
	}
	str_copy(e->value, sizeof e->value, value);
	str_copy(e->source, sizeof e->source, source);
	return 0;
}

void
config_raw_free(struct config_raw *raw)
{
	free(raw->entries);
	raw->entries = NULL;
	raw->n = raw->cap = 0;
}
