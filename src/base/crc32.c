/* SPDX-License-Identifier: MIT */
/* Table-driven CRC-32; the table is built once, on first use. */
#include "outbox/crc32.h"

static uint32_t crc32_table[256];
static int crc32_ready;

static void
crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc32_table[i] = c;
	}
	crc32_ready = 1;
}

uint32_t
crc32_update(uint32_t crc, const void *p, size_t n)
{
	if (!crc32_ready)
		crc32_init();
	const unsigned char *s = p;
	crc = ~crc;
	while (n--)
		crc = crc32_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
