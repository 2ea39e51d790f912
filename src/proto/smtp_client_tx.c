/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Mail transactions of the outbound SMTP client: local checks (address
 *	syntax, SIZE, SMTPUTF8), then [RSET] MAIL, RCPT..., DATA, sent one at
 *	a time or, under PIPELINING (RFC 2920), as one group whose replies
 *	are matched in order. Per-recipient results follow B5: a recipient
 *	holds its RCPT refusal, or the DATA / end-of-data outcome when it
 *	was accepted; it is 2xx only when the final dot got 2xx. After any
 *	failed transaction the next one starts with RSET. Pure code; the
 *	session half lives in smtp_client.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/str.h"
#include "smtp_client_priv.h"

void
smtp_client_tx_free(struct smtp_client *c)
{
	struct cli_tx *t = &c->tx;
	for (size_t i = 0; t->rcpts && i < t->nrcpts; i++)
		free(t->rcpts[i]);
	free(t->rcpts);
	free(t->skip);
	free(t->sender);
	free(c->res.rcpt);
	memset(t, 0, sizeof(*t));
	memset(&c->res, 0, sizeof(c->res));
	c->res.msg.cmd = "";
	c->tx_active = false;
}

static enum smtp_client_event
tx_done(struct smtp_client *c)
{
	c->tx_active = false;
	smtp_client_trace(c, "transaction done: %d %s", c->res.msg.code,
			  c->res.msg.enh);
	smtp_client_enter(c, CS_READY);
	return CLI_MSG_DONE;
}

/* Give every recipient still in play (not refused) the result res. */
static void
tx_set_open(struct smtp_client *c, const struct smtp_client_result *res)
{
	for (size_t i = 0; i < c->res.nrcpts; i++)
		if (!c->tx.skip[i] && (c->res.rcpt[i].code == 0 ||
				       c->res.rcpt[i].code / 100 == 2))
			c->res.rcpt[i] = *res;
	c->res.msg = *res;
}

/* A local refusal of the whole message: no MAIL is sent. */
static enum smtp_client_event
tx_refuse(struct smtp_client *c, int code, const char *enh, const char *text)
{
	struct smtp_client_result res;
	smtp_client_result_set(&res, code, enh, text, "MAIL");
	tx_set_open(c, &res);
	return tx_done(c);
}

static bool
tx_addr_ok(const char *a, bool *eight)
{
	size_t n = strlen(a);
	if (n > SMTP_PATH_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
		if (ch >= 0x80)
			*eight = true;
	}
	return true;
}

static bool
tx_copy(struct smtp_client *c, const struct smtp_client_msg *m)
{
	struct cli_tx *t = &c->tx;
	t->sender = smtp_client_strdup(m->sender);
	t->nrcpts = m->nrcpts;
	t->rcpts = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*t->rcpts));
	t->skip = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*t->skip));
	c->res.rcpt = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*c->res.rcpt));
	if (!t->sender || !t->rcpts || !t->skip || !c->res.rcpt)
		return false;
	c->res.nrcpts = m->nrcpts;
	for (size_t i = 0; i < m->nrcpts; i++) {
		c->res.rcpt[i].cmd = "";
		if ((t->rcpts[i] = smtp_client_strdup(m->rcpts[i])) == NULL)
			return false;
	}
	t->size = m->size;
	t->body_8bit = m->body_8bit;
	t->smtputf8 = m->smtputf8;
	return true;
}

/* Refuse malformed addresses locally: they must never reach the wire (I5). */
static size_t
tx_check_rcpts(struct smtp_client *c, bool *eight)
{
	size_t usable = 0;
	for (size_t i = 0; i < c->tx.nrcpts; i++) {
		if (tx_addr_ok(c->tx.rcpts[i], eight) && c->tx.rcpts[i][0]) {
			usable++;
			continue;
		}
		c->tx.skip[i] = true;
		smtp_client_result_set(&c->res.rcpt[i], 553, "5.1.3",
				       "invalid recipient address", "RCPT");
	}
	return usable;
}

