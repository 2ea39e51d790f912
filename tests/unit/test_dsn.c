/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 * dsn_build against golden files (tests/dsn/<name>.eml, CRLF, byte for
 * byte; OUTBOX_DSN_REGEN=1 rewrites them for review), plus properties
 * every output must have: CRLF only, no line over 998 octets, only our
 * own header fields in the top header and the MIME part headers, only
 * our boundary lines. Injection payloads in every peer-supplied value
 * must not change that structure (RELIABILITY.md B18, B20, A12).
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "outbox/buf.h"
#include "outbox/dsn.h"

#define OUT_MAX (1024 * 1024)

static const char orig_msg[] =
	"Received: from [192.0.2.7] (client.example.org [192.0.2.7])\r\n"
	"\tby mail.example.org (outbox) with ESMTP id 4f2a9c01d3e5\r\n"
	"\tfor <bob@example.net>; Mon, 3 Jun 2024 10:00:00 +0000\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: Lunch\r\n"
	"Date: Mon, 3 Jun 2024 09:59:58 +0000\r\n"
	"Message-ID: <lunch-1@example.org>\r\n"
	"\r\n"
	"Hi Bob, lunch at noon?\r\n";

static struct dsn_msg
base_msg(void)
{
	struct dsn_msg m = {
		.reporting_mta = "mail.example.org",
		.from = "MAILER-DAEMON@mail.example.org",
		.to = "alice@example.org",
		.queue_id = "4f2a9c01d3e5",
		.arrival_date = "Mon, 3 Jun 2024 10:00:00 +0000",
		.date = "Mon, 3 Jun 2024 10:05:00 +0000",
		.message_id = "<20240603100500.4f2a9c01d3e5@mail.example.org>",
		.boundary = "4f2a9c01d3e5.1717409100/mail.example.org",
		.headers = orig_msg,
		.headers_len = sizeof(orig_msg) - 1,
	};
	return m;
}

static const struct dsn_rcpt rcpt_bob = {
	.addr = "bob@example.net",
	.status = "5.1.1",
	.remote_mta = "mx.example.net",
	.diagnostic = "550 5.1.1 <bob@example.net>: Recipient address "
		      "rejected: User unknown in virtual mailbox table",
	.smtp_diagnostic = true,
};

static const struct dsn_rcpt rcpt_carol = {
	.addr = "carol@example.net",
	.status = "5.2.2",
	.remote_mta = "mx.example.net",
	.diagnostic = "552 5.2.2 Mailbox full",
	.smtp_diagnostic = true,
};

static const struct dsn_rcpt rcpt_expired = {
	.addr = "dave@example.com",
	.status = "4.4.7",
	.diagnostic = "delivery time expired: connect to mx.example.com"
		      "[198.51.100.25]:25: Connection timed out",
	.smtp_diagnostic = false,
};

static const struct dsn_rcpt rcpt_delayed = {
	.addr = "dave@example.com",
	.status = "4.4.1",
	.remote_mta = "mx.example.com",
	.diagnostic = "connect to mx.example.com[198.51.100.25]:25: "
		      "Connection timed out",
	.smtp_diagnostic = false,
};

/* ---- structure checks ---- */

static const char *const top_fields[] = {
	"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
	"MIME-Version", "Content-Type", "X-Outbox-Queue-ID", NULL,
};
static const char *const part_fields[] = {
	"Content-Description", "Content-Type", NULL,
};
static const char *const status_fields[] = {
	"Reporting-MTA", "X-Outbox-Queue-ID", "Arrival-Date",
	"Final-Recipient", "Action", "Status", "Remote-MTA",
	"Diagnostic-Code", "Will-Retry-Until", NULL,
};

/* A header-block line: a continuation, or one of the named fields. */
static bool
field_ok(const char *line, size_t n, const char *const *names)
{
	if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
		return true;
	for (size_t i = 0; names[i] != NULL; i++) {
		size_t k = strlen(names[i]);
		if (n > k && strncasecmp(line, names[i], k) == 0 &&
		    line[k] == ':')
			return true;
	}
	return false;
}

static void
check_crlf(const char *s, size_t len)
{
	size_t col = 0, maxcol = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			CHECK(i + 1 < len && s[i + 1] == '\n');
		} else if (s[i] == '\n') {
			CHECK(i > 0 && s[i - 1] == '\r');
			col = 0;
			continue;
		}
		if (s[i] != '\r' && ++col > maxcol)
			maxcol = col;
	}
	CHECK(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n');
	CHECK(maxcol <= 998);
}

enum sect { S_TOP, S_PREAMBLE, S_PART_HDR, S_PART_BODY, S_END };

