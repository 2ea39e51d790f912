/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The outbound SMTP session as a pure state machine (OpenSMTPD
 *	smtp_client.c, curl smtp.c). Inputs are reply lines and completion
 *	events from the glue; outputs are command bytes appended to c->out
 *	and an event naming what the glue must do next. No I/O, no clock.
 *
 *	Session: greeting -> EHLO (HELO on 5xx) -> [STARTTLS -> tls -> EHLO]
 *	-> [AUTH, smtp_client_auth.c] -> ready. Per message: [RSET] MAIL,
 *	RCPT..., DATA (one group under PIPELINING, replies matched in order),
 *	body by the glue, end-of-data reply, then ready again.
 *
 *	Invariants:
 *	- smtp_client_enter() is the only writer of c->state and traces
 *	  every transition.
 *	- Capabilities come only from the last complete EHLO reply; TLS
 *	  wipes them (RFC 3207 4.2).
 *	- A reply line when none is due (pipelined trailing data, junk
 *	  during a handshake) fails the session: nothing the server sends
 *	  ahead of time is acted upon.
 *	- A recipient's result is 2xx only when the end of data got 2xx.
 *	- After CLI_FAIL or CLI_CLOSED every call returns the same event
 *	  and does nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/str.h"
#include "smtp_client_priv.h"

#define CLI_OUT_MAX (4u << 20)

static const char *const cli_state_names[CS_COUNT] = {
	[CS_INIT] = "init",
	[CS_TLS] = "tls",
	[CS_GREETING] = "greeting",
	[CS_EHLO] = "ehlo",
	[CS_HELO] = "helo",
	[CS_STARTTLS] = "starttls",
	[CS_AUTH] = "auth",
	[CS_AUTH_CANCEL] = "auth-cancel",
	[CS_READY] = "ready",
	[CS_RSET] = "rset",
	[CS_MAIL] = "mail",
	[CS_RCPT] = "rcpt",
	[CS_DATA] = "data",
	[CS_BODY] = "body",
	[CS_DATA_END] = "data-end",
	[CS_QUIT] = "quit",
	[CS_CLOSED] = "closed",
	[CS_FAILED] = "failed",
};

/* The command a reply in each state answers (smtp_client_result.cmd). */
static const char *const cli_state_cmds[CS_COUNT] = {
	[CS_INIT] = "CONNECT",
	[CS_TLS] = "TLS",
	[CS_GREETING] = "CONNECT",
	[CS_EHLO] = "EHLO",
	[CS_HELO] = "HELO",
	[CS_STARTTLS] = "STARTTLS",
	[CS_AUTH] = "AUTH",
	[CS_AUTH_CANCEL] = "AUTH",
	[CS_READY] = "",
	[CS_RSET] = "RSET",
	[CS_MAIL] = "MAIL",
	[CS_RCPT] = "RCPT",
	[CS_DATA] = "DATA",
	[CS_BODY] = ".",
	[CS_DATA_END] = ".",
	[CS_QUIT] = "QUIT",
	[CS_CLOSED] = "",
	[CS_FAILED] = "",
};

/* RFC 5321 4.5.3.2 and RELIABILITY.md 4.2, in milliseconds. */
static const uint64_t cli_state_timeouts[CS_COUNT] = {
	[CS_INIT] = 300000,
	[CS_TLS] = 300000,
	[CS_GREETING] = 300000,
	[CS_EHLO] = 300000,
	[CS_HELO] = 300000,
	[CS_STARTTLS] = 300000,
	[CS_AUTH] = 300000,
	[CS_AUTH_CANCEL] = 300000,
	[CS_READY] = 300000,
	[CS_RSET] = 300000,
	[CS_MAIL] = 300000,
	[CS_RCPT] = 300000,
	[CS_DATA] = 120000,
	[CS_BODY] = 180000,
	[CS_DATA_END] = 600000,
	[CS_QUIT] = 300000,
	[CS_CLOSED] = 0,
	[CS_FAILED] = 0,
};

/* ---- state, trace, output ---------------------------------------- */

