/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The listener's command table (OpenSMTPD commands[], Postfix
 *	smtpd_cmd_table[]). Each entry has a check step, which validates the
 *	state and the arguments and sends the error reply, and a proceed step,
 *	which does the work and sends the success reply. Sequence errors are
 *	checked before syntax, as in Postfix, and every error leaves the
 *	session in the state it was in (RFC 5321 4.1.4).
 */
#include <stdlib.h>
#include <string.h>

#include "outbox/str.h"
#include "smtp_server_int.h"

#define CMD_KEY_LOG_MAX 64

/* ---- HELO / EHLO ---- */

static int
cmd_check_helo(struct smtp_server *s, struct server_args *a)
{
	if (a->alen > 0)
		return 0;
	server_reject(s, "501 5.5.4 Syntax: %s hostname",
		      smtp_cmd_is(a->verb, a->vlen, "EHLO") ? "EHLO" : "HELO");
	return -1;
}

/* EHLO/HELO reset the transaction, "exactly as if a RSET" (RFC 5321 4.1.4). */
static void
cmd_set_helo(struct smtp_server *s, struct server_args *a, bool esmtp)
{
	server_tx_free(s);
	size_t n = a->alen < HOSTNAME_MAX ? a->alen : HOSTNAME_MAX;
	str_sanitize(s->helo, sizeof(s->helo), a->arg, n);
	s->helo_done = true;
	s->esmtp = esmtp;
	server_enter_state(s, SRV_S_READY);
}

static enum smtp_server_event
cmd_do_helo(struct smtp_server *s, struct server_args *a)
{
	cmd_set_helo(s, a, false);
	server_reply(s, "250 %s", s->cfg.hostname);
	return SRV_NEED_MORE;
}

static enum smtp_server_event
cmd_do_ehlo(struct smtp_server *s, struct server_args *a)
{
	cmd_set_helo(s, a, true);
	server_reply(s, "250-%s", s->cfg.hostname);
	server_reply(s, "250-PIPELINING");
	server_reply(s, "250-SIZE %llu",
		     (unsigned long long)s->cfg.max_message_size);
	server_reply(s, "250-8BITMIME");
	server_reply(s, "250-ENHANCEDSTATUSCODES");
	server_reply(s, "250 SMTPUTF8");
	return SRV_NEED_MORE;
}

/* ---- MAIL ---- */

static int
cmd_param_size(struct smtp_server *s, const struct smtp_param *p,
	       struct server_args *a)
{
	if (p->val == NULL ||
	    str_nto_u64(p->val, p->vlen, 0, UINT64_MAX, &a->size) < 0) {
		server_reject(s, "501 5.5.4 Bad message size syntax");
		return -1;
	}
	if (a->size > s->cfg.max_message_size) {
		server_reject(s, "552 5.3.4 Message size exceeds fixed limit");
		return -1;
	}
	return 0;
}

static int
cmd_param_body(struct smtp_server *s, const struct smtp_param *p,
	       struct server_args *a)
{
	if (p->val != NULL && smtp_cmd_is(p->val, p->vlen, "8BITMIME")) {
		a->body8 = true;
		return 0;
	}
	if (p->val != NULL && smtp_cmd_is(p->val, p->vlen, "7BIT"))
		return 0;
	server_reject(s, "501 5.5.4 Bad BODY keyword value");
	return -1;
}

static int
cmd_param_unknown(struct smtp_server *s, const struct smtp_param *p)
{
	char key[CMD_KEY_LOG_MAX];
	str_sanitize(key, sizeof(key), p->key, p->klen);
	server_reject(s, "555 5.5.4 Unsupported option: %s", key);
	return -1;
}

