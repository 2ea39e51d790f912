/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * header_rewrite: qualification of address fields, from_header = rewrite,
 * added fields, the held-back header section and its bound. Every case is
 * fed whole, one byte at a time and 7 bytes at a time: the output must be
 * the same.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "outbox/header_rewrite.h"

#define DATE "Thu, 26 Nov 2026 10:00:00 +0000"
#define MSGID "<Q1@host.d.test>"

static struct header_rewrite_opts
opts_plain(void)
{
	struct header_rewrite_opts o = { .domain = "d.test" };
	o.fixup.date = DATE;
	o.fixup.message_id = MSGID;
	o.fixup.from_addr = "cron@d.test";
	return o;
}

/* Run in through the stage in steps of `step` bytes (0 = whole). */
static int
run(const struct header_rewrite_opts *o, const char *in, size_t step,
    struct buf *out, unsigned *changed)
{
	struct header_rewrite h;
	size_t n = strlen(in);
	int r = 0;
	header_rewrite_init(&h, o);
	for (size_t off = 0; r == 0 && off < n;) {
		size_t k = step == 0 || n - off < step ? n - off : step;
		r = header_rewrite_feed(&h, in + off, k, out);
		off += k;
	}
	if (r == 0)
		r = header_rewrite_finish(&h, out);
	if (changed != NULL)
		*changed = h.changed;
	header_rewrite_free(&h);
	return r;
}

static void
expect(const struct header_rewrite_opts *o, const char *in, const char *want,
       unsigned want_changed)
{
	static const size_t steps[] = { 0, 1, 7 };
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct buf out;
		unsigned changed = 0;
		buf_init(&out, 1 << 20);
		CHECK_EQ(run(o, in, steps[i], &out, &changed), 0);
		CHECK_EQ(buf_append(&out, "", 1), 0);
		CHECK_STR_EQ(out.data, want);
		CHECK_EQ(changed, want_changed);
		buf_free(&out);
	}
}

static void
test_qualify_and_add(void)
{
	struct header_rewrite_opts o = opts_plain();
	expect(&o, "To: root\r\nSubject: x root\r\n\r\nTo: root\r\n",
	       "To: root@d.test\r\nSubject: x root\r\n"
	       "Date: " DATE "\r\nMessage-ID: " MSGID "\r\n"
	       "From: cron@d.test\r\n\r\nTo: root\r\n", 4);
	/* Folded lists, groups, display names, every address field. */
	expect(&o, "From: Cron Daemon <root>\r\nCc: a,\r\n b@x.test,\r\n\tc\r\n"
	       "Bcc: g: u, v;\r\nReply-To: r (Me)\r\nSender: s\r\n"
	       "Date: x\r\nMessage-ID: <m@x>\r\nX-To: root\r\n\r\nbody\r\n",
	       "From: Cron Daemon <root@d.test>\r\nCc: a@d.test,\r\n b@x.test,"
	       "\r\n\tc@d.test\r\nBcc: g: u@d.test, v@d.test;\r\n"
	       "Reply-To: r@d.test (Me)\r\nSender: s@d.test\r\n"
	       "Date: x\r\nMessage-ID: <m@x>\r\nX-To: root\r\n\r\nbody\r\n", 5);
	/* Names are matched in any case and kept as written. */
	expect(&o, "tO: root\r\nDATE: x\r\nmessage-id: <a@b>\r\nfrom: a@b\r\n\r\n",
	       "tO: root@d.test\r\nDATE: x\r\nmessage-id: <a@b>\r\n"
	       "from: a@b\r\n\r\n", 1);
}

static void
test_nothing_to_do(void)
{
	struct header_rewrite_opts o = { .domain = "" };
	const char *msg = "From: a@b\r\nTo: root\r\n\r\nbody\r\n.\r\n";
	expect(&o, msg, msg, 0);
	/* A malformed value is copied unchanged. */
	o = opts_plain();
	const char *bad = "From: a@b\r\nTo: \"root\r\nDate: x\r\n"
			  "Message-ID: <a@b>\r\n\r\nb\r\n";
	expect(&o, bad, bad, 0);
}

