/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Tests for the sendmail-command message normaliser (proto/local_msg.c):
 * line ends (G6), the lone dot (G5), the "From " line, -t extraction and
 * Bcc removal (G7), the A24 fix-ups, NUL and size errors (G10), and that
 * every chunking of the input gives the same bytes.
 */
#include <errno.h>
#include <string.h>
#include <sysexits.h>

#include "check.h"
#include "outbox/local_msg.h"

#define OUT_MAX (1u << 20)

static const struct local_msg_fixup no_fix = { 0 };
static const struct local_msg_fixup fix = {
	.date = "Tue, 1 Jul 2025 10:00:00 +0000",
	.message_id = "abc@h.test",
	.from_addr = "root@h.test",
	.full_name = "CronDaemon",
};
#define FIXED "Date: Tue, 1 Jul 2025 10:00:00 +0000\r\n" \
	      "Message-ID: <abc@h.test>\r\n" \
	      "From: \"CronDaemon\" <root@h.test>\r\n"

/* Feed in chunks of step bytes (0 = all at once), finish. */
static enum local_msg_status
run_step(struct local_msg *m, const struct local_msg_opts *o, const char *in,
	 size_t n, size_t step, struct buf *out)
{
	buf_init(out, OUT_MAX);
	local_msg_init(m, o);
	if (step == 0)
		step = n > 0 ? n : 1;
	for (size_t i = 0; i < n; i += step)
		local_msg_feed(m, in + i, n - i < step ? n - i : step, out);
	return local_msg_finish(m, out);
}

/*
 * Normalise `in` with every chunk size in a set and check they all give
 * `want`; m is left from the byte-by-byte run for further checks.
 */
static void
expect(struct local_msg *m, const struct local_msg_opts *o, const char *in,
       const char *want)
{
	static const size_t steps[] = { 0, 2, 3, 7, 1 };
	size_t n = strlen(in);

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct buf out;
		CHECK_EQ(run_step(m, o, in, n, steps[k], &out), LOCAL_MSG_OK);
		CHECK_STR_EQ(out.data != NULL ? out.data : "", want);
		CHECK_EQ(m->out_bytes, strlen(want));
		buf_free(&out);
		if (k + 1 < sizeof(steps) / sizeof(steps[0]))
			local_msg_free(m);
	}
}

static struct local_msg_opts
opts(bool ignore_dots, bool extract, const struct local_msg_fixup *fx)
{
	struct local_msg_opts o = { .ignore_dots = ignore_dots,
				    .extract_rcpts = extract,
				    .fixup = *fx };
	return o;
}

static void
test_line_ends(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(true, false, &no_fix);

	/* cron: LF only, no blank line handling needed beyond headers */
	expect(&m, &o, "Subject: x\n\nline 1\nline 2\n",
	       "Subject: x\r\n\r\nline 1\r\nline 2\r\n");
	local_msg_free(&m);
	/* CRLF stays CRLF, never \r\r\n */
	expect(&m, &o, "Subject: x\r\n\r\na\r\nb\r\n",
	       "Subject: x\r\n\r\na\r\nb\r\n");
	local_msg_free(&m);
	/* final line without newline gets CRLF */
	expect(&m, &o, "S: x\n\nlast", "S: x\r\n\r\nlast\r\n");
	local_msg_free(&m);
	/* bare CR is a line end; \r\r\n is two */
	expect(&m, &o, "S: x\n\na\rb\r\r\nc\n", "S: x\r\n\r\na\r\nb\r\n\r\nc\r\n");
	local_msg_free(&m);
	/* a CR as the very last byte */
	expect(&m, &o, "S: x\n\na\r", "S: x\r\n\r\na\r\n");
	local_msg_free(&m);
	/* LF in the header section too */
	expect(&m, &o, "A: 1\nB: 2\r\nC: 3\r\n\nbody\n",
	       "A: 1\r\nB: 2\r\nC: 3\r\n\r\nbody\r\n");
	CHECK(!m.eightbit);
	local_msg_free(&m);
	expect(&m, &o, "S: x\n\n\xc3\xa9t\xc3\xa9\n", "S: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n");
	CHECK(m.eightbit);
	local_msg_free(&m);
}

