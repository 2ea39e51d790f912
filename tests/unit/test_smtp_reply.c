/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Tests for the strict SMTP reply parser (proto/smtp_reply.c): well-formed
 * single and multi-line replies, enhanced status codes, and every B10
 * malformed reply.
 */
#include <string.h>

#include "check.h"
#include "outbox/smtp_reply.h"

static enum smtp_reply_status
feed(struct smtp_reply *r, const char *line)
{
	return smtp_reply_feed(r, line, strlen(line));
}

static void
test_single(void)
{
	struct smtp_reply r;
	char sum[64];

	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "250 2.0.0 Ok: queued as X"), REPLY_DONE);
	CHECK_EQ(r.code, 250);
	CHECK_STR_EQ(r.enh, "2.0.0");
	CHECK_STR_EQ(r.text, "2.0.0 Ok: queued as X");
	CHECK_EQ(r.nlines, 1);
	smtp_reply_summary(&r, sum, sizeof(sum));
	CHECK_STR_EQ(sum, "250 2.0.0 Ok: queued as X");

	/* "NNN" alone is a complete reply (RFC 5321 4.2 Reply-line). */
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "354"), REPLY_DONE);
	CHECK_EQ(r.code, 354);
	CHECK_STR_EQ(r.text, "");
	CHECK_STR_EQ(r.enh, "");
	smtp_reply_summary(&r, sum, sizeof(sum));
	CHECK_STR_EQ(sum, "354");

	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "220 "), REPLY_DONE);
	CHECK_STR_EQ(r.text, "");

	/* Summary is cut to the buffer. */
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "550 5.1.1 <nobody@example.test>: unknown"), REPLY_DONE);
	smtp_reply_summary(&r, sum, 12);
	CHECK_STR_EQ(sum, "550 5.1.1 <");
}

static void
test_multi(void)
{
	struct smtp_reply r;
	char sum[64];

	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "250-mx.example.test Hello"), REPLY_MORE);
	CHECK_EQ(feed(&r, "250-PIPELINING"), REPLY_MORE);
	CHECK_EQ(feed(&r, "250-"), REPLY_MORE);
	CHECK_EQ(feed(&r, "250 SIZE 1000"), REPLY_DONE);
	CHECK_EQ(r.nlines, 4);
	CHECK_STR_EQ(r.text, "mx.example.test Hello\nPIPELINING\n\nSIZE 1000");
	CHECK_STR_EQ(r.enh, "");
	smtp_reply_summary(&r, sum, sizeof(sum));
	CHECK_STR_EQ(sum, "250 mx.example.test Hello");

	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "550-5.7.1 first"), REPLY_MORE);
	CHECK_EQ(feed(&r, "550 5.7.1 second"), REPLY_DONE);
	CHECK_STR_EQ(r.enh, "5.7.1");
	CHECK_STR_EQ(r.text, "5.7.1 first\n5.7.1 second");

	/* Exactly SMTP_REPLY_MAX_LINES lines is fine. */
	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
		CHECK_EQ(feed(&r, "250-x"), REPLY_MORE);
	CHECK_EQ(feed(&r, "250 x"), REPLY_DONE);
	CHECK_EQ(r.nlines, SMTP_REPLY_MAX_LINES);
}

static void
check_enh(const char *line, const char *want)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, line), REPLY_DONE);
	CHECK_STR_EQ(r.enh, want);
}

static void
test_enh(void)
{
	check_enh("451 4.7.1 greylisted", "4.7.1");
	check_enh("550 5.1.10 null MX", "5.1.10");
	check_enh("550 5.123.456", "5.123.456");
	check_enh("250 2.1.5", "2.1.5");
	/* Class must match the reply code. */
	check_enh("550 4.1.1 odd", "");
	check_enh("250 5.0.0 odd", "");
	check_enh("354 3.0.0 go", "");
	/* Shape. */
	check_enh("550 5.1 no", "");
	check_enh("550 5.1.1x no", "");
	check_enh("550 5.1234.1 no", "");
	check_enh("550 5..1 no", "");
	check_enh("550 5.1.", "");
	check_enh("550 x5.1.1", "");
	check_enh("550  5.1.1 leading space", "");
	/* Only the first line counts. */
	struct smtp_reply r;
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "550-no code here"), REPLY_MORE);
	CHECK_EQ(feed(&r, "550 5.1.1 later"), REPLY_DONE);
	CHECK_STR_EQ(r.enh, "");
}

