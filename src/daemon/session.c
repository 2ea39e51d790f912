/* SPDX-License-Identifier: MIT */
/*
 * One inbound SMTP session: the thin glue between a libuv TCP stream, the
 * pure protocol machine (proto/smtp_server.c) and the spool.
 *
 * Flow control: while a spool write or commit is in flight the session
 * stops feeding the machine, and reads on only until SESSION_READ_SIZE
 * bytes wait (a pipelining client's next commands, usually: the socket
 * stays in epoll, where a stop and start would cost two epoll_ctl per
 * message), so memory per session stays bounded by the input buffer and
 * one body chunk. An end of input read ahead like this is acted on only
 * once the bytes before it are taken, as it would have been. Likewise
 * while more than SESSION_OUT_MAX reply bytes wait for a client that does
 * not read (E5): no new command is taken until they drain, and a timeout
 * that finds its 421 still unsent closes the connection.
 *
 * Ownership and teardown (STYLE.md 2.6): the session owns its TCP handle,
 * its timer and its spool transaction. session_close() is the only
 * teardown path and is safe from any callback; s is freed when the last of
 * its references (two handles plus an in-flight spool operation) is gone.
 * A commit that finishes after the client left still queues the message:
 * it is durable, and the client will treat the lost reply as a 451 and may
 * send again (the documented duplicate window, RELIABILITY.md A20b).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/cidr.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/smtp_server.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#include "listener_priv.h"

#define SESSION_IN_MAX (256 * 1024)
#define SESSION_READ_SIZE (64 * 1024)
#define SESSION_OUT_MAX (64 * 1024)
#define SESSION_SHUTDOWN_MS 2000 /* unsent 421 at shutdown: then close */

struct session {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct daemon *d;
	struct listener *l;
	struct session *next, *prev;
	struct smtp_server *srv;
	struct smtp_server_cfg scfg;
	struct buf in;
	struct spool_tx *tx;
	struct rewrite_stage *stage; /* this transaction's header rewriting */
	struct buf body;        /* stage output, handed to the spool */
	int tx_error;           /* first spool error of this transaction */
	bool spool_busy;        /* a write or commit is in flight */
	int read_end;           /* UV_EOF or error read ahead during one */
	bool commit_after_write;
	bool shutdown_pending;  /* daemon stopping while spool_busy */
	bool want_close;        /* close once the output is written */
	bool closing;
	bool reading;
	unsigned refs;
	unsigned writes;        /* uv_write requests in flight */
	char ip[INET6_ADDRSTRLEN];
};

struct session_write {
	uv_write_t req;
	struct session *s;
	char data[];
};

static void session_pump(struct session *s);
static void session_close(struct session *s, const char *reason);

struct session *
session_next(struct session *s)
{
	return s->next;
}

static void
session_unref(struct session *s)
{
	if (--s->refs > 0)
		return;
	smtp_server_free(s->srv);
	buf_free(&s->in);
	buf_free(&s->body);
	rewrite_stage_free(s->stage);
	struct daemon *d = s->d;
	free(s);
	daemon_maybe_exit(d);
}

static void
session_handle_closed(uv_handle_t *h)
{
	session_unref(h->data);
}

/*
 * The machine's lines are debug detail: a bad command is only counted,
 * and shows in the one line at disconnect (E13), so log volume follows
 * sessions, not bad commands. A refused message is the exception: at most
 * one per transaction, and the operator must see it at the default level
 * (A1: a smuggling attempt rejected in strict mode).
 */
static void
session_log(void *arg, const char *msg)
{
	static const char eod[] = "reject: end of data:";
	struct session *s = arg;
	if (strncmp(msg, eod, sizeof(eod) - 1) == 0)
		log_info("smtpd[%s]: %s", s->ip, msg);
	else
		log_debug("smtpd[%s]: %s", s->ip, msg);
}

/* One line per session; at info only when the client made errors. */
static void
session_log_disconnect(struct session *s)
{
	unsigned errors = s->srv != NULL ? smtp_server_errors(s->srv) : 0;
	if (errors > 0)
		log_info("disconnect from %s errors=%u", s->ip, errors);
	else
		log_debug("disconnect from %s", s->ip);
}

static void
session_timer_restart(struct session *s)
{
	if (!s->closing)
		uv_timer_again(&s->timer);
}

