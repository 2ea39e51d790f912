/* SPDX-License-Identifier: MIT */
/*
 * The control socket of `outbox queue`: a UNIX stream socket at
 * <spool dir>/control, one request line per connection, one JSON reply,
 * then the daemon closes (protocol: include/outbox/control.h).
 *
 * Access. control_start() unlinks a stale socket (only a socket: anything
 * else at that name is an error) -- safe because the spool lock says no
 * other daemon owns this spool -- binds, chmods it 0660 BEFORE listen()
 * so no one can connect while it still has the umask's mode, then
 * listens. The spool dir is 0750, so reaching the socket already needs
 * the daemon's uid or group. Each accepted peer is checked again with
 * SO_PEERCRED: uid 0, the daemon's euid, the daemon's egid as primary
 * group, or the egid among the peer's supplementary groups (read from
 * /proc/PID/status: no NSS lookup on the loop thread). A refused peer
 * gets {"error":"permission denied","code":"EPERM"}.
 *
 * A refused peer's request line is still read before the error reply, so
 * the client never writes into a closed socket (EPIPE) and we never close
 * with its request unread (Linux then resets the connection, and the
 * client could lose the reply); for the same reason input left after the
 * request line is drained (bounded) before close.
 *
 * Bounds. At most CONTROL_CONN_MAX connections do work at once (more get
 * an EAGAIN reply; past CONTROL_CONN_HARD they are closed at once); a
 * request line is at most CONTROL_LINE_MAX bytes;
 * every connection has a CONTROL_TIMEOUT_MS inactivity timer (reset by
 * each completed write) so a client that never sends or never reads is
 * dropped; one write at a time is in flight per connection.
 *
 * LIST streams: the request takes a snapshot of the queue ids (17 bytes a
 * message; one pass over the queue, then sorted, so the list is in arrival
 * order), then renders at most CONTROL_BATCH messages or CONTROL_CHUNK
 * bytes, writes them, and renders the next batch only when that write has
 * completed. A slow reader therefore holds one chunk of memory, never the
 * whole list, and the loop never works more than one batch at a time. Each
 * id is looked up again when its batch is rendered: a message gone since
 * the snapshot is left out, one arrived since is not listed.
 *
 * STATUS answers one status object (stats.c takes the snapshot; the JSON
 * is include/outbox/status.h).
 *
 * SHOW reads the message's header section with a bounded synchronous read
 * (at most CONTROL_HEADERS_MAX bytes of a regular file in the local spool,
 * opened O_NOFOLLOW|O_NONBLOCK by spool_msg_open) on the loop thread: it
 * is rare, small and usually in the page cache, and it avoids a thread
 * pool request that could outlive the connection.
 *
 * Ownership. struct control owns the server pipe and every ctl_conn; a
 * ctl_conn owns its pipe, timer and buffers and is freed in the last close
 * callback of its two handles; struct control is freed when its server
 * handle and every connection have closed (after control_stop()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "outbox/control.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#define CONTROL_CONN_MAX 16
#define CONTROL_CONN_HARD (4 * CONTROL_CONN_MAX)
#define CONTROL_DRAIN_MAX (64 * 1024)
#define CONTROL_TIMEOUT_MS 30000
#define CONTROL_CHUNK (64 * 1024)
#define CONTROL_BATCH 256
#define CONTROL_OUT_MAX (CONTROL_OBJ_MAX + CONTROL_CHUNK)

struct ctl_conn;

struct control {
	struct daemon *d;
	uv_pipe_t server;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_conn *conns;
	unsigned nconns;        /* allocated connections (until freed) */
	bool server_open;       /* server handle not closed yet */
	bool stopping;
};

struct ctl_conn {
	struct control *c;
	struct ctl_conn *next, **pprev;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wreq;
	char line[CONTROL_LINE_MAX + 3]; /* line, CR, LF and a NUL */
	size_t len;
	struct buf out;
	char (*ids)[ID_SIZE];   /* LIST snapshot */
	size_t nids, cap, pos, listed;
	int open_handles;
	const char *refuse;     /* error code to answer any request with */
	bool listing;           /* LIST in progress: more chunks follow */
	bool held;              /* req waits for the start-up scan to end */
	struct control_req req; /* the request, while held */
	bool last;              /* the write in flight ends the reply */
	bool closing;
};

static void ctl_conn_close(struct ctl_conn *conn);

static void
control_maybe_free(struct control *c)
{
	if (c->stopping && !c->server_open && c->nconns == 0)
		free(c);
}

