/* SPDX-License-Identifier: MIT */
/* Checked string helpers used instead of strcpy/strncat/atoi. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/str.h"

int
str_ncopy(char *dst, size_t size, const char *src, size_t n)
{
	if (size == 0)
		return -1;
	size_t k = n < size - 1 ? n : size - 1;
	memcpy(dst, src, k);
	dst[k] = '\0';
	return k == n ? 0 : -1;
}

int
str_copy(char *dst, size_t size, const char *src)
{
	return str_ncopy(dst, size, src, strlen(src));
}

int
str_nto_u64(const char *s, size_t n, uint64_t min, uint64_t max,
	    uint64_t *out)
{
	if (n == 0 || n > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
str_to_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return str_nto_u64(s, strlen(s), min, max, out);
}

bool
str_prefix_ci(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	if (n < k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (tolower((unsigned char)s[i]) !=
		    tolower((unsigned char)prefix[i]))
			return false;
	return true;
}

char *
str_sanitize(char *dst, size_t size, const char *src, size_t n)
{
	if (size == 0)
		return dst;
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[k] = '\0';
	return dst;
}

char *
str_trim(char *s)
{
	char *p = s;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	size_t n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' ||
			 p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	memmove(s, p, n);
	s[n] = '\0';
	return s;
}

char *
str_ndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

size_t
str_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp, min;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}