/* Walk the lines of a DSN and check its MIME skeleton. parts is 2 or 3. */
static void
check_structure(const char *s, size_t len, const char *b, int parts)
{
	enum sect sect = S_TOP;
	int part = -1, closes = 0;
	size_t blen = strlen(b);

	check_crlf(s, len);
	for (const char *p = s; p < s + len;) {
		const char *e = strstr(p, "\r\n");
		CHECK(e != NULL);
		size_t n = (size_t)(e - p);
		CHECK(sect != S_END);
		if (n >= 2 + blen && p[0] == '-' && p[1] == '-' &&
		    memcmp(p + 2, b, blen) == 0) {
			bool close = n == 4 + blen && memcmp(p + n - 2, "--", 2) == 0;
			CHECK(n == 2 + blen || close);
			closes += close;
			part += !close;
			sect = close ? S_END : S_PART_HDR;
		} else if (sect == S_TOP) {
			if (n == 0)
				sect = S_PREAMBLE;
			else
				CHECK(field_ok(p, n, top_fields));
		} else if (sect == S_PART_HDR) {
			if (n == 0)
				sect = S_PART_BODY;
			else
				CHECK(field_ok(p, n, part_fields));
		} else if (sect == S_PART_BODY && part == 1 && n > 0) {
			CHECK(field_ok(p, n, status_fields));
		}
		p = e + 2;
	}
	CHECK_EQ(sect, S_END);
	CHECK_EQ(closes, 1);
	CHECK_EQ(part + 1, parts);
	CHECK(strcasestr(s, "\nX-Injected") == NULL);
}

/* ---- helpers ---- */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *data = malloc(OUT_MAX);
	CHECK(data != NULL);
	*len = fread(data, 1, OUT_MAX - 1, f);
	fclose(f);
	data[*len] = '\0';
	/* Survive a checkout that turned CRLF into LF: only if no CR at all. */
	if (memchr(data, '\r', *len) == NULL) {
		char *crlf = malloc(2 * *len + 1);
		size_t k = 0;
		CHECK(crlf != NULL);
		for (size_t i = 0; i < *len; i++) {
			if (data[i] == '\n')
				crlf[k++] = '\r';
			crlf[k++] = data[i];
		}
		crlf[k] = '\0';
		free(data);
		data = crlf;
		*len = k;
	}
	return data;
}

static void
golden(const char *name, const struct dsn_msg *m, const struct dsn_rcpt *r,
       size_t n)
{
	struct buf out;
	char path[1024];
	const char *dir = getenv("OUTBOX_TEST_DATA");

	CHECK(dir != NULL);
	snprintf(path, sizeof(path), "%s/dsn/%s.eml", dir, name);
	buf_init(&out, OUT_MAX);
	CHECK_EQ(dsn_build(m, r, n, &out), 0);
	check_structure(out.data, out.len, m->boundary, m->headers ? 3 : 2);
	if (getenv("OUTBOX_DSN_REGEN") != NULL) {
		FILE *f = fopen(path, "wb");
		CHECK(f != NULL);
		CHECK_EQ(fwrite(out.data, 1, out.len, f), out.len);
		fclose(f);
	}
	size_t len = 0;
	char *want = read_file(path, &len);
	if (want == NULL)
		CHECK_FAIL("cannot read %s", path);
	if (len != out.len || memcmp(want, out.data, len) != 0)
		CHECK_FAIL("%s differs from output:\n%s", path, out.data);
	check_count++;
	free(want);
	buf_free(&out);
}

/* Build, check the skeleton, return the output (caller frees). */
static char *
build_ok(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n,
	 size_t *len)
{
	struct buf out;
	buf_init(&out, OUT_MAX);
	CHECK_EQ(dsn_build(m, r, n, &out), 0);
	check_structure(out.data, out.len, m->boundary,
			m->headers && m->headers_len ? 3 : 2);
	if (len != NULL)
		*len = out.len;
	return out.data;
}

static int
build_rc(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n)
{
	struct buf out;
	buf_init(&out, OUT_MAX);
	int rc = dsn_build(m, r, n, &out);
	if (rc != 0)
		CHECK_EQ(out.len, 0);
	buf_free(&out);
	return rc;
}

