/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The DATA reader: a table of wire inputs with the stored bytes and flags
 * they must give, each checked unsplit, split at every byte boundary and
 * fed one byte at a time; plus chunk bounds for a 1 MB line.
 */
#include "check.h"
#include "outbox/smtp_data.h"

struct data_case {
	const char *in;
	bool end;           /* <CRLF>.<CRLF> found */
	const char *stored;
	bool bare_lf, bare_cr;
	unsigned hops;
	size_t rest;        /* bytes left after the end */
};

static const struct data_case cases[] = {
	{ ".\r\n", true, "", false, false, 0, 0 },
	{ "\r\n.\r\n", true, "\r\n", false, false, 0, 0 },
	{ "a\r\n.\r\nMAIL", true, "a\r\n", false, false, 0, 4 },
	{ "..lead\r\n...\r\n. \r\n.x\r\n.\r\n", true, ".lead\r\n..\r\n \r\nx\r\n", false, false, 0, 0 },
	/* smuggling shapes: content, not the end */
	{ "a\n.\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n", true, false, 0, 0 },
	{ "a\n.\r\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n", true, false, 0, 0 },
	{ "a\r\n.\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n", true, false, 0, 0 },
	{ "a\n.\n", false, "a\r\n.\r\n", true, false, 0, 0 },
	/* bare CR: dropped and flagged */
	{ "a\rb\r\n.\r\n", true, "ab\r\n", false, true, 0, 0 },
	{ "\r\r\n.\r\n", true, "\r\n", false, true, 0, 0 },
	{ "x\r.\r\n.\r\n", true, "x.\r\n", false, true, 0, 0 },
	{ "\r\n.\rX\r\n.\r\n", true, "\r\nX\r\n", false, true, 0, 0 },
	{ "a\r\n.\r", false, "a\r\n", false, false, 0, 0 },
	/* hop counting */
	{ "Received: a\r\nreceived:b\r\nX-Received: c\r\n\r\nReceived: d\r\n.\r\n", true,
	  "Received: a\r\nreceived:b\r\nX-Received: c\r\n\r\nReceived: d\r\n", false, false, 2, 0 },
	{ ".Received: a\r\nRECEIVED: b\n\nReceived: c\r\n.\r\n", true,
	  "Received: a\r\nRECEIVED: b\r\n\r\nReceived: c\r\n", true, false, 2, 0 },
	{ "Receive: a\r\n Received: b\r\nReceived:\r\n.\r\n", true,
	  "Receive: a\r\n Received: b\r\nReceived:\r\n", false, false, 1, 0 },
};

struct result {
	bool end;
	size_t used;
	struct buf stored;
	struct smtp_data d;
};

/* Feed in[0..n) in pieces of at most step bytes (first piece: first). */
static void
run(const char *in, size_t n, size_t first, size_t step, uint64_t max,
    struct result *r)
{
	smtp_data_init(&r->d, max, true);
	buf_init(&r->stored, 1 << 22);
	struct buf chunk;
	buf_init(&chunk, 2 * SMTP_DATA_FLUSH + 16);
	r->end = false;
	r->used = 0;
	size_t piece = first;
	while (r->used < n && !r->end) {
		size_t k = n - r->used < piece ? n - r->used : piece;
		size_t used = 0;
		enum smtp_data_result res =
			smtp_data_feed(&r->d, in + r->used, k, &chunk, &used);
		CHECK(used <= k);
		CHECK(chunk.len <= 2 * SMTP_DATA_FLUSH + 2);
		r->used += used;
		if (res == DATA_FLUSH || res == DATA_END || used == k) {
			CHECK(buf_append(&r->stored, chunk.data, chunk.len) == 0);
			buf_reset(&chunk);
		}
		if (res == DATA_END)
			r->end = true;
		piece = step;
	}
	CHECK(buf_append(&r->stored, chunk.data, chunk.len) == 0);
	buf_free(&chunk);
}

static void
test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct data_case *c = &cases[i];
		size_t n = strlen(c->in);
		for (size_t first = 0; first <= n + 1; first++) {
			struct result r;
			/* first == 0: one byte at a time; else split at first. */
			run(c->in, n, first ? first : 1, first ? n : 1, 1 << 20, &r);
			if (r.end != c->end || strcmp(r.stored.data ? r.stored.data : "", c->stored) != 0)
				fprintf(stderr, "case %zu split %zu\n", i, first);
			CHECK_EQ(r.end, c->end);
			CHECK_EQ(n - r.used, c->rest);
			CHECK_STR_EQ(r.stored.data ? r.stored.data : "", c->stored);
			CHECK_EQ(r.d.bare_lf, c->bare_lf);
			CHECK_EQ(r.d.bare_cr, c->bare_cr);
			CHECK_EQ(r.d.hops, c->hops);
			CHECK_EQ(r.d.size, strlen(c->stored));
			buf_free(&r.stored);
		}
	}
}

/* A8: a 1,000,000 byte line is streamed in bounded chunks. */
static void
test_long_line(void)
{
	size_t n = 1000000;
	char *in = malloc(n + 5);
	CHECK(in != NULL);
	memset(in, 'z', n);
	memcpy(in + n, "\r\n.\r\n", 5);
	struct result r;
	run(in, n + 5, n + 5, n + 5, 2000000, &r);
	CHECK(r.end);
	CHECK_EQ(r.stored.len, n + 2);
	CHECK_EQ(r.d.size, n + 2);
	CHECK(!r.d.too_big);
	buf_free(&r.stored);
	free(in);
}

/* Over the limit: exactly max bytes kept whatever the split, then too_big. */
static void
test_limit(void)
{
	const char *in = "0123456789\r\n0123456789\r\n.\r\n";
	size_t n = strlen(in);
	for (size_t step = 1; step <= n; step++) {
		struct result r;
		run(in, n, step, step, 15, &r);
		CHECK(r.end);
		CHECK(r.d.too_big);
		CHECK_EQ(r.stored.len, 15);
		CHECK(memcmp(r.stored.data, "0123456789\r\n012", 15) == 0);
		buf_free(&r.stored);
	}
	struct smtp_data d;
	struct buf chunk;
	buf_init(&chunk, 64);
	smtp_data_init(&d, 10, true);
	smtp_data_put_raw(&d, &chunk, "Received: x\r\n", 13);
	CHECK(d.too_big);
	CHECK_EQ(d.size, 10);
	buf_free(&chunk);
}

/* The DATA line ended in a bare LF: a "." right after it is content. */
static void
test_after_lf(void)
{
	struct smtp_data d;
	struct buf chunk;
	buf_init(&chunk, 64);
	smtp_data_init(&d, 100, false);
	size_t used = 0;
	CHECK_EQ(smtp_data_feed(&d, ".\r\n.\r\n", 6, &chunk, &used), DATA_END);
	CHECK_EQ(used, 6);
	CHECK_STR_EQ(chunk.data, ".\r\n");
	buf_free(&chunk);
}

int
main(void)
{
	test_table();
	test_long_line();
	test_limit();
	test_after_lf();
	CHECK_DONE();
}
