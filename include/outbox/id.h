/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_ID_H
#define OUTBOX_ID_H
/*
 * Queue ids: 16 upper-case hex digits, time-ordered (microseconds since the
 * epoch in the high bits, then a per-process counter and randomness), so a
 * directory listing sorts roughly by arrival and ids never repeat.
 */
#include <stdbool.h>
#include <stddef.h>
#define ID_LEN 16
#define ID_SIZE (ID_LEN + 1)
void id_new(char out[ID_SIZE]);
/* True when s is exactly a well-formed id (used on names from disk). */
bool id_valid(const char *s);
#endif