void
smtp_client_trace(struct smtp_client *c, const char *fmt, ...)
{
	if (c->log == NULL)
		return;
	char msg[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->log(c->log_arg, msg);
}

void
smtp_client_enter(struct smtp_client *c, enum cli_state s)
{
	if (c->state != s)
		smtp_client_trace(c, "state %s -> %s",
				  cli_state_names[c->state],
				  cli_state_names[s]);
	c->state = s;
}

void
smtp_client_send(struct smtp_client *c, const char *shown, const char *fmt, ...)
{
	char line[SMTP_CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		c->oom = true;
		return;
	}
	line[n] = '\r';
	line[n + 1] = '\n';
	if (buf_append(&c->out, line, (size_t)n + 2) < 0) {
		c->oom = true;
		return;
	}
	line[n] = '\0';
	smtp_client_trace(c, "> %s", shown ? shown : line);
}

void
smtp_client_result_set(struct smtp_client_result *res, int code,
		       const char *enh, const char *text, const char *cmd)
{
	res->code = code;
	str_copy(res->enh, sizeof(res->enh), enh ? enh : "");
	str_copy(res->text, sizeof(res->text), text ? text : "");
	res->cmd = cmd;
}

void
smtp_client_result_reply(struct smtp_client_result *res,
			 const struct smtp_reply *r, const char *cmd)
{
	smtp_client_result_set(res, r->code, r->enh, r->text, cmd);
}

/* ---- failure ------------------------------------------------------- */

/* Recipients without a final refusal take the session failure (in_tx). */
static void
tx_fail_pending(struct smtp_client *c, const struct smtp_client_result *f)
{
	for (size_t i = 0; i < c->res.nrcpts; i++) {
		struct smtp_client_result *rr = &c->res.rcpt[i];
		if (rr->code == 0 || rr->code / 100 == 2)
			*rr = *f;
	}
	c->res.msg = *f;
}

enum smtp_client_event
smtp_client_fail(struct smtp_client *c, int code, const char *enh,
		 const char *text, const char *cmd)
{
	struct smtp_client_failure *f = &c->fail;
	memset(f, 0, sizeof(*f));
	smtp_client_result_set(&f->r, code, enh, text,
			       cmd ? cmd : cli_state_cmds[c->state]);
	bool body = c->tx_active && !c->tx.abandoned;
	f->in_data = body && (c->state == CS_BODY || c->state == CS_DATA_END);
	f->after_dot = body && c->state == CS_DATA_END;
	f->state = cli_state_names[c->state];
	if (c->tx_active) {
		f->in_tx = true;
		tx_fail_pending(c, &f->r);
		c->tx_active = false;
	}
	if (c->oom)
		buf_reset(&c->out);
	smtp_client_trace(c, "failed in %s: %d %s %s%s",
			  cli_state_names[c->state], code, f->r.enh, f->r.text,
			  f->after_dot ? " (possible duplicate)" : "");
	smtp_client_enter(c, CS_FAILED);
	return CLI_FAIL;
}

enum smtp_client_event
smtp_client_fail_reply(struct smtp_client *c, const struct smtp_reply *r,
		       const char *prefix, const char *cmd)
{
	char text[SMTP_REPLY_TEXT_MAX];
	snprintf(text, sizeof(text), "%s%s", prefix ? prefix : "", r->text);
	return smtp_client_fail(c, r->code, r->enh, text, cmd);
}

/* A complete, well-formed reply that makes no sense in this state. */
enum smtp_client_event
smtp_client_fail_protocol(struct smtp_client *c, const struct smtp_reply *r)
{
	char sum[256], text[320];
	smtp_reply_summary(r, sum, sizeof(sum));
	snprintf(text, sizeof(text), "unexpected reply to %s: %s",
		 cli_state_cmds[c->state], sum);
	return smtp_client_fail(c, 0, "4.5.0", text, NULL);
}

enum smtp_client_event
smtp_client_internal(struct smtp_client *c, const char *what)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	char text[128];
	snprintf(text, sizeof(text), "internal error: %s in state %s", what,
		 cli_state_names[c->state]);
	return smtp_client_fail(c, 0, "4.3.0", text, NULL);
}

/* Every public entry point ends here: an output overflow fails the call. */
enum smtp_client_event
smtp_client_check(struct smtp_client *c, enum smtp_client_event ev)
{
	if (c->oom && c->state != CS_FAILED)
		return smtp_client_fail(c, 0, "4.3.0",
					"internal error: command too long",
					NULL);
	return ev;
}

/* ---- lifecycle ------------------------------------------------------ */

char *
smtp_client_strdup(const char *s)
{
	return str_ndup(s ? s : "", s ? strlen(s) : 0);
}

