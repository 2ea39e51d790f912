/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * smtp_server_errors(): the count behind the glue's one summary line per
 * session (RELIABILITY.md E13). It must count exactly what error_limit
 * counts -- unknown commands, syntax and sequence errors -- and nothing
 * a well-behaved client does.
 */
#include <string.h>

#include "check.h"
#include "outbox/smtp_server.h"

static struct smtp_server_cfg
errors_cfg(void)
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

/* A clean session with a message counts nothing. */
static void
test_clean_session(void)
{
	struct smtp_server_cfg cfg = errors_cfg();
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
	struct smtp_server_cfg cfg = errors_cfg();
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
	test_clean_session();
	test_each_kind_counts();
	CHECK_DONE();
}