static void
test_from_line_and_no_headers(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(true, false, &no_fix);

	expect(&m, &o, "From root Tue Jul  1 10:00:00 2025\nSubject: s\n\nb\n",
	       "Subject: s\r\n\r\nb\r\n");
	local_msg_free(&m);
	/* only the first line */
	expect(&m, &o, "Subject: s\n\nFrom here\n", "Subject: s\r\n\r\nFrom here\r\n");
	local_msg_free(&m);
	/* a message without headers: blank line inserted before the body */
	o.fixup = fix;
	expect(&m, &o, "hello\nworld\n", FIXED "\r\nhello\r\nworld\r\n");
	local_msg_free(&m);
	/* headers then a non-header line without a blank line */
	expect(&m, &o, "Subject: s\nhello\n", "Subject: s\r\n" FIXED "\r\nhello\r\n");
	local_msg_free(&m);
	/* headers only, no body, no final newline */
	expect(&m, &o, "Subject: s", "Subject: s\r\n" FIXED);
	local_msg_free(&m);
	/* empty input: only the added fields */
	expect(&m, &o, "", FIXED);
	CHECK_EQ(m.in_bytes, 0);
	local_msg_free(&m);
	/* a first line starting with white space is body */
	o.fixup = no_fix;
	expect(&m, &o, " indented\n", "\r\n indented\r\n");
	local_msg_free(&m);
}

static void
test_dots(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(false, false, &no_fix);

	/* G5 without -i: the "." ends the input */
	expect(&m, &o, "S: x\n\na\n.\nb\n", "S: x\r\n\r\na\r\n");
	CHECK(m.done);
	local_msg_free(&m);
	expect(&m, &o, "S: x\n\na\r\n.\r\nb\r\n", "S: x\r\n\r\na\r\n");
	local_msg_free(&m);
	/* a "." as the last bytes without newline */
	expect(&m, &o, "S: x\n\na\n.", "S: x\r\n\r\na\r\n");
	local_msg_free(&m);
	/* ".." and ".x" are text, unstuffed as given */
	expect(&m, &o, "S: x\n\n..\n.x\n. \nz\n", "S: x\r\n\r\n..\r\n.x\r\n. \r\nz\r\n");
	local_msg_free(&m);
	/* a "." inside the header section ends the message there */
	expect(&m, &o, "S: x\n.\nT: y\n", "S: x\r\n");
	local_msg_free(&m);
	/* G5 with -i: all three lines kept */
	o.ignore_dots = true;
	expect(&m, &o, "S: x\n\na\n.\nb\n", "S: x\r\n\r\na\r\n.\r\nb\r\n");
	local_msg_free(&m);
	expect(&m, &o, "S: x\n\n..\n", "S: x\r\n\r\n..\r\n");
	local_msg_free(&m);
	/* with -i a "." line in the headers starts the body */
	expect(&m, &o, "S: x\n.\n", "S: x\r\n\r\n.\r\n");
	local_msg_free(&m);
}

static void
collect_rcpts(const struct local_msg *m, char *dst, size_t size)
{
	struct buf b;

	buf_init(&b, size - 1);
	for (const char *r = local_msg_rcpt_next(m, NULL); r != NULL;
	     r = local_msg_rcpt_next(m, r))
		CHECK(buf_printf(&b, "%s|", r) == 0);
	CHECK(b.len < size);
	memcpy(dst, b.data != NULL ? b.data : "", b.len + 1);
	buf_free(&b);
}

static void
test_extract(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(true, true, &no_fix);
	char got[1024];

	/* PHP -t -i: To, Cc, Bcc collected, Bcc gone */
	expect(&m, &o,
	       "To: a@d.test\nCc: b@d.test\nBcc: c@d.test\nSubject: s\n\nbody\n",
	       "To: a@d.test\r\nCc: b@d.test\r\nSubject: s\r\n\r\nbody\r\n");
	collect_rcpts(&m, got, sizeof(got));
	CHECK_STR_EQ(got, "a@d.test|b@d.test|c@d.test|");
	CHECK_EQ(m.nrcpts, 3);
	CHECK_EQ(m.present, LOCAL_MSG_H_TO | LOCAL_MSG_H_CC | LOCAL_MSG_H_BCC);
	local_msg_free(&m);

	/* folded Bcc with its continuation lines removed; last field */
	expect(&m, &o,
	       "Subject: s\nbcc: x@d.test,\n  y@d.test,\n\tz@d.test\n\nb\n",
	       "Subject: s\r\n\r\nb\r\n");
	collect_rcpts(&m, got, sizeof(got));
	CHECK_STR_EQ(got, "x@d.test|y@d.test|z@d.test|");
	local_msg_free(&m);

	/* Bcc as the last header of a headers-only message */
	expect(&m, &o, "To: a\nBcc: b", "To: a\r\n");
	collect_rcpts(&m, got, sizeof(got));
	CHECK_STR_EQ(got, "a|b|");
	local_msg_free(&m);

	/* folded To, group, quoted comma, comments, display names, bare names */
	expect(&m, &o,
	       "To: \"Doe, John\" <john@d.test>,\n root (the admin),\n"
	       "  Jane <jane@d.test> (work)\n"
	       "Cc: undisclosed-recipients:;\n"
	       "CC: team: x@d.test, \"q u\"@d.test;, last@d.test\n"
	       "Subject: hi\n\nb\n",
	       "To: \"Doe, John\" <john@d.test>,\r\n root (the admin),\r\n"
	       "  Jane <jane@d.test> (work)\r\n"
	       "Cc: undisclosed-recipients:;\r\n"
	       "CC: team: x@d.test, \"q u\"@d.test;, last@d.test\r\n"
	       "Subject: hi\r\n\r\nb\r\n");
	collect_rcpts(&m, got, sizeof(got));
	CHECK_STR_EQ(got, "john@d.test|root|jane@d.test|x@d.test|\"q u\"@d.test|"
		     "last@d.test|");
	local_msg_free(&m);

	/* without -t: Bcc kept, nothing collected (A24) */
	o.extract_rcpts = false;
	expect(&m, &o, "Bcc: c@d.test\n\nb\n", "Bcc: c@d.test\r\n\r\nb\r\n");
	CHECK_EQ(m.nrcpts, 0);
	CHECK(local_msg_rcpt_next(&m, NULL) == NULL);
	CHECK(m.present & LOCAL_MSG_H_BCC);
	local_msg_free(&m);

	/* a body line that looks like a header is never parsed */
	o.extract_rcpts = true;
	expect(&m, &o, "Subject: s\n\nTo: evil@x.test\n", "Subject: s\r\n\r\nTo: evil@x.test\r\n");
	CHECK_EQ(m.nrcpts, 0);
	local_msg_free(&m);
}

