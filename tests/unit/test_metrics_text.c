/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus text (proto/metrics_text.c): label value escaping byte
 * by byte, the families with HELP/TYPE before their samples, counters as
 * _total, and every line in the exposition grammar.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/status.h"
#include "outbox/str.h"

#include "check.h"

static const char *
label(const char *v, char *out, size_t size)
{
	struct buf b;
	buf_init(&b, 1024);
	CHECK_EQ(0, metrics_label_value(&b, v));
	str_copy(out, size, b.data ? b.data : "");
	buf_free(&b);
	return out;
}

static void
test_label_escaping(void)
{
	char o[256];
	CHECK_STR_EQ("example.com", label("example.com", o, sizeof(o)));
	CHECK_STR_EQ("", label("", o, sizeof(o)));
	CHECK_STR_EQ("a\\\\b", label("a\\b", o, sizeof(o)));
	CHECK_STR_EQ("a\\\"b", label("a\"b", o, sizeof(o)));
	CHECK_STR_EQ("a\\nb", label("a\nb", o, sizeof(o)));
	CHECK_STR_EQ("a?b?c?", label("a\rb\tc\x7f", o, sizeof(o)));
	/* Valid UTF-8 passes; invalid bytes, overlongs, surrogates do not. */
	CHECK_STR_EQ("b\xc3\xbc" "cher.de", label("b\xc3\xbc" "cher.de", o, sizeof(o)));
	CHECK_STR_EQ("\xf0\x9f\x93\xa7", label("\xf0\x9f\x93\xa7", o, sizeof(o)));
	CHECK_STR_EQ("?x", label("\xff" "x", o, sizeof(o)));
	CHECK_STR_EQ("??", label("\xc0\xaf", o, sizeof(o)));
	CHECK_STR_EQ("???", label("\xed\xa0\x80", o, sizeof(o)));
	CHECK_STR_EQ("?", label("\xc3", o, sizeof(o)));
}

static struct status *
sample(void)
{
	struct status *st = calloc(1, sizeof(*st));
	st->uptime = 77;
	st->messages = 5;
	st->recipients_pending = 6;
	st->held = 1;
	st->oldest_age = 300;
	st->oldest_deferred_age = -1;
	st->stuck_after = 3600;
	st->counters[STATUS_RECEIVED] = 12;
	st->counters[STATUS_DELIVERED] = 11;
	st->counters[STATUS_TLS_FAILURES] = 2;
	st->ndests = 2;
	str_copy(st->dests[0].name, sizeof(st->dests[0].name), "example.com");
	st->dests[0].queued = 4;
	st->dests[0].last_error_at = 1700000000;
	st->dests[0].next_attempt = 1700000060;
	str_copy(st->dests[1].name, sizeof(st->dests[1].name), "ev\"il\n}");
	st->dests[1].queued = 2;
	return st;
}

/* Is line a valid sample line: name{labels} value? (the subset we write) */
static bool
sample_line_ok(const char *l)
{
	size_t n = strspn(l, "abcdefghijklmnopqrstuvwxyz_");
	if (n == 0)
		return false;
	l += n;
	if (*l == '{') {
		if (strncmp(l, "{destination=\"", 14) != 0)
			return false;
		l += 14;
		while (*l && *l != '"') {
			if (*l == '\\') {
				if (l[1] != '\\' && l[1] != '"' && l[1] != 'n')
					return false;
				l++;
			}
			l++;
		}
		if (strncmp(l, "\"}", 2) != 0)
			return false;
		l += 2;
	}
	if (*l++ != ' ')
		return false;
	return *l && strspn(l, "0123456789") == strlen(l);
}

