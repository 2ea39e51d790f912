/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	MX answer → routing (mx_answer.h). c-ares does the wire parsing;
 *	what a record means (null MX, bad names, preference order) is
 *	mx_order's job in proto/mx.c.
 */
#include <ares.h>
#include <stdlib.h>

#include "outbox/mx_answer.h"
#include "outbox/str.h"

static const char *
mx_answer_why(enum mx_status ms)
{
	switch (ms) {
	case MX_OK:
		return "";
	case MX_NULL:
		return "null MX";
	case MX_BAD:
		return "no usable MX host name";
	default:
		return "no MX records";
	}
}

enum mx_status
mx_answer_route(const unsigned char *abuf, int alen, struct mx_list *out,
		uint32_t (*random)(void *arg), void *arg, const char **why)
{
	struct ares_mx_reply *mx = NULL;
	int st = ares_parse_mx_reply(abuf, alen, &mx);
	*why = st == ARES_ENODATA ? "no MX records" : ares_strerror(st);
	if (st == ARES_ENODATA)
		return MX_IMPLICIT;
	if (st != ARES_SUCCESS)
		return MX_TEMP;
	size_t n = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next)
		n++;
	struct mx_host *rec = calloc(n ? n : 1, sizeof(*rec));
	if (rec == NULL) {
		ares_free_data(mx);
		*why = "out of memory";
		return MX_TEMP;
	}
	n = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next, n++) {
		rec[n].pref = m->priority;
		/* Too long for a host name: keep it invalid, never "" (null MX). */
		if (str_copy(rec[n].name, sizeof(rec[n].name), m->host) != 0)
			str_copy(rec[n].name, sizeof(rec[n].name), "-");
	}
	ares_free_data(mx);
	enum mx_status ms = mx_order(rec, n, out, random, arg);
	free(rec);
	*why = mx_answer_why(ms);
	return ms;
}