static int
cmd_mail_params(struct smtp_server *s, struct server_args *a)
{
	unsigned seen = 0;
	for (size_t i = 0; i < a->path.nparams; i++) {
		const struct smtp_param *p = &a->path.params[i];
		unsigned bit;
		int r;
		if (smtp_cmd_is(p->key, p->klen, "SIZE")) {
			bit = 1;
			r = cmd_param_size(s, p, a);
		} else if (smtp_cmd_is(p->key, p->klen, "BODY")) {
			bit = 2;
			r = cmd_param_body(s, p, a);
		} else if (smtp_cmd_is(p->key, p->klen, "SMTPUTF8")) {
			bit = 4;
			a->utf8 = true;
			r = 0;
			if (p->val != NULL) {
				server_reject(s, "501 5.5.4 Bad SMTPUTF8 syntax");
				r = -1;
			}
		} else {
			return cmd_param_unknown(s, p);
		}
		if (r < 0)
			return r;
		if (seen & bit) {
			server_reject(s, "501 5.5.4 Error: duplicate parameter");
			return -1;
		}
		seen |= bit;
	}
	return 0;
}

static int
cmd_path_reject(struct smtp_server *s, enum smtp_cmd_status st,
		const char *usage)
{
	if (st == CMD_E_SYNTAX)
		server_reject(s, "501 5.5.4 Syntax: %s", usage);
	else
		server_reject(s, "501 5.5.4 Syntax error in parameters");
	return -1;
}

static int
cmd_addr_reject(struct smtp_server *s, enum addr_status st, bool rcpt)
{
	if (st == ADDR_E_PATH_LONG)
		server_reject(s, "501 5.1.3 Path too long");
	else if (rcpt)
		server_reject(s, "501 5.1.3 Bad recipient address syntax");
	else
		server_reject(s, "501 5.1.7 Bad sender address syntax");
	return -1;
}

