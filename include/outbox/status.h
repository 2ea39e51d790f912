/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_STATUS_H
#define OUTBOX_STATUS_H
/*
 * The daemon's health and counters as plain data (pure code:
 * proto/status_json.c writes the JSON, proto/control_json.c reads it
 * back with the control protocol's JSON reader, proto/metrics_text.c
 * writes the Prometheus text). daemon/stats.c fills it; `outbox status`
 * reads it back from the control socket's STATUS reply.
 *
 * The STATUS reply is one JSON object on one line, then LF:
 *
 *   {"version":"0.1.0","pid":123,"time":1700000000,"uptime":42,
 *    "queue":{"messages":3,"recipients_pending":4,"held":1,
 *             "oldest_age":120,"oldest_deferred_age":100},
 *    "stuck_after":3600,"stuck":false,
 *    "counters":{"received":10,"delivered":9,...},
 *    "destinations":[{"name":"example.com","queued":2,
 *                     "last_error":"...","last_error_at":1700000000,
 *                     "next_attempt":1700000060}],
 *    "destinations_total":1}
 *
 * Times are epoch seconds, ages and uptime seconds. oldest_age and
 * oldest_deferred_age are null when there is no such message;
 * last_error is null when none was seen (last_error_at then 0);
 * next_attempt is 0 when unknown. "queued" counts pending recipients.
 * A deferred message is one with pending recipients that has been tried
 * at least once and is not held; stuck = oldest_deferred_age >
 * stuck_after. At most STATUS_DEST_MAX destinations are listed (the ones
 * with the most queued recipients); destinations_total says how many
 * had queued recipients at all.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/limits.h"

#define STATUS_DEST_MAX 100
#define STATUS_ERROR_MAX 512   /* a destination's last error, NUL included */
/* The whole reply: 100 destinations whose names and errors are all
 * escapes (6 bytes a byte) still fit. */
#define STATUS_JSON_MAX (1024u * 1024u)

/* Counters since the daemon started (never reset by a reload). */
enum status_counter {
	STATUS_RECEIVED,      /* messages accepted: SMTP 250 and maildrop */
	STATUS_DELIVERED,     /* recipients delivered (2xx upstream) */
	STATUS_DEFERRED,      /* recipient deferrals (each 4xx attempt) */
	STATUS_BOUNCED,       /* recipients failed for good (5xx, expiry) */
	STATUS_DSN_SENT,      /* delivery status notifications queued */
	STATUS_CONNECTIONS,   /* inbound SMTP connections, refused ones too */
	STATUS_REJECTED,      /* of those, refused (allow, connection limit) */
	STATUS_TLS_FAILURES,  /* outbound TLS handshakes that failed */
	STATUS_AUTH_FAILURES, /* outbound sessions that failed at AUTH */
	STATUS_NCOUNTERS
};

struct status_dest {
	char name[HOSTNAME_MAX + 3];  /* a domain, "[literal]" or "relay" */
	uint64_t queued;              /* pending recipients */
	char last_error[STATUS_ERROR_MAX]; /* "" = none */
	int64_t last_error_at;        /* epoch seconds; 0 = none */
	int64_t next_attempt;         /* earliest retry; 0 = unknown */
};

struct status {
	char version[32];
	int64_t pid;
	int64_t time;                 /* when the snapshot was taken */
	uint64_t uptime;
	uint64_t messages, recipients_pending, held;
	int64_t oldest_age;           /* -1 = no message */
	int64_t oldest_deferred_age;  /* -1 = no deferred message */
	uint64_t stuck_after;
	bool stuck;
	uint64_t counters[STATUS_NCOUNTERS];
	struct status_dest dests[STATUS_DEST_MAX];
	size_t ndests;
	uint64_t dests_total;
};

/* "received", "delivered", ... (the JSON key); NULL past the end. */
const char *status_counter_name(enum status_counter c);
/* Is the queue stuck at this threshold (seconds)? */
bool status_is_stuck(const struct status *st, uint64_t stuck_after);

/* Append st as the JSON object above with its LF. 0 or -ENOBUFS. */
int status_json(struct buf *out, const struct status *st) BUF_WUR;
/*
 * Parse a STATUS reply s[0..n) (surrounding white space allowed) into
 * out (zeroed first). Unknown keys are skipped; destinations past
 * STATUS_DEST_MAX are dropped; strings are cut to their field's size.
 * 0, or -EINVAL with a reason in err.
 */
int status_json_parse(const char *s, size_t n, struct status *out, char *err,
		      size_t errlen);

/*
 * The Prometheus text exposition (format 0.0.4) of st (proto/metrics_text.c):
 * outbox_up (up), outbox_uptime_seconds, one outbox_<counter>_total per
 * counter, outbox_queue_messages, outbox_queue_recipients_pending,
 * outbox_queue_held, outbox_queue_oldest_age_seconds and
 * outbox_queue_oldest_deferred_age_seconds (0 when none),
 * outbox_queue_stuck (0|1), outbox_queue_stuck_after_seconds, and per
 * listed destination (label destination="...")
 * outbox_destination_queued, outbox_destination_last_error_timestamp_seconds
 * and outbox_destination_next_attempt_timestamp_seconds (0 = none). Label
 * values are escaped (\\, \", \n); bytes that are not valid
 * UTF-8 and other control bytes become '?'. 0 or -ENOBUFS.
 */
int metrics_text(struct buf *out, const struct status *st, bool up) BUF_WUR;
/* Append v as an escaped Prometheus label value (without quotes). */
int metrics_label_value(struct buf *out, const char *v) BUF_WUR;

#endif
