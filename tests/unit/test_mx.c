/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	proto/mx.c: MX ordering (RFC 5321 5.1), null MX (RFC 7505), unusable
 *	targets (RELIABILITY.md C5-C7), status mapping, recipient domains and
 *	address literals. A fixed-seed PRNG makes the shuffle checks
 *	repeatable.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "outbox/mx.h"

static uint64_t prng_state;

static uint32_t
prng(void *arg)
{
	(void)arg;
	/* xorshift64* */
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return (uint32_t)((prng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static uint32_t
zero_random(void *arg)
{
	(void)arg;
	return 0;
}

/* "h1234.test" -> 1234 */
static int
host_number(const char *name)
{
	int v = 0;
	for (const char *p = name + 1; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	return v;
}

static size_t
recs(struct mx_host *r, size_t max, const char *spec[], const unsigned pref[])
{
	size_t n = 0;
	for (; spec[n] != NULL && n < max; n++) {
		snprintf(r[n].name, sizeof(r[n].name), "%s", spec[n]);
		r[n].pref = pref[n];
	}
	return n;
}

static void
test_sort(void)
{
	struct mx_host r[8];
	struct mx_list out;
	const char *names[] = { "c.test", "a.test", "b.test", "d.test.", NULL };
	const unsigned pref[] = { 30, 10, 20, 5 };
	size_t n = recs(r, 8, names, pref);
	CHECK_EQ(mx_order(r, n, &out, prng, NULL), MX_OK);
	CHECK_EQ(out.n, 4);
	CHECK_STR_EQ(out.host[0].name, "d.test"); /* trailing dot removed */
	CHECK_EQ(out.host[0].pref, 5);
	CHECK_STR_EQ(out.host[1].name, "a.test");
	CHECK_STR_EQ(out.host[2].name, "b.test");
	CHECK_STR_EQ(out.host[3].name, "c.test");
	CHECK_EQ(out.host[3].pref, 30);
	/* a broken random source must not hang or break the order */
	CHECK_EQ(mx_order(r, n, &out, zero_random, NULL), MX_OK);
	CHECK_STR_EQ(out.host[0].name, "d.test");
	CHECK_STR_EQ(out.host[3].name, "c.test");
}

/* C6: 10 a, 10 b, 20 c: a and b each first 35-65%, c always last. */
static void
test_shuffle_fair(void)
{
	struct mx_host r[3];
	struct mx_list out;
	const char *names[] = { "a.test", "b.test", "c.test", NULL };
	const unsigned pref[] = { 10, 10, 20 };
	size_t n = recs(r, 3, names, pref);
	int first_a = 0, runs = 2000;
	prng_state = 0x1234567887654321ULL;
	for (int i = 0; i < runs; i++) {
		if (mx_order(r, n, &out, prng, NULL) != MX_OK || out.n != 3)
			CHECK_FAIL("run %d", i);
		if (strcmp(out.host[2].name, "c.test") != 0)
			CHECK_FAIL("c not last in run %d", i);
		first_a += strcmp(out.host[0].name, "a.test") == 0;
	}
	CHECK(first_a > runs * 35 / 100);
	CHECK(first_a < runs * 65 / 100);

	/* three equal: each position about a third */
	struct mx_host r3[3];
	const char *n3[] = { "x.test", "y.test", "z.test", NULL };
	const unsigned p3[] = { 7, 7, 7 };
	recs(r3, 3, n3, p3);
	int first[3] = { 0 }, last[3] = { 0 };
	for (int i = 0; i < 3000; i++) {
		CHECK_EQ(mx_order(r3, 3, &out, prng, NULL), MX_OK);
		first[out.host[0].name[0] - 'x']++;
		last[out.host[2].name[0] - 'x']++;
	}
	for (int k = 0; k < 3; k++) {
		CHECK(first[k] > 800 && first[k] < 1200);
		CHECK(last[k] > 800 && last[k] < 1200);
	}
}

static void
test_null(void)
{
	struct mx_host r[4];
	struct mx_list out;
	const char *alone[] = { "", NULL };
	const unsigned p0[] = { 0 };
	CHECK_EQ(mx_order(r, recs(r, 4, alone, p0), &out, prng, NULL), MX_NULL);
	CHECK_EQ(out.n, 0);
	const char *dot[] = { ".", NULL };
	CHECK_EQ(mx_order(r, recs(r, 4, dot, p0), &out, prng, NULL), MX_NULL);
	/* Mixed: Postfix stops at the null MX; so do we, in any position. */
	const char *mixed[] = { "mx.test", "", NULL };
	const unsigned pm[] = { 10, 0 };
	CHECK_EQ(mx_order(r, recs(r, 4, mixed, pm), &out, prng, NULL), MX_NULL);
	const char *mixed2[] = { "", "mx.test", NULL };
	const unsigned pm2[] = { 20, 10 };
	CHECK_EQ(mx_order(r, recs(r, 4, mixed2, pm2), &out, prng, NULL),
		 MX_NULL);
	CHECK_EQ(mx_order(r, 0, &out, prng, NULL), MX_IMPLICIT);
}

static void
test_bad_names(void)
{
	struct mx_host r[8];
	struct mx_list out;
	char long300[301];
	memset(long300, 'a', 300);
	long300[300] = '\0';
	for (int i = 60; i < 300; i += 61)
		long300[i] = '.'; /* labels <= 63, total 300 */

	CHECK(mx_host_valid("mx.test"));
	CHECK(mx_host_valid("mx.test."));
	CHECK(mx_host_valid("localhost"));    /* single label: allowed */
	CHECK(mx_host_valid("MX-1.Example.COM"));
	CHECK(mx_host_valid("1mx.2test.com"));  /* RFC 1123 leading digit */
	CHECK(!mx_host_valid(""));
	CHECK(!mx_host_valid("."));
	CHECK(!mx_host_valid("mx_bad!.test"));
	CHECK(!mx_host_valid("mx_bad.test"));
	CHECK(!mx_host_valid("-mx.test"));
	CHECK(!mx_host_valid("mx-.test"));
	CHECK(!mx_host_valid("mx..test"));
	CHECK(!mx_host_valid(".mx.test"));
	CHECK(!mx_host_valid("mx.test.."));
	CHECK(!mx_host_valid("192.0.2.1"));
	CHECK(!mx_host_valid("192.0.2.1."));
	CHECK(!mx_host_valid("12345"));
	CHECK(!mx_host_valid("2001:db8::1"));
	CHECK(!mx_host_valid("[192.0.2.1]"));
	CHECK(!mx_host_valid("mx test"));
	CHECK(!mx_host_valid("mx.test\r\nX"));
	CHECK(!mx_host_valid(long300));
	char l64[80];
	memset(l64, 'b', 64);
	memcpy(l64 + 64, ".test", 6);
	CHECK(!mx_host_valid(l64));
	memcpy(l64 + 63, ".test", 6); /* a 63-octet label is fine */
	CHECK(mx_host_valid(l64));
	/* exactly 255 octets: ok; 256: not */
	char n255[260];
	memset(n255, 'c', 255);
	for (int i = 63; i < 255; i += 64)
		n255[i] = '.';
	n255[255] = '\0';
	CHECK(mx_host_valid(n255));
	n255[255] = 'c';
	n255[256] = '\0';
	CHECK(!mx_host_valid(n255));

	/* C7: unusable targets skipped, usable kept */
	const char *mixed[] = { "192.0.2.1", "mx_bad!.test", "good.test", NULL };
	const unsigned pm[] = { 1, 2, 30 };
	CHECK_EQ(mx_order(r, recs(r, 8, mixed, pm), &out, prng, NULL), MX_OK);
	CHECK_EQ(out.n, 1);
	CHECK_STR_EQ(out.host[0].name, "good.test");
	CHECK_EQ(out.host[0].pref, 30);

	/* all unusable: MX_BAD */
	const char *bad[] = { "192.0.2.1", "mx_bad!.test", "a..b", NULL };
	const unsigned pb[] = { 10, 10, 20 };
	CHECK_EQ(mx_order(r, recs(r, 8, bad, pb), &out, prng, NULL), MX_BAD);
	CHECK_EQ(out.n, 0);
	/* A 300-octet name cannot be held; the resolver stores such a
	 * target as "-" (never "", which would be a null MX). */
	struct mx_host one = { .name = "-", .pref = 0 };
	CHECK_EQ(mx_order(&one, 1, &out, prng, NULL), MX_BAD);
	/* a valid 255-octet name is kept whole */
	memcpy(one.name, n255, 255);
	one.name[255] = '\0';
	CHECK_EQ(mx_order(&one, 1, &out, prng, NULL), MX_OK);
	CHECK_EQ(strlen(out.host[0].name), 255);
}

static void
test_duplicates(void)
{
	struct mx_host r[8];
	struct mx_list out;
	const char *names[] = { "b.test", "A.test", "a.test.", "b.TEST",
				"c.test", "a.test", NULL };
	const unsigned pref[] = { 20, 10, 10, 5, 30, 40 };
	size_t n = recs(r, 8, names, pref);
	CHECK_EQ(mx_order(r, n, &out, prng, NULL), MX_OK);
	CHECK_EQ(out.n, 3);
	CHECK_STR_EQ(out.host[0].name, "b.test"); /* its best preference, 5 */
	CHECK_EQ(out.host[0].pref, 5);
	CHECK_STR_EQ(out.host[1].name, "a.test"); /* lower-cased, once */
	CHECK_EQ(out.host[1].pref, 10);
	CHECK_STR_EQ(out.host[2].name, "c.test");
}

/* More than MX_MAX_HOSTS: the best 32 are kept, in order. */
static void
test_many(void)
{
	static struct mx_host r[2000];
	struct mx_list out;
	for (int i = 0; i < 40; i++) {
		snprintf(r[i].name, sizeof(r[i].name), "mx%d.test", i);
		r[i].pref = (unsigned)(100 - i); /* reverse wire order */
	}
	CHECK_EQ(mx_order(r, 40, &out, prng, NULL), MX_OK);
	CHECK_EQ(out.n, MX_MAX_HOSTS);
	CHECK_STR_EQ(out.host[0].name, "mx39.test");
	CHECK_EQ(out.host[0].pref, 61);
	CHECK_EQ(out.host[31].pref, 92);
	for (size_t i = 1; i < out.n; i++)
		CHECK(out.host[i - 1].pref <= out.host[i].pref);

	/* 2,000 records with one preference: 32 kept, all distinct, and
	 * each name's chance of being kept is fair (sampled, not the first 32). */
	for (int i = 0; i < 2000; i++) {
		snprintf(r[i].name, sizeof(r[i].name), "h%d.test", i);
		r[i].pref = 10;
	}
	int late = 0;
	for (int run = 0; run < 20; run++) {
		CHECK_EQ(mx_order(r, 2000, &out, prng, NULL), MX_OK);
		CHECK_EQ(out.n, MX_MAX_HOSTS);
		for (size_t i = 0; i < out.n; i++) {
			for (size_t j = i + 1; j < out.n; j++)
				if (strcmp(out.host[i].name, out.host[j].name) == 0)
					CHECK_FAIL("duplicate %s", out.host[i].name);
			late += host_number(out.host[i].name) >= 1000;
		}
	}
	/* about half of 640 picks come from the second half */
	CHECK(late > 250 && late < 390);

	/* a run crossing the cut: 30 at pref 1, 10 at pref 2 -> 2 of those */
	for (int i = 0; i < 40; i++) {
		snprintf(r[i].name, sizeof(r[i].name), "m%d.test", i);
		r[i].pref = i < 30 ? 1 : 2;
	}
	CHECK_EQ(mx_order(r, 40, &out, prng, NULL), MX_OK);
	CHECK_EQ(out.n, 32);
	CHECK_EQ(out.host[29].pref, 1);
	CHECK_EQ(out.host[30].pref, 2);
	CHECK_EQ(out.host[31].pref, 2);
}

static void
test_status(void)
{
	CHECK_STR_EQ(mx_status_enh(MX_NULL), "5.1.10");
	CHECK_EQ(mx_status_code(MX_NULL), 556);
	CHECK_STR_EQ(mx_status_text(MX_NULL), "Recipient address has null MX");
	CHECK(mx_status_permanent(MX_NULL));
	CHECK_STR_EQ(mx_status_enh(MX_NXDOMAIN), "5.1.2");
	CHECK_EQ(mx_status_code(MX_NXDOMAIN), 550);
	CHECK_STR_EQ(mx_status_text(MX_NXDOMAIN), "Host or domain name not found");
	CHECK(mx_status_permanent(MX_NXDOMAIN));
	CHECK_STR_EQ(mx_status_enh(MX_BAD), "5.4.4");
	CHECK_EQ(mx_status_code(MX_BAD), 550);
	CHECK(mx_status_permanent(MX_BAD));
	CHECK_STR_EQ(mx_status_enh(MX_TEMP), "4.4.3");
	CHECK_EQ(mx_status_code(MX_TEMP), 451);
	CHECK(!mx_status_permanent(MX_TEMP));
	CHECK_EQ(mx_status_code(MX_OK), 0);
	CHECK_EQ(mx_status_code(MX_IMPLICIT), 0);
	CHECK_STR_EQ(mx_status_enh(MX_OK), "");
	CHECK(!mx_status_permanent(MX_OK));
	CHECK(!mx_status_permanent(MX_IMPLICIT));
}

static void
test_rcpt_domain(void)
{
	char d[HOSTNAME_MAX + 1];
	CHECK_EQ(mx_rcpt_domain("user@Example.COM", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "example.com");
	CHECK_EQ(mx_rcpt_domain("\"a@b\"@x.test", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "x.test");
	CHECK_EQ(mx_rcpt_domain("\"a\\\"@b\"@Y.test", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "y.test");
	/* the '@' is only inside the quotes: no domain */
	CHECK_EQ(mx_rcpt_domain("\"a@b\"", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("postmaster", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("user@", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("user@x.test\r\nRCPT", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("user@[192.0.2.1]", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "[192.0.2.1]");
	CHECK_EQ(mx_rcpt_domain("user@[ipv6:2001:DB8::1]", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "[IPv6:2001:DB8::1]");
	CHECK_EQ(mx_rcpt_domain("user@[IPV6:::1]", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "[IPv6:::1]");
	CHECK_EQ(mx_rcpt_domain("user@[192.0.2.1", d, sizeof(d)), -1);
	CHECK_EQ(mx_rcpt_domain("a@b@C.test", d, sizeof(d)), 0);
	CHECK_STR_EQ(d, "c.test");
	char small[4];
	CHECK_EQ(mx_rcpt_domain("u@abcd", small, sizeof(small)), -1);
	CHECK_EQ(mx_rcpt_domain("u@abc", small, sizeof(small)), 0);
	CHECK_STR_EQ(small, "abc");
	char long_addr[300];
	memset(long_addr, 'x', sizeof(long_addr));
	memcpy(long_addr, "u@", 2);
	long_addr[2 + 256] = '\0'; /* 256-octet domain */
	CHECK_EQ(mx_rcpt_domain(long_addr, d, sizeof(d)), -1);
	long_addr[2 + 255] = '\0';
	CHECK_EQ(mx_rcpt_domain(long_addr, d, sizeof(d)), 0);
}

static void
test_literal_ip(void)
{
	char ip[64];
	CHECK_EQ(mx_literal_ip("[192.0.2.1]", ip, sizeof(ip)), 0);
	CHECK_STR_EQ(ip, "192.0.2.1");
	CHECK_EQ(mx_literal_ip("[IPv6:2001:db8::1]", ip, sizeof(ip)), 0);
	CHECK_STR_EQ(ip, "2001:db8::1");
	CHECK_EQ(mx_literal_ip("[ipv6:::1]", ip, sizeof(ip)), 0);
	CHECK_STR_EQ(ip, "::1");
	CHECK_EQ(mx_literal_ip("192.0.2.1", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[]", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[2001:db8::1]", ip, sizeof(ip)), -1); /* tag needed */
	CHECK_EQ(mx_literal_ip("[IPv6:192.0.2.1]", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[192.0.2.256]", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[192.0.2.1", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[x400:foo]", ip, sizeof(ip)), -1);
	CHECK_EQ(mx_literal_ip("[IPv6:2001:db8:0:0:0:0:0:0:1]", ip, sizeof(ip)), -1);
	char small[8];
	CHECK_EQ(mx_literal_ip("[192.0.2.1]", small, sizeof(small)), -1);
}

int
main(void)
{
	test_sort();
	test_shuffle_fair();
	test_null();
	test_bad_names();
	test_duplicates();
	test_many();
	test_status();
	test_rcpt_domain();
	test_literal_ip();
	CHECK_DONE();
}
