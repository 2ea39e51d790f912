/* layer: base */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	str_hash: FNV-1a steps from the tables' seed, worked out by hand
 *	here; every byte counts, and bytes past 0x7f are hashed unsigned (a
 *	sign-extending version would differ).
 */
#include <stdint.h>

#include "check.h"
#include "outbox/str.h"

#define SEED 1469598103934665603ull
#define PRIME 0x100000001b3ull

int
main(void)
{
	CHECK_EQ(SEED, str_hash(""));
	CHECK_EQ((SEED ^ 'a') * PRIME, str_hash("a"));
	CHECK_EQ(((SEED ^ 'a') * PRIME ^ 'b') * PRIME, str_hash("ab"));
	CHECK_EQ((SEED ^ 0xe9u) * PRIME, str_hash("\xe9"));
	CHECK(str_hash("ab") != str_hash("ba"));
	CHECK(str_hash("3DB3DB9FAF000D71") != str_hash("3DB3DB9FAF000D70"));
	CHECK_DONE();
}
