/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Routing for direct delivery (RFC 5321 5.1, RFC 7505, RELIABILITY.md
 *	4.4 and group C): what an MX answer means and in which order to try
 *	the hosts. Pure: the resolver glue supplies the records and the
 *	randomness.
 *
 *	Order: ascending preference; each equal-preference run shuffled
 *	(Fisher-Yates). When more than MX_MAX_HOSTS usable names exist, the
 *	run that crosses the cut is reservoir-sampled so every member of it
 *	has the same chance to be kept. Works without allocation in
 *	O(levels * n) for any n a DNS message can carry.
 */
#include <arpa/inet.h>
#include <string.h>

#include "outbox/mx.h"
#include "outbox/str.h"

/* Rejection sampling gives up after this many draws and takes the modulo,
 * so a broken random() (say, constant 0) cannot loop forever. */
#define MX_RANDOM_TRIES 8

static char
mx_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
mx_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
mx_is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       mx_is_digit(c) || c == '-';
}

/* One label s[0..len): 1..63 LDH octets, no '-' at either end. */
static bool
mx_label_valid(const char *s, size_t len)
{
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!mx_is_ldh(s[i]))
			return false;
	return true;
}

static bool
mx_all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!mx_is_digit(s[i]))
			return false;
	return true;
}

bool
mx_host_valid(const char *name)
{
	size_t len = strnlen(name, HOSTNAME_MAX + 2);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > HOSTNAME_MAX)
		return false;
	size_t start = 0, last = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '.')
			continue;
		if (!mx_label_valid(name + start, i - start))
			return false;
		last = start;
		start = i + 1;
	}
	/* No top-level domain is numeric; "192.0.2.1" is an address (C7). */
	return !mx_all_digits(name + last, len - last);
}

static bool
mx_is_null(const char *name)
{
	return name[0] == '\0' || strcmp(name, ".") == 0;
}

/* Case-insensitive, ONE trailing dot ignored: "a.." is not "a." (an
 * invalid name must never shadow a valid one; fuzz_mx). */
static bool
mx_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++)
		if (mx_lower(a[i]) != mx_lower(b[i]))
			return false;
	return true;
}

/* Uniform in [0, m), m >= 1. */
static uint32_t
mx_random_below(uint32_t m, uint32_t (*random)(void *), void *arg)
{
	uint32_t threshold = (uint32_t)(-m) % m; /* 2^32 mod m */
	uint32_t v = random(arg);
	for (int i = 1; v < threshold && i < MX_RANDOM_TRIES; i++)
		v = random(arg);
	return v % m;
}

/*
 * Record i counts when its name is valid and no record with the same name
 * comes before it in (preference, wire position) order: duplicates keep
 * their best preference.
 */
static bool
mx_counts(const struct mx_host *rec, size_t n, size_t i)
{
	if (!mx_host_valid(rec[i].name))
		return false;
	for (size_t j = 0; j < n; j++) {
		if (j == i || rec[j].pref > rec[i].pref)
			continue;
		if (rec[j].pref == rec[i].pref && j > i)
			continue;
		if (mx_name_eq(rec[j].name, rec[i].name))
			return false;
	}
	return true;
}

static void
mx_put(struct mx_host *dst, const struct mx_host *src)
{
	size_t len = strnlen(src->name, sizeof(src->name) - 1);
	if (len > 0 && src->name[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++)
		dst->name[i] = mx_lower(src->name[i]);
	dst->name[len] = '\0';
	dst->pref = src->pref;
}

/* The lowest preference above prev (-1: any) among counting records. */
static bool
mx_next_pref(const struct mx_host *rec, size_t n, long long prev,
	     unsigned *out)
{
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		if ((long long)rec[i].pref <= prev)
			continue;
		if (found && rec[i].pref >= *out)
			continue;
		if (!mx_counts(rec, n, i))
			continue;
		*out = rec[i].pref;
		found = true;
	}
	return found;
}

/*
 * Append the run of preference p: reservoir-sample at most the free
 * slots (algorithm R), then shuffle what was kept (Fisher-Yates), which
 * together give every member the same chance of every position.
 */
static void
mx_add_run(const struct mx_host *rec, size_t n, unsigned p,
	   struct mx_list *out, uint32_t (*random)(void *), void *arg)
{
	struct mx_host *slot = out->host + out->n;
	size_t room = MX_MAX_HOSTS - out->n, seen = 0;

