/* SPDX-License-Identifier: MIT */
/*
 * Allow-list matching for the listener: is a client address inside one of
 * the configured networks. Pure; the glue converts sockaddr to bytes.
 */
#include <string.h>
#include <sys/socket.h>

#include "outbox/cidr.h"

static bool
cidr_prefix_equal(const unsigned char *a, const unsigned char *b,
		  unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xFF << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xFF, 0xFF };

bool
cidr_match(const struct config_cidr *list, size_t n, int family,
	   const unsigned char *addr)
{
	if (family == AF_INET6 && memcmp(addr, v4mapped, 12) == 0) {
		family = AF_INET;
		addr += 12;
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i].family != family)
			continue;
		if (cidr_prefix_equal(list[i].addr, addr, list[i].prefix))
			return true;
	}
	return false;
}
