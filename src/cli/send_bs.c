/* SPDX-License-Identifier: MIT */
/*
 * `sendmail -bs`: an SMTP session on stdin/stdout (RELIABILITY.md G11).
 * It runs the listener's own pure session machine (smtp_server.h), so
 * every command, limit and reply is the one the TCP listener gives; only
 * the storage differs: each accepted message is written to the maildrop
 * (send_drop_write, synced) before its 250, exactly as `sendmail` does.
 * The caller is a local user, so it may relay; the daemon applies
 * [rewrite] when it takes the file in.
 *
 * Input is read with the [listen] timeout; on timeout the session ends
 * with 421 as on the listener. The exit status is 0 once the session has
 * ended (each message's fate was in its reply), 74 if stdout fails.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "outbox/crc32.h"
#include "outbox/daemon.h"
#include "outbox/id.h"
#include "outbox/smtp_server.h"
#include "outbox/str.h"

#include "cli.h"
#include "send_priv.h"

#define BS_READ_SIZE 65536

struct bs {
	const struct config *cfg;
	struct smtp_server *srv;
	struct buf in;          /* stdin bytes not yet consumed */
	struct buf msg;         /* the message of the open transaction */
	char id[ID_SIZE];
	bool msg_failed;        /* a body byte was lost: the commit fails */
	bool out_failed;
};

/* Everything the machine wants said, to stdout. */
static void
bs_flush(struct bs *b)
{
	struct buf *out = smtp_server_out(b->srv);
	size_t off = 0;
	while (!b->out_failed && off < out->len) {
		ssize_t n = write(STDOUT_FILENO, out->data + off,
				  out->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			b->out_failed = true;
		else
			off += (size_t)n;
	}
	buf_reset(out);
}

/* Read more input: 1 got some, 0 end of input, -ETIMEDOUT, -errno. */
static int
bs_read(struct bs *b)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	uint64_t ms = b->cfg->listen.timeout_ms;
	int r = poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
	if (r < 0)
		return errno == EINTR ? 1 : -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (buf_reserve(&b->in, BS_READ_SIZE) != 0)
		return -ENOMEM;
	ssize_t n = read(STDIN_FILENO, b->in.data + b->in.len, BS_READ_SIZE);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	b->in.len += (size_t)n;
	return n > 0;
}

/* The spool's free space, for the D5 check on MAIL (as the listener). */
static void
bs_spool_free(struct bs *b)
{
	struct statvfs v;
	if (statvfs(b->cfg->spool.dir, &v) == 0)
		smtp_server_set_spool_free(b->srv, (uint64_t)v.f_bavail *
						   v.f_frsize);
}

static void
bs_data_start(struct bs *b)
{
	char date[64];
	id_new(b->id);
	daemon_date(date, sizeof(date));
	buf_reset(&b->msg);
	b->msg_failed = false;
	smtp_server_data_begin(b->srv, b->id, date);
}

/* Move the machine's body bytes into the message. */
static int
bs_take_chunk(struct bs *b)
{
	struct buf *chunk = smtp_server_chunk(b->srv);
	if (buf_append(&b->msg, chunk->data, chunk->len) != 0)
		b->msg_failed = true;
	buf_reset(chunk);
	return b->msg_failed ? -ENOBUFS : 0;
}

/* The transaction into the maildrop; 0 or -EIO. */
static int
bs_drop(struct bs *b)
{
	const struct smtp_tx *tx = smtp_server_tx(b->srv);
	struct envelope e;
	char why[SEND_WHY_MAX];
	envelope_init(&e);
	str_copy(e.id, sizeof(e.id), b->id);
	e.sender = strdup(tx->sender);
	int r = e.sender != NULL ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < tx->nrcpts; i++)
		r = envelope_add_rcpt(&e, tx->rcpts[i].addr);
	if (r == 0) {
		e.arrival = (int64_t)time(NULL);
		e.msg_size = b->msg.len;
		e.msg_crc = crc32_update(0, b->msg.data, b->msg.len);
		e.flags = (tx->body_8bit ? ENV_F_8BIT : 0) |
			  (tx->smtputf8 ? ENV_F_SMTPUTF8 : 0);
		snprintf(e.client, sizeof(e.client), "uid %u",
			 (unsigned)getuid());
		if (send_drop_write(b->cfg->spool.dir, &e,
				    b->msg.data ? b->msg.data : "", b->msg.len,
				    why, sizeof(why)) != 0) {
			fprintf(stderr, "sendmail: cannot queue the message: "
					"%s\n", why);
			r = -EIO;
		} else {
			str_copy(b->id, sizeof(b->id), e.id);
		}
	}
	envelope_free(&e);
	buf_reset(&b->msg);
	return r;
}

static void
bs_commit(struct bs *b)
{
	int r = bs_take_chunk(b);
	if (r == 0)
		r = bs_drop(b);
	smtp_server_commit_done(b->srv, r == 0 ? 0 : -EIO, b->id);
}

/* Feed what we have; false once the session is over. */
static bool
bs_step(struct bs *b)
{
	size_t used = 0;
	enum smtp_server_event ev =
		smtp_server_feed(b->srv, b->in.data, b->in.len, &used);
	buf_consume(&b->in, used);
	switch (ev) {
	case SRV_NEED_MORE: {
		bs_flush(b);
		int r = bs_read(b);
		if (r == -ETIMEDOUT)
			smtp_server_shutdown(b->srv,
					     "4.4.2 Error: timeout exceeded");
		else if (r <= 0)
			return false; /* the client went away */
		bs_spool_free(b);
		return true;
	}
	case SRV_DATA_START:
		bs_data_start(b);
		return true;
	case SRV_BODY_CHUNK:
		(void)bs_take_chunk(b); /* a failure fails the commit */
		return true;
	case SRV_NEED_COMMIT:
		bs_commit(b);
		return true;
	case SRV_DATA_ABORT:
		buf_reset(smtp_server_chunk(b->srv));
		buf_reset(&b->msg);
		return true;
	case SRV_CLOSE:
		return false;
	}
	return false;
}

int
send_bs(const struct config *cfg, const char *host)
{
	char ip[32];
	struct smtp_server_cfg scfg = {
		.hostname = host,
		.max_message_size = cfg->listen.max_message_size,
		.max_recipients = cfg->listen.max_recipients,
		.bare_newline = cfg->listen.bare_newline == CONFIG_BARE_NL_STRICT
					? SRV_BARE_NL_STRICT
					: SRV_BARE_NL_NORMALIZE,
		.hop_limit = SMTP_HOP_LIMIT,
		.error_limit = SMTP_ERROR_LIMIT,
		.min_free = cfg->spool.min_free,
	};
	struct bs b = { .cfg = cfg };
	/* A client that stops reading must not kill us mid-transaction. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(ip, sizeof(ip), "uid %u", (unsigned)getuid());
	b.srv = smtp_server_new(&scfg, ip, true);
	if (b.srv == NULL) {
		fprintf(stderr, "sendmail: out of memory\n");
		return EX_OSERR;
	}
	buf_init(&b.in, 2 * BS_READ_SIZE + SMTP_CMD_MAX);
	/* The message plus the machine's largest chunk past the limit. */
	buf_init(&b.msg, cfg->listen.max_message_size + SRV_CHUNK_MAX);
	bs_spool_free(&b);
	smtp_server_greet(b.srv);
	while (!b.out_failed && bs_step(&b))
		;
	bs_flush(&b);
	smtp_server_free(b.srv);
	buf_free(&b.in);
	buf_free(&b.msg);
	return b.out_failed ? EX_IOERR : 0;
}
