/* SPDX-License-Identifier: MIT */
/*
 * Streams a queued message to the server after its 354: takes the body
 * from memory while the spool holds it there (spool_held_get), else reads
 * the message file in DELIVERY_READ_SIZE pieces (on the loop when the
 * page cache has them, RWF_NOWAIT; else on the libuv thread pool), runs them
 * through the dot-stuffing filter, and writes them to the connection,
 * pausing while more than DELIVERY_HIGH_WATER bytes wait to be sent.
 *
 * The message file is verified as it is read: if its size or CRC differs
 * from the envelope (I2: never deliver a partial or corrupt message), the
 * final dot is never sent, the connection is dropped (the server then
 * discards the transaction) and the entry is quarantined.
 */
#define _GNU_SOURCE /* preadv2, RWF_NOWAIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "outbox/crc32.h"
#include "outbox/daemon.h"
#include "outbox/log.h"

#include "delivery_priv.h"

static void delivery_body_read(struct delivery *dl);

static void
delivery_body_close_fd(struct delivery *dl)
{
	spool_held_put(dl->held);
	dl->held = NULL;
	if (dl->fd >= 0) {
		uv_fs_t req;
		uv_fs_close(NULL, &req, dl->fd, NULL);
		uv_fs_req_cleanup(&req);
	}
	dl->fd = -1;
}

static void
delivery_body_fail(struct delivery *dl, const char *enh, const char *text)
{
	delivery_body_close_fd(dl);
	delivery_event(dl, smtp_client_abort(dl->cli, enh, text));
}

/* The file does not match its envelope: never send it, quarantine it. */
static void
delivery_body_corrupt(struct delivery *dl)
{
	struct qmsg *m = dl->job->m;
	log_err("%s: message file does not match its envelope (size %lld, "
		"expected %llu); not sent",
		m->env.id, (long long)dl->roff,
		(unsigned long long)m->env.msg_size);
	spool_quarantine(dl->d->spool, m->env.id, "message file corrupt");
	queue_job_drop(dl->q, dl->job);
	dl->job = NULL;
	delivery_body_fail(dl, "4.3.0", "queue file corrupt");
}

static void
delivery_body_finish(struct delivery *dl)
{
	const struct envelope *e = &dl->job->m->env;
	if ((uint64_t)dl->roff != e->msg_size || dl->crc != e->msg_crc) {
		delivery_body_corrupt(dl);
		return;
	}
	delivery_body_close_fd(dl);
	/* The last piece of the body (if any) and the final dot: one write. */
	if (dot_stuff_end(&dl->dot, &dl->wire) != 0 ||
	    conn_write(dl->conn, dl->wire.data, dl->wire.len) != 0) {
		delivery_body_fail(dl, "4.3.0", "write error");
		return;
	}
	buf_reset(&dl->wire);
	delivery_event(dl, smtp_client_body_done(dl->cli));
}

/*
 * n bytes (or EOF, or -errno) arrived at p. Returns true if the next
 * piece should be read now.
 */
static bool
delivery_body_got(struct delivery *dl, const char *p, ssize_t n)
{
	if (n < 0) {
		log_warn("%s: queue file read error: %s", dl->job->m->env.id,
			 uv_strerror((int)n));
		delivery_body_fail(dl, "4.3.0", "queue file read error");
		return false;
	}
	buf_reset(&dl->wire);
	if (n > 0) {
		dl->crc = crc32_update(dl->crc, p, (size_t)n);
		dl->roff += n;
		if (dot_stuff_feed(&dl->dot, p, (size_t)n,
				   &dl->wire) != 0) {
			delivery_body_fail(dl, "4.3.0", "write error");
			return false;
		}
	}
	/* All the envelope's bytes, or the file ended early (a read of 0:
	 * a short read is not the end, RWF_NOWAIT returns what is cached).
	 * The last piece waits in dl->wire for the dot, or for nothing if
	 * the size or CRC is wrong. */
	if (n == 0 || (uint64_t)dl->roff == dl->job->m->env.msg_size) {
		delivery_body_finish(dl);
		return false;
	}
	if (conn_write(dl->conn, dl->wire.data, dl->wire.len) != 0) {
		delivery_body_fail(dl, "4.3.0", "write error");
		return false;
	}
	buf_reset(&dl->wire);
	delivery_set_timer(dl, smtp_client_timeout_ms(dl->cli));
	if (conn_write_queue(dl->conn) > DELIVERY_HIGH_WATER) {
		dl->wait_drain = true;
		return false;
	}
	return true;
}

