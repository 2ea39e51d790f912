/* SPDX-License-Identifier: MIT */
/*
 * Outbound delivery glue: drives the pure SMTP client (proto/smtp_client.c)
 * over a conn (io/conn.c), feeds it reply lines, and turns its results into
 * per-recipient state on the queued message.
 *
 * A delivery starts with one message in hand and, once the session is
 * ready, keeps taking due messages from the queue until none is left, then
 * QUITs: queued mail for the smarthost shares one connection.
 *
 * Teardown: delivery_end() is the only path; it is safe from any callback.
 * The struct is freed when its references (the timer handle, a pending
 * getaddrinfo, a pending file read) are all gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "outbox/classify.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/str.h"

#include "delivery_priv.h"

static void delivery_fail(struct delivery *dl);

void
delivery_unref(struct delivery *dl)
{
	if (--dl->refs > 0)
		return;
	buf_free(&dl->lines);
	buf_free(&dl->wire);
	free(dl->rbuf);
	free(dl->rcpt_ptrs);
	free(dl->rcpt_idx);
	if (dl->ai)
		uv_freeaddrinfo(dl->ai);
	free(dl);
}

static void
delivery_timer_closed(uv_handle_t *h)
{
	delivery_unref(h->data);
}

static void
delivery_timeout_cb(uv_timer_t *t)
{
	struct delivery *dl = t->data;
	if (dl->closing)
		return;
	if (!dl->started) {
		dl->started = true; /* the deferred start */
		delivery_route_start(dl);
		return;
	}
	if (dl->connecting) {
		snprintf(dl->last_error, sizeof(dl->last_error),
			 "connect to %s: Connection timed out", dl->relay);
		log_info("%s", dl->last_error);
		delivery_route_next(dl);
		return;
	}
	if (dl->cli == NULL)
		return;
	char text[512];
	snprintf(text, sizeof(text), "conversation with %s timed out while %s",
		 dl->relay, smtp_client_state_name(dl->cli));
	delivery_event(dl, smtp_client_abort(dl->cli, "4.4.2", text));
}

void
delivery_set_timer(struct delivery *dl, uint64_t ms)
{
	if (dl->closing)
		return;
	if (dl->d->test_timeout_ms && ms > dl->d->test_timeout_ms)
		ms = dl->d->test_timeout_ms;
	uv_timer_start(&dl->timer, delivery_timeout_cb, ms, 0);
}

struct delivery *
delivery_start(struct daemon *d, struct queue *q, struct qmsg *m)
{
	struct delivery *dl = calloc(1, sizeof(*dl));
	if (dl == NULL)
		return NULL;
	dl->d = d;
	dl->q = q;
	dl->msg = m;
	dl->fd = -1;
	dl->refs = 1;
	buf_init(&dl->lines, 2 * SMTP_REPLY_PARSE_MAX);
	buf_init(&dl->wire, 4 * DELIVERY_READ_SIZE);
	str_copy(dl->relay, sizeof(dl->relay), "none");
	uv_timer_init(d->loop, &dl->timer);
	dl->timer.data = dl;
	/* Start from the loop, never inside the caller (queue_kick). */
	uv_timer_start(&dl->timer, delivery_timeout_cb, 0, 0);
	return dl;
}

static double
delivery_delay(const struct envelope *e)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double now = (double)tv.tv_sec + tv.tv_usec / 1e6;
	double delay = now - (double)e->arrival;
	return delay < 0 ? 0 : delay;
}

/* "550 5.1.1 text" with the reply's lines folded onto one line. */
static void
delivery_reply_text(const struct smtp_client_result *r, char *out,
		    size_t size)
{
	char text[SMTP_REPLY_TEXT_MAX];
	str_copy(text, sizeof(text), r->text);
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (r->code == 0)
		snprintf(out, size, "%s", text);
	else if (r->enh[0] && strncmp(text, r->enh, strlen(r->enh)) != 0)
		snprintf(out, size, "%d %s %s", r->code, r->enh, text);
	else
		snprintf(out, size, "%d %s", r->code, text);
}

