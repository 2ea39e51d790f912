/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Path syntax for MAIL FROM and RCPT TO (RFC 5321 4.1.2). The parser
 *	walks the text once, left to right, with explicit lengths: a NUL byte
 *	is a control byte like any other, never an end of string. Limits are
 *	checked before syntax so an over-long path gets the "Path too long"
 *	answer. The mailbox is copied out byte exact; nothing is unquoted,
 *	because the address must reach the upstream server as it was given.
 */
#include <string.h>

#include "outbox/addr.h"
#include "outbox/str.h"

#define ADDR_LABEL_MAX 63

static bool
addr_is_ctrl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* RFC 5322 atext, plus UTF-8 bytes (RFC 6531 extends atext). */
static bool
addr_is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
addr_is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static bool
addr_ipv4_ok(const char *p, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		size_t j = i;
		while (j < n && p[j] >= '0' && p[j] <= '9')
			j++;
		uint64_t v;
		if (j == i || j - i > 3 || str_nto_u64(p + i, j - i, 0, 255, &v) < 0)
			return false;
		if (part < 3) {
			if (j >= n || p[j] != '.')
				return false;
			j++;
		}
		i = j;
	}
	return i == n;
}

/* Hex groups separated by ':', one "::" at most, an IPv4 tail allowed. */
static bool
addr_ipv6_ok(const char *p, size_t n)
{
	size_t i = 0, groups = 0;
	bool dbl = false;
	if (n >= 2 && p[0] == ':' && p[1] == ':') {
		dbl = true;
		i = 2;
	}
	while (i < n) {
		size_t j = i;
		while (j < n && p[j] != ':')
			j++;
		if (memchr(p + i, '.', j - i) != NULL) {
			if (j != n || !addr_ipv4_ok(p + i, j - i))
				return false;
			groups += 2;
			break;
		}
		if (j == i || j - i > 4)
			return false;
		for (size_t k = i; k < j; k++)
			if (!addr_is_hex((unsigned char)p[k]))
				return false;
		groups++;
		if (j == n)
			break;
		i = j + 1;
		if (i < n && p[i] == ':') {
			if (dbl)
				return false;
			dbl = true;
			i++;
		} else if (i == n) {
			return false; /* a trailing single ':' */
		}
	}
	return dbl ? groups <= 7 : groups == 8;
}

static enum addr_status
addr_check_literal(const char *p, size_t n)
{
	if (n < 2 || p[n - 1] != ']')
		return ADDR_E_DOMAIN;
	p++;
	n -= 2;
	if (str_prefix_ci(p, n, "IPv6:"))
		return addr_ipv6_ok(p + 5, n - 5) ? ADDR_OK : ADDR_E_DOMAIN;
	return addr_ipv4_ok(p, n) ? ADDR_OK : ADDR_E_DOMAIN;
}

/* Letters, digits, '-' (not at either end), '_' (as Postfix), UTF-8. */
static bool
addr_label_ok(const char *p, size_t n, bool *eightbit)
{
	if (n == 0 || n > ADDR_LABEL_MAX || p[0] == '-' || p[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x80)
			*eightbit = true;
		else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

enum addr_status
addr_check_domain(const char *p, size_t n, bool *eightbit)
{
	bool dummy = false;
	if (eightbit == NULL)
		eightbit = &dummy;
	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return ADDR_E_DOMAIN;
	if (p[0] == '[')
		return addr_check_literal(p, n);
	size_t i = 0;
	while (i <= n) {
		const char *dot = memchr(p + i, '.', n - i);
		size_t end = dot ? (size_t)(dot - p) : n;
		if (!addr_label_ok(p + i, end - i, eightbit))
			return ADDR_E_DOMAIN;
		i = end + 1;
	}
	return ADDR_OK;
}

/* Length of the domain token at p: a literal through ']', else up to stop. */
static size_t
addr_domain_span(const char *p, size_t n, const char *stop)
{
	size_t i = 0;
	if (n > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', n);
		return close ? (size_t)(close - p) + 1 : n;
	}
	while (i < n && strchr(stop, p[i]) == NULL)
		i++;
	return i;
}

/* "@d1,@d2:" at the start; *used is its length. */
static enum addr_status
addr_skip_route(const char *p, size_t n, size_t *used)
{
	size_t i = 0;
	for (;;) {
		if (i >= n || p[i] != '@')
			return ADDR_E_SYNTAX;
		i++;
		size_t d = addr_domain_span(p + i, n - i, ",:");
		if (addr_check_domain(p + i, d, NULL) != ADDR_OK)
			return ADDR_E_SYNTAX;
		i += d;
		if (i >= n)
			return ADDR_E_SYNTAX;
		if (p[i++] == ':')
			break;
		if (p[i - 1] != ',')
			return ADDR_E_SYNTAX;
	}
	*used = i;
	return ADDR_OK;
}

/* RFC 5321 qtextSMTP and quoted-pairSMTP, plus UTF-8 in qtext. */
static enum addr_status
addr_quoted_local(const char *p, size_t n, size_t *used, bool *eightbit)
{
	size_t i = 1;
	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"') {
			*used = i + 1;
			return ADDR_OK;
		}
		if (c == '\\') {
			if (i + 1 >= n || (unsigned char)p[i + 1] < 0x20 ||
			    (unsigned char)p[i + 1] > 0x7e)
				return ADDR_E_SYNTAX;
			i += 2;
			continue;
		}
		if (c >= 0x80)
			*eightbit = true;
		i++;
	}
	return ADDR_E_SYNTAX; /* no closing quote */
}

