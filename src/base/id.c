/* SPDX-License-Identifier: MIT */
/*
 * Queue ids: 40 bits of microsecond time, 12 bits of per-process counter,
 * 12 random bits. Unique within a spool because one daemon owns the spool
 * (lock) and the maildrop writer adds its own randomness.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "outbox/id.h"

/* 16 random bits (0: the kernel had none): getrandom() once per 128 ids,
 * not once per id. Loop thread only, like id_new. */
static uint16_t
id_random(void)
{
	static uint16_t pool[128];
	static size_t left;
	if (left == 0) {
		if (getrandom(pool, sizeof(pool), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(pool))
			return 0;
		left = sizeof(pool) / sizeof(pool[0]);
	}
	return pool[--left];
}

void
id_new(char out[ID_SIZE])
{
	static uint32_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	uint16_t rnd = id_random();
	if (rnd == 0)
		rnd = (uint16_t)(ts.tv_nsec ^ (long)&rnd);
	uint64_t v = (us & 0xFFFFFFFFFFull) << 24 |
		     (uint64_t)(counter++ & 0xFFF) << 12 | (rnd & 0xFFF);
	snprintf(out, ID_SIZE, "%016llX", (unsigned long long)v);
}

bool
id_valid(const char *s)
{
	for (int i = 0; i < ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return s[ID_LEN] == '\0';
}
