/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Tests for the outbound SMTP client state machine (proto/smtp_client*.c).
 *
 * Part 1 plays the golden transcripts in
 * $OUTBOX_TEST_DATA/transcripts/client/NAME.txt (Postfix in/ref style, with
 * the input and the expected output in one file). The driver echoes every
 * input line, regenerates every expected line from what the client does,
 * and the result must equal the file byte for byte. Format, one item per
 * line:
 *
 *   # text              comment (echoed)
 *   @cfg k=v ...        new session: helo=NAME tls=none|starttls|implicit
 *                       required=0|1 user=U pass=P (frees the previous one)
 *   > start             smtp_client_start()
 *   S: text             smtp_client_on_line(text); \xHH and \\ escapes
 *   > tls ok            smtp_client_tls_done(true)
 *   > tls fail TEXT     smtp_client_tls_done(false, TEXT)
 *   > send from=A rcpt=X,Y size=N 8bit=0|1 utf8=0|1
 *                       smtp_client_send_msg() (from= empty is <>)
 *   > body              smtp_client_body_done()
 *   > quit              smtp_client_quit()
 *   > abort ENH TEXT    smtp_client_abort()
 *   @state NAME         the current smtp_client_state_name()
 *   @timeout MS         the current smtp_client_timeout_ms()
 *   @log TEXT           the protocol trace so far contains TEXT
 *   @nolog TEXT         ... does not contain TEXT
 *
 * Output lines, written after the input that caused them:
 *
 *   C: text             one CRLF-terminated command in smtp_client_out()
 *                       (a chunk without CRLF shows as "C~ text")
 *   !need-tls  !need-body  !closed
 *   !ready ext=LIST size=N
 *   !msg-done msg=R rcpt=R,R...      R is CODE or CODE/ENH
 *   !fail code=N enh=E cmd=C [perm] [in-data] [after-dot] [tls-failed]
 *         [rcpt=R,...] text=TEXT     (rcpt= when a transaction was open)
 *
 * CLI_WAIT prints nothing. After every transcript the trace must not hold
 * the password, base64("\0user\0pass"), base64(user) or base64(pass) (F11),
 * and the client is freed (ASan checks the wipe/free path).
 *
 * Part 2 holds cases that are easier in C (huge lines, result texts).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/b64.h"
#include "outbox/smtp_client.h"
#include "outbox/str.h"

struct run {
	struct smtp_client *c;
	char helo[128], user[128], pass[128];
	struct smtp_client_cfg cfg;
	struct buf log;
	struct buf act;
	int fails;
};

/* ---- helpers shared by both parts ---- */

static void
log_cb(void *arg, const char *msg)
{
	struct buf *b = arg;
	CHECK_EQ(buf_printf(b, "%s\n", msg), 0);
}

static void
out_text(struct buf *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		int r = ch >= 0x20 && ch < 0x7f && ch != '\\'
				? buf_append(o, p + i, 1)
				: buf_printf(o, "\\x%02x", ch);
		CHECK_EQ(r, 0);
	}
}

static void
put_result(struct buf *o, const struct smtp_client_result *r)
{
	CHECK_EQ(buf_printf(o, "%d", r->code), 0);
	if (r->enh[0])
		CHECK_EQ(buf_printf(o, "/%s", r->enh), 0);
}

static void
put_rcpts(struct buf *o, const struct smtp_client_msg_result *m)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (i)
			CHECK_EQ(buf_puts(o, ","), 0);
		put_result(o, &m->rcpt[i]);
	}
}

static void
put_ext(struct buf *o, unsigned ext)
{
	static const char *const names[] = {
		"STARTTLS", "PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8",
		"AUTH", "AUTH-PLAIN", "AUTH-LOGIN", "ENHANCEDSTATUSCODES", "DSN",
	};
	bool any = false;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(ext & (1u << i)))
			continue;
		CHECK_EQ(buf_printf(o, "%s%s", any ? "," : "", names[i]), 0);
		any = true;
	}
	if (!any)
		CHECK_EQ(buf_puts(o, "-"), 0);
}

/* Move the client's output into o as C: lines, as the glue would send it. */
static void
put_out(struct buf *o, struct smtp_client *c)
{
	struct buf *out = smtp_client_out(c);
	size_t i = 0;
	while (i < out->len) {
		const char *crlf = NULL;
		for (size_t k = i; k + 1 < out->len; k++)
			if (out->data[k] == '\r' && out->data[k + 1] == '\n') {
				crlf = out->data + k;
				break;
			}
		size_t end = crlf ? (size_t)(crlf - out->data) : out->len;
		CHECK_EQ(buf_puts(o, crlf ? "C: " : "C~ "), 0);
		out_text(o, out->data + i, end - i);
		CHECK_EQ(buf_puts(o, "\n"), 0);
		i = crlf ? end + 2 : end;
	}
	buf_reset(out);
}

