/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Batches of spool work (spool_priv.h): items that arrive while a
 *	batch is in flight wait in a list, and the next batch takes them all
 *	(up to max) in one thread-pool work item. The loop and a pool thread
 *	meet once per batch instead of once per item, which on a busy relay
 *	is most of the cost of a small message (thread wake-ups and switches).
 *
 *	The list belongs to the loop thread; the running batch belongs to the
 *	work item until its after-work callback, which reports every item
 *	(b->report frees it) and only then starts the next batch, so items
 *	added from inside a report gather into one batch.
 */
#include <stddef.h>

#include "spool_priv.h"

static void spool_batch_done(uv_work_t *w, int status);

static void
spool_batch_work(uv_work_t *w)
{
	struct spool_batch *b = w->data;
	b->run_fn(b->sp, b->run);
}

/* Loop: send what waits as the next batch, if none is in flight. */
static void
spool_batch_start(struct spool_batch *b)
{
	if (b->busy || b->hold || b->head == NULL)
		return;
	struct spool_link *last = b->head;
	size_t bytes = b->size_fn ? b->size_fn(last) : 0;
	for (unsigned i = 1; i < b->max && last->next != NULL; i++) {
		size_t more = b->size_fn ? b->size_fn(last->next) : 0;
		if (bytes + more > b->max_bytes && b->size_fn != NULL)
			break;
		bytes += more;
		last = last->next;
	}
	b->run = b->head;
	b->head = last->next;
	last->next = NULL;
	if (b->head == NULL)
		b->tail = &b->head;
	b->work.data = b;
	b->busy = true;
	if (spool_queue(b->sp, &b->work, spool_batch_work,
			spool_batch_done) != 0) {
		/* Cannot happen with valid callbacks: run it here rather
		 * than hang its callers. */
		b->sp->pending++;
		spool_batch_work(&b->work);
		spool_batch_done(&b->work, 0);
	}
}

static void
spool_batch_done(uv_work_t *w, int status)
{
	(void)status;
	struct spool_batch *b = w->data;
	struct spool *sp = b->sp;
	sp->pending--;
	struct spool_link *item = b->run;
	b->run = NULL;
	b->busy = false;
	b->hold = true;
	while (item != NULL) {
		struct spool_link *next = item->next;
		sp->pending--;
		b->report(sp, item);
		item = next;
	}
	b->hold = false;
	spool_batch_start(b);
	spool_retire_kick(sp);
}

void
spool_batch_init(struct spool_batch *b, struct spool *sp, unsigned max,
		 void (*run_fn)(struct spool *sp, struct spool_link *run),
		 void (*report)(struct spool *sp, struct spool_link *item))
{
	*b = (struct spool_batch){ .sp = sp, .max = max, .run_fn = run_fn,
				   .report = report };
	b->tail = &b->head;
}

void
spool_batch_add(struct spool_batch *b, struct spool_link *item)
{
	item->next = NULL;
	*b->tail = item;
	b->tail = &item->next;
	b->sp->pending++;
	spool_batch_start(b);
}
