/* SPDX-License-Identifier: MIT */
/*
 * The in-memory queue over the spool, and when to deliver.
 *
 * Every committed message is one struct qmsg. Messages waiting for their
 * next attempt sit in a min-heap ordered by next_attempt; one uv_timer
 * wakes the queue when the earliest is due. A delivery takes due messages
 * one by one over a single connection (several transactions per session);
 * up to QUEUE_DELIVERIES connections run at once.
 *
 * After a delivery reports per-recipient results, the envelope is
 * rewritten durably before the message is requeued, or removed from the
 * spool when no recipient is pending. A destination that cannot be reached
 * at all is backed off as a whole (in memory), so a dead smarthost costs
 * one connection attempt per backoff step, not one per message.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "outbox/backoff.h"
#include "outbox/daemon.h"
#include "outbox/log.h"

#include "queue_priv.h"

#define QUEUE_DELIVERIES 4

struct queue {
	struct daemon *d;
	struct qmsg **heap;
	size_t n, cap;
	size_t total;               /* every message the queue owns */
	uv_timer_t timer;
	struct delivery *dls[QUEUE_DELIVERIES];
	unsigned ndls;
	unsigned updates;           /* spool updates in flight */
	int64_t dest_next_try;
	uint32_t dest_failures;
	bool stopping;
	bool timer_closed;
};

static bool
heap_less(const struct qmsg *a, const struct qmsg *b)
{
	if (a->env.next_attempt != b->env.next_attempt)
		return a->env.next_attempt < b->env.next_attempt;
	return a->env.arrival < b->env.arrival;
}

static void
heap_swap(struct queue *q, size_t i, size_t j)
{
	struct qmsg *t = q->heap[i];
	q->heap[i] = q->heap[j];
	q->heap[j] = t;
	q->heap[i]->heap_idx = i;
	q->heap[j]->heap_idx = j;
}

static void
heap_up(struct queue *q, size_t i)
{
	while (i > 0 && heap_less(q->heap[i], q->heap[(i - 1) / 2])) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->n && heap_less(q->heap[l], q->heap[m]))
			m = l;
		if (r < q->n && heap_less(q->heap[r], q->heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(q, i, m);
		i = m;
	}
}

static int
heap_push(struct queue *q, struct qmsg *m)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct qmsg **h = realloc(q->heap, cap * sizeof(*h));
		if (h == NULL)
			return -1;
		q->heap = h;
		q->cap = cap;
	}
	q->heap[q->n] = m;
	m->heap_idx = q->n++;
	heap_up(q, m->heap_idx);
	return 0;
}

static struct qmsg *
heap_pop(struct queue *q)
{
	struct qmsg *m = q->heap[0];
	heap_swap(q, 0, --q->n);
	heap_down(q, 0);
	m->heap_idx = QMSG_NOT_QUEUED;
	return m;
}

static void
queue_timer_cb(uv_timer_t *t)
{
	queue_kick(t->data);
}

int
queue_new(struct daemon *d, struct queue **out)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -1;
	q->d = d;
	uv_timer_init(d->loop, &q->timer);
	q->timer.data = q;
	*out = q;
	return 0;
}

static void
qmsg_free(struct qmsg *m)
{
	envelope_free(&m->env);
	free(m);
}

void
queue_add(struct queue *q, struct envelope *env)
{
	struct qmsg *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		/* It is on disk: the next start picks it up. */
		log_err("%s: out of memory; message stays in the spool", env->id);
		envelope_free(env);
		free(env);
		return;
	}
	m->env = *env; /* take over the heap parts */
	free(env);
	if (heap_push(q, m) != 0) {
		log_err("%s: out of memory; message stays in the spool",
			m->env.id);
		qmsg_free(m);
		return;
	}
	q->total++;
	queue_kick(q);
}

void
queue_recover_each(void *arg, struct envelope *env)
{
	struct queue *q = arg;
	struct qmsg *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->env = *env, heap_push(q, m) != 0)) {
		log_err("%s: out of memory while loading the queue", env->id);
		envelope_free(env);
		free(m);
		free(env);
		return;
	}
	free(env);
	q->total++;
}

static bool
queue_due(const struct queue *q, int64_t now)
{
	return q->n > 0 && q->heap[0]->env.next_attempt <= now &&
	       q->dest_next_try <= now;
}

static void
queue_arm_timer(struct queue *q, int64_t now)
{
	if (q->n == 0 || q->stopping) {
		uv_timer_stop(&q->timer);
		return;
	}
	int64_t when = q->heap[0]->env.next_attempt;
	if (q->dest_next_try > when)
		when = q->dest_next_try;
	int64_t ms = when > now ? (when - now) * 1000 : 0;
	/* Wall-clock seconds: wake a little after the second boundary. */
	uv_timer_start(&q->timer, queue_timer_cb, (uint64_t)ms + 50, 0);
}

void
queue_kick(struct queue *q)
{
	if (q->stopping)
		return;
	int64_t now = daemon_now();
	while (q->ndls < QUEUE_DELIVERIES && queue_due(q, now)) {
		struct qmsg *m = heap_pop(q);
		struct delivery *dl = delivery_start(q->d, q, m);
		if (dl == NULL) {
			heap_push(q, m);
			break;
		}
		q->dls[q->ndls++] = dl;
	}
	if (q->ndls == QUEUE_DELIVERIES || !queue_due(q, now))
		queue_arm_timer(q, now);
}

