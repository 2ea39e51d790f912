/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_LIMITS_H
#define OUTBOX_LIMITS_H
/* Named protocol limits, in one place (RELIABILITY.md 4.1). */
#define SMTP_CMD_MAX 2048          /* command line incl. CRLF; RFC says 512, Postfix allows 2048 */
#define SMTP_REPLY_LINE_MAX 512    /* reply line incl. CRLF (RFC 5321 4.5.3.1.5) */
#define SMTP_REPLY_TEXT_MAX 2048   /* stored/logged text of one reply, lines joined */
#define SMTP_REPLY_MAX_LINES 100
#define SMTP_TEXT_LINE_MAX 1000    /* text line incl. CRLF */
#define SMTP_SEND_LINE_MAX 998     /* we fold body lines longer than this on output */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256          /* between the angle brackets */
#define SMTP_HOP_LIMIT 100         /* Received: headers (RELIABILITY.md decision 3) */
#define SMTP_ERROR_LIMIT 20        /* hard error limit (Postfix) */
#define SMTP_AUTH_LINE_MAX 12288   /* RFC 4954 4 */
#define HOSTNAME_MAX 255
#endif