static void
ctl_conn_closed_cb(uv_handle_t *h)
{
	struct ctl_conn *conn = h->data;
	if (--conn->open_handles > 0)
		return;
	struct control *c = conn->c;
	buf_free(&conn->out);
	free(conn->ids);
	free(conn);
	c->nconns--;
	control_maybe_free(c);
}

/* The one teardown path; safe from any callback of conn. */
static void
ctl_conn_close(struct ctl_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	*conn->pprev = conn->next;
	if (conn->next)
		conn->next->pprev = conn->pprev;
	uv_close((uv_handle_t *)&conn->pipe, ctl_conn_closed_cb);
	uv_close((uv_handle_t *)&conn->timer, ctl_conn_closed_cb);
}

static void
ctl_timeout_cb(uv_timer_t *t)
{
	struct ctl_conn *conn = t->data;
	log_debug("control: client timed out");
	ctl_conn_close(conn);
}

static void ctl_list_next(struct ctl_conn *conn);
static void ctl_run(struct ctl_conn *conn, const struct control_req *held);

/* Read and drop what the client sent after its request (bounded, never
 * blocking) so that closing does not reset the connection. */
static void
ctl_drain(struct ctl_conn *conn)
{
	uv_os_fd_t fd;
	char junk[4096];
	if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) != 0)
		return;
	for (size_t n = 0; n < CONTROL_DRAIN_MAX; n += sizeof(junk))
		if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			break;
}

static void
ctl_write_cb(uv_write_t *req, int status)
{
	struct ctl_conn *conn = req->data;
	if (conn->closing)
		return;
	if (status < 0) {
		log_debug("control: write failed: %s", uv_strerror(status));
		ctl_conn_close(conn);
	} else if (conn->last) {
		ctl_drain(conn);
		ctl_conn_close(conn);
	} else {
		buf_reset(&conn->out);
		ctl_list_next(conn);
	}
}

/* Write conn->out; last: close once it is written. */
static void
ctl_send(struct ctl_conn *conn, bool last)
{
	uv_buf_t b = uv_buf_init(conn->out.data, (unsigned)conn->out.len);
	conn->last = last;
	conn->wreq.data = conn;
	uv_timer_start(&conn->timer, ctl_timeout_cb, CONTROL_TIMEOUT_MS, 0);
	int r = uv_write(&conn->wreq, (uv_stream_t *)&conn->pipe, &b, 1,
			 ctl_write_cb);
	if (r < 0) {
		log_debug("control: write: %s", uv_strerror(r));
		ctl_conn_close(conn);
	}
}

static void
ctl_error(struct ctl_conn *conn, const char *msg, const char *code)
{
	buf_reset(&conn->out);
	conn->listing = false;
	if (control_json_error(&conn->out, msg, code) != 0) {
		ctl_conn_close(conn);
		return;
	}
	ctl_send(conn, true);
}

/* The reply to a change: {"ok":true,"id":ID<extra>}, or with no id (FLUSH
 * of everything) {"ok":true,"count":r}; or the error r names. */
static void
ctl_result(struct ctl_conn *conn, int r, const char *id, const char *extra)
{
	if (r == -ENOENT) {
		ctl_error(conn, "no such message", "ENOENT");
		return;
	}
	if (r < 0) {
		ctl_error(conn, strerror(-r), "EIO");
		return;
	}
	buf_reset(&conn->out);
	int rc = id[0] != '\0'
			 ? buf_printf(&conn->out, "{\"ok\":true,\"id\":\"%s\"%s}\n",
				      id, extra)
			 : buf_printf(&conn->out, "{\"ok\":true,\"count\":%d}\n", r);
	if (rc != 0) {
		ctl_conn_close(conn);
		return;
	}
	ctl_send(conn, true);
}

/* ---- LIST ---- */

static void
ctl_collect_cb(void *arg, const struct envelope *env, bool busy)
{
	struct ctl_conn *conn = arg;
	if (conn->ids == NULL && conn->cap > 0)
		return; /* an allocation failed: give up */
	if (conn->nids == conn->cap) {
		size_t cap = conn->cap ? conn->cap * 2 : 256;
		char(*ids)[ID_SIZE] = reallocarray(conn->ids, cap, ID_SIZE);
		if (ids == NULL) {
			free(conn->ids);
			conn->ids = NULL;
			conn->cap = 1;
			return;
		}
		conn->ids = ids;
		conn->cap = cap;
	}
	memcpy(conn->ids[conn->nids++], env->id, ID_SIZE);
}

static int
ctl_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ID_LEN);
}