static void
delivery_body_read_cb(uv_fs_t *req)
{
	struct delivery *dl = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	dl->fs_busy = false;
	if (dl->closing || dl->cli == NULL || dl->job == NULL) {
		delivery_body_close_fd(dl);
		delivery_unref(dl);
		return;
	}
	dl->refs--; /* the timer still holds one */
	if (delivery_body_got(dl, dl->rbuf, n))
		delivery_body_read(dl);
}

/* The bytes the envelope says are left, at most one buffer: the read
 * that brings the last of them ends the body, no read of 0 needed. */
static size_t
delivery_body_want(const struct delivery *dl)
{
	uint64_t size = dl->job->m->env.msg_size;
	uint64_t left = size > (uint64_t)dl->roff ? size - (uint64_t)dl->roff : 0;
	return left < DELIVERY_READ_SIZE ? (size_t)left : DELIVERY_READ_SIZE;
}

/*
 * Read pieces straight away while the page cache has them (a message
 * just accepted always does): preadv2(RWF_NOWAIT) never blocks the loop
 * on the disk; when it would, the read goes to the thread pool.
 */
static void
delivery_body_read(struct delivery *dl)
{
	while (dl->held != NULL) {
		/* In memory: the envelope's size is the held length. */
		size_t n = delivery_body_want(dl);
		if (!delivery_body_got(dl, dl->hbody + dl->roff, (ssize_t)n))
			return;
	}
	for (;;) {
		dl->rwant = delivery_body_want(dl);
		struct iovec iov = { dl->rbuf, dl->rwant };
		ssize_t n = preadv2(dl->fd, &iov, 1, dl->roff, RWF_NOWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP ||
			      errno == EINTR || errno == ENOSYS))
			break;
		if (!delivery_body_got(dl, dl->rbuf, n < 0 ? -errno : n))
			return;
	}
	uv_buf_t b = uv_buf_init(dl->rbuf, (unsigned)dl->rwant);
	dl->fsreq.data = dl;
	int r = uv_fs_read(dl->d->loop, &dl->fsreq, dl->fd, &b, 1, dl->roff,
			   delivery_body_read_cb);
	if (r < 0) {
		delivery_body_fail(dl, "4.3.0", "queue file read error");
		return;
	}
	dl->fs_busy = true;
	dl->refs++;
}

void
delivery_body_start(struct delivery *dl)
{
	/* The wire buffer at a piece's usual size in one go, not grown by
	 * doubling (each step a copy). */
	if ((dl->rbuf == NULL &&
	     (dl->rbuf = malloc(DELIVERY_READ_SIZE)) == NULL) ||
	    buf_reserve(&dl->wire, DELIVERY_READ_SIZE + DELIVERY_READ_SIZE / 16)
		    != 0) {
		delivery_body_fail(dl, "4.3.0", "out of memory");
		return;
	}
	uint64_t size = 0;
	size_t hlen = 0;
	dl->held = spool_held_get(dl->d->spool, dl->job->m->env.id, &dl->hbody,
				  &hlen);
	if (dl->held != NULL)
		size = hlen;
	else
		dl->fd = spool_msg_open(dl->d->spool, dl->job->m->env.id,
					&size);
	if (dl->held == NULL && dl->fd < 0) {
		log_err("%s: cannot open the message file: %s",
			dl->job->m->env.id, uv_strerror(dl->fd));
		dl->fd = -1;
		delivery_body_corrupt(dl);
		return;
	}
	/* Reads stop at the envelope's size: a longer file is caught here. */
	if (size != dl->job->m->env.msg_size) {
		dl->roff = (int64_t)size;
		delivery_body_corrupt(dl);
		return;
	}
	dl->roff = 0;
	dl->crc = 0;
	dl->wait_drain = false;
	dot_stuff_init(&dl->dot);
	delivery_body_read(dl);
}

void
delivery_body_release(struct delivery *dl)
{
	if (!dl->fs_busy) {
		free(dl->rbuf);
		dl->rbuf = NULL;
	}
	buf_free(&dl->wire);
}

void
delivery_body_drain(struct delivery *dl)
{
	if (dl->wait_drain && !dl->closing && (dl->fd >= 0 || dl->held)) {
		dl->wait_drain = false;
		delivery_body_read(dl);
	}
}

void
delivery_body_stop(struct delivery *dl)
{
	dl->wait_drain = false;
	if (!dl->fs_busy)
		delivery_body_close_fd(dl);
}
