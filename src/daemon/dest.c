/* SPDX-License-Identifier: MIT */
/*
 * Destinations: where jobs wait for a connection. One destination per
 * recipient domain in direct delivery, one for the smarthost in relay mode.
 *
 * Each destination has a FIFO of jobs, at most connections_per_domain open
 * deliveries, and parked deliveries (an idle, ready session kept briefly
 * for the next job: connection reuse). Dispatch is round-robin over the
 * destinations that have jobs, so a destination with a long backlog holds
 * only its own connection limit and never starves the others (E9).
 *
 * A destination that cannot be reached at all is backed off as a whole
 * (E10): its waiting jobs are deferred at once, and jobs that arrive
 * during the backoff are deferred without connecting.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "outbox/backoff.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/str.h"

#include "delivery_priv.h"
#include "queue_priv.h"

/* All outbound connections at once, every destination together. */
#define DEST_MAX_CONNECTIONS 100

static int
dest_grow(struct dest_table *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
	struct dest **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct dest *d = t->bucket[i], *next;
		for (; d != NULL; d = next) {
			next = d->hnext;
			size_t k = str_hash(d->name) % nb;
			d->hnext = b[k];
			b[k] = d;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->nbuckets = nb;
	return 0;
}

struct dest *
dest_get(struct queue *q, const char *name)
{
	struct dest_table *t = queue_dests(q);
	if (t->nbuckets > 0) {
		struct dest *d = t->bucket[str_hash(name) % t->nbuckets];
		for (; d != NULL; d = d->hnext)
			if (strcmp(d->name, name) == 0)
				return d;
	}
	if (t->n >= t->nbuckets && dest_grow(t) != 0)
		return NULL;
	struct dest *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	str_copy(d->name, sizeof(d->name), name);
	size_t k = str_hash(name) % t->nbuckets;
	d->hnext = t->bucket[k];
	t->bucket[k] = d;
	t->n++;
	return d;
}

static const char *
dest_label(const struct dest *d)
{
	return d->name[0] ? d->name : "relay";
}

static bool
dest_backed_off(const struct dest *d)
{
	return d->next_try > daemon_now();
}

static struct job *
dest_pop(struct dest *d)
{
	struct job *job = d->head;
	if (job == NULL)
		return NULL;
	d->head = job->next;
	if (d->head == NULL)
		d->tail = NULL;
	d->njobs--;
	job->next = NULL;
	return job;
}

static void
dest_defer_job(struct queue *q, struct dest *d, struct job *job)
{
	queue_job_result_all(job, "none", &d->last, STAGE_SESSION);
	queue_job_done(q, job);
}

void
dest_enqueue(struct queue *q, struct dest *d, struct job *job)
{
	if (dest_backed_off(d)) {
		dest_defer_job(q, d, job);
		return;
	}
	job->next = NULL;
	if (d->tail)
		d->tail->next = job;
	else
		d->head = job;
	d->tail = job;
	d->njobs++;
	struct delivery *dl = d->idle;
	while (dl != NULL && delivery_stale(dl)) {
		/* parked before a reload: its idle timeout now sends QUIT */
		dest_unpark(d, dl);
		delivery_set_timer(dl, 0);
		dl = d->idle;
	}
	if (dl != NULL) {
		dest_unpark(d, dl);
		delivery_wake(dl, dest_pop(d));
	}
}

struct job *
dest_take(struct queue *q, struct dest *d)
{
	if (queue_stopping(q) || dest_backed_off(d))
		return NULL;
	return dest_pop(d);
}

static unsigned
dest_limit(struct queue *q)
{
	unsigned n = queue_daemon(q)->cfg.mx.connections_per_domain;
	return n ? n : 10;
}

/*
 * Whether d should get another connection. New connections open one at a
 * time (none while another is still connecting), and only while the
 * backlog is more than twice what the open ones carry: three messages for
 * a smarthost go over one session (B16), a backlog of thousands ramps up
 * to connections_per_domain, and a dead destination is probed once.
 */
static bool
dest_wants_connection(struct queue *q, const struct dest *d)
{
	if (d->njobs == 0 || d->active >= dest_limit(q) || d->connecting > 0 ||
	    dest_backed_off(d))
		return false;
	/* Deliveries from before a reload take no more jobs (D15). */
	size_t usable = 0;
	for (const struct delivery *dl = d->all; dl != NULL; dl = dl->all_next)
		usable += !delivery_stale(dl);
	return usable == 0 || d->njobs > 2 * usable;
}

/* One round: at most one new delivery per destination. */
static unsigned
dest_dispatch_round(struct queue *q, struct dest_table *t)
{
	unsigned started = 0;
	for (size_t k = 0; k < t->nbuckets; k++) {
		size_t b = (t->cursor + k) % t->nbuckets;
		for (struct dest *d = t->bucket[b]; d != NULL; d = d->hnext) {
			if (t->active >= DEST_MAX_CONNECTIONS)
				return started;
			if (!dest_wants_connection(q, d))
				continue;
			struct job *job = dest_pop(d);
			if (delivery_start(queue_daemon(q), q, d, job) == NULL) {
				queue_job_return(q, job);
				continue;
			}
			d->active++;
			d->connecting++;
			t->active++;
			started++;
		}
	}
	return started;
}

void
dest_dispatch(struct queue *q)
{
	struct dest_table *t = queue_dests(q);
	if (queue_stopping(q) || t->nbuckets == 0)
		return;
	while (t->active < DEST_MAX_CONNECTIONS && dest_dispatch_round(q, t) > 0)
		;
	t->cursor++;
}

void
dest_failed(struct queue *q, struct dest *d, const struct smtp_client_result *r)
{
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)daemon_now();
	const struct config *cfg = &queue_daemon(q)->cfg;
	d->failures++;
	int64_t delay = backoff_delay(d->failures, (int64_t)cfg->spool.retry_min_s,
				      (int64_t)cfg->spool.retry_max_s, rnd);
	d->next_try = daemon_now() + delay;
	d->last = *r;
	log_info("%s: destination unreachable, backing off for %llds "
		 "(%u failed attempt%s)",
		 dest_label(d), (long long)delay, d->failures,
		 d->failures == 1 ? "" : "s");
	struct job *job;
	while ((job = dest_pop(d)) != NULL)
		dest_defer_job(q, d, job);
}

