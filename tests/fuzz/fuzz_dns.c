/* layer: io */
/* needs: cares */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: DNS MX answer handling. The input is a DNS answer
 *	message, routed by io/mx_answer.c's mx_answer_route, the function
 *	the resolver calls. The oracle parses the answer once more with
 *	ares_parse_mx_reply to know what the records say.
 *
 *	Invariants: parsing and conversion never crash or leak; a name too
 *	long for mx_host.name never becomes a null MX; every routed host is
 *	a valid lower-case host name; an answer whose records all parse
 *	into valid names never ends as MX_BAD.
 */
#include <ares.h>

#include "fuzz.h"
#include "outbox/mx_answer.h"
#include "outbox/str.h"

static uint32_t
fdns_random(void *arg)
{
	return fuzz_rand(arg);
}

/* What the records say: is there a null MX, are all names valid? */
static void
fdns_oracle(const unsigned char *abuf, int alen, bool *any_null,
	    bool *all_valid)
{
	struct ares_mx_reply *mx = NULL;
	*any_null = false;
	*all_valid = false;
	if (ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS)
		return;
	*all_valid = mx != NULL;
	for (struct ares_mx_reply *m = mx; m; m = m->next) {
		FUZZ_ASSERT(m->host != NULL);
		char name[sizeof(((struct mx_host *)0)->name)];
		if (str_copy(name, sizeof(name), m->host) != 0)
			str_copy(name, sizeof(name), "-");
		*any_null |= name[0] == '\0' || strcmp(name, ".") == 0;
		*all_valid &= mx_host_valid(name);
	}
	ares_free_data(mx);
}

static enum mx_status
fdns_route(const unsigned char *abuf, int alen, struct mx_list *list,
	   uint64_t *seed)
{
	bool any_null, all_valid;
	fdns_oracle(abuf, alen, &any_null, &all_valid);
	const char *why = NULL;
	enum mx_status ms = mx_answer_route(abuf, alen, list, fdns_random,
					    seed, &why);
	FUZZ_ASSERT(why != NULL);
	FUZZ_ASSERT((ms == MX_OK) == (why[0] == '\0'));
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
