/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	SMTP AUTH for the outbound client (RFC 4954): PLAIN with an initial
 *	response (RFC 4616), else LOGIN. Rules:
 *	- Only inside TLS (F9, Postfix smtp_sasl_security_options =
 *	  noplaintext); otherwise the session fails 4.7.0 before any AUTH.
 *	- Server challenges are decoded strictly; a malformed, overlong
 *	  (> SMTP_AUTH_LINE_MAX) or unexpected one is answered with "*" to
 *	  cancel, and the session fails 4.7.0 once that is answered (F10).
 *	- A refusal (535 and friends) fails the session with the server's
 *	  code, never permanently (Postfix smtp_sasl_auth_soft_bounce).
 *	- Secrets never reach the trace ("AUTH PLAIN <redacted>"); every
 *	  buffer that held them is wiped before it is freed (F11).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/b64.h"
#include "outbox/str.h"
#include "smtp_client_priv.h"

static void
auth_buf_wipe(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

static void
auth_str_wipe(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void
smtp_client_auth_wipe(struct smtp_client *c)
{
	auth_str_wipe(c->user);
	auth_str_wipe(c->password);
	c->user = c->password = NULL;
	/* out held the encoded credentials on their way to the socket. */
	auth_buf_wipe(&c->out);
	auth_buf_wipe(&c->chal);
}

static enum smtp_client_event
auth_fail(struct smtp_client *c, const char *text)
{
	return smtp_client_fail(c, 0, "4.7.0", text, "AUTH");
}

/*
 * Append "prefix" + base64(raw) + CRLF to out in one reservation, so no
 * realloc leaves a copy of the secret behind in freed memory.
 */
static bool
auth_send_secret(struct smtp_client *c, const char *prefix,
		 const struct buf *raw)
{
	size_t plen = strlen(prefix);
	size_t blen = (raw->len + 2) / 3 * 4;
	if (blen > SMTP_AUTH_LINE_MAX)
		return false;
	if (buf_reserve(&c->out, plen + blen + 2) < 0) {
		c->oom = true;
		return true;
	}
	if (buf_append(&c->out, prefix, plen) < 0 ||
	    b64_encode(raw->data ? raw->data : "", raw->len, &c->out) < 0 ||
	    buf_append(&c->out, "\r\n", 2) < 0)
		c->oom = true;
	return true;
}

static enum smtp_client_event
auth_plain(struct smtp_client *c)
{
	struct buf raw;
	buf_init(&raw, SMTP_AUTH_LINE_MAX);
	bool ok = buf_append(&raw, "", 1) == 0 &&
		  buf_puts(&raw, c->user) == 0 &&
		  buf_append(&raw, "", 1) == 0 &&
		  buf_puts(&raw, c->password) == 0 &&
		  auth_send_secret(c, "AUTH PLAIN ", &raw);
	auth_buf_wipe(&raw);
	if (!ok)
		return auth_fail(c, "credentials too long for AUTH");
	smtp_client_trace(c, "> AUTH PLAIN <redacted>");
	c->mech = MECH_PLAIN;
	smtp_client_enter(c, CS_AUTH);
	return CLI_WAIT;
}

static enum smtp_client_event
auth_login(struct smtp_client *c)
{
	c->mech = MECH_LOGIN;
	c->login_step = 0;
	smtp_client_send(c, NULL, "AUTH LOGIN");
	smtp_client_enter(c, CS_AUTH);
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_auth_start(struct smtp_client *c)
{
	if (!c->tls_active)
		return auth_fail(c, "refusing to authenticate over an "
				    "unencrypted connection");
	if (!(c->ext & EXT_AUTH))
		return auth_fail(c, "server does not offer AUTH");
	if (c->ext & EXT_AUTH_PLAIN)
		return auth_plain(c);
	if (c->ext & EXT_AUTH_LOGIN)
		return auth_login(c);
	return auth_fail(c, "server offers no supported AUTH mechanism "
			    "(PLAIN, LOGIN)");
}

/* Keep the raw base64 of a "334 " line: the parsed text is capped. */
void
smtp_client_auth_line(struct smtp_client *c, const char *line, size_t len)
{
	buf_reset(&c->chal);
	c->chal_bad = false;
	if (c->mech != MECH_LOGIN || len < 4 || memcmp(line, "334 ", 4) != 0)
		return;
	if (buf_append(&c->chal, line + 4, len - 4) < 0)
		c->chal_bad = true;
}

/* Cancel the exchange with "*" (RFC 4954 4); fail once it is answered. */
static enum smtp_client_event
auth_cancel(struct smtp_client *c, const char *why)
{
	str_copy(c->cancel_why, sizeof(c->cancel_why), why);
	smtp_client_send(c, NULL, "*");
	smtp_client_enter(c, CS_AUTH_CANCEL);
	return CLI_WAIT;
}

/* LOGIN: answer "Username:" then "Password:" (by order, as servers vary). */
static enum smtp_client_event
auth_login_challenge(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->mech != MECH_LOGIN || c->login_step >= 2 || r->nlines != 1)
		return auth_cancel(c, "unexpected AUTH challenge");
	if (c->chal_bad)
		return auth_cancel(c, "AUTH challenge too long");
	struct buf dec;
	buf_init(&dec, SMTP_AUTH_LINE_MAX);
	int rc =
		b64_decode(c->chal.data ? c->chal.data : "", c->chal.len, &dec);
	buf_free(&dec);
	if (rc < 0)
		return auth_cancel(c, "malformed AUTH challenge (not base64)");
	const char *secret = c->login_step == 0 ? c->user : c->password;
	struct buf raw = {.data = (char *)secret, .len = strlen(secret)};
	if (!auth_send_secret(c, "", &raw))
		return auth_cancel(c, "credentials too long for AUTH");
	smtp_client_trace(c, "> <redacted>");
	c->login_step++;
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->state == CS_AUTH_CANCEL)
		return auth_fail(c, c->cancel_why);
	if (reply_is(r, 2)) {
		smtp_client_trace(c, "authenticated");
		return smtp_client_ready(c);
	}
	if (r->code == 334)
		return auth_login_challenge(c, r);
	if (reply_failed(r))
		return smtp_client_fail_reply(
			c, r, "authentication failed: ", "AUTH");
	return smtp_client_fail_protocol(c, r);
}

enum smtp_client_event
smtp_client_auth_malformed(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->mech == MECH_LOGIN) {
		char why[sizeof(c->cancel_why)];
		snprintf(why, sizeof(why), "malformed AUTH challenge: %.120s",
			 r->text);
		return auth_cancel(c, why);
	}
	char text[SMTP_REPLY_TEXT_MAX];
	snprintf(text, sizeof(text), "malformed reply from server: %.1900s",
		 r->text);
	return smtp_client_fail(c, 0, "4.5.0", text, "AUTH");
}
