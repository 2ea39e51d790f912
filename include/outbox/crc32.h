/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CRC32_H
#define OUTBOX_CRC32_H
#include <stddef.h>
#include <stdint.h>
/* CRC-32 (IEEE 802.3), for spool record and message verification.
 * Start with crc = 0 and feed pieces in order. */
uint32_t crc32_update(uint32_t crc, const void *p, size_t n);
#endif
