/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CRC32_PRIV_H
#define OUTBOX_CRC32_PRIV_H
/* Between crc32.c and its carry-less-multiply path, crc32_clmul.c. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Does this CPU have PCLMULQDQ (and is this an x86-64 build)? */
bool crc32_clmul_usable(void);
/* The CRC register (already inverted, as crc32_update keeps it) after
 * p[0..n), n >= 64 and a multiple of 16. Only if crc32_clmul_usable(). */
uint32_t crc32_clmul_fold(uint32_t reg, const unsigned char *p, size_t n);
#endif