struct smtp_client *
smtp_client_new(const struct smtp_client_cfg *cfg)
{
	struct smtp_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->helo = smtp_client_strdup(cfg->helo && cfg->helo[0] ? cfg->helo
							       : "localhost");
	c->user = smtp_client_strdup(cfg->user);
	c->password = smtp_client_strdup(cfg->password);
	if (c->helo == NULL || c->user == NULL || c->password == NULL) {
		smtp_client_free(c);
		return NULL;
	}
	c->tls = cfg->tls;
	c->tls_required = cfg->tls_required;
	c->log = cfg->log;
	c->log_arg = cfg->log_arg;
	buf_init(&c->out, CLI_OUT_MAX);
	buf_init(&c->chal, SMTP_AUTH_LINE_MAX);
	smtp_reply_init(&c->reply);
	c->res.msg.cmd = c->fail.r.cmd = "";
	return c;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	smtp_client_auth_wipe(c);
	smtp_client_tx_free(c);
	free(c->helo);
	free(c);
}

struct buf *
smtp_client_out(struct smtp_client *c)
{
	return &c->out;
}

unsigned
smtp_client_ext(const struct smtp_client *c)
{
	return c->ext;
}

uint64_t
smtp_client_size_limit(const struct smtp_client *c)
{
	return c->size_limit;
}

const struct smtp_client_msg_result *
smtp_client_msg_result(const struct smtp_client *c)
{
	return &c->res;
}

const struct smtp_client_failure *
smtp_client_failure(const struct smtp_client *c)
{
	return &c->fail;
}

const char *
smtp_client_state_name(const struct smtp_client *c)
{
	return cli_state_names[c->state];
}

uint64_t
smtp_client_timeout_ms(const struct smtp_client *c)
{
	return cli_state_timeouts[c->state];
}

/* ---- session setup ---------------------------------------------------- */

static bool
helo_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > HOSTNAME_MAX + 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return false;
	return true;
}

