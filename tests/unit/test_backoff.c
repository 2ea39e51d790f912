/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Retry delays and expiry (RELIABILITY.md decisions 2 and 6): doubling
 * from retry_min to retry_max, +-20% jitter, overflow-proof for huge
 * attempt counts, and expiry only with wall-clock age AND >= 3 attempts.
 */
#include <stdint.h>

#include "check.h"
#include "outbox/backoff.h"

#define MID 0x80000000u  /* random value at the middle: no jitter */

static void
test_table(void)
{
	static const struct {
		uint32_t attempts;
		int64_t min, max;
		int64_t want;
	} t[] = {
		{ 1, 60, 3600, 60 },
		{ 2, 60, 3600, 120 },
		{ 3, 60, 3600, 240 },
		{ 4, 60, 3600, 480 },
		{ 5, 60, 3600, 960 },
		{ 6, 60, 3600, 1920 },
		{ 7, 60, 3600, 3600 },   /* 3840 capped */
		{ 8, 60, 3600, 3600 },
		{ 0, 60, 3600, 60 },     /* 0 treated as the first attempt */
		{ 1, 300, 4000, 300 },   /* Postfix defaults */
		{ 5, 300, 4000, 4000 },
		{ 3, 60, 60, 60 },       /* min == max */
		{ 3, 600, 60, 600 },     /* max below min: min wins */
		{ 1, 0, 3600, 1 },       /* min 0 clamped to 1 s */
		{ 1, -5, -5, 1 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t got = backoff_delay(t[i].attempts, t[i].min, t[i].max, MID);
		if (got != t[i].want)
			fprintf(stderr, "row %zu: got %lld\n", i, (long long)got);
		CHECK_EQ(t[i].want, got);
	}
}

static void
test_jitter(void)
{
	/* The extremes of random give exactly -20% and +20%. */
	CHECK_EQ(48, backoff_delay(1, 60, 3600, 0));
	CHECK_EQ(72, backoff_delay(1, 60, 3600, UINT32_MAX));
	CHECK_EQ(2880, backoff_delay(9, 60, 3600, 0));
	CHECK_EQ(4320, backoff_delay(9, 60, 3600, UINT32_MAX));
	/* Every value stays within +-20%, and the range is actually used. */
	int64_t lo = INT64_MAX, hi = 0;
	uint32_t r = 12345;
	for (int i = 0; i < 100000; i++) {
		r = r * 1664525u + 1013904223u;
		int64_t d = backoff_delay(3, 60, 3600, r);
		CHECK(d >= 192 && d <= 288);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CHECK(lo <= 194);
	CHECK(hi >= 286);
	/* Monotonic in random. */
	CHECK(backoff_delay(3, 60, 3600, 1000) <= backoff_delay(3, 60, 3600, 2000000000u));
	/* Tiny delays never drop below 1 s. */
	CHECK_EQ(1, backoff_delay(1, 1, 1, 0));
	CHECK_EQ(1, backoff_delay(1, 1, 1, UINT32_MAX));
}

static void
test_overflow(void)
{
	CHECK_EQ(3600, backoff_delay(1000, 60, 3600, MID));
	CHECK_EQ(3600, backoff_delay(UINT32_MAX, 60, 3600, MID));
	int64_t d = backoff_delay(1000, 60, 3600, UINT32_MAX);
	CHECK(d <= 4320 && d >= 3600);
	/* Absurd configuration values stay finite and positive. */
	d = backoff_delay(UINT32_MAX, INT64_MAX, INT64_MAX, UINT32_MAX);
	CHECK(d > 0);
	d = backoff_delay(UINT32_MAX, 1, INT64_MAX, UINT32_MAX);
	CHECK(d > 0);
	d = backoff_delay(64, 1, INT64_MAX, 0);
	CHECK(d > 0);
}

static void
test_expiry(void)
{
	const int64_t life = 5 * 86400, t0 = 1700000000;
	/* Old enough but too few attempts: not yet (clock jump safety). */
	CHECK(!backoff_expired(t0 + life + 1, t0, 0, life));
	CHECK(!backoff_expired(t0 + life + 1, t0, 2, life));
	CHECK(backoff_expired(t0 + life + 1, t0, 3, life));
	CHECK(backoff_expired(t0 + life * 10, t0, 100, life));
	/* Many attempts but young: not expired. */
	CHECK(!backoff_expired(t0 + life, t0, 100, life));
	CHECK(!backoff_expired(t0 + 60, t0, 100, life));
	/* Clock moved backwards: never expired. */
	CHECK(!backoff_expired(t0 - 86400, t0, 100, life));
	/* Extreme values do not overflow into "expired" or "young". */
	CHECK(backoff_expired(INT64_MAX, INT64_MIN, 3, life));
	CHECK(!backoff_expired(INT64_MIN, INT64_MAX, 3, life));
	CHECK(backoff_expired(INT64_MAX, 0, 3, life));
}

int
main(void)
{
	test_table();
	test_jitter();
	test_overflow();
	test_expiry();
	CHECK_DONE();
}