static void
put_event(struct buf *o, struct smtp_client *c, enum smtp_client_event ev)
{
	const struct smtp_client_failure *f;
	switch (ev) {
	case CLI_WAIT:
		return;
	case CLI_NEED_TLS:
		CHECK_EQ(buf_puts(o, "!need-tls\n"), 0);
		return;
	case CLI_NEED_BODY:
		CHECK_EQ(buf_puts(o, "!need-body\n"), 0);
		return;
	case CLI_CLOSED:
		CHECK_EQ(buf_puts(o, "!closed\n"), 0);
		return;
	case CLI_READY:
		CHECK_EQ(buf_puts(o, "!ready ext="), 0);
		put_ext(o, smtp_client_ext(c));
		CHECK_EQ(buf_printf(o, " size=%llu\n",
				    (unsigned long long)smtp_client_size_limit(c)), 0);
		return;
	case CLI_MSG_DONE:
		CHECK_EQ(buf_puts(o, "!msg-done msg="), 0);
		put_result(o, &smtp_client_msg_result(c)->msg);
		CHECK_EQ(buf_puts(o, " rcpt="), 0);
		put_rcpts(o, smtp_client_msg_result(c));
		CHECK_EQ(buf_puts(o, "\n"), 0);
		return;
	case CLI_FAIL:
		f = smtp_client_failure(c);
		CHECK_EQ(buf_printf(o, "!fail code=%d enh=%s cmd=%s%s%s%s%s",
				    f->r.code, f->r.enh[0] ? f->r.enh : "-",
				    f->r.cmd, f->permanent ? " perm" : "",
				    f->in_data ? " in-data" : "",
				    f->after_dot ? " after-dot" : "",
				    f->tls_failed ? " tls-failed" : ""), 0);
		if (f->in_tx) {
			CHECK_EQ(buf_puts(o, " rcpt="), 0);
			put_rcpts(o, smtp_client_msg_result(c));
		}
		CHECK_EQ(buf_puts(o, " text="), 0);
		out_text(o, f->r.text, strlen(f->r.text));
		CHECK_EQ(buf_puts(o, "\n"), 0);
		return;
	}
	CHECK_FAIL("unknown event %d", (int)ev);
}

/* ---- part 1: transcripts ---- */

static void
run_free(struct run *r)
{
	smtp_client_free(r->c);
	r->c = NULL;
}

static void
check_no_secret(const char *log, const void *p, size_t n, bool encode)
{
	struct buf b;
	buf_init(&b, 4096);
	CHECK_EQ(encode ? b64_encode(p, n, &b) : buf_append(&b, p, n), 0);
	if (b.len > 0 && strstr(log, b.data) != NULL)
		CHECK_FAIL("secret \"%s\" in the trace:\n%s", b.data, log);
	buf_free(&b);
}

/* F11: the trace never shows the credentials in any form. */
static void
check_secrets(const struct run *r)
{
	const char *log = r->log.data ? r->log.data : "";
	size_t ul = strlen(r->user), pl = strlen(r->pass);
	char plain[300];
	plain[0] = '\0';
	memcpy(plain + 1, r->user, ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, r->pass, pl);
	if (pl > 0) {
		check_no_secret(log, r->pass, pl, false);
		check_no_secret(log, r->pass, pl, true);
		check_no_secret(log, plain, 2 + ul + pl, true);
	}
	if (ul > 0 && pl > 0)
		check_no_secret(log, r->user, ul, true);
}

/* Next space-separated token of *p (modifies the string), or NULL. */
static char *
next_token(char **p)
{
	char *s = *p;
	while (*s == ' ')
		s++;
	if (*s == '\0')
		return NULL;
	char *e = s;
	while (*e && *e != ' ')
		e++;
	if (*e)
		*e++ = '\0';
	*p = e;
	return s;
}

