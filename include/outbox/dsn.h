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
};

/*
 * Append the whole DSN message (header and body, CRLF line ends, no line
 * over 998 octets, nothing from the original that could add a header or
 * a MIME part: peer text is sanitized and folded) to out.
 * 0, or -ENOBUFS / -EINVAL.
 */
int dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *rcpts, size_t n,
	      struct buf *out) BUF_WUR;

/* The header section of a message: bytes up to and including the blank line
 * (or all of data if none), capped at max. */
size_t dsn_header_len(const char *data, size_t len, size_t max);

#endif
