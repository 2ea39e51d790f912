/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Held messages: a message committed through the intake log whose body
 *	was whole in memory stays there, and its msg/ID and env/ID are not
 *	written at all unless something needs them. Most messages are
 *	delivered within milliseconds, and a file written, read back and
 *	recycled for each of them was half of the disk and CPU work of a
 *	100 KiB message (bench/RESULTS.md). The log record is the durable
 *	copy, exactly as it is for a file written without fsync; after a
 *	crash the start-up replay writes the files from it.
 *
 *	The files are written (not fsynced: the record still covers them)
 *	when the message is updated (a deferral, a hold), before its log
 *	segment is retired (which then fsyncs them as for any survivor),
 *	and when the spool closes. Delivery reads the body from memory
 *	(spool_held_get); spool_msg_open gives a memfd copy to the rarer
 *	readers (bounces, SHOW).
 *
 *	Order: an update or removal that arrives while the message's files
 *	are being written waits for that write (h->after), so a write of the
 *	envelope as committed never lands after a newer one or after the
 *	removal. A retire waits until no message of its segment (or an
 *	older one) is held without files.
 *
 *	Ownership: the table holds one reference to each entry; a delivery
 *	reading the body, a write in flight and an op hold one each. The
 *	entry is freed at the last unref, on the loop thread.
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "outbox/log.h"
#include "outbox/str.h"
#include "spool_priv.h"

/* Bodies and envelopes held at once; past this a commit writes files. */
#define SPOOL_HELD_BYTES (32u * 1024u * 1024u)
#define SPOOL_HELD_MAX 65536u

static size_t
held_hash(const char *id, size_t nbuckets)
{
	return (size_t)(str_hash(id) % nbuckets);
}

static void held_spill_run(struct spool *sp, struct spool_link *run);
static void held_spill_report(struct spool *sp, struct spool_link *item);

int
spool_held_init(struct spool *sp)
{
	struct spool_held_table *t = &sp->held;
	*t = (struct spool_held_table){ 0 };
	spool_batch_init(&sp->spills, sp, 1024, held_spill_run,
			 held_spill_report);
	t->bucket = calloc(256, sizeof(*t->bucket));
	if (t->bucket == NULL)
		return -ENOMEM;
	t->nbuckets = 256;
	return 0;
}

