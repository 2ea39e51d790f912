/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 * RFC 3464 delivery status notifications inside an RFC 6522
 * multipart/report: a human text part, a message/delivery-status part and
 * the original header section as text/rfc822-headers. Pure code: the
 * caller passes every variable part (dates, ids, the boundary), so the
 * output is testable byte for byte. The fields are the ones Postfix's
 * bounce_notify_util.c emits; the wording is ours.
 *
 * Invariant: nothing that came from outside can start a line of its own.
 * Peer text is printable ASCII with single spaces (dsn_clean); folding
 * puts white space first on every continuation line (dsn_fold), so peer
 * text can begin neither a header line nor a "--boundary" line, and no
 * line is longer than 998 octets. The original headers are copied with
 * CRLF line ends and are refused (-EINVAL) if they contain the boundary.
 */
#include "outbox/dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "outbox/str.h"

#define DSN_WRAP 76       /* preferred line width */
#define DSN_LINE_MAX 998  /* RFC 5322 2.1.1, CRLF not counted */
#define DSN_TEXT_MAX (DSN_DIAG_MAX + 2 * DSN_FIELD_MAX + 64)

#define DSN_SUBJECT_FAILED "Undelivered Mail Returned to Sender"
#define DSN_SUBJECT_DELAYED "Delayed Mail (still being retried)"

static const char dsn_text_failed[] =
	"I'm sorry to have to inform you that your message could not\r\n"
	"be delivered to one or more recipients. The reasons are given\r\n"
	"below.\r\n";

static const char dsn_text_delayed[] =
	"This is a warning only; you do not need to resend your message.\r\n"
	"\r\n"
	"Your message could not yet be delivered to one or more\r\n"
	"recipients. The mail system will keep trying";

static const char dsn_text_tail[] =
	"\r\n"
	"For further assistance, please send mail to postmaster. If you\r\n"
	"do so, please include this problem report.\r\n"
	"\r\n"
	"                   The mail system\r\n";

/* Sticky-error output: after the first failure every put is a no-op, so
 * the builders below read as straight-line templates. */
struct dsn_out {
	struct buf *b;
	int rc;
};

static void
dsn_put(struct dsn_out *o, const char *s, size_t n)
{
	if (o->rc == 0)
		o->rc = buf_append(o->b, s, n);
}

