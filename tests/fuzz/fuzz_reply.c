/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the SMTP reply parser (smtp_reply.h), fed the input
 *	as lines (split at LF, one CR before it removed); a new reply starts
 *	after each DONE or ERROR.
 *
 *	Invariants: a finished reply has a code 200..599, 1..100 lines, an
 *	enhanced code that is "" or shaped [245].d+.d+ with the class digit
 *	of the code, text of printable ASCII and LF only, NUL-terminated in
 *	its array; the summary is NUL-terminated in any buffer size.
 */
#include "fuzz.h"
#include "outbox/smtp_reply.h"

static bool
freply_enh_ok(const struct smtp_reply *r)
{
	size_t n = strnlen(r->enh, sizeof(r->enh));
	if (n == 0)
		return true;
	if (n >= sizeof(r->enh) || n < 5 || r->enh[1] != '.')
		return false;
	if (r->enh[0] != '0' + r->code / 100)
		return false;
	/* class "." digits "." digits: never a cut-off code. */
	size_t run = 0, dots = 0;
	for (size_t i = 2; i <= n; i++) {
		if (i == n || r->enh[i] == '.') {
			if (run < 1)
				return false;
			dots++;
			run = 0;
		} else if (r->enh[i] >= '0' && r->enh[i] <= '9') {
			run++;
		} else {
			return false;
		}
	}
	return dots == 2;
}

static void
freply_check(const struct smtp_reply *r, enum smtp_reply_status st,
	     unsigned sumsize)
{
	size_t tl = strnlen(r->text, sizeof(r->text));
	FUZZ_ASSERT(tl < sizeof(r->text));
	if (st != REPLY_DONE)
		return;
	FUZZ_ASSERT(r->code >= 200 && r->code <= 599);
	FUZZ_ASSERT(r->nlines >= 1 && r->nlines <= SMTP_REPLY_MAX_LINES);
	FUZZ_ASSERT(freply_enh_ok(r));
	FUZZ_ASSERT(fuzz_printable(r->text, tl, true));
	char sum[SMTP_REPLY_TEXT_MAX + 32];
	size_t ss = 1 + sumsize % sizeof(sum);
	memset(sum, 'x', sizeof(sum));
	smtp_reply_summary(r, sum, ss);
	FUZZ_ASSERT(memchr(sum, '\0', ss) != NULL);
	FUZZ_ASSERT(strchr(sum, '\n') == NULL);
}

static void
fuzz_reply(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned sumsize = fuzz_byte(&in) * 37u;
	struct smtp_reply r;
	smtp_reply_init(&r);
	while (in.n > 0) {
		size_t n;
		char *line = fuzz_field(&in, '\n', &n);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		enum smtp_reply_status st = smtp_reply_feed(&r, line, n);
		freply_check(&r, st, sumsize++);
		if (st != REPLY_MORE)
			smtp_reply_init(&r);
		free(line);
	}
}

FUZZ_ENTRY(fuzz_reply)
