/* SPDX-License-Identifier: MIT */
/*
 * Outbound delivery glue: drives the pure SMTP client (proto/smtp_client.c)
 * over a conn (io/conn.c), feeds it reply lines, and turns its results into
 * per-recipient state through the queue.
 *
 * A delivery belongs to one destination. It starts with one job in hand
 * and, once its session is ready, keeps taking that destination's jobs;
 * with none left it parks for DELIVERY_IDLE_MS so the next job reuses the
 * session, then QUITs.
 *
 * Teardown: delivery_end() is the only path; it is safe from any callback.
 * The struct is freed when its references (the timer handle, a pending
 * getaddrinfo, a pending file read) are all gone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/classify.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#include "delivery_priv.h"

static void delivery_fail(struct delivery *dl);

void
delivery_unref(struct delivery *dl)
{
	if (--dl->refs > 0)
		return;
	/* The last sessions of a burst end after the queue has emptied
	 * (and at shutdown, after it is gone: the listener is stopping
	 * then, and this does nothing). */
	listener_trim_soon(dl->d->listener);
	buf_free(&dl->lines);
	buf_free(&dl->wire);
	free(dl->rbuf);
	free(dl->rcpt_ptrs);
	free(dl->rcpt_idx);
	free(dl);
}

static void
delivery_timer_closed(uv_handle_t *h)
{
	delivery_unref(h->data);
}