static void
delivery_log_rcpt(struct delivery *dl, size_t i,
		  const struct smtp_client_result *r, enum dlv_result res)
{
	const struct envelope *e = &dl->msg->env;
	char dsn[16], text[SMTP_REPLY_TEXT_MAX + 32];
	classify_dsn(r, dsn, sizeof(dsn));
	delivery_reply_text(r, text, sizeof(text));
	log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
		 e->id, e->rcpts[i].addr, dl->relay, delivery_delay(e), dsn,
		 classify_status_word(res), text);
}

static void
delivery_apply_one(struct delivery *dl, size_t i,
		   const struct smtp_client_result *r, enum dlv_stage stage)
{
	struct envelope *e = &dl->msg->env;
	enum dlv_result res = classify_result(r, stage);
	char text[SMTP_REPLY_TEXT_MAX + 32];
	delivery_reply_text(r, text, sizeof(text));
	if (res == DLV_OK)
		e->rcpts[i].state = RCPT_SENT;
	else if (res == DLV_PERM)
		e->rcpts[i].state = RCPT_FAILED;
	if (envelope_set_error(e, i, res == DLV_OK ? NULL : text) != 0)
		log_warn("%s: out of memory recording an error", e->id);
	delivery_log_rcpt(dl, i, r, res);
}

/* Every recipient still pending gets the same temporary outcome. */
static void
delivery_defer_msg(struct delivery *dl, const struct smtp_client_result *r)
{
	if (dl->msg == NULL)
		return;
	struct envelope *e = &dl->msg->env;
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == RCPT_PENDING)
			delivery_apply_one(dl, i, r, STAGE_SESSION);
	queue_result(dl->q, dl->msg);
	dl->msg = NULL;
}

/* Which command a result answers decides how a 5xx is read. */
static enum dlv_stage
delivery_stage(const struct smtp_client_result *r)
{
	if (r->cmd == NULL)
		return STAGE_SESSION;
	if (strcmp(r->cmd, "RCPT") == 0)
		return STAGE_RCPT;
	if (strcmp(r->cmd, "MAIL") == 0)
		return STAGE_MAIL;
	if (strcmp(r->cmd, "DATA") == 0 || strcmp(r->cmd, ".") == 0)
		return STAGE_DATA;
	return STAGE_SESSION;
}

static void
delivery_msg_done(struct delivery *dl)
{
	const struct smtp_client_msg_result *res = smtp_client_msg_result(dl->cli);
	size_t n = res->nrcpts < dl->nsent ? res->nrcpts : dl->nsent;
	for (size_t i = 0; i < n; i++)
		delivery_apply_one(dl, dl->rcpt_idx[i], &res->rcpt[i],
				   delivery_stage(&res->rcpt[i]));
	queue_result(dl->q, dl->msg);
	dl->msg = NULL;
}

/*
 * The session failed inside a transaction: recipients the server already
 * refused keep that answer (a 550 stays a bounce); everyone else carries
 * the session failure, which is always temporary.
 */
static void
delivery_fail_tx(struct delivery *dl, const struct smtp_client_result *fail)
{
	const struct smtp_client_msg_result *res = smtp_client_msg_result(dl->cli);
	size_t n = res->nrcpts < dl->nsent ? res->nrcpts : dl->nsent;
	for (size_t i = 0; i < n; i++) {
		const struct smtp_client_result *r = &res->rcpt[i];
		bool refused = r->code >= 400 &&
			       delivery_stage(r) != STAGE_SESSION &&
			       strcmp(r->cmd, ".") != 0;
		delivery_apply_one(dl, dl->rcpt_idx[i], refused ? r : fail,
				   refused ? delivery_stage(r) : STAGE_SESSION);
	}
	queue_result(dl->q, dl->msg); /* every pending recipient was offered */
	dl->msg = NULL;
}

