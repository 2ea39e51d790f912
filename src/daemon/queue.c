/* SPDX-License-Identifier: MIT */
/*
 * The in-memory queue over the spool: messages and when to try them.
 *
 * Every committed message is one struct qmsg. Idle messages sit in a
 * min-heap ordered by next_attempt; one uv_timer wakes the queue when the
 * earliest is due. A due message is split into jobs, one per destination
 * (dest.c), which deliveries take from the destinations' FIFOs.
 *
 * Durability of results: after each job the envelope is rewritten (2xx
 * recipients are never sent again, I3); rewrites of one message never
 * overlap: a change made while one is in flight marks the message dirty
 * and is written next. When the last job is done the message is removed
 * from the spool if nothing is pending, else requeued with its backoff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include "outbox/backoff.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/mx.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#include "queue_priv.h"

struct queue {
	struct daemon *d;
	struct qmsg **heap;
	size_t n, cap;
	size_t total;               /* every message the queue owns */
	uv_timer_t timer;
	unsigned updates;           /* spool rewrites and removals in flight */
	bool stopping;
	struct dest_table dests;
	struct qmsg **ids;          /* every message by queue id (chained) */
	size_t nids, id_buckets;
};

static void heap_swap(struct queue *q, size_t i, size_t j);

struct dest_table *
queue_dests(struct queue *q)
{
	return &q->dests;
}

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

struct daemon *
queue_daemon(struct queue *q)
{
	return q->d;
}

bool
queue_stopping(const struct queue *q)
{
	return q->stopping;
}

static void
qmsg_free(struct qmsg *m)
{
	envelope_free(&m->env);
	free(m);
}

static size_t
queue_id_hash(const char *id, size_t buckets)
{
	return (size_t)(str_hash(id) % buckets);
}

static int
queue_id_grow(struct queue *q)
{
	size_t nb = q->id_buckets ? q->id_buckets * 2 : 1024;
	struct qmsg **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < q->id_buckets; i++) {
		struct qmsg *m = q->ids[i], *next;
		for (; m != NULL; m = next) {
			next = m->id_next;
			size_t k = queue_id_hash(m->env.id, nb);
			m->id_next = b[k];
			b[k] = m;
		}
	}
	free(q->ids);
	q->ids = b;
	q->id_buckets = nb;
	return 0;
}

static int
queue_id_insert(struct queue *q, struct qmsg *m)
{
	if (q->nids >= q->id_buckets && queue_id_grow(q) != 0)
		return -1;
	size_t k = queue_id_hash(m->env.id, q->id_buckets);
	m->id_next = q->ids[k];
	q->ids[k] = m;
	q->nids++;
	return 0;
}

struct qmsg *
queue_lookup(struct queue *q, const char *id)
{
	if (q->id_buckets == 0)
		return NULL;
	struct qmsg *m = q->ids[queue_id_hash(id, q->id_buckets)];
	while (m != NULL && strcmp(m->env.id, id) != 0)
		m = m->id_next;
	return m;
}

void
queue_msg_free(struct queue *q, struct qmsg *m)
{
	if (q->id_buckets > 0) {
		struct qmsg **pp = &q->ids[queue_id_hash(m->env.id, q->id_buckets)];
		while (*pp != NULL && *pp != m)
			pp = &(*pp)->id_next;
		if (*pp == m) {
			*pp = m->id_next;
			q->nids--;
		}
	}
	q->total--;
	qmsg_free(m);
	if (q->total == 0)
		listener_trim_soon(q->d->listener);
}

/* Take over a heap envelope (its parts move into the qmsg). */
static struct qmsg *
qmsg_new(struct envelope *env)
{
	struct qmsg *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		/* It is on disk: the next start picks it up. */
		log_err("%s: out of memory; message stays in the spool", env->id);
		envelope_free(env);
		free(env);
		return NULL;
	}
	m->env = *env;
	free(env);
	return m;
}

static void
queue_adopt(struct queue *q, struct envelope *env)
{
	struct qmsg *m = qmsg_new(env);
	if (m == NULL)
		return;
	if (queue_id_insert(q, m) != 0) {
		log_err("%s: out of memory; message stays in the spool",
			m->env.id);
		qmsg_free(m);
		return;
	}
	q->total++;
	m->heap_idx = QMSG_NOT_QUEUED;
	queue_requeue(q, m);
	queue_kick(q);
}

