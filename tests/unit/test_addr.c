/* layer: proto */
/* SPDX-License-Identifier: MIT */
/* Table tests for path parsing (RFC 5321 4.1.2, 4.5.3.1). */
#include "check.h"
#include "outbox/addr.h"

struct path_case {
	const char *in;
	size_t len;               /* 0: strlen(in) */
	enum addr_status want;
	const char *mailbox;      /* on ADDR_OK */
	bool has_domain, eightbit, route;
};

static const struct path_case path_cases[] = {
	{ "", 0, ADDR_OK, "", false, false, false },
	{ "a@b.test", 0, ADDR_OK, "a@b.test", true, false, false },
	{ "root", 0, ADDR_OK, "root", false, false, false },
	{ "postmaster", 0, ADDR_OK, "postmaster", false, false, false },
	{ "first.last+tag@sub.d-x.test", 0, ADDR_OK, "first.last+tag@sub.d-x.test", true, false, false },
	{ "!#$%&'*+-/=?^_`{|}~@d.test", 0, ADDR_OK, "!#$%&'*+-/=?^_`{|}~@d.test", true, false, false },
	{ "\"a b\"@c.test", 0, ADDR_OK, "\"a b\"@c.test", true, false, false },
	{ "\"x;id|sh`$(id)`\"@d.test", 0, ADDR_OK, "\"x;id|sh`$(id)`\"@d.test", true, false, false },
	{ "\"q\\\"uote\"@d.test", 0, ADDR_OK, "\"q\\\"uote\"@d.test", true, false, false },
	{ "\"\"@d.test", 0, ADDR_OK, "\"\"@d.test", true, false, false },
	{ "\"local only\"", 0, ADDR_OK, "\"local only\"", false, false, false },
	{ "@r1.test,@r2.test:u@d.test", 0, ADDR_OK, "u@d.test", true, false, true },
	{ "@[192.0.2.1]:u@d.test", 0, ADDR_OK, "u@d.test", true, false, true },
	{ "u@[192.0.2.1]", 0, ADDR_OK, "u@[192.0.2.1]", true, false, false },
	{ "u@[IPv6:2001:db8::1]", 0, ADDR_OK, "u@[IPv6:2001:db8::1]", true, false, false },
	{ "u@[ipv6:::1]", 0, ADDR_OK, "u@[ipv6:::1]", true, false, false },
	{ "u@[IPv6:1:2:3:4:5:6:7:8]", 0, ADDR_OK, "u@[IPv6:1:2:3:4:5:6:7:8]", true, false, false },
	{ "u@[IPv6:::ffff:192.0.2.1]", 0, ADDR_OK, "u@[IPv6:::ffff:192.0.2.1]", true, false, false },
	{ "u@[IPv6:1::]", 0, ADDR_OK, "u@[IPv6:1::]", true, false, false },
	{ "j\xc3\xb6ran@d.test", 0, ADDR_OK, "j\xc3\xb6ran@d.test", true, true, false },
	{ "a@d\xc3\xb6.test", 0, ADDR_OK, "a@d\xc3\xb6.test", true, true, false },
	{ "\"\xc3\xb6\"@d.test", 0, ADDR_OK, "\"\xc3\xb6\"@d.test", true, true, false },
	{ "a@b_c.test", 0, ADDR_OK, "a@b_c.test", true, false, false },
	{ "a@1.2.3.4", 0, ADDR_OK, "a@1.2.3.4", true, false, false },
	/* syntax */
	{ "a@@b.test", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a..b@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ ".a@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "a.@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "a b@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "a(b)@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "\"open@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "\"q\"x@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "@r1.test:", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "@r1.test;u@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "@bad..r:u@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	{ "\"bs\\\x80\"@d.test", 0, ADDR_E_SYNTAX, NULL, false, false, false },
	/* domains */
	{ "a@", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@b.test.", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@.b.test", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@-b.test", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@b-.test", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@b!.test", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[256.1.1.1]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[1.2.3]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[1.2.3.4.5]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[1.2.3.4", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6:1:2:3:4:5:6:7:8:9]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6:1::2::3]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6:12345::]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6::1]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6:1:2:3:4:5:6:7]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[IPv6:1:]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	{ "a@[x-tag:foo]", 0, ADDR_E_DOMAIN, NULL, false, false, false },
	/* control bytes, also inside quotes; NUL is not an end of string */
	{ "a\x01@d.test", 0, ADDR_E_CTRL, NULL, false, false, false },
	{ "a@d\x7f.test", 0, ADDR_E_CTRL, NULL, false, false, false },
	{ "\"a\tb\"@d.test", 0, ADDR_E_CTRL, NULL, false, false, false },
	{ "a\0b@d.test", 10, ADDR_E_CTRL, NULL, false, false, false },
	{ "a@d.test\r\nRCPT TO:<x@y>", 0, ADDR_E_CTRL, NULL, false, false, false },
};

