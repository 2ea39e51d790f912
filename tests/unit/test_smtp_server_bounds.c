/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Direct tests of the listener machine that transcripts cannot express:
 * a client that pipelines without reading stalls with bounded replies, a
 * 100,000 byte line is cut off within SMTP_CMD_MAX, an event owed by the
 * glue is returned again, freeing in any state releases everything
 * (ASan reports leaks), and the error count the glue logs.
 */
#include "check.h"
#include "outbox/smtp_server.h"

static struct smtp_server_cfg
direct_cfg(void)
{
	struct smtp_server_cfg cfg = {
		.hostname = "mx.test",
		.max_message_size = 1000000,
		.max_recipients = 100,
		.hop_limit = 100,
		.error_limit = 20,
	};
	return cfg;
}

/*
 * A client that pipelines without reading stalls; memory stays bounded.
 * (HELO, not NOOP: NOOP is a junk command, see test_junk_limit.)
 */
static void
test_backpressure(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	CHECK(s != NULL);
	smtp_server_greet(s);
	static char in[100000 * 8];
	for (size_t i = 0; i < 100000; i++)
		memcpy(in + i * 8, "HELO x\r\n", 8);
	size_t off = 0, used = 0, rounds = 0;
	while (off < sizeof(in) && rounds < 1000) {
		CHECK_EQ(smtp_server_feed(s, in + off, sizeof(in) - off, &used),
			 SRV_NEED_MORE);
		off += used;
		struct buf *o = smtp_server_out(s);
		CHECK(o->len <= 72 * 1024);
		if (off < sizeof(in)) {
			CHECK(o->len >= 64 * 1024);
			/* Not drained: no progress at all. */
			CHECK_EQ(smtp_server_feed(s, in + off, sizeof(in) - off,
						  &used),
				 SRV_NEED_MORE);
			CHECK_EQ(used, 0);
		}
		buf_reset(o);
		rounds++;
	}
	CHECK_EQ(off, sizeof(in));
	CHECK(rounds > 5);
	smtp_server_free(s);
}

/* A 100,000 byte line without LF: closed after at most SMTP_CMD_MAX bytes. */
static void
test_long_line(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	smtp_server_greet(s);
	buf_reset(smtp_server_out(s));
	static char in[100000];
	memset(in, 'A', sizeof(in));
	size_t off = 0, used = 0;
	enum smtp_server_event ev = SRV_NEED_MORE;
	while (off < sizeof(in) && ev == SRV_NEED_MORE) {
		size_t n = sizeof(in) - off < 1000 ? sizeof(in) - off : 1000;
		ev = smtp_server_feed(s, in + off, n, &used);
		off += used;
	}
	CHECK_EQ(ev, SRV_CLOSE);
	CHECK(off <= SMTP_CMD_MAX + 1000); /* stopped within one feed */
	CHECK_STR_EQ(smtp_server_out(s)->data,
		     "500 5.5.2 Error: line too long\r\n");
	CHECK_EQ(smtp_server_feed(s, in, 10, &used), SRV_CLOSE);
	CHECK_EQ(used, 0);
	smtp_server_free(s);
}

static void
feed_all(struct smtp_server *s, const char *text, enum smtp_server_event want)
{
	size_t used = 0;
	CHECK_EQ(smtp_server_feed(s, text, strlen(text), &used), want);
	CHECK_EQ(used, strlen(text));
}

