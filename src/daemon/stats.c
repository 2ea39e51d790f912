/* SPDX-License-Identifier: MIT */
/*
 * Counters and the health snapshot behind `outbox status` and the
 * Prometheus textfile.
 *
 * Counters are plain process-wide integers bumped on the loop thread.
 * Each destination's last error is kept in a fixed table (no heap, so
 * nothing to free at exit): open addressing over STATS_ERR_SLOTS slots
 * with a short probe; when every probed slot is taken the oldest entry
 * there is replaced, so a relay with thousands of failing domains keeps
 * the recent ones.
 *
 * A snapshot walks the whole queue once (queue_ctl_foreach): message and
 * recipient counts, the oldest message and the oldest deferred one (a
 * message with pending recipients that has been tried at least once and
 * is not held), and per destination its pending recipients and earliest
 * next attempt, gathered in a hash table that lives for the snapshot.
 * The destinations with the most pending recipients are listed (at most
 * STATUS_DEST_MAX); the total count is kept.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/mx.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#define STATS_ERR_SLOTS 1024
#define STATS_ERR_PROBE 8
#define STATS_RELAY_NAME "relay"

struct stats_err {
	char name[HOSTNAME_MAX + 3];   /* "" = free slot */
	char text[STATUS_ERROR_MAX];
	int64_t at;
};

static uint64_t stats_counters[STATUS_NCOUNTERS];
static struct stats_err stats_errs[STATS_ERR_SLOTS];
static uint64_t stats_started_ns;

void
stats_add(enum status_counter c, uint64_t n)
{
	if ((unsigned)c < STATUS_NCOUNTERS)
		stats_counters[c] += n;
}

void
stats_start(void)
{
	stats_started_ns = uv_hrtime();
}

/* The display name of a queue destination ("" is the smarthost). */
static const char *
stats_dest_name(const char *dest)
{
	return dest[0] ? dest : STATS_RELAY_NAME;
}

/* The slot of name: its own, else a free one, else the oldest probed. */
static struct stats_err *
stats_err_slot(const char *name)
{
	size_t k = str_hash(name) % STATS_ERR_SLOTS;
	struct stats_err *victim = NULL;
	for (size_t i = 0; i < STATS_ERR_PROBE; i++) {
		struct stats_err *e = &stats_errs[(k + i) % STATS_ERR_SLOTS];
		if (e->name[0] == '\0' || strcmp(e->name, name) == 0)
			return e;
		if (victim == NULL || e->at < victim->at)
			victim = e;
	}
	return victim;
}

static const struct stats_err *
stats_err_find(const char *name)
{
	size_t k = str_hash(name) % STATS_ERR_SLOTS;
	for (size_t i = 0; i < STATS_ERR_PROBE; i++) {
		const struct stats_err *e;
		e = &stats_errs[(k + i) % STATS_ERR_SLOTS];
		if (e->name[0] == '\0')
			return NULL;
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

void
stats_rcpt_result(const char *dest, enum dlv_result res, const char *text)
{
	stats_add(res == DLV_OK	    ? STATUS_DELIVERED
		  : res == DLV_TEMP ? STATUS_DEFERRED
				    : STATUS_BOUNCED,
		  1);
	if (res == DLV_OK || dest == NULL || text == NULL)
		return;
	const char *name = stats_dest_name(dest);
	struct stats_err *e = stats_err_slot(name);
	str_copy(e->name, sizeof(e->name), name);
	/* Cut to the field: a long reply text is still worth showing. */
	str_copy(e->text, sizeof(e->text), text);
	e->at = daemon_now();
}

/* ---- the snapshot ---- */

struct stats_agg {
	char name[HOSTNAME_MAX + 3];   /* "" = free */
	uint64_t queued;
	int64_t next_attempt;          /* earliest; 0 = none seen */
};

struct stats_walk {
	struct daemon *d;
	struct status *st;
	int64_t now;
	int64_t oldest, oldest_deferred;  /* arrival times; 0 = none */
	struct stats_agg *agg;
	size_t nagg, cap;                 /* cap: a power of two */
	bool nomem;
};

static struct stats_agg *
stats_agg_lookup(struct stats_agg *tab, size_t cap, const char *name)
{
	size_t k = str_hash(name) & (cap - 1);
	while (tab[k].name[0] != '\0' && strcmp(tab[k].name, name) != 0)
		k = (k + 1) & (cap - 1);
	return &tab[k];
}

static int
stats_agg_grow(struct stats_walk *w)
{
	size_t cap = w->cap ? w->cap * 2 : 64;
	struct stats_agg *tab = calloc(cap, sizeof(*tab));
	if (tab == NULL)
		return -1;
	for (size_t i = 0; i < w->cap; i++)
		if (w->agg[i].name[0] != '\0')
			*stats_agg_lookup(tab, cap, w->agg[i].name) = w->agg[i];
	free(w->agg);
	w->agg = tab;
	w->cap = cap;
	return 0;
}

/* One pending recipient of env for destination name. */
static void
stats_agg_add(struct stats_walk *w, const char *name,
	      const struct envelope *env)
{
	if (w->nomem)
		return;
	/* Keep the table at most half full so probes stay short. */
	if (2 * (w->nagg + 1) > w->cap && stats_agg_grow(w) != 0) {
		w->nomem = true;
		return;
	}
	struct stats_agg *a = stats_agg_lookup(w->agg, w->cap, name);
	if (a->name[0] == '\0') {
		str_copy(a->name, sizeof(a->name), name);
		w->nagg++;
	}
	a->queued++;
	if (!(env->flags & ENV_F_HELD) &&
	    (a->next_attempt == 0 || env->next_attempt < a->next_attempt))
		a->next_attempt = env->next_attempt;
}

static void
stats_walk_rcpts(struct stats_walk *w, const struct envelope *env)
{
	bool relay = w->d->cfg.relay.nhost > 0;
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != RCPT_PENDING)
			continue;
		char dom[HOSTNAME_MAX + 3];
		const char *addr = env->rcpts[i].addr;
		if (relay)
			str_copy(dom, sizeof(dom), STATS_RELAY_NAME);
		else if (mx_rcpt_domain(addr, dom, sizeof(dom)) != 0)
			continue; /* failed when it is tried: no destination */
		stats_agg_add(w, dom, env);
	}
}