void
queue_add(struct queue *q, struct envelope *env)
{
	queue_adopt(q, env);
}

/* The destination a recipient belongs to; "" for the smarthost. */
static int
queue_rcpt_dest(const struct queue *q, const char *addr, char *out,
		size_t size)
{
	if (q->d->cfg.relay.nhost > 0) {
		out[0] = '\0';
		return 0;
	}
	return mx_rcpt_domain(addr, out, size);
}

static struct job *
job_new(struct qmsg *m, struct dest *dest, size_t cap)
{
	struct job *job = calloc(1, sizeof(*job) + cap * sizeof(size_t));
	if (job == NULL)
		return NULL;
	job->m = m;
	job->dest = dest;
	return job;
}

static void queue_finalize(struct queue *q, struct qmsg *m);

/* A recipient without a domain cannot be routed to an MX host. */
static void
queue_fail_unroutable(struct queue *q, struct qmsg *m, size_t i)
{
	struct job *job = job_new(m, NULL, 1);
	if (job == NULL)
		return;
	job->idx[0] = i;
	job->n = 1;
	struct smtp_client_result r = { .code = 550, .cmd = "RCPT" };
	str_copy(r.enh, sizeof(r.enh), "5.1.3");
	str_copy(r.text, sizeof(r.text),
		 "recipient address has no domain and no [rewrite] domain "
		 "is set");
	queue_rcpt_result(job, 0, "none", &r, STAGE_RCPT);
	free(job);
}

/*
 * Split a due message into one job per destination. Recipients are
 * grouped by a linear scan per destination: a message has few domains,
 * and this runs once per attempt.
 */
static void
queue_activate(struct queue *q, struct qmsg *m)
{
	struct envelope *e = &m->env;
	bool *taken = calloc(e->nrcpts ? e->nrcpts : 1, sizeof(bool));
	if (taken == NULL) {
		heap_push(q, m);
		return;
	}
	m->jobs = 1; /* held while the jobs are handed out */
	m->bounce_failed = false;
	for (size_t i = 0; i < e->nrcpts; i++) {
		if (taken[i] || e->rcpts[i].state != RCPT_PENDING)
			continue;
		char name[HOSTNAME_MAX + 3], other[HOSTNAME_MAX + 3];
		if (queue_rcpt_dest(q, e->rcpts[i].addr, name, sizeof(name)) != 0) {
			queue_fail_unroutable(q, m, i);
			continue;
		}
		struct dest *d = dest_get(q, name);
		struct job *job = d ? job_new(m, d, e->nrcpts - i) : NULL;
		if (job == NULL)
			break; /* stays pending: retried after backoff */
		for (size_t k = i; k < e->nrcpts; k++) {
			if (taken[k] || e->rcpts[k].state != RCPT_PENDING)
				continue;
			if (queue_rcpt_dest(q, e->rcpts[k].addr, other,
					    sizeof(other)) != 0 ||
			    strcmp(other, name) != 0)
				continue;
			taken[k] = true;
			job->idx[job->n++] = k;
		}
		m->jobs++;
		dest_enqueue(q, d, job);
	}
	free(taken);
	if (--m->jobs == 0)
		queue_finalize(q, m);
}

static bool
queue_due(const struct queue *q, int64_t now)
{
	return q->n > 0 && q->heap[0]->env.next_attempt <= now;
}

static void
queue_arm_timer(struct queue *q, int64_t now)
{
	if (q->n == 0 || q->stopping) {
		uv_timer_stop(&q->timer);
		return;
	}
	(void)now;
	/* From the precise time: re-arming late in a second must not wake
	 * the queue a second early. */
	struct timeval tv;
	gettimeofday(&tv, NULL);
	int64_t now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	int64_t when_ms = q->heap[0]->env.next_attempt * 1000;
	int64_t ms = when_ms > now_ms ? when_ms - now_ms : 0;
	uv_timer_start(&q->timer, queue_timer_cb, (uint64_t)ms + 20, 0);
}

