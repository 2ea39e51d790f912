/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The logged commit (spool_log.h): msg/ID and env/ID are written
 *	without fsync, and one intake-log record carrying envelope and body
 *	is made durable before the 250.
 *
 *	Commits are batched (spool_batch.c): those that arrive while a batch
 *	is in flight wait in a list, and one thread-pool work item then
 *	writes all their files, appends all their records in one pwritev
 *	and waits for one fsync. So a batch costs one hand-off to the pool
 *	and one back, however many sessions are in it, where one work item
 *	per message used to wake a pool thread and the loop for each. A
 *	small body is whole in memory and goes straight to msg/ID; a body
 *	streamed to tmp/ in chunks is read back (page cache) for its record
 *	and renamed into msg/, and a batch holds at most INTAKE_BATCH_BYTES
 *	of them.
 *
 *	Ownership: a tx in a batch (spool_batch.c) belongs to the spool
 *	(TX_COMMITTING) and is freed after its callback.
 */
#define _GNU_SOURCE /* struct iovec users */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "outbox/spool_record.h"
#include "spool_log_priv.h"
#include "spool_priv.h"

/* Records per batch: 3 iovecs each, within IOV_MAX (1024). */
#define INTAKE_BATCH_MAX 256
/* Message bytes per batch (at least one message is always taken). */
#define INTAKE_BATCH_BYTES (4u * 1024u * 1024u)

static uint64_t
intake_total(const struct spool_tx *tx)
{
	return tx->size + tx->held.len + (tx->wdata != NULL ? tx->wlen : 0);
}

/* A body that never went to a file: what was held, or the last bytes. */
static const char *
intake_body(const struct spool_tx *tx)
{
	return tx->held.len > 0 ? tx->held.data : tx->wdata;
}

/* Thread pool: drop what a failed logged commit created. */
static void
intake_undo(struct spool_tx *tx)
{
	bool logged = tx->env_in || tx->keep != NULL;
	spool_tx_undo(tx);
	/* Its record may be in a segment whose fsync failed; a 'D' keeps a
	 * replay from bringing back mail whose client got 4xx. */
	if (logged)
		(void)spool_log_done(tx->sp->log, tx->id);
	tx->msg_in = tx->env_in = false;
}

/* Thread pool: the whole body is in memory: straight into msg/ID. */
static int
intake_write_msg(struct spool_tx *tx)
{
	int rc = spool_tx_create(tx, tx->sp->sub[SPOOL_MSG], tx->id);
	tx->msg_in = rc == 0;
	uint64_t len = intake_total(tx);
	if (rc == 0 && len > 0) {
		tx->step = "write message";
		rc = spool_write_all(tx->fd, intake_body(tx), (size_t)len);
	}
	if (rc == 0) {
		tx->step = "close message";
		rc = spool_close_fd(&tx->fd);
	}
	return rc;
}

/*
 * Thread pool: a body written in chunks to tmp/ID.msg: add the last
 * bytes, read it all back (page cache) for the record into *back
 * (caller frees), and rename it into msg/.
 */