/* Undo the \xHH and \\ escapes in place; returns the length. */
static size_t
unescape(char *s)
{
	size_t o = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1] == '\\') {
			s[o++] = '\\';
			i++;
		} else if (s[i] == '\\' && s[i + 1] == 'x' && s[i + 2] && s[i + 3]) {
			char hex[3] = { s[i + 2], s[i + 3], '\0' };
			s[o++] = (char)strtoul(hex, NULL, 16);
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

static void
do_cfg(struct run *r, char *args)
{
	run_free(r);
	memset(&r->cfg, 0, sizeof(r->cfg));
	str_copy(r->helo, sizeof(r->helo), "client.test");
	r->user[0] = r->pass[0] = '\0';
	for (char *t = next_token(&args); t; t = next_token(&args)) {
		char *v = strchr(t, '=');
		CHECK(v != NULL);
		*v++ = '\0';
		if (strcmp(t, "helo") == 0)
			str_copy(r->helo, sizeof(r->helo), v);
		else if (strcmp(t, "user") == 0)
			str_copy(r->user, sizeof(r->user), v);
		else if (strcmp(t, "pass") == 0)
			str_copy(r->pass, sizeof(r->pass), v);
		else if (strcmp(t, "required") == 0)
			r->cfg.tls_required = strcmp(v, "1") == 0;
		else if (strcmp(t, "tls") == 0)
			r->cfg.tls = strcmp(v, "starttls") == 0 ? CLI_TLS_STARTTLS
				   : strcmp(v, "implicit") == 0 ? CLI_TLS_IMPLICIT
								: CLI_TLS_NONE;
		else
			CHECK_FAIL("unknown @cfg key %s", t);
	}
	r->cfg.helo = r->helo;
	r->cfg.user = r->user;
	r->cfg.password = r->pass;
	r->cfg.log = log_cb;
	r->cfg.log_arg = &r->log;
	r->c = smtp_client_new(&r->cfg);
	CHECK(r->c != NULL);
}

#define SEND_MAX_RCPTS 64

static enum smtp_client_event
do_send(struct run *r, char *args)
{
	char *from = "";
	char *list = NULL;
	const char *rcpts[SEND_MAX_RCPTS];
	struct smtp_client_msg m = { .rcpts = rcpts };
	for (char *t = next_token(&args); t; t = next_token(&args)) {
		if (strncmp(t, "from=", 5) == 0)
			from = t + 5;
		else if (strncmp(t, "rcpt=", 5) == 0)
			list = t + 5;
		else if (strncmp(t, "size=", 5) == 0)
			CHECK_EQ(str_to_u64(t + 5, 0, UINT64_MAX, &m.size), 0);
		else if (strncmp(t, "8bit=", 5) == 0)
			m.body_8bit = strcmp(t + 5, "1") == 0;
		else if (strncmp(t, "utf8=", 5) == 0)
			m.smtputf8 = strcmp(t + 5, "1") == 0;
		else
			CHECK_FAIL("unknown send key %s", t);
	}
	unescape(from);
	m.sender = from;
	while (list && *list) {
		CHECK(m.nrcpts < SEND_MAX_RCPTS);
		char *comma = strchr(list, ',');
		if (comma)
			*comma = '\0';
		unescape(list);
		rcpts[m.nrcpts++] = list;
		list = comma ? comma + 1 : NULL;
	}
	return smtp_client_send_msg(r->c, &m);
}

/* One "> verb args" line. */
static enum smtp_client_event
do_action(struct run *r, char *s)
{
	char *verb = next_token(&s);
	CHECK(verb != NULL);
	while (*s == ' ')
		s++;
	if (strcmp(verb, "start") == 0)
		return smtp_client_start(r->c);
	if (strcmp(verb, "tls") == 0) {
		char *how = next_token(&s);
		CHECK(how != NULL);
		while (*s == ' ')
			s++;
		return smtp_client_tls_done(r->c, strcmp(how, "ok") == 0, s);
	}
	if (strcmp(verb, "send") == 0)
		return do_send(r, s);
	if (strcmp(verb, "body") == 0)
		return smtp_client_body_done(r->c);
	if (strcmp(verb, "quit") == 0)
		return smtp_client_quit(r->c);
	if (strcmp(verb, "abort") == 0) {
		char *enh = next_token(&s);
		while (*s == ' ')
			s++;
		return smtp_client_abort(r->c, enh, s);
	}
	CHECK_FAIL("unknown action %s", verb);
}

/* A query line: write the actual value in the same shape. */
static void
do_query(struct run *r, const char *line)
{
	const char *log = r->log.data ? r->log.data : "";
	if (strncmp(line, "@state", 6) == 0) {
		CHECK_EQ(buf_printf(&r->act, "@state %s\n",
				    smtp_client_state_name(r->c)), 0);
	} else if (strncmp(line, "@timeout", 8) == 0) {
		CHECK_EQ(buf_printf(&r->act, "@timeout %llu\n",
				    (unsigned long long)smtp_client_timeout_ms(r->c)), 0);
	} else if (strncmp(line, "@log ", 5) == 0) {
		bool has = strstr(log, line + 5) != NULL;
		CHECK_EQ(buf_printf(&r->act, "%s%s\n", has ? "@log " : "@log-missing ",
				    line + 5), 0);
	} else if (strncmp(line, "@nolog ", 7) == 0) {
		bool has = strstr(log, line + 7) != NULL;
		CHECK_EQ(buf_printf(&r->act, "%s%s\n", has ? "@log-found " : "@nolog ",
				    line + 7), 0);
	} else {
		CHECK_FAIL("unknown query %s", line);
	}
}

static void
run_line(struct run *r, char *line)
{
	if (line[0] == '\0' || line[0] == '#') {
		CHECK_EQ(buf_printf(&r->act, "%s\n", line), 0);
		return;
	}
	if (strncmp(line, "@cfg", 4) == 0) {
		CHECK_EQ(buf_printf(&r->act, "%s\n", line), 0);
		check_secrets(r);
		do_cfg(r, line + 4);
		return;
	}
	if (line[0] == '@') {
		CHECK(r->c != NULL);
		do_query(r, line);
		return;
	}
	CHECK(r->c != NULL);
	CHECK_EQ(buf_printf(&r->act, "%s\n", line), 0);
	enum smtp_client_event ev;
	if (strncmp(line, "S:", 2) == 0) {
		char *text = line[2] == ' ' ? line + 3 : line + 2;
		size_t n = unescape(text);
		ev = smtp_client_on_line(r->c, text, n);
	} else if (strncmp(line, "> ", 2) == 0) {
		ev = do_action(r, line + 2);
	} else {
		CHECK_FAIL("bad transcript line: %s", line);
	}
	put_out(&r->act, r->c);
	put_event(&r->act, r->c, ev);
}

static bool
is_output_line(const char *line)
{
	return strncmp(line, "C:", 2) == 0 || strncmp(line, "C~", 2) == 0 ||
	       line[0] == '!';
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	struct buf b;
	buf_init(&b, 1u << 20);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		CHECK_EQ(buf_append(&b, chunk, n), 0);
	fclose(f);
	*len = b.len;
	return b.data ? b.data : calloc(1, 1);
}

static void
report_diff(const char *name, const char *want, const char *got)
{
	int line = 1;
	size_t i = 0;
	while (want[i] && want[i] == got[i]) {
		if (want[i] == '\n')
			line++;
		i++;
	}
	fprintf(stderr, "transcript %s differs at line %d\n--- actual ---\n%s"
			"--------------\n", name, line, got);
}

/* Play one transcript; returns true when the output matches the file. */
static bool
run_transcript(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	size_t len;
	char *want = read_file(path, &len);
	char *copy = str_ndup(want, len);
	CHECK(copy != NULL);
	struct run r;
	memset(&r, 0, sizeof(r));
	buf_init(&r.log, 1u << 22);
	buf_init(&r.act, 1u << 20);
	for (char *p = copy, *nl; p && *p; p = nl ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (!is_output_line(p))
			run_line(&r, p);
	}
	check_secrets(&r);
	run_free(&r);
	const char *got = r.act.data ? r.act.data : "";
	bool same = strcmp(got, want) == 0;
	if (!same)
		report_diff(name, want, got);
	if (getenv("OUTBOX_TRANSCRIPT_SHOW"))
		fprintf(stderr, "=== %s\n%s", name, r.log.data ? r.log.data : "");
	buf_free(&r.log);
	buf_free(&r.act);
	free(copy);
	free(want);
	return same;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_transcripts(void)
{
	const char *data = getenv("OUTBOX_TEST_DATA");
	char dir[900];
	snprintf(dir, sizeof(dir), "%s/transcripts/client",
		 data ? data : "tests");
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".txt") == 0) {
			CHECK(n < sizeof(names) / sizeof(names[0]));
			names[n++] = str_ndup(e->d_name, l);
		}
	}
	closedir(d);
	CHECK(n >= 10);
	qsort(names, n, sizeof(names[0]), name_cmp);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		bool ok = run_transcript(dir, names[i]);
		check_count++;
		bad += !ok;
		free(names[i]);
	}
	printf("%zu transcripts, %zu failed\n", n, bad);
	CHECK_EQ(bad, 0);
}