static void
test_text(void)
{
	struct status *st = sample();
	struct buf b;
	buf_init(&b, 64 * 1024);
	CHECK_EQ(0, metrics_text(&b, st, true));
	const char *t = b.data;
	CHECK(strncmp(t, "# HELP outbox_up ", 17) == 0);
	CHECK(strstr(t, "\n# TYPE outbox_up gauge\noutbox_up 1\n") != NULL);
	CHECK(strstr(t, "\noutbox_uptime_seconds 77\n") != NULL);
	CHECK(strstr(t, "# TYPE outbox_received_total counter\n"
			"outbox_received_total 12\n") != NULL);
	CHECK(strstr(t, "\noutbox_delivered_total 11\n") != NULL);
	CHECK(strstr(t, "\noutbox_deferred_total 0\n") != NULL);
	CHECK(strstr(t, "\noutbox_bounced_total 0\n") != NULL);
	CHECK(strstr(t, "\noutbox_tls_failures_total 2\n") != NULL);
	CHECK(strstr(t, "\noutbox_auth_failures_total 0\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_messages 5\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_recipients_pending 6\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_held 1\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_oldest_age_seconds 300\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_oldest_deferred_age_seconds 0\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_stuck 0\n") != NULL);
	CHECK(strstr(t, "\noutbox_queue_stuck_after_seconds 3600\n") != NULL);
	CHECK(strstr(t, "# TYPE outbox_destination_queued gauge\n"
			"outbox_destination_queued{destination=\"example.com\"} 4\n"
			"outbox_destination_queued{destination=\"ev\\\"il\\n}\"} 2\n") !=
	      NULL);
	CHECK(strstr(t, "outbox_destination_last_error_timestamp_seconds"
			"{destination=\"example.com\"} 1700000000\n") != NULL);
	CHECK(strstr(t, "outbox_destination_next_attempt_timestamp_seconds"
			"{destination=\"example.com\"} 1700000060\n") != NULL);
	CHECK(t[b.len - 1] == '\n');

	/* Every line: a comment for a family seen once, or a sample whose
	 * family's TYPE came before it. */
	char *copy = str_ndup(b.data, b.len);
	int types = 0, samples = 0;
	char last_type[128] = "";
	for (char *l = copy, *nl; *l; l = nl + 1) {
		nl = strchr(l, '\n');
		CHECK(nl != NULL);
		*nl = '\0';
		if (strncmp(l, "# HELP ", 7) == 0)
			continue;
		if (strncmp(l, "# TYPE ", 7) == 0) {
			types++;
			size_t k = strcspn(l + 7, " ");
			CHECK(k < sizeof(last_type));
			memcpy(last_type, l + 7, k);
			last_type[k] = '\0';
			CHECK(strcmp(l + 7 + k, " gauge") == 0 ||
			      strcmp(l + 7 + k, " counter") == 0);
			continue;
		}
		samples++;
		CHECK(sample_line_ok(l));
		size_t k = strlen(last_type);
		CHECK(strncmp(l, last_type, k) == 0 &&
		      (l[k] == ' ' || l[k] == '{'));
	}
	/* up, uptime, 9 counters, 7 queue gauges, 3 destination families. */
	CHECK_EQ(2 + STATUS_NCOUNTERS + 7 + 3, types);
	CHECK_EQ(2 + STATUS_NCOUNTERS + 7 + 3 * 2, samples);
	free(copy);
	buf_free(&b);
	free(st);
}

static void
test_down_and_bounds(void)
{
	struct status *st = sample();
	st->stuck = true;
	struct buf b;
	buf_init(&b, 64 * 1024);
	CHECK_EQ(0, metrics_text(&b, st, false));
	CHECK(strstr(b.data, "\noutbox_up 0\n") != NULL);
	CHECK(strstr(b.data, "\noutbox_queue_stuck 1\n") != NULL);
	buf_free(&b);
	buf_init(&b, 200);
	CHECK_EQ(-ENOBUFS, metrics_text(&b, st, true));
	buf_free(&b);
	free(st);
}

int
main(void)
{
	test_label_escaping();
	test_text();
	test_down_and_bounds();
	CHECK_DONE();
}
