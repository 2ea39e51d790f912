/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	CRC-32 by carry-less multiplication (PCLMULQDQ), after Gopal, Ozturk
 *	et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
 *	Instruction" (Intel, 2009), in its bit-reflected form: four 128-bit
 *	lanes are folded 64 bytes at a time, then into one lane, to 64 bits,
 *	and Barrett-reduced to 32. About ten times the table method's speed;
 *	every body is checksummed on intake and again on delivery, so at
 *	100 KiB the tables were a fifth of the CPU a message costs.
 *
 *	The constants are x^k mod P for the fold distances (reflected, 33
 *	bits), P itself and floor(x^64 / P) for the reduction; crc32.c
 *	picks this path at run time only on a CPU that has the instruction,
 *	and test_crc32 checks both paths against the bit-at-a-time CRC.
 */
#include "crc32_priv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

#define CLMUL __attribute__((target("pclmul,sse2")))

bool
crc32_clmul_usable(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	return (c & bit_PCLMUL) != 0;
}

/* x * k, k's low half by x's low (sel 0x00) or both high (0x11), and
 * the two products xored: one 128-bit lane moved on by k's distance. */
CLMUL static __m128i
fold(__m128i x, __m128i k)
{
	return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
			     _mm_clmulepi64_si128(x, k, 0x11));
}

CLMUL uint32_t
crc32_clmul_fold(uint32_t reg, const unsigned char *p, size_t n)
{
	/* x^(4*128+32), x^(4*128-32): 64 bytes on; x^(128+32), x^(128-32):
	 * 16 bytes on; x^64; P; floor(x^64 / P). Reflected. */
	const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
	const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
	const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
	const __m128i pu = _mm_set_epi64x(0x01f7011641, 0x01db710641);
	const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);

	__m128i x[4];
	for (int i = 0; i < 4; i++)
		x[i] = _mm_loadu_si128((const __m128i *)(p + 16 * i));
	x[0] = _mm_xor_si128(x[0], _mm_cvtsi32_si128((int)reg));
	p += 64;
	n -= 64;
	for (; n >= 64; p += 64, n -= 64)
		for (int i = 0; i < 4; i++)
			x[i] = _mm_xor_si128(fold(x[i], k1k2),
					     _mm_loadu_si128((const __m128i *)
							     (p + 16 * i)));
	/* Four lanes into one, then the 16-byte blocks left. */
	__m128i r = x[0];
	for (int i = 1; i < 4; i++)
		r = _mm_xor_si128(fold(r, k3k4), x[i]);
	for (; n >= 16; p += 16, n -= 16)
		r = _mm_xor_si128(fold(r, k3k4),
				  _mm_loadu_si128((const __m128i *)p));
	/* 128 bits to 64: the low half times x^64, then 64 to 32 more. */
	r = _mm_xor_si128(_mm_srli_si128(r, 8),
			  _mm_clmulepi64_si128(r, k3k4, 0x10));
	r = _mm_xor_si128(_mm_srli_si128(r, 4),
			  _mm_clmulepi64_si128(_mm_and_si128(r, low32), k5,
					       0x00));
	/* Barrett: q = (r mod x^32) * u, then r - q * P; the CRC is in the
	 * second 32-bit word. */
	__m128i q = _mm_clmulepi64_si128(_mm_and_si128(r, low32), pu, 0x10);
	q = _mm_clmulepi64_si128(_mm_and_si128(q, low32), pu, 0x00);
	r = _mm_xor_si128(r, q);
	return (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(r, 4));
}

#else

bool
crc32_clmul_usable(void)
{
	return false;
}

uint32_t
crc32_clmul_fold(uint32_t reg, const unsigned char *p, size_t n)
{
	(void)p;
	(void)n;
	return reg;   /* never called: crc32_clmul_usable() is false */
}

#endif