/* ---- part 2: cases easier in C ---- */

struct sess {
	struct smtp_client *c;
	struct smtp_client_cfg cfg;
	struct buf log;
};

static void
sess_new(struct sess *s, enum smtp_client_tls tls, const char *user,
	 const char *pass)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->log, 1u << 24);
	s->cfg.helo = "client.test";
	s->cfg.tls = tls;
	s->cfg.user = user;
	s->cfg.password = pass;
	s->cfg.log = log_cb;
	s->cfg.log_arg = &s->log;
	s->c = smtp_client_new(&s->cfg);
	CHECK(s->c != NULL);
}

static void
sess_free(struct sess *s)
{
	smtp_client_free(s->c);
	buf_free(&s->log);
}

static enum smtp_client_event
line(struct sess *s, const char *l)
{
	return smtp_client_on_line(s->c, l, strlen(l));
}

/* Take the pending output and compare it with want. */
static void
expect_out(struct sess *s, const char *want)
{
	struct buf *o = smtp_client_out(s->c);
	CHECK_STR_EQ(o->data ? o->data : "", want);
	buf_reset(o);
}

/* Greeting and EHLO with the given keyword lines; ends in ready. */
static void
sess_ready(struct sess *s, const char *const *kw, size_t n)
{
	CHECK_EQ(smtp_client_start(s->c), CLI_WAIT);
	CHECK_EQ(line(s, "220 mx"), CLI_WAIT);
	expect_out(s, "EHLO client.test\r\n");
	char l[128];
	CHECK_EQ(line(s, "250-mx"), CLI_WAIT);
	for (size_t i = 0; i < n; i++) {
		snprintf(l, sizeof(l), "250-%s", kw[i]);
		CHECK_EQ(line(s, l), CLI_WAIT);
	}
	CHECK_EQ(line(s, "250 HELP"), CLI_READY);
}