static int
cmd_check_utf8(struct smtp_server *s, const struct addr_path *ap, bool utf8)
{
	if (!ap->eightbit || utf8)
		return 0;
	server_reject(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
	return -1;
}

/*
 * Refuse before DATA when the spool cannot take the message (RELIABILITY
 * D5, Postfix queue_minfree): less free space than min_free, or than the
 * declared SIZE.
 */
static int
cmd_check_space(struct smtp_server *s, const struct server_args *a)
{
	if (s->spool_free == UINT64_MAX ||
	    (s->spool_free >= s->cfg.min_free && s->spool_free >= a->size))
		return 0;
	server_reject(s, "452 4.3.1 Insufficient system storage");
	return -1;
}

static int
cmd_check_mail(struct smtp_server *s, struct server_args *a)
{
	if (!s->helo_done) {
		server_reject(s, "503 5.5.1 Error: send HELO/EHLO first");
		return -1;
	}
	if (s->tx != NULL) {
		server_reject(s, "503 5.5.1 Error: nested MAIL command");
		return -1;
	}
	enum smtp_cmd_status cs =
		smtp_cmd_parse_path(a->arg, a->alen, "FROM:", &a->path);
	if (cs != CMD_OK)
		return cmd_path_reject(s, cs, "MAIL FROM:<address>");
	if (cmd_mail_params(s, a) < 0)
		return -1;
	enum addr_status as = addr_parse_path(a->path.path, a->path.plen,
					      &a->addr);
	if (as != ADDR_OK)
		return cmd_addr_reject(s, as, false);
	if (cmd_check_space(s, a) < 0)
		return -1;
	return cmd_check_utf8(s, &a->addr, a->utf8);
}

static enum smtp_server_event
cmd_do_mail(struct smtp_server *s, struct server_args *a)
{
	s->tx = calloc(1, sizeof(*s->tx));
	if (s->tx == NULL) {
		server_reply(s, "452 4.3.1 Insufficient system resources");
		return SRV_NEED_MORE;
	}
	memcpy(s->tx->sender, a->addr.mailbox, sizeof(s->tx->sender));
	s->tx->size_param = a->size;
	s->tx->body_8bit = a->body8;
	s->tx->smtputf8 = a->utf8;
	s->rcpt_tried = 0;
	server_reply(s, "250 2.1.0 Ok");
	server_enter_state(s, SRV_S_MAIL);
	return SRV_NEED_MORE;
}

/* ---- RCPT ---- */

static int
cmd_check_rcpt(struct smtp_server *s, struct server_args *a)
{
	if (s->tx == NULL) {
		server_reject(s, "503 5.5.1 Error: need MAIL command");
		return -1;
	}
	s->rcpt_tried++;
	enum smtp_cmd_status cs =
		smtp_cmd_parse_path(a->arg, a->alen, "TO:", &a->path);
	if (cs != CMD_OK)
		return cmd_path_reject(s, cs, "RCPT TO:<address>");
	if (a->path.nparams > 0) /* no DSN advertised: no RCPT parameters */
		return cmd_param_unknown(s, &a->path.params[0]);
	enum addr_status as = addr_parse_path(a->path.path, a->path.plen,
					      &a->addr);
	if (as == ADDR_OK && a->addr.mailbox[0] == '\0')
		as = ADDR_E_SYNTAX; /* RCPT TO:<> */
	if (as != ADDR_OK)
		return cmd_addr_reject(s, as, true);
	if (cmd_check_utf8(s, &a->addr, s->tx->smtputf8) < 0)
		return -1;
	if (s->tx->nrcpts >= s->cfg.max_recipients) {
		server_reject(s, "452 4.5.3 Too many recipients");
		return -1;
	}
	return 0;
}

static int
cmd_rcpt_add(struct smtp_tx *tx, const char *addr, size_t max)
{
	if (tx->nrcpts == tx->rcap) {
		size_t cap = tx->rcap ? tx->rcap * 2 : 8;
		if (cap > max)
			cap = max;
		struct smtp_rcpt *r = realloc(tx->rcpts, cap * sizeof(*r));
		if (r == NULL)
			return -1;
		tx->rcpts = r;
		tx->rcap = cap;
	}
	char *copy = str_ndup(addr, strlen(addr));
	if (copy == NULL)
		return -1;
	tx->rcpts[tx->nrcpts++].addr = copy;
	return 0;
}

static enum smtp_server_event
cmd_do_rcpt(struct smtp_server *s, struct server_args *a)
{
	if (cmd_rcpt_add(s->tx, a->addr.mailbox, s->cfg.max_recipients) < 0) {
		server_reply(s, "452 4.3.1 Insufficient system resources");
		return SRV_NEED_MORE;
	}
	server_reply(s, "250 2.1.5 Ok");
	server_enter_state(s, SRV_S_RCPT);
	return SRV_NEED_MORE;
}

/* ---- DATA ---- */

static int
cmd_check_data(struct smtp_server *s, struct server_args *a)
{
	if (s->tx == NULL || s->tx->nrcpts == 0) {
		if (s->tx != NULL && s->rcpt_tried > 0)
			server_reject(s, "554 5.5.1 Error: no valid recipients");
		else
			server_reject(s, "503 5.5.1 Error: need RCPT command");
		return -1;
	}
	if (a->alen > 0) {
		server_reject(s, "501 5.5.4 Syntax: DATA");
		return -1;
	}
	return 0;
}

static enum smtp_server_event
cmd_do_data(struct smtp_server *s, struct server_args *a)
{
	server_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_data_init(&s->data, s->cfg.max_message_size, s->line_crlf);
	buf_reset(&s->chunk);
	s->tx->data_size = 0;
	server_enter_state(s, SRV_S_DATA);
	s->pending = SRV_DATA_START;
	return SRV_DATA_START;
}

/* ---- the rest ---- */

/* A command that moves no mail: past SRV_JUNK_LIMIT it is an error. */
static void
cmd_junk(struct smtp_server *s)
{
	if (++s->junk > SRV_JUNK_LIMIT)
		s->errors++;
}

static int
cmd_check_rset(struct smtp_server *s, struct server_args *a)
{
	if (a->alen == 0)
		return 0;
	server_reject(s, "501 5.5.4 Syntax: RSET");
	return -1;
}

static enum smtp_server_event
cmd_do_rset(struct smtp_server *s, struct server_args *a)
{
	cmd_junk(s);
	server_tx_free(s);
	server_enter_state(s, server_idle_state(s));
	server_reply(s, "250 2.0.0 Ok");
	return SRV_NEED_MORE;
}

static enum smtp_server_event
cmd_do_noop(struct smtp_server *s, struct server_args *a)
{
	cmd_junk(s);
	server_reply(s, "250 2.0.0 Ok");
	return SRV_NEED_MORE;
}

static enum smtp_server_event
cmd_do_quit(struct smtp_server *s, struct server_args *a)
{
	server_reply(s, "221 2.0.0 Bye");
	return server_close(s);
}

static int
cmd_check_vrfy(struct smtp_server *s, struct server_args *a)
{
	if (a->alen > 0)
		return 0;
	server_reject(s, "501 5.5.4 Syntax: VRFY address");
	return -1;
}

static enum smtp_server_event
cmd_do_vrfy(struct smtp_server *s, struct server_args *a)
{
	cmd_junk(s);
	server_reply(s, "252 2.0.0 Cannot VRFY user; send some mail");
	return SRV_NEED_MORE;
}

static enum smtp_server_event
cmd_do_help(struct smtp_server *s, struct server_args *a)
{
	cmd_junk(s);
	server_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET "
			"NOOP QUIT VRFY HELP");
	return SRV_NEED_MORE;
}