static void
session_write_cb(uv_write_t *req, int status)
{
	struct session_write *w = (struct session_write *)req;
	struct session *s = w->s;
	free(w);
	s->writes--;
	if (status < 0) {
		session_close(s, "write error");
	} else if (!s->closing && s->writes == 0 && s->want_close) {
		session_close(s, NULL);
	} else if (!s->closing && !s->want_close) {
		session_pump(s); /* the output queue may have drained */
	}
	session_unref(s);
}

/* Send whatever replies the machine produced. */
static void
session_flush(struct session *s)
{
	struct buf *out = smtp_server_out(s->srv);
	if (out->len == 0 || s->closing)
		return;
	struct session_write *w = malloc(sizeof(*w) + out->len);
	if (w == NULL) {
		session_close(s, "out of memory");
		return;
	}
	w->s = s;
	memcpy(w->data, out->data, out->len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)out->len);
	buf_reset(out);
	if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1,
		     session_write_cb) != 0) {
		free(w);
		session_close(s, "write error");
		return;
	}
	s->writes++;
	s->refs++;
	session_timer_restart(s);
}

/* At most one line per 10 s: a broken spool must not flood. */
static void
session_log_create_failure(int err)
{
	static int64_t last_log;
	if (daemon_now() - last_log >= 10) {
		last_log = daemon_now();
		log_warn("cannot create a queue file: %s (new mail gets "
			 "451 4.3.0)", strerror(-err));
	}
}

static void
session_data_start(struct session *s)
{
	char date[64];
	daemon_date(date, sizeof(date));
	s->tx_error = 0;
	int r = spool_tx_begin(s->d->spool, &s->tx);
	if (r < 0) {
		/* 354 is already out: take the body, answer 451 at the end. */
		s->tx = NULL;
		s->tx_error = r;
		session_log_create_failure(r);
		smtp_server_data_begin(s->srv, "NOQUEUE", date);
		return;
	}
	/* Local submission: [rewrite] applies to the header too. */
	rewrite_stage_free(s->stage);
	s->stage = rewrite_stage_new(s->d, spool_tx_id(s->tx),
				     smtp_server_tx(s->srv)->sender);
	if (s->stage == NULL) {
		s->tx_error = -ENOMEM;
		static int64_t last_oom;
		if (daemon_now() - last_oom >= 10) {
			last_oom = daemon_now();
			log_warn("%s: out of memory for the header stage (this "
				 "message gets 451 4.3.0)", spool_tx_id(s->tx));
		}
	}
	smtp_server_data_begin(s->srv, spool_tx_id(s->tx), date);
}

/* The machine's body bytes through the header stage into s->body. */
static void
session_rewrite(struct session *s, bool final)
{
	struct buf *chunk = smtp_server_chunk(s->srv);
	buf_reset(&s->body);
	int r = 0;
	if (s->tx != NULL && s->tx_error == 0 && s->stage != NULL) {
		/* Past the header the stage copies bytes through: move them. */
		if (!s->stage->hr.passthrough || buf_swap(&s->body, chunk) != 0)
			r = header_rewrite_feed(&s->stage->hr, chunk->data,
						chunk->len, &s->body);
		if (r == 0 && final)
			r = header_rewrite_finish(&s->stage->hr, &s->body);
		if (r < 0)
			s->tx_error = r;
	}
	buf_reset(chunk);
	if (final || r < 0) {
		rewrite_stage_free(s->stage);
		s->stage = NULL;
	}
}

static void
session_log_intake(struct session *s, const struct envelope *env)
{
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (client=%s)", env->id,
		 env->sender, (unsigned long long)env->msg_size, env->nrcpts,
		 s->ip);
}

/* The envelope the spool commits, from the machine's transaction. */
static struct envelope *
session_envelope(struct session *s)
{
	const struct smtp_tx *tx = smtp_server_tx(s->srv);
	struct envelope *env = calloc(1, sizeof(*env));
	if (env == NULL)
		return NULL;
	envelope_init(env);
	str_copy(env->id, sizeof(env->id), spool_tx_id(s->tx));
	env->sender = strdup(tx->sender);
	env->arrival = daemon_now();
	env->flags = (tx->body_8bit ? ENV_F_8BIT : 0) |
		     (tx->smtputf8 ? ENV_F_SMTPUTF8 : 0);
	str_copy(env->client, sizeof(env->client), s->ip);
	bool ok = env->sender != NULL;
	for (size_t i = 0; ok && i < tx->nrcpts; i++)
		ok = envelope_add_rcpt(env, tx->rcpts[i].addr) == 0;
	/* Local submission: [rewrite] (aliases, domain, admin, from). */
	if (ok && rewrite_envelope(s->d, env) != 0)
		ok = false;
	if (!ok) {
		envelope_free(env);
		free(env);
		return NULL;
	}
	return env;
}

