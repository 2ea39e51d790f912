/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DSN_H
#define OUTBOX_DSN_H
/*
 * Delivery status notifications (RFC 3464, RFC 6522 multipart/report), as
 * pure code: the caller supplies every variable part (dates, ids, the
 * boundary), so the output is byte-for-byte testable.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/buf.h"

#define DSN_HEADERS_MAX 50000   /* original headers returned (Postfix bounce_size_limit) */
#define DSN_DIAG_MAX 1000       /* a longer diagnostic is cut to this many chars */
#define DSN_FIELD_MAX 256       /* our own one-line values (host, dates, ids) */
#define DSN_BOUNDARY_MAX 70     /* RFC 2046 5.1.1 */

struct dsn_rcpt {
	const char *addr;        /* Final-Recipient (rfc822) */
	const char *status;      /* "5.1.1"; "4.4.7" for expiry */
	const char *remote_mta;  /* host name for Remote-MTA, or NULL */
	const char *diagnostic;  /* the server's reply ("550 5.1.1 no such user"), or our reason; NULL = none */
	bool smtp_diagnostic;    /* Diagnostic-Code type: smtp (a server reply) or x-outbox (ours) */
};

struct dsn_msg {
	const char *reporting_mta;  /* our host name */
	const char *from;           /* "MAILER-DAEMON@host" */
	const char *to;             /* the original envelope sender */
	const char *queue_id;       /* original message's queue id (X-Outbox-Queue-ID, text) */
	const char *arrival_date;   /* RFC 5322 date of the original arrival */
	const char *date;           /* RFC 5322 date, now */
	const char *message_id;     /* "<...@host>" for the DSN itself */
	const char *boundary;       /* MIME boundary, caller-chosen (random) */
	bool delayed;               /* Action: delayed (warning) instead of failed */
	const char *headers;        /* the original message's header section (CRLF), may be NULL */
	size_t headers_len;
	const char *retry_until;    /* delayed only: RFC 5322 date for Will-Retry-Until, or NULL */
};

/*
 * Append the whole DSN message (header and body, CRLF line ends, no line
 * over 998 octets, nothing from the original that could add a header or
 * a MIME part: peer text is sanitized and folded) to out.
 * 0, or -ENOBUFS / -ENOMEM / -EINVAL; on error out is left as it was.
 *
 * Peer text (m->to, rcpt addr, remote_mta, diagnostic) is reduced to
 * printable ASCII, white space runs collapse to one space, and a
 * diagnostic is cut at DSN_DIAG_MAX. Our own values (reporting_mta, from,
 * date, message_id, queue_id, arrival_date, retry_until) must already be
 * printable one-line ASCII of at most DSN_FIELD_MAX chars, else -EINVAL.
 * -EINVAL also for: n == 0, an empty m->to (never bounce to <>), a status
 * not shaped [245].d{1,3}.d{1,3}, a boundary that is not 1..70 RFC 2046
 * bchars (no space), or original headers that contain the boundary string
 * after sanitizing: the caller then picks a new random boundary and retries.
 * The original headers (at most DSN_HEADERS_MAX bytes via dsn_header_len)
 * get CRLF line ends (bare CR or LF become CRLF), empty lines dropped,
 * control and 8-bit bytes turned into '?', lines over 998 folded. With
 * headers NULL or empty the text/rfc822-headers part is left out.
 */
int dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *rcpts, size_t n,
	      struct buf *out) BUF_WUR;

/* The header section of a message: bytes up to and including the blank line
 * (a line that is empty or only CR, ended by LF; or all of data if none),
 * capped at max. When capped, cut back to the end of the last complete line
 * (0 if the first line alone is longer than max). */
size_t dsn_header_len(const char *data, size_t len, size_t max);

#endif