struct qmsg *
queue_take(struct queue *q)
{
	if (q->stopping || !queue_due(q, daemon_now()))
		return NULL;
	return heap_pop(q);
}

void
queue_return(struct queue *q, struct qmsg *m)
{
	if (heap_push(q, m) != 0) {
		q->total--;
		qmsg_free(m);
	}
}

void
queue_drop(struct queue *q, struct qmsg *m)
{
	q->total--;
	qmsg_free(m);
}

void
queue_dest_failed(struct queue *q)
{
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)daemon_now();
	q->dest_failures++;
	const struct config *cfg = &q->d->cfg;
	q->dest_next_try = daemon_now() +
			   backoff_delay(q->dest_failures,
					 (int64_t)cfg->spool.retry_min_s,
					 (int64_t)cfg->spool.retry_max_s, rnd);
}

void
queue_dest_ok(struct queue *q)
{
	q->dest_failures = 0;
	q->dest_next_try = 0;
}

void
queue_reset_backoff(struct queue *q)
{
	queue_dest_ok(q);
}

struct queue_update {
	struct queue *q;
	struct qmsg *m;
	bool removed;
};

static void
queue_update_cb(void *arg, int status)
{
	struct queue_update *u = arg;
	struct queue *q = u->q;
	struct qmsg *m = u->m;
	q->updates--;
	if (u->removed) {
		if (status < 0)
			log_warn("%s: cannot remove from the spool: %s",
				 m->env.id, uv_strerror(status));
		q->total--;
		qmsg_free(m);
	} else {
		if (status < 0)
			log_warn("%s: cannot update the queue file: %s "
				 "(recipients may be tried again)",
				 m->env.id, uv_strerror(status));
		queue_return(q, m);
	}
	free(u);
	if (q->stopping)
		daemon_maybe_exit(q->d);
	else
		queue_kick(q);
}

/* Past max_lifetime (and tried often enough): give up on what is pending. */
static void
queue_expire(struct queue *q, struct qmsg *m, int64_t now)
{
	struct envelope *e = &m->env;
	const struct config *cfg = &q->d->cfg;
	if (!backoff_expired(now, e->arrival, e->attempts,
			     (int64_t)cfg->spool.max_lifetime_s))
		return;
	for (size_t i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != RCPT_PENDING)
			continue;
		e->rcpts[i].state = RCPT_FAILED;
		log_info("%s: to=<%s>, relay=none, delay=%lld, dsn=4.4.7, "
			 "status=bounced (message expired after %u attempts; "
			 "last error: %s)",
			 e->id, e->rcpts[i].addr, (long long)(now - e->arrival),
			 e->attempts,
			 e->rcpts[i].last_error ? e->rcpts[i].last_error
						: "none");
	}
}

void
queue_result(struct queue *q, struct qmsg *m)
{
	struct envelope *e = &m->env;
	int64_t now = daemon_now();
	bool pending = envelope_count(e, RCPT_PENDING) > 0;
	if (pending) {
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
			rnd = (uint32_t)now;
		e->attempts++;
		const struct config *cfg = &q->d->cfg;
		e->next_attempt = now + backoff_delay(e->attempts,
						      (int64_t)cfg->spool.retry_min_s,
						      (int64_t)cfg->spool.retry_max_s,
						      rnd);
		queue_expire(q, m, now);
		pending = envelope_count(e, RCPT_PENDING) > 0;
	}
	struct queue_update *u = malloc(sizeof(*u));
	if (u == NULL) {
		queue_return(q, m);
		return;
	}
	u->q = q;
	u->m = m;
	u->removed = !pending;
	int r = pending ? spool_env_update(q->d->spool, e, queue_update_cb, u)
			: spool_remove(q->d->spool, e->id, queue_update_cb, u);
	if (r < 0) {
		free(u);
		log_warn("%s: cannot update the spool: %s", e->id,
			 uv_strerror(r));
		queue_return(q, m);
		return;
	}
	q->updates++;
	if (!pending)
		log_info("%s: removed", e->id);
}

void
queue_delivery_done(struct queue *q, struct delivery *dl)
{
	for (unsigned i = 0; i < q->ndls; i++) {
		if (q->dls[i] == dl) {
			q->dls[i] = q->dls[--q->ndls];
			break;
		}
	}
	if (q->stopping)
		daemon_maybe_exit(q->d);
	else
		queue_kick(q);
}

void
queue_stop(struct queue *q)
{
	if (q->stopping)
		return;
	q->stopping = true;
	uv_timer_stop(&q->timer);
	/* delivery_abort() calls queue_delivery_done(), which edits dls. */
	struct delivery *dls[QUEUE_DELIVERIES];
	unsigned n = q->ndls;
	memcpy(dls, q->dls, sizeof(dls));
	for (unsigned i = 0; i < n; i++)
		delivery_abort(dls[i]);
}

unsigned
queue_busy(const struct queue *q)
{
	return q ? q->ndls + q->updates : 0;
}

size_t
queue_size(const struct queue *q)
{
	return q ? q->total : 0;
}

static void
queue_timer_closed(uv_handle_t *h)
{
	struct queue *q = h->data;
	for (size_t i = 0; i < q->n; i++)
		qmsg_free(q->heap[i]);
	free(q->heap);
	free(q);
}

void
queue_free(struct queue *q)
{
	uv_close((uv_handle_t *)&q->timer, queue_timer_closed);
}