struct session_commit {
	struct session *s;
	struct envelope *env;   /* passes to the queue on success */
	char id[ID_SIZE];
};

static void
session_commit_cb(void *arg, int status)
{
	struct session_commit *c = arg;
	struct session *s = c->s;
	s->spool_busy = false;
	bool no_file = status != 0 && spool_tx_create_failed(s->tx);
	s->tx = NULL; /* the spool frees it after this call */
	if (status == 0) {
		session_log_intake(s, c->env);
		stats_add(STATUS_RECEIVED, 1);
		queue_add(s->d->queue, c->env);
		c->env = NULL;
	} else {
		if (no_file)
			session_log_create_failure(status);
		else
			log_warn("%s: queue file write error: %s", c->env->id,
				 strerror(-status));
		envelope_free(c->env);
		free(c->env);
	}
	if (!s->closing) {
		smtp_server_commit_done(s->srv, status, c->id);
		session_timer_restart(s);
	}
	free(c);
	if (!s->closing) {
		if (s->shutdown_pending)
			session_shutdown(s);
		else
			session_pump(s);
	}
	session_unref(s);
}

/* Commit, with the body's last bytes (body: NULL or empty for none)
 * written on the way; they leave body. */
static void
session_commit_last(struct session *s, struct buf *body)
{
	struct envelope *env = NULL;
	struct session_commit *c = NULL;
	int r = s->tx_error;
	if (r == 0 && s->tx != NULL) {
		env = session_envelope(s);
		c = malloc(sizeof(*c));
		r = env && c ? 0 : -ENOMEM;
	}
	if (r == 0) {
		c->s = s;
		c->env = env;
		str_copy(c->id, sizeof(c->id), env->id);
		r = body != NULL ? spool_tx_commit_last_buf(s->tx, body, env,
							    session_commit_cb, c)
				 : spool_tx_commit(s->tx, env, session_commit_cb, c);
		if (r == 0) {
			/* Our in-memory envelope matches the disk: the size
			 * and CRC are what the spool computed as it stored. */
			spool_tx_sum(s->tx, &env->msg_size, &env->msg_crc);
			s->spool_busy = true;
			s->refs++;
			return;
		}
	}
	if (env) {
		envelope_free(env);
		free(env);
	}
	free(c);
	if (s->tx != NULL)
		spool_tx_abort(s->tx);
	s->tx = NULL;
	smtp_server_commit_done(s->srv, r ? r : -EIO, "");
}

static void
session_commit(struct session *s)
{
	session_commit_last(s, NULL);
}

static void
session_write_chunk_cb(void *arg, int status)
{
	struct session *s = arg;
	s->spool_busy = false;
	if (status < 0 && s->tx_error == 0) {
		s->tx_error = status;
		if (spool_tx_create_failed(s->tx))
			session_log_create_failure(status);
	}
	if (s->closing) {
		if (s->tx != NULL)
			spool_tx_abort(s->tx);
		s->tx = NULL;
	} else if (s->commit_after_write) {
		s->commit_after_write = false;
		session_commit(s);
		session_flush(s);
		if (!s->spool_busy)
			session_pump(s);
	} else {
		session_timer_restart(s);
		session_pump(s);
	}
	session_unref(s);
}

/* Hand the machine's body bytes to the spool; commit after the last ones. */
static void
session_store(struct session *s, bool final)
{
	session_rewrite(s, final);
	struct buf *body = &s->body;
	if (s->tx == NULL || s->tx_error != 0 || body->len == 0) {
		if (final)
			session_commit(s);
		return;
	}
	/* The last bytes ride with the commit: one pool round trip. */
	if (final) {
		session_commit_last(s, body);
		return;
	}
	/* In memory while it fits the intake log: written once, at commit. */
	if (spool_tx_hold_buf(s->tx, body) == 0)
		return;
	/* body stays untouched until the write's callback: pump waits. */
	int r = spool_tx_write(s->tx, body->data, body->len,
			       session_write_chunk_cb, s);
	if (r < 0) {
		s->tx_error = r;
		if (final)
			session_commit(s);
		return;
	}
	s->spool_busy = true;
	s->commit_after_write = final;
	s->refs++;
}

