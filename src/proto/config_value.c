/* SPDX-License-Identifier: MIT */
/*
 * config_value: the syntax of configuration values (sizes, durations,
 * booleans, host:port, CIDR networks, host names). Pure: no I/O, and
 * inet_pton is only used as a parser. Callers add the key name and source
 * to the messages written here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "outbox/config.h"
#include "outbox/str.h"

/* Values echoed in messages are cut and made printable. */
#define SHOW_MAX 80

static int
value_mul(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul != 0 && v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Split s into its leading digits and the suffix after them. */
static size_t
value_digits(const char *s)
{
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

int
config_value_size(const char *s, uint64_t *out)
{
	size_t n = value_digits(s);
	uint64_t v, mul = 1;
	if (str_nto_u64(s, n, 0, UINT64_MAX, &v) < 0)
		return -1;
	const char *suf = s + n;
	if (*suf != '\0') {
		if (suf[1] != '\0')
			return -1;
		switch (*suf) {
		case 'k': case 'K': mul = 1024; break;
		case 'm': case 'M': mul = 1024 * 1024; break;
		case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
		default: return -1;
		}
	}
	return value_mul(v, mul, out);
}

int
config_value_duration_ms(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	size_t n = value_digits(s);
	uint64_t v;
	if (str_nto_u64(s, n, 0, UINT64_MAX, &v) < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(s + n, units[i].suffix) == 0)
			return value_mul(v, units[i].ms, out);
	return -1;
}

int
config_value_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

bool
config_value_is_ip(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Only digits and dots: meant as an IPv4 literal, so it must be one. */
static bool
value_looks_ipv4(const char *s)
{
	return s[0] != '\0' && strspn(s, "0123456789.") == strlen(s);
}

static bool
value_label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
	}
	return true;
}

bool
config_value_hostname(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > HOSTNAME_MAX)
		return false;
	if (value_looks_ipv4(s)) {
		unsigned char a[4];
		return inet_pton(AF_INET, s, a) == 1;
	}
	/* One trailing dot (a rooted name) is allowed. */
	if (s[len - 1] == '.')
		len--;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!value_label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static void
value_msg(char *msg, size_t msglen, const char *what, const char *s,
	  size_t n)
{
	char shown[SHOW_MAX + 1];
	str_sanitize(shown, sizeof shown, s, n);
	if (msg != NULL && msglen > 0)
		snprintf(msg, msglen, "%s in '%s'", what, shown);
}

/* Port text p[0..n) after the ':'. */
static int
value_port(const char *p, size_t n, bool port0_ok, uint16_t *port,
	   const char **why)
{
	uint64_t v;
	if (n == 0 || n > 20 || value_digits(p) < n) {
		*why = "bad port";
		return -1;
	}
	if (str_nto_u64(p, n, port0_ok ? 0 : 1, 65535, &v) < 0) {
		*why = "port out of range";
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* Split s[0..n) into host and optional port text; brackets removed. */
static int
value_split_hostport(const char *s, size_t n, const char **host,
		     size_t *hlen, const char **port, size_t *plen,
		     bool *bracketed, const char **why)
{
	const char *colon;
	*port = NULL;
	*plen = 0;
	*bracketed = s[0] == '[';
	if (*bracketed) {
		const char *close = memchr(s, ']', n);
		if (close == NULL) {
			*why = "missing ']'";
			return -1;
		}
		*host = s + 1;
		*hlen = (size_t)(close - s) - 1;
		size_t rest = n - (size_t)(close - s) - 1;
		if (rest == 0)
			return 0;
		if (close[1] != ':') {
			*why = "bad address";
			return -1;
		}
		*port = close + 2;
		*plen = rest - 1;
		return 0;
	}
	*host = s;
	*hlen = n;
	colon = memchr(s, ':', n);
	if (colon == NULL)
		return 0;
	if (memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) != NULL) {
		*why = "IPv6 address needs brackets ([::1]:25)";
		return -1;
	}
	*hlen = (size_t)(colon - s);
	*port = colon + 1;
	*plen = n - *hlen - 1;
	return 0;
}

int
config_value_hostport(const char *s, size_t n, uint16_t defport,
		      bool port0_ok, struct config_hostport *out, char *msg,
		      size_t msglen)
{
	const char *host, *port, *why = "bad address";
	size_t hlen, plen;
	bool bracketed;
	if (n == 0)
		goto bad;
	if (value_split_hostport(s, n, &host, &hlen, &port, &plen,
				 &bracketed, &why) < 0)
		goto bad;
	if (hlen == 0) {
		why = "missing host";
		goto bad;
	}
	if (str_ncopy(out->host, sizeof out->host, host, hlen) < 0) {
		why = "bad host";
		goto bad;
	}
	unsigned char a[16];
	if (bracketed ? inet_pton(AF_INET6, out->host, a) != 1
		      : !config_value_hostname(out->host)) {
		why = bracketed ? "bad IPv6 address" : "bad host";
		goto bad;
	}
	out->port = defport;
	if (port != NULL && value_port(port, plen, port0_ok, &out->port,
				       &why) < 0)
		goto bad;
	return 0;
bad:
	value_msg(msg, msglen, why, s, n);
	return -1;
}

static void
value_mask(struct config_cidr *c)
{
	size_t bytes = c->family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < bytes; i++) {
		unsigned keep = c->prefix > i * 8 ? c->prefix - (unsigned)i * 8
						  : 0;
		if (keep < 8)
			c->addr[i] &= (uint8_t)(0xff00u >> keep);
	}
}

int
config_value_cidr(const char *s, size_t n, struct config_cidr *out,
		  char *msg, size_t msglen)
{
	char addr[64];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash != NULL ? (size_t)(slash - s) : n;
	const char *why = "bad network";
	memset(out, 0, sizeof *out);
	if (alen == 0 || str_ncopy(addr, sizeof addr, s, alen) < 0)
		goto bad;
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		goto bad;
	unsigned max = out->family == AF_INET ? 32 : 128;
	out->prefix = max;
	if (slash != NULL) {
		uint64_t v;
		size_t plen = n - alen - 1;
		if (plen == 0 || value_digits(slash + 1) < plen)
			goto bad;
		if (str_nto_u64(slash + 1, plen, 0, max, &v) < 0) {
			why = "prefix out of range";
			goto bad;
		}
		out->prefix = (unsigned)v;
	}
	value_mask(out);
	return 0;
bad:
	value_msg(msg, msglen, why, s, n);
	return -1;
}