/* F10c: a 15,000-octet challenge is cancelled with "*", no overflow. */
static void
test_auth_huge_challenge(void)
{
	size_t sizes[] = { 15000, SMTP_AUTH_LINE_MAX + 4, 100000 };
	for (size_t k = 0; k < 3; k++) {
		struct sess s;
		sess_new(&s, CLI_TLS_IMPLICIT, "carol", "pw-huge-1");
		CHECK_EQ(smtp_client_start(s.c), CLI_NEED_TLS);
		CHECK_EQ(smtp_client_tls_done(s.c, true, NULL), CLI_WAIT);
		CHECK_EQ(line(&s, "220 mx"), CLI_WAIT);
		CHECK_EQ(line(&s, "250-mx"), CLI_WAIT);
		CHECK_EQ(line(&s, "250 AUTH LOGIN"), CLI_WAIT);
		expect_out(&s, "EHLO client.test\r\nAUTH LOGIN\r\n");
		size_t n = 4 + sizes[k];
		char *big = malloc(n);
		CHECK(big != NULL);
		memcpy(big, "334 ", 4);
		memset(big + 4, 'A', n - 4);
		CHECK_EQ(smtp_client_on_line(s.c, big, n), CLI_WAIT);
		expect_out(&s, "*\r\n");
		CHECK_STR_EQ(smtp_client_state_name(s.c), "auth-cancel");
		CHECK_EQ(line(&s, "501 5.7.0 cancelled"), CLI_FAIL);
		const struct smtp_client_failure *f = smtp_client_failure(s.c);
		CHECK_EQ(f->r.code, 0);
		CHECK_STR_EQ(f->r.enh, "4.7.0");
		CHECK(!f->permanent);
		CHECK(strlen(f->r.text) < SMTP_REPLY_TEXT_MAX);
		free(big);
		sess_free(&s);
	}
	/* The longest legal challenge (12,288 octets) is answered. */
	struct sess s;
	sess_new(&s, CLI_TLS_IMPLICIT, "carol", "pw-huge-1");
	CHECK_EQ(smtp_client_start(s.c), CLI_NEED_TLS);
	CHECK_EQ(smtp_client_tls_done(s.c, true, NULL), CLI_WAIT);
	CHECK_EQ(line(&s, "220 mx"), CLI_WAIT);
	/* The first EHLO line is the server's name, never a keyword. */
	CHECK_EQ(line(&s, "250 AUTH LOGIN"), CLI_FAIL);
	CHECK_STR_EQ(smtp_client_failure(s.c)->r.text, "server does not offer AUTH");
	sess_free(&s);
	sess_new(&s, CLI_TLS_IMPLICIT, "carol", "pw-huge-1");
	CHECK_EQ(smtp_client_start(s.c), CLI_NEED_TLS);
	CHECK_EQ(smtp_client_tls_done(s.c, true, NULL), CLI_WAIT);
	CHECK_EQ(line(&s, "220 mx"), CLI_WAIT);
	CHECK_EQ(line(&s, "250-mx"), CLI_WAIT);
	CHECK_EQ(line(&s, "250 AUTH LOGIN"), CLI_WAIT);
	expect_out(&s, "EHLO client.test\r\nAUTH LOGIN\r\n");
	size_t n = 4 + SMTP_AUTH_LINE_MAX;
	char *big = malloc(n);
	CHECK(big != NULL);
	memcpy(big, "334 ", 4);
	memset(big + 4, 'A', n - 4);
	CHECK_EQ(smtp_client_on_line(s.c, big, n), CLI_WAIT);
	expect_out(&s, "Y2Fyb2w=\r\n");
	free(big);
	sess_free(&s);
}

