/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Qualify bare local names in envelope addresses and in address-list
 *	header values ([rewrite] domain). A small RFC 5322 3.4 lexer skips
 *	white space and comments; a recursive-descent parser finds where each
 *	bare local part ends. The header is parsed twice: a dry run that only
 *	validates (so a malformed value is copied unchanged, never half
 *	rewritten), then a run that copies the value and inserts "@domain" at
 *	each recorded point. Pure code.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "outbox/addr.h"
#include "outbox/qualify.h"

enum qtok {
	QT_END,
	QT_WORD,  /* atom, dots included (obs-phrase, dot-atom) */
	QT_QSTR,  /* quoted string, quotes included */
	QT_DLIT,  /* domain literal [..] */
	QT_SPEC,  /* one of < > @ , : ; (the byte is in ch) */
	QT_BAD,   /* unbalanced quote/comment/literal, control or stray byte */
};

struct qlex {
	const char *s;
	size_t n, pos;
	/* Emission state; NULL out means a dry run. */
	struct buf *out;
	const char *domain;
	size_t copied;
	int count;
	int err;
};

struct qtoken {
	enum qtok type;
	char ch;
	size_t start, end;
};

static bool
qualify_is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true; /* RFC 6532 UTF-8 */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

static bool
qualify_is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip a (possibly nested) comment starting at '('. false if unbalanced. */
static bool
qualify_skip_comment(struct qlex *l)
{
	int depth = 0;

	while (l->pos < l->n) {
		char c = l->s[l->pos++];

		if (c == '\\') {
			if (l->pos >= l->n)
				return false;
			l->pos++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0)
				return true;
		}
	}
	return false;
}

/* Scan to the closing byte `close`, honouring backslash escapes. */
static bool
qualify_skip_to(struct qlex *l, char close)
{
	l->pos++;
	while (l->pos < l->n) {
		char c = l->s[l->pos++];

		if (c == '\\') {
			if (l->pos >= l->n)
				return false;
			l->pos++;
		} else if (c == close) {
			return true;
		}
	}
	return false;
}

static struct qtoken
qualify_next(struct qlex *l)
{
	struct qtoken t = { QT_END, 0, 0, 0 };

	for (;;) {
		while (l->pos < l->n && qualify_is_ws((unsigned char)l->s[l->pos]))
			l->pos++;
		if (l->pos >= l->n || l->s[l->pos] != '(')
			break;
		if (!qualify_skip_comment(l)) {
			t.type = QT_BAD;
			return t;
		}
	}
	t.start = l->pos;
	if (l->pos >= l->n) {
		t.end = l->pos;
		return t;
	}
	unsigned char c = (unsigned char)l->s[l->pos];
	if (qualify_is_atext(c)) {
		while (l->pos < l->n && qualify_is_atext((unsigned char)l->s[l->pos]))
			l->pos++;
		t.type = QT_WORD;
	} else if (c == '"' || c == '[') {
		if (!qualify_skip_to(l, c == '"' ? '"' : ']')) {
			t.type = QT_BAD;
			return t;
		}
		t.type = c == '"' ? QT_QSTR : QT_DLIT;
	} else if (strchr("<>@,:;", c) != NULL) {
		l->pos++;
		t.type = QT_SPEC;
		t.ch = (char)c;
	} else {
		t.type = QT_BAD;
	}
	t.end = l->pos;
	return t;
}

static struct qtoken
qualify_peek(struct qlex *l)
{
	size_t save = l->pos;
	struct qtoken t = qualify_next(l);

	l->pos = save;
	return t;
}

static bool
qualify_is_spec(struct qtoken t, char ch)
{
	return t.type == QT_SPEC && t.ch == ch;
}

/* Record (or, when emitting, perform) an insertion of "@domain" at pos. */
static void
qualify_insert(struct qlex *l, size_t pos)
{
	l->count++;
	if (l->out == NULL || l->err != 0)
		return;
	if (buf_append(l->out, l->s + l->copied, pos - l->copied) != 0 ||
	    buf_append(l->out, "@", 1) != 0 ||
	    buf_puts(l->out, l->domain) != 0)
		l->err = -ENOBUFS;
	l->copied = pos;
}

/*
 * A local part: WORD/QSTR tokens with nothing between them ("a.b",
 * "\"x\".y"). Returns the end offset, or 0 when it is not one.
 */
static size_t
qualify_local_end(struct qlex *l, struct qtoken first)
{
	size_t end = first.end;

	for (;;) {
		struct qtoken t = qualify_peek(l);

		if ((t.type != QT_WORD && t.type != QT_QSTR) || t.start != end)
			return end;
		(void)qualify_next(l);
		end = t.end;
	}
}

/* After '@': a domain word or literal. */
static bool
qualify_domain(struct qlex *l)
{
	struct qtoken t = qualify_next(l);

	return t.type == QT_WORD || t.type == QT_DLIT;
}

