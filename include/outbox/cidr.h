/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CIDR_H
#define OUTBOX_CIDR_H
/* Client allow-list matching (pure). IPv4-mapped IPv6 clients (::ffff:a.b.c.d)
 * match IPv4 networks, so a dual-stack socket cannot bypass the list. */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/config.h"

/* family AF_INET (4 bytes) or AF_INET6 (16 bytes), addr in network order. */
bool cidr_match(const struct config_cidr *list, size_t n, int family,
		const unsigned char *addr);

#endif
