/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CHECK_H
#define OUTBOX_CHECK_H
/*
 * Minimal assertions in the style of libuv's task.h. A failed check prints
 * file:line and the values, then aborts (one process per test file).
 * Each test file calls CHECK_DONE() at the end, which prints the counts
 * in the "N passed, N failed" shape.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_count;

/* Deterministic test input: the same sequence on every run, so a failure
 * found with it is found again. */
static inline uint32_t
check_rng(void)
{
	static uint32_t state = 4242;
	state = state * 1103515245u + 12345u;
	return state >> 8;
}

#define CHECK_FAIL(...)                                                  \
	do {                                                             \
		fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                            \
		fprintf(stderr, "\n");                                   \
		abort();                                                 \
	} while (0)

#define CHECK(cond)                                                      \
	do {                                                             \
		check_count++;                                           \
		if (!(cond))                                             \
			CHECK_FAIL("%s", #cond);                         \
	} while (0)

#define CHECK_EQ(a, b)                                                   \
	do {                                                             \
		check_count++;                                           \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ != check_b_)                                \
			CHECK_FAIL("%s == %s (%lld != %lld)", #a, #b,    \
				   check_a_, check_b_);                  \
	} while (0)

#define CHECK_STR_EQ(a, b)                                               \
	do {                                                             \
		check_count++;                                           \
		const char *check_a_ = (a), *check_b_ = (b);             \
		if (check_a_ == NULL || check_b_ == NULL ||              \
		    strcmp(check_a_, check_b_) != 0)                     \
			CHECK_FAIL("%s == %s\n  got:  \"%s\"\n  want: \"%s\"", \
				   #a, #b, check_a_ ? check_a_ : "(null)", \
				   check_b_ ? check_b_ : "(null)");      \
	} while (0)

#define CHECK_MEM_EQ(a, b, n)                                            \
	do {                                                             \
		check_count++;                                           \
		if (memcmp((a), (b), (n)) != 0)                          \
			CHECK_FAIL("%s == %s (%zu bytes)", #a, #b, (size_t)(n)); \
	} while (0)

#define CHECK_DONE()                                                     \
	do {                                                             \
		printf("%s: %d checks\n", __FILE__, check_count);        \
		return 0;                                                \
	} while (0)

#endif
