/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_REPLY_H
#define OUTBOX_SMTP_REPLY_H
/*
 * Strict parser for SMTP replies (RFC 5321 4.2), fed one line at a time
 * (without its CRLF). Multi-line replies must repeat the same code; text is
 * sanitized to printable ASCII and capped at SMTP_REPLY_TEXT_MAX; more than
 * SMTP_REPLY_MAX_LINES lines is an error. Pure code.
 */
#include <stddef.h>

#include "outbox/limits.h"

/*
 * Longest line the parser accepts (without CRLF). Longer than
 * SMTP_REPLY_LINE_MAX on purpose: RFC 4954 4 allows 12288-octet AUTH
 * exchange lines ("334 " + challenge), and a long but well-formed final
 * reply must not turn a delivered message into a duplicate. Anything
 * longer is REPLY_ERROR.
 */
#define SMTP_REPLY_PARSE_MAX (SMTP_AUTH_LINE_MAX + 8)

struct smtp_reply {
	int code;                        /* 200..599 */
	char enh[16];                    /* "4.2.1" or "" when absent */
	char text[SMTP_REPLY_TEXT_MAX];  /* sanitized lines joined with "\n", code prefixes removed */
	size_t nlines;
};

enum smtp_reply_status { REPLY_MORE, REPLY_DONE, REPLY_ERROR };

/* Start a new reply; call before the first line of each reply. */
void smtp_reply_init(struct smtp_reply *r);
/* Feed one line (len excludes CRLF). REPLY_ERROR leaves an explanation in r->text. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line,
				       size_t len);
/* The first line of text for logs: "250 2.0.0 Ok". */
void smtp_reply_summary(const struct smtp_reply *r, char *out, size_t size);

#endif
