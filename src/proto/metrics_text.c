/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus text exposition (format 0.0.4) of a struct status, for
 * node_exporter's textfile collector (pure; daemon/metrics.c writes the
 * file). Every family gets its # HELP and # TYPE lines once, before its
 * samples, as the format requires; counters end in _total.
 *
 * Destination names are the only outside text that reaches the output
 * (as the value of the "destination" label). The format asks for '\\',
 * '"' and LF to be escaped in label values and for UTF-8; we escape
 * those three and write '?' for any other control byte and for every
 * byte that is not part of valid UTF-8, so a hostile name can neither
 * end the line nor make the file unparsable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "outbox/str.h"
#include "outbox/status.h"

static const char *const metrics_counter_help[STATUS_NCOUNTERS] = {
	[STATUS_RECEIVED] = "Messages accepted (SMTP and sendmail).",
	[STATUS_DELIVERED] = "Recipients delivered.",
	[STATUS_DEFERRED] = "Recipient delivery attempts deferred.",
	[STATUS_BOUNCED] = "Recipients failed permanently.",
	[STATUS_DSN_SENT] = "Delivery status notifications queued.",
	[STATUS_CONNECTIONS] = "Inbound SMTP connections.",
	[STATUS_REJECTED] = "Inbound SMTP connections refused.",
	[STATUS_TLS_FAILURES] = "Outbound TLS handshakes that failed.",
	[STATUS_AUTH_FAILURES] = "Outbound sessions that failed at AUTH.",
};

static int
metrics_label_byte(struct buf *out, unsigned char c)
{
	if (c == '\\')
		return buf_append(out, "\\\\", 2);
	if (c == '"')
		return buf_append(out, "\\\"", 2);
	if (c == '\n')
		return buf_append(out, "\\n", 2);
	if (c < 0x20 || c >= 0x7f)
		return buf_append(out, "?", 1);
	return buf_append(out, &c, 1);
}

int
metrics_label_value(struct buf *out, const char *v)
{
	const unsigned char *u = (const unsigned char *)v;
	size_t n = strlen(v), i = 0;
	int rc = 0;
	while (rc == 0 && i < n) {
		size_t ul = u[i] >= 0x80 ? str_utf8_len(u + i, n - i) : 0;
		if (ul > 0) {
			rc = buf_append(out, v + i, ul);
			i += ul;
		} else {
			rc = metrics_label_byte(out, u[i++]);
		}
	}
	return rc;
}

static int
metrics_family(struct buf *out, const char *name, const char *type,
	       const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			  name, type);
}

/* One family with a single unlabelled sample. */
static int
metrics_one(struct buf *out, const char *name, const char *type,
	    const char *help, uint64_t v)
{
	int rc = metrics_family(out, name, type, help);
	return rc == 0 ? buf_printf(out, "%s %" PRIu64 "\n", name, v) : rc;
}

static uint64_t
metrics_age(int64_t age)
{
	return age < 0 ? 0 : (uint64_t)age;
}

static int
metrics_counters(struct buf *out, const struct status *st)
{
	int rc = 0;
	for (int i = 0; rc == 0 && i < STATUS_NCOUNTERS; i++) {
		char name[64];
		snprintf(name, sizeof(name), "outbox_%s_total",
			 status_counter_name(i));
		rc = metrics_one(out, name, "counter", metrics_counter_help[i],
				 st->counters[i]);
	}
	return rc;
}

static int
metrics_queue(struct buf *out, const struct status *st)
{
	int rc = metrics_one(out, "outbox_queue_messages", "gauge",
			     "Messages in the queue.", st->messages);
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_recipients_pending", "gauge",
				 "Recipients waiting for delivery.",
				 st->recipients_pending);
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_held", "gauge",
				 "Messages held by outbox queue hold.", st->held);
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_oldest_age_seconds", "gauge",
				 "Age of the oldest queued message (0: none).",
				 metrics_age(st->oldest_age));
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_oldest_deferred_age_seconds",
				 "gauge",
				 "Age of the oldest deferred message (0: none).",
				 metrics_age(st->oldest_deferred_age));
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_stuck", "gauge",
				 "1 when the oldest deferred message is older "
				 "than stuck_after.",
				 st->stuck ? 1 : 0);
	if (rc == 0)
		rc = metrics_one(out, "outbox_queue_stuck_after_seconds", "gauge",
				 "The [metrics] stuck_after threshold.",
				 st->stuck_after);
	return rc;
}

enum metrics_dest_field { MD_QUEUED, MD_LAST_ERROR_AT, MD_NEXT_ATTEMPT };

static int64_t
metrics_dest_value(const struct status_dest *d, enum metrics_dest_field f)
{
	switch (f) {
	case MD_QUEUED:
		return (int64_t)d->queued;
	case MD_LAST_ERROR_AT:
		return d->last_error_at;
	case MD_NEXT_ATTEMPT:
		return d->next_attempt;
	}
	return 0;
}

/* One labelled sample per listed destination. */
static int
metrics_dest_family(struct buf *out, const struct status *st,
		    const char *name, const char *help,
		    enum metrics_dest_field field)
{
	int rc = metrics_family(out, name, "gauge", help);
	for (size_t i = 0; rc == 0 && i < st->ndests && i < STATUS_DEST_MAX;
	     i++) {
		const struct status_dest *d = &st->dests[i];
		int64_t v = metrics_dest_value(d, field);
		rc = buf_printf(out, "%s{destination=\"", name);
		if (rc == 0)
			rc = metrics_label_value(out, d->name);
		if (rc == 0)
			rc = buf_printf(out, "\"} %" PRId64 "\n", v < 0 ? 0 : v);
	}
	return rc;
}

static int
metrics_dests(struct buf *out, const struct status *st)
{
	int rc = metrics_dest_family(out, st, "outbox_destination_queued",
				     "Recipients queued for the destination.",
				     MD_QUEUED);
	if (rc == 0)
		rc = metrics_dest_family(
			out, st, "outbox_destination_last_error_timestamp_seconds",
			"When the destination last failed (0: never).",
			MD_LAST_ERROR_AT);
	if (rc == 0)
		rc = metrics_dest_family(
			out, st,
			"outbox_destination_next_attempt_timestamp_seconds",
			"The destination's next delivery attempt (0: unknown).",
			MD_NEXT_ATTEMPT);
	return rc;
}

int
metrics_text(struct buf *out, const struct status *st, bool up)
{
	int rc = metrics_one(out, "outbox_up", "gauge",
			     "1 while outboxd runs; 0 written when it stops.",
			     up ? 1 : 0);
	if (rc == 0)
		rc = metrics_one(out, "outbox_uptime_seconds", "gauge",
				 "Seconds since outboxd started.", st->uptime);
	if (rc == 0)
		rc = metrics_counters(out, st);
	if (rc == 0)
		rc = metrics_queue(out, st);
	if (rc == 0)
		rc = metrics_dests(out, st);
	return rc;
}
