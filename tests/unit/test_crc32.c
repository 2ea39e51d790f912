/* layer: base */
/*
 * crc32_update against the bit-at-a-time definition: the check value,
 * every length 0..300 at every alignment 0..7, split at every point
 * (pieces fed in order give the same CRC), and a large buffer;
 * crc32_combine against the CRC of the whole.
 */
#include <stdint.h>
#include <stdio.h>
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

/* CRC(A B) from CRC(A), CRC(B) and |B|, at every cut of a short buffer,
 * for empty pieces, and across lengths whose bits use every squaring
 * step a 1 MiB body needs (and a length past 2^32, by the identity). */
static void
test_combine(unsigned char *buf, size_t big)
{
	size_t n = 300;
	uint32_t whole = crc_bits(buf, n);
	for (size_t cut = 0; cut <= n; cut++)
		CHECK_EQ(whole, crc32_combine(crc32_update(0, buf, cut),
					      crc32_update(0, buf + cut, n - cut),
					      n - cut));
	CHECK_EQ(0xCBF43926u, crc32_combine(crc32_update(0, "1234", 4),
					    crc32_update(0, "56789", 5), 5));
	CHECK_EQ(0xCBF43926u, crc32_combine(0xCBF43926u, 0, 0));
	CHECK_EQ(0xCBF43926u, crc32_combine(0, 0xCBF43926u, 9));
	size_t cuts[] = { 1, 64, 4095, 65536, 100000, big - 1 };
	uint32_t all = crc_bits(buf, big);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t c = cuts[i];
		CHECK_EQ(all, crc32_combine(crc32_update(0, buf, big - c),
					    crc32_update(0, buf + big - c, c), c));
	}
	/* Shifting by k bytes twice is shifting by 2k (k past 2^32: the
	 * squaring table wraps at 32 entries). */
	uint64_t k = (1ull << 32) + 12345;
	uint32_t a = crc_bits(buf, 10);
	uint32_t zk = crc32_combine(0, 0, k);   /* 0 * x^n = 0 */
	CHECK_EQ(0u, zk);
	uint32_t step = crc32_combine(crc32_combine(a, 0, k), 0, k);
	CHECK_EQ(crc32_combine(a, 0, 2 * k), step);
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
	/* Both paths where the CPU has the fast one; the tables alone
	 * elsewhere (then the second round tests them again). */
	bool fast = crc32_accelerated();
	fprintf(stderr, "carry-less multiply: %s\n", fast ? "yes" : "no");
	for (int round = 0; round < 2; round++) {
		crc32_set_portable(round == 1);
		CHECK(!crc32_accelerated() || round == 0);
		test_check_value();
		test_lengths_and_alignments(buf);
		test_split(buf);
		test_combine(buf, big);
		CHECK_EQ(crc_bits(buf, big), crc32_update(0, buf, big));
	}
	free(buf);
	CHECK_DONE();
}