void
delivery_set_last(struct delivery *dl, int code, const char *enh,
		  const char *fmt, ...)
{
	memset(&dl->last, 0, sizeof(dl->last));
	dl->last.code = code;
	dl->last.cmd = "";
	str_copy(dl->last.enh, sizeof(dl->last.enh), enh);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dl->last.text, sizeof(dl->last.text), fmt, ap);
	va_end(ap);
	log_info("%s", dl->last.text);
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
	if (dl->waking) {
		dl->waking = false;
		delivery_event(dl, CLI_READY);
		return;
	}
	if (dl->idle) {
		dest_unpark(dl->dest, dl);
		dl->idle = false;
		delivery_event(dl, smtp_client_quit(dl->cli));
		return;
	}
	if (dl->connecting) {
		delivery_set_last(dl, 0, "4.4.1", "connect to %s: Connection "
			 "timed out", dl->relay);
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
delivery_start(struct daemon *d, struct queue *q, struct dest *dest,
	       struct job *job)
{
	struct delivery *dl = calloc(1, sizeof(*dl));
	if (dl == NULL)
		return NULL;
	dl->d = d;
	dl->q = q;
	dl->dest = dest;
	dl->job = job;
	dl->fd = -1;
	dl->refs = 1;
	dl->route_gen = d->route_gen;
	buf_init(&dl->lines, 2 * SMTP_REPLY_PARSE_MAX);
	buf_init(&dl->wire, 4 * DELIVERY_READ_SIZE);
	str_copy(dl->relay, sizeof(dl->relay), "none");
	dl->all_next = dest->all;
	if (dest->all)
		dest->all->all_prev = dl;
	dest->all = dl;
	uv_timer_init(d->loop, &dl->timer);
	dl->timer.data = dl;
	/* Start from the loop, never inside the caller (dispatch). */
	uv_timer_start(&dl->timer, delivery_timeout_cb, 0, 0);
	return dl;
}

bool
delivery_stale(const struct delivery *dl)
{
	return dl->route_gen != dl->d->route_gen;
}

struct delivery **
delivery_next_idle(struct delivery *dl)
{
	return &dl->idle_next;
}

void
delivery_wake(struct delivery *dl, struct job *job)
{
	dl->job = job;
	dl->idle = false;
	dl->waking = true;
	uv_timer_start(&dl->timer, delivery_timeout_cb, 0, 0);
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
delivery_job_done(struct delivery *dl)
{
	struct job *job = dl->job;
	dl->job = NULL;
	queue_job_done(dl->q, job);
}

static void
delivery_msg_done(struct delivery *dl)
{
	const struct smtp_client_msg_result *res = smtp_client_msg_result(dl->cli);
	size_t n = res->nrcpts < dl->nsent ? res->nrcpts : dl->nsent;
	for (size_t i = 0; i < n; i++)
		queue_rcpt_result(dl->job, dl->rcpt_idx[i], dl->relay,
				  &res->rcpt[i], delivery_stage(&res->rcpt[i]));
	delivery_job_done(dl);
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
		queue_rcpt_result(dl->job, dl->rcpt_idx[i], dl->relay,
				  refused ? r : fail,
				  refused ? delivery_stage(r) : STAGE_SESSION);
	}
	/* Only those without a result yet: one log line per recipient. */
	for (size_t i = n; i < dl->nsent; i++)
		queue_rcpt_result(dl->job, dl->rcpt_idx[i], dl->relay, fail,
				  STAGE_SESSION);
	delivery_job_done(dl);
}

/* Offer the job in hand: its recipients still pending. 0, or -1 if none. */
static int
delivery_collect(struct delivery *dl)
{
	struct job *job = dl->job;
	struct envelope *e = &job->m->env;
	free(dl->rcpt_ptrs);
	free(dl->rcpt_idx);
	dl->rcpt_ptrs = calloc(job->n ? job->n : 1, sizeof(char *));
	dl->rcpt_idx = calloc(job->n ? job->n : 1, sizeof(size_t));
	dl->nsent = 0;
	if (dl->rcpt_ptrs == NULL || dl->rcpt_idx == NULL ||
	    job->m->delete_pending)
		return -1;
	for (size_t i = 0; i < job->n; i++) {
		struct env_rcpt *r = &e->rcpts[job->idx[i]];
		if (r->state != RCPT_PENDING)
			continue;
		dl->rcpt_ptrs[dl->nsent] = r->addr;
		dl->rcpt_idx[dl->nsent++] = i;
	}
	return dl->nsent > 0 ? 0 : -1;
}

static enum smtp_client_event
delivery_send_msg(struct delivery *dl)
{
	const struct envelope *e = &dl->job->m->env;
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

/*
 * This MX host cannot take the message in hand (its SIZE limit, or no
 * SMTPUTF8; no MAIL went out), but another MX host may: leave this one and
 * carry the job to the next address in the same attempt (RELIABILITY B13,
 * A23). Only the last host's refusal bounces it; if the next one is
 * unreachable the job is deferred as for any connection failure.
 */
static bool
delivery_try_next_mx(struct delivery *dl)
{
	const struct smtp_client_msg_result *res =
		smtp_client_msg_result(dl->cli);
	if (delivery_route_is_relay(dl) || dl->job == NULL ||
	    !classify_host_limit(&res->msg) || !delivery_route_more(dl))
		return false;
	log_info("%s: %s: %s; trying the next MX host", dl->relay,
		 dl->job->m->env.id, res->msg.text);
	dl->last = res->msg;
	(void)smtp_client_quit(dl->cli);
	delivery_flush(dl);
	delivery_route_next(dl);
	return true;
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
	struct tls_ctx *ctx = delivery_route_is_relay(dl) ? dl->d->tls
							  : dl->d->mx_tls;
	if (ctx == NULL)
		return smtp_client_abort(dl->cli, "4.7.5",
					 "no TLS context configured");
	const char *host = delivery_route_host(dl)->name;
	int r = conn_start_tls(dl->conn, ctx,
			       delivery_is_ip(host) ? NULL : host);
	if (r != 0)
		return smtp_client_abort(dl->cli, "4.7.5", "cannot start TLS");
	return CLI_WAIT;
}

static void
delivery_session_ready(struct delivery *dl)
{
	dl->session_ok = true;
	if (!dl->ever_ok) {
		dl->ever_ok = true;
		dest_connected(dl->q, dl->dest);
	}
	const char *tls = !conn_is_tls(dl->conn) ? "none"
			  : dl->tls_verified     ? "verified"
						 : "untrusted";
	log_info("%s: session ready, tls=%s", dl->relay, tls);
}

/*
 * The session is ready for a transaction: take the next job with
 * something pending. Returns false when there is nothing to send now
 * (parked, or *ev is the QUIT).
 */
static bool
delivery_ready(struct delivery *dl, enum smtp_client_event *ev)
{
	if (!dl->session_ok)
		delivery_session_ready(dl);
	/* A session to the route of an older configuration ends here. */
	bool stale = delivery_stale(dl);
	for (;;) {
		if (dl->job == NULL && !stale)
			dl->job = dest_take(dl->q, dl->dest);
		if (dl->job == NULL)
			break;
		if (delivery_collect(dl) == 0) {
			*ev = delivery_send_msg(dl);
			return true;
		}
		delivery_job_done(dl); /* nothing pending in it any more */
	}
	if (!stale && dest_park(dl->q, dl->dest, dl)) {
		dl->idle = true;
		delivery_body_release(dl);
		delivery_set_timer(dl, DELIVERY_IDLE_MS);
		return false;
	}
	*ev = smtp_client_quit(dl->cli);
	return true;
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
			if (!delivery_ready(dl, &ev))
				return;
			break;
		case CLI_NEED_BODY:
			delivery_set_timer(dl, smtp_client_timeout_ms(dl->cli));
			delivery_body_start(dl);
			return;
		case CLI_MSG_DONE:
			if (delivery_try_next_mx(dl))
				return;
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
 * TLS, AUTH) the next address or host is tried (an opportunistic TLS
 * failure first retries the same host in plaintext); after that, the job
 * in hand is deferred and the connection ends.
 */
static void
delivery_fail(struct delivery *dl)
{
	const struct smtp_client_failure *f = smtp_client_failure(dl->cli);
	stats_add(STATUS_AUTH_FAILURES, strcmp(f->r.cmd, "AUTH") == 0);
	log_info("%s: session failed while %s: %s", dl->relay,
		 f->state ? f->state : "?", f->r.text);
	if (!dl->session_ok) {
		dl->last = f->r;
		if (f->tls_failed && !dl->plain_retry &&
		    !delivery_route_is_relay(dl)) {
			log_info("%s: TLS handshake failed; retrying in "
				 "plaintext", dl->relay);
			delivery_route_plain(dl);
			return;
		}
		delivery_route_next(dl);
		return;
	}
	struct smtp_client_result r = f->r;
	if (f->after_dot)
		log_warn("%s: possible duplicate: the message may have been "
			 "delivered before the failure",
			 dl->job ? dl->job->m->env.id : "-");
	if (dl->job != NULL && f->in_tx) {
		delivery_fail_tx(dl, &r);
	} else if (dl->job != NULL) {
		queue_job_result_all(dl->job, dl->relay, &r, STAGE_SESSION);
		delivery_job_done(dl);
	}
	delivery_end(dl);
}

/* No address of any host worked: defer, and back the destination off. */
void
delivery_give_up(struct delivery *dl)
{
	struct smtp_client_result r = dl->last;
	if (r.text[0] == '\0') {
		str_copy(r.enh, sizeof(r.enh), "4.4.1");
		str_copy(r.text, sizeof(r.text), "no host reachable");
	}
	r.cmd = "";
	const char *relay = dl->sessions > 0 ? dl->relay : "none";
	if (dl->job != NULL) {
		queue_job_result_all(dl->job, relay, &r, STAGE_SESSION);
		delivery_job_done(dl);
	}
	dest_failed(dl->q, dl->dest, &r);
	delivery_end(dl);
}

/* A permanent routing answer (null MX, NXDOMAIN): for every waiting job. */
void
delivery_route_failed(struct delivery *dl, const struct smtp_client_result *r)
{
	if (dl->job != NULL) {
		queue_job_result_all(dl->job, "none", r, STAGE_DATA);
		delivery_job_done(dl);
	}
	dest_fail_jobs(dl->q, dl->dest, r, true);
	delivery_end(dl);
}

static void
delivery_on_connect(void *arg, int status)
{
	struct delivery *dl = arg;
	dl->connecting = false;
	if (status != 0) {
		delivery_set_last(dl, 0, "4.4.1", "connect to %s: %s",
				  dl->relay, uv_strerror(status));
		delivery_route_next(dl);
		return;
	}
	dl->sessions++;
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
		if (st == BUF_TOO_LONG || used == n + 1) {
			/* RFC 5321 2.3.8: a reply line ends in CRLF. */
			buf_reset(&dl->lines);
			delivery_event(dl, smtp_client_abort(
						   cli, "4.5.0",
						   st == BUF_TOO_LONG
							   ? "reply line too long"
							   : "malformed reply: bare <LF>"));
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
	dl->tls_verified = status == 0 && res->verified;
	if (status == 0)
		log_info("%s: TLS connection established: %s with cipher %s "
			 "(%s%s%s)",
			 dl->relay, res->version, res->cipher,
			 res->verified ? "verified" : "untrusted",
			 res->verified || !res->error[0] ? "" : ": ",
			 res->verified ? "" : res->error);
	else
		log_warn("%s: TLS handshake failed: %s", dl->relay,
			 res->error[0] ? res->error : "unknown error");
	stats_add(STATUS_TLS_FAILURES, status != 0);
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
	if (dl->idle) {
		/* The server ended an idle session: nothing was in flight. */
		dest_unpark(dl->dest, dl);
		dl->idle = false;
		delivery_end(dl);
		return;
	}
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

static void
delivery_client_log(void *arg, const char *msg)
{
	struct delivery *dl = arg;
	log_debug("smtp[%s]: %s", dl->relay, msg);
}

static void
delivery_client_cfg(struct delivery *dl)
{
	const struct config *cfg = &dl->d->cfg;
	struct smtp_client_cfg *c = &dl->ccfg;
	memset(c, 0, sizeof(*c));
	c->helo = dl->d->hostname;
	c->log = delivery_client_log;
	c->log_arg = dl;
	if (delivery_route_is_relay(dl)) {
		const struct route_host *h = delivery_route_host(dl);
		switch (cfg->relay.tls) {
		case CONFIG_TLS_AUTO:
			c->tls = h->port == 465 ? CLI_TLS_IMPLICIT : CLI_TLS_STARTTLS;
			break;
		case CONFIG_TLS_STARTTLS:
			c->tls = CLI_TLS_STARTTLS;
			break;
		case CONFIG_TLS_IMPLICIT:
			c->tls = CLI_TLS_IMPLICIT;
			break;
		case CONFIG_TLS_NONE:
			c->tls = CLI_TLS_NONE;
			break;
		}
		c->tls_required = c->tls != CLI_TLS_NONE;
		c->user = cfg->relay.user[0] ? cfg->relay.user : NULL;
		c->password = dl->d->password;
		return;
	}
	bool none = cfg->mx.tls == CONFIG_MX_TLS_NONE || dl->plain_retry;
	c->tls = none ? CLI_TLS_NONE : CLI_TLS_STARTTLS;
	c->tls_required = cfg->mx.tls == CONFIG_MX_TLS_REQUIRED;
}

void
delivery_session_begin(struct delivery *dl)
{
	delivery_client_cfg(dl);
	buf_reset(&dl->lines);
	dl->tls_verified = false;
	dl->cli = smtp_client_new(&dl->ccfg);
	if (dl->cli == NULL) {
		delivery_set_last(dl, 0, "4.3.0", "out of memory");
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
	if (dl->dns != NULL)
		resolver_cancel(dl->dns);
	dl->dns = NULL;
	if (dl->cli != NULL)
		smtp_client_free(dl->cli);
	dl->cli = NULL;
	if (dl->idle)
		dest_unpark(dl->dest, dl);
	dl->idle = false;
	if (dl->job != NULL)
		queue_job_return(dl->q, dl->job);
	dl->job = NULL;
	struct dest *dest = dl->dest;
	if (dl->all_prev)
		dl->all_prev->all_next = dl->all_next;
	else
		dest->all = dl->all_next;
	if (dl->all_next)
		dl->all_next->all_prev = dl->all_prev;
	uv_timer_stop(&dl->timer);
	uv_close((uv_handle_t *)&dl->timer, delivery_timer_closed);
	dest_delivery_done(dl->q, dest, dl->ever_ok);
}

void
delivery_abort(struct delivery *dl)
{
	delivery_end(dl);
}
