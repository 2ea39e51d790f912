/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Tests for the outbound dot-stuffing filter (proto/dot.c): stuffing,
 * folding, bare CR/LF normalisation, chunk-boundary independence, the
 * un-stuff round trip, and all-or-nothing behaviour on a full buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "outbox/dot.h"
#include "outbox/limits.h"

#define OUT_MAX (8u << 20)

/* Stuff in[0..n) in chunks of `step` bytes (0 = all at once) and end it. */
static void
stuff(const char *in, size_t n, size_t step, struct buf *out)
{
	struct dot_stuff d;
	dot_stuff_init(&d);
	buf_init(out, OUT_MAX);
	if (step == 0)
		step = n ? n : 1;
	for (size_t i = 0; i < n; i += step) {
		size_t k = n - i < step ? n - i : step;
		CHECK_EQ(dot_stuff_feed(&d, in + i, k, out), 0);
	}
	CHECK_EQ(dot_stuff_end(&d, out), 0);
}

static void
check_stuff(const char *in, const char *want)
{
	struct buf out;
	stuff(in, strlen(in), 0, &out);
	CHECK_STR_EQ(out.data, want);
	buf_free(&out);
}

/*
 * The wire invariants: only CRLF line ends, every line at most 1000 octets
 * with CRLF (plus a stuffed dot, which RFC 5321 4.5.3.1.6 does not count),
 * exactly one terminating ".\r\n", and no other line that is just ".".
 */
static void
check_wire(const struct buf *w)
{
	CHECK(w->len >= 3);
	size_t start = 0;
	size_t dots = 0;
	for (size_t i = 0; i < w->len; i++) {
		char ch = w->data[i];
		if (ch == '\r')
			CHECK(i + 1 < w->len && w->data[i + 1] == '\n');
		if (ch != '\n')
			continue;
		CHECK(i > 0 && w->data[i - 1] == '\r');
		size_t linelen = i + 1 - start;
		size_t extra = w->data[start] == '.' && linelen > 3 ? 1 : 0;
		CHECK(linelen - extra <= SMTP_TEXT_LINE_MAX);
		if (linelen == 3 && w->data[start] == '.')
			dots++;
		start = i + 1;
	}
	CHECK_EQ(start, w->len);
	CHECK_EQ(dots, 1);
	CHECK_MEM_EQ(w->data + w->len - 3, ".\r\n", 3);
}

/* Receiver side of RFC 5321 4.5.2: drop one leading dot, stop at ".". */
static void
unstuff(const struct buf *w, struct buf *out)
{
	buf_init(out, OUT_MAX);
	size_t start = 0;
	while (start < w->len) {
		const char *lf = memchr(w->data + start, '\n', w->len - start);
		CHECK(lf != NULL);
		size_t end = (size_t)(lf - w->data) + 1;
		const char *line = w->data + start;
		size_t n = end - start;
		if (n == 3 && line[0] == '.') {
			CHECK_EQ(end, w->len);
			return;
		}
		if (line[0] == '.') {
			line++;
			n--;
		}
		CHECK_EQ(buf_append(out, line, n), 0);
		start = end;
	}
	CHECK_FAIL("no end of data");
}

static void
test_basic(void)
{
	check_stuff("", ".\r\n");
	check_stuff("a\r\n", "a\r\n.\r\n");
	check_stuff("abc", "abc\r\n.\r\n");
	check_stuff("abc\r", "abc\r\n.\r\n");
	check_stuff("\r\n", "\r\n.\r\n");
	check_stuff(".\r\n", "..\r\n.\r\n");
	check_stuff(".", "..\r\n.\r\n");
	/* A5: dot-led lines are stuffed again on the way out. */
	check_stuff(".lead\r\n..\r\n \r\nx\r\n",
		    "..lead\r\n...\r\n \r\nx\r\n.\r\n");
	check_stuff("a.b\r\n.a.\r\n", "a.b\r\n..a.\r\n.\r\n");
}