/* Render one message of the list after its separator; skip what is gone
 * or cannot be rendered within the bound. */
static int
ctl_list_one(struct ctl_conn *conn, struct queue *q, const char *id)
{
	bool busy = false;
	const struct envelope *env = queue_ctl_find(q, id, &busy);
	if (env == NULL)
		return 0;
	size_t saved = conn->out.len;
	int rc = conn->listed > 0 ? buf_append(&conn->out, ",\n", 2) : 0;
	if (rc == 0)
		rc = control_json_msg(&conn->out, env, busy, NULL, 0, false);
	if (rc != 0) {
		conn->out.len = saved;
		conn->out.data[saved] = '\0';
		log_warn("%s: too large for outbox queue list, left out", id);
		return 0;
	}
	conn->listed++;
	return 0;
}

static void
ctl_list_next(struct ctl_conn *conn)
{
	struct daemon *d = conn->c->d;
	if (d->queue == NULL || d->stopping) {
		/* Cut short: the client sees a document without its end. */
		ctl_conn_close(conn);
		return;
	}
	size_t batch = 0;
	while (conn->pos < conn->nids && batch++ < CONTROL_BATCH &&
	       conn->out.len < CONTROL_CHUNK)
		ctl_list_one(conn, d->queue, conn->ids[conn->pos++]);
	bool done = conn->pos == conn->nids;
	if (done && buf_puts(&conn->out, conn->listed ? "\n]\n" : "]\n") != 0) {
		ctl_conn_close(conn);
		return;
	}
	ctl_send(conn, done);
}

static void
ctl_list(struct ctl_conn *conn)
{
	queue_ctl_foreach(conn->c->d->queue, ctl_collect_cb, conn);
	if (conn->ids == NULL && conn->cap > 0) {
		ctl_error(conn, "out of memory", "ENOMEM");
		return;
	}
	if (conn->nids > 1)
		qsort(conn->ids, conn->nids, ID_SIZE, ctl_id_cmp);
	conn->listing = true;
	buf_reset(&conn->out);
	if (buf_puts(&conn->out, "[\n") != 0) {
		ctl_conn_close(conn);
		return;
	}
	ctl_list_next(conn);
}

/* ---- SHOW ---- */

/*
 * Read the header section of msg/ID into h[0..*len): up to the empty
 * line (the last header's line end kept), at most CONTROL_HEADERS_MAX
 * bytes. *trunc: the section goes on past what was read. 0 or -errno.
 */
static int
ctl_read_headers(struct spool *sp, const char *id, char *h, size_t *len,
		 bool *trunc)
{
	int fd = spool_msg_open(sp, id, NULL);
	if (fd < 0)
		return fd;
	size_t n = spool_read_head(fd, h, CONTROL_HEADERS_MAX);
	close(fd);
	bool complete;
	*len = control_header_len(h, n, &complete);
	*trunc = !complete && n == CONTROL_HEADERS_MAX;
	return 0;
}

static void
ctl_show(struct ctl_conn *conn, const char *id)
{
	struct daemon *d = conn->c->d;
	bool busy = false, trunc = false;
	const struct envelope *env = queue_ctl_find(d->queue, id, &busy);
	if (env == NULL) {
		ctl_error(conn, "no such message", "ENOENT");
		return;
	}
	char *h = malloc(CONTROL_HEADERS_MAX);
	size_t hlen = 0;
	int hr = h ? ctl_read_headers(d->spool, id, h, &hlen, &trunc) : -ENOMEM;
	if (hr != 0)
		log_warn("%s: outbox queue show: cannot read the message: %s",
			 id, strerror(-hr));
	buf_reset(&conn->out);
	int rc = control_json_msg(&conn->out, env, busy, hr == 0 ? h : NULL,
				  hlen, trunc);
	free(h);
	if (rc == 0)
		rc = buf_append(&conn->out, "\n", 1);
	if (rc != 0) {
		ctl_error(conn, "message too large to show", "EIO");
		return;
	}
	ctl_send(conn, true);
}

/* ---- STATUS ---- */

/* One snapshot of counters and queue (stats.c): one pass over the queue
 * on the loop thread, like a LIST batch but without the rendering. */
static void
ctl_status(struct ctl_conn *conn)
{
	struct status *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		ctl_error(conn, "out of memory", "ENOMEM");
		return;
	}
	stats_snapshot(conn->c->d, st);
	buf_reset(&conn->out);
	int rc = status_json(&conn->out, st);
	free(st);
	if (rc != 0) {
		ctl_error(conn, "status too large", "EIO");
		return;
	}
	ctl_send(conn, true);
}

