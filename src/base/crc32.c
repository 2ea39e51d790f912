/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	CRC-32 (IEEE 802.3, reflected, as zlib's crc32), slicing by 8: eight
 *	table lookups per 8 bytes instead of one per byte. Every message is
 *	checksummed three times (intake, log record, delivery check), so at
 *	100 KiB this is most of the CPU a message costs. The tables are
 *	built once, by whichever thread comes first (pthread_once).
 */
#include <pthread.h>

#include "outbox/crc32.h"

static uint32_t crc32_table[8][256];
static pthread_once_t crc32_once = PTHREAD_ONCE_INIT;

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