static void
test_bare_newlines(void)
{
	/* A1: "\n.\n" is not an end of data; it becomes a stuffed line. */
	check_stuff("hello\n.\nMAIL FROM:<x@y>\r\n",
		    "hello\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
	/* A3: bare CRs end lines; a dot after one is stuffed. */
	check_stuff("a\rb\r\n", "a\r\nb\r\n.\r\n");
	check_stuff("\r\r\n", "\r\n\r\n.\r\n");
	check_stuff("x\r.\r\n", "x\r\n..\r\n.\r\n");
	check_stuff("\r\r\r", "\r\n\r\n\r\n.\r\n");
	check_stuff("\n\n", "\r\n\r\n.\r\n");
	check_stuff("a\n\rb", "a\r\n\r\nb\r\n.\r\n");
}

static void
test_fold(void)
{
	static char line[4000];
	struct buf out;

	memset(line, 'x', sizeof(line));
	/* Exactly 998 octets: unchanged. */
	stuff(line, SMTP_SEND_LINE_MAX, 0, &out);
	CHECK_EQ(out.len, SMTP_SEND_LINE_MAX + 5);
	check_wire(&out);
	buf_free(&out);
	/* 999: one fold, "CRLF SP" then the last octet. */
	stuff(line, SMTP_SEND_LINE_MAX + 1, 0, &out);
	CHECK_EQ(out.len, SMTP_SEND_LINE_MAX + 3 + 1 + 2 + 3);
	CHECK_MEM_EQ(out.data + SMTP_SEND_LINE_MAX, "\r\n x\r\n.\r\n", 9);
	check_wire(&out);
	buf_free(&out);
	/* A dot-led 998-octet line: the stuffed dot does not count. */
	line[0] = '.';
	stuff(line, SMTP_SEND_LINE_MAX, 0, &out);
	CHECK_EQ(out.len, SMTP_SEND_LINE_MAX + 1 + 5);
	check_wire(&out);
	buf_free(&out);
	/* A dot right after a fold needs no stuffing: the line starts with SP. */
	memset(line, 'y', sizeof(line));
	line[SMTP_SEND_LINE_MAX] = '.';
	stuff(line, SMTP_SEND_LINE_MAX + 1, 0, &out);
	CHECK_MEM_EQ(out.data + SMTP_SEND_LINE_MAX, "\r\n .\r\n.\r\n", 9);
	buf_free(&out);
}

/* A8: one 1,000,000-octet line, in chunks; no wire line over 1000. */
static void
test_huge_line(void)
{
	size_t n = 1000000;
	char *big = malloc(n);
	CHECK(big != NULL);
	memset(big, 'z', n);
	struct buf out;
	stuff(big, n, 65536, &out);
	check_wire(&out);
	size_t z = 0;
	for (size_t i = 0; i < out.len; i++)
		z += out.data[i] == 'z';
	CHECK_EQ(z, n);
	buf_free(&out);
	free(big);
}

/* Random bytes biased toward the interesting ones. */
static void
random_input(char *p, size_t n, bool clean)
{
	static const char pick[] = "..\r\n\r\nab x";
	for (size_t i = 0; i < n; i++) {
		if (clean) {
			uint32_t v = check_rng() % 8;
			p[i] = v == 0 ? '.' : v == 1 ? '\n' : (char)('a' + v);
			if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
				p[i] = '\r';
				if (i + 1 < n)
					p[++i] = '\n';
			}
		} else {
			uint32_t v = check_rng() % 16;
			p[i] = v < sizeof(pick) - 1 ? pick[v] : (char)(check_rng() & 0xff);
		}
	}
}

/* Any split of the input gives the same bytes as one feed. */
static void
test_chunks(void)
{
	char in[3000];
	for (int round = 0; round < 40; round++) {
		size_t n = 1 + check_rng() % sizeof(in);
		random_input(in, n, false);
		if (round % 5 == 0)
			memset(in + 10, 'q', n > 1500 ? 1400 : 0);
		struct buf whole, bytes, split;
		stuff(in, n, 0, &whole);
		stuff(in, n, 1, &bytes);
		stuff(in, n, 1 + check_rng() % 37, &split);
		CHECK_EQ(whole.len, bytes.len);
		CHECK_MEM_EQ(whole.data, bytes.data, whole.len);
		CHECK_EQ(whole.len, split.len);
		CHECK_MEM_EQ(whole.data, split.data, whole.len);
		check_wire(&whole);
		buf_free(&whole);
		buf_free(&bytes);
		buf_free(&split);
	}
}

/* A5: for CRLF-clean input, un-stuffing the wire gives the input back. */
static void
test_round_trip(void)
{
	char in[4000];
	for (int round = 0; round < 40; round++) {
		size_t n = check_rng() % (sizeof(in) - 2);
		random_input(in, n, true);
		/* Terminate the last line so the comparison is exact. */
		if (n < 2 || in[n - 2] != '\r' || in[n - 1] != '\n') {
			if (n > 0 && in[n - 1] == '\r')
				n--;
			in[n++] = '\r';
			in[n++] = '\n';
		}
		struct buf w, back;
		stuff(in, n, 1 + check_rng() % 64, &w);
		check_wire(&w);
		unstuff(&w, &back);
		CHECK_EQ(back.len, n);
		CHECK_MEM_EQ(back.data, in, n);
		buf_free(&w);
		buf_free(&back);
	}
}

/* A full output buffer changes neither the output nor the state. */
static void
test_nobufs(void)
{
	struct dot_stuff d;
	struct buf out;
	dot_stuff_init(&d);
	buf_init(&out, 8);
	CHECK_EQ(dot_stuff_feed(&d, "ab", 2, &out), 0);
	CHECK_EQ(dot_stuff_feed(&d, "\r\n.xyz\r\n", 8, &out), -ENOBUFS);
	CHECK_STR_EQ(out.data, "ab");
	CHECK_EQ(d.col, 2);
	CHECK(!d.cr);
	out.max = 64;
	CHECK_EQ(dot_stuff_feed(&d, "\r\n.xyz\r", 7, &out), 0);
	out.max = out.len + 2;
	CHECK_EQ(dot_stuff_end(&d, &out), -ENOBUFS);
	CHECK_STR_EQ(out.data, "ab\r\n..xyz");
	out.max = 64;
	CHECK_EQ(dot_stuff_end(&d, &out), 0);
	CHECK_STR_EQ(out.data, "ab\r\n..xyz\r\n.\r\n");
	buf_free(&out);
}

int
main(void)
{
	test_basic();
	test_bare_newlines();
	test_fold();
	test_huge_line();
	test_chunks();
	test_round_trip();
	test_nobufs();
	CHECK_DONE();
}