/* Local decisions before MAIL: addresses, SIZE (B13), SMTPUTF8 (A23). */
static bool
tx_local_checks(struct smtp_client *c, enum smtp_client_event *ev)
{
	bool eight = c->tx.smtputf8;
	if (!tx_addr_ok(c->tx.sender, &eight)) {
		*ev = tx_refuse(c, 553, "5.1.7", "invalid sender address");
		return false;
	}
	if (tx_check_rcpts(c, &eight) == 0) {
		if (c->res.nrcpts > 0)
			c->res.msg = c->res.rcpt[0];
		else
			smtp_client_result_set(&c->res.msg, 0, "5.5.1",
					       "no recipients", "RCPT");
		*ev = tx_done(c);
		return false;
	}
	if ((c->ext & EXT_SIZE) && c->size_limit > 0 &&
	    c->tx.size > c->size_limit) {
		*ev = tx_refuse(c, 552, "5.3.4",
				"message size exceeds server limit");
		return false;
	}
	if (eight && !(c->ext & EXT_SMTPUTF8)) {
		*ev = tx_refuse(
			c, 553, "5.6.7",
			"SMTPUTF8 is required, but was not offered by host");
		return false;
	}
	c->tx.smtputf8 = eight;
	return true;
}

static size_t
tx_next_rcpt(const struct smtp_client *c, size_t from)
{
	while (from < c->tx.nrcpts && c->tx.skip[from])
		from++;
	return from;
}

static void
tx_send_mail(struct smtp_client *c)
{
	char size[32] = "";
	if (c->ext & EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%llu",
			 (unsigned long long)c->tx.size);
	bool body8 = c->tx.body_8bit && (c->ext & EXT_8BITMIME);
	if (c->tx.body_8bit && !body8)
		smtp_client_trace(
			c,
			"8-bit body to a server without 8BITMIME: sent as is");
	smtp_client_send(c, NULL, "MAIL FROM:<%s>%s%s%s", c->tx.sender, size,
			 body8 ? " BODY=8BITMIME" : "",
			 c->tx.smtputf8 ? " SMTPUTF8" : "");
}

static void
tx_send_rcpt(struct smtp_client *c, size_t i)
{
	smtp_client_send(c, NULL, "RCPT TO:<%s>", c->tx.rcpts[i]);
}

