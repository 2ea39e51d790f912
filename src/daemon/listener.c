/* SPDX-License-Identifier: MIT */
/*
 * The SMTP listener: one libuv TCP server per [listen] address. Accepting is
 * cheap and bounded: beyond max_connections a client gets "421 4.7.0" and is
 * closed at once, so a flood cannot exhaust memory or descriptors. Sessions
 * are also capped below RLIMIT_NOFILE, so that the queue runner keeps
 * descriptors for spool files and upstream sockets (RELIABILITY.md E2). The
 * listener owns its server handles; sessions own themselves and report
 * their end through listener_session_done().
 */
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#include "listener_priv.h"

struct server_sock {
	uv_tcp_t tcp;
	struct listener *l;
};

static int
listener_addr(const struct config_hostport *hp, struct sockaddr_storage *ss)
{
	if (uv_ip4_addr(hp->host, hp->port, (struct sockaddr_in *)ss) == 0)
		return 0;
	return uv_ip6_addr(hp->host, hp->port, (struct sockaddr_in6 *)ss);
}

static void
listener_reject_write_cb(uv_write_t *req, int status)
{
	uv_close((uv_handle_t *)req->handle, (uv_close_cb)free);
	free(req);
}

/*
 * Over the limit: tell the client why, then close. The reply goes straight
 * into the empty socket buffer and the handle is closed at once, which
 * releases the descriptor now rather than a loop turn later: a burst of
 * refusals must not use up the descriptors it protects.
 */
static void
listener_reject(uv_tcp_t *client)
{
	static const char msg[] = "421 4.7.0 Error: too many connections\r\n";
	stats_add(STATUS_CONNECTIONS, 1);
	stats_add(STATUS_REJECTED, 1);
	uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
	if (uv_try_write((uv_stream_t *)client, &b, 1) == (int)b.len) {
		uv_close((uv_handle_t *)client, (uv_close_cb)free);
		return;
	}
	uv_write_t *req = malloc(sizeof(*req));
	if (req == NULL || uv_write(req, (uv_stream_t *)client, &b, 1,
				    listener_reject_write_cb) != 0) {
		free(req);
		uv_close((uv_handle_t *)client, (uv_close_cb)free);
	}
}

static void
listener_accept_cb(uv_stream_t *server, int status)
{
	struct server_sock *ss = server->data;
	struct listener *l = ss->l;
	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	unsigned limit = l->d->cfg.listen.max_connections;
	if (limit > l->fd_cap)
		limit = l->fd_cap;
	if (!l->stopping && l->nsessions < limit) {
		session_start(l->d, l, server);
		return;
	}
	uv_tcp_t *client = malloc(sizeof(*client));
	if (client == NULL)
		return;
	uv_tcp_init(l->d->loop, client);
	if (uv_accept(server, (uv_stream_t *)client) != 0 || l->stopping) {
		uv_close((uv_handle_t *)client, (uv_close_cb)free);
		return;
	}
	log_warn("connection limit %u reached; refusing a client", limit);
	listener_reject(client);
}

static int
listener_bind_one(struct listener *l, const struct config_hostport *hp)
{
	struct sockaddr_storage sa;
	if (listener_addr(hp, &sa) != 0) {
		log_err("listen: bad address %s", hp->host);
		return -1;
	}
	struct server_sock *ss = calloc(1, sizeof(*ss));
	if (ss == NULL)
		return -1;
	ss->l = l;
	uv_tcp_init(l->d->loop, &ss->tcp);
	ss->tcp.data = ss;
	l->socks[l->nsocks++] = ss;
	unsigned flags = sa.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
	int r = uv_tcp_bind(&ss->tcp, (struct sockaddr *)&sa, flags);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&ss->tcp, 511, listener_accept_cb);
	if (r != 0) {
		log_err("cannot listen on %s%s%s:%u: %s",
			sa.ss_family == AF_INET6 ? "[" : "", hp->host,
			sa.ss_family == AF_INET6 ? "]" : "", hp->port,
			uv_strerror(r));
		return -1;
	}
	return 0;
}

static void
listener_space_cb(uv_fs_t *req)
{
	struct listener *l = req->data;
	l->space_busy = false;
	if (req->result == 0 && req->ptr != NULL) {
		const uv_statfs_t *st = req->ptr;
		l->d->spool_free = st->f_bavail * st->f_bsize;
	}
	uv_fs_req_cleanup(req);
	if (l->orphaned)
		free(l);  /* listener_free left it to us */
}

