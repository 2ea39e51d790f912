/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_QUEUE_PRIV_H
#define OUTBOX_QUEUE_PRIV_H
/*
 * Shared by queue.c (messages), dest.c (destinations) and delivery*.c.
 *
 * A queued message (qmsg) waits in a heap until its next attempt. When it
 * is due it is split into jobs, one per destination (the smarthost in
 * relay mode, else each recipient domain), and each job waits in its
 * destination's FIFO until a delivery (one connection) takes it. When the
 * last job of a message is done, the message is finalized: removed from
 * the spool when no recipient is pending, else rewritten and put back in
 * the heap with its next retry time.
 */
#include <stddef.h>

#include "outbox/classify.h"
#include "outbox/daemon.h"
#include "outbox/smtp_client.h"

struct dest;
struct delivery;

struct qmsg {
	struct envelope env;
	size_t heap_idx;     /* index in the heap, QMSG_NOT_QUEUED while active */
	unsigned jobs;       /* destination jobs not done yet */
	bool updating;       /* a spool rewrite is in flight */
	bool dirty;          /* changed since that rewrite started */
	bool finalize;       /* all jobs done: finalize after the rewrite */
	bool dropped;        /* quarantined: free when the last job is done */
	bool delete_pending; /* outbox queue delete: remove once no job is out */
	bool bouncing;       /* a DSN for its failed recipients is being queued */
	bool bounce_failed;  /* that failed: keep the failures until next time */
	struct qmsg *id_next; /* queue id index chain */
};
#define QMSG_NOT_QUEUED ((size_t)-1)

/* One message's pending recipients for one destination. */
struct job {
	struct qmsg *m;
	struct dest *dest;
	struct job *next;    /* in the destination's FIFO */
	size_t n;
	size_t idx[];        /* indexes into m->env.rcpts */
};

struct dest {
	char name[HOSTNAME_MAX + 3];  /* "" = the smarthost; a domain; "[literal]" */
	struct dest *hnext;           /* hash chain */
	struct job *head, *tail;
	size_t njobs;
	unsigned active;              /* deliveries (connections) open */
	unsigned connecting;          /* of those, not yet ready */
	struct delivery *all;         /* every open delivery (aborts) */
	struct delivery *idle;        /* parked deliveries, ready for more */
	uint32_t failures;
	int64_t next_try;             /* backed off until then (wall clock) */
	struct smtp_client_result last; /* why it is backed off */
};

/* The destinations, owned by dest.c, stored in the queue. */
struct dest_table {
	struct dest **bucket;
	size_t nbuckets, n;
	unsigned active;              /* deliveries open, all destinations */
	size_t cursor;                /* round-robin start for dispatch */
};

/* queue.c */
struct dest_table *queue_dests(struct queue *q);
struct qmsg *queue_lookup(struct queue *q, const char *id);
/* Idle and not held: into the heap (by next_attempt). */
void queue_requeue(struct queue *q, struct qmsg *m);
/* Out of the heap (it stays known by id). */
void queue_unlist(struct queue *q, struct qmsg *m);
/* next_attempt changed: restore heap order. */
void queue_reorder(struct queue *q, struct qmsg *m);
/* Write m's envelope (after a control change). */
void queue_save(struct queue *q, struct qmsg *m);
/* After the bounce step: write the final state (queue.c). */
void queue_finalize_write(struct queue *q, struct qmsg *m);
/* Work outside the spool that shutdown must wait for. */
void queue_bounce_pending(struct queue *q, int delta);
/* bounce.c: queue one DSN for m's RCPT_FAILED recipients, then
 * queue_finalize_write(); or settle them without one (null sender, our
 * own DSN, rate limit). */
void bounce_start(struct queue *q, struct qmsg *m);
/* Remove from the spool without delivery or DSN (outbox queue delete). */
void queue_remove_now(struct queue *q, struct qmsg *m);
/* Every live message (not deleted or dropped). */
void queue_each_qmsg(struct queue *q, void (*fn)(void *arg, struct qmsg *m),
		     void *arg);
void queue_each_msg(struct queue *q, queue_each_fn fn, void *arg);
/* Forget m entirely: index, memory (not the spool). */
void queue_msg_free(struct queue *q, struct qmsg *m);
/* A job is finished: its recipients' states are set. Persists, and
 * finalizes the message when it was its last job. */
void queue_job_done(struct queue *q, struct job *job);
/* Put back without any result (shutdown). */
void queue_job_return(struct queue *q, struct job *job);
/* Forget a message whose spool entry was quarantined (its job included). */
void queue_job_drop(struct queue *q, struct job *job);
/* Teardown only: free a job (queue_free frees the messages). */
void queue_job_free(struct queue *q, struct job *job);
struct daemon *queue_daemon(struct queue *q);
bool queue_stopping(const struct queue *q);

/* dest.c */
struct dest *dest_get(struct queue *q, const char *name);
void dest_enqueue(struct queue *q, struct dest *d, struct job *job);
/* Next job for a delivery of d, or NULL (empty or backed off). */
struct job *dest_take(struct queue *q, struct dest *d);
/* Start deliveries for destinations with waiting jobs, fairly. */
void dest_dispatch(struct queue *q);
/* d could not be reached: back it off and defer every waiting job with r. */
void dest_failed(struct queue *q, struct dest *d,
		 const struct smtp_client_result *r);
/* d answered: forget its failures. */
void dest_ok(struct queue *q, struct dest *d);
/* Every waiting job of d gets the same outcome r (a permanent DNS answer). */
void dest_fail_jobs(struct queue *q, struct dest *d,
		    const struct smtp_client_result *r, bool permanent);
/* A delivery has nothing to do: park it for reuse, or NULL if it should quit. */
bool dest_park(struct queue *q, struct dest *d, struct delivery *dl);
void dest_unpark(struct dest *d, struct delivery *dl);
/* A delivery of d ended; connected: it had reached a ready session. */
void dest_delivery_done(struct queue *q, struct dest *d, bool connected);
/* A delivery of d reached its first ready session. */
void dest_connected(struct queue *q, struct dest *d);
void dest_reset_backoff(struct queue *q);
void dest_free_all(struct queue *q);
unsigned dest_active_total(const struct queue *q);
void dest_abort_all(struct queue *q);

/* Apply one outcome to recipient i of a job (an index into job->idx),
 * and log it. */
void queue_rcpt_result(struct job *job, size_t i, const char *relay,
		       const struct smtp_client_result *r, enum dlv_stage stage);
/* The same outcome for every recipient of the job still pending. */
void queue_job_result_all(struct job *job, const char *relay,
			  const struct smtp_client_result *r,
			  enum dlv_stage stage);

/* delivery.c */
struct delivery *delivery_start(struct daemon *d, struct queue *q,
				struct dest *dest, struct job *job);
void delivery_abort(struct delivery *dl);
/* A parked delivery gets a new job (called from a fresh loop turn). */
void delivery_wake(struct delivery *dl, struct job *job);
/* Intrusive list link for parked deliveries. */
struct delivery **delivery_next_idle(struct delivery *dl);

#endif
