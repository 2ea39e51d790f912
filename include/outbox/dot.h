/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DOT_H
#define OUTBOX_DOT_H
/*
 * Outbound body filter (RFC 5321 4.5.2): streams stored message bytes
 * (CRLF lines, unstuffed) into wire form: a leading '.' doubled, lines
 * longer than SMTP_SEND_LINE_MAX folded with CRLF SP (Postfix
 * smtp_line_length_limit), any bare CR or LF turned into CRLF so the wire
 * never carries one. State carries across chunk boundaries. Pure code.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/buf.h"

struct dot_stuff {
	size_t col;      /* bytes on the current output line */
	bool cr;         /* last input byte was a CR not yet emitted */
};

void dot_stuff_init(struct dot_stuff *d);
/* Append the wire form of in[0..n) to out. 0 or -ENOBUFS. */
int dot_stuff_feed(struct dot_stuff *d, const char *in, size_t n,
		   struct buf *out) BUF_WUR;
/* Finish: complete the last line if needed, then ".\r\n". */
int dot_stuff_end(struct dot_stuff *d, struct buf *out) BUF_WUR;

#endif