/* Twice the buckets when full; on failure the chains just get longer. */
static void
held_grow(struct spool_held_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct spool_held **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct spool_held *h = t->bucket[i], *next;
		for (; h != NULL; h = next) {
			next = h->hnext;
			size_t k = held_hash(h->id, nb);
			h->hnext = b[k];
			b[k] = h;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->nbuckets = nb;
}

static size_t
held_size(const struct spool_held *h)
{
	return h->len + h->env.len;
}

void
spool_held_unref(struct spool_held *h)
{
	if (h == NULL || --h->refs > 0)
		return;
	buf_free(&h->env);
	free(h->body);
	free(h);
}

struct spool_held *
spool_held_find(struct spool *sp, const char *id)
{
	struct spool_held_table *t = &sp->held;
	if (t->n == 0)
		return NULL;
	struct spool_held *h = t->bucket[held_hash(id, t->nbuckets)];
	while (h != NULL && strcmp(h->id, id) != 0)
		h = h->hnext;
	return h;
}

static void
held_insert(struct spool_held_table *t, struct spool_held *h)
{
	if (t->n >= t->nbuckets)
		held_grow(t);
	size_t k = held_hash(h->id, t->nbuckets);
	h->hnext = t->bucket[k];
	t->bucket[k] = h;
	/* Records are appended in commit order: the newest goes last. */
	h->prev = t->newest;
	h->next = NULL;
	if (t->newest != NULL)
		t->newest->next = h;
	else
		t->oldest = h;
	t->newest = h;
	t->n++;
	h->in_table = true;
}

/* Its files are written, or it is removed: the table lets go of it. */
static void
held_drop(struct spool *sp, struct spool_held *h)
{
	struct spool_held_table *t = &sp->held;
	if (!h->in_table)
		return;
	struct spool_held **pp = &t->bucket[held_hash(h->id, t->nbuckets)];
	while (*pp != h)
		pp = &(*pp)->hnext;
	*pp = h->hnext;
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		t->oldest = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	else
		t->newest = h->prev;
	t->n--;
	t->bytes -= held_size(h);
	h->in_table = false;
	spool_held_unref(h);
}

/* ------------------------------------------------------------------ */
/* Commit                                                             */
/* ------------------------------------------------------------------ */

void
spool_held_reserve(struct spool_tx *tx)
{
	struct spool_held_table *t = &tx->sp->held;
	size_t size = tx->size + tx->held.len +
		      (tx->wdata != NULL ? tx->wlen : 0) + tx->env.len;
	tx->keep = NULL;
	if (tx->created || t->bucket == NULL || t->n >= SPOOL_HELD_MAX ||
	    t->bytes + size > SPOOL_HELD_BYTES)
		return;
	/* Allocated now, so adopting it after the fsync cannot fail: a
	 * message without files must never be missing from the table. */
	tx->keep = calloc(1, sizeof(*tx->keep));
	if (tx->keep == NULL)
		return;
	tx->keep->len = size; /* the reservation, until adopted */
	t->bytes += size;
}

void
spool_held_unreserve(struct spool_tx *tx)
{
	if (tx->keep == NULL)
		return;
	tx->sp->held.bytes -= tx->keep->len;
	free(tx->keep);
	tx->keep = NULL;
}

void
spool_held_adopt(struct spool_tx *tx)
{
	struct spool *sp = tx->sp;
	struct spool_held *h = tx->keep;
	tx->keep = NULL;
	sp->held.bytes -= h->len;
	memcpy(h->id, tx->id, ID_SIZE);
	h->seg = tx->seg;
	h->env = tx->env;
	buf_init(&tx->env, SPOOL_ENV_MAX);
	if (tx->held.len > 0) {
		/* The session's held bytes become the message's. */
		sp->held_bytes -= tx->held.len;
		h->body = tx->held.data;
		h->len = tx->held.len;
		buf_init(&tx->held, 0);
	} else {
		h->body = tx->wdata;
		h->len = tx->wdata != NULL ? tx->wlen : 0;
		tx->wdata = NULL;
	}
	h->refs = 1;
	sp->held.bytes += held_size(h);
	held_insert(&sp->held, h);
}

/* ------------------------------------------------------------------ */
/* Writing the files                                                  */
/* ------------------------------------------------------------------ */

static int
held_write_msg(struct spool *sp, struct spool_held *h)
{
	int dfd = sp->sub[SPOOL_MSG];
	int fd = spool_spare_create(sp, dfd, h->id);
	if (fd == -EEXIST) {
		/* Left by an earlier write that failed later on. */
		unlinkat(dfd, h->id, 0);
		fd = spool_spare_create(sp, dfd, h->id);
	}
	if (fd < 0)
		return fd;
	int rc = spool_write_all(fd, h->body, h->len);
	int crc = spool_close_fd(&fd);
	if (rc == 0)
		rc = crc;
	if (rc != 0)
		unlinkat(dfd, h->id, 0);
	return rc;
}

int
spool_held_write(struct spool *sp, struct spool_held *h, bool with_env,
		 const char **step)
{
	*step = "write message";
	int rc = held_write_msg(sp, h);
	if (rc != 0 || !with_env)
		return rc;
	char tmp[SPOOL_TMP_NAME_MAX];
	snprintf(tmp, sizeof(tmp), "%s.env", h->id);
	rc = spool_install_env(sp, tmp, h->id, &h->env, false, NULL, step);
	if (rc != 0)
		unlinkat(sp->sub[SPOOL_MSG], h->id, 0);
	return rc;
}

void
spool_held_written(struct spool *sp, struct spool_held *h, int status)
{
	h->writing = false;
	if (status == 0) {
		held_drop(sp, h);
	} else {
		/* Still held: the record keeps it. Retiring waits a tick.
		 * An update fails after its msg/ID, or after its rename:
		 * a removal must then unlink what is there. */
		sp->held.blocked = true;
		h->files_maybe = true;
	}
	struct spool_op *op = h->after;
	h->after = NULL;
	while (op != NULL) {
		struct spool_op *next = (struct spool_op *)op->link.next;
		int rc = spool_op_launch(sp, op);
		if (rc != 0) {
			op->status = rc;
			op->step = "queue";
			spool_op_report(op);
		}
		op = next;
	}
}

/* Thread pool: a batch of held messages whose segment is to retire. */
static void
held_spill_run(struct spool *sp, struct spool_link *run)
{
	for (struct spool_link *l = run; l != NULL; l = l->next) {
		struct spool_held *h = (struct spool_held *)l;
		const char *step = NULL;
		h->status = spool_held_write(sp, h, true, &step);
		h->step = step;
	}
}

static void
held_spill_report(struct spool *sp, struct spool_link *item)
{
	struct spool_held *h = (struct spool_held *)item;
	if (h->status != 0)
		spool_log_failure(h->id, "write of a held message", h->step,
				  h->status);
	spool_held_written(sp, h, h->status);
	spool_held_unref(h);
}

bool
spool_held_block_retire(struct spool *sp, uint64_t seq, bool spill)
{
	struct spool_held_table *t = &sp->held;
	if (t->oldest == NULL || t->oldest->seg > seq)
		return false;
	if (t->blocked || !spill)
		return true;
	for (struct spool_held *h = t->oldest; h != NULL && h->seg <= seq;
	     h = h->next) {
		if (h->writing)
			continue;
		h->writing = true;
		h->refs++;
		spool_batch_add(&sp->spills, &h->link);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Updates, removals, readers                                         */
/* ------------------------------------------------------------------ */

bool
spool_held_route(struct spool *sp, struct spool_held *h, struct spool_op *op)
{
	if (h->writing) {
		/* After the write in flight, in the order they came. */
		struct spool_op **pp = &h->after;
		while (*pp != NULL)
			pp = (struct spool_op **)&(*pp)->link.next;
		op->link.next = NULL;
		*pp = op;
		return true;
	}
	op->held = h;
	h->refs++;
	if (op->remove) {
		/* No files to remove: only its 'D' record. */
		held_drop(sp, h);
	} else {
		/* The update writes msg/ID before its new envelope. */
		h->writing = true;
	}
	return false;
}

int
spool_held_unhold(struct spool *sp, struct spool_held *h)
{
	if (h->writing)
		return -EBUSY;
	const char *step = NULL;
	int rc = spool_held_write(sp, h, true, &step);
	if (rc != 0) {
		spool_log_failure(h->id, "write of a held message", step, rc);
		return rc;
	}
	held_drop(sp, h);
	return 0;
}

struct spool_held *
spool_held_get(struct spool *sp, const char *id, const char **body,
	       size_t *len)
{
	struct spool_held *h = id_valid(id) ? spool_held_find(sp, id) : NULL;
	if (h == NULL)
		return NULL;
	h->refs++;
	*body = h->body;
	*len = h->len;
	return h;
}

void
spool_held_put(struct spool_held *h)
{
	spool_held_unref(h);
}

int
spool_held_memfd(const struct spool_held *h)
{
	int fd = memfd_create("outbox-held", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = spool_write_all(fd, h->body, h->len);
	if (rc == 0 && lseek(fd, 0, SEEK_SET) != 0)
		rc = -errno;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	return fd;
}

void
spool_held_close(struct spool *sp)
{
	struct spool_held_table *t = &sp->held;
	/* Written here so the spool on disk is whole for the offline
	 * `outbox queue`; the log would restore them at the next start. */
	while (t->oldest != NULL) {
		struct spool_held *h = t->oldest;
		const char *step = NULL;
		int rc = spool_held_write(sp, h, true, &step);
		if (rc != 0)
			spool_log_failure(h->id, "write of a held message",
					  step, rc);
		held_drop(sp, h);
	}
	free(t->bucket);
	t->bucket = NULL;
	t->nbuckets = 0;
}
