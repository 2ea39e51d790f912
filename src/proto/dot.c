/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Outbound body filter (RFC 5321 4.5.2, curl cr_eob_read): turns stored
 *	message bytes into their wire form for DATA.
 *	- A '.' at the start of a line is doubled (the added dot does not
 *	  count toward the line length, RFC 5321 4.5.3.1.6).
 *	- A line with more than SMTP_SEND_LINE_MAX content octets is folded
 *	  by inserting CRLF SP (Postfix smtp_line_length_limit), so no wire
 *	  line exceeds 1000 octets with its CRLF.
 *	- A bare CR or a bare LF becomes CRLF: the wire never carries either
 *	  (RFC 5321 2.3.8; A1/A3 smuggling).
 *	State (column, pending CR) carries across chunks, so any split of the
 *	input gives the same output. On -ENOBUFS the output and the state are
 *	left as they were before the call. Pure code.
 */
#include <errno.h>
#include <string.h>

#include "outbox/crlf_plain.h"
#include "outbox/dot.h"
#include "outbox/limits.h"

void
dot_stuff_init(struct dot_stuff *d)
{
	d->col = 0;
	d->cr = false;
}

static int
dot_newline(struct dot_stuff *d, struct buf *out)
{
	d->col = 0;
	return buf_append(out, "\r\n", 2);
}

/* Copy a run of ordinary bytes, stuffing and folding as needed. */
static int
dot_run(struct dot_stuff *d, const char *p, size_t n, struct buf *out)
{
	while (n > 0) {
		int r = 0;
		if (d->col >= SMTP_SEND_LINE_MAX) {
			r = buf_append(out, "\r\n ", 3);
			d->col = 1;
		} else if (d->col == 0 && p[0] == '.') {
			r = buf_append(out, "..", 2);
			d->col = 1;
			p++;
			n--;
		} else {
			size_t k = SMTP_SEND_LINE_MAX - d->col;
			if (k > n)
				k = n;
			r = buf_append(out, p, k);
			d->col += k;
			p += k;
			n -= k;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Length of the prefix of p[0..n) without CR or LF. */
static size_t
dot_plain_len(const char *p, size_t n)
{
	size_t k = 0;
	while (k < n && p[k] != '\r' && p[k] != '\n')
		k++;
	return k;
}

static int
dot_feed_all(struct dot_stuff *d, const char *in, size_t n, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		int r = 0;
		char ch = in[i];
		size_t k = d->col == 0 && !d->cr
				   ? crlf_plain_prefix(in + i, n - i,
						       SMTP_SEND_LINE_MAX)
				   : 0;
		if (k > 0) {
			/* whole lines needing no stuffing, folding or repair */
			r = buf_append(out, in + i, k);
			i += k;
		} else if (d->cr) {
			/* CR LF, or a bare CR that ends the line all the same. */
			d->cr = false;
			r = dot_newline(d, out);
			if (ch == '\n')
				i++;
		} else if (ch == '\r') {
			d->cr = true;
			i++;
		} else if (ch == '\n') {
			r = dot_newline(d, out);
			i++;
		} else {
			size_t m = dot_plain_len(in + i, n - i);
			r = dot_run(d, in + i, m, out);
			i += m;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int
dot_stuff_feed(struct dot_stuff *d, const char *in, size_t n, struct buf *out)
{
	struct dot_stuff saved = *d;
	size_t len = out->len;
	int r = dot_feed_all(d, in, n, out);
	if (r < 0) {
		*d = saved;
		out->len = len;
		if (out->data)
			out->data[len] = '\0';
	}
	return r;
}

int
dot_stuff_end(struct dot_stuff *d, struct buf *out)
{
	bool open_line = d->cr || d->col > 0;
	int r = buf_reserve(out, open_line ? 5 : 3);
	if (r < 0)
		return r;
	if (open_line)
		r = dot_newline(d, out);
	d->cr = false;
	if (r == 0)
		r = buf_append(out, ".\r\n", 3);
	return r;
}