void
queue_kick(struct queue *q)
{
	if (q->stopping)
		return;
	int64_t now = daemon_now();
	while (queue_due(q, now))
		queue_activate(q, heap_pop(q));
	dest_dispatch(q);
	queue_arm_timer(q, now);
}

static double
queue_delay(const struct envelope *e)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double d = (double)tv.tv_sec + tv.tv_usec / 1e6 - (double)e->arrival;
	return d < 0 ? 0 : d;
}

/* "550 5.1.1 text" with the reply's lines folded onto one line. */
static void
queue_reply_text(const struct smtp_client_result *r, char *out, size_t size)
{
	char text[SMTP_REPLY_TEXT_MAX];
	str_copy(text, sizeof(text), r->text);
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (r->code == 0)
		snprintf(out, size, "%s", text);
	else if (r->enh[0] && strncmp(text, r->enh, strlen(r->enh)) != 0)
		snprintf(out, size, "%d %s %s", r->code, r->enh, text);
	else
		snprintf(out, size, "%d %s", r->code, text);
}

void
queue_rcpt_result(struct job *job, size_t i, const char *relay,
		  const struct smtp_client_result *r, enum dlv_stage stage)
{
	struct envelope *e = &job->m->env;
	size_t k = job->idx[i];
	enum dlv_result res = classify_result(r, stage);
	char text[SMTP_REPLY_TEXT_MAX + 32], dsn[16];
	queue_reply_text(r, text, sizeof(text));
	classify_dsn(r, dsn, sizeof(dsn));
	if (res == DLV_OK)
		e->rcpts[k].state = RCPT_SENT;
	else if (res == DLV_PERM)
		e->rcpts[k].state = RCPT_FAILED;
	/* Kept as Postfix words it: the DSN names the Remote-MTA from it. */
	char stored[SMTP_REPLY_TEXT_MAX + 400];
	if (r->code != 0 && strcmp(relay, "none") != 0)
		snprintf(stored, sizeof(stored), "host %s said: %s", relay, text);
	else
		str_copy(stored, sizeof(stored), text);
	if (envelope_set_error(e, k, res == DLV_OK ? NULL : stored) != 0)
		log_warn("%s: out of memory recording an error", e->id);
	job->m->dirty = true;
	stats_rcpt_result(job->dest ? job->dest->name : NULL, res, stored);
	log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
		 e->id, e->rcpts[k].addr, relay, queue_delay(e), dsn,
		 classify_status_word(res), text);
}

void
queue_job_result_all(struct job *job, const char *relay,
		     const struct smtp_client_result *r, enum dlv_stage stage)
{
	for (size_t i = 0; i < job->n; i++)
		if (job->m->env.rcpts[job->idx[i]].state == RCPT_PENDING)
			queue_rcpt_result(job, i, relay, r, stage);
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
		char why[SMTP_REPLY_TEXT_MAX + 64];
		snprintf(why, sizeof(why), "4.4.7 delivery time expired after "
			 "%u attempts; last error: %s", e->attempts,
			 e->rcpts[i].last_error ? e->rcpts[i].last_error : "none");
		log_info("%s: to=<%s>, relay=none, delay=%lld, dsn=4.4.7, "
			 "status=bounced (message expired after %u attempts; "
			 "last error: %s)",
			 e->id, e->rcpts[i].addr, (long long)(now - e->arrival),
			 e->attempts,
			 e->rcpts[i].last_error ? e->rcpts[i].last_error
						: "none");
		envelope_set_error(e, i, why);
		stats_add(STATUS_BOUNCED, 1);
	}
}

static void queue_persist(struct queue *q, struct qmsg *m);

/* Nothing left to deliver and no failure waiting for its DSN. */
static bool
queue_msg_finished(const struct qmsg *m)
{
	return envelope_count(&m->env, RCPT_PENDING) == 0 &&
	       envelope_count(&m->env, RCPT_FAILED) == 0;
}

void
queue_requeue(struct queue *q, struct qmsg *m)
{
	m->finalize = false;
	if (m->env.flags & ENV_F_HELD)
		return; /* known by id only, until released */
	if (heap_push(q, m) != 0) {
		log_err("%s: out of memory; message stays in the spool",
			m->env.id);
		queue_msg_free(q, m);
	}
}

