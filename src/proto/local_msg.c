/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Normaliser for messages given to the sendmail command: line ends to
 *	CRLF, the mbox "From " line dropped, sendmail's lone-dot rule, -t
 *	recipient extraction with Bcc removal, and the A24 fix-ups (missing
 *	Date, Message-ID, From). The header section is held back (bounded)
 *	so added fields land at its end; the body streams straight through,
 *	so memory stays bounded for any message size (G10). Every piece of
 *	state is in struct local_msg, so chunk boundaries never matter.
 *	Policy details are in local_msg.h.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "outbox/local_msg.h"

/* Room for the -t address list beyond the header size it comes from. */
#define LM_RCPT_SLACK 4096

static const struct {
	const char *name;
	unsigned bit;
} lm_fields[] = {
	{ "Date", LOCAL_MSG_H_DATE },
	{ "Message-ID", LOCAL_MSG_H_MESSAGE_ID },
	{ "From", LOCAL_MSG_H_FROM },
	{ "To", LOCAL_MSG_H_TO },
	{ "Cc", LOCAL_MSG_H_CC },
	{ "Bcc", LOCAL_MSG_H_BCC },
	{ "Sender", LOCAL_MSG_H_SENDER },
	{ "Reply-To", LOCAL_MSG_H_REPLY_TO },
};

void
local_msg_init(struct local_msg *m, const struct local_msg_opts *opts)
{
	memset(m, 0, sizeof(*m));
	m->opts = *opts;
	if (m->opts.header_max == 0)
		m->opts.header_max = LOCAL_MSG_HEADER_MAX;
	buf_init(&m->hdr, m->opts.header_max);
	buf_init(&m->rcpts, m->opts.header_max + LM_RCPT_SLACK);
	m->first_line = true;
	m->bol = true;
}

void
local_msg_free(struct local_msg *m)
{
	buf_free(&m->hdr);
	buf_free(&m->rcpts);
}

static bool
lm_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static enum local_msg_status
lm_fail(struct local_msg *m, enum local_msg_status st)
{
	if (m->error == LOCAL_MSG_OK)
		m->error = st;
	return m->error;
}

static enum local_msg_status
lm_out(struct local_msg *m, struct buf *out, const void *p, size_t n)
{
	if (buf_append(out, p, n) < 0)
		return lm_fail(m, LOCAL_MSG_E_OUTPUT);
	m->out_bytes += n;
	return LOCAL_MSG_OK;
}

/* ---- address lists (RFC 5322 3.4) ---- */

struct lm_addrs {
	struct buf cur;   /* unquoted text outside angle brackets */
	struct buf angle; /* text inside angle brackets */
	bool have_angle;
	int count;
	int (*cb)(void *arg, const char *addr, size_t len);
	void *arg;
};

static int
lm_addrs_flush(struct lm_addrs *s)
{
	const struct buf *b = s->have_angle ? &s->angle : &s->cur;
	int rc = 0;

	if (b->len > 0) {
		rc = s->cb(s->arg, b->data, b->len);
		if (rc >= 0)
			s->count++;
	}
	buf_reset(&s->cur);
	buf_reset(&s->angle);
	s->have_angle = false;
	return rc < 0 ? rc : 0;
}

/* Copy a quoted string with its quotes and escapes; returns the index after. */
static size_t
lm_addrs_quoted(const char *v, size_t n, size_t i, struct buf *to, int *rc)
{
	size_t start = i++;

	while (i < n && v[i] != '"') {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		i++;
	}
	if (i < n)
		i++; /* the closing quote; an unclosed one ends at n */
	*rc = buf_append(to, v + start, i - start);
	return i;
}

/* Skip a comment, nested, with quoted-pairs; returns the index after. */
static size_t
lm_addrs_comment(const char *v, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return n;
}

static int
lm_addrs_step(struct lm_addrs *s, const char *v, size_t n, size_t *ip,
	      bool *in_angle)
{
	size_t i = *ip;
	char c = v[i];
	int rc = 0;

	if (c == '"') {
		*ip = lm_addrs_quoted(v, n, i, *in_angle ? &s->angle : &s->cur, &rc);
		return rc;
	}
	if (c == '(') {
		*ip = lm_addrs_comment(v, n, i);
		return 0;
	}
	*ip = i + 1;
	if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
		return 0;
	if (*in_angle) {
		if (c == '>')
			*in_angle = false;
		else
			rc = buf_append(&s->angle, &c, 1);
		return rc;
	}
	switch (c) {
	case '<':
		*in_angle = true;
		s->have_angle = true;
		buf_reset(&s->angle);
		return 0;
	case ':': /* a group's display name: not an address */
		buf_reset(&s->cur);
		return 0;
	case ',': case ';':
		return lm_addrs_flush(s);
	default:
		return buf_append(&s->cur, &c, 1);
	}
}

