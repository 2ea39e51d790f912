/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_BACKOFF_H
#define OUTBOX_BACKOFF_H
/*
 * Retry times (RELIABILITY.md decision 2): retry_min doubling per attempt
 * up to retry_max, with +-20% jitter from the caller's random value. Pure.
 */
#include <stdbool.h>
#include <stdint.h>

/* Seconds until the next attempt after `attempts` failed attempts (>= 1). */
int64_t backoff_delay(uint32_t attempts, int64_t retry_min, int64_t retry_max,
		      uint32_t random);
/* Expired when older than max_lifetime by wall clock and tried at least 3 times. */
bool backoff_expired(int64_t now, int64_t arrival, uint32_t attempts,
		     int64_t max_lifetime);

#endif
