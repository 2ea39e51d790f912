/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The STATUS reply (proto/status_json.c, read back by control_json.c):
 * the request word, the JSON object exactly, escaping of outside text,
 * the round trip, nulls, bounds and malformed input; the stuck rule.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/control.h"
#include "outbox/status.h"
#include "outbox/str.h"

#include "check.h"

static struct status *
sample(void)
{
	struct status *st = calloc(1, sizeof(*st));
	str_copy(st->version, sizeof(st->version), "0.1.0");
	st->pid = 4242;
	st->time = 1700000000;
	st->uptime = 42;
	st->messages = 3;
	st->recipients_pending = 4;
	st->held = 1;
	st->oldest_age = 120;
	st->oldest_deferred_age = 100;
	st->stuck_after = 3600;
	for (int i = 0; i < STATUS_NCOUNTERS; i++)
		st->counters[i] = (uint64_t)(i + 1) * 10;
	st->ndests = 2;
	st->dests_total = 2;
	str_copy(st->dests[0].name, sizeof(st->dests[0].name), "example.com");
	st->dests[0].queued = 3;
	str_copy(st->dests[0].last_error, sizeof(st->dests[0].last_error), "host mx[1.2.3.4]:25 said: 451 \"busy\"\n");
	st->dests[0].last_error_at = 1699999990;
	st->dests[0].next_attempt = 1700000060;
	str_copy(st->dests[1].name, sizeof(st->dests[1].name), "relay");
	st->dests[1].queued = 1;
	return st;
}

static void
test_request(void)
{
	struct control_req r;
	char err[64], line[32];
	CHECK_EQ(0, control_parse("STATUS", 6, &r, err, sizeof(err)));
	CHECK_EQ(CONTROL_STATUS, r.cmd);
	CHECK_STR_EQ("", r.id);
	CHECK_EQ(0, control_parse("status\r", 7, &r, err, sizeof(err)));
	CHECK_EQ(CONTROL_STATUS, r.cmd);
	CHECK_EQ(-EINVAL, control_parse("STATUS 0123456789ABCDEF", 23, &r, err,
					sizeof(err)));
	CHECK_STR_EQ("wrong number of arguments for STATUS", err);
	CHECK_STR_EQ("STATUS", control_cmd_name(CONTROL_STATUS));
	struct control_req q = { .cmd = CONTROL_STATUS };
	CHECK_EQ(0, control_format(&q, line, sizeof(line)));
	CHECK_STR_EQ("STATUS\n", line);
}

static void
test_names(void)
{
	CHECK_STR_EQ("received", status_counter_name(STATUS_RECEIVED));
	CHECK_STR_EQ("delivered", status_counter_name(STATUS_DELIVERED));
	CHECK_STR_EQ("deferred", status_counter_name(STATUS_DEFERRED));
	CHECK_STR_EQ("bounced", status_counter_name(STATUS_BOUNCED));
	CHECK_STR_EQ("tls_failures", status_counter_name(STATUS_TLS_FAILURES));
	CHECK_STR_EQ("auth_failures", status_counter_name(STATUS_AUTH_FAILURES));
	CHECK(status_counter_name(STATUS_NCOUNTERS) == NULL);
	for (int i = 0; i < STATUS_NCOUNTERS; i++)
		CHECK(status_counter_name(i) != NULL);
}

static void
test_json_exact(void)
{
	struct status *st = sample();
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, status_json(&b, st));
	CHECK_STR_EQ(
		"{\"version\":\"0.1.0\",\"pid\":4242,\"time\":1700000000,"
		"\"uptime\":42,\"queue\":{\"messages\":3,"
		"\"recipients_pending\":4,\"held\":1,\"oldest_age\":120,"
		"\"oldest_deferred_age\":100},\"stuck_after\":3600,"
		"\"stuck\":false,\"counters\":{\"received\":10,"
		"\"delivered\":20,\"deferred\":30,\"bounced\":40,"
		"\"dsn_sent\":50,\"connections\":60,\"rejected\":70,"
		"\"tls_failures\":80,\"auth_failures\":90},"
		"\"destinations\":[{\"name\":\"example.com\",\"queued\":3,"
		"\"last_error\":\"host mx[1.2.3.4]:25 said: 451 \\\"busy\\\"\\n\","
		"\"last_error_at\":1699999990,\"next_attempt\":1700000060},"
		"{\"name\":\"relay\",\"queued\":1,\"last_error\":null,"
		"\"last_error_at\":0,\"next_attempt\":0}],"
		"\"destinations_total\":2}\n",
		b.data);
	/* One line: the only LF is the last byte. */
	CHECK(memchr(b.data, '\n', b.len - 1) == NULL);
	buf_free(&b);
	free(st);
}