int
local_msg_parse_addrs(const char *v, size_t n,
		      int (*cb)(void *arg, const char *addr, size_t len),
		      void *arg)
{
	struct lm_addrs s = { .cb = cb, .arg = arg };
	bool in_angle = false;
	size_t i = 0;
	int rc = 0;

	buf_init(&s.cur, n + 1);
	buf_init(&s.angle, n + 1);
	while (rc >= 0 && i < n)
		rc = lm_addrs_step(&s, v, n, &i, &in_angle);
	if (rc >= 0)
		rc = lm_addrs_flush(&s);
	buf_free(&s.cur);
	buf_free(&s.angle);
	return rc < 0 ? rc : s.count;
}

/* ---- header section ---- */

static int
lm_rcpt_add(void *arg, const char *addr, size_t len)
{
	struct local_msg *m = arg;

	if (m->nrcpts >= LOCAL_MSG_RCPTS_MAX)
		return -ERANGE;
	if (buf_append(&m->rcpts, addr, len) < 0 ||
	    buf_append(&m->rcpts, "", 1) < 0)
		return -ENOBUFS;
	m->nrcpts++;
	return 0;
}

const char *
local_msg_rcpt_next(const struct local_msg *m, const char *prev)
{
	const char *end, *next;

	/* No recipient: rcpts.data may be NULL, and NULL + 0 is undefined. */
	if (m->nrcpts == 0)
		return NULL;
	end = m->rcpts.data + m->rcpts.len;
	next = prev == NULL ? m->rcpts.data : prev + strlen(prev) + 1;
	return next < end ? next : NULL;
}

/* The tracked-field bit for a header line, 0 if untracked, -1 if none. */
static int
lm_field_kind(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
		i++;
	size_t name_len = i;
	while (i < len && lm_is_wsp(line[i]))
		i++;
	if (name_len == 0 || i >= len || line[i] != ':')
		return -1;
	for (size_t k = 0; k < sizeof(lm_fields) / sizeof(lm_fields[0]); k++)
		if (strlen(lm_fields[k].name) == name_len &&
		    strncasecmp(line, lm_fields[k].name, name_len) == 0)
			return (int)lm_fields[k].bit;
	return 0;
}

/* The open field is complete: collect -t addresses, drop it if Bcc. */
static enum local_msg_status
lm_field_close(struct local_msg *m)
{
	const unsigned addr_fields = LOCAL_MSG_H_TO | LOCAL_MSG_H_CC |
				     LOCAL_MSG_H_BCC;

	if (!m->field_open)
		return LOCAL_MSG_OK;
	m->field_open = false;
	if (!m->opts.extract_rcpts || (m->field & addr_fields) == 0)
		return LOCAL_MSG_OK;
	const char *f = m->hdr.data + m->field_start;
	size_t flen = m->hdr.len - m->field_start;
	const char *colon = memchr(f, ':', flen);
	size_t skip = (size_t)(colon - f) + 1;
	int rc = local_msg_parse_addrs(f + skip, flen - skip, lm_rcpt_add, m);
	if (rc == -ERANGE)
		return lm_fail(m, LOCAL_MSG_E_RCPTS);
	if (rc < 0)
		return lm_fail(m, LOCAL_MSG_E_OUTPUT);
	if (m->field == LOCAL_MSG_H_BCC) {
		m->hdr.len = m->field_start;
		m->hdr.data[m->hdr.len] = '\0';
	}
	m->line_start = m->hdr.len;
	return LOCAL_MSG_OK;
}

static int
lm_fixup_line(struct buf *out, const char *name, const char *value,
	      bool brackets)
{
	if (strpbrk(value, "\r\n") != NULL)
		return -EINVAL;
	if (brackets && value[0] != '<')
		return buf_printf(out, "%s: <%s>\r\n", name, value);
	return buf_printf(out, "%s: %s\r\n", name, value);
}

/* From: "Full Name" <addr>, the name always quoted with \ and " escaped. */
static int
lm_fixup_from(struct buf *out, const char *addr, const char *name)
{
	if (strpbrk(addr, "\r\n") != NULL ||
	    (name != NULL && strpbrk(name, "\r\n") != NULL))
		return -EINVAL;
	if (name == NULL || name[0] == '\0')
		return buf_printf(out, "From: %s\r\n", addr);
	int rc = buf_puts(out, "From: \"");
	for (const char *p = name; rc == 0 && *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			rc = buf_append(out, "\\", 1);
		if (rc == 0)
			rc = buf_append(out, p, 1);
	}
	if (rc == 0)
		rc = buf_printf(out, "\" <%s>\r\n", addr);
	return rc;
}

