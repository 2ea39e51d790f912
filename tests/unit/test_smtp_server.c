/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Golden-transcript driver for the listener state machine (direct
 *	tests of bounds and teardown are in test_smtp_server_bounds.c).
 *	Every transcript is run three times: client bytes
 *	fed as whole as possible, one byte per feed, and seven bytes per
 *	feed; all three must give exactly the expected output, events, stored
 *	bytes and log lines, so the machine is split-safe.
 *
 * TRANSCRIPT FORMAT ($OUTBOX_TEST_DATA/transcripts/server/ *.txt)
 *	One directive per line; blank lines and lines starting with '#' are
 *	ignored. TEXT takes C escapes: \r \n \t \\ \0 \xHH.
 *
 *	@config KEY=VALUE ...  hostname (default mx.test), max_message_size
 *	                       (1000000), max_recipients (100), bare_newline
 *	                       (normalize|strict), hop_limit (100),
 *	                       error_limit (20), min_free (0), spool_free (bytes free in
 *	                       the spool; default unknown). Before the first
 *	                       C: line.
 *	@client denied         the glue's allow-list said no
 *	@client ip=TEXT        client address (default 192.0.2.1)
 *	@log                   check log hook lines with L: (else ignored)
 *	C: TEXT                client bytes, CRLF appended
 *	C< TEXT                client bytes, nothing appended
 *	C* N TEXT              TEXT (nothing appended) repeated N times
 *	S: TEXT                the next reply line (without CRLF) is TEXT
 *	S* N TEXT              the next N reply lines are TEXT
 *	L: TEXT                the next log hook line is TEXT
 *	! data-start           event SRV_DATA_START; answer data_begin with
 *	                       id "TESTID" and date "Thu, 1 Jan 2026 00:00:00 +0000"
 *	! commit ok|enospc|eio event SRV_NEED_COMMIT; answer commit_done with
 *	                       0, -ENOSPC or -EIO and id "TESTID"
 *	! abort                event SRV_DATA_ABORT
 *	! close                event SRV_CLOSE; client bytes left are dropped
 *	! shutdown TEXT        call smtp_server_shutdown(s, TEXT)
 *	! body TEXT            the stored bytes of the last message are TEXT
 *	! body-size N          ... are N bytes long
 *	! body-tail TEXT       ... end with TEXT
 *	! sender TEXT          the open transaction's sender
 *	! rcpt I TEXT          its recipient number I (from 0)
 *	! nrcpts N             its recipient count
 *	! tx-flags SIZE 8BIT UTF8   its size_param, body_8bit, smtputf8
 *	! notx                 no open transaction
 *	! state NAME           smtp_server_state_name()
 *	! helo TEXT            smtp_server_helo()
 *
 *	Before any S:, L: or ! line, the driver feeds the client bytes given
 *	so far until they are used up or an event other than SRV_NEED_MORE
 *	and SRV_BODY_CHUNK is returned (body chunks are collected silently,
 *	as their boundaries depend on the split). At the end, every reply and
 *	(with @log) log line must have been matched, no event may be pending,
 *	and all client bytes must be used unless the session closed.
 */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>

#include "check.h"
#include "outbox/smtp_server.h"
#include "outbox/str.h"

#define TR_DATE "Thu, 1 Jan 2026 00:00:00 +0000"
#define TR_MAX_LOG 4096
#define TR_BODY_MAX (4u << 20)

struct tr {
	const char *file;
	int lineno;
	size_t step;             /* bytes per feed */
	struct smtp_server_cfg cfg;
	char ip[64];
	char hostname[256];
	bool allowed, check_log, started;
	uint64_t spool_free;     /* 0 = not set (unknown) */
	struct smtp_server *s;
	struct buf in;           /* client bytes; in_off of them used */
	size_t in_off;
	struct buf out;          /* replies collected */
	size_t out_pos;          /* replies matched so far */
	struct buf body;         /* stored message bytes */
	char *log[TR_MAX_LOG];
	size_t nlog, log_pos;
	enum smtp_server_event ev;
	bool closed;
};