static void
test_json_empty_queue(void)
{
	struct status *st = calloc(1, sizeof(*st));
	st->oldest_age = st->oldest_deferred_age = -1;
	st->stuck = true;
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, status_json(&b, st));
	CHECK(strstr(b.data, "\"oldest_age\":null,\"oldest_deferred_age\":null") !=
	      NULL);
	CHECK(strstr(b.data, "\"stuck\":true") != NULL);
	CHECK(strstr(b.data, "\"destinations\":[],\"destinations_total\":0}") !=
	      NULL);
	buf_free(&b);
	/* A bound too small fails cleanly. */
	buf_init(&b, 40);
	CHECK_EQ(-ENOBUFS, status_json(&b, st));
	buf_free(&b);
	free(st);
}

static void
test_json_hostile_text(void)
{
	struct status *st = sample();
	/* Control bytes and invalid UTF-8 from a remote reply. */
	str_copy(st->dests[0].last_error, sizeof(st->dests[0].last_error), "a\x01\x7f\xff\"}\\");
	str_copy(st->dests[0].name, sizeof(st->dests[0].name), "x\r\ny");
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, status_json(&b, st));
	CHECK(strstr(b.data, "\"name\":\"x\\r\\ny\"") != NULL);
	CHECK(strstr(b.data,
		     "\"last_error\":\"a\\u0001\\u007f\\u00ff\\\"}\\\\\"") !=
	      NULL);
	CHECK(memchr(b.data, '\n', b.len - 1) == NULL);
	struct status *back = calloc(1, sizeof(*back));
	char err[128];
	CHECK_EQ(0, status_json_parse(b.data, b.len, back, err, sizeof(err)));
	/* Read back for display: control bytes are made harmless. */
	CHECK(strchr(back->dests[0].name, '\n') == NULL);
	CHECK(strchr(back->dests[0].name, '\r') == NULL);
	CHECK(strchr(back->dests[0].last_error, '\x01') == NULL);
	buf_free(&b);
	free(back);
	free(st);
}

static void
test_round_trip(void)
{
	struct status *st = sample();
	st->stuck = true;
	st->dests[0].last_error[0] = '\0';
	str_copy(st->dests[0].last_error, sizeof(st->dests[0].last_error), "451 4.3.0 try later");
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, status_json(&b, st));
	struct status *back = calloc(1, sizeof(*back));
	char err[128];
	CHECK_EQ(0, status_json_parse(b.data, b.len, back, err, sizeof(err)));
	CHECK_STR_EQ("0.1.0", back->version);
	CHECK_EQ(4242, back->pid);
	CHECK_EQ(1700000000, back->time);
	CHECK_EQ(42, back->uptime);
	CHECK_EQ(3, back->messages);
	CHECK_EQ(4, back->recipients_pending);
	CHECK_EQ(1, back->held);
	CHECK_EQ(120, back->oldest_age);
	CHECK_EQ(100, back->oldest_deferred_age);
	CHECK_EQ(3600, back->stuck_after);
	CHECK(back->stuck);
	for (int i = 0; i < STATUS_NCOUNTERS; i++)
		CHECK_EQ(st->counters[i], back->counters[i]);
	CHECK_EQ(2, back->ndests);
	CHECK_EQ(2, back->dests_total);
	CHECK_STR_EQ("example.com", back->dests[0].name);
	CHECK_EQ(3, back->dests[0].queued);
	CHECK_STR_EQ("451 4.3.0 try later", back->dests[0].last_error);
	CHECK_EQ(1699999990, back->dests[0].last_error_at);
	CHECK_EQ(1700000060, back->dests[0].next_attempt);
	CHECK_STR_EQ("relay", back->dests[1].name);
	CHECK_STR_EQ("", back->dests[1].last_error);
	buf_free(&b);
	free(back);
	free(st);
}

static int
parse(const char *s, struct status *st)
{
	char err[128];
	return status_json_parse(s, strlen(s), st, err, sizeof(err));
}