void
queue_unlist(struct queue *q, struct qmsg *m)
{
	size_t i = m->heap_idx;
	if (i == QMSG_NOT_QUEUED)
		return;
	heap_swap(q, i, --q->n);
	m->heap_idx = QMSG_NOT_QUEUED;
	if (i < q->n) {
		heap_down(q, i);
		heap_up(q, i);
	}
}

void
queue_reorder(struct queue *q, struct qmsg *m)
{
	if (m->heap_idx == QMSG_NOT_QUEUED)
		return;
	heap_down(q, m->heap_idx);
	heap_up(q, m->heap_idx);
}

struct queue_op {
	struct queue *q;
	struct qmsg *m;
	bool remove;
};

static void
queue_op_cb(void *arg, int status)
{
	struct queue_op *op = arg;
	struct queue *q = op->q;
	struct qmsg *m = op->m;
	bool removed = op->remove;
	free(op);
	q->updates--;
	m->updating = false;
	if (removed && status == UV_ENOENT)
		status = 0; /* the envelope was already gone: nothing to resend */
	if (status < 0)
		log_warn("%s: cannot %s the queue file: %s", m->env.id,
			 removed ? "remove" : "update", uv_strerror(status));
	bool pending = !queue_msg_finished(m);
	if (removed && status < 0 && !m->dropped) {
		/* Still on disk (read-only spool, EIO): a restart would send it
		 * again, so keep it and try the removal after a backoff. */
		m->env.next_attempt = daemon_now() + 1 +
				      (int64_t)q->d->cfg.spool.retry_min_s;
		queue_requeue(q, m);
	} else if (removed || (m->dropped && m->jobs == 0)) {
		if (removed)
			log_info("%s: removed", m->env.id);
		queue_msg_free(q, m);
	} else if (m->dropped) {
		/* its last job frees it */
	} else if (m->dirty || (m->finalize && !pending)) {
		queue_persist(q, m);
	} else if (m->finalize) {
		queue_requeue(q, m);
	} else if (m->jobs == 0 && !m->updating && !m->delete_pending &&
		   m->heap_idx == QMSG_NOT_QUEUED) {
		queue_requeue(q, m); /* e.g. released while its hold was written */
	}
	if (q->stopping)
		daemon_maybe_exit(q->d);
	else
		queue_kick(q);
}

/* Write m's state, or remove it when nothing is pending and no job is open. */
static void
queue_persist(struct queue *q, struct qmsg *m)
{
	if (m->updating)
		return; /* dirty stays set: written when that one finishes */
	struct queue_op *op = malloc(sizeof(*op));
	if (op == NULL)
		return;
	op->q = q;
	op->m = m;
	op->remove = m->jobs == 0 && queue_msg_finished(m);
	m->dirty = false;
	int r = op->remove ? spool_remove(q->d->spool, m->env.id, queue_op_cb, op)
			   : spool_env_update(q->d->spool, &m->env, queue_op_cb, op);
	if (r < 0) {
		free(op);
		log_warn("%s: cannot update the spool: %s", m->env.id,
			 uv_strerror(r));
		if (m->finalize)
			queue_requeue(q, m); /* the disk state is older: safe */
		return;
	}
	m->updating = true;
	q->updates++;
}

/* Random bits for a retry's backoff, asked for only when there is one:
 * not a syscall for every message sent. */
static uint32_t
queue_jitter(int64_t now)
{
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)now;
	return rnd;
}

/* Every job of m is done: retry time for what is pending, then write. */
static void
queue_finalize(struct queue *q, struct qmsg *m)
{
	struct envelope *e = &m->env;
	if (m->delete_pending && !m->dropped) {
		queue_remove_now(q, m);
		return;
	}
	if (m->dropped) {
		if (!m->updating) {
			queue_msg_free(q, m);
		}
		return;
	}
	int64_t now = daemon_now();
	const struct config *cfg = &q->d->cfg;
	if (envelope_count(e, RCPT_PENDING) > 0) {
		uint32_t rnd = queue_jitter(now);
		e->attempts++;
		/* Rounded up: never sooner than the backoff after the failure. */
		e->next_attempt = now + 1 +
				  backoff_delay(e->attempts,
						(int64_t)cfg->spool.retry_min_s,
						(int64_t)cfg->spool.retry_max_s, rnd);
		queue_expire(q, m, now);
		m->dirty = true;
	}
	if (envelope_count(e, RCPT_FAILED) > 0 && !m->bounce_failed) {
		bounce_start(q, m); /* ends in queue_finalize_write() */
		return;
	}
	if (m->bounce_failed) {
		/* Try the DSN again after a backoff, even with nothing pending. */
		e->next_attempt = now + 1 +
				  backoff_delay(1, (int64_t)cfg->spool.retry_min_s,
						(int64_t)cfg->spool.retry_max_s,
						queue_jitter(now));
		m->dirty = true;
	}
	queue_finalize_write(q, m);
}