/* The text/rfc822-headers part body of a DSN, as a new string. */
static char *
orig_part(const char *dsn, const char *b)
{
	const char *p = strstr(dsn, "text/rfc822-headers\r\n\r\n");
	char close[128];
	CHECK(p != NULL);
	p += strlen("text/rfc822-headers\r\n\r\n");
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", b);
	const char *e = strstr(p, close);
	CHECK(e != NULL);
	size_t n = (size_t)(e - p);
	char *s = malloc(n + 1);
	CHECK(s != NULL);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* ---- tests ---- */

static void
test_golden(void)
{
	struct dsn_msg m = base_msg();
	struct dsn_rcpt two[] = { rcpt_bob, rcpt_carol };

	golden("failed_one", &m, &rcpt_bob, 1);
	golden("failed_two", &m, two, 2);
	golden("expired", &m, &rcpt_expired, 1);
	m.delayed = true;
	m.retry_until = "Sat, 8 Jun 2024 10:00:00 +0000";
	golden("delayed", &m, &rcpt_delayed, 1);
}

static void
test_header_len(void)
{
	CHECK_EQ(dsn_header_len("A: 1\r\n\r\nbody", 12, 100), 8);
	CHECK_EQ(dsn_header_len("A: 1\n\nbody", 10, 100), 6);
	CHECK_EQ(dsn_header_len("A: 1\r\n\nbody", 11, 100), 7);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2", 11, 100), 11);
	CHECK_EQ(dsn_header_len("\r\nbody", 6, 100), 2);
	CHECK_EQ(dsn_header_len("\nbody", 5, 100), 1);
	CHECK_EQ(dsn_header_len("", 0, 100), 0);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2\r\n\r\nx", 15, 14), 14);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2\r\n\r\nx", 15, 13), 12);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2\r\n\r\nx", 15, 10), 6);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2\r\n\r\nx", 15, 3), 0);
	CHECK_EQ(dsn_header_len("A: 1\r\nB: 2", 11, 8), 6);
	/* A blank line in the middle of a line is not one: "\r" alone. */
	CHECK_EQ(dsn_header_len("A: 1\r\r\nB\r\n\r\n", 12, 100), 12);
}

static void
test_header_cap(void)
{
	static char h[70000];
	size_t n = 0;
	/* 1,400 lines of 50 bytes: 70,000 bytes, no blank line. */
	for (int i = 0; n + 50 <= sizeof(h); i++) {
		int k = snprintf(h + n, sizeof(h) - n, "X-Hdr-%05d: %035d\r\n",
				 i, 0);
		CHECK_EQ(k, 50);
		n += 50;
	}
	CHECK_EQ(dsn_header_len(h, n, DSN_HEADERS_MAX), DSN_HEADERS_MAX);
	CHECK_EQ(dsn_header_len(h, n, DSN_HEADERS_MAX - 1),
		 DSN_HEADERS_MAX - 50);

	struct dsn_msg m = base_msg();
	m.headers = h;
	m.headers_len = n;
	char *dsn = build_ok(&m, &rcpt_bob, 1, NULL);
	char *part = orig_part(dsn, m.boundary);
	CHECK_EQ(strlen(part), DSN_HEADERS_MAX);
	CHECK_MEM_EQ(part, h, DSN_HEADERS_MAX);
	/* Shift by 7 bytes: the cut falls back to a whole line. */
	m.headers = h + 7;
	m.headers_len = n - 7;
	free(dsn);
	free(part);
	dsn = build_ok(&m, &rcpt_bob, 1, NULL);
	part = orig_part(dsn, m.boundary);
	size_t plen = strlen(part);
	CHECK(plen <= DSN_HEADERS_MAX && plen > DSN_HEADERS_MAX - 50);
	CHECK_MEM_EQ(part + plen - 2, "\r\n", 2);
	CHECK_MEM_EQ(part + plen - 50, "X-Hdr-", 6);
	free(dsn);
	free(part);
}

static void
test_header_normalise(void)
{
	static const char h[] = "A: 1\rB: 2\nC: 3\r\n\tcont\r\r\nD: \x01\x80z"
				"\r\n\r\nbody\r\n";
	struct dsn_msg m = base_msg();
	m.headers = h;
	m.headers_len = sizeof(h) - 1;
	char *dsn = build_ok(&m, &rcpt_bob, 1, NULL);
	char *part = orig_part(dsn, m.boundary);
	CHECK_STR_EQ(part, "A: 1\r\nB: 2\r\nC: 3\r\n\tcont\r\nD: ??z\r\n");
	free(dsn);
	free(part);

	/* No blank line and no final line end. */
	m.headers = "Subject: x";
	m.headers_len = 10;
	dsn = build_ok(&m, &rcpt_bob, 1, NULL);
	part = orig_part(dsn, m.boundary);
	CHECK_STR_EQ(part, "Subject: x\r\n");
	free(dsn);
	free(part);

	/* Without headers the third part is left out. */
	m.headers = NULL;
	m.headers_len = 0;
	free(build_ok(&m, &rcpt_bob, 1, NULL));
}