	for (size_t i = 0; i < n; i++) {
		if (rec[i].pref != p || !mx_counts(rec, n, i))
			continue;
		if (seen < room) {
			mx_put(&slot[seen], &rec[i]);
		} else {
			uint32_t j = mx_random_below((uint32_t)(seen + 1),
						     random, arg);
			if (j < room)
				mx_put(&slot[j], &rec[i]);
		}
		seen++;
	}
	size_t kept = seen < room ? seen : room;
	for (size_t i = kept; i > 1; i--) {
		uint32_t j = mx_random_below((uint32_t)i, random, arg);
		struct mx_host tmp = slot[i - 1];
		slot[i - 1] = slot[j];
		slot[j] = tmp;
	}
	out->n += kept;
}

enum mx_status
mx_order(const struct mx_host *records, size_t n, struct mx_list *out,
	 uint32_t (*random)(void *arg), void *arg)
{
	out->n = 0;
	if (n == 0)
		return MX_IMPLICIT;
	/* RFC 7505: a null MX means the domain takes no mail, whatever else
	 * is published next to it (Postfix stops there too). */
	for (size_t i = 0; i < n; i++)
		if (mx_is_null(records[i].name))
			return MX_NULL;

	long long prev = -1;
	unsigned p = 0;
	while (out->n < MX_MAX_HOSTS && mx_next_pref(records, n, prev, &p)) {
		mx_add_run(records, n, p, out, random, arg);
		prev = p;
	}
	return out->n > 0 ? MX_OK : MX_BAD;
}

const char *
mx_status_enh(enum mx_status st)
{
	switch (st) {
	case MX_NULL:
		return "5.1.10";
	case MX_NXDOMAIN:
		return "5.1.2";
	case MX_BAD:
		return "5.4.4";
	case MX_TEMP:
		return "4.4.3";
	case MX_OK:
	case MX_IMPLICIT:
		break;
	}
	return "";
}

const char *
mx_status_text(enum mx_status st)
{
	switch (st) {
	case MX_NULL:
		return "Recipient address has null MX";
	case MX_NXDOMAIN:
		return "Host or domain name not found";
	case MX_BAD:
		return "No usable MX host for the domain";
	case MX_TEMP:
		return "Temporary DNS failure";
	case MX_OK:
	case MX_IMPLICIT:
		break;
	}
	return "";
}

int
mx_status_code(enum mx_status st)
{
	switch (st) {
	case MX_NULL:
		return 556; /* RFC 7504 */
	case MX_NXDOMAIN:
	case MX_BAD:
		return 550;
	case MX_TEMP:
		return 451;
	case MX_OK:
	case MX_IMPLICIT:
		break;
	}
	return 0;
}

bool
mx_status_permanent(enum mx_status st)
{
	return st == MX_NULL || st == MX_NXDOMAIN || st == MX_BAD;
}

/* Position of the last '@' outside a quoted string, or -1. */
static long
mx_last_at(const char *addr)
{
	long at = -1;
	bool quoted = false;
	for (size_t i = 0; addr[i] != '\0'; i++) {
		if (quoted && addr[i] == '\\' && addr[i + 1] != '\0')
			i++;
		else if (addr[i] == '"')
			quoted = !quoted;
		else if (!quoted && addr[i] == '@')
			at = (long)i;
	}
	return at;
}

int
mx_rcpt_domain(const char *addr, char *out, size_t size)
{
	long at = mx_last_at(addr);
	if (at < 0)
		return -1;
	const char *d = addr + at + 1;
	size_t len = strlen(d);
	if (len == 0 || len > HOSTNAME_MAX || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c <= ' ' || c == 0x7f)
			return -1;
	}
	if (d[0] == '[') {
		if (d[len - 1] != ']')
			return -1;
		memcpy(out, d, len + 1);
		/* The tag is case-insensitive (RFC 5321 4.1.3); one spelling
		 * keeps literals of the same host together. */
		if (str_prefix_ci(d + 1, len - 1, "IPv6:"))
			memcpy(out + 1, "IPv6", 4);
		return 0;
	}
	for (size_t i = 0; i <= len; i++)
		out[i] = mx_lower(d[i]);
	return 0;
}

int
mx_literal_ip(const char *domain, char *out, size_t size)
{
	size_t len = strlen(domain);
	if (len < 3 || domain[0] != '[' || domain[len - 1] != ']')
		return -1;
	const char *ip = domain + 1;
	size_t iplen = len - 2;
	int family = AF_INET;
	if (str_prefix_ci(ip, iplen, "IPv6:")) {
		ip += 5;
		iplen -= 5;
		family = AF_INET6;
	}
	char tmp[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	if (str_ncopy(tmp, sizeof(tmp), ip, iplen) != 0)
		return -1;
	if (inet_pton(family, tmp, bin) != 1)
		return -1;
	return str_copy(out, size, tmp);
}