static enum smtp_server_event
cmd_do_notimpl(struct smtp_server *s, struct server_args *a)
{
	server_reject(s, "502 5.5.1 Error: command not implemented");
	return SRV_NEED_MORE;
}

/*
 * CHUNKING is not advertised, so BDAT's chunk bytes follow the command
 * line with no framing we could trust: end the session rather than run
 * them as commands (A17).
 */
static enum smtp_server_event
cmd_do_bdat(struct smtp_server *s, struct server_args *a)
{
	cmd_do_notimpl(s, a);
	return server_close(s);
}

static const struct server_cmd server_cmds[] = {
	{ "HELO", 0, cmd_check_helo, cmd_do_helo },
	{ "EHLO", 0, cmd_check_helo, cmd_do_ehlo },
	{ "MAIL", 0, cmd_check_mail, cmd_do_mail },
	{ "RCPT", 0, cmd_check_rcpt, cmd_do_rcpt },
	{ "DATA", 0, cmd_check_data, cmd_do_data },
	{ "RSET", 0, cmd_check_rset, cmd_do_rset },
	{ "NOOP", 0, NULL, cmd_do_noop },
	{ "QUIT", SRV_F_DENIED_OK, NULL, cmd_do_quit },
	{ "VRFY", 0, cmd_check_vrfy, cmd_do_vrfy },
	{ "HELP", 0, NULL, cmd_do_help },
	{ "EXPN", 0, NULL, cmd_do_notimpl },
	{ "BDAT", SRV_F_DENIED_OK, NULL, cmd_do_bdat },
	{ "STARTTLS", 0, NULL, cmd_do_notimpl },
	{ "AUTH", SRV_F_SECRET, NULL, cmd_do_notimpl },
	{ "TURN", 0, NULL, cmd_do_notimpl },
	{ "ETRN", 0, NULL, cmd_do_notimpl },
	{ "GET", SRV_F_BOGUS, NULL, NULL },
	{ "POST", SRV_F_BOGUS, NULL, NULL },
	{ "PUT", SRV_F_BOGUS, NULL, NULL },
	{ "HEAD", SRV_F_BOGUS, NULL, NULL },
	{ "CONNECT", SRV_F_BOGUS, NULL, NULL },
};

const struct server_cmd *
server_cmd_find(const char *verb, size_t vlen)
{
	for (size_t i = 0; i < sizeof(server_cmds) / sizeof(server_cmds[0]); i++)
		if (smtp_cmd_is(verb, vlen, server_cmds[i].name))
			return &server_cmds[i];
	return NULL;
}