static void
stats_walk_cb(void *arg, const struct envelope *env, bool busy)
{
	struct stats_walk *w = arg;
	struct status *st = w->st;
	size_t pending = envelope_count(env, RCPT_PENDING);
	bool held = (env->flags & ENV_F_HELD) != 0;
	st->messages++;
	st->recipients_pending += pending;
	if (held)
		st->held++;
	if (w->oldest == 0 || env->arrival < w->oldest)
		w->oldest = env->arrival;
	if (pending > 0 && env->attempts > 0 && !held &&
	    (w->oldest_deferred == 0 || env->arrival < w->oldest_deferred))
		w->oldest_deferred = env->arrival;
	stats_walk_rcpts(w, env);
}

static int64_t
stats_age(int64_t now, int64_t arrival)
{
	if (arrival == 0)
		return -1;
	return now > arrival ? now - arrival : 0;
}

/* Most queued first; by name for a stable order. */
static int
stats_agg_cmp(const void *pa, const void *pb)
{
	const struct stats_agg *a = pa, *b = pb;
	if (a->queued != b->queued)
		return a->queued > b->queued ? -1 : 1;
	return strcmp(a->name, b->name);
}

static void
stats_fill_dests(struct stats_walk *w)
{
	struct status *st = w->st;
	size_t n = 0;
	/* Compact the used slots to the front, then sort them. */
	for (size_t i = 0; i < w->cap; i++)
		if (w->agg[i].name[0] != '\0')
			w->agg[n++] = w->agg[i];
	if (n > 1)
		qsort(w->agg, n, sizeof(*w->agg), stats_agg_cmp);
	st->dests_total = n;
	for (size_t i = 0; i < n && i < STATUS_DEST_MAX; i++) {
		struct status_dest *d = &st->dests[st->ndests++];
		str_copy(d->name, sizeof(d->name), w->agg[i].name);
		d->queued = w->agg[i].queued;
		d->next_attempt = w->agg[i].next_attempt;
		const struct stats_err *e = stats_err_find(d->name);
		if (e != NULL) {
			str_copy(d->last_error, sizeof(d->last_error), e->text);
			d->last_error_at = e->at;
		}
	}
}

void
stats_snapshot(struct daemon *d, struct status *st)
{
	memset(st, 0, sizeof(*st));
	str_copy(st->version, sizeof(st->version), OUTBOX_VERSION);
	st->pid = (int64_t)getpid();
	st->time = daemon_now();
	st->uptime = stats_started_ns
			     ? (uv_hrtime() - stats_started_ns) / 1000000000u
			     : 0;
	memcpy(st->counters, stats_counters, sizeof(st->counters));
	st->stuck_after = d->cfg.metrics.stuck_after_s;
	struct stats_walk w = { .d = d, .st = st, .now = st->time };
	if (d->queue != NULL)
		queue_ctl_foreach(d->queue, stats_walk_cb, &w);
	if (w.nomem)
		log_warn("status: out of memory; destinations left out");
	else if (w.agg != NULL)
		stats_fill_dests(&w);
	free(w.agg);
	st->oldest_age = stats_age(w.now, w.oldest);
	st->oldest_deferred_age = stats_age(w.now, w.oldest_deferred);
	st->stuck = status_is_stuck(st, st->stuck_after);
}