static int
count_cb(void *arg, const char *addr, size_t len)
{
	(void)addr;
	(void)len;
	(*(int *)arg)++;
	return 0;
}

static void
test_parse_addrs(void)
{
	int n = 0;
	const char *v = " <>, (c), , a@b (x(y)z), <@r.test:c@d.test> ";

	CHECK_EQ(local_msg_parse_addrs(v, strlen(v), count_cb, &n), 2);
	CHECK_EQ(n, 2);
	n = 0;
	CHECK_EQ(local_msg_parse_addrs("", 0, count_cb, &n), 0);
	CHECK_EQ(n, 0);
}

static void
test_fixups(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(true, false, &fix);

	/* all three missing: added once, before the blank line */
	expect(&m, &o, "Subject: s\n\nb\n", "Subject: s\r\n" FIXED "\r\nb\r\n");
	CHECK_EQ(m.added, LOCAL_MSG_H_DATE | LOCAL_MSG_H_MESSAGE_ID | LOCAL_MSG_H_FROM);
	local_msg_free(&m);
	/* present ones never duplicated (names case-insensitive) */
	expect(&m, &o, "date: x\nMESSAGE-ID: <y@z>\nFrom: me\n\nb\n",
	       "date: x\r\nMESSAGE-ID: <y@z>\r\nFrom: me\r\n\r\nb\r\n");
	CHECK_EQ(m.added, 0);
	local_msg_free(&m);
	/* only Message-ID missing */
	expect(&m, &o, "Date: x\nFrom: me\n\nb\n",
	       "Date: x\r\nFrom: me\r\nMessage-ID: <abc@h.test>\r\n\r\nb\r\n");
	CHECK_EQ(m.added, LOCAL_MSG_H_MESSAGE_ID);
	local_msg_free(&m);
	/* a From header in the body does not count */
	expect(&m, &o, "Subject: s\n\nFrom: x\nDate: y\n",
	       "Subject: s\r\n" FIXED "\r\nFrom: x\r\nDate: y\r\n");
	local_msg_free(&m);

	/* the pure helper: name quoting, no name, brackets kept */
	struct buf b;
	unsigned added;
	struct local_msg_fixup f2 = { .message_id = "<m@h>",
				      .from_addr = "a@h",
				      .full_name = "A \"B\" \\C" };
	buf_init(&b, 1024);
	CHECK_EQ(local_msg_fixup_headers(0, &f2, &b, &added), 0);
	CHECK_STR_EQ(b.data, "Message-ID: <m@h>\r\nFrom: \"A \\\"B\\\" \\\\C\" <a@h>\r\n");
	CHECK_EQ(added, LOCAL_MSG_H_MESSAGE_ID | LOCAL_MSG_H_FROM);
	buf_reset(&b);
	f2.full_name = NULL;
	CHECK_EQ(local_msg_fixup_headers(LOCAL_MSG_H_MESSAGE_ID, &f2, &b, &added), 0);
	CHECK_STR_EQ(b.data, "From: a@h\r\n");
	CHECK_EQ(added, LOCAL_MSG_H_FROM);
	buf_reset(&b);
	f2.full_name = "x\r\nBcc: v@x";
	CHECK_EQ(local_msg_fixup_headers(0, &f2, &b, &added), -EINVAL);
	CHECK_EQ(added, 0);
	buf_free(&b);

	/* an injected fix-up value is a status, not a header */
	struct local_msg_fixup bad = { .date = "x\r\nBcc: v@x" };
	struct buf out;
	o = opts(true, false, &bad);
	CHECK_EQ(run_step(&m, &o, "S: s\n\nb\n", 8, 0, &out), LOCAL_MSG_E_FIXUP);
	CHECK(strstr(out.data != NULL ? out.data : "", "Bcc") == NULL);
	CHECK_EQ(local_msg_status_exit(LOCAL_MSG_E_FIXUP), EX_SOFTWARE);
	buf_free(&out);
	local_msg_free(&m);
}

