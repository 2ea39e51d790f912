/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the DATA filters. smtp_data (wire -> stored: dot
 *	unstuffing, end of data, bare CR/LF policy, size limit, hop count)
 *	and dot_stuff (stored -> wire).
 *
 *	Input: a flags byte (bit 0: the DATA line ended in CRLF; bit 1: a
 *	small size limit), a limit byte, a split seed byte, then wire bytes.
 *
 *	Invariants: any split of the input gives the same stored bytes, end
 *	position and flags as one feed; stored bytes never hold a bare CR or
 *	LF and never pass the limit; the chunk stays bounded; and the
 *	outbound filter round-trips: dot_stuff of anything is CRLF lines of
 *	at most 998 octets (plus a doubled dot) that smtp_data reads back
 *	to exactly its end (no smuggled end of data), giving back the
 *	stored bytes when no line needed folding.
 */
#include "fuzz.h"
#include "outbox/dot.h"
#include "outbox/limits.h"
#include "outbox/smtp_data.h"

#define FDATA_BIG (1u << 22)

struct fdata_res {
	struct smtp_data d;
	struct buf stored;
	enum smtp_data_result r;
	size_t used;          /* input bytes used (up to the end of data) */
};

/* Move the chunk to the result, checking its bound. */
static void
fdata_take(struct buf *chunk, struct fdata_res *res)
{
	FUZZ_ASSERT(chunk->len <= 2 * SMTP_DATA_FLUSH + 2);
	if (buf_append(&res->stored, chunk->data, chunk->len) != 0)
		abort();
	buf_reset(chunk);
}

/* Feed p[0..n) in pieces of at most step bytes (0: random 1..64). */
static void
fdata_run(const char *p, size_t n, uint64_t max, bool after_crlf,
	  uint64_t seed, size_t step, struct fdata_res *res)
{
	struct buf chunk;
	buf_init(&chunk, FDATA_BIG);
	buf_init(&res->stored, FDATA_BIG);
	smtp_data_init(&res->d, max, after_crlf);
	res->r = DATA_NEED_MORE;
	res->used = 0;
	size_t off = 0;
	while (off < n) {
		size_t k = step ? step : 1 + fuzz_rand(&seed) % 64;
		if (k > n - off)
			k = n - off;
		size_t used = 0;
		res->r = smtp_data_feed(&res->d, p + off, k, &chunk, &used);
		FUZZ_ASSERT(used <= k);
		FUZZ_ASSERT(res->r != DATA_NEED_MORE || used == k);
		off += used;
		fdata_take(&chunk, res);
		if (res->r == DATA_END)
			break;
	}
	res->used = off;
	buf_free(&chunk);
}

/* Stored bytes: CR only before LF, LF only after CR (a torn tail may
 * end in CR). */
static void
fdata_check_stored(const struct fdata_res *res)
{
	const char *s = res->stored.data;
	size_t n = res->stored.len;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			FUZZ_ASSERT(i > 0 && s[i - 1] == '\r');
		if (s[i] == '\r')
			FUZZ_ASSERT(i + 1 == n || s[i + 1] == '\n');
	}
	FUZZ_ASSERT(res->d.size == n);
	FUZZ_ASSERT(res->d.size <= res->d.max);
	if (res->r == DATA_END && !res->d.too_big)
		FUZZ_ASSERT(fuzz_crlf_lines(s, n, SIZE_MAX, true));
}

static void
fdata_same(const struct fdata_res *a, const struct fdata_res *b)
{
	FUZZ_ASSERT(a->r == b->r && a->used == b->used);
	FUZZ_ASSERT(a->stored.len == b->stored.len);
	FUZZ_ASSERT(a->stored.len == 0 ||
		    memcmp(a->stored.data, b->stored.data, a->stored.len) == 0);
	FUZZ_ASSERT(a->d.bare_lf == b->d.bare_lf && a->d.bare_cr == b->d.bare_cr);
	FUZZ_ASSERT(a->d.too_big == b->d.too_big && a->d.hops == b->d.hops);
}

/* Wire form of p[0..n) through dot_stuff, fed in random pieces. */
static void
fdata_stuff(const char *p, size_t n, uint64_t seed, struct buf *wire)
{
	struct dot_stuff ds;
	dot_stuff_init(&ds);
	size_t off = 0;
	while (off < n) {
		size_t k = 1 + fuzz_rand(&seed) % 200;
		if (k > n - off)
			k = n - off;
		if (dot_stuff_feed(&ds, p + off, k, wire) != 0)
			abort();
		off += k;
	}
	if (dot_stuff_end(&ds, wire) != 0)
		abort();
	/* The doubled dot does not count (RFC 5321 4.5.3.1.6). */
	FUZZ_ASSERT(fuzz_crlf_lines(wire->data, wire->len,
				    SMTP_SEND_LINE_MAX + 1, true));
}

/* Does any line of the stored bytes need folding on the wire? */
static bool
fdata_needs_fold(const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			col = 0;
			continue;
		}
		if (++col > SMTP_SEND_LINE_MAX)
			return true;
	}
	return false;
}

/* stored -> wire -> stored: the end is found exactly at the wire's end. */
static void
fdata_roundtrip(const char *p, size_t n, uint64_t seed, bool exact)
{
	struct buf wire;
	buf_init(&wire, FDATA_BIG);
	fdata_stuff(p, n, seed, &wire);
	struct fdata_res back;
	fdata_run(wire.data, wire.len, FDATA_BIG, true, seed, 0, &back);
	FUZZ_ASSERT(back.r == DATA_END && back.used == wire.len);
	FUZZ_ASSERT(!back.d.bare_lf && !back.d.bare_cr && !back.d.too_big);
	if (exact && !fdata_needs_fold(p, n)) {
		FUZZ_ASSERT(back.stored.len == n);
		FUZZ_ASSERT(n == 0 || memcmp(back.stored.data, p, n) == 0);
	}
	buf_free(&back.stored);
	buf_free(&wire);
}

static void
fuzz_data(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned flags = fuzz_byte(&in), lim = fuzz_byte(&in);
	uint64_t seed = fuzz_byte(&in);
	uint64_t max = (flags & 2) ? 16 + (uint64_t)lim * 8 : FDATA_BIG;
	const char *p = (const char *)in.p;
	size_t n = in.n;

	struct fdata_res whole, split, bytes;
	fdata_run(p, n, max, flags & 1, seed, n ? n : 1, &whole);
	fdata_check_stored(&whole);
	fdata_run(p, n, max, flags & 1, seed, 0, &split);
	fdata_same(&whole, &split);
	fdata_run(p, n, max, flags & 1, seed, 1, &bytes);
	fdata_same(&whole, &bytes);

	if (whole.r == DATA_END && !whole.d.too_big)
		fdata_roundtrip(whole.stored.data, whole.stored.len, seed, true);
	/* Anything at all, bare CR/LF and "\r\n.\r\n" included. */
	fdata_roundtrip(p, n, seed, false);

	buf_free(&whole.stored);
	buf_free(&split.stored);
	buf_free(&bytes.stored);
}

FUZZ_ENTRY(fuzz_data)