/* Offer the message in hand: only its pending recipients. */
static enum smtp_client_event
delivery_send_msg(struct delivery *dl)
{
	struct envelope *e = &dl->msg->env;
	free(dl->rcpt_ptrs);
	free(dl->rcpt_idx);
	dl->rcpt_ptrs = calloc(e->nrcpts ? e->nrcpts : 1, sizeof(char *));
	dl->rcpt_idx = calloc(e->nrcpts ? e->nrcpts : 1, sizeof(size_t));
	if (dl->rcpt_ptrs == NULL || dl->rcpt_idx == NULL)
		return smtp_client_abort(dl->cli, "4.3.0", "out of memory");
	dl->nsent = 0;
	for (size_t i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != RCPT_PENDING)
			continue;
		dl->rcpt_ptrs[dl->nsent] = e->rcpts[i].addr;
		dl->rcpt_idx[dl->nsent++] = i;
	}
	struct smtp_client_msg cm = {
		.sender = e->sender,
		.rcpts = dl->rcpt_ptrs,
		.nrcpts = dl->nsent,
		.size = e->msg_size,
		.body_8bit = (e->flags & ENV_F_8BIT) != 0,
		.smtputf8 = (e->flags & ENV_F_SMTPUTF8) != 0,
	};
	return smtp_client_send_msg(dl->cli, &cm);
}

static void
delivery_flush(struct delivery *dl)
{
	struct buf *out = smtp_client_out(dl->cli);
	if (out->len == 0)
		return;
	if (dl->conn != NULL && conn_write(dl->conn, out->data, out->len) != 0)
		log_debug("%s: write failed", dl->relay);
	buf_reset(out);
}

static bool
delivery_is_ip(const char *host)
{
	unsigned char tmp[16];
	return strchr(host, ':') != NULL ||
	       uv_inet_pton(AF_INET, host, tmp) == 0;
}

static enum smtp_client_event
delivery_start_tls(struct delivery *dl)
{
	if (dl->lines.len > 0)
		return smtp_client_abort(dl->cli, "4.7.0",
					 "server sent data after its STARTTLS "
					 "reply (response injection)");
	if (dl->d->tls == NULL)
		return smtp_client_abort(dl->cli, "4.7.5",
					 "no TLS context configured");
	const char *host = delivery_route_host(dl)->host;
	int r = conn_start_tls(dl->conn, dl->d->tls,
			       delivery_is_ip(host) ? NULL : host);
	if (r != 0)
		return smtp_client_abort(dl->cli, "4.7.5",
					 "cannot start TLS");
	return CLI_WAIT;
}

static enum smtp_client_event
delivery_ready(struct delivery *dl)
{
	if (!dl->session_ok) {
		dl->session_ok = true;
		queue_dest_ok(dl->q);
	}
	if (dl->msg == NULL)
		dl->msg = queue_take(dl->q);
	if (dl->msg == NULL)
		return smtp_client_quit(dl->cli);
	return delivery_send_msg(dl);
}

void
delivery_event(struct delivery *dl, enum smtp_client_event ev)
{
	for (;;) {
		if (dl->closing || dl->cli == NULL)
			return;
		delivery_flush(dl);
		switch (ev) {
		case CLI_WAIT:
			delivery_set_timer(dl, smtp_client_timeout_ms(dl->cli));
			return;
		case CLI_NEED_TLS:
			ev = delivery_start_tls(dl);
			break;
		case CLI_READY:
			ev = delivery_ready(dl);
			break;
		case CLI_NEED_BODY:
			delivery_set_timer(dl, smtp_client_timeout_ms(dl->cli));
			delivery_body_start(dl);
			return;
		case CLI_MSG_DONE:
			delivery_msg_done(dl);
			ev = CLI_READY;
			break;
		case CLI_FAIL:
			delivery_fail(dl);
			return;
		case CLI_CLOSED:
			delivery_end(dl);
			return;
		default:
			OB_PANIC("unknown client event %d", (int)ev);
		}
	}
}