static void __attribute__((format(printf, 2, 3), noreturn))
tr_fail(struct tr *t, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d (step %zu): ", t->file, t->lineno, t->step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void
tr_expect(struct tr *t, bool ok, const char *what)
{
	check_count++;
	if (!ok)
		tr_fail(t, "check failed: %s", what);
}

static int
tr_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode C escapes from src into b. */
static void
tr_unescape(struct tr *t, const char *src, struct buf *b)
{
	for (const char *p = src; *p; p++) {
		char c = *p;
		if (c == '\\') {
			p++;
			switch (*p) {
			case 'r': c = '\r'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case '0': c = '\0'; break;
			case '\\': c = '\\'; break;
			case 'x': {
				int hi = tr_hex(p[1]), lo = hi < 0 ? -1 : tr_hex(p[2]);
				if (lo < 0)
					tr_fail(t, "bad \\x escape");
				c = (char)(hi * 16 + lo);
				p += 2;
				break;
			}
			default:
				tr_fail(t, "bad escape \\%c", *p);
			}
		}
		if (buf_append(b, &c, 1) < 0)
			tr_fail(t, "escape buffer full");
	}
}

static void
tr_log_cb(void *arg, const char *msg)
{
	struct tr *t = arg;
	if (!t->check_log)
		return;
	if (t->nlog == TR_MAX_LOG)
		tr_fail(t, "too many log lines");
	t->log[t->nlog++] = str_ndup(msg, strlen(msg));
}

static void
tr_drain(struct tr *t)
{
	struct buf *o = smtp_server_out(t->s);
	tr_expect(t, o->len <= 72 * 1024, "reply buffer bounded");
	if (buf_append(&t->out, o->data, o->len) < 0)
		tr_fail(t, "output too large");
	buf_reset(o);
}

static void
tr_take_chunk(struct tr *t)
{
	struct buf *c = smtp_server_chunk(t->s);
	tr_expect(t, c->len <= 2 * 64 * 1024 + 8 * 1024, "chunk bounded");
	if (buf_append(&t->body, c->data, c->len) < 0)
		tr_fail(t, "body too large");
	buf_reset(c);
}

static void
tr_start(struct tr *t)
{
	if (t->started)
		return;
	t->started = true;
	t->s = smtp_server_new(&t->cfg, t->ip, t->allowed);
	if (t->s != NULL && t->spool_free != 0)
		smtp_server_set_spool_free(t->s, t->spool_free);
	tr_expect(t, t->s != NULL, "smtp_server_new");
	smtp_server_greet(t->s);
	tr_drain(t);
}

/* Feed client bytes until they are used up or an event is owed. */
static void
tr_run(struct tr *t)
{
	tr_start(t);
	for (unsigned guard = 0; !t->closed && t->ev == SRV_NEED_MORE; guard++) {
		if (guard > 50u * 1000 * 1000)
			tr_fail(t, "feed loop does not end");
		size_t left = t->in.len - t->in_off;
		size_t n = left < t->step ? left : t->step;
		size_t used = 0;
		const char *p = t->in.data ? t->in.data + t->in_off : "";
		enum smtp_server_event ev = smtp_server_feed(t->s, p, n, &used);
		tr_expect(t, used <= n, "consumed <= len");
		t->in_off += used;
		if (t->in_off == t->in.len) {
			buf_reset(&t->in);
			t->in_off = 0;
		}
		tr_drain(t);
		if (ev == SRV_BODY_CHUNK) {
			tr_take_chunk(t);
			continue;
		}
		if (ev != SRV_NEED_MORE) {
			t->ev = ev;
			break;
		}
		if (used < n && used == 0)
			tr_fail(t, "no progress while replies were drained");
		if (t->in.len == 0)
			break;
	}
}

static const char *
tr_event_name(enum smtp_server_event ev)
{
	static const char *const names[] = {
		"NEED_MORE", "DATA_START", "BODY_CHUNK",
		"NEED_COMMIT", "DATA_ABORT", "CLOSE",
	};
	return (unsigned)ev < 6 ? names[ev] : "?";
}

static void
tr_want_event(struct tr *t, enum smtp_server_event want)
{
	if (t->ev != want)
		tr_fail(t, "event %s, want %s", tr_event_name(t->ev),
			tr_event_name(want));
	check_count++;
	t->ev = SRV_NEED_MORE;
}

/* The next reply line must be want. */
static void
tr_reply(struct tr *t, const char *want_esc)
{
	struct buf want;
	buf_init(&want, 1 << 20);
	tr_unescape(t, want_esc, &want);
	const char *p = t->out.data ? t->out.data + t->out_pos : "";
	size_t left = t->out.len - t->out_pos;
	const char *crlf = left ? memmem(p, left, "\r\n", 2) : NULL;
	if (crlf == NULL)
		tr_fail(t, "no reply line, want \"%s\"", want_esc);
	size_t n = (size_t)(crlf - p);
	if (n != want.len || memcmp(p, want.data ? want.data : "", n) != 0)
		tr_fail(t, "reply \"%.*s\", want \"%s\"", (int)n, p, want_esc);
	check_count++;
	t->out_pos += n + 2;
	buf_free(&want);
}

static void
tr_logline(struct tr *t, const char *want)
{
	if (t->log_pos >= t->nlog)
		tr_fail(t, "no log line, want \"%s\"", want);
	if (strcmp(t->log[t->log_pos], want) != 0)
		tr_fail(t, "log \"%s\", want \"%s\"", t->log[t->log_pos], want);
	check_count++;
	t->log_pos++;
}

static void
tr_collect_tail(struct tr *t)
{
	tr_take_chunk(t);
}

static void
tr_body_check(struct tr *t, const char *kind, const char *arg)
{
	struct buf want;
	buf_init(&want, TR_BODY_MAX);
	if (strcmp(kind, "body-size") == 0) {
		uint64_t n;
		if (str_to_u64(arg, 0, UINT64_MAX, &n) < 0)
			tr_fail(t, "bad number");
		if (t->body.len != n)
			tr_fail(t, "body is %zu bytes, want %s", t->body.len, arg);
		check_count++;
		return;
	}
	tr_unescape(t, arg, &want);
	bool tail = strcmp(kind, "body-tail") == 0;
	size_t off = tail && t->body.len >= want.len ? t->body.len - want.len : 0;
	bool ok = tail ? t->body.len >= want.len : t->body.len == want.len;
	ok = ok && memcmp(t->body.data ? t->body.data + off : "",
			  want.data ? want.data : "", want.len) == 0;
	if (!ok) {
		char got[512];
		str_sanitize(got, sizeof(got), t->body.data ? t->body.data : "",
			     t->body.len);
		tr_fail(t, "%s mismatch; stored (%zu bytes, sanitized): %s",
			kind, t->body.len, got);
	}
	check_count++;
	buf_free(&want);
}

static const struct smtp_tx *
tr_tx(struct tr *t)
{
	const struct smtp_tx *tx = smtp_server_tx(t->s);
	if (tx == NULL)
		tr_fail(t, "no transaction");
	return tx;
}

static void
tr_str_check(struct tr *t, const char *what, const char *got, const char *esc)
{
	struct buf want;
	buf_init(&want, 1 << 16);
	tr_unescape(t, esc, &want);
	if (strcmp(got, want.data ? want.data : "") != 0)
		tr_fail(t, "%s \"%s\", want \"%s\"", what, got, esc);
	check_count++;
	buf_free(&want);
}

static void
tr_tx_check(struct tr *t, const char *kind, const char *arg)
{
	if (strcmp(kind, "notx") == 0) {
		tr_expect(t, smtp_server_tx(t->s) == NULL, "no transaction");
	} else if (strcmp(kind, "sender") == 0) {
		tr_str_check(t, "sender", tr_tx(t)->sender, arg);
	} else if (strcmp(kind, "nrcpts") == 0) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", tr_tx(t)->nrcpts);
		tr_str_check(t, "nrcpts", n, arg);
	} else if (strcmp(kind, "rcpt") == 0) {
		char *end;
		unsigned long i = strtoul(arg, &end, 10);
		const struct smtp_tx *tx = tr_tx(t);
		if (i >= tx->nrcpts)
			tr_fail(t, "no recipient %lu", i);
		tr_str_check(t, "rcpt", tx->rcpts[i].addr, end + 1);
	} else if (strcmp(kind, "tx-flags") == 0) {
		const struct smtp_tx *tx = tr_tx(t);
		char got[64];
		snprintf(got, sizeof(got), "%llu %d %d",
			 (unsigned long long)tx->size_param, tx->body_8bit,
			 tx->smtputf8);
		tr_str_check(t, "tx-flags", got, arg);
	} else if (strcmp(kind, "state") == 0) {
		tr_str_check(t, "state", smtp_server_state_name(t->s), arg);
	} else if (strcmp(kind, "helo") == 0) {
		tr_str_check(t, "helo", smtp_server_helo(t->s), arg);
	} else {
		tr_fail(t, "unknown directive ! %s", kind);
	}
}

