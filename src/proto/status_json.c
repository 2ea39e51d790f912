/* SPDX-License-Identifier: MIT */
/*
 * The STATUS reply's writing half (pure): struct status as the one-line
 * JSON object described in include/outbox/status.h. Destination names
 * and error texts come from outside (domains, remote replies), so they go
 * through control_json_str, which escapes every control byte and every
 * byte that is not valid UTF-8. The reading half is in control_json.c,
 * next to the JSON reader it shares.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "outbox/control.h"
#include "outbox/status.h"

static const char *const status_counter_names[STATUS_NCOUNTERS] = {
	[STATUS_RECEIVED] = "received",
	[STATUS_DELIVERED] = "delivered",
	[STATUS_DEFERRED] = "deferred",
	[STATUS_BOUNCED] = "bounced",
	[STATUS_DSN_SENT] = "dsn_sent",
	[STATUS_CONNECTIONS] = "connections",
	[STATUS_REJECTED] = "rejected",
	[STATUS_TLS_FAILURES] = "tls_failures",
	[STATUS_AUTH_FAILURES] = "auth_failures",
};

const char *
status_counter_name(enum status_counter c)
{
	if ((unsigned)c >= STATUS_NCOUNTERS)
		return NULL;
	return status_counter_names[c];
}

bool
status_is_stuck(const struct status *st, uint64_t stuck_after)
{
	return st->oldest_deferred_age >= 0 &&
	       (uint64_t)st->oldest_deferred_age > stuck_after;
}

/* An age, or null for -1 (no such message). */
static int
status_json_age(struct buf *out, const char *key, int64_t age)
{
	if (age < 0)
		return buf_printf(out, "\"%s\":null", key);
	return buf_printf(out, "\"%s\":%" PRId64, key, age);
}

static int
status_json_queue(struct buf *out, const struct status *st)
{
	int rc = buf_printf(out,
			    ",\"queue\":{\"messages\":%" PRIu64
			    ",\"recipients_pending\":%" PRIu64
			    ",\"held\":%" PRIu64 ",",
			    st->messages, st->recipients_pending, st->held);
	if (rc == 0)
		rc = status_json_age(out, "oldest_age", st->oldest_age);
	if (rc == 0)
		rc = buf_append(out, ",", 1);
	if (rc == 0)
		rc = status_json_age(out, "oldest_deferred_age",
				     st->oldest_deferred_age);
	return rc == 0 ? buf_append(out, "}", 1) : rc;
}

static int
status_json_counters(struct buf *out, const struct status *st)
{
	int rc = buf_puts(out, ",\"counters\":{");
	for (int i = 0; rc == 0 && i < STATUS_NCOUNTERS; i++)
		rc = buf_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "",
				status_counter_names[i], st->counters[i]);
	return rc == 0 ? buf_append(out, "}", 1) : rc;
}

static int
status_json_dest(struct buf *out, const struct status_dest *d)
{
	int rc = buf_puts(out, "{\"name\":");
	if (rc == 0)
		rc = control_json_str(out, d->name);
	if (rc == 0)
		rc = buf_printf(out, ",\"queued\":%" PRIu64 ",\"last_error\":",
				d->queued);
	if (rc == 0)
		rc = control_json_str(out, d->last_error[0] ? d->last_error
							    : NULL);
	if (rc == 0)
		rc = buf_printf(out,
				",\"last_error_at\":%" PRId64
				",\"next_attempt\":%" PRId64 "}",
				d->last_error_at, d->next_attempt);
	return rc;
}

static int
status_json_dests(struct buf *out, const struct status *st)
{
	int rc = buf_puts(out, ",\"destinations\":[");
	for (size_t i = 0; rc == 0 && i < st->ndests && i < STATUS_DEST_MAX;
	     i++) {
		if (i > 0)
			rc = buf_append(out, ",", 1);
		if (rc == 0)
			rc = status_json_dest(out, &st->dests[i]);
	}
	if (rc == 0)
		rc = buf_printf(out, "],\"destinations_total\":%" PRIu64,
				st->dests_total);
	return rc;
}

int
status_json(struct buf *out, const struct status *st)
{
	int rc = buf_puts(out, "{\"version\":");
	if (rc == 0)
		rc = control_json_str(out, st->version);
	if (rc == 0)
		rc = buf_printf(out,
				",\"pid\":%" PRId64 ",\"time\":%" PRId64
				",\"uptime\":%" PRIu64,
				st->pid, st->time, st->uptime);
	if (rc == 0)
		rc = status_json_queue(out, st);
	if (rc == 0)
		rc = buf_printf(out, ",\"stuck_after\":%" PRIu64 ",\"stuck\":%s",
				st->stuck_after, st->stuck ? "true" : "false");
	if (rc == 0)
		rc = status_json_counters(out, st);
	if (rc == 0)
		rc = status_json_dests(out, st);
	return rc == 0 ? buf_puts(out, "}\n") : rc;
}
