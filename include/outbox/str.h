/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_STR_H
#define OUTBOX_STR_H
/* Checked string helpers; glibc 2.36 has no strlcpy. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copy src into dst[size]; always terminates. 0, or -1 on truncation. */
int str_copy(char *dst, size_t size, const char *src);
/* Copy n bytes of src; 0, or -1 on truncation. */
int str_ncopy(char *dst, size_t size, const char *src, size_t n);
/* Decimal only, no sign, no spaces, no overflow. 0 or -1. */
int str_to_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* As str_to_u64 on s[0..n). */
int str_nto_u64(const char *s, size_t n, uint64_t min, uint64_t max,
		uint64_t *out);
/* Case-insensitive ASCII prefix test. */
bool str_prefix_ci(const char *s, size_t n, const char *prefix);
/*
 * Escape peer text for logs and stored errors: printable ASCII is kept,
 * every other byte becomes '?'. Output is cut to size-1 bytes. Returns dst.
 */
char *str_sanitize(char *dst, size_t size, const char *src, size_t n);
/* Trim ASCII white space in place; returns s. */
char *str_trim(char *s);
/* Length of the valid UTF-8 sequence at s[0..n) (n > 0), or 0 if there
 * is none: overlong forms, surrogates and code points past U+10FFFF are
 * not valid. For escapers that keep UTF-8 and escape every other byte. */
size_t str_utf8_len(const unsigned char *s, size_t n);
/* Duplicate n bytes to a new NUL-terminated heap string (caller frees). */
char *str_ndup(const char *s, size_t n);
/* FNV-1a (64-bit prime) of the string, for the daemon's in-memory hash
 * tables. Its seed is 1469598103934665603, not FNV's published offset
 * basis (14695981039346656037): the tables always used this one, and
 * nothing hashed is ever stored, so it stays. */
uint64_t str_hash(const char *s);

#endif