static void
test_path_table(void)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct addr_path p;
		size_t n = c->len ? c->len : strlen(c->in);
		enum addr_status st = addr_parse_path(c->in, n, &p);
		if (st != c->want)
			fprintf(stderr, "case %zu \"%s\": %s\n", i, c->in,
				addr_status_str(st));
		CHECK_EQ(st, c->want);
		if (st != ADDR_OK) {
			CHECK_STR_EQ(p.mailbox, "");
			continue;
		}
		CHECK_STR_EQ(p.mailbox, c->mailbox);
		CHECK_EQ(p.has_domain, c->has_domain);
		CHECK_EQ(p.eightbit, c->eightbit);
		CHECK_EQ(p.route, c->route);
	}
}

static void
fill(char *dst, char c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
}

/* 4.5.3.1: local part 64, domain 255, label 63, path 256. */
static void
test_limits(void)
{
	char buf[600];
	struct addr_path p;
	/* local part: 64 ok, 65 not */
	fill(buf, 'l', 64);
	memcpy(buf + 64, "@d.test", 8);
	CHECK_EQ(addr_parse_path(buf, strlen(buf), &p), ADDR_OK);
	CHECK_EQ(p.local_len, 64);
	fill(buf, 'l', 65);
	memcpy(buf + 65, "@d.test", 8);
	CHECK_EQ(addr_parse_path(buf, strlen(buf), &p), ADDR_E_LOCAL_LONG);
	/* label: 63 ok, 64 not */
	memcpy(buf, "a@", 2);
	fill(buf + 2, 'x', 63);
	CHECK_EQ(addr_parse_path(buf, strlen(buf), &p), ADDR_OK);
	fill(buf + 2, 'x', 64);
	CHECK_EQ(addr_parse_path(buf, strlen(buf), &p), ADDR_E_DOMAIN);
	/* path: 256 ok, 257 too long (checked before anything else) */
	char dom[200];
	fill(dom, 'd', 63);
	dom[63] = '.';
	fill(dom + 64, 'e', 63);
	dom[127] = '.';
	fill(dom + 128, 'f', 63); /* 191 */
	fill(buf, 'l', 64);
	buf[64] = '@';
	memcpy(buf + 65, dom, 192);
	CHECK_EQ(strlen(buf), 256);
	CHECK_EQ(addr_parse_path(buf, 256, &p), ADDR_OK);
	CHECK_EQ(strlen(p.mailbox), 256);
	memmove(buf + 1, buf, 257);
	buf[0] = 'l';
	CHECK_EQ(addr_parse_path(buf, 257, &p), ADDR_E_PATH_LONG);
	memset(buf, '\x01', 300);
	CHECK_EQ(addr_parse_path(buf, 300, &p), ADDR_E_PATH_LONG);
	/* a domain alone over 255 */
	fill(buf, 'a', 60);
	for (int i = 0; i < 4; i++)
		buf[i * 61 + 60] = '.', fill(buf + i * 61 + 61, 'b', 60);
	CHECK(strlen(buf) > 255);
	CHECK_EQ(addr_check_domain(buf, strlen(buf), NULL), ADDR_E_DOMAIN);
	CHECK_EQ(addr_check_domain(buf, 243, NULL), ADDR_OK);
}

static void
test_domain(void)
{
	bool e = false;
	CHECK_EQ(addr_check_domain("mx.test", 7, &e), ADDR_OK);
	CHECK(!e);
	CHECK_EQ(addr_check_domain("m\xc3\xb6.test", 8, &e), ADDR_OK);
	CHECK(e);
	CHECK_EQ(addr_check_domain("", 0, NULL), ADDR_E_DOMAIN);
	CHECK_EQ(addr_check_domain("[127.0.0.1]", 11, NULL), ADDR_OK);
	CHECK_EQ(addr_check_domain("[127.0.0.01]", 12, NULL), ADDR_OK);
	CHECK_EQ(addr_check_domain("[1234.0.0.1]", 12, NULL), ADDR_E_DOMAIN);
	CHECK_STR_EQ(addr_status_str(ADDR_E_PATH_LONG), "path too long");
}

int
main(void)
{
	test_path_table();
	test_limits();
	test_domain();
	CHECK_DONE();
}