static int
intake_finish_msg(struct spool_tx *tx, uint64_t total, char **back)
{
	struct spool *sp = tx->sp;
	tx->step = "write message";
	int rc = 0;
	if (tx->wdata != NULL)
		rc = spool_write_all(tx->fd, tx->wdata, tx->wlen);
	if (rc == 0) {
		tx->step = "read message back";
		rc = spool_log_read_seg(tx->fd, total, back);
	}
	if (rc == 0) {
		tx->step = "close message";
		rc = spool_close_fd(&tx->fd);
	}
	if (rc == 0) {
		tx->step = "rename message";
		rc = renameat(sp->sub[SPOOL_TMP], tx->tmpname,
			      sp->sub[SPOOL_MSG], tx->id) == 0 ? 0 : -errno;
		tx->msg_in = rc == 0;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Batches                                                            */
/* ------------------------------------------------------------------ */

bool
spool_intake_batchable(const struct spool_tx *tx)
{
	return tx->sp->log != NULL && tx->werr == 0 &&
	       intake_total(tx) <= SPOOL_LOG_BODY_MAX;
}

static size_t
intake_size(const struct spool_link *item)
{
	return (size_t)intake_total((const struct spool_tx *)item);
}

/* Thread pool: one tx's files, and its record's pieces into iov (the
 * header into hdr, a body read back into *back, which the caller frees). */
static int
intake_batch_one(struct spool_tx *tx, char *hdr, struct iovec *iov,
		 char **back)
{
	const char *body = intake_body(tx);
	uint64_t total = intake_total(tx);
	int rc;
	if (tx->keep != NULL) {
		rc = 0; /* held: the record alone (spool_held.c) */
	} else if (!tx->created) {
		rc = intake_write_msg(tx);
	} else {
		rc = intake_finish_msg(tx, total, back);
		body = *back;
	}
	if (rc == 0 && tx->keep == NULL)
		rc = spool_tx_install_env(tx, false);
	if (rc != 0)
		return rc;
	/* The body's CRC is the envelope's, already computed on intake. */
	spool_rec_header_sum(hdr, SPOOL_REC_ACCEPT, tx->id, tx->env.data,
			     tx->env.len, total, tx->body_crc);
	iov[0] = (struct iovec){ hdr, SPOOL_REC_HDR };
	iov[1] = (struct iovec){ tx->env.data, tx->env.len };
	iov[2] = (struct iovec){ (void *)body, (size_t)total };
	return 0;
}

/* Thread pool: files of every tx, then all records, one fsync. */
static void
intake_batch_run(struct spool *sp, struct spool_link *run)
{
	char (*hdr)[SPOOL_REC_HDR] = malloc(INTAKE_BATCH_MAX * sizeof(*hdr));
	struct iovec *iov = malloc(3 * INTAKE_BATCH_MAX * sizeof(*iov));
	char **back = calloc(INTAKE_BATCH_MAX, sizeof(*back));
	int n = 0, k = 0;
	size_t len = 0;
	for (struct spool_link *l = run; l != NULL; l = l->next) {
		struct spool_tx *tx = (struct spool_tx *)l;
		tx->status = hdr && iov && back
				     ? intake_batch_one(tx, hdr[k], iov + n, &back[k])
				     : -ENOMEM;
		if (tx->status != 0) {
			intake_undo(tx);
			if (back != NULL) {
				free(back[k]);
				back[k] = NULL;
			}
			continue;
		}
		len += SPOOL_REC_HDR + tx->env.len + iov[n + 2].iov_len;
		n += iov[n + 2].iov_len > 0 ? 3 : 2;
		k++;
	}
	uint64_t seg = 0;
	int rc = n > 0 ? spool_log_append_sync(sp->log, iov, n, len, &seg) : 0;
	for (struct spool_link *l = run; l != NULL; l = l->next) {
		struct spool_tx *tx = (struct spool_tx *)l;
		tx->seg = seg;
		if (tx->status == 0 && rc != 0) {
			tx->status = rc;
			tx->step = "intake log";
			/* A held message has no file of its own: no segment
			 * to put it in is the spool refusing new files (a
			 * read-only spool, D12), logged once per interval. */
			if (seg == 0 && tx->keep != NULL)
				tx->create_failed = true;
			intake_undo(tx);
		}
	}
	for (int i = 0; back != NULL && i < k; i++)
		free(back[i]);
	free(back);
	free(hdr);
	free(iov);
}

static void
intake_report(struct spool *sp, struct spool_link *item)
{
	(void)sp;
	struct spool_tx *tx = (struct spool_tx *)item;
	if (tx->status != 0 && !tx->create_failed)
		spool_log_failure(tx->id, "commit", tx->step, tx->status);
	/* Before the callback: its reader may look for it at once. */
	if (tx->status == 0 && tx->keep != NULL)
		spool_held_adopt(tx);
	tx->cb(tx->arg, tx->status);
	spool_tx_free(tx);
}

void
spool_intake_init(struct spool *sp)
{
	spool_batch_init(&sp->intake, sp, INTAKE_BATCH_MAX, intake_batch_run,
			 intake_report);
	/* Bodies read back for a batch stay in memory until its fsync. */
	sp->intake.size_fn = intake_size;
	sp->intake.max_bytes = INTAKE_BATCH_BYTES;
}

void
spool_intake_add(struct spool_tx *tx)
{
	spool_batch_add(&tx->sp->intake, &tx->link);
}