static void
test_from_rewrite(void)
{
	struct header_rewrite_opts o = opts_plain();
	o.force_from = "relay@d.test";
	o.from_rewrite = true;
	o.fixup.from_addr = "relay@d.test";
	expect(&o, "From: Cron <root>\r\nTo: x@y.test\r\nDate: x\r\n"
	       "Message-ID: <a@b>\r\n\r\nb\r\n",
	       "From: <relay@d.test>\r\nReply-To: Cron <root@d.test>\r\n"
	       "To: x@y.test\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n", 1);
	/* An existing Reply-To is kept and not doubled. */
	expect(&o, "Reply-To: me@x.test\r\nFrom: a@x.test\r\nDate: x\r\n"
	       "Message-ID: <a@b>\r\n\r\nb\r\n",
	       "Reply-To: me@x.test\r\nFrom: <relay@d.test>\r\nDate: x\r\n"
	       "Message-ID: <a@b>\r\n\r\nb\r\n", 1);
	/* No From at all: the forced one is added. */
	expect(&o, "Date: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n",
	       "Date: x\r\nMessage-ID: <a@b>\r\nFrom: relay@d.test\r\n\r\nb\r\n",
	       1);
	/* from_header = keep: From is only qualified. */
	o.from_rewrite = false;
	expect(&o, "From: root\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n",
	       "From: root@d.test\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n",
	       1);
}

static void
test_section_edges(void)
{
	struct header_rewrite_opts o = opts_plain();
	const char *fix = "Date: " DATE "\r\nMessage-ID: " MSGID "\r\n"
			  "From: cron@d.test\r\n";
	char want[512];
	/* No header at all: the fields, then the empty line, then text. */
	snprintf(want, sizeof want, "%s\r\nhello\r\n", fix);
	expect(&o, "hello\r\n", want, 3);
	/* Text right after the fields: the empty line is inserted. */
	snprintf(want, sizeof want, "To: a@d.test\r\n%s\r\nhello\r\n", fix);
	expect(&o, "To: a\r\nhello\r\n", want, 4);
	/* A header-only message and an empty one. */
	snprintf(want, sizeof want, "To: a@d.test\r\n%s", fix);
	expect(&o, "To: a\r\n", want, 4);
	expect(&o, "", fix, 3);
	/* A continuation line first is not a header. */
	snprintf(want, sizeof want, "%s\r\n To: a\r\n", fix);
	expect(&o, " To: a\r\n", want, 3);
	/* The empty line may be a bare LF (bare_newline = strict is off). */
	snprintf(want, sizeof want, "To: a@d.test\n%s\nb\n", fix);
	expect(&o, "To: a\n\nb\n", want, 4);
}

/* A header section over hold_max passes unchanged; memory stays bounded. */
static void
test_bomb(void)
{
	struct header_rewrite_opts o = opts_plain();
	o.hold_max = 64;
	char in[256];
	snprintf(in, sizeof in, "To: root\r\nX: %080d\r\n\r\nb\r\n", 0);
	expect(&o, in, in, 0);
	struct header_rewrite h;
	struct buf out;
	buf_init(&out, 1024);
	header_rewrite_init(&h, &o);
	CHECK_EQ(header_rewrite_feed(&h, in, strlen(in), &out), 0);
	CHECK(h.gave_up);
	CHECK(h.hold.len <= 64);
	header_rewrite_free(&h);
	buf_free(&out);
	/* A fix-up value with a line break is refused. */
	o = opts_plain();
	o.fixup.date = "x\r\nBcc: evil@x.test";
	buf_init(&out, 1024);
	CHECK_EQ(run(&o, "To: a\r\n\r\n", 0, &out, NULL), -EINVAL);
	buf_free(&out);
}

int
main(void)
{
	test_qualify_and_add();
	test_nothing_to_do();
	test_from_rewrite();
	test_section_edges();
	test_bomb();
	CHECK_DONE();
}