/* ---- requests ---- */

static void
ctl_request(struct ctl_conn *conn, const char *line, size_t len)
{
	struct daemon *d = conn->c->d;
	struct control_req req;
	char err[128];
	if (conn->refuse != NULL) {
		bool perm = strcmp(conn->refuse, "EPERM") == 0;
		ctl_error(conn, perm ? "permission denied"
				     : "too many control connections",
			  conn->refuse);
		return;
	}
	if (control_parse(line, len, &req, err, sizeof(err)) != 0) {
		ctl_error(conn, err, "EINVAL");
		return;
	}
	if (d->stopping || d->queue == NULL) {
		ctl_error(conn, "outboxd is stopping", "ESHUTDOWN");
		return;
	}
	/* Until the start-up scan ends the queue is incomplete: a list would
	 * miss mail and an id could be unknown. STATUS says so itself. */
	if (d->queue_loading && req.cmd != CONTROL_STATUS) {
		log_debug("control: %s held until the queue is loaded",
			  control_cmd_name(req.cmd));
		conn->req = req;
		conn->held = true;
		return;
	}
	ctl_run(conn, &req);
}

/* Answer the requests held while the queue was loading. */
void
control_queue_loaded(struct daemon *d)
{
	struct control *c = d->control;
	if (c == NULL)
		return;
	struct ctl_conn *next;
	for (struct ctl_conn *conn = c->conns; conn != NULL; conn = next) {
		next = conn->next;
		if (!conn->held || conn->closing)
			continue;
		conn->held = false;
		ctl_run(conn, &conn->req);
	}
}

static void
ctl_run(struct ctl_conn *conn, const struct control_req *held)
{
	struct daemon *d = conn->c->d;
	struct control_req req = *held;
	if (d->stopping || d->queue == NULL) {
		ctl_error(conn, "outboxd is stopping", "ESHUTDOWN");
		return;
	}
	log_debug("control: %s %s", control_cmd_name(req.cmd), req.id);
	struct queue *q = d->queue;
	const char *id = req.id;
	switch (req.cmd) {
	case CONTROL_LIST:
		ctl_list(conn);
		break;
	case CONTROL_SHOW:
		ctl_show(conn, id);
		break;
	case CONTROL_FLUSH:
		ctl_result(conn, queue_ctl_flush(q, id[0] ? id : NULL), id, "");
		break;
	case CONTROL_DELETE: {
		int r = queue_ctl_delete(q, id);
		ctl_result(conn, r, id, r == 1 ? ",\"deferred\":true"
					       : ",\"deferred\":false");
		break;
	}
	case CONTROL_HOLD:
		ctl_result(conn, queue_ctl_hold(q, id, true), id,
			   ",\"held\":true");
		break;
	case CONTROL_RELEASE:
		ctl_result(conn, queue_ctl_hold(q, id, false), id,
			   ",\"held\":false");
		break;
	case CONTROL_STATUS:
		ctl_status(conn);
		break;
	default:
		OB_PANIC("control: command %d", (int)req.cmd);
	}
}

static void
ctl_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct ctl_conn *conn = h->data;
	size_t room = sizeof(conn->line) - 1 - conn->len;
	*b = uv_buf_init(conn->line + conn->len, (unsigned)room);
}

static void
ctl_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct ctl_conn *conn = s->data;
	if (conn->closing || nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(s);
		/* A last line without its LF still counts. */
		if (nread == UV_EOF && conn->len > 0)
			ctl_request(conn, conn->line, conn->len);
		else
			ctl_conn_close(conn);
		return;
	}
	size_t old = conn->len;
	conn->len += (size_t)nread;
	char *lf = memchr(conn->line + old, '\n', conn->len - old);
	if (lf != NULL) {
		uv_read_stop(s);
		ctl_request(conn, conn->line, (size_t)(lf - conn->line));
	} else if (conn->len == sizeof(conn->line) - 1) {
		uv_read_stop(s);
		ctl_error(conn, "request too long", "EINVAL");
	}
}

/* Is gid among the supplementary groups of pid (/proc/PID/status)? */
static bool
ctl_pid_in_group(pid_t pid, gid_t gid)
{
	char path[64], data[8192];
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0)
		return false;
	data[n] = '\0';
	char *p = strstr(data, "\nGroups:");
	if (p == NULL)
		return false;
	p += 8;
	while (*p != '\0' && *p != '\n') {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t k = strspn(p, "0123456789");
		uint64_t g;
		if (k == 0 || str_nto_u64(p, k, 0, UINT32_MAX, &g) != 0)
			return false;
		if ((gid_t)g == gid)
			return true;
		p += k;
	}
	return false;
}