static enum smtp_client_event
client_send_ehlo(struct smtp_client *c)
{
	c->ehlo_ext = 0;
	c->ehlo_size = 0;
	smtp_client_send(c, NULL, "EHLO %s", c->helo);
	smtp_client_enter(c, CS_EHLO);
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_start(struct smtp_client *c)
{
	if (c->state != CS_INIT)
		return smtp_client_internal(c, "start");
	if (!helo_name_ok(c->helo))
		return smtp_client_fail(c, 0, "4.3.5",
					"invalid helo name in configuration",
					NULL);
	if (c->tls == CLI_TLS_IMPLICIT) {
		smtp_client_enter(c, CS_TLS);
		return CLI_NEED_TLS;
	}
	smtp_client_enter(c, CS_GREETING);
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_ready(struct smtp_client *c)
{
	smtp_client_trace(c, "ready ext=0x%x size=%llu tls=%d", c->ext,
			  (unsigned long long)c->size_limit,
			  (int)c->tls_active);
	smtp_client_enter(c, CS_READY);
	return CLI_READY;
}

static enum smtp_client_event
client_tls_failed(struct smtp_client *c, const char *why)
{
	char text[SMTP_REPLY_TEXT_MAX];
	snprintf(text, sizeof(text), "Cannot start TLS: handshake failure: %.1900s",
		 why);
	enum smtp_client_event ev =
		smtp_client_fail(c, 0, "4.7.5", text, "TLS");
	c->fail.tls_failed = c->tls == CLI_TLS_STARTTLS && !c->tls_required;
	return ev;
}

static enum smtp_client_event
client_tls_missing(struct smtp_client *c)
{
	return smtp_client_fail(c, 0, "4.7.4",
				"TLS is required, but was not offered by host",
				"STARTTLS");
}

/* After a successful EHLO or HELO: STARTTLS, AUTH or ready. */
static enum smtp_client_event
client_after_hello(struct smtp_client *c)
{
	if (c->tls == CLI_TLS_STARTTLS && !c->tls_active) {
		if (c->ext & EXT_STARTTLS) {
			smtp_client_send(c, NULL, "STARTTLS");
			smtp_client_enter(c, CS_STARTTLS);
			return CLI_WAIT;
		}
		if (c->tls_required)
			return client_tls_missing(c);
		smtp_client_trace(
			c, "STARTTLS not offered: continuing unencrypted");
	}
	if (c->user[0] != '\0')
		return smtp_client_auth_start(c);
	return smtp_client_ready(c);
}

/* EHLO keyword table (OpenSMTPD smtp_client_readline). */
static const struct {
	const char *kw;
	unsigned bit;
} cli_keywords[] = {
	{ "STARTTLS", EXT_STARTTLS },
	{ "PIPELINING", EXT_PIPELINING },
	{ "SIZE", EXT_SIZE },
	{ "8BITMIME", EXT_8BITMIME },
	{ "SMTPUTF8", EXT_SMTPUTF8 },
	{ "AUTH", EXT_AUTH },
	{ "ENHANCEDSTATUSCODES", EXT_ENHANCEDSTATUSCODES },
	{ "DSN", EXT_DSN },
};

static bool
word_is(const char *p, size_t n, const char *w)
{
	return n == strlen(w) && str_prefix_ci(p, n, w);
}

/* "AUTH PLAIN LOGIN" or the old "AUTH=PLAIN LOGIN": mechanism bits. */
static unsigned
ehlo_auth_mechs(const char *p, size_t n)
{
	unsigned bits = 0;
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		size_t k = i;
		while (k < n && p[k] != ' ')
			k++;
		if (word_is(p + i, k - i, "PLAIN"))
			bits |= EXT_AUTH_PLAIN;
		else if (word_is(p + i, k - i, "LOGIN"))
			bits |= EXT_AUTH_LOGIN;
		i = k;
	}
	return bits;
}

/* One EHLO keyword line (the text after "250-"). */
static void
ehlo_keyword(struct smtp_client *c, const char *p, size_t n)
{
	size_t w = 0;
	while (w < n && p[w] != ' ' && p[w] != '=')
		w++;
	const char *arg = w < n ? p + w + 1 : "";
	size_t alen = w < n ? n - w - 1 : 0;
	for (size_t i = 0; i < sizeof(cli_keywords) / sizeof(cli_keywords[0]);
	     i++) {
		if (!word_is(p, w, cli_keywords[i].kw))
			continue;
		/* Only AUTH has the "=" form. */
		if (w < n && p[w] == '=' && cli_keywords[i].bit != EXT_AUTH)
			return;
		c->ehlo_ext |= cli_keywords[i].bit;
		if (cli_keywords[i].bit == EXT_AUTH)
			c->ehlo_ext |= ehlo_auth_mechs(arg, alen);
		if (cli_keywords[i].bit == EXT_SIZE) {
			uint64_t v = 0;
			while (alen > 0 && arg[alen - 1] == ' ')
				alen--;
			if (str_nto_u64(arg, alen, 0, UINT64_MAX, &v) == 0)
				c->ehlo_size = v;
		}
		return;
	}
}

static enum smtp_client_event
client_on_greeting(struct smtp_client *c, const struct smtp_reply *r)
{
	if (reply_is(r, 2))
		return client_send_ehlo(c);
	/* B3: a refusal greeting is never permanent (smtp_skip_5xx_greeting). */
	if (reply_failed(r))
		return smtp_client_fail_reply(c, r, NULL, NULL);
	return smtp_client_fail_protocol(c, r);
}

static enum smtp_client_event
client_on_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
	if (reply_is(r, 2)) {
		c->ext = c->ehlo_ext;
		c->size_limit = (c->ext & EXT_SIZE) ? c->ehlo_size : 0;
		return client_after_hello(c);
	}
	if (reply_is(r, 5)) {
		/* B4: HELO has no extensions, so no STARTTLS either. */
		if (c->tls == CLI_TLS_STARTTLS && c->tls_required &&
		    !c->tls_active)
			return client_tls_missing(c);
		smtp_client_send(c, NULL, "HELO %s", c->helo);
		smtp_client_enter(c, CS_HELO);
		return CLI_WAIT;
	}
	if (reply_failed(r))
		return smtp_client_fail_reply(c, r, NULL, NULL);
	return smtp_client_fail_protocol(c, r);
}

static enum smtp_client_event
client_on_helo(struct smtp_client *c, const struct smtp_reply *r)
{
	if (reply_is(r, 2)) {
		c->ext = 0;
		c->size_limit = 0;
		return client_after_hello(c);
	}
	if (reply_failed(r))
		return smtp_client_fail_reply(c, r, NULL, NULL);
	return smtp_client_fail_protocol(c, r);
}

static enum smtp_client_event
client_on_starttls(struct smtp_client *c, const struct smtp_reply *r)
{
	if (reply_is(r, 2)) {
		smtp_client_enter(c, CS_TLS);
		return CLI_NEED_TLS;
	}
	if (reply_failed(r)) {
		char sum[SMTP_REPLY_TEXT_MAX];
		smtp_reply_summary(r, sum, sizeof(sum));
		return client_tls_failed(c, sum);
	}
	return smtp_client_fail_protocol(c, r);
}

enum smtp_client_event
smtp_client_tls_done(struct smtp_client *c, bool ok, const char *text)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	if (c->state != CS_TLS)
		return smtp_client_internal(c, "tls_done");
	if (!ok)
		return client_tls_failed(c, text && text[0] ? text
							    : "unknown error");
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	c->tls_active = true;
	c->ext = 0;
	c->size_limit = 0;
	smtp_client_trace(c, "TLS established");
	if (c->tls == CLI_TLS_IMPLICIT) {
		smtp_client_enter(c, CS_GREETING);
		return CLI_WAIT;
	}
	return smtp_client_check(c, client_send_ehlo(c));
}