/* B10: 100,000 lines of 250-x and a 100,000-byte line; bounded, deferred. */
static void
test_reply_floods(void)
{
	struct sess s;
	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	CHECK_EQ(smtp_client_start(s.c), CLI_WAIT);
	CHECK_EQ(line(&s, "220 mx"), CLI_WAIT);
	expect_out(&s, "EHLO client.test\r\n");
	int i;
	enum smtp_client_event ev = CLI_WAIT;
	for (i = 0; i < 100000 && ev == CLI_WAIT; i++)
		ev = line(&s, "250-x");
	CHECK_EQ(ev, CLI_FAIL);
	CHECK_EQ(i, SMTP_REPLY_MAX_LINES + 1);
	for (; i < 100000; i++)
		CHECK_EQ(line(&s, "250-x"), CLI_FAIL);
	CHECK_EQ(line(&s, "250 x"), CLI_FAIL);
	expect_out(&s, "");
	CHECK_STR_EQ(smtp_client_failure(s.c)->r.enh, "4.5.0");
	CHECK_EQ(smtp_client_failure(s.c)->r.code, 0);
	sess_free(&s);

	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	const char *kw[] = { "PIPELINING" };
	sess_ready(&s, kw, 1);
	expect_out(&s, "");
	const char *rcpts[] = { "a@example.test" };
	struct smtp_client_msg m = { .sender = "s@x.test", .rcpts = rcpts,
				     .nrcpts = 1, .size = 1 };
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_WAIT);
	size_t n = 100000;
	char *big = malloc(n);
	CHECK(big != NULL);
	memcpy(big, "250 ", 4);
	memset(big + 4, '\x1b', n - 4);
	CHECK_EQ(smtp_client_on_line(s.c, big, n), CLI_FAIL);
	const struct smtp_client_failure *f = smtp_client_failure(s.c);
	CHECK(strlen(f->r.text) < 200);
	for (const char *p = f->r.text; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	for (const char *p = s.log.data; *p; p++)
		CHECK(*p == '\n' || (*p >= 0x20 && *p < 0x7f));
	CHECK(f->in_tx);
	CHECK_EQ(smtp_client_msg_result(s.c)->rcpt[0].code, 0);
	free(big);
	sess_free(&s);
}

/* Result texts and cmd fields for the caller's classifier. */
static void
test_result_fields(void)
{
	struct sess s;
	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	const char *kw[] = { "SIZE 1000", "ENHANCEDSTATUSCODES" };
	sess_ready(&s, kw, 2);
	expect_out(&s, "");
	const char *rcpts[] = { "a@example.test", "b@example.test" };
	struct smtp_client_msg m = { .sender = "s@x.test", .rcpts = rcpts,
				     .nrcpts = 2, .size = 5000 };
	/* B13 */
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_MSG_DONE);
	expect_out(&s, "");
	const struct smtp_client_msg_result *mr = smtp_client_msg_result(s.c);
	CHECK_EQ(mr->nrcpts, 2);
	for (size_t i = 0; i < 2; i++) {
		CHECK_EQ(mr->rcpt[i].code, 552);
		CHECK_STR_EQ(mr->rcpt[i].enh, "5.3.4");
		CHECK_STR_EQ(mr->rcpt[i].text, "message size exceeds server limit");
		CHECK_STR_EQ(mr->rcpt[i].cmd, "MAIL");
	}
	CHECK_STR_EQ(mr->msg.cmd, "MAIL");
	/* SMTPUTF8 refusal text. */
	m.size = 10;
	m.smtputf8 = true;
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_MSG_DONE);
	CHECK_STR_EQ(mr->rcpt[1].text,
		     "SMTPUTF8 is required, but was not offered by host");
	CHECK_EQ(mr->rcpt[1].code, 553);
	/* A normal transaction: RCPT, then end-of-data texts. */
	m.smtputf8 = false;
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_WAIT);
	expect_out(&s, "MAIL FROM:<s@x.test> SIZE=10\r\n");
	CHECK_EQ(line(&s, "250 2.1.0 ok"), CLI_WAIT);
	CHECK_EQ(line(&s, "550-5.1.1 no such"), CLI_WAIT);
	CHECK_EQ(line(&s, "550 5.1.1 user"), CLI_WAIT);
	CHECK_EQ(line(&s, "250 2.1.5 ok"), CLI_WAIT);
	CHECK_EQ(line(&s, "354 go"), CLI_NEED_BODY);
	expect_out(&s, "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
		       "DATA\r\n");
	CHECK_EQ(smtp_client_body_done(s.c), CLI_WAIT);
	CHECK_EQ(line(&s, "250 2.0.0 Ok: queued as 4XyZ"), CLI_MSG_DONE);
	CHECK_STR_EQ(mr->rcpt[0].text, "5.1.1 no such\n5.1.1 user");
	CHECK_STR_EQ(mr->rcpt[0].cmd, "RCPT");
	CHECK_STR_EQ(mr->rcpt[1].text, "2.0.0 Ok: queued as 4XyZ");
	CHECK_STR_EQ(mr->rcpt[1].cmd, ".");
	CHECK_STR_EQ(mr->msg.text, "2.0.0 Ok: queued as 4XyZ");
	CHECK_EQ(mr->msg.code, 250);
	sess_free(&s);
}

