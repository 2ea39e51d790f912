/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CRC32_H
#define OUTBOX_CRC32_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* CRC-32 (IEEE 802.3), for spool record and message verification.
 * Start with crc = 0 and feed pieces in order. */
uint32_t crc32_update(uint32_t crc, const void *p, size_t n);
/* The CRC of A followed by B, given crc_a = CRC(A), crc_b = CRC(B) and
 * B's length: B is not read again. */
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* Is the carry-less-multiply path in use? */
bool crc32_accelerated(void);
/* Tests: use the portable tables even where the CPU could do better
 * (false: back to the fast path). Not while other threads checksum. */
void crc32_set_portable(bool on);
#endif
