/* layer: proto */
/* SPDX-License-Identifier: MIT */
/* Qualifying bare local names in envelope addresses and header values. */
#include <errno.h>

#include "check.h"
#include "outbox/qualify.h"

#define DOM "example.com"

struct hcase {
	const char *in;
	const char *want; /* NULL: unchanged */
	int count;
};

static const struct hcase header_cases[] = {
	{ "root", "root@" DOM, 1 },
	{ "Root User <root>", "Root User <root@" DOM ">", 1 },
	{ "root (Cron Daemon)", "root@" DOM " (Cron Daemon)", 1 },
	{ "a, b@x, \"x, y\" <z>", "a@" DOM ", b@x, \"x, y\" <z@" DOM ">", 2 },
	{ "undisclosed-recipients:;", NULL, 0 },
	{ "group: a, b;", "group: a@" DOM ", b@" DOM ";", 2 },
	{ "group: a, b;, c", "group: a@" DOM ", b@" DOM ";, c@" DOM, 3 },
	{ "\"Cron Daemon\" <root>", "\"Cron Daemon\" <root@" DOM ">", 1 },
	{ "(c) root (d)", "(c) root@" DOM " (d)", 1 },
	{ "(nested (c)) root", "(nested (c)) root@" DOM, 1 },
	{ "first.last", "first.last@" DOM, 1 },
	{ "\"a b\"", "\"a b\"@" DOM, 1 },
	{ "\"a\".b", "\"a\".b@" DOM, 1 },
	{ "J. Smith <js>", "J. Smith <js@" DOM ">", 1 },
	{ "root,\r\n admin", "root@" DOM ",\r\n admin@" DOM, 2 },
	{ " root ", " root@" DOM " ", 1 },
	{ "a,,b", "a@" DOM ",,b@" DOM, 2 },
	{ "<root>", "<root@" DOM ">", 1 },
	{ "j\xc3\xb6rg", "j\xc3\xb6rg@" DOM, 1 },
	/* nothing to do */
	{ "", NULL, 0 },
	{ "user@host", NULL, 0 },
	{ "User <user@host>", NULL, 0 },
	{ "<>", NULL, 0 },
	{ "<@relay:u@d>", NULL, 0 },
	{ "u@[192.0.2.1]", NULL, 0 },
	{ "\"x\\\"q\" <u@d>", NULL, 0 },
	/* malformed: passed through unchanged, even with bare names in it */
	{ "Root User", NULL, 0 },
	{ "root, Root User", NULL, 0 },
	{ "a@", NULL, 0 },
	{ "root, \"open", NULL, 0 },
	{ "root (open", NULL, 0 },
	{ "root, <a", NULL, 0 },
	{ "root, a>", NULL, 0 },
	{ "root, b <c> d", NULL, 0 },
	{ "group: a, b", NULL, 0 },
	{ "g: h: a;;", NULL, 0 },
	{ "root, u@[1.2", NULL, 0 },
	{ "root, <a@b", NULL, 0 },
	{ "root\\x", NULL, 0 },
	{ "root; b", NULL, 0 },
	{ ": a;", NULL, 0 },
	{ "root \"q\"", NULL, 0 },
};

static void
test_header_cases(void)
{
	for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		const struct hcase *c = &header_cases[i];
		const char *want = c->want ? c->want : c->in;
		struct buf out, again;

		buf_init(&out, 4096);
		buf_init(&again, 4096);
		int rc = qualify_header(c->in, strlen(c->in), DOM, &out);
		if (rc != c->count)
			fprintf(stderr, "case %zu: %s\n", i, c->in);
		CHECK_EQ(rc, c->count);
		CHECK_STR_EQ(out.len ? out.data : "", want);
		CHECK_EQ(out.len, strlen(want));
		/* Idempotent: qualifying the result changes nothing. */
		CHECK_EQ(qualify_header(out.data ? out.data : "", out.len, DOM, &again), 0);
		CHECK_STR_EQ(again.len ? again.data : "", want);
		buf_free(&out);
		buf_free(&again);
	}
}

