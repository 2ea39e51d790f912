/* layer: proto */
/* needs: cares */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: DNS MX answer handling. The input is a DNS answer
 *	message; it is parsed with c-ares' ares_parse_mx_reply and turned
 *	into routing exactly as io/resolver.c's resolver_mx_parse does (that
 *	function is static in the I/O layer, so its ten lines of record
 *	conversion are repeated here; keep them in step), then mx_order.
 *
 *	Invariants: parsing and conversion never crash or leak; a name too
 *	long for mx_host.name never becomes a null MX; every routed host is
 *	a valid lower-case host name; an answer whose records all parse
 *	into valid names never ends as MX_BAD.
 */
#include <ares.h>

#include "fuzz.h"
#include "outbox/mx.h"
#include "outbox/str.h"

static uint32_t
fdns_random(void *arg)
{
	return fuzz_rand(arg);
}

/* resolver_mx_parse's conversion (io/resolver.c). */
static enum mx_status
fdns_route(const unsigned char *abuf, int alen, struct mx_list *list,
	   uint64_t *seed)
{
	struct ares_mx_reply *mx = NULL;
	int st = ares_parse_mx_reply(abuf, alen, &mx);
	if (st == ARES_ENODATA)
		return MX_IMPLICIT;
	if (st != ARES_SUCCESS)
		return MX_TEMP;
	size_t n = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next)
		n++;
	struct mx_host *rec = calloc(n ? n : 1, sizeof(*rec));
	if (rec == NULL)
		abort();
	bool any_null = false, all_valid = n > 0;
	n = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next, n++) {
		FUZZ_ASSERT(m->host != NULL);
		rec[n].pref = m->priority;
		if (str_copy(rec[n].name, sizeof(rec[n].name), m->host) != 0)
			str_copy(rec[n].name, sizeof(rec[n].name), "-");
		any_null |= rec[n].name[0] == '\0' || strcmp(rec[n].name, ".") == 0;
		all_valid &= mx_host_valid(rec[n].name);
		FUZZ_ASSERT(rec[n].name[0] != '\0' || m->host[0] == '\0');
	}
	ares_free_data(mx);
	enum mx_status ms = mx_order(rec, n, list, fdns_random, seed);
	free(rec);
	if (any_null)
		FUZZ_ASSERT(ms == MX_NULL);
	else if (all_valid)
		FUZZ_ASSERT(ms == MX_OK);
	return ms;
}

static void
fuzz_dns(const uint8_t *data, size_t size)
{
	if (size > 65535)
		return; /* a DNS message is at most 64 KiB */
	uint64_t seed = size;
	struct mx_list *list = malloc(sizeof(*list));
	if (list == NULL)
		abort();
	enum mx_status st = fdns_route(data, (int)size, list, &seed);
	if (st == MX_OK) {
		FUZZ_ASSERT(list->n >= 1 && list->n <= MX_MAX_HOSTS);
		for (size_t i = 0; i < list->n; i++)
			FUZZ_ASSERT(mx_host_valid(list->host[i].name));
	}
	free(list);
}

FUZZ_ENTRY(fuzz_dns)