static void
tr_commit(struct tr *t, const char *how)
{
	tr_want_event(t, SRV_NEED_COMMIT);
	tr_collect_tail(t);
	int st = 0;
	if (strcmp(how, "enospc") == 0)
		st = -ENOSPC;
	else if (strcmp(how, "eio") == 0)
		st = -EIO;
	else if (strcmp(how, "ok") != 0)
		tr_fail(t, "commit ok|enospc|eio");
	smtp_server_commit_done(t->s, st, "TESTID");
	tr_drain(t);
}

static void
tr_bang(struct tr *t, char *rest)
{
	char *arg = strchr(rest, ' ');
	if (arg != NULL)
		*arg++ = '\0';
	else
		arg = rest + strlen(rest);
	tr_run(t);
	if (strcmp(rest, "data-start") == 0) {
		tr_want_event(t, SRV_DATA_START);
		buf_reset(&t->body);
		smtp_server_data_begin(t->s, "TESTID", TR_DATE);
	} else if (strcmp(rest, "commit") == 0) {
		tr_commit(t, arg);
	} else if (strcmp(rest, "abort") == 0) {
		tr_want_event(t, SRV_DATA_ABORT);
		tr_collect_tail(t);
	} else if (strcmp(rest, "close") == 0) {
		tr_want_event(t, SRV_CLOSE);
		t->closed = true;
	} else if (strcmp(rest, "shutdown") == 0) {
		smtp_server_shutdown(t->s, arg);
		tr_drain(t);
	} else if (strncmp(rest, "body", 4) == 0) {
		tr_body_check(t, rest, arg);
	} else {
		tr_tx_check(t, rest, arg);
	}
}