/*
 * The session failed. Before it was ever ready (connect, greeting, EHLO,
 * TLS, AUTH) the next address or host is tried; after that, the message in
 * hand is deferred and the connection ends.
 */
static void
delivery_fail(struct delivery *dl)
{
	const struct smtp_client_failure *f = smtp_client_failure(dl->cli);
	char text[SMTP_REPLY_TEXT_MAX + 32];
	delivery_reply_text(&f->r, text, sizeof(text));
	str_copy(dl->last_error, sizeof(dl->last_error), text);
	str_copy(dl->last_enh, sizeof(dl->last_enh), f->r.enh);
	log_info("%s: session failed while %s: %s", dl->relay,
		 smtp_client_state_name(dl->cli), text);
	if (!dl->session_ok) {
		delivery_route_next(dl);
		return;
	}
	struct smtp_client_result r = f->r;
	if (f->after_dot)
		log_warn("%s: possible duplicate: the message may have been "
			 "delivered before the failure",
			 dl->msg ? dl->msg->env.id : "-");
	if (f->in_tx && dl->msg != NULL)
		delivery_fail_tx(dl, &r);
	else
		delivery_defer_msg(dl, &r);
	delivery_end(dl);
}

/* No address of any host worked: defer and back the destination off. */
void
delivery_give_up(struct delivery *dl)
{
	struct smtp_client_result r = { 0 };
	str_copy(r.enh, sizeof(r.enh), dl->last_enh[0] ? dl->last_enh : "4.4.1");
	str_copy(r.text, sizeof(r.text),
		 dl->last_error[0] ? dl->last_error : "no relay host reachable");
	delivery_defer_msg(dl, &r);
	queue_dest_failed(dl->q);
	delivery_end(dl);
}

static void
delivery_on_connect(void *arg, int status)
{
	struct delivery *dl = arg;
	dl->connecting = false;
	if (status != 0) {
		snprintf(dl->last_error, sizeof(dl->last_error),
			 "connect to %s: %s", dl->relay, uv_strerror(status));
		str_copy(dl->last_enh, sizeof(dl->last_enh), "4.4.1");
		log_info("%s", dl->last_error);
		delivery_route_next(dl);
		return;
	}
	delivery_session_begin(dl);
}

static void
delivery_on_data(void *arg, const char *data, size_t len)
{
	struct delivery *dl = arg;
	if (dl->cli == NULL)
		return;
	if (buf_append(&dl->lines, data, len) != 0) {
		delivery_event(dl, smtp_client_abort(dl->cli, "4.5.0",
						     "reply line too long"));
		return;
	}
	struct smtp_client *cli = dl->cli;
	while (!dl->closing && dl->cli == cli) {
		const char *line;
		size_t n, used;
		/* Long enough for a 12,288-octet AUTH challenge (RFC 4954). */
		enum buf_line st = buf_getline(&dl->lines,
					       SMTP_REPLY_PARSE_MAX + 2, &line,
					       &n, &used);
		if (st == BUF_NEED_MORE)
			return;
		if (st == BUF_TOO_LONG) {
			buf_reset(&dl->lines);
			delivery_event(dl, smtp_client_abort(
						   cli, "4.5.0",
						   "reply line too long"));
			return;
		}
		if (used == n + 1) {
			/* RFC 5321 2.3.8: a reply line ends in CRLF, nothing else. */
			buf_reset(&dl->lines);
			delivery_event(dl, smtp_client_abort(
						   cli, "4.5.0",
						   "malformed reply: bare <LF>"));
			return;
		}
		/* Feed a copy: the event may reset or free the line buffer. */
		char *copy = str_ndup(line, n);
		if (copy == NULL) {
			delivery_event(dl, smtp_client_abort(cli, "4.3.0",
							     "out of memory"));
			return;
		}
		buf_consume(&dl->lines, used);
		delivery_event(dl, smtp_client_on_line(cli, copy, n));
		free(copy);
	}
}