int
local_msg_fixup_headers(unsigned present, const struct local_msg_fixup *fx,
			struct buf *out, unsigned *added)
{
	unsigned done = 0;
	int rc = 0;

	if (rc == 0 && fx->date != NULL && !(present & LOCAL_MSG_H_DATE)) {
		rc = lm_fixup_line(out, "Date", fx->date, false);
		done |= LOCAL_MSG_H_DATE;
	}
	if (rc == 0 && fx->message_id != NULL &&
	    !(present & LOCAL_MSG_H_MESSAGE_ID)) {
		rc = lm_fixup_line(out, "Message-ID", fx->message_id, true);
		done |= LOCAL_MSG_H_MESSAGE_ID;
	}
	if (rc == 0 && fx->from_addr != NULL && fx->from_addr[0] != '\0' &&
	    !(present & LOCAL_MSG_H_FROM)) {
		rc = lm_fixup_from(out, fx->from_addr, fx->full_name);
		done |= LOCAL_MSG_H_FROM;
	}
	if (added != NULL)
		*added = rc == 0 ? done : 0;
	return rc;
}

/* End of the header section: write it, the fix-ups, and maybe a blank line. */
static enum local_msg_status
lm_hdr_end(struct local_msg *m, struct buf *out, bool blank)
{
	enum local_msg_status st = lm_field_close(m);
	struct buf fix;
	int rc;

	if (st != LOCAL_MSG_OK)
		return st;
	buf_init(&fix, m->opts.header_max);
	rc = local_msg_fixup_headers(m->present, &m->opts.fixup, &fix, &m->added);
	if (rc == -EINVAL)
		st = lm_fail(m, LOCAL_MSG_E_FIXUP);
	else if (rc < 0)
		st = lm_fail(m, LOCAL_MSG_E_OUTPUT);
	if (st == LOCAL_MSG_OK)
		st = lm_out(m, out, m->hdr.data, m->hdr.len);
	if (st == LOCAL_MSG_OK)
		st = lm_out(m, out, fix.data, fix.len);
	if (st == LOCAL_MSG_OK && blank)
		st = lm_out(m, out, "\r\n", 2);
	buf_free(&fix);
	buf_reset(&m->hdr);
	m->line_start = 0;
	m->in_body = true;
	m->bol = true;
	return st;
}

/* A line that is not a header: the body starts with it. */
static enum local_msg_status
lm_hdr_to_body(struct local_msg *m, struct buf *out)
{
	size_t len = m->hdr.len - m->line_start;
	struct buf line;
	enum local_msg_status st;

	buf_init(&line, len + 1);
	if (buf_append(&line, m->hdr.data + m->line_start, len) < 0)
		return lm_fail(m, LOCAL_MSG_E_OUTPUT);
	m->hdr.len = m->line_start;
	m->hdr.data[m->hdr.len] = '\0';
	st = lm_hdr_end(m, out, true);
	if (st == LOCAL_MSG_OK)
		st = lm_out(m, out, line.data, line.len);
	if (st == LOCAL_MSG_OK)
		st = lm_out(m, out, "\r\n", 2);
	buf_free(&line);
	return st;
}

static enum local_msg_status
lm_hdr_newline(struct local_msg *m)
{
	if (buf_append(&m->hdr, "\r\n", 2) < 0)
		return lm_fail(m, LOCAL_MSG_E_HEADER_BIG);
	m->line_start = m->hdr.len;
	m->bol = true;
	return LOCAL_MSG_OK;
}

/* A complete line in the header section, at hdr[line_start..len). */
static enum local_msg_status
lm_hdr_eol(struct local_msg *m, struct buf *out)
{
	/* An empty held section may have no buffer yet: NULL + 0 is undefined. */
	const char *line = m->hdr.data ? m->hdr.data + m->line_start : "";
	size_t len = m->hdr.len - m->line_start;
	bool first = m->first_line;

	m->first_line = false;
	m->bol = true;
	if (first && len >= 5 && memcmp(line, "From ", 5) == 0) {
		m->hdr.len = m->line_start;
		m->hdr.data[m->hdr.len] = '\0';
		return LOCAL_MSG_OK;
	}
	if (len == 0)
		return lm_hdr_end(m, out, true);
	if (!m->opts.ignore_dots && len == 1 && line[0] == '.') {
		m->hdr.len = m->line_start;
		m->done = true;
		return lm_hdr_end(m, out, false);
	}
	if (lm_is_wsp(line[0]))
		return m->field_open ? lm_hdr_newline(m) : lm_hdr_to_body(m, out);
	int kind = lm_field_kind(line, len);
	if (kind < 0)
		return lm_hdr_to_body(m, out);
	m->present |= (unsigned)kind;
	m->field = (unsigned)kind;
	m->field_start = m->line_start;
	m->field_open = true;
	return lm_hdr_newline(m);
}