static void
test_header_long_line(void)
{
	static char h[3100];
	memcpy(h, "Subject: ", 9);
	memset(h + 9, 'y', 2991);
	memcpy(h + 3000, "\r\n\r\n", 4);
	struct dsn_msg m = base_msg();
	m.headers = h;
	m.headers_len = 3004;
	char *dsn = build_ok(&m, &rcpt_bob, 1, NULL);
	char *part = orig_part(dsn, m.boundary);
	/* 3,000 octets: 998 + 997 + 997 + 8, joined by CRLF SP. */
	size_t k = 0;
	for (const char *p = part; *p != '\0'; p++)
		if (*p != '\r' && *p != '\n' && !(p > part && p[-1] == '\n'))
			CHECK_EQ(*p, h[k++]);
	CHECK_EQ(k, 3000);
	CHECK(strstr(part, "\r\n y") != NULL);
	free(dsn);
	free(part);
}

static void
test_header_boundary(void)
{
	struct dsn_msg m = base_msg();
	m.boundary = "BOUNDARY";
	const char *bad[] = {
		"A: 1\r\n--BOUNDARY\r\nB: 2\r\n\r\n",
		"A: 1\n--BOUNDARY--\n\n",
		"A: 1\r--BOUNDARY\r\n\r\n",
		"Subject: BOUNDARY\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.headers = bad[i];
		m.headers_len = strlen(bad[i]);
		CHECK_EQ(build_rc(&m, &rcpt_bob, 1), -EINVAL);
	}
	/* In the body it is cut off with the body: fine. */
	m.headers = "A: 1\r\n\r\n--BOUNDARY\r\nX-Injected: yes\r\n";
	m.headers_len = strlen(m.headers);
	free(build_ok(&m, &rcpt_bob, 1, NULL));
}

static const char *const payloads[] = {
	"x\r\nX-Injected: yes",
	"\r\n--BOUNDARY\r\n",
	"\r\n--BOUNDARY--\r\nX-Injected: yes\r\n\r\n",
	"a\rX-Injected: yes\nX-Injected: yes\r\n\r\nbody",
	"\n\n--BOUNDARY\nContent-Type: text/html\n\n<b>x</b>",
	"  \t \r\n  ",
};

static void
test_injection(void)
{
	struct dsn_msg m = base_msg();
	m.boundary = "BOUNDARY";
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		const char *p = payloads[i];
		struct dsn_rcpt r = rcpt_bob;
		r.diagnostic = p;
		r.remote_mta = p;
		free(build_ok(&m, &r, 1, NULL));
		r.smtp_diagnostic = false;
		m.delayed = true;
		free(build_ok(&m, &r, 1, NULL));
		m.delayed = false;
		/* Addresses: only when something printable is left. */
		char addr[128];
		snprintf(addr, sizeof(addr), "u%s@x", p);
		r.addr = addr;
		m.to = addr;
		free(build_ok(&m, &r, 1, NULL));
		m.to = base_msg().to;
	}
}

static void
test_long_diagnostic(void)
{
	static char diag[100001];
	struct dsn_msg m = base_msg();
	struct dsn_rcpt r = rcpt_bob;
	size_t len;

	/* No spaces at all: hard folds, still no line over 998. */
	memset(diag, 'x', sizeof(diag) - 1);
	r.diagnostic = diag;
	char *dsn = build_ok(&m, &r, 1, &len);
	size_t xs = 0;
	for (size_t i = 0; i < len; i++)
		xs += dsn[i] == 'x';
	/* Cut at DSN_DIAG_MAX, in both the text and the status part. */
	CHECK(xs >= 2 * DSN_DIAG_MAX && xs < 2 * DSN_DIAG_MAX + 100);
	free(dsn);

	/* Words: wrapped at 76 columns everywhere. */
	for (size_t i = 0; i < sizeof(diag) - 1; i++)
		diag[i] = i % 7 == 6 ? ' ' : 'w';
	dsn = build_ok(&m, &r, 1, &len);
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		col = dsn[i] == '\n' ? 0 : col + (dsn[i] != '\r');
		CHECK(col <= 76);
	}
	free(dsn);
}

