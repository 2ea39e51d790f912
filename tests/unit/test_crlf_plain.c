/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	crlf_plain_prefix byte by byte (what ends a plain run: a dot at a
 *	line start, a bare LF, a bare CR, a long line, an unfinished line),
 *	then both body filters that use it against themselves fed one byte
 *	at a time, where no whole line is ever in view and so only the
 *	per-byte states run: mail-like bodies (headers with Received:
 *	fields, long and short lines, dot lines, bare CR and LF, lines past
 *	the 998-octet fold) give the same bytes, flags, counts and end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/crlf_plain.h"
#include "outbox/dot.h"
#include "outbox/limits.h"
#include "outbox/smtp_data.h"

static void
check_prefix(const char *in, size_t line_max, size_t want)
{
	size_t got = crlf_plain_prefix(in, strlen(in), line_max);
	if (got != want)
		CHECK_FAIL("\"%s\" (line_max %zu): %zu, want %zu", in, line_max,
			   got, want);
	check_count++;
}

static void
test_prefix(void)
{
	check_prefix("", SIZE_MAX, 0);
	check_prefix("ab\r\n", SIZE_MAX, 4);
	check_prefix("ab\r\ncd", SIZE_MAX, 4);          /* unfinished */
	check_prefix("ab\r\ncd\r", SIZE_MAX, 4);
	check_prefix("ab\r\n.cd\r\n", SIZE_MAX, 4);     /* a dot line */
	check_prefix(".x\r\n", SIZE_MAX, 0);
	check_prefix("a.\r\n", SIZE_MAX, 4);            /* not at the start */
	check_prefix("a\nb\r\n", SIZE_MAX, 0);          /* bare LF */
	check_prefix("ab\r\nc\nd\r\n", SIZE_MAX, 4);
	check_prefix("a\rb\r\n", SIZE_MAX, 0);          /* bare CR */
	check_prefix("ab\r\r\n", SIZE_MAX, 0);
	check_prefix("\r\n\r\n", SIZE_MAX, 4);          /* empty lines */
	check_prefix("\n", SIZE_MAX, 0);
	check_prefix("\r", SIZE_MAX, 0);
	check_prefix("abc\r\n", 3, 5);                  /* line_max octets */
	check_prefix("abc\r\n", 2, 0);
	check_prefix("ab\r\nabc\r\n", 2, 4);
	/* n, not the NUL, bounds it */
	CHECK_EQ(4, crlf_plain_prefix("ab\r\ncd\r\n", 7, SIZE_MAX));
}

/* A mail-like body into b: a header, then lines of every kind. */
static void
make_body(struct buf *b, unsigned lines)
{
	buf_init(b, 8u << 20);
	CHECK_EQ(0, buf_puts(b, "Received: a\r\nSubject: x\r\nreceived: b\r\n\r\n"));
	for (unsigned i = 0; i < lines; i++) {
		uint32_t kind = check_rng() % 100;
		size_t len = kind < 3 ? 990 + check_rng() % 20 : check_rng() % 90;
		if (kind >= 3 && kind < 11)
			CHECK_EQ(0, buf_append(b, ".", 1));
		if (kind == 11)
			CHECK_EQ(0, buf_puts(b, "Received: c"));   /* body: not a hop */
		for (size_t k = 0; k < len; k++) {
			char c = (char)('a' + check_rng() % 26);
			if (kind == 12 && k == len / 2)
				c = '\r';                              /* bare CR */
			CHECK_EQ(0, buf_append(b, &c, 1));
		}
		CHECK_EQ(0, buf_puts(b, kind == 13 ? "\n" : "\r\n"));
	}
}

struct data_run {
	struct buf stored;
	struct smtp_data d;
	size_t used;
	enum smtp_data_result r;
};

/* The DATA reader over in[0..n), in pieces of step bytes. */
static void
data_run(const char *in, size_t n, size_t step, struct data_run *out)
{
	struct buf chunk;
	buf_init(&chunk, 2 * SMTP_DATA_FLUSH + 16);
	buf_init(&out->stored, 8u << 20);
	smtp_data_init(&out->d, 4u << 20, true);
	out->used = 0;
	out->r = DATA_NEED_MORE;
	while (out->used < n && out->r != DATA_END) {
		size_t k = n - out->used < step ? n - out->used : step;
		size_t used = 0;
		out->r = smtp_data_feed(&out->d, in + out->used, k, &chunk, &used);
		CHECK(chunk.len <= 2 * SMTP_DATA_FLUSH + 2);
		out->used += used;
		CHECK_EQ(0, buf_append(&out->stored, chunk.data, chunk.len));
		buf_reset(&chunk);
	}
	buf_free(&chunk);
}

static void
test_data_same(const struct buf *body)
{
	struct buf wire;
	buf_init(&wire, 9u << 20);
	CHECK_EQ(0, buf_append(&wire, body->data, body->len));
	CHECK_EQ(0, buf_puts(&wire, "\r\n.\r\nQUIT\r\n"));
	struct data_run fast, slow;
	data_run(wire.data, wire.len, wire.len, &fast);
	data_run(wire.data, wire.len, 1, &slow);
	CHECK_EQ(DATA_END, fast.r);
	CHECK_EQ(slow.r, fast.r);
	CHECK_EQ(slow.used, fast.used);
	CHECK_EQ(slow.stored.len, fast.stored.len);
	CHECK_MEM_EQ(slow.stored.data, fast.stored.data, slow.stored.len);
	CHECK_EQ(slow.d.size, fast.d.size);
	CHECK_EQ(slow.d.hops, fast.d.hops);
	CHECK_EQ(2u, fast.d.hops);
	CHECK_EQ(slow.d.bare_lf, fast.d.bare_lf);
	CHECK_EQ(slow.d.bare_cr, fast.d.bare_cr);
	buf_free(&fast.stored);
	buf_free(&slow.stored);
	buf_free(&wire);
}

static void
dot_run(const char *in, size_t n, size_t step, struct buf *out)
{
	struct dot_stuff d;
	dot_stuff_init(&d);
	buf_init(out, 16u << 20);
	for (size_t i = 0; i < n; i += step)
		CHECK_EQ(0, dot_stuff_feed(&d, in + i, n - i < step ? n - i : step,
					   out));
	CHECK_EQ(0, dot_stuff_end(&d, out));
}

static void
test_dot_same(const struct buf *body)
{
	struct buf fast, slow;
	dot_run(body->data, body->len, body->len, &fast);
	dot_run(body->data, body->len, 1, &slow);
	CHECK_EQ(slow.len, fast.len);
	CHECK_MEM_EQ(slow.data, fast.data, slow.len);
	buf_free(&fast);
	buf_free(&slow);
}

int
main(void)
{
	test_prefix();
	for (int round = 0; round < 20; round++) {
		struct buf body;
		make_body(&body, 200 + (unsigned)round * 100);
		test_data_same(&body);
		test_dot_same(&body);
		buf_free(&body);
	}
	CHECK_DONE();
}