/* Dot-string: atoms separated by single dots, up to '@' or the end. */
static enum addr_status
addr_dot_local(const char *p, size_t n, size_t *used, bool *eightbit)
{
	size_t i = 0;
	bool need_atext = true;
	while (i < n && p[i] != '@') {
		unsigned char c = (unsigned char)p[i];
		if (c == '.' && !need_atext) {
			need_atext = true;
		} else if (addr_is_atext(c)) {
			if (c >= 0x80)
				*eightbit = true;
			need_atext = false;
		} else {
			return ADDR_E_SYNTAX;
		}
		i++;
	}
	if (need_atext)
		return ADDR_E_SYNTAX; /* empty, or a trailing dot */
	*used = i;
	return ADDR_OK;
}

static enum addr_status
addr_parse_mailbox(const char *p, size_t n, struct addr_path *out)
{
	size_t local = 0;
	enum addr_status st;
	if (n > 0 && p[0] == '"')
		st = addr_quoted_local(p, n, &local, &out->eightbit);
	else
		st = addr_dot_local(p, n, &local, &out->eightbit);
	if (st != ADDR_OK)
		return st;
	if (local > SMTP_LOCAL_MAX)
		return ADDR_E_LOCAL_LONG;
	if (local < n) {
		if (p[local] != '@')
			return ADDR_E_SYNTAX;
		st = addr_check_domain(p + local + 1, n - local - 1,
				       &out->eightbit);
		if (st != ADDR_OK)
			return st;
		out->has_domain = true;
	}
	out->local_len = local;
	memcpy(out->mailbox, p, n);
	out->mailbox[n] = '\0';
	return ADDR_OK;
}

enum addr_status
addr_parse_path(const char *p, size_t n, struct addr_path *out)
{
	memset(out, 0, sizeof(*out));
	if (n > SMTP_PATH_MAX)
		return ADDR_E_PATH_LONG;
	for (size_t i = 0; i < n; i++)
		if (addr_is_ctrl((unsigned char)p[i]))
			return ADDR_E_CTRL;
	if (n == 0)
		return ADDR_OK;
	size_t skip = 0;
	if (p[0] == '@') {
		enum addr_status st = addr_skip_route(p, n, &skip);
		if (st != ADDR_OK)
			return st;
		out->route = true;
	}
	enum addr_status st = addr_parse_mailbox(p + skip, n - skip, out);
	if (st != ADDR_OK) {
		out->mailbox[0] = '\0';
		out->eightbit = false;
		out->has_domain = false;
	}
	return st;
}

const char *
addr_status_str(enum addr_status st)
{
	switch (st) {
	case ADDR_OK:
		return "ok";
	case ADDR_E_SYNTAX:
		return "bad address syntax";
	case ADDR_E_CTRL:
		return "control character in address";
	case ADDR_E_PATH_LONG:
		return "path too long";
	case ADDR_E_LOCAL_LONG:
		return "local part too long";
	case ADDR_E_DOMAIN:
		return "bad domain";
	}
	return "unknown";
}
