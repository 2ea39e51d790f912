/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: MX routing (mx.h). An MX list made of the input goes
 *	through mx_order with a random() taken from the input; the input
 *	also goes through mx_rcpt_domain, mx_literal_ip and mx_host_valid.
 *
 *	Input: a random seed byte, then records: two preference bytes, then
 *	a name up to a NUL (at most 64 records).
 *
 *	Invariants (mx.h): no records is MX_IMPLICIT; any null MX ("" or
 *	".") is MX_NULL; otherwise the result holds min(MX_MAX_HOSTS,
 *	distinct valid names) hosts, or MX_BAD for none; the hosts are
 *	valid, lower-case, without a trailing dot, distinct, in ascending
 *	preference, each with the best preference its name had, and the
 *	best preference present is never cut.
 */
#include <ctype.h>
#include <strings.h>

#include "fuzz.h"
#include "outbox/mx.h"
#include "outbox/str.h"

#define FMX_MAX 64

static uint32_t
fmx_random(void *arg)
{
	return fuzz_rand(arg);
}

/* a and b name the same host: case-insensitive, one trailing dot ignored. */
static bool
fmx_same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static void
fmx_check(const struct mx_host *rec, size_t n, enum mx_status st,
	  const struct mx_list *out)
{
	bool null = false;
	size_t distinct = 0;
	unsigned best = ~0u;
	for (size_t i = 0; i < n; i++) {
		if (rec[i].name[0] == '\0' || strcmp(rec[i].name, ".") == 0)
			null = true;
		if (!mx_host_valid(rec[i].name))
			continue;
		if (rec[i].pref < best)
			best = rec[i].pref;
		size_t j = 0;
		while (j < i && !(mx_host_valid(rec[j].name) &&
				  fmx_same(rec[i].name, rec[j].name)))
			j++;
		distinct += j == i;
	}
	if (n == 0)
		FUZZ_ASSERT(st == MX_IMPLICIT);
	else if (null)
		FUZZ_ASSERT(st == MX_NULL);
	else if (distinct == 0)
		FUZZ_ASSERT(st == MX_BAD);
	if (st != MX_OK)
		return;
	FUZZ_ASSERT(out->n == (distinct < MX_MAX_HOSTS ? distinct : MX_MAX_HOSTS));
	FUZZ_ASSERT(out->host[0].pref == best);
	for (size_t i = 0; i < out->n; i++) {
		const struct mx_host *h = &out->host[i];
		size_t l = strlen(h->name);
		FUZZ_ASSERT(mx_host_valid(h->name) && h->name[l - 1] != '.');
		for (size_t k = 0; k < l; k++)
			FUZZ_ASSERT(!isupper((unsigned char)h->name[k]));
		FUZZ_ASSERT(i == 0 || out->host[i - 1].pref <= h->pref);
		for (size_t j = 0; j < i; j++)
			FUZZ_ASSERT(!fmx_same(out->host[j].name, h->name));
		unsigned want = ~0u;
		for (size_t j = 0; j < n; j++)
			if (fmx_same(rec[j].name, h->name) && rec[j].pref < want)
				want = rec[j].pref;
		FUZZ_ASSERT(h->pref == want);
	}
}

static void
fmx_text(const char *s)
{
	char dom[HOSTNAME_MAX + 1], ip[64];
	if (mx_rcpt_domain(s, dom, sizeof(dom)) == 0)
		FUZZ_ASSERT(strlen(dom) <= HOSTNAME_MAX);
	if (mx_literal_ip(s, ip, sizeof(ip)) == 0)
		FUZZ_ASSERT(strlen(ip) < sizeof(ip));
	(void)mx_host_valid(s);
}

static void
fuzz_mx(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint64_t seed = fuzz_byte(&in);
	struct mx_host *rec = calloc(FMX_MAX, sizeof(*rec));
	struct mx_list *out = malloc(sizeof(*out));
	if (rec == NULL || out == NULL)
		abort();
	size_t n = 0;
	while (in.n > 0 && n < FMX_MAX) {
		unsigned hi = fuzz_byte(&in), lo = fuzz_byte(&in);
		rec[n].pref = hi << 8 | lo;
		char *name = fuzz_field(&in, 0, NULL);
		fmx_text(name);
		str_copy(rec[n].name, sizeof(rec[n].name), name);
		free(name);
		n++;
	}
	enum mx_status st = mx_order(rec, n, out, fmx_random, &seed);
	fmx_check(rec, n, st, out);
	FUZZ_ASSERT(mx_status_text(st) != NULL && mx_status_enh(st) != NULL);
	(void)mx_status_code(st);
	(void)mx_status_permanent(st);
	free(rec);
	free(out);
}

FUZZ_ENTRY(fuzz_mx)