static void
check_bad(const char *line, size_t len)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	CHECK_EQ(smtp_reply_feed(&r, line, len), REPLY_ERROR);
	CHECK(r.text[0] != '\0');
	for (const char *p = r.text; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
}

/* B10: each malformed reply is an error, never a success. */
static void
test_malformed(void)
{
	check_bad("25O ok", 6);
	check_bad("2500 ok", 7);
	check_bad("25", 2);
	check_bad("", 0);
	check_bad("OK", 2);
	check_bad("199 low", 7);
	check_bad("600 high", 8);
	check_bad("099 x", 5);
	check_bad("250\tok", 6);
	check_bad("250_ok", 6);
	check_bad(" 250 ok", 7);
	check_bad("2\00050 x", 6);
	check_bad("\x1b[2J", 4);

	/* 250-ok then 550 no: the code changed. */
	struct smtp_reply r;
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "250-ok"), REPLY_MORE);
	CHECK_EQ(feed(&r, "550 no"), REPLY_ERROR);
	/* A bad continuation line. */
	smtp_reply_init(&r);
	CHECK_EQ(feed(&r, "250-ok"), REPLY_MORE);
	CHECK_EQ(feed(&r, "25O ok"), REPLY_ERROR);

	/* 100,000 lines of 250-x: error at line 101. */
	smtp_reply_init(&r);
	int i;
	enum smtp_reply_status st = REPLY_MORE;
	for (i = 0; i < 100000 && st == REPLY_MORE; i++)
		st = feed(&r, "250-x");
	CHECK_EQ(st, REPLY_ERROR);
	CHECK_EQ(i, SMTP_REPLY_MAX_LINES + 1);

	/* A 100,000-byte line. */
	size_t n = 100000;
	char *big = malloc(n);
	CHECK(big != NULL);
	memcpy(big, "250 ", 4);
	memset(big + 4, 'a', n - 4);
	check_bad(big, n);
	/* The longest accepted line (an AUTH exchange line), text capped. */
	smtp_reply_init(&r);
	CHECK_EQ(smtp_reply_feed(&r, big, SMTP_REPLY_PARSE_MAX), REPLY_DONE);
	CHECK_EQ(strlen(r.text), SMTP_REPLY_TEXT_MAX - 1);
	smtp_reply_init(&r);
	CHECK_EQ(smtp_reply_feed(&r, big, SMTP_REPLY_PARSE_MAX + 1), REPLY_ERROR);
	free(big);
}

/* Control bytes are sanitized, not an error; text is capped. */
static void
test_sanitize(void)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	const char line[] = "250 \x1b[2Jok\x00x\r\xff";
	CHECK_EQ(smtp_reply_feed(&r, line, sizeof(line) - 1), REPLY_DONE);
	CHECK_STR_EQ(r.text, "?[2Jok?x??");

	/* Many long lines: the joined text stops at the cap. */
	char buf[500];
	memset(buf, 'b', sizeof(buf));
	memcpy(buf, "451-", 4);
	smtp_reply_init(&r);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(smtp_reply_feed(&r, buf, sizeof(buf)), REPLY_MORE);
	buf[3] = ' ';
	CHECK_EQ(smtp_reply_feed(&r, buf, sizeof(buf)), REPLY_DONE);
	CHECK_EQ(strlen(r.text), SMTP_REPLY_TEXT_MAX - 1);
	CHECK_EQ(r.nlines, 11);
	CHECK_EQ(r.code, 451);

	/* A NULL line is an error, not a crash. */
	smtp_reply_init(&r);
	CHECK_EQ(smtp_reply_feed(&r, NULL, 5), REPLY_ERROR);
}

int
main(void)
{
	test_single();
	test_multi();
	test_enh();
	test_malformed();
	test_sanitize();
	CHECK_DONE();
}