static void
tr_config(struct tr *t, char *args)
{
	char *next;
	for (char *kv = args; kv != NULL && *kv != '\0'; kv = next) {
		next = strchr(kv, ' ');
		if (next != NULL)
			*next++ = '\0';
		char *v = strchr(kv, '=');
		if (v == NULL)
			tr_fail(t, "@config KEY=VALUE");
		*v++ = '\0';
		uint64_t n = 0;
		bool num = str_to_u64(v, 0, UINT64_MAX, &n) == 0;
		if (strcmp(kv, "hostname") == 0)
			str_copy(t->hostname, sizeof(t->hostname), v);
		else if (strcmp(kv, "bare_newline") == 0)
			t->cfg.bare_newline = strcmp(v, "strict") == 0
						      ? SRV_BARE_NL_STRICT
						      : SRV_BARE_NL_NORMALIZE;
		else if (num && strcmp(kv, "max_message_size") == 0)
			t->cfg.max_message_size = n;
		else if (num && strcmp(kv, "max_recipients") == 0)
			t->cfg.max_recipients = (unsigned)n;
		else if (num && strcmp(kv, "hop_limit") == 0)
			t->cfg.hop_limit = (unsigned)n;
		else if (num && strcmp(kv, "error_limit") == 0)
			t->cfg.error_limit = (unsigned)n;
		else if (num && strcmp(kv, "min_free") == 0)
			t->cfg.min_free = n;
		else if (num && strcmp(kv, "spool_free") == 0)
			t->spool_free = n;
		else
			tr_fail(t, "bad @config %s", kv);
	}
}

static void
tr_repeat(struct tr *t, const char *rest, bool reply)
{
	char *end;
	unsigned long n = strtoul(rest, &end, 10);
	if (end == rest || *end != ' ')
		tr_fail(t, "want: N TEXT");
	if (reply) {
		tr_run(t);
		for (unsigned long i = 0; i < n; i++)
			tr_reply(t, end + 1);
		return;
	}
	struct buf one;
	buf_init(&one, 1 << 20);
	tr_unescape(t, end + 1, &one);
	for (unsigned long i = 0; i < n; i++)
		if (buf_append(&t->in, one.data, one.len) < 0)
			tr_fail(t, "client input too large");
	buf_free(&one);
}