/* Inside <...>, after '<'. */
static bool
qualify_angle(struct qlex *l)
{
	struct qtoken t = qualify_next(l);

	if (qualify_is_spec(t, '>'))
		return true; /* <> */
	if (qualify_is_spec(t, '@')) {
		/* obs-route: left alone, it carries a domain anyway. */
		do {
			t = qualify_next(l);
			if (t.type == QT_END || t.type == QT_BAD ||
			    qualify_is_spec(t, '<'))
				return false;
		} while (!qualify_is_spec(t, '>'));
		return true;
	}
	if (t.type != QT_WORD && t.type != QT_QSTR)
		return false;
	size_t end = qualify_local_end(l, t);
	t = qualify_next(l);
	if (qualify_is_spec(t, '>')) {
		qualify_insert(l, end);
		return true;
	}
	if (!qualify_is_spec(t, '@') || !qualify_domain(l))
		return false;
	return qualify_is_spec(qualify_next(l), '>');
}

static bool qualify_list(struct qlex *l, bool in_group);

/* One element of a list: empty, addr-spec, name-addr or group. */
static bool
qualify_address(struct qlex *l, bool in_group)
{
	struct qtoken first = qualify_peek(l);
	size_t words = 0, local_end = 0;

	if (first.type == QT_WORD || first.type == QT_QSTR) {
		(void)qualify_next(l);
		local_end = qualify_local_end(l, first);
		words = 1;
		/* Further words make it a phrase (display name). */
		for (struct qtoken t = qualify_peek(l);
		     t.type == QT_WORD || t.type == QT_QSTR; t = qualify_peek(l)) {
			(void)qualify_next(l);
			words++;
		}
	}
	struct qtoken t = qualify_peek(l);
	if (t.type == QT_END || qualify_is_spec(t, ',') ||
	    (in_group && qualify_is_spec(t, ';'))) {
		if (words > 1)
			return false; /* "Root User": no address at all */
		if (words == 1)
			qualify_insert(l, local_end);
		return true;
	}
	(void)qualify_next(l);
	if (qualify_is_spec(t, '@'))
		return words == 1 && qualify_domain(l);
	if (qualify_is_spec(t, '<'))
		return qualify_angle(l);
	if (qualify_is_spec(t, ':') && !in_group && words > 0) {
		if (!qualify_list(l, true))
			return false;
		return qualify_is_spec(qualify_next(l), ';');
	}
	return false;
}

/* address-list, or a group's mailbox list (stops before ';'). */
static bool
qualify_list(struct qlex *l, bool in_group)
{
	for (;;) {
		if (!qualify_address(l, in_group))
			return false;
		struct qtoken t = qualify_peek(l);
		if (t.type == QT_END)
			return !in_group;
		if (in_group && qualify_is_spec(t, ';'))
			return true;
		if (!qualify_is_spec(t, ','))
			return false;
		(void)qualify_next(l);
	}
}

static bool
qualify_domain_ok(const char *domain)
{
	return domain != NULL && domain[0] != '\0' &&
	       addr_check_domain(domain, strlen(domain), NULL) == ADDR_OK;
}

int
qualify_header(const char *value, size_t n, const char *domain,
	       struct buf *out)
{
	struct qlex l = { value, n, 0, NULL, domain, 0, 0, 0 };
	size_t old = out->len;

	if (!qualify_domain_ok(domain))
		return -EINVAL;
	if (memchr(value, '\0', n) != NULL || !qualify_list(&l, false) ||
	    l.count == 0) {
		if (buf_append(out, value, n) != 0)
			return -ENOBUFS;
		return 0;
	}
	/* The dry run passed: emit. */
	l.pos = 0;
	l.out = out;
	l.count = 0;
	(void)qualify_list(&l, false);
	if (l.err == 0 && buf_append(out, value + l.copied, n - l.copied) != 0)
		l.err = -ENOBUFS;
	if (l.err != 0) {
		out->len = old;
		if (out->data != NULL)
			out->data[old] = '\0';
		return l.err;
	}
	return l.count;
}

/* True if p[0..n) is one local part with no '@': dot-atom or quoted. */
static bool
qualify_bare_local(const char *p, size_t n)
{
	struct addr_path ap;

	if (n == 0 || n > SMTP_LOCAL_MAX)
		return false;
	if (addr_parse_path(p, n, &ap) != ADDR_OK)
		return false;
	return !ap.has_domain && !ap.route;
}

int
qualify_addr(const char *addr, size_t n, const char *domain, struct buf *out)
{
	const char *p = addr;
	size_t len = n, old = out->len;

	if (!qualify_domain_ok(domain))
		return -EINVAL;
	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		p = addr + 1;
		len = n - 2;
	}
	if (!qualify_bare_local(p, len)) {
		if (buf_append(out, addr, n) != 0)
			return -ENOBUFS;
		return 0;
	}
	size_t tail = (size_t)(p - addr) + len;
	if (buf_append(out, addr, tail) != 0 || buf_append(out, "@", 1) != 0 ||
	    buf_puts(out, domain) != 0 ||
	    buf_append(out, addr + tail, n - tail) != 0) {
		out->len = old;
		if (out->data != NULL)
			out->data[old] = '\0';
		return -ENOBUFS;
	}
	return 1;
}