static void
session_abort_data(struct session *s)
{
	buf_reset(smtp_server_chunk(s->srv));
	rewrite_stage_free(s->stage);
	s->stage = NULL;
	if (s->tx != NULL)
		spool_tx_abort(s->tx);
	s->tx = NULL;
}

static void
session_reading(struct session *s, bool on);

/* Replies the client has not taken yet: beyond the bound, take no input. */
static bool
session_out_full(const struct session *s)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp) >
	       SESSION_OUT_MAX;
}

static void
session_pump(struct session *s)
{
	smtp_server_set_spool_free(s->srv, s->d->spool_free);
	while (!s->closing && !s->spool_busy && !s->want_close &&
	       !session_out_full(s)) {
		size_t used = 0;
		enum smtp_server_event ev =
			smtp_server_feed(s->srv, s->in.data, s->in.len, &used);
		buf_consume(&s->in, used);
		if (ev == SRV_NEED_MORE) {
			session_flush(s);
			break;
		}
		switch (ev) {
		case SRV_DATA_START:
			session_data_start(s);
			break;
		case SRV_BODY_CHUNK:
			session_store(s, false);
			break;
		case SRV_NEED_COMMIT:
			session_store(s, true);
			break;
		case SRV_DATA_ABORT:
			session_abort_data(s);
			break;
		case SRV_CLOSE:
			s->want_close = true;
			break;
		default:
			OB_PANIC("smtp_server_feed returned %d", (int)ev);
		}
		session_flush(s);
	}
	if (s->closing)
		return;
	if (s->want_close && s->writes == 0) {
		session_close(s, NULL);
		return;
	}
	if (s->read_end != 0 && !s->spool_busy && !s->want_close &&
	    !session_out_full(s)) {
		session_close(s, s->read_end == UV_EOF
					 ? "lost connection"
					 : uv_strerror(s->read_end));
		return;
	}
	bool can_read = s->read_end == 0 &&
			(!s->spool_busy || s->in.len < SESSION_READ_SIZE) &&
			!s->want_close && !session_out_full(s) &&
			s->in.len + SESSION_READ_SIZE <= SESSION_IN_MAX;
	session_reading(s, can_read);
}

static void
session_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct session *s = h->data;
	if (buf_reserve(&s->in, SESSION_READ_SIZE) != 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init(s->in.data + s->in.len, SESSION_READ_SIZE);
}

/* A 421 with text, then close once it is written (or a timeout later). */
static void
session_end(struct session *s, const char *text)
{
	smtp_server_shutdown(s->srv, text);
	session_flush(s); /* pump takes no input while replies are stuck */
	session_pump(s);
	if (!s->closing) {
		s->want_close = true;
		if (s->writes == 0)
			session_close(s, NULL);
	}
}

static void
session_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct session *s = st->data;
	if (nread == 0)
		return;
	if (nread < 0 && s->spool_busy) {
		/* Read ahead during a spool operation: the input before this
		 * end is taken first. Out of memory: read again after it. */
		if (nread != UV_ENOBUFS)
			s->read_end = (int)nread;
		session_reading(s, false);
		return;
	}
	if (nread == UV_ENOBUFS && !s->want_close) {
		/* No memory for the input buffer: say so rather than vanish. */
		log_warn("out of memory reading from %s; closing", s->ip);
		session_end(s, "4.3.0 Error: out of memory");
		return;
	}
	if (nread < 0) {
		session_close(s, nread == UV_EOF ? "lost connection"
						 : uv_strerror((int)nread));
		return;
	}
	s->in.len += (size_t)nread;
	s->in.data[s->in.len] = '\0';
	session_pump(s);
}

static void
session_reading(struct session *s, bool on)
{
	if (on == s->reading)
		return;
	s->reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&s->tcp, session_alloc_cb,
			      session_read_cb);
	else
		uv_read_stop((uv_stream_t *)&s->tcp);
}

static void
session_timeout_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->spool_busy)
		return; /* the disk answers; the repeat timer tries again */
	if (s->want_close) {
		/* a whole timeout later the last replies are still unsent */
		session_close(s, "timeout sending replies");
		return;
	}
	log_info("timeout after %s from %s", smtp_server_state_name(s->srv),
		 s->ip);
	session_end(s, "4.4.2 Error: timeout exceeded");
}

