/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Wire-to-stored filter for the message body (see smtp_data.h for the
 *	rules). The state is the position inside the current line, so a line
 *	end or a dot line split over two feeds is handled like an unsplit one.
 *	Runs of ordinary bytes are copied in one go; only line starts and
 *	CR/LF bytes go through the per-byte states, and in the body whole
 *	runs of plain CRLF lines skip them too (crlf_plain.h).
 */
#include <stdint.h>
#include <string.h>

#include "outbox/crlf_plain.h"
#include "outbox/smtp_data.h"

static const char data_received[] = "received:";
#define DATA_RECEIVED_LEN (sizeof(data_received) - 1)

void
smtp_data_init(struct smtp_data *d, uint64_t max, bool after_crlf)
{
	memset(d, 0, sizeof(*d));
	d->pos = DATA_BOL;
	d->prev_crlf = after_crlf;
	d->in_headers = true;
	d->max = max;
}

static void
data_append(struct smtp_data *d, struct buf *chunk, const char *p, size_t n)
{
	if (d->too_big || d->nomem)
		return;
	if (n > d->max - d->size) {
		/* Store exactly up to the limit, so what is kept does not
		 * depend on how the input was split. */
		n = (size_t)(d->max - d->size);
		d->too_big = true;
	}
	if (buf_append(chunk, p, n) < 0) {
		d->nomem = true;
		return;
	}
	d->size += n;
}

void
smtp_data_put_raw(struct smtp_data *d, struct buf *chunk, const char *p,
		  size_t n)
{
	data_append(d, chunk, p, n);
}

static char
data_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Line text (never CR or LF): stored, and matched at line start. */
static void
data_text(struct smtp_data *d, struct buf *chunk, const char *p, size_t n)
{
	for (size_t i = 0; i < n && d->in_headers && d->hdr_match >= 0; i++) {
		if (data_lower(p[i]) != data_received[d->hdr_match]) {
			d->hdr_match = -1;
		} else if (++d->hdr_match == (int)DATA_RECEIVED_LEN) {
			d->hops++;
			d->hdr_match = -1;
		}
	}
	data_append(d, chunk, p, n);
}

/* A line end: stored as CRLF whatever it was. */
static void
data_eol(struct smtp_data *d, struct buf *chunk, bool crlf)
{
	/* hdr_match is 0 only when nothing was stored on this line. */
	if (d->in_headers && d->hdr_match == 0)
		d->in_headers = false;
	data_append(d, chunk, "\r\n", 2);
	if (!crlf)
		d->bare_lf = true;
	d->prev_crlf = crlf;
	d->hdr_match = 0;
	d->pos = DATA_BOL;
}

/* Ordinary bytes up to the next CR or LF, at most one flush worth. */
static size_t
data_mid(struct smtp_data *d, const char *p, size_t n, struct buf *chunk)
{
	size_t lim = n < SMTP_DATA_FLUSH ? n : SMTP_DATA_FLUSH;
	size_t j = 0;
	while (j < lim && p[j] != '\r' && p[j] != '\n')
		j++;
	if (j > 0) {
		data_text(d, chunk, p, j);
		return j;
	}
	if (p[0] == '\r')
		d->pos = DATA_CR;
	else
		data_eol(d, chunk, false);
	return 1;
}

/*
 * At a line start in the body: whole CRLF lines that need no unstuffing
 * or repair are stored as they are (at most one flush worth). Headers
 * take the byte path, which counts Received: fields.
 */
static size_t
data_plain(struct smtp_data *d, const char *p, size_t n, struct buf *chunk)
{
	size_t k = crlf_plain_prefix(p, n < SMTP_DATA_FLUSH ? n : SMTP_DATA_FLUSH,
				     SIZE_MAX);
	if (k > 0) {
		data_append(d, chunk, p, k);
		d->prev_crlf = true;
	}
	return k;
}

/*
 * One step at a line start or after a CR. Returns bytes used (0 when the
 * byte is left for the next state) and sets *end at <CRLF>.<CRLF>.
 */
static size_t
data_step(struct smtp_data *d, char c, struct buf *chunk, bool *end)
{
	switch (d->pos) {
	case DATA_BOL:
		d->pos = c == '.' ? DATA_DOT : DATA_MID;
		return c == '.' ? 1 : 0;
	case DATA_DOT:
		if (c == '\r') {
			d->pos = DATA_DOT_CR;
			return 1;
		}
		if (c == '\n') { /* ".\n" is content: keep its dot */
			data_text(d, chunk, ".", 1);
			data_eol(d, chunk, false);
			return 1;
		}
		d->pos = DATA_MID; /* the stuffed dot is dropped */
		return 0;
	case DATA_DOT_CR:
		if (c == '\n') {
			if (d->prev_crlf) {
				*end = true;
				return 1;
			}
			data_text(d, chunk, ".", 1);
			data_eol(d, chunk, true);
			return 1;
		}
		d->bare_cr = true; /* ".\rX": dot dropped, CR dropped */
		d->pos = DATA_MID;
		return 0;
	case DATA_CR:
		if (c == '\n') {
			data_eol(d, chunk, true);
			return 1;
		}
		d->bare_cr = true;
		if (c == '\r')
			return 1; /* stay in DATA_CR */
		d->pos = DATA_MID;
		return 0;
	case DATA_MID:
		break;
	}
	return 0;
}

enum smtp_data_result
smtp_data_feed(struct smtp_data *d, const char *p, size_t n,
	       struct buf *chunk, size_t *used)
{
	size_t i = 0;
	while (i < n) {
		if (chunk->len >= SMTP_DATA_FLUSH) {
			*used = i;
			return DATA_FLUSH;
		}
		if (d->pos == DATA_MID) {
			i += data_mid(d, p + i, n - i, chunk);
			continue;
		}
		if (d->pos == DATA_BOL && !d->in_headers) {
			size_t k = data_plain(d, p + i, n - i, chunk);
			if (k > 0) {
				i += k;
				continue;
			}
		}
		bool end = false;
		i += data_step(d, p[i], chunk, &end);
		if (end) {
			*used = i;
			return DATA_END;
		}
	}
	*used = n;
	return DATA_NEED_MORE;
}