enum smtp_client_event
smtp_client_quit(struct smtp_client *c)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	if (c->state == CS_CLOSED)
		return CLI_CLOSED;
	if (c->state != CS_READY)
		return smtp_client_internal(c, "quit");
	smtp_client_send(c, NULL, "QUIT");
	smtp_client_enter(c, CS_QUIT);
	return smtp_client_check(c, CLI_WAIT);
}

enum smtp_client_event
smtp_client_abort(struct smtp_client *c, const char *enh, const char *text)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	if (c->state == CS_CLOSED || c->state == CS_QUIT) {
		smtp_client_enter(c, CS_CLOSED);
		return CLI_CLOSED;
	}
	return smtp_client_fail(c, 0, enh && enh[0] ? enh : "4.4.2",
				text && text[0] ? text : "connection aborted",
				NULL);
}

/* ---- reply dispatch ---------------------------------------------------- */

static bool
client_waiting(const struct smtp_client *c)
{
	switch (c->state) {
	case CS_INIT:
	case CS_TLS:
	case CS_READY:
	case CS_BODY:
	case CS_CLOSED:
	case CS_FAILED:
		return false;
	default:
		return true;
	}
}

static enum smtp_client_event
client_dispatch(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code == 421 && c->state != CS_QUIT)
		return smtp_client_fail_reply(c, r, NULL, NULL);
	switch (c->state) {
	case CS_GREETING:
		return client_on_greeting(c, r);
	case CS_EHLO:
		return client_on_ehlo(c, r);
	case CS_HELO:
		return client_on_helo(c, r);
	case CS_STARTTLS:
		return client_on_starttls(c, r);
	case CS_AUTH:
	case CS_AUTH_CANCEL:
		return smtp_client_auth_reply(c, r);
	case CS_RSET:
	case CS_MAIL:
	case CS_RCPT:
	case CS_DATA:
	case CS_DATA_END:
		return smtp_client_tx_reply(c, r);
	case CS_QUIT:
		smtp_client_enter(c, CS_CLOSED);
		return CLI_CLOSED;
	default:
		return smtp_client_internal(c, "reply dispatch");
	}
}

/* Unsolicited bytes: acting on them is how response injection works (F2). */
static enum smtp_client_event
client_unexpected(struct smtp_client *c, const char *line, size_t len)
{
	char shown[128], text[256];
	str_sanitize(shown, sizeof(shown), line, len);
	snprintf(text, sizeof(text),
		 "unexpected data from server in state %s: %s",
		 cli_state_names[c->state], shown);
	return smtp_client_fail(c, 0, "4.5.0", text, NULL);
}

static enum smtp_client_event
client_malformed(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->state == CS_QUIT) {
		smtp_client_enter(c, CS_CLOSED);
		return CLI_CLOSED;
	}
	if (c->state == CS_AUTH)
		return smtp_client_auth_malformed(c, r);
	char text[SMTP_REPLY_TEXT_MAX];
	snprintf(text, sizeof(text), "malformed reply from server: %.1900s",
		 r->text);
	return smtp_client_fail(c, 0, "4.5.0", text, NULL);
}

enum smtp_client_event
smtp_client_on_line(struct smtp_client *c, const char *line, size_t len)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	if (c->state == CS_CLOSED)
		return CLI_CLOSED;
	char shown[256];
	str_sanitize(shown, sizeof(shown), line, line ? len : 0);
	smtp_client_trace(c, "< %s", shown);
	if (line == NULL)
		len = 0;
	if (!client_waiting(c))
		return client_unexpected(c, line, len);
	if (c->state == CS_AUTH && c->reply.nlines == 0)
		smtp_client_auth_line(c, line, len);
	enum smtp_reply_status st = smtp_reply_feed(&c->reply, line, len);
	if (st != REPLY_ERROR && c->state == CS_EHLO && c->reply.nlines > 1 &&
	    len > 4)
		ehlo_keyword(c, line + 4, len - 4);
	if (st == REPLY_MORE)
		return CLI_WAIT;
	struct smtp_reply r = c->reply;
	smtp_reply_init(&c->reply);
	enum smtp_client_event ev = st == REPLY_ERROR ? client_malformed(c, &r)
						      : client_dispatch(c, &r);
	return smtp_client_check(c, ev);
}