void
queue_finalize_write(struct queue *q, struct qmsg *m)
{
	m->finalize = true;
	if (m->updating)
		return; /* queue_op_cb finishes it */
	queue_persist(q, m);
}

void
queue_bounce_pending(struct queue *q, int delta)
{
	q->updates = (unsigned)((int)q->updates + delta);
}

void
queue_save(struct queue *q, struct qmsg *m)
{
	m->dirty = true;
	queue_persist(q, m);
}

void
queue_remove_now(struct queue *q, struct qmsg *m)
{
	/* Terminal without a notification: nothing pending, no DSN. */
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING ||
		    m->env.rcpts[i].state == RCPT_FAILED)
			m->env.rcpts[i].state = RCPT_BOUNCED;
	m->finalize = true;
	queue_save(q, m);
}

void
queue_each_qmsg(struct queue *q, void (*fn)(void *arg, struct qmsg *m),
		void *arg)
{
	for (size_t i = 0; i < q->id_buckets; i++) {
		struct qmsg *m = q->ids[i], *next;
		for (; m != NULL; m = next) {
			next = m->id_next;
			if (!m->delete_pending && !m->dropped)
				fn(arg, m);
		}
	}
}

struct queue_each_env {
	queue_each_fn fn;
	void *arg;
};

static void
queue_each_env_cb(void *arg, struct qmsg *m)
{
	struct queue_each_env *x = arg;
	x->fn(x->arg, &m->env, m->jobs > 0);
}

void
queue_each_msg(struct queue *q, queue_each_fn fn, void *arg)
{
	struct queue_each_env x = { fn, arg };
	queue_each_qmsg(q, queue_each_env_cb, &x);
}

void
queue_job_done(struct queue *q, struct job *job)
{
	struct qmsg *m = job->m;
	free(job);
	if (--m->jobs == 0)
		queue_finalize(q, m);
	else if (m->dirty)
		queue_persist(q, m);
}

void
queue_job_return(struct queue *q, struct job *job)
{
	struct qmsg *m = job->m;
	free(job);
	if (--m->jobs > 0)
		return;
	if (m->dropped || m->updating || m->dirty) {
		queue_finalize(q, m);
		return;
	}
	queue_requeue(q, m);
}

void
queue_job_drop(struct queue *q, struct job *job)
{
	struct qmsg *m = job->m;
	m->dropped = true;
	/* Its other jobs find nothing pending and finish without sending. */
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_PENDING)
			m->env.rcpts[i].state = RCPT_FAILED;
	m->dirty = false;
	queue_job_done(q, job);
}

void
queue_job_free(struct queue *q, struct job *job)
{
	/* Teardown: the id index frees the message itself. */
	job->m->jobs--;
	free(job);
}

void
queue_reset_backoff(struct queue *q)
{
	dest_reset_backoff(q);
}

void
queue_stop(struct queue *q)
{
	if (q->stopping)
		return;
	q->stopping = true;
	uv_timer_stop(&q->timer);
	dest_abort_all(q);
}

unsigned
queue_busy(const struct queue *q)
{
	return q ? dest_active_total(q) + q->updates : 0;
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
	dest_free_all(q);
	/* Every message left (queued, held) is in the id index. */
	for (size_t i = 0; i < q->id_buckets; i++) {
		struct qmsg *m = q->ids[i], *next;
		for (; m != NULL; m = next) {
			next = m->id_next;
			qmsg_free(m);
		}
	}
	free(q->ids);
	free(q->heap);
	free(q);
}

void
queue_free(struct queue *q)
{
	uv_close((uv_handle_t *)&q->timer, queue_timer_closed);
}
