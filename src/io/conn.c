/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	An outbound TCP connection on the libuv loop, optionally switched to
 *	TLS (implicit or STARTTLS) through io/tls.c's memory-buffer sessions.
 *
 *	Ownership (STYLE.md rules 5 and 6): struct conn embeds its uv_tcp_t
 *	and connect request; conn_close() is the one teardown path. It sets
 *	closing, after which no hook runs, and frees everything in the close
 *	callback. Every place that calls a hook checks closing afterwards,
 *	because the owner may call conn_close() from inside any hook.
 *
 *	Reads are delivered at once, so the conn never holds plaintext: the
 *	owner's line buffer is the only place pre-TLS bytes can wait, and the
 *	owner must find it empty before conn_start_tls() (STYLE.md rule 9).
 *	Writes copy the bytes into a heap request freed by its callback.
 */
#include <stdlib.h>
#include <string.h>

#include "outbox/conn.h"
#include "outbox/str.h"
#include "outbox/tls_conn.h"

#define CONN_READ_SIZE 65536
#define CONN_TLS_CHUNK 16384  /* one TLS record of plaintext per call */

enum conn_state {
	CONN_CONNECTING,
	CONN_PLAIN,
	CONN_TLS_HANDSHAKE,
	CONN_TLS_OPEN,
	CONN_DEAD,       /* failure reported; waiting for conn_close() */
};

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	struct conn_hooks hooks;
	void *arg;
	enum conn_state state;
	struct tls_conn *tls;
	bool closing;
	bool paused;
	bool want_drain;   /* the owner wrote since the last on_drain */
	size_t nwrites;    /* uv_write requests not yet called back */
	char rbuf[CONN_READ_SIZE];
};

struct conn_write_req {
	uv_write_t req;
	size_t len;
	char data[];
};

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
conn_close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	tls_conn_free(c->tls);
	free(c);
}

/* The peer went away or I/O failed: tell the owner once, then stay quiet. */
static void
conn_fail(struct conn *c, int status)
{
	if (c->closing || c->state == CONN_DEAD)
		return;
	c->state = CONN_DEAD;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->hooks.on_close)
		c->hooks.on_close(c->arg, status);
}

static void
conn_write_cb(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;

	free(req);
	c->nwrites--;
	if (c->closing)
		return;
	if (status < 0) {
		conn_fail(c, status);
		return;
	}
	if (c->nwrites == 0 && c->want_drain && c->state != CONN_DEAD) {
		c->want_drain = false;
		if (c->hooks.on_drain)
			c->hooks.on_drain(c->arg);
	}
}

static int
conn_submit(struct conn *c, struct conn_write_req *w)
{
	uv_buf_t b = uv_buf_init(w->data, (unsigned int)w->len);
	int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1,
			 conn_write_cb);
	if (r < 0) {
		free(w);
		return r;
	}
	c->nwrites++;
	return 0;
}

static int
conn_write_raw(struct conn *c, const char *data, size_t len)
{
	if (len == 0)
		return 0;
	/* Nothing queued: the socket usually takes it all now, and only
	 * what it does not take is copied to wait. An error here goes the
	 * queued way, which reports it as before. */
	if (c->nwrites == 0) {
		uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
	}
	struct conn_write_req *w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return UV_ENOMEM;
	memcpy(w->data, data, len);
	w->len = len;
	return conn_submit(c, w);
}

/* Send whatever wolfSSL produced; called after every wolfSSL call. */
static int
conn_tls_flush(struct conn *c)
{
	size_t len = tls_conn_out_len(c->tls);
	if (len == 0)
		return 0;
	struct conn_write_req *w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return UV_ENOMEM;
	w->len = tls_conn_take_out(c->tls, w->data, len);
	return conn_submit(c, w);
}

static void
conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	/* Safe to reuse: every read is consumed before read_cb returns. */
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static int
conn_read_start(struct conn *c)
{
	if (c->paused || c->closing || c->state == CONN_DEAD)
		return 0;
	int r = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb,
			      conn_read_cb);
	/* libuv 1.44 reports a second start; reading is what we want. */
	return r == UV_EALREADY ? 0 : r;
}

static void
conn_connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;

	if (c->closing)
		return;
	if (status == 0) {
		c->state = CONN_PLAIN;
		status = conn_read_start(c);
	}
	if (status < 0)
		c->state = CONN_DEAD;
	if (c->hooks.on_connect)
		c->hooks.on_connect(c->arg, status);
}

int
conn_connect(uv_loop_t *loop, const struct sockaddr *addr,
	     const struct conn_hooks *hooks, void *arg, struct conn **out)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return UV_ENOMEM;
	c->hooks = *hooks;
	c->arg = arg;
	c->state = CONN_CONNECTING;
	int r = uv_tcp_init(loop, &c->tcp);
	if (r < 0) {
		free(c);
		return r;
	}
	c->tcp.data = c;
	(void)uv_tcp_nodelay(&c->tcp, 1);
	r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, conn_connect_cb);
	if (r < 0) {
		/* Failing synchronously: no hook, just undo. */
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
		return r;
	}
	*out = c;
	return 0;
}

static void
conn_tls_failed(struct conn *c)
{
	struct tls_result res;

	/* Send the alert wolfSSL queued, if any; the owner closes. */
	(void)conn_tls_flush(c);
	c->state = CONN_DEAD;
	uv_read_stop((uv_stream_t *)&c->tcp);
	tls_conn_result(c->tls, &res);
	if (c->hooks.on_tls)
		c->hooks.on_tls(c->arg, UV_EPROTO, &res);
}