static void
test_invalid(void)
{
	struct dsn_msg m = base_msg();
	struct dsn_rcpt r = rcpt_bob;
	const char *bad_status[] = { "5.1", "6.1.1", "5.1.1x", "5.1234.1",
				     "", "5..1", "x.1.1", "5.1.1 ",
				     "5.1x1", "5.1 1", " 5.1.1" };

	CHECK_EQ(build_rc(&m, &r, 1), 0);
	for (size_t i = 0; i < sizeof(bad_status) / sizeof(bad_status[0]); i++) {
		r.status = bad_status[i];
		CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	}
	r.status = NULL;
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	r.status = "2.0.0";
	CHECK_EQ(build_rc(&m, &r, 1), 0);
	r.status = "5.123.123";
	CHECK_EQ(build_rc(&m, &r, 1), 0);
	r = rcpt_bob;
	CHECK_EQ(build_rc(&m, &r, 0), -EINVAL);
	CHECK_EQ(build_rc(&m, NULL, 1), -EINVAL);
	r.addr = NULL;
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	r.addr = " \r\n";
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	r = rcpt_bob;
	m.to = "";   /* never bounce to the null sender (B19) */
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	m.to = NULL;
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	m = base_msg();
	m.date = "Mon\r\nX-Injected: yes";
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	m = base_msg();
	m.from = NULL;
	CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	const char *bad_b[] = {
		"", "a b", "a\"b", "a\r\nb",
		"12345678901234567890123456789012345678901234567890123456789012345678901",
	};
	for (size_t i = 0; i < sizeof(bad_b) / sizeof(bad_b[0]); i++) {
		m = base_msg();
		m.boundary = bad_b[i];
		CHECK_EQ(build_rc(&m, &r, 1), -EINVAL);
	}
	m.boundary = "1234567890123456789012345678901234567890123456789012345678901234567890";
	CHECK_EQ(build_rc(&m, &r, 1), 0);
}

static void
test_nobufs(void)
{
	struct dsn_msg m = base_msg();
	struct dsn_rcpt two[] = { rcpt_bob, rcpt_carol };
	size_t full;
	char *ref = build_ok(&m, two, 2, &full);

	/* Every maximum below the size fails cleanly and keeps the prefix. */
	for (size_t max = 4; max < full + 4; max += 7) {
		struct buf out;
		buf_init(&out, max);
		CHECK_EQ(buf_puts(&out, "keep"), 0);
		CHECK_EQ(dsn_build(&m, two, 2, &out), -ENOBUFS);
		CHECK_EQ(out.len, 4);
		CHECK_STR_EQ(out.data, "keep");
		buf_free(&out);
	}
	struct buf out;
	buf_init(&out, full + 4);
	CHECK_EQ(buf_puts(&out, "keep"), 0);
	CHECK_EQ(dsn_build(&m, two, 2, &out), 0);
	CHECK_MEM_EQ(out.data + 4, ref, full);
	buf_free(&out);
	free(ref);
}

/* Pseudo-random peer text (fixed seed, bounded count). */
static void
test_random(void)
{
	uint32_t seed = 12345;
	static char diag[600], addr[80], hdr[600];
	struct dsn_msg m = base_msg();
	m.boundary = "b0";
	for (int round = 0; round < 400; round++) {
		char *bufs[] = { diag, addr, hdr };
		size_t sizes[] = { sizeof(diag), sizeof(addr), sizeof(hdr) };
		for (int k = 0; k < 3; k++) {
			for (size_t i = 0; i + 1 < sizes[k]; i++) {
				seed = seed * 1103515245u + 12345u;
				unsigned v = (seed >> 16) & 0xff;
				/* Bias toward the bytes that matter. */
				bufs[k][i] = v < 64 ? "\r\n -:X"[v % 6] : (char)v;
				if (bufs[k][i] == '\0')
					bufs[k][i] = ' ';
			}
			bufs[k][sizes[k] - 1] = '\0';
		}
		addr[0] = 'u';
		struct dsn_rcpt r = { .addr = addr, .status = "5.7.1",
				      .remote_mta = diag, .diagnostic = diag,
				      .smtp_diagnostic = round & 1 };
		m.to = addr;
		m.delayed = round & 2;
		m.headers = hdr;
		m.headers_len = sizeof(hdr) - 1;
		struct buf out;
		buf_init(&out, OUT_MAX);
		int rc = dsn_build(&m, &r, 1, &out);
		CHECK(rc == 0 || rc == -EINVAL);
		if (rc == 0)
			check_structure(out.data, out.len, m.boundary,
					m.headers_len ? 3 : 2);
		buf_free(&out);
	}
}

int
main(void)
{
	test_golden();
	test_header_len();
	test_header_cap();
	test_header_normalise();
	test_header_long_line();
	test_header_boundary();
	test_injection();
	test_long_diagnostic();
	test_invalid();
	test_nobufs();
	test_random();
	CHECK_DONE();
}