static enum local_msg_status
lm_hdr_byte(struct local_msg *m, char c, struct buf *out)
{
	if (c == '\r' || c == '\n') {
		m->skip_lf = c == '\r';
		return lm_hdr_eol(m, out);
	}
	if (m->bol) {
		m->bol = false;
		/* A field ends where a line not starting with WSP begins. */
		if (!lm_is_wsp(c) && lm_field_close(m) != LOCAL_MSG_OK)
			return m->error;
	}
	if (buf_append(&m->hdr, &c, 1) < 0)
		return lm_fail(m, LOCAL_MSG_E_HEADER_BIG);
	return LOCAL_MSG_OK;
}

/* ---- body ---- */

static enum local_msg_status
lm_body_byte(struct local_msg *m, char c, struct buf *out)
{
	bool eol = c == '\r' || c == '\n';
	enum local_msg_status st = LOCAL_MSG_OK;

	if (m->dot_pending) {
		m->dot_pending = false;
		if (eol) {
			m->done = true; /* sendmail's lone "." ends the input */
			return LOCAL_MSG_OK;
		}
		st = lm_out(m, out, ".", 1);
		if (st != LOCAL_MSG_OK)
			return st;
	} else if (m->bol && c == '.' && !m->opts.ignore_dots) {
		m->dot_pending = true;
		m->bol = false;
		return LOCAL_MSG_OK;
	}
	if (eol) {
		m->skip_lf = c == '\r';
		m->bol = true;
		return lm_out(m, out, "\r\n", 2);
	}
	m->bol = false;
	return lm_out(m, out, &c, 1);
}

/* Bytes that need no per-byte decision, from in[0..n). */
static size_t
lm_body_run(const char *in, size_t n)
{
	size_t i = 0;

	while (i < n && in[i] != '\r' && in[i] != '\n' && in[i] != '\0')
		i++;
	return i;
}

static enum local_msg_status
lm_feed_one(struct local_msg *m, const char *in, size_t n, size_t *used,
	    struct buf *out)
{
	char c = in[0];

	*used = 1;
	if (m->skip_lf) {
		m->skip_lf = false;
		if (c == '\n')
			return LOCAL_MSG_OK; /* the LF of a CRLF */
	}
	if (c == '\0')
		return lm_fail(m, LOCAL_MSG_E_NUL);
	if ((unsigned char)c >= 0x80)
		m->eightbit = true;
	if (!m->in_body)
		return lm_hdr_byte(m, c, out);
	if (!m->bol && !m->dot_pending) {
		size_t run = lm_body_run(in, n);
		if (run > 0) {
			for (size_t k = 0; k < run; k++)
				if ((unsigned char)in[k] >= 0x80)
					m->eightbit = true;
			*used = run;
			return lm_out(m, out, in, run);
		}
	}
	return lm_body_byte(m, c, out);
}

enum local_msg_status
local_msg_feed(struct local_msg *m, const char *in, size_t n, struct buf *out)
{
	size_t i = 0;

	m->in_bytes += n;
	while (m->error == LOCAL_MSG_OK && !m->done && i < n) {
		size_t used;
		lm_feed_one(m, in + i, n - i, &used, out);
		i += used;
	}
	return m->error;
}

enum local_msg_status
local_msg_finish(struct local_msg *m, struct buf *out)
{
	if (m->error != LOCAL_MSG_OK || m->done) {
		m->done = true;
		return m->error;
	}
	if (!m->in_body && !m->bol)
		lm_hdr_eol(m, out); /* a last header line without line end */
	if (m->error == LOCAL_MSG_OK && !m->done && !m->in_body)
		lm_hdr_end(m, out, false);
	else if (m->error == LOCAL_MSG_OK && !m->done && !m->dot_pending &&
		 !m->bol)
		lm_out(m, out, "\r\n", 2);
	/* a pending dot at the end is a lone "." line: it ends the message */
	m->done = true;
	return m->error;
}

const char *
local_msg_status_str(enum local_msg_status st)
{
	switch (st) {
	case LOCAL_MSG_OK:
		return "ok";
	case LOCAL_MSG_E_HEADER_BIG:
		return "message header section too large";
	case LOCAL_MSG_E_NUL:
		return "message contains a NUL byte";
	case LOCAL_MSG_E_OUTPUT:
		return "message too large";
	case LOCAL_MSG_E_RCPTS:
		return "too many recipients in message header";
	case LOCAL_MSG_E_FIXUP:
		return "invalid value for an added header field";
	}
	return "unknown error";
}

int
local_msg_status_exit(enum local_msg_status st)
{
	switch (st) {
	case LOCAL_MSG_OK:
		return 0;
	case LOCAL_MSG_E_FIXUP:
		return EX_SOFTWARE;
	default:
		return EX_DATAERR;
	}
}
