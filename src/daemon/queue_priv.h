/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_QUEUE_PRIV_H
#define OUTBOX_QUEUE_PRIV_H
/* Shared between queue.c and delivery.c only. */
#include <stddef.h>

#include "outbox/daemon.h"

/* A queued message in memory. The queue owns it; a delivery borrows it
 * while busy (taken out of the heap). */
struct qmsg {
	struct envelope env;
	size_t heap_idx;     /* index in the heap, QMSG_NOT_QUEUED while busy */
};
#define QMSG_NOT_QUEUED ((size_t)-1)

struct delivery;

/* queue.c, for deliveries */
struct qmsg *queue_take(struct queue *q);
/* The delivery updated m->env's recipients; persist, then requeue or remove. */
void queue_result(struct queue *q, struct qmsg *m);
/* Give a message back untouched (delivery aborted before any result). */
void queue_return(struct queue *q, struct qmsg *m);
/* Forget a message whose spool entry was quarantined. */
void queue_drop(struct queue *q, struct qmsg *m);
/* The destination could not be reached at all: back it off as a whole. */
void queue_dest_failed(struct queue *q);
void queue_dest_ok(struct queue *q);
void queue_delivery_done(struct queue *q, struct delivery *dl);

/* delivery.c */
struct delivery *delivery_start(struct daemon *d, struct queue *q,
				struct qmsg *m);
void delivery_abort(struct delivery *dl);

#endif