static void
session_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	if (reason != NULL && s->srv != NULL) {
		const char *state = smtp_server_state_name(s->srv);
		log_info("%s after %s from %s", reason, state, s->ip);
	}
	session_log_disconnect(s);
	if (s->tx != NULL && !s->spool_busy) {
		spool_tx_abort(s->tx);
		s->tx = NULL;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		s->l->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (--s->l->nsessions == 0)
		listener_trim_soon(s->l);
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, session_handle_closed);
	uv_close((uv_handle_t *)&s->tcp, session_handle_closed);
}

void
session_shutdown(struct session *s)
{
	if (s->closing)
		return;
	if (s->spool_busy) {
		s->shutdown_pending = true;
		return;
	}
	session_abort_data(s);
	smtp_server_shutdown(s->srv, "4.3.2 Service shutting down");
	session_flush(s);
	session_pump(s);
	if (!s->closing) {
		s->want_close = true;
		if (s->writes == 0)
			session_close(s, NULL);
	}
	/* a client that does not read must not hold up the exit (D10) */
	if (!s->closing)
		uv_timer_start(&s->timer, session_timeout_cb,
			       SESSION_SHUTDOWN_MS, SESSION_SHUTDOWN_MS);
}

static bool
session_peer(struct session *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
		return false;
	const struct config *cfg = &s->d->cfg;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		uv_ip4_name(sin, s->ip, sizeof(s->ip));
		return cidr_match(cfg->listen.allow, cfg->listen.nallow,
				  AF_INET, (unsigned char *)&sin->sin_addr);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	uv_ip6_name(sin6, s->ip, sizeof(s->ip));
	return cidr_match(cfg->listen.allow, cfg->listen.nallow, AF_INET6,
			  (unsigned char *)&sin6->sin6_addr);
}

static void
session_config(struct session *s)
{
	const struct config *cfg = &s->d->cfg;
	s->scfg.hostname = s->d->hostname;
	s->scfg.max_message_size = cfg->listen.max_message_size;
	s->scfg.max_recipients = cfg->listen.max_recipients;
	s->scfg.bare_newline = cfg->listen.bare_newline ==
					       CONFIG_BARE_NL_STRICT
				       ? SRV_BARE_NL_STRICT
				       : SRV_BARE_NL_NORMALIZE;
	s->scfg.hop_limit = SMTP_HOP_LIMIT;
	s->scfg.error_limit = SMTP_ERROR_LIMIT;
	s->scfg.min_free = cfg->spool.min_free;
	s->scfg.log = session_log;
	s->scfg.log_arg = s;
}

void
session_start(struct daemon *d, struct listener *l, uv_stream_t *server)
{
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return;
	s->d = d;
	s->l = l;
	s->refs = 2;
	buf_init(&s->in, SESSION_IN_MAX);
	/* a chunk, plus a whole held-back header section and added fields */
	buf_init(&s->body, SRV_CHUNK_MAX + HEADER_REWRITE_HOLD_MAX + 4096);
	uv_tcp_init(d->loop, &s->tcp);
	uv_timer_init(d->loop, &s->timer);
	s->tcp.data = s->timer.data = s;
	s->next = l->sessions;
	if (l->sessions)
		l->sessions->prev = s;
	l->sessions = s;
	l->nsessions++;
	str_copy(s->ip, sizeof(s->ip), "unknown");
	if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
		session_close(s, NULL);
		return;
	}
	bool allowed = session_peer(s);
	stats_add(STATUS_CONNECTIONS, 1);
	stats_add(STATUS_REJECTED, allowed ? 0 : 1);
	session_config(s);
	s->srv = smtp_server_new(&s->scfg, s->ip, allowed);
	if (s->srv == NULL) {
		session_close(s, "out of memory");
		return;
	}
	log_debug("connect from %s%s", s->ip, allowed ? "" : " (not allowed)");
	if (!allowed)
		log_info("reject: client %s is not in [listen] allow", s->ip);
	uv_tcp_nodelay(&s->tcp, 1);
	uint64_t t = d->cfg.listen.timeout_ms;
	uv_timer_start(&s->timer, session_timeout_cb, t, t);
	smtp_server_greet(s->srv);
	session_flush(s);
	session_pump(s);
}
