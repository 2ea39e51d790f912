/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	CRC-32 (IEEE 802.3, reflected, as zlib's crc32): by carry-less
 *	multiplication where the CPU has it (crc32_clmul.c) for all but the
 *	last bytes, else slicing by 8: eight table lookups per 8 bytes
 *	instead of one per byte. Every body is checksummed twice (intake,
 *	delivery check); its log record's CRC is combined from the body's
 *	(crc32_combine), not computed over it again. The tables are built,
 *	and the CPU asked, once, by whichever thread comes first
 *	(pthread_once).
 */
#include <pthread.h>

#include "outbox/crc32.h"
#include "crc32_priv.h"

static uint32_t crc32_table[8][256];
/* x^(2^k) mod P, k = 0..31 (reflected: bit 31 is x^0); x has order
 * 2^32 - 1 mod P, so x^(2^32) = x and the table repeats after 32. */
static uint32_t crc32_x2k[32];
static pthread_once_t crc32_once = PTHREAD_ONCE_INIT;
static bool crc32_clmul;       /* the CPU can: crc32_clmul.c */
static bool crc32_portable;    /* tests: the tables all the same */

/* a * b mod P, both reflected. */
static uint32_t
crc32_mulmod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;
	for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
		if (a & m)
			p ^= b;
		b = b & 1 ? (b >> 1) ^ 0xEDB88320u : b >> 1;   /* b *= x */
	}
	return p;
}

static void
crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc32_table[0][i] = c;
	}
	for (int t = 1; t < 8; t++)
		for (int i = 0; i < 256; i++) {
			uint32_t c = crc32_table[t - 1][i];
			crc32_table[t][i] = (c >> 8) ^ crc32_table[0][c & 0xff];
		}
	crc32_clmul = crc32_clmul_usable();
	crc32_x2k[0] = 1u << 30;   /* x^1 */
	for (int k = 1; k < 32; k++)
		crc32_x2k[k] = crc32_mulmod(crc32_x2k[k - 1], crc32_x2k[k - 1]);
}

/* Four bytes as a little-endian word, whatever the host's order. */
static uint32_t
crc32_le32(const unsigned char *s)
{
	return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
	       (uint32_t)s[3] << 24;
}

uint32_t
crc32_update(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&crc32_once, crc32_init);
	const uint32_t (*t)[256] = crc32_table;
	const unsigned char *s = p;
	crc = ~crc;
	if (crc32_clmul && !crc32_portable && n >= 64) {
		size_t m = n & ~(size_t)15;
		crc = crc32_clmul_fold(crc, s, m);
		s += m;
		n -= m;
	}
	for (; n >= 8; n -= 8, s += 8) {
		uint32_t a = crc32_le32(s) ^ crc, b = crc32_le32(s + 4);
		crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^
		      t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
		      t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^
		      t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
	}
	while (n--)
		crc = t[0][(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void
crc32_set_portable(bool on)
{
	pthread_once(&crc32_once, crc32_init);
	crc32_portable = on;
}

bool
crc32_accelerated(void)
{
	pthread_once(&crc32_once, crc32_init);
	return crc32_clmul && !crc32_portable;
}

/*
 * The CRC of A then B from crc_a, crc_b and B's length, without reading B
 * again: with the register inverted before and after (as here),
 * CRC(A B) = crc_a * x^(8 len_b) mod P  xor  crc_b, the inversions
 * cancelling. x^(8 len_b) by squaring: one table entry per set bit.
 */
uint32_t
crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	pthread_once(&crc32_once, crc32_init);
	uint32_t xn = 1u << 31;   /* x^0 */
	for (unsigned k = 3; len_b != 0; len_b >>= 1, k++)
		if (len_b & 1)
			xn = crc32_mulmod(crc32_x2k[k & 31], xn);
	return crc32_mulmod(xn, crc_a) ^ crc_b;
}
