/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Retry times (RELIABILITY.md decision 2, Postfix qmgr_active.c): the
 *	delay starts at retry_min, doubles per failed attempt and stops at
 *	retry_max; then +-20% jitter, drawn uniformly from the caller's
 *	random value, spreads retries of a burst so they do not all hit the
 *	smarthost in the same second. The result is never below 1 s and never
 *	above retry_max * 1.2. Expiry needs both wall-clock age and at least
 *	three attempts, so a clock jump alone cannot bounce mail (decision 6).
 *	Pure: the caller supplies the clock and the randomness.
 */
#include "outbox/backoff.h"

/* Keeps delay * 1.2 and the jitter arithmetic far from INT64_MAX (~31 years). */
#define BACKOFF_CAP ((int64_t)1 << 30)
#define BACKOFF_MIN_ATTEMPTS 3

static int64_t
backoff_clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* retry_min * 2^(attempts-1), capped at retry_max without overflowing. */
static int64_t
backoff_base(uint32_t attempts, int64_t retry_min, int64_t retry_max)
{
	int64_t d = retry_min;
	for (uint32_t i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d < retry_max ? d : retry_max;
}

int64_t
backoff_delay(uint32_t attempts, int64_t retry_min, int64_t retry_max,
	      uint32_t random)
{
	retry_min = backoff_clamp(retry_min, 1, BACKOFF_CAP);
	retry_max = backoff_clamp(retry_max, retry_min, BACKOFF_CAP);
	int64_t d = backoff_base(attempts, retry_min, retry_max);
	/* Uniform over [-span, +span], span = 20% of d. */
	int64_t span = d / 5;
	int64_t jitter = (int64_t)(((uint64_t)(2 * span) * random) / UINT32_MAX) - span;
	return backoff_clamp(d + jitter, 1, retry_max + retry_max / 5);
}

bool
backoff_expired(int64_t now, int64_t arrival, uint32_t attempts,
		int64_t max_lifetime)
{
	int64_t age;
	if (attempts < BACKOFF_MIN_ATTEMPTS)
		return false;
	if (__builtin_sub_overflow(now, arrival, &age))
		return now > arrival;
	return age > max_lifetime;
}