static void
test_header_appends_and_bounds(void)
{
	struct buf out;

	buf_init(&out, 24);
	CHECK_EQ(buf_puts(&out, "To: "), 0);
	CHECK_EQ(qualify_header("root", 4, DOM, &out), 1);
	CHECK_STR_EQ(out.data, "To: root@" DOM);
	/* 4 + 16 bytes used; "a, b" needs 2 * 12 more: -ENOBUFS, restored. */
	CHECK_EQ(qualify_header("a, b", 4, DOM, &out), -ENOBUFS);
	CHECK_STR_EQ(out.data, "To: root@" DOM);
	CHECK_EQ(out.len, strlen("To: root@" DOM));
	/* Unchanged copy that does not fit: -ENOBUFS too. */
	CHECK_EQ(qualify_header("Root User Long Name", 19, DOM, &out), -ENOBUFS);
	CHECK_STR_EQ(out.data, "To: root@" DOM);
	/* Exactly fitting output works: 20 + 4 = 24. */
	CHECK_EQ(qualify_header("x@yz", 4, DOM, &out), 0);
	CHECK_EQ(out.len, 24);
	buf_free(&out);

	/* Bad domains. */
	buf_init(&out, 100);
	CHECK_EQ(qualify_header("root", 4, "", &out), -EINVAL);
	CHECK_EQ(qualify_header("root", 4, NULL, &out), -EINVAL);
	CHECK_EQ(qualify_header("root", 4, "bad domain", &out), -EINVAL);
	CHECK_EQ(qualify_header("root", 4, "a..b", &out), -EINVAL);
	CHECK_EQ(out.len, 0);
	/* An embedded NUL: malformed, copied as is. */
	CHECK_EQ(qualify_header("ro\0ot", 5, DOM, &out), 0);
	CHECK_EQ(out.len, 5);
	CHECK_MEM_EQ(out.data, "ro\0ot", 5);
	buf_free(&out);
}

struct acase {
	const char *in;
	const char *want; /* NULL: unchanged */
};

static const struct acase addr_cases[] = {
	{ "root", "root@" DOM },
	{ "<root>", "<root@" DOM ">" },
	{ "first.last", "first.last@" DOM },
	{ "\"a b\"", "\"a b\"@" DOM },
	{ "", NULL },
	{ "<>", NULL },
	{ "user@host", NULL },
	{ "<user@host>", NULL },
	{ "\"a@b\"@host", NULL },
	{ "a b", NULL },
	{ "\"open", NULL },
	{ "a..b", NULL },
	{ "ro\x01ot", NULL },
	{ "@r:u@d", NULL },
	{ "x123456789012345678901234567890123456789012345678901234567890abcd", NULL },
};

static void
test_addr_cases(void)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct acase *c = &addr_cases[i];
		const char *want = c->want ? c->want : c->in;
		struct buf out, again;

		buf_init(&out, 512);
		buf_init(&again, 512);
		CHECK_EQ(qualify_addr(c->in, strlen(c->in), DOM, &out), c->want ? 1 : 0);
		CHECK_STR_EQ(out.len ? out.data : "", want);
		CHECK_EQ(qualify_addr(out.data ? out.data : "", out.len, DOM, &again), 0);
		CHECK_STR_EQ(again.len ? again.data : "", want);
		buf_free(&out);
		buf_free(&again);
	}
}

static void
test_addr_bounds(void)
{
	struct buf out;

	buf_init(&out, 10);
	CHECK_EQ(qualify_addr("root", 4, DOM, &out), -ENOBUFS);
	CHECK_EQ(out.len, 0);
	CHECK_EQ(qualify_addr("root", 4, "x..y", &out), -EINVAL);
	CHECK_EQ(qualify_addr("root", 4, "d.t", &out), 1);
	CHECK_STR_EQ(out.data, "root@d.t");
	CHECK_EQ(qualify_addr("ab", 2, "d.t", &out), -ENOBUFS);
	CHECK_STR_EQ(out.data, "root@d.t");
	buf_free(&out);
}

int
main(void)
{
	test_header_cases();
	test_header_appends_and_bounds();
	test_addr_cases();
	test_addr_bounds();
	CHECK_DONE();
}
