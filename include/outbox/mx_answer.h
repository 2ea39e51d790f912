/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_MX_ANSWER_H
#define OUTBOX_MX_ANSWER_H
/*
 * A DNS MX answer, as it came off the wire, turned into routing: parsed
 * with c-ares' ares_parse_mx_reply, each record converted, then ordered
 * by the pure mx_order (mx.h). Its own file so the fuzzer runs exactly
 * the code the resolver runs.
 */
#include <stdint.h>

#include "outbox/mx.h"

/*
 * out is filled only for MX_OK. *why is a constant text for the log:
 * "" for MX_OK, else "no MX records", "null MX", a c-ares error, ...
 */
enum mx_status mx_answer_route(const unsigned char *abuf, int alen,
			       struct mx_list *out,
			       uint32_t (*random)(void *arg), void *arg,
			       const char **why);

#endif
