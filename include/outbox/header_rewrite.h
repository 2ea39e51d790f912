/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_HEADER_REWRITE_H
#define OUTBOX_HEADER_REWRITE_H
/*
 * Header rewriting for locally submitted mail ([rewrite], issue 5), as a
 * streaming stage between the message source (SMTP DATA, a maildrop
 * file) and the spool. Pure code.
 *
 * The stage holds back the header section (the leading lines that are
 * header fields or their continuations), at most hold_max bytes, and
 * then writes it out rewritten:
 *  - bare names in From, To, Cc, Bcc, Reply-To and Sender get "@domain"
 *    (qualify_header: malformed values are left alone);
 *  - with force_from set and from_rewrite on, every From field becomes
 *    "From: <force_from>", and, unless the message has a Reply-To, the
 *    first original From value (qualified) is kept as "Reply-To:";
 *  - missing Date, Message-ID and From are added at the end of the fields
 *    from fixup (local_msg_fixup_headers).
 * Everything after the header section passes through byte for byte. A
 * header section larger than hold_max passes through unchanged (a header
 * bomb is not worth rewriting; the listener's limits apply to it).
 * Any split of the input into chunks gives the same output.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/buf.h"
#include "outbox/local_msg.h"

#define HEADER_REWRITE_HOLD_MAX (256u * 1024u)

struct header_rewrite_opts {
	const char *domain;       /* qualify bare names; NULL/"": don't */
	const char *force_from;   /* [rewrite] from, or NULL */
	bool from_rewrite;        /* from_header = rewrite */
	struct local_msg_fixup fixup; /* strings must outlive the stage */
	size_t hold_max;          /* 0 = HEADER_REWRITE_HOLD_MAX */
};

struct header_rewrite {
	struct header_rewrite_opts opts;
	struct buf hold;          /* the header section so far */
	size_t scanned;           /* hold bytes already classified */
	bool passthrough;         /* header written: copy the rest */
	bool gave_up;             /* the header was too big: left unchanged */
	unsigned changed;         /* fields rewritten or added */
};

/* opts is copied; its strings are borrowed. */
void header_rewrite_init(struct header_rewrite *h,
			 const struct header_rewrite_opts *opts);
void header_rewrite_free(struct header_rewrite *h);
/* Feed in[0..n); output goes to out. 0, or a buf error (-ENOBUFS,
 * -ENOMEM), or -EINVAL (a fix-up value with CR or LF). */
int header_rewrite_feed(struct header_rewrite *h, const char *in, size_t n,
			struct buf *out);
/* End of the message: write what is still held. Same returns. */
int header_rewrite_finish(struct header_rewrite *h, struct buf *out);

/*
 * The rewriting itself, for one complete header section hdr[0..n) (fields
 * only, each line with its line end, no empty line). Appends the result
 * to out; returns the number of fields changed or added, or a negative
 * error as above (out may hold part of the result).
 */
int header_rewrite_section(const char *hdr, size_t n,
			   const struct header_rewrite_opts *opts,
			   struct buf *out);

#endif