static void
tr_directive(struct tr *t, char *line)
{
	if (line[0] == '\0' || line[0] == '#')
		return;
	if (strncmp(line, "@config ", 8) == 0) {
		tr_config(t, line + 8);
	} else if (strcmp(line, "@client denied") == 0) {
		t->allowed = false;
	} else if (strncmp(line, "@client ip=", 11) == 0) {
		str_copy(t->ip, sizeof(t->ip), line + 11);
	} else if (strcmp(line, "@log") == 0) {
		t->check_log = true;
	} else if (line[0] == '@') {
		tr_fail(t, "unknown directive %s", line);
	} else if (line[0] == 'C' && (line[1] == ':' || line[1] == '<')) {
		tr_start(t);
		tr_unescape(t, line[2] == ' ' ? line + 3 : line + 2, &t->in);
		if (line[1] == ':' && buf_append(&t->in, "\r\n", 2) < 0)
			tr_fail(t, "client input too large");
	} else if (strncmp(line, "C* ", 3) == 0) {
		tr_start(t);
		tr_repeat(t, line + 3, false);
	} else if (strncmp(line, "S* ", 3) == 0) {
		tr_repeat(t, line + 3, true);
	} else if (strncmp(line, "S:", 2) == 0) {
		tr_run(t);
		tr_reply(t, line[2] == ' ' ? line + 3 : line + 2);
	} else if (strncmp(line, "L: ", 3) == 0) {
		tr_run(t);
		tr_logline(t, line + 3);
	} else if (strncmp(line, "! ", 2) == 0) {
		tr_bang(t, line + 2);
	} else {
		tr_fail(t, "unknown line: %s", line);
	}
}

static void
tr_finish(struct tr *t)
{
	tr_run(t);
	if (t->ev != SRV_NEED_MORE)
		tr_fail(t, "unexpected event %s at end", tr_event_name(t->ev));
	if (t->out_pos != t->out.len)
		tr_fail(t, "unmatched replies: %s", t->out.data + t->out_pos);
	if (t->check_log && t->log_pos != t->nlog)
		tr_fail(t, "unmatched log line: %s", t->log[t->log_pos]);
	if (!t->closed && t->in.len != t->in_off)
		tr_fail(t, "%zu client bytes not used", t->in.len - t->in_off);
	check_count += 4;
}

static void
tr_free(struct tr *t)
{
	smtp_server_free(t->s);
	buf_free(&t->in);
	buf_free(&t->out);
	buf_free(&t->body);
	for (size_t i = 0; i < t->nlog; i++)
		free(t->log[i]);
}

static void
tr_play(const char *path, const char *name, size_t step)
{
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	struct tr t;
	memset(&t, 0, sizeof(t));
	t.file = name;
	t.step = step;
	str_copy(t.hostname, sizeof(t.hostname), "mx.test");
	t.cfg.hostname = t.hostname;
	t.cfg.max_message_size = 1000000;
	t.cfg.max_recipients = 100;
	t.cfg.bare_newline = SRV_BARE_NL_NORMALIZE;
	t.cfg.hop_limit = 100;
	t.cfg.error_limit = 20;
	t.cfg.log = tr_log_cb;
	t.cfg.log_arg = &t;
	str_copy(t.ip, sizeof(t.ip), "192.0.2.1");
	t.allowed = true;
	buf_init(&t.in, 16u << 20);
	buf_init(&t.out, 16u << 20);
	buf_init(&t.body, TR_BODY_MAX);
	char line[8192];
	while (fgets(line, sizeof(line), f) != NULL) {
		t.lineno++;
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		tr_directive(&t, line);
	}
	fclose(f);
	tr_finish(&t);
	tr_free(&t);
}

static int
tr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_transcripts(void)
{
	const char *root = getenv("OUTBOX_TEST_DATA");
	CHECK(root != NULL);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/transcripts/server", root);
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	char *names[512];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 512) {
		size_t k = strlen(e->d_name);
		if (k > 4 && strcmp(e->d_name + k - 4, ".txt") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), tr_cmp);
	const size_t steps[] = { SIZE_MAX, 1, 7 };
	for (size_t i = 0; i < n; i++) {
		char path[2048];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		for (size_t k = 0; k < 3; k++)
			tr_play(path, names[i], steps[k]);
		free(names[i]);
	}
	printf("%zu transcripts, 3 splits each\n", n);
	CHECK(n >= 40);
}

int
main(void)
{
	test_transcripts();
	CHECK_DONE();
}
