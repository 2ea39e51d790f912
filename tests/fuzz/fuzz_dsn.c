/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the DSN builder (dsn.h), with peer-controlled parts
 *	(original sender, recipients, remote host, diagnostics, original
 *	headers) made of the input.
 *
 *	Input: a mode byte (delayed, queue id, retry date, fuzzed boundary,
 *	fuzzed own host name, smtp diagnostics), a recipient count byte,
 *	then NUL-separated fields: to, boundary, host name, then per
 *	recipient addr, status, remote MTA, diagnostic; the rest is the
 *	original message (its header section via dsn_header_len).
 *
 *	Invariants: on failure out is unchanged; on success the DSN is CRLF
 *	lines of at most 998 octets, 7-bit printable (plus tab), its header
 *	section has only the fields dsn.c writes, each once (no injected
 *	header), and no body line but our delimiters starts with "--" and
 *	the boundary: 2 or 3 parts and one close delimiter (no injected
 *	MIME part).
 */
#include "fuzz.h"
#include "outbox/dsn.h"

#define FDSN_RCPTS 4

static const char *const fdsn_fields[] = {
	"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
	"MIME-Version", "Content-Type", "X-Outbox-Queue-ID",
};
#define FDSN_NFIELDS (sizeof(fdsn_fields) / sizeof(fdsn_fields[0]))

/* The top header section: known fields, once each, or continuations. */
static size_t
fdsn_check_head(const char *p, size_t n)
{
	unsigned seen[FDSN_NFIELDS] = { 0 };
	size_t i = 0;
	while (i < n) {
		const char *l = p + i;
		size_t len = (size_t)((const char *)memchr(l, '\r', n - i) - l);
		i += len + 2;
		if (len == 0)
			return i;
		if (l[0] == ' ' || l[0] == '\t')
			continue;
		const char *colon = memchr(l, ':', len);
		FUZZ_ASSERT(colon != NULL);
		size_t k = 0;
		while (k < FDSN_NFIELDS &&
		       !(strlen(fdsn_fields[k]) == (size_t)(colon - l) &&
			 memcmp(fdsn_fields[k], l, (size_t)(colon - l)) == 0))
			k++;
		FUZZ_ASSERT(k < FDSN_NFIELDS && seen[k]++ == 0);
	}
	FUZZ_ASSERT(!"no end of the header section");
	return n;
}

/* In the body only our delimiter lines start with "--" boundary. */
static void
fdsn_check_body(const char *p, size_t n, const char *bnd)
{
	size_t bl = strlen(bnd), parts = 0, closes = 0;
	for (size_t i = 0; i < n;) {
		const char *l = p + i;
		size_t len = (size_t)((const char *)memchr(l, '\r', n - i) - l);
		i += len + 2;
		if (len < 2 + bl || l[0] != '-' || l[1] != '-' ||
		    memcmp(l + 2, bnd, bl) != 0)
			continue;
		/* A line starting "--" boundary is a delimiter to MIME
		 * readers (RFC 2046 5.1.1): it must be one of ours. */
		if (len == 2 + bl)
			parts++;
		else if (len == 4 + bl && l[2 + bl] == '-' && l[3 + bl] == '-')
			closes++;
		else
			FUZZ_ASSERT(!"a line looks like a MIME delimiter");
	}
	FUZZ_ASSERT(parts == 2 || parts == 3);
	FUZZ_ASSERT(closes == 1);
}

static void
fdsn_check(const char *p, size_t n, const char *bnd)
{
	FUZZ_ASSERT(fuzz_crlf_lines(p, n, 998, false));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		FUZZ_ASSERT(c == '\r' || c == '\n' || c == '\t' ||
			    (c >= 0x20 && c < 0x7f));
	}
	size_t body = fdsn_check_head(p, n);
	fdsn_check_body(p + body, n - body, bnd);
}

static void
fuzz_dsn(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_byte(&in);
	size_t nr = fuzz_byte(&in) % FDSN_RCPTS + 1;
	char *to = fuzz_field(&in, 0, NULL);
	char *bnd = fuzz_field(&in, 0, NULL);
	char *host = fuzz_field(&in, 0, NULL);
	char *f[FDSN_RCPTS][4];
	struct dsn_rcpt r[FDSN_RCPTS];
	for (size_t i = 0; i < nr; i++) {
		for (int k = 0; k < 4; k++)
			f[i][k] = fuzz_field(&in, 0, NULL);
		r[i] = (struct dsn_rcpt){
			.addr = f[i][0],
			.status = (mode & 64) ? f[i][1] : "5.1.1",
			.remote_mta = f[i][2][0] ? f[i][2] : NULL,
			.diagnostic = f[i][3][0] ? f[i][3] : NULL,
			.smtp_diagnostic = (mode >> 5) & 1,
		};
	}
	struct dsn_msg m = {
		.reporting_mta = (mode & 16) ? host : "mx.test",
		.from = "MAILER-DAEMON@mx.test",
		.to = to,
		.queue_id = (mode & 2) ? "0123456789ABCDEF" : NULL,
		.arrival_date = "Thu, 1 Jan 2026 00:00:00 +0000",
		.date = "Fri, 2 Jan 2026 00:00:00 +0000",
		.message_id = "<dsn.0123456789ABCDEF@mx.test>",
		.boundary = (mode & 8) ? bnd : "=_outbox_fuzz_0",
		.delayed = mode & 1,
		.headers = (const char *)in.p,
		.headers_len = dsn_header_len((const char *)in.p, in.n,
					      DSN_HEADERS_MAX),
		.retry_until = (mode & 4) ? "Sat, 3 Jan 2026 00:00:00 +0000" : NULL,
	};
	FUZZ_ASSERT(m.headers_len <= in.n);
	struct buf out;
	buf_init(&out, 1 << 22);
	if (buf_puts(&out, "PREFIX") != 0)
		abort();
	if (dsn_build(&m, r, nr, &out) == 0) {
		FUZZ_ASSERT(memcmp(out.data, "PREFIX", 6) == 0);
		fdsn_check(out.data + 6, out.len - 6, m.boundary);
	} else {
		FUZZ_ASSERT(out.len == 6 && memcmp(out.data, "PREFIX", 6) == 0);
	}
	buf_free(&out);
	for (size_t i = 0; i < nr; i++)
		for (int k = 0; k < 4; k++)
			free(f[i][k]);
	free(to);
	free(bnd);
	free(host);
}

FUZZ_ENTRY(fuzz_dsn)
