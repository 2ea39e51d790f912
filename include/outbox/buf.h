/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_BUF_H
#define OUTBOX_BUF_H
/*
 * The one growable byte buffer. Every buffer has a hard maximum set at
 * init (curl dynbuf "toobig"); growing past it fails with -ENOBUFS and
 * leaves the contents unchanged. The buffer owns data; buf_free releases it.
 * data is always NUL-terminated when non-NULL, so text can be printed.
 */
#include <stdarg.h>
#include <stddef.h>

#define BUF_WUR __attribute__((warn_unused_result))

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

enum buf_line {
	BUF_LINE,      /* a whole line; len excludes the LF and a CR before it */
	BUF_NEED_MORE, /* no LF yet and below the limit */
	BUF_TOO_LONG,  /* no LF within the limit */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Make room for n more bytes. 0, or -ENOBUFS past max, -ENOMEM. */
int buf_reserve(struct buf *b, size_t n) BUF_WUR;
int buf_append(struct buf *b, const void *p, size_t n) BUF_WUR;
int buf_puts(struct buf *b, const char *s) BUF_WUR;
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3))) BUF_WUR;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) BUF_WUR;
/*
 * Exchange the bytes and storage of a and b, no copy; each keeps its max.
 * -ENOBUFS, nothing changed, if either's bytes exceed the other's max.
 */
int buf_swap(struct buf *a, struct buf *b) BUF_WUR;
/* Hand over the storage: returns data (NUL-terminated; the caller frees
 * it; NULL if b has none) and leaves b empty, with no storage. */
char *buf_take(struct buf *b);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/*
 * Find the first line in b. On BUF_LINE, *line points into b->data, *len
 * excludes the line end and *used is the bytes to buf_consume() afterwards.
 * limit bounds the line including its end.
 */
enum buf_line buf_getline(const struct buf *b, size_t limit,
			  const char **line, size_t *len, size_t *used);

#endif