static void
dsn_puts(struct dsn_out *o, const char *s)
{
	dsn_put(o, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
dsn_printf(struct dsn_out *o, const char *fmt, ...)
{
	if (o->rc != 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	o->rc = buf_vprintf(o->b, fmt, ap);
	va_end(ap);
}

size_t
dsn_header_len(const char *data, size_t len, size_t max)
{
	size_t start = 0, last = 0, lim = len < max ? len : max;

	/* A blank line past max would be capped anyway, so stop scanning there. */
	for (size_t i = 0; i < lim; i++) {
		if (data[i] != '\n')
			continue;
		if (i == start || (i == start + 1 && data[start] == '\r'))
			return i + 1;
		start = last = i + 1;
	}
	return len <= max ? len : last;
}

/* Our own values go out verbatim, so they must be one printable line. */
static bool
dsn_word_ok(const char *s, bool optional)
{
	if (s == NULL)
		return optional;
	size_t n = strnlen(s, DSN_FIELD_MAX + 1);
	if (n == 0 || n > DSN_FIELD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Peer text that sanitizes to nothing would leave an empty field. */
static bool
dsn_has_text(const char *s)
{
	return s != NULL && s[strspn(s, " \t\r\n")] != '\0';
}

static bool
dsn_digits(const char **p)
{
	size_t k = 0;
	while (k < 3 && (*p)[k] >= '0' && (*p)[k] <= '9')
		k++;
	*p += k;
	return k > 0;
}

/* RFC 3463: class "." subject "." detail, class 2, 4 or 5, 1-3 digits. */
static bool
dsn_status_ok(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	s += 2;
	if (!dsn_digits(&s) || *s++ != '.')
		return false;
	return dsn_digits(&s) && *s == '\0';
}

/* RFC 2046 bchars without space, so the quoted parameter needs no care. */
static bool
dsn_boundary_ok(const char *s)
{
	if (s == NULL)
		return false;
	size_t n = strnlen(s, DSN_BOUNDARY_MAX + 1);
	return n > 0 && n <= DSN_BOUNDARY_MAX &&
	       strspn(s, "0123456789abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?") == n;
}

static bool
dsn_check(const struct dsn_msg *m, const struct dsn_rcpt *rcpts, size_t n)
{
	if (m == NULL || rcpts == NULL || n == 0)
		return false;
	if (!dsn_word_ok(m->reporting_mta, false) ||
	    !dsn_word_ok(m->from, false) || !dsn_word_ok(m->date, false) ||
	    !dsn_word_ok(m->message_id, false) ||
	    !dsn_word_ok(m->queue_id, true) ||
	    !dsn_word_ok(m->arrival_date, true) ||
	    !dsn_word_ok(m->retry_until, true))
		return false;
	if (!dsn_boundary_ok(m->boundary) || !dsn_has_text(m->to))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!dsn_has_text(rcpts[i].addr) ||
		    !dsn_status_ok(rcpts[i].status))
			return false;
	return true;
}

/*
 * Peer text to printable ASCII (str_sanitize maps byte for byte, so
 * dst[i] still matches src[i]); line breaks and tabs become spaces, runs
 * of spaces collapse and the ends are trimmed. Folding then only breaks
 * at a single space and never leaves a blank or white-space-only line.
 */
static const char *
dsn_clean(char *dst, size_t size, const char *src)
{
	size_t n = src != NULL ? strnlen(src, size - 1) : 0;
	str_sanitize(dst, size, src != NULL ? src : "", n);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = strchr("\t\r\n", src[i]) != NULL ? ' ' : dst[i];
		if (c == ' ' && (k == 0 || dst[k - 1] == ' '))
			continue;
		dst[k++] = c;
	}
	while (k > 0 && dst[k - 1] == ' ')
		k--;
	dst[k] = '\0';
	return dst;
}

/*
 * Where to break s[0..left) on a line already col wide: the last space
 * that keeps the line within DSN_WRAP, else the first space within
 * DSN_LINE_MAX, else a hard cut there. Returns left when no break is due.
 */
static size_t
dsn_fold_point(const char *s, size_t left, size_t col)
{
	if (col + left <= DSN_WRAP)
		return left;
	size_t room = col < DSN_WRAP ? DSN_WRAP - col : 0;
	size_t hard = DSN_LINE_MAX - col;
	for (size_t i = room < left ? room : left - 1; i > 0; i--)
		if (s[i] == ' ')
			return i;
	for (size_t i = room + 1; i < left && i <= hard; i++)
		if (s[i] == ' ')
			return i;
	return left <= hard ? left : hard;
}

/* lead + text as folded lines; each continuation starts with cont, which
 * is white space (a header fold, or the text part's indent). The space a
 * line breaks at is dropped: cont stands in for it. */
static void
dsn_fold(struct dsn_out *o, const char *lead, const char *text,
	 const char *cont)
{
	size_t col = strlen(lead), left = strlen(text);

	dsn_puts(o, lead);
	for (;;) {
		size_t cut = dsn_fold_point(text, left, col);
		dsn_put(o, text, cut);
		dsn_puts(o, "\r\n");
		text += cut;
		left -= cut;
		if (left > 0 && *text == ' ') {
			text++;
			left--;
		}
		if (left == 0)
			return;
		dsn_puts(o, cont);
		col = strlen(cont);
	}
}

static void
dsn_put_head(struct dsn_out *o, const struct dsn_msg *m)
{
	char to[DSN_FIELD_MAX + 1], angle[DSN_FIELD_MAX + 3];

	snprintf(angle, sizeof(angle), "<%s>", dsn_clean(to, sizeof(to), m->to));
	dsn_printf(o, "From: Mail Delivery System <%s>\r\n", m->from);
	dsn_fold(o, "To: ", angle, " ");
	dsn_printf(o, "Subject: %s\r\n",
		   m->delayed ? DSN_SUBJECT_DELAYED : DSN_SUBJECT_FAILED);
	dsn_printf(o, "Date: %s\r\nMessage-ID: %s\r\n", m->date, m->message_id);
	dsn_puts(o, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	dsn_printf(o, "Content-Type: multipart/report; "
		   "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
		   m->boundary);
	if (m->queue_id != NULL)
		dsn_printf(o, "X-Outbox-Queue-ID: %s\r\n", m->queue_id);
	dsn_puts(o, "\r\nThis is a MIME-encapsulated message.\r\n");
}

/* One recipient in the text part, in Postfix's "<addr>: host X said:"
 * shape, wrapped with a four-space indent. */
static void
dsn_put_text_rcpt(struct dsn_out *o, const struct dsn_rcpt *r)
{
	char addr[DSN_FIELD_MAX + 1], host[DSN_FIELD_MAX + 1];
	char diag[DSN_DIAG_MAX + 1], line[DSN_TEXT_MAX];

	dsn_clean(addr, sizeof(addr), r->addr);
	dsn_clean(host, sizeof(host), r->remote_mta);
	dsn_clean(diag, sizeof(diag), r->diagnostic);
	if (host[0] != '\0' && diag[0] != '\0' && r->smtp_diagnostic)
		snprintf(line, sizeof(line), "<%s>: host %s said: %s", addr,
			 host, diag);
	else if (diag[0] != '\0')
		snprintf(line, sizeof(line), "<%s>: %s", addr, diag);
	else
		snprintf(line, sizeof(line), "<%s>: status %s", addr,
			 r->status);
	dsn_puts(o, "\r\n");
	dsn_fold(o, "", line, "    ");
}

static void
dsn_put_text(struct dsn_out *o, const struct dsn_msg *m,
	     const struct dsn_rcpt *rcpts, size_t n)
{
	dsn_printf(o, "\r\n--%s\r\nContent-Description: Notification\r\n"
		   "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
		   m->boundary);
	dsn_printf(o, "This is the mail system at host %s.\r\n\r\n",
		   m->reporting_mta);
	dsn_puts(o, m->delayed ? dsn_text_delayed : dsn_text_failed);
	if (m->delayed && m->retry_until != NULL)
		dsn_printf(o, " until\r\n%s.\r\n", m->retry_until);
	else if (m->delayed)
		dsn_puts(o, ".\r\n");
	dsn_puts(o, dsn_text_tail);
	for (size_t i = 0; i < n; i++)
		dsn_put_text_rcpt(o, &rcpts[i]);
}

static void
dsn_put_status_rcpt(struct dsn_out *o, const struct dsn_msg *m,
		    const struct dsn_rcpt *r)
{
	char addr[DSN_FIELD_MAX + 1], host[DSN_FIELD_MAX + 1];
	char diag[DSN_DIAG_MAX + 1];

	dsn_puts(o, "\r\n");
	dsn_fold(o, "Final-Recipient: rfc822; ",
		 dsn_clean(addr, sizeof(addr), r->addr), " ");
	dsn_printf(o, "Action: %s\r\nStatus: %s\r\n",
		   m->delayed ? "delayed" : "failed", r->status);
	if (dsn_clean(host, sizeof(host), r->remote_mta)[0] != '\0')
		dsn_fold(o, "Remote-MTA: dns; ", host, " ");
	if (dsn_clean(diag, sizeof(diag), r->diagnostic)[0] != '\0')
		dsn_fold(o, r->smtp_diagnostic ? "Diagnostic-Code: smtp; "
					       : "Diagnostic-Code: x-outbox; ",
			 diag, " ");
	if (m->delayed && m->retry_until != NULL)
		dsn_printf(o, "Will-Retry-Until: %s\r\n", m->retry_until);
}

static void
dsn_put_status(struct dsn_out *o, const struct dsn_msg *m,
	       const struct dsn_rcpt *rcpts, size_t n)
{
	dsn_printf(o, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
		   "Content-Type: message/delivery-status\r\n\r\n",
		   m->boundary);
	dsn_printf(o, "Reporting-MTA: dns; %s\r\n", m->reporting_mta);
	if (m->queue_id != NULL)
		dsn_printf(o, "X-Outbox-Queue-ID: %s\r\n", m->queue_id);
	if (m->arrival_date != NULL)
		dsn_printf(o, "Arrival-Date: %s\r\n", m->arrival_date);
	for (size_t i = 0; i < n; i++)
		dsn_put_status_rcpt(o, m, &rcpts[i]);
}

/* One original header line: TAB and printable ASCII kept, any other byte
 * (the DSN is 7bit) becomes '?'; over 998 octets it is folded. */
static void
dsn_put_orig_line(struct dsn_out *o, const char *p, size_t n)
{
	char seg[DSN_LINE_MAX];
	size_t room = DSN_LINE_MAX;

	while (n > 0) {
		size_t k = n < room ? n : room;
		for (size_t i = 0; i < k; i++) {
			unsigned char c = (unsigned char)p[i];
			seg[i] = (c == '\t' || (c >= 0x20 && c < 0x7f)) ?
				 (char)c : '?';
		}
		dsn_put(o, seg, k);
		dsn_puts(o, "\r\n");
		p += k;
		n -= k;
		if (n > 0)
			dsn_puts(o, " ");
		room = DSN_LINE_MAX - 1;
	}
}

/* The original header section, capped; lines end at CRLF, bare CR or bare
 * LF, and empty lines are dropped so the part stays one header block. */
static void
dsn_put_orig(struct dsn_out *o, const struct dsn_msg *m)
{
	size_t len = dsn_header_len(m->headers, m->headers_len,
				    DSN_HEADERS_MAX);
	const char *p = m->headers, *end = m->headers + len;

	dsn_printf(o, "\r\n--%s\r\nContent-Description: %s\r\n"
		   "Content-Type: text/rfc822-headers\r\n\r\n", m->boundary,
		   m->delayed ? "Delayed Message Headers"
			      : "Undelivered Message Headers");
	size_t start = o->b->len;
	while (p < end) {
		size_t n = 0;
		while (p + n < end && p[n] != '\r' && p[n] != '\n')
			n++;
		if (n > 0)
			dsn_put_orig_line(o, p, n);
		p += n;
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n')
			p++;
	}
	/* The copy holds no NUL, and buf data is NUL-terminated. */
	if (o->rc == 0 && strstr(o->b->data + start, m->boundary) != NULL)
		o->rc = -EINVAL;
}

int
dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *rcpts, size_t n,
	  struct buf *out)
{
	if (!dsn_check(m, rcpts, n))
		return -EINVAL;

	struct dsn_out o = { out, 0 };
	size_t start = out->len;

	dsn_put_head(&o, m);
	dsn_put_text(&o, m, rcpts, n);
	dsn_put_status(&o, m, rcpts, n);
	if (m->headers != NULL && m->headers_len > 0)
		dsn_put_orig(&o, m);
	dsn_printf(&o, "\r\n--%s--\r\n", m->boundary);
	if (o.rc != 0 && out->data != NULL) {
		/* buf has no truncate; put back what the caller had. */
		out->len = start;
		out->data[start] = '\0';
	}
	return o.rc;
}