/* RSET (after a failed transaction), then MAIL; one group when pipelining. */
static enum smtp_client_event
tx_begin(struct smtp_client *c)
{
	struct cli_tx *t = &c->tx;
	t->pipelined = (c->ext & EXT_PIPELINING) != 0;
	t->next = tx_next_rcpt(c, 0);
	if (c->need_rset)
		smtp_client_send(c, NULL, "RSET");
	if (!c->need_rset || t->pipelined)
		tx_send_mail(c);
	if (t->pipelined) {
		for (size_t i = t->next; i < t->nrcpts;
		     i = tx_next_rcpt(c, i + 1))
			tx_send_rcpt(c, i);
		smtp_client_send(c, NULL, "DATA");
	}
	smtp_client_enter(c, c->need_rset ? CS_RSET : CS_MAIL);
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_send_msg(struct smtp_client *c, const struct smtp_client_msg *msg)
{
	if (c->state != CS_READY)
		return smtp_client_internal(c, "send_msg");
	smtp_client_tx_free(c);
	c->tx_active = true;
	if (!tx_copy(c, msg))
		return smtp_client_fail(c, 0, "4.3.0", "out of memory", "MAIL");
	enum smtp_client_event ev;
	if (!tx_local_checks(c, &ev))
		return ev;
	return smtp_client_check(c, tx_begin(c));
}

static enum smtp_client_event
tx_on_rset(struct smtp_client *c, const struct smtp_reply *r)
{
	if (!reply_is(r, 2))
		return smtp_client_fail_reply(c, r, NULL, NULL);
	c->need_rset = false;
	if (!c->tx.pipelined)
		tx_send_mail(c);
	smtp_client_enter(c, CS_MAIL);
	return CLI_WAIT;
}

static enum smtp_client_event
tx_on_mail(struct smtp_client *c, const struct smtp_reply *r)
{
	if (reply_failed(r)) {
		struct smtp_client_result res;
		smtp_client_result_reply(&res, r, "MAIL");
		tx_set_open(c, &res);
		c->need_rset = true;
		if (!c->tx.pipelined)
			return tx_done(c);
		c->tx.mail_failed = true;
	} else if (!reply_is(r, 2)) {
		return smtp_client_fail_protocol(c, r);
	} else if (!c->tx.pipelined) {
		tx_send_rcpt(c, c->tx.next);
	}
	smtp_client_enter(c, CS_RCPT);
	return CLI_WAIT;
}

/* Nobody was accepted: the message outcome is the last RCPT refusal. */
static void
tx_msg_from_last_rcpt(struct smtp_client *c)
{
	for (size_t i = c->tx.nrcpts; i > 0; i--)
		if (!c->tx.skip[i - 1]) {
			c->res.msg = c->res.rcpt[i - 1];
			return;
		}
}

static enum smtp_client_event
tx_on_rcpt(struct smtp_client *c, const struct smtp_reply *r)
{
	struct cli_tx *t = &c->tx;
	if (!reply_is(r, 2) && !reply_failed(r))
		return smtp_client_fail_protocol(c, r);
	if (!t->mail_failed) {
		smtp_client_result_reply(&c->res.rcpt[t->next], r, "RCPT");
		if (reply_is(r, 2))
			t->naccepted++;
	}
	t->next = tx_next_rcpt(c, t->next + 1);
	if (t->next < t->nrcpts) {
		if (!t->pipelined)
			tx_send_rcpt(c, t->next);
		return CLI_WAIT;
	}
	if (!t->pipelined && t->naccepted == 0) {
		/* B6 without pipelining: no DATA at all. */
		tx_msg_from_last_rcpt(c);
		c->need_rset = true;
		return tx_done(c);
	}
	if (!t->pipelined)
		smtp_client_send(c, NULL, "DATA");
	smtp_client_enter(c, CS_DATA);
	return CLI_WAIT;
}

static enum smtp_client_event
tx_on_data(struct smtp_client *c, const struct smtp_reply *r)
{
	struct cli_tx *t = &c->tx;
	bool nobody = t->mail_failed || t->naccepted == 0;
	if (r->code == 354 && nobody) {
		/* RFC 2920: a 354 we cannot use; end the empty data at once. */
		if (!t->mail_failed)
			tx_msg_from_last_rcpt(c);
		t->abandoned = true;
		c->need_rset = true;
		smtp_client_send(c, NULL, ".");
		smtp_client_enter(c, CS_DATA_END);
		return CLI_WAIT;
	}
	if (r->code == 354) {
		smtp_client_enter(c, CS_BODY);
		return CLI_NEED_BODY;
	}
	if (!reply_failed(r))
		return smtp_client_fail_protocol(c, r);
	c->need_rset = true;
	if (!t->mail_failed) {
		struct smtp_client_result res;
		smtp_client_result_reply(&res, r, "DATA");
		tx_set_open(c, &res);
	}
	return tx_done(c);
}

static enum smtp_client_event
tx_on_data_end(struct smtp_client *c, const struct smtp_reply *r)
{
	if (!reply_is(r, 2) && !reply_failed(r))
		return smtp_client_fail_protocol(c, r);
	if (c->tx.abandoned)
		return tx_done(c);
	struct smtp_client_result res;
	smtp_client_result_reply(&res, r, ".");
	tx_set_open(c, &res);
	if (!reply_is(r, 2))
		c->need_rset = true;
	return tx_done(c);
}

enum smtp_client_event
smtp_client_body_done(struct smtp_client *c)
{
	if (c->state == CS_FAILED)
		return CLI_FAIL;
	if (c->state != CS_BODY)
		return smtp_client_internal(c, "body_done");
	smtp_client_enter(c, CS_DATA_END);
	return CLI_WAIT;
}

enum smtp_client_event
smtp_client_tx_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case CS_RSET:
		return tx_on_rset(c, r);
	case CS_MAIL:
		return tx_on_mail(c, r);
	case CS_RCPT:
		return tx_on_rcpt(c, r);
	case CS_DATA:
		return tx_on_data(c, r);
	case CS_DATA_END:
		return tx_on_data_end(c, r);
	default:
		return smtp_client_internal(c, "transaction reply");
	}
}