static void
delivery_on_tls(void *arg, int status, const struct tls_result *res)
{
	struct delivery *dl = arg;
	if (dl->cli == NULL)
		return;
	if (status == 0)
		log_info("%s: TLS connection established: %s with cipher %s "
			 "(%s)",
			 dl->relay, res->version, res->cipher,
			 res->verified ? "verified" : "untrusted");
	else
		log_warn("%s: TLS handshake failed: %s", dl->relay,
			 res->error[0] ? res->error : "unknown error");
	delivery_event(dl, smtp_client_tls_done(dl->cli, status == 0,
						res->error));
}

static void
delivery_on_drain(void *arg)
{
	delivery_body_drain(arg);
}

static void
delivery_on_close(void *arg, int status)
{
	struct delivery *dl = arg;
	if (dl->cli == NULL)
		return;
	char text[512];
	snprintf(text, sizeof(text), "lost connection with %s while %s",
		 dl->relay, smtp_client_state_name(dl->cli));
	delivery_event(dl, smtp_client_abort(dl->cli, "4.4.2", text));
}

const struct conn_hooks delivery_conn_hooks = {
	.on_connect = delivery_on_connect,
	.on_data = delivery_on_data,
	.on_tls = delivery_on_tls,
	.on_drain = delivery_on_drain,
	.on_close = delivery_on_close,
};

static enum smtp_client_tls
delivery_tls_mode(const struct config *cfg, const struct config_hostport *hp)
{
	switch (cfg->relay.tls) {
	case CONFIG_TLS_AUTO:
		return hp->port == 465 ? CLI_TLS_IMPLICIT : CLI_TLS_STARTTLS;
	case CONFIG_TLS_STARTTLS:
		return CLI_TLS_STARTTLS;
	case CONFIG_TLS_IMPLICIT:
		return CLI_TLS_IMPLICIT;
	case CONFIG_TLS_NONE:
		return CLI_TLS_NONE;
	}
	return CLI_TLS_STARTTLS;
}

static void
delivery_client_log(void *arg, const char *msg)
{
	struct delivery *dl = arg;
	log_debug("smtp[%s]: %s", dl->relay, msg);
}

void
delivery_session_begin(struct delivery *dl)
{
	const struct config *cfg = &dl->d->cfg;
	dl->ccfg.helo = dl->d->hostname;
	dl->ccfg.tls = delivery_tls_mode(cfg, delivery_route_host(dl));
	dl->ccfg.tls_required = dl->ccfg.tls != CLI_TLS_NONE;
	dl->ccfg.user = cfg->relay.user[0] ? cfg->relay.user : NULL;
	dl->ccfg.password = dl->d->password;
	dl->ccfg.log = delivery_client_log;
	dl->ccfg.log_arg = dl;
	buf_reset(&dl->lines);
	dl->cli = smtp_client_new(&dl->ccfg);
	if (dl->cli == NULL) {
		str_copy(dl->last_error, sizeof(dl->last_error), "out of memory");
		delivery_route_next(dl);
		return;
	}
	delivery_event(dl, smtp_client_start(dl->cli));
}

void
delivery_end(struct delivery *dl)
{
	if (dl->closing)
		return;
	dl->closing = true;
	delivery_body_stop(dl);
	if (dl->conn != NULL)
		conn_close(dl->conn);
	dl->conn = NULL;
	if (dl->gai_busy)
		uv_cancel((uv_req_t *)&dl->gai);
	if (dl->cli != NULL)
		smtp_client_free(dl->cli);
	dl->cli = NULL;
	if (dl->msg != NULL)
		queue_return(dl->q, dl->msg);
	dl->msg = NULL;
	uv_timer_stop(&dl->timer);
	uv_close((uv_handle_t *)&dl->timer, delivery_timer_closed);
	if (!dl->reported) {
		dl->reported = true;
		queue_delivery_done(dl->q, dl);
	}
}

void
delivery_abort(struct delivery *dl)
{
	delivery_end(dl);
}
