/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_STATS_H
#define OUTBOX_STATS_H
/*
 * The daemon's counters and health snapshot (daemon/stats.c), and the
 * Prometheus textfile writer (daemon/metrics.c). Loop thread only.
 *
 * Counters are process-wide (one daemon per process) so the places where
 * events happen add one line, stats_add(STATUS_X, 1), without plumbing;
 * they count from start-up and survive reloads. The meaning of each is in
 * include/outbox/status.h.
 */
#include <stdbool.h>
#include <stdint.h>

#include "outbox/classify.h"
#include "outbox/status.h"

struct daemon;

/* Count n events of c. */
void stats_add(enum status_counter c, uint64_t n);
/*
 * One recipient outcome (queue.c, where every outcome is applied): counts
 * it as delivered, deferred or bounced, and a failure's text becomes the
 * last error of destination dest (the queue's destination name: a
 * domain, "[literal]", or "" for the smarthost; NULL: none).
 */
void stats_rcpt_result(const char *dest, enum dlv_result res,
		       const char *text);
/* Uptime counts from here (metrics_start calls it). */
void stats_start(void);
/*
 * Fill st (zeroed here) with the counters and a pass over d's queue:
 * sizes, ages, stuck (against [metrics] stuck_after) and the
 * destinations with the most pending recipients. O(recipients queued).
 */
void stats_snapshot(struct daemon *d, struct status *st);

/*
 * metrics.c: with [metrics] textfile set, write the Prometheus text to
 * <textfile>.tmp.<pid> and rename it over <textfile> at start and every
 * [metrics] interval (both re-read after a reload). metrics_stop writes
 * it once more with outbox_up 0 and closes the timer.
 */
void metrics_start(struct daemon *d);
void metrics_stop(struct daemon *d);

#endif
