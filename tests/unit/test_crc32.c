/* layer: base */
/*
 * crc32_update against the bit-at-a-time definition: the check value,
 * every length 0..300 at every alignment 0..7, split at every point
 * (pieces fed in order give the same CRC), and a large buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/crc32.h"

/* The definition, one bit at a time: slow and obviously right. */
static uint32_t
crc_bits(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

static void
test_check_value(void)
{
	CHECK_EQ(0xCBF43926u, crc32_update(0, "123456789", 9));
	CHECK_EQ(0u, crc32_update(0, "", 0));
	/* zlib.crc32(b"The quick brown fox jumps over the lazy dog") */
	const char *fox = "The quick brown fox jumps over the lazy dog";
	CHECK_EQ(0x414FA339u, crc32_update(0, fox, strlen(fox)));
}

static void
test_lengths_and_alignments(unsigned char *buf)
{
	for (size_t align = 0; align < 8; align++)
		for (size_t n = 0; n <= 300; n++)
			CHECK_EQ(crc_bits(buf + align, n),
				 crc32_update(0, buf + align, n));
}

static void
test_split(unsigned char *buf)
{
	size_t n = 77;
	uint32_t whole = crc_bits(buf + 3, n);
	for (size_t cut = 0; cut <= n; cut++) {
		uint32_t c = crc32_update(0, buf + 3, cut);
		CHECK_EQ(whole, crc32_update(c, buf + 3 + cut, n - cut));
	}
}

int
main(void)
{
	size_t big = 1u << 20;
	unsigned char *buf = malloc(big);
	CHECK(buf != NULL);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < big; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
	test_check_value();
	test_lengths_and_alignments(buf);
	test_split(buf);
	CHECK_EQ(crc_bits(buf, big), crc32_update(0, buf, big));
	free(buf);
	CHECK_DONE();
}
