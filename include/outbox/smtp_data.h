/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_DATA_H
#define OUTBOX_SMTP_DATA_H
/*
 * The listener's DATA reader: a byte-level streaming filter from wire
 * form to stored form, split-safe (any input split gives the same result).
 *
 * - Only <CRLF>.<CRLF> ends the data: the "." line must follow a line
 *   that ended in CRLF (or the DATA command line, if that ended in CRLF)
 *   and itself end in CRLF. "\n.\n", "\n.\r\n", "\r\n.\n" are content.
 * - Dot-unstuffing: one leading '.' is removed from a line; a lone "."
 *   line that is content (see above) is stored as "." so that the
 *   outbound stuffing turns it into ".." and it stays content.
 * - Stored lines always end in CRLF. A line ending in a bare LF is
 *   stored with CRLF and noted in bare_lf (strict mode rejects it). A CR
 *   not followed by LF is dropped and noted in bare_cr (always rejected).
 *   So the stored bytes never hold a bare CR or LF.
 * - Received: headers are counted in the header section (before the first
 *   empty line), case-insensitively, on the stored (unstuffed) bytes.
 * - Once storing a byte would pass max, nothing more is stored (too_big)
 *   but the input is still read to the end of data.
 * - The caller empties the chunk when DATA_FLUSH is returned; the chunk
 *   never holds more than 2 * SMTP_DATA_FLUSH + 2 bytes from this filter.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"

#define SMTP_DATA_FLUSH (64 * 1024)

enum smtp_data_pos { DATA_BOL, DATA_DOT, DATA_DOT_CR, DATA_MID, DATA_CR };

struct smtp_data {
	enum smtp_data_pos pos;
	bool prev_crlf;   /* the previous line ended in CRLF */
	bool in_headers;  /* no empty line stored yet */
	int hdr_match;    /* bytes of "received:" matched on this line; -1 none */
	unsigned hops;    /* Received: headers seen */
	bool bare_lf, bare_cr, too_big, nomem;
	uint64_t size;    /* bytes stored, including smtp_data_put_raw */
	uint64_t max;
};

enum smtp_data_result {
	DATA_NEED_MORE, /* all input used */
	DATA_FLUSH,     /* chunk holds >= SMTP_DATA_FLUSH bytes; empty it, feed the rest */
	DATA_END,       /* <CRLF>.<CRLF> seen; *used includes it */
};

/* after_crlf: the DATA command line ended in CRLF (not a bare LF). */
void smtp_data_init(struct smtp_data *d, uint64_t max, bool after_crlf);

/* Store bytes of our own (the Received: header) without scanning them. */
void smtp_data_put_raw(struct smtp_data *d, struct buf *chunk, const char *p,
		       size_t n);

enum smtp_data_result smtp_data_feed(struct smtp_data *d, const char *p,
				     size_t n, struct buf *chunk,
				     size_t *used);

#endif