void
dest_ok(struct queue *q, struct dest *d)
{
	d->failures = 0;
	d->next_try = 0;
}

void
dest_connected(struct queue *q, struct dest *d)
{
	if (d->connecting > 0)
		d->connecting--;
	dest_ok(q, d);
	dest_dispatch(q); /* the backlog may warrant another connection */
}

void
dest_fail_jobs(struct queue *q, struct dest *d,
	       const struct smtp_client_result *r, bool permanent)
{
	struct job *job;
	while ((job = dest_pop(d)) != NULL) {
		queue_job_result_all(job, "none", r,
				     permanent ? STAGE_DATA : STAGE_SESSION);
		queue_job_done(q, job);
	}
}

bool
dest_park(struct queue *q, struct dest *d, struct delivery *dl)
{
	if (queue_stopping(q))
		return false;
	*delivery_next_idle(dl) = d->idle;
	d->idle = dl;
	return true;
}

void
dest_unpark(struct dest *d, struct delivery *dl)
{
	struct delivery **pp = &d->idle;
	while (*pp != NULL && *pp != dl)
		pp = delivery_next_idle(*pp);
	if (*pp == dl)
		*pp = *delivery_next_idle(dl);
	*delivery_next_idle(dl) = NULL;
}

void
dest_delivery_done(struct queue *q, struct dest *d, bool connected)
{
	struct dest_table *t = queue_dests(q);
	if (!connected && d->connecting > 0)
		d->connecting--;
	d->active--;
	t->active--;
	if (queue_stopping(q))
		daemon_maybe_exit(queue_daemon(q));
	else
		queue_kick(q);
}

void
dest_reset_backoff(struct queue *q)
{
	struct dest_table *t = queue_dests(q);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct dest *d = t->bucket[b]; d != NULL; d = d->hnext)
			dest_ok(q, d);
}

unsigned
dest_active_total(const struct queue *q)
{
	return queue_dests((struct queue *)q)->active;
}

void
dest_abort_all(struct queue *q)
{
	struct dest_table *t = queue_dests(q);
	for (size_t b = 0; b < t->nbuckets; b++) {
		for (struct dest *d = t->bucket[b]; d != NULL; d = d->hnext) {
			/* delivery_abort() unlinks dl from d->all. */
			while (d->all != NULL)
				delivery_abort(d->all);
		}
	}
}

void
dest_free_all(struct queue *q)
{
	struct dest_table *t = queue_dests(q);
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct dest *d = t->bucket[b], *next;
		for (; d != NULL; d = next) {
			next = d->hnext;
			struct job *job;
			while ((job = dest_pop(d)) != NULL)
				queue_job_free(q, job);
			free(d);
		}
	}
	free(t->bucket);
	t->bucket = NULL;
	t->nbuckets = t->n = 0;
}