/* Calls in the wrong state fail the session instead of misbehaving. */
static void
test_misuse(void)
{
	struct sess s;
	const char *rcpts[] = { "a@example.test" };
	struct smtp_client_msg m = { .sender = "", .rcpts = rcpts, .nrcpts = 1 };

	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_FAIL);
	CHECK_STR_EQ(smtp_client_failure(s.c)->r.enh, "4.3.0");
	CHECK_EQ(smtp_client_start(s.c), CLI_FAIL);
	sess_free(&s);

	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	CHECK_EQ(smtp_client_start(s.c), CLI_WAIT);
	CHECK_EQ(smtp_client_tls_done(s.c, true, NULL), CLI_FAIL);
	sess_free(&s);

	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	CHECK_EQ(smtp_client_start(s.c), CLI_WAIT);
	CHECK_EQ(smtp_client_body_done(s.c), CLI_FAIL);
	sess_free(&s);

	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	CHECK_EQ(smtp_client_quit(s.c), CLI_FAIL);
	sess_free(&s);

	/* No helo configured: "localhost"; a bad one fails at start. */
	struct smtp_client_cfg cfg = { .tls = CLI_TLS_NONE };
	struct smtp_client *c = smtp_client_new(&cfg);
	CHECK(c != NULL);
	CHECK_EQ(smtp_client_start(c), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "220 x", 5), CLI_WAIT);
	CHECK_STR_EQ(smtp_client_out(c)->data, "EHLO localhost\r\n");
	smtp_client_free(c);
	cfg.helo = "bad name\r\nRSET";
	c = smtp_client_new(&cfg);
	CHECK(c != NULL);
	CHECK_EQ(smtp_client_start(c), CLI_FAIL);
	CHECK_STR_EQ(smtp_client_failure(c)->r.enh, "4.3.5");
	CHECK(smtp_client_out(c)->len == 0);
	smtp_client_free(c);
	smtp_client_free(NULL);
}

/* 1000 pipelined recipients in one group. */
static void
test_many_rcpts(void)
{
	enum { N = 1000 };
	static char addrs[N][32];
	static const char *rcpts[N];
	for (int i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "r%d@example.test", i);
		rcpts[i] = addrs[i];
	}
	struct sess s;
	sess_new(&s, CLI_TLS_NONE, NULL, NULL);
	const char *kw[] = { "PIPELINING" };
	sess_ready(&s, kw, 1);
	expect_out(&s, "");
	struct smtp_client_msg m = { .sender = "s@x.test", .rcpts = rcpts,
				     .nrcpts = N, .size = 1 };
	CHECK_EQ(smtp_client_send_msg(s.c, &m), CLI_WAIT);
	struct buf *o = smtp_client_out(s.c);
	size_t lines = 0;
	for (size_t i = 0; i < o->len; i++)
		lines += o->data[i] == '\n';
	CHECK_EQ(lines, N + 2);
	buf_reset(o);
	CHECK_EQ(line(&s, "250 ok"), CLI_WAIT);
	for (int i = 0; i < N; i++)
		CHECK_EQ(line(&s, i % 2 ? "452 4.5.3 too many" : "250 ok"), CLI_WAIT);
	CHECK_EQ(line(&s, "354 go"), CLI_NEED_BODY);
	CHECK_EQ(smtp_client_body_done(s.c), CLI_WAIT);
	CHECK_EQ(line(&s, "250 ok"), CLI_MSG_DONE);
	const struct smtp_client_msg_result *mr = smtp_client_msg_result(s.c);
	CHECK_EQ(mr->nrcpts, N);
	for (int i = 0; i < N; i++)
		CHECK_EQ(mr->rcpt[i].code, i % 2 ? 452 : 250);
	sess_free(&s);
}

/*
 * Random servers: whatever the replies, no crash, no bare CR/LF on the
 * wire, FAIL/CLOSED are sticky, and a recipient is 2xx at MSG_DONE only
 * with the end-of-data reply (cmd ".").
 */