static bool
ctl_peer_ok(struct ctl_conn *conn)
{
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return false;
	if (cr.uid == 0 || cr.uid == geteuid() || cr.gid == getegid())
		return true;
	if (ctl_pid_in_group(cr.pid, getegid()))
		return true;
	log_warn("control: refused uid %lu pid %ld", (unsigned long)cr.uid,
		 (long)cr.pid);
	return false;
}

static void
ctl_accept_cb(uv_stream_t *server, int status)
{
	struct control *c = server->data;
	if (status < 0) {
		log_warn("control: accept: %s", uv_strerror(status));
		return;
	}
	struct ctl_conn *conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		log_warn("control: out of memory");
		return;
	}
	conn->c = c;
	buf_init(&conn->out, CONTROL_OUT_MAX);
	uv_pipe_init(c->d->loop, &conn->pipe, 0);
	uv_timer_init(c->d->loop, &conn->timer);
	conn->pipe.data = conn->timer.data = conn;
	conn->open_handles = 2;
	conn->next = c->conns;
	conn->pprev = &c->conns;
	if (c->conns)
		c->conns->pprev = &conn->next;
	c->conns = conn;
	c->nconns++;
	if (uv_accept(server, (uv_stream_t *)&conn->pipe) != 0) {
		ctl_conn_close(conn);
		return;
	}
	if (c->nconns > CONTROL_CONN_HARD) {
		ctl_conn_close(conn);
		return;
	}
	if (c->nconns > CONTROL_CONN_MAX)
		conn->refuse = "EAGAIN";
	else if (!ctl_peer_ok(conn))
		conn->refuse = "EPERM";
	uv_timer_start(&conn->timer, ctl_timeout_cb, CONTROL_TIMEOUT_MS, 0);
	if (uv_read_start((uv_stream_t *)&conn->pipe, ctl_alloc_cb,
			  ctl_read_cb) != 0)
		ctl_conn_close(conn);
}

/* ---- start and stop ---- */

/* Remove a socket left by a daemon that died; refuse anything else. */
static int
control_unlink_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}

static void
control_server_closed_cb(uv_handle_t *h)
{
	struct control *c = h->data;
	c->server_open = false;
	control_maybe_free(c);
}

static int
control_bind(struct control *c)
{
	int r = control_unlink_stale(c->path);
	if (r != 0) {
		log_err("control socket %s: %s", c->path,
			r == -EEXIST ? "exists and is not a socket"
				     : strerror(-r));
		return r;
	}
	if ((r = uv_pipe_bind(&c->server, c->path)) != 0) {
		log_err("control socket %s: %s", c->path, uv_strerror(r));
		return r;
	}
	/* Before listen(): nobody can connect while the mode is wider. */
	if (chmod(c->path, 0660) != 0) {
		r = -errno;
		log_err("control socket %s: chmod: %s", c->path, strerror(errno));
		unlink(c->path);
		return r;
	}
	r = uv_listen((uv_stream_t *)&c->server, SOMAXCONN, ctl_accept_cb);
	if (r != 0) {
		log_err("control socket %s: listen: %s", c->path,
			uv_strerror(r));
		unlink(c->path);
	}
	return r;
}

int
control_start(struct daemon *d)
{
	struct control *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->d = d;
	int n = snprintf(c->path, sizeof(c->path), "%s/%s", d->cfg.spool.dir,
			 CONTROL_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(c->path)) {
		log_err("control socket: the path %s/%s is longer than %zu bytes",
			d->cfg.spool.dir, CONTROL_SOCKET_NAME,
			sizeof(c->path) - 1);
		free(c);
		return -ENAMETOOLONG;
	}
	uv_pipe_init(d->loop, &c->server, 0);
	c->server.data = c;
	c->server_open = true;
	int r = control_bind(c);
	if (r != 0) {
		c->stopping = true;
		uv_close((uv_handle_t *)&c->server, control_server_closed_cb);
		return r;
	}
	d->control = c;
	log_info("control socket %s", c->path);
	return 0;
}

void
control_stop(struct daemon *d)
{
	struct control *c = d->control;
	if (c == NULL)
		return;
	d->control = NULL;
	c->stopping = true;
	unlink(c->path);
	uv_close((uv_handle_t *)&c->server, control_server_closed_cb);
	while (c->conns != NULL)
		ctl_conn_close(c->conns);
}
