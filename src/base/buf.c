/* SPDX-License-Identifier: MIT */
/*
 * Bounded growable buffer. Invariant: len < cap whenever data != NULL, so
 * data[len] is always a NUL and text can be printed straight from it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int
buf_swap(struct buf *a, struct buf *b)
{
	if (a->len > b->max || b->len > a->max)
		return -ENOBUFS;
	struct buf t = *a;
	a->data = b->data;
	a->len = b->len;
	a->cap = b->cap;
	b->data = t.data;
	b->len = t.len;
	b->cap = t.cap;
	return 0;
}

char *
buf_take(struct buf *b)
{
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int
buf_reserve(struct buf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return -ENOBUFS;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	int r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

enum buf_line
buf_getline(const struct buf *b, size_t limit, const char **line, size_t *len,
	    size_t *used)
{
	size_t scan = b->len < limit ? b->len : limit;
	const char *lf = scan ? memchr(b->data, '\n', scan) : NULL;
	if (lf == NULL)
		return b->len >= limit ? BUF_TOO_LONG : BUF_NEED_MORE;
	size_t n = (size_t)(lf - b->data);
	*used = n + 1;
	if (n > 0 && b->data[n - 1] == '\r')
		n--;
	*line = b->data;
	*len = n;
	return BUF_LINE;
}