static void
test_errors(void)
{
	struct local_msg m;
	struct local_msg_opts o = opts(true, false, &no_fix);
	struct buf out;

	/* G10: NUL in the header and in the body */
	CHECK_EQ(run_step(&m, &o, "S: a\0b\n\nx\n", 10, 1, &out), LOCAL_MSG_E_NUL);
	CHECK_EQ(m.error, LOCAL_MSG_E_NUL);
	CHECK_EQ(local_msg_feed(&m, "more", 4, &out), LOCAL_MSG_E_NUL);
	CHECK_EQ(local_msg_status_exit(m.error), EX_DATAERR);
	CHECK(strstr(local_msg_status_str(m.error), "NUL") != NULL);
	buf_free(&out);
	local_msg_free(&m);
	CHECK_EQ(run_step(&m, &o, "S: a\n\nx\0y\n", 10, 0, &out), LOCAL_MSG_E_NUL);
	buf_free(&out);
	local_msg_free(&m);

	/* a header section over the bound */
	o.header_max = 64;
	char big[200];
	memset(big, 'h', sizeof(big));
	memcpy(big, "X-Long: ", 8);
	CHECK_EQ(run_step(&m, &o, big, sizeof(big), 0, &out), LOCAL_MSG_E_HEADER_BIG);
	CHECK_EQ(out.len, 0);
	buf_free(&out);
	local_msg_free(&m);
	/* the body is not bounded by header_max */
	char body[300];
	memset(body, 'b', sizeof(body));
	memcpy(body, "S: x\n\n", 6);
	CHECK_EQ(run_step(&m, &o, body, sizeof(body), 7, &out), LOCAL_MSG_OK);
	CHECK_EQ(out.len, sizeof(body) + 2 + 2); /* two LF became CRLF, final CRLF */
	buf_free(&out);
	local_msg_free(&m);

	/* the output bound */
	o.header_max = 0;
	buf_init(&out, 16);
	local_msg_init(&m, &o);
	CHECK_EQ(local_msg_feed(&m, body, sizeof(body), &out), LOCAL_MSG_E_OUTPUT);
	CHECK_EQ(local_msg_finish(&m, &out), LOCAL_MSG_E_OUTPUT);
	buf_free(&out);
	local_msg_free(&m);

	/* data after the lone dot is counted but ignored */
	o.ignore_dots = false;
	CHECK_EQ(run_step(&m, &o, "S: x\n\n.\ntrailing", 16, 0, &out), LOCAL_MSG_OK);
	CHECK_EQ(m.in_bytes, 16);
	CHECK_STR_EQ(out.data, "S: x\r\n\r\n");
	buf_free(&out);
	local_msg_free(&m);
}

/* Byte-by-byte equals whole, for a message that uses every feature. */
static void
test_chunk_invariance(void)
{
	static const char in[] =
		"From x Tue\r\nTo: a@d.test,\r\n b@d.test\nBcc: (c) c@d.test\r"
		"Subject: s\r\n\r\n.x\n..\r\rend";
	struct local_msg_opts o = opts(false, true, &fix);
	struct local_msg m;
	struct buf whole, part;

	CHECK_EQ(run_step(&m, &o, in, sizeof(in) - 1, 0, &whole), LOCAL_MSG_OK);
	local_msg_free(&m);
	for (size_t step = 1; step < 12; step++) {
		CHECK_EQ(run_step(&m, &o, in, sizeof(in) - 1, step, &part), LOCAL_MSG_OK);
		CHECK_EQ(part.len, whole.len);
		CHECK_MEM_EQ(part.data, whole.data, whole.len);
		CHECK_EQ(m.nrcpts, 3);
		buf_free(&part);
		local_msg_free(&m);
	}
	CHECK_STR_EQ(whole.data,
		     "To: a@d.test,\r\n b@d.test\r\nSubject: s\r\n" FIXED
		     "\r\n.x\r\n..\r\n\r\nend\r\n");
	buf_free(&whole);
}

int
main(void)
{
	test_line_ends();
	test_from_line_and_no_headers();
	test_dots();
	test_extract();
	test_parse_addrs();
	test_fixups();
	test_errors();
	test_chunk_invariance();
	CHECK_DONE();
}