static void
test_parse_lenient_and_strict(void)
{
	struct status *st = calloc(1, sizeof(*st));
	/* Unknown keys (a newer daemon) are skipped; nulls are "none". */
	CHECK_EQ(0, parse(" {\"pid\":1,\"new\":{\"a\":[1,2.5e3,null]},"
			  "\"queue\":{\"oldest_age\":null,\"extra\":true},"
			  "\"counters\":{\"received\":7,\"later\":1}}\n",
			  st));
	CHECK_EQ(1, st->pid);
	CHECK_EQ(-1, st->oldest_age);
	CHECK_EQ(-1, st->oldest_deferred_age);
	CHECK_EQ(7, st->counters[STATUS_RECEIVED]);
	CHECK_EQ(0, st->ndests);
	/* Not a status object, or broken JSON. */
	CHECK_EQ(-EINVAL, parse("{\"error\":\"x\",\"code\":\"EIO\"}", st));
	CHECK_EQ(-EINVAL, parse("{\"pid\":1", st));
	CHECK_EQ(-EINVAL, parse("{\"pid\":1} x", st));
	CHECK_EQ(-EINVAL, parse("{\"pid\":1,\"uptime\":-5}", st));
	CHECK_EQ(-EINVAL, parse("{\"pid\":1,\"queue\":{\"oldest_age\":-2}}", st));
	CHECK_EQ(-EINVAL, parse("{\"pid\":1,\"stuck\":1}", st));
	CHECK_EQ(-EINVAL, parse("", st));
	CHECK_EQ(-EINVAL, parse("[]", st));
	free(st);
}

static void
test_parse_many_dests(void)
{
	/* More destinations than fit: the rest are read past, not stored. */
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, buf_puts(&b, "{\"pid\":1,\"destinations\":["));
	for (int i = 0; i < STATUS_DEST_MAX + 5; i++)
		CHECK_EQ(0, buf_printf(&b, "%s{\"name\":\"d%d\",\"queued\":%d}",
				       i ? "," : "", i, i));
	CHECK_EQ(0, buf_puts(&b, "],\"destinations_total\":105}"));
	struct status *st = calloc(1, sizeof(*st));
	char err[128];
	CHECK_EQ(0, status_json_parse(b.data, b.len, st, err, sizeof(err)));
	CHECK_EQ(STATUS_DEST_MAX, st->ndests);
	CHECK_EQ(105, st->dests_total);
	CHECK_STR_EQ("d99", st->dests[99].name);
	CHECK_EQ(99, st->dests[99].queued);
	buf_free(&b);
	free(st);
}

static void
test_worst_case_fits(void)
{
	/* Every destination listed, every byte of every text an escape. */
	struct status *st = calloc(1, sizeof(*st));
	st->ndests = st->dests_total = STATUS_DEST_MAX;
	for (size_t i = 0; i < STATUS_DEST_MAX; i++) {
		memset(st->dests[i].name, 0x01, sizeof(st->dests[i].name) - 1);
		memset(st->dests[i].last_error, 0x01,
		       sizeof(st->dests[i].last_error) - 1);
	}
	struct buf b;
	buf_init(&b, STATUS_JSON_MAX);
	CHECK_EQ(0, status_json(&b, st));
	struct status *back = calloc(1, sizeof(*back));
	char err[128];
	CHECK_EQ(0, status_json_parse(b.data, b.len, back, err, sizeof(err)));
	CHECK_EQ(STATUS_DEST_MAX, back->ndests);
	CHECK_EQ(sizeof(back->dests[0].last_error) - 1,
		 strlen(back->dests[STATUS_DEST_MAX - 1].last_error));
	buf_free(&b);
	free(back);
	free(st);
}

static void
test_stuck(void)
{
	struct status st = { .oldest_deferred_age = -1 };
	CHECK(!status_is_stuck(&st, 0));
	st.oldest_deferred_age = 10;
	CHECK(!status_is_stuck(&st, 10));
	CHECK(status_is_stuck(&st, 9));
	CHECK(!status_is_stuck(&st, 3600));
	st.oldest_deferred_age = 0;
	CHECK(!status_is_stuck(&st, 0));
}

int
main(void)
{
	test_request();
	test_names();
	test_json_exact();
	test_json_empty_queue();
	test_json_hostile_text();
	test_round_trip();
	test_parse_lenient_and_strict();
	test_parse_many_dests();
	test_worst_case_fits();
	test_stuck();
	CHECK_DONE();
}