static void
listener_trim_cb(uv_timer_t *t)
{
	struct listener *l = t->data;
	malloc_trim(0);
	l->trim_last = uv_now(l->d->loop);
}

/*
 * glibc keeps freed memory that is not at the top of the heap, and up to
 * the trim threshold (main.c) of what is: a burst's held bodies, read
 * buffers and queue entries stay resident (30 MiB after a 100 KiB load at
 * c=100) unless given back. So when activity stops (intake quiet, the
 * last session closed, the queue empty), trim a moment later, once the
 * closing handles have freed theirs; at most once a second, since at a
 * steady trickle activity stops after every message.
 */
void
listener_trim_soon(struct listener *l)
{
	if (l == NULL || l->stopping ||
	    uv_is_active((uv_handle_t *)&l->trim_timer))
		return;
	uint64_t now = uv_now(l->d->loop);
	uint64_t next = l->trim_last + 1000;
	uv_timer_start(&l->trim_timer, listener_trim_cb,
		       next > now + 100 ? next - now : 100, 0);
}

/* The spool's free space, off the loop thread, once a second. */
static void
listener_space_timer_cb(uv_timer_t *t)
{
	struct listener *l = t->data;
	/* The spool's own once-a-second work rides on this timer. */
	if (spool_tick(l->d->spool))
		listener_trim_soon(l);
	if (l->space_busy)
		return;
	l->space_req.data = l;
	if (uv_fs_statfs(l->d->loop, &l->space_req, l->d->cfg.spool.dir,
			 listener_space_cb) == 0)
		l->space_busy = true;
}

/*
 * Sessions the descriptor limit allows: each holds a socket, and a spool
 * file while in DATA. A quarter of the limit plus a fixed amount stays
 * for everything else (spool, queue runner, upstream sockets, DNS, logs).
 */
static unsigned
listener_fd_cap(unsigned max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= UINT_MAX)
		return UINT_MAX;
	uint64_t nofile = rl.rlim_cur;
	uint64_t reserve = LISTENER_FD_RESERVE + nofile / 4;
	unsigned cap = nofile > reserve + 1 ? (unsigned)(nofile - reserve) : 1;
	if (cap < max_connections)
		log_warn("at most %u sessions, not max_connections %u: the open "
			 "files limit is %llu (raise it, e.g. LimitNOFILE= in "
			 "systemd)", cap, max_connections,
			 (unsigned long long)nofile);
	return cap;
}

int
listener_start(struct daemon *d)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->d = d;
	l->fd_cap = listener_fd_cap(d->cfg.listen.max_connections);
	d->listener = l;
	d->spool_free = UINT64_MAX;
	uv_timer_init(d->loop, &l->space_timer);
	l->space_timer.data = l;
	uv_timer_start(&l->space_timer, listener_space_timer_cb, 0, 1000);
	uv_timer_init(d->loop, &l->trim_timer);
	l->trim_timer.data = l;
	char list[1024] = "";
	for (size_t i = 0; i < d->cfg.listen.naddress; i++) {
		const struct config_hostport *hp = &d->cfg.listen.address[i];
		if (listener_bind_one(l, hp) != 0)
			return -1;
		char one[300];
		snprintf(one, sizeof(one), "%s%s%s%s:%u", i ? " " : "",
			 strchr(hp->host, ':') ? "[" : "", hp->host,
			 strchr(hp->host, ':') ? "]" : "", hp->port);
		size_t n = strlen(list);
		str_copy(list + n, sizeof(list) - n, one);
	}
	log_info("outboxd ready: listening on %s", list);
	return 0;
}

void
listener_stop(struct listener *l)
{
	if (l == NULL || l->stopping)
		return;
	l->stopping = true;
	uv_close((uv_handle_t *)&l->space_timer, NULL);
	uv_close((uv_handle_t *)&l->trim_timer, NULL);
	for (size_t i = 0; i < l->nsocks; i++)
		uv_close((uv_handle_t *)&l->socks[i]->tcp, (uv_close_cb)free);
	l->nsocks = 0;
	struct session *s = l->sessions, *next;
	for (; s != NULL; s = next) {
		next = session_next(s);
		session_shutdown(s);
	}
}

unsigned
listener_sessions(const struct listener *l)
{
	return l ? l->nsessions : 0;
}

void
listener_free(struct listener *l)
{
	if (l != NULL)
		l->d->listener = NULL;
	if (l != NULL && l->space_busy) {
		l->orphaned = true; /* listener_space_cb frees it */
		return;
	}
	free(l);
}
