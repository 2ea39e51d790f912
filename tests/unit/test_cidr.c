/* layer: proto */
/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "check.h"
#include "outbox/cidr.h"

static struct config_cidr
net(const char *ip, unsigned prefix)
{
	struct config_cidr c = { 0 };
	c.prefix = prefix;
	if (inet_pton(AF_INET, ip, c.addr) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, c.addr) == 1)
		c.family = AF_INET6;
	return c;
}

static bool
match(const struct config_cidr *list, size_t n, const char *ip)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1)
		return cidr_match(list, n, AF_INET, a);
	CHECK(inet_pton(AF_INET6, ip, a) == 1);
	return cidr_match(list, n, AF_INET6, a);
}

int
main(void)
{
	struct config_cidr list[] = { net("127.0.0.0", 8), net("::1", 128),
				      net("192.168.1.128", 25) };
	CHECK(match(list, 3, "127.0.0.1"));
	CHECK(match(list, 3, "127.255.1.2"));
	CHECK(!match(list, 3, "128.0.0.1"));
	CHECK(match(list, 3, "::1"));
	CHECK(!match(list, 3, "::2"));
	CHECK(match(list, 3, "::ffff:127.0.0.1"));   /* mapped v4 */
	CHECK(!match(list, 3, "::ffff:10.0.0.1"));
	CHECK(match(list, 3, "192.168.1.200"));
	CHECK(!match(list, 3, "192.168.1.127"));
	CHECK(!match(list, 0, "127.0.0.1"));          /* empty list allows none */
	struct config_cidr any4[] = { net("0.0.0.0", 0) };
	CHECK(match(any4, 1, "8.8.8.8"));
	CHECK(!match(any4, 1, "::1"));
	CHECK_DONE();
}
