/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_LOCAL_MSG_H
#define OUTBOX_LOCAL_MSG_H
/*
 * Normaliser for a message read by the sendmail command (issue 5, G5-G7,
 * G10, A24). Pure code: fed chunks of stdin, it appends the message to be
 * spooled (CRLF lines, not dot-stuffed) to a caller's bounded struct buf.
 * Any split of the input into chunks gives the same output.
 *
 * Policy:
 * - LF, CRLF and a bare CR (not followed by LF) all end a line; each is
 *   written as CRLF (decision 1: the sendmail command always normalises).
 *   So "a\rb" is two lines and "\r\r\n" is two line ends. A final line
 *   without a line end gets CRLF.
 * - A first line starting with "From " (mbox separator) is dropped.
 * - Without ignore_dots, a line that is exactly "." ends the message and
 *   the rest of the input is ignored; with it, the line is text. Other
 *   lines starting with '.' are kept as they are (no stuffing here).
 * - A NUL byte is an error (LOCAL_MSG_E_NUL): it cannot go over SMTP.
 * - The header section (up to the first empty line, or up to the first
 *   line that is neither a header field nor a continuation) is held back,
 *   at most header_max bytes, so missing fields can be added at its end.
 *   When the body starts with a non-header line, an empty line is
 *   inserted before it. Presence of Date, Message-ID, From, To, Cc, Bcc,
 *   Sender and Reply-To is recorded (case-insensitive names).
 * - With extract_rcpts (-t), addresses in To, Cc and Bcc (folded lines
 *   unfolded; RFC 5322 lists with display names, quoted strings,
 *   comments, angle addresses, groups, bare names) are collected, and
 *   Bcc fields with their continuation lines are removed. Resent-* fields
 *   are not used. Without extract_rcpts Bcc is kept (A24).
 * - Missing Date, Message-ID and From are added once, at the end of the
 *   header section, from struct local_msg_fixup (a NULL member: not added).
 *   A fix-up value with CR or LF is an error (LOCAL_MSG_E_FIXUP).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"

#define LOCAL_MSG_HEADER_MAX (1u << 20)
#define LOCAL_MSG_RCPTS_MAX 10000

enum local_msg_status {
	LOCAL_MSG_OK = 0,
	LOCAL_MSG_E_HEADER_BIG, /* header section over header_max */
	LOCAL_MSG_E_NUL,        /* a NUL byte in the input */
	LOCAL_MSG_E_OUTPUT,     /* out (or a holding buffer) is full */
	LOCAL_MSG_E_RCPTS,      /* more than LOCAL_MSG_RCPTS_MAX -t addresses */
	LOCAL_MSG_E_FIXUP,      /* a fix-up value contains CR or LF */
};

/* Header fields whose presence is tracked (bits of local_msg.present). */
enum local_msg_hdr {
	LOCAL_MSG_H_DATE = 1u << 0,
	LOCAL_MSG_H_MESSAGE_ID = 1u << 1,
	LOCAL_MSG_H_FROM = 1u << 2,
	LOCAL_MSG_H_TO = 1u << 3,
	LOCAL_MSG_H_CC = 1u << 4,
	LOCAL_MSG_H_BCC = 1u << 5,
	LOCAL_MSG_H_SENDER = 1u << 6,
	LOCAL_MSG_H_REPLY_TO = 1u << 7,
};

struct local_msg_fixup {
	const char *date;       /* "Tue, 1 Jul 2025 10:00:00 +0000", or NULL */
	const char *message_id; /* "<id@host>" (brackets added if absent), or NULL */
	const char *from_addr;  /* "root@host.test", or NULL: no From added */
	const char *full_name;  /* display name for the added From, or NULL */
};

struct local_msg_opts {
	bool ignore_dots;       /* -i / -oi */
	bool extract_rcpts;     /* -t: collect To/Cc/Bcc, strip Bcc */
	size_t header_max;      /* 0 = LOCAL_MSG_HEADER_MAX */
	struct local_msg_fixup fixup;
};

struct local_msg {
	struct local_msg_opts opts;
	struct buf hdr;          /* held-back header section */
	struct buf rcpts;        /* NUL-separated -t addresses */
	size_t nrcpts;
	unsigned present;        /* enum local_msg_hdr bits */
	unsigned added;          /* fields added by the fix-up */
	uint64_t in_bytes;       /* input bytes fed, including ignored ones */
	uint64_t out_bytes;      /* bytes appended to out */
	bool eightbit;           /* some output byte >= 0x80 */
	bool done;               /* "." seen or finished: input now ignored */
	enum local_msg_status error; /* sticky */
	/* parser state */
	bool in_body;
	bool first_line;
	bool bol;                /* at the beginning of a line */
	bool skip_lf;            /* last byte was CR: an LF now is its pair */
	bool dot_pending;        /* body: a '.' at BOL not yet written */
	size_t line_start;       /* header: offset of the current line in hdr */
	size_t field_start;      /* header: offset of the open field */
	unsigned field;          /* header: enum local_msg_hdr of it, or 0 */
	bool field_open;
};

/* The opts are copied; fix-up strings must outlive m. */
void local_msg_init(struct local_msg *m, const struct local_msg_opts *opts);
void local_msg_free(struct local_msg *m);
/*
 * Feed in[0..n); output is appended to out. On error the status is
 * sticky and later calls return it; out may hold a partial message
 * (the caller discards it).
 */
enum local_msg_status local_msg_feed(struct local_msg *m, const char *in,
				     size_t n, struct buf *out);
/* End of input: flush the header section and complete the last line. */
enum local_msg_status local_msg_finish(struct local_msg *m, struct buf *out);

/* -t recipients: first with prev == NULL, then the previous result. */
const char *local_msg_rcpt_next(const struct local_msg *m, const char *prev);

/*
 * Append to out the fields to add for a header section whose present
 * bits are `present`: "Date:", "Message-ID:", "From:" lines, CRLF each,
 * only for members of fx that are non-NULL and fields not present.
 * *added gets the bits written (may be NULL). 0, -EINVAL (CR/LF in a
 * value) or a buf error.
 */
int local_msg_fixup_headers(unsigned present, const struct local_msg_fixup *fx,
			    struct buf *out, unsigned *added);

/*
 * Split an RFC 5322 address-list field value v[0..n) (unfolded or not)
 * into addresses; cb gets each addr-spec without brackets or comments.
 * Group names are dropped; empty groups give nothing. Returns the count,
 * or the first negative value cb returned.
 */
int local_msg_parse_addrs(const char *v, size_t n,
			  int (*cb)(void *arg, const char *addr, size_t len),
			  void *arg);

const char *local_msg_status_str(enum local_msg_status st);
/* The sysexits code for a status: EX_DATAERR, EX_SOFTWARE... 0 for OK. */
int local_msg_status_exit(enum local_msg_status st);

#endif