/* Freeing in any state releases the transaction (ASan checks leaks). */
static void
test_free_states(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	for (int stop = 0; stop < 4; stop++) {
		struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
		smtp_server_greet(s);
		feed_all(s, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n", SRV_NEED_MORE);
		if (stop >= 1)
			feed_all(s, "RCPT TO:<r1@d.test>\r\nRCPT TO:<r2@d.test>\r\n",
				 SRV_NEED_MORE);
		CHECK(smtp_server_tx(s) != NULL);
		if (stop >= 2) {
			feed_all(s, "DATA\r\n", SRV_DATA_START);
			smtp_server_data_begin(s, "ID1", "date");
			CHECK(smtp_server_chunk(s)->len > 0);
			CHECK_EQ(smtp_server_tx(s)->data_size,
				 smtp_server_chunk(s)->len);
		}
		if (stop >= 3)
			feed_all(s, "x\r\n.\r\n", SRV_NEED_COMMIT);
		CHECK_STR_EQ(smtp_server_state_name(s),
			     stop >= 2 ? "data" : stop == 1 ? "rcpt" : "mail");
		smtp_server_free(s);
	}
	smtp_server_free(NULL);
}

/* An event owed by the glue is returned again, nothing consumed. */
static void
test_pending_event(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	smtp_server_greet(s);
	const char *in = "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<r@d.test>\r\nDATA\r\nbody\r\n.\r\n";
	size_t used = 0;
	CHECK_EQ(smtp_server_feed(s, in, strlen(in), &used), SRV_DATA_START);
	size_t off = used;
	CHECK_EQ(smtp_server_feed(s, in + off, strlen(in) - off, &used),
		 SRV_DATA_START);
	CHECK_EQ(used, 0);
	smtp_server_data_begin(s, "Q1", "date");
	CHECK_EQ(smtp_server_feed(s, in + off, strlen(in) - off, &used),
		 SRV_NEED_COMMIT);
	CHECK_EQ(off + used, strlen(in));
	CHECK_EQ(smtp_server_feed(s, "NOOP\r\n", 6, &used), SRV_NEED_COMMIT);
	CHECK_EQ(used, 0);
	CHECK(smtp_server_tx(s) != NULL);
	smtp_server_commit_done(s, 0, "Q1");
	CHECK(smtp_server_tx(s) == NULL);
	CHECK_STR_EQ(smtp_server_state_name(s), "ready");
	feed_all(s, "NOOP\r\n", SRV_NEED_MORE);
	smtp_server_free(s);
}

/* NOOP and friends: past 100 each one is an error; error 20 ends it (E5). */
static void
test_junk_limit(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	smtp_server_greet(s);
	feed_all(s, "HELO c\r\n", SRV_NEED_MORE);
	/* a message resets the count */
	for (int i = 0; i < 99; i++)
		feed_all(s, i % 2 ? "NOOP\r\n" : "RSET\r\n", SRV_NEED_MORE);
	feed_all(s, "MAIL FROM:<>\r\nRCPT TO:<r@d.test>\r\nDATA\r\n",
		 SRV_DATA_START);
	smtp_server_data_begin(s, "Q1", "date");
	feed_all(s, "x\r\n.\r\n", SRV_NEED_COMMIT);
	smtp_server_commit_done(s, 0, "Q1");
	for (int i = 0; i < 119; i++)
		feed_all(s, i % 3 ? "NOOP\r\n" : "VRFY x\r\n", SRV_NEED_MORE);
	buf_reset(smtp_server_out(s));
	feed_all(s, "NOOP\r\n", SRV_CLOSE);
	CHECK_STR_EQ(smtp_server_out(s)->data,
		     "250 2.0.0 Ok\r\n421 4.7.0 mx.test Too many errors\r\n");
	smtp_server_free(s);
}

/* Feed all of in; the last event is expected to be want. */
static void
errors_feed(struct smtp_server *s, const char *in, enum smtp_server_event want)
{
	size_t n = strlen(in), off = 0, used = 0;
	enum smtp_server_event ev = SRV_NEED_MORE;
	for (int i = 0; i < 1000 && off < n; i++) {
		ev = smtp_server_feed(s, in + off, n - off, &used);
		off += used;
		buf_reset(smtp_server_out(s));
		if (ev != SRV_NEED_MORE)
			break;
	}
	CHECK_EQ(ev, want);
}

/*
 * smtp_server_errors(): the count behind the glue's one summary line per
 * session (RELIABILITY.md E13). It counts exactly what error_limit counts
 * -- unknown commands, syntax and sequence errors -- and nothing a
 * well-behaved client does. A clean session with a message counts nothing.
 */
static void
test_clean_session(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	CHECK(s != NULL);
	smtp_server_greet(s);
	CHECK_EQ(smtp_server_errors(s), 0);
	errors_feed(s, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<r@d.test>\r\n"
		       "DATA\r\n", SRV_DATA_START);
	smtp_server_data_begin(s, "Q1", "date");
	errors_feed(s, "x\r\n.\r\n", SRV_NEED_COMMIT);
	smtp_server_commit_done(s, 0, "Q1");
	errors_feed(s, "NOOP\r\nRSET\r\n", SRV_NEED_MORE);
	CHECK_EQ(smtp_server_errors(s), 0);
	errors_feed(s, "QUIT\r\n", SRV_CLOSE);
	CHECK_EQ(smtp_server_errors(s), 0);
	smtp_server_free(s);
}

/* Unknown, syntax and sequence errors each count once, up to the limit. */
static void
test_each_kind_counts(void)
{
	struct smtp_server_cfg cfg = direct_cfg();
	struct smtp_server *s = smtp_server_new(&cfg, "192.0.2.1", true);
	smtp_server_greet(s);
	errors_feed(s, "XYZZY\r\n", SRV_NEED_MORE);
	CHECK_EQ(smtp_server_errors(s), 1);
	errors_feed(s, "EHLO c\r\nMAIL FROM:no-brackets\r\n", SRV_NEED_MORE);
	CHECK_EQ(smtp_server_errors(s), 2);
	errors_feed(s, "RCPT TO:<r@d.test>\r\n", SRV_NEED_MORE);
	CHECK_EQ(smtp_server_errors(s), 3);
	for (int i = 3; i < 19; i++)
		errors_feed(s, "XYZZY\r\n", SRV_NEED_MORE);
	CHECK_EQ(smtp_server_errors(s), 19);
	errors_feed(s, "XYZZY\r\n", SRV_CLOSE); /* the 20th: 421 */
	CHECK_EQ(smtp_server_errors(s), 20);
	smtp_server_free(s);
}

int
main(void)
{
	test_junk_limit();
	test_clean_session();
	test_each_kind_counts();
	test_backpressure();
	test_long_line();
	test_free_states();
	test_pending_event();
	CHECK_DONE();
}
