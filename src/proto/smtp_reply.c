/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Strict SMTP reply parser (RFC 5321 4.2), fed one line at a time
 *	without its CRLF, in the style of curl's endofresp plus OpenSMTPD's
 *	replycat. A line is "NNN", "NNN text" or "NNN-text" where NNN is
 *	200..599; every line of a multi-line reply repeats the code. Text is
 *	sanitized to printable ASCII ('?' otherwise), joined with '\n' and cut
 *	at SMTP_REPLY_TEXT_MAX; the enhanced status code (RFC 3463) is taken
 *	from the first line when its class matches the reply code. Anything
 *	else is REPLY_ERROR with an explanation in r->text. Pure code.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "outbox/smtp_reply.h"
#include "outbox/str.h"

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

static bool
reply_is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* The reply code of line, or -1 when the line does not start a reply line. */
static int
reply_code(const char *line, size_t len)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !reply_is_digit(line[1]) || !reply_is_digit(line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Length of a run of 1..3 digits at s[0..n), or 0. */
static size_t
reply_digits(const char *s, size_t n)
{
	size_t k = 0;
	while (k < n && k < 4 && reply_is_digit(s[k]))
		k++;
	return k >= 1 && k <= 3 ? k : 0;
}

/* "x.y.z" at the start of text, x the class digit of code (2, 4 or 5). */
static void
reply_parse_enh(struct smtp_reply *r, const char *text, size_t n)
{
	int cls = r->code / 100;
	if (cls == 3 || n < 5 || text[0] != (char)('0' + cls) || text[1] != '.')
		return;
	size_t i = 2;
	size_t k = reply_digits(text + i, n - i);
	if (k == 0 || i + k >= n || text[i + k] != '.')
		return;
	i += k + 1;
	k = reply_digits(text + i, n - i);
	if (k == 0)
		return;
	i += k;
	if (i < n && text[i] != ' ')
		return;
	str_ncopy(r->enh, sizeof(r->enh), text, i);
}

static enum smtp_reply_status
reply_error(struct smtp_reply *r, const char *why, const char *line, size_t len)
{
	char shown[80];
	str_sanitize(shown, sizeof(shown), line, len);
	snprintf(r->text, sizeof(r->text), "%s: \"%s%s\"", why, shown,
		 len >= sizeof(shown) ? "..." : "");
	r->enh[0] = '\0';
	return REPLY_ERROR;
}

/* Append the sanitized text of one line, joined to the previous with '\n'. */
static void
reply_append_text(struct smtp_reply *r, const char *text, size_t n)
{
	size_t used = strlen(r->text);
	if (r->nlines > 1 && used + 1 < sizeof(r->text))
		r->text[used++] = '\n';
	str_sanitize(r->text + used, sizeof(r->text) - used, text, n);
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	if (line == NULL)
		len = 0;
	if (len > SMTP_REPLY_PARSE_MAX)
		return reply_error(r, "reply line too long", line, len);
	int code = reply_code(line, len);
	if (code < 0)
		return reply_error(r, "malformed reply line", line, len);
	if (r->nlines > 0 && code != r->code)
		return reply_error(
			r, "reply code changed inside a multi-line reply", line,
			len);
	if (r->nlines >= SMTP_REPLY_MAX_LINES)
		return reply_error(r, "too many lines in reply", line, len);
	r->code = code;
	r->nlines++;
	const char *text = len > 4 ? line + 4 : "";
	size_t tlen = len > 4 ? len - 4 : 0;
	if (r->nlines == 1)
		reply_parse_enh(r, text, tlen);
	reply_append_text(r, text, tlen);
	return len == 3 || line[3] == ' ' ? REPLY_DONE : REPLY_MORE;
}

void
smtp_reply_summary(const struct smtp_reply *r, char *out, size_t size)
{
	if (size == 0)
		return;
	const char *nl = strchr(r->text, '\n');
	int n = nl ? (int)(nl - r->text) : (int)strlen(r->text);
	if (n == 0)
		snprintf(out, size, "%d", r->code);
	else
		snprintf(out, size, "%d %.*s", r->code, n, r->text);
}