static void
test_random_servers(void)
{
	static const char *const replies[] = {
		"220 mx", "250 ok", "250-PIPELINING", "250-SIZE 50", "250-AUTH PLAIN",
		"250-STARTTLS", "250-AUTH LOGIN", "334 VXNlcm5hbWU6", "334 !!", "354 go",
		"235 ok", "421 bye", "450 busy", "550 no", "503 seq", "25O x",
		"250-ok", "2500", "221 bye", "354", "250 2.0.0 fine", "334 ",
	};
	const size_t nrep = sizeof(replies) / sizeof(replies[0]);
	const char *rcpts[] = { "a@example.test", "b@example.test", "c@x.test" };
	for (int round = 0; round < 300; round++) {
		struct sess s;
		sess_new(&s, (enum smtp_client_tls)(check_rng() % 3),
			 check_rng() % 2 ? "user" : NULL, "pw-random-1");
		s.cfg.tls_required = check_rng() % 2;
		enum smtp_client_event ev = smtp_client_start(s.c);
		bool sticky = false;
		enum smtp_client_event last = CLI_WAIT;
		for (int step = 0; step < 60; step++) {
			struct buf *o = smtp_client_out(s.c);
			for (size_t i = 0; i < o->len; i++) {
				if (o->data[i] == '\n')
					CHECK(i > 0 && o->data[i - 1] == '\r');
				if (o->data[i] == '\r')
					CHECK(i + 1 < o->len && o->data[i + 1] == '\n');
			}
			buf_reset(o);
			if (sticky)
				CHECK_EQ(ev, last);
			if (ev == CLI_FAIL || ev == CLI_CLOSED) {
				sticky = true;
				last = ev;
			}
			if (ev == CLI_MSG_DONE) {
				const struct smtp_client_msg_result *mr =
					smtp_client_msg_result(s.c);
				for (size_t i = 0; i < mr->nrcpts; i++)
					if (mr->rcpt[i].code / 100 == 2)
						CHECK_STR_EQ(mr->rcpt[i].cmd, ".");
			}
			uint32_t pick = check_rng() % 10;
			if (ev == CLI_NEED_TLS && pick < 8) {
				ev = smtp_client_tls_done(s.c, pick < 6, "x");
			} else if (ev == CLI_NEED_BODY && pick < 8) {
				ev = smtp_client_body_done(s.c);
			} else if ((ev == CLI_READY || ev == CLI_MSG_DONE) && pick < 7) {
				struct smtp_client_msg m = {
					.sender = "s@x.test", .rcpts = rcpts,
					.nrcpts = 1 + check_rng() % 3, .size = check_rng() % 100,
					.body_8bit = check_rng() % 2,
				};
				ev = smtp_client_send_msg(s.c, &m);
			} else if ((ev == CLI_READY || ev == CLI_MSG_DONE) && pick < 8) {
				ev = smtp_client_quit(s.c);
			} else if (pick == 9 && check_rng() % 4 == 0) {
				ev = smtp_client_abort(s.c, "4.4.2", "timeout");
			} else {
				ev = line(&s, replies[check_rng() % nrep]);
			}
			CHECK(smtp_client_timeout_ms(s.c) <= 600000);
		}
		const char *log = s.log.data ? s.log.data : "";
		CHECK(strstr(log, "pw-random-1") == NULL);
		CHECK(strstr(log, "cHctcmFuZG9tLTE=") == NULL);
		sess_free(&s);
	}
}

/* No trace hook at all is fine. */
static void
test_no_log(void)
{
	struct smtp_client_cfg cfg = { .helo = "h.test", .tls = CLI_TLS_STARTTLS };
	struct smtp_client *c = smtp_client_new(&cfg);
	CHECK(c != NULL);
	CHECK_EQ(smtp_client_start(c), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "220 x", 5), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "250-x", 5), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "250 STARTTLS", 12), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "220 go", 6), CLI_NEED_TLS);
	CHECK_EQ(smtp_client_tls_done(c, true, NULL), CLI_WAIT);
	CHECK_EQ(smtp_client_on_line(c, "250 x", 5), CLI_READY);
	CHECK_STR_EQ(smtp_client_out(c)->data,
		     "EHLO h.test\r\nSTARTTLS\r\nEHLO h.test\r\n");
	CHECK_EQ(smtp_client_ext(c), 0);
	smtp_client_free(c);
}

int
main(void)
{
	test_transcripts();
	test_auth_huge_challenge();
	test_reply_floods();
	test_result_fields();
	test_misuse();
	test_many_rcpts();
	test_random_servers();
	test_no_log();
	CHECK_DONE();
}