/* Decrypt and deliver until wolfSSL needs more ciphertext. */
static void
conn_tls_pump_read(struct conn *c)
{
	char plain[CONN_TLS_CHUNK];

	while (!c->closing && c->state == CONN_TLS_OPEN) {
		int n = tls_conn_read(c->tls, plain, sizeof(plain));
		int r = conn_tls_flush(c);
		if (n == 0 && r == 0)
			return;
		if (n > 0 && r == 0) {
			if (c->hooks.on_data)
				c->hooks.on_data(c->arg, plain, (size_t)n);
			continue;
		}
		conn_fail(c, r < 0 ? r : n == TLS_CONN_EOF ? UV_EOF : UV_EPROTO);
	}
}

static void
conn_tls_pump(struct conn *c)
{
	if (c->state == CONN_TLS_HANDSHAKE) {
		int r = tls_conn_handshake(c->tls);
		int fr = conn_tls_flush(c);
		if (r < 0 || fr < 0) {
			conn_tls_failed(c);
			return;
		}
		if (r == 0)
			return;
		struct tls_result res;
		c->state = CONN_TLS_OPEN;
		tls_conn_result(c->tls, &res);
		if (c->hooks.on_tls)
			c->hooks.on_tls(c->arg, 0, &res);
	}
	conn_tls_pump_read(c);
}

static void
conn_read_tls(struct conn *c, ssize_t nread)
{
	if (nread > 0 && tls_conn_feed(c->tls, c->rbuf, (size_t)nread) < 0) {
		if (c->state == CONN_TLS_HANDSHAKE)
			conn_tls_failed(c);
		else
			conn_fail(c, UV_ENOBUFS);
		return;
	}
	if (nread < 0) {
		/* During the handshake the TLS layer reports the failure
		 * (on_tls); once open, data already buffered is delivered
		 * before on_close. */
		if (nread != UV_EOF && c->state == CONN_TLS_OPEN) {
			conn_fail(c, (int)nread);
			return;
		}
		tls_conn_set_eof(c->tls);
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	conn_tls_pump(c);
}

static void
conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	(void)buf;
	if (c->closing || c->state == CONN_DEAD || nread == 0)
		return;
	if (c->tls != NULL) {
		conn_read_tls(c, nread);
		return;
	}
	if (nread < 0) {
		conn_fail(c, (int)nread);
		return;
	}
	if (c->hooks.on_data)
		c->hooks.on_data(c->arg, c->rbuf, (size_t)nread);
}

int
conn_write(struct conn *c, const char *data, size_t len)
{
	if (c->closing || c->state == CONN_DEAD)
		return UV_EPIPE;
	if (c->state == CONN_CONNECTING || c->state == CONN_TLS_HANDSHAKE)
		return UV_EAGAIN;
	if (len == 0)
		return 0;
	c->want_drain = true;
	if (c->state == CONN_PLAIN)
		return conn_write_raw(c, data, len);
	while (len > 0) {
		size_t n = len > CONN_TLS_CHUNK ? CONN_TLS_CHUNK : len;
		if (tls_conn_write(c->tls, data, n) < 0)
			return UV_EPROTO;
		int r = conn_tls_flush(c);
		if (r < 0)
			return r;
		data += n;
		len -= n;
	}
	return 0;
}

size_t
conn_write_queue(const struct conn *c)
{
	size_t n = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
	if (c->tls != NULL)
		n += tls_conn_out_len(c->tls);
	return n;
}

int
conn_start_tls(struct conn *c, struct tls_ctx *ctx, const char *host)
{
	char ip[64], err[128];

	if (c->closing || c->state != CONN_PLAIN || c->tls != NULL)
		return UV_EINVAL;
	if (host == NULL) {
		struct sockaddr_storage ss;
		int len = sizeof(ss);
		int r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss,
					   &len);
		if (r == 0)
			r = uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
		if (r < 0)
			return r;
		host = ip;
	}
	c->tls = tls_conn_new(ctx, host, err, sizeof(err));
	if (c->tls == NULL)
		return UV_EINVAL;
	c->state = CONN_TLS_HANDSHAKE;
	/* The first wolfSSL_connect() only builds the ClientHello: it cannot
	 * fail on anything the peer sent, so no hook is needed here. */
	int r = tls_conn_handshake(c->tls);
	int fr = conn_tls_flush(c);
	if (r < 0 || fr < 0) {
		c->state = CONN_DEAD;
		return r < 0 ? UV_EPROTO : fr;
	}
	c->paused = false;
	return conn_read_start(c);
}

bool
conn_is_tls(const struct conn *c)
{
	return c->tls != NULL && c->state == CONN_TLS_OPEN;
}

void
conn_pause(struct conn *c, bool paused)
{
	if (c->closing || c->paused == paused)
		return;
	c->paused = paused;
	if (c->state == CONN_CONNECTING || c->state == CONN_DEAD)
		return;
	if (paused)
		uv_read_stop((uv_stream_t *)&c->tcp);
	else
		(void)conn_read_start(c);
}

void
conn_close(struct conn *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = true;
	if (c->tls != NULL && c->state == CONN_TLS_OPEN) {
		/* Best effort: queue close_notify; uv_write usually sends it at
		 * once, and we do not wait for the peer's. */
		tls_conn_shutdown(c->tls);
		(void)conn_tls_flush(c);
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}
