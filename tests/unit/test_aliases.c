/* layer: proto */
/* SPDX-License-Identifier: MIT */
/* /etc/aliases parsing and expansion. */
#include <errno.h>

#include "check.h"
#include "outbox/aliases.h"

static void
parse(struct aliases *a, const char *text)
{
	aliases_init(a);
	CHECK_EQ(aliases_parse(a, text, strlen(text)), 0);
}

/* Expand name and compare with the comma-joined want. */
static void
expect(const struct aliases *a, const char *name, const char *want, bool loop)
{
	struct aliases_result r;
	struct buf b;
	char err[200];

	CHECK_EQ(aliases_expand(a, name, &r, err, sizeof(err)), 0);
	CHECK_EQ(r.loop, loop);
	buf_init(&b, 65536);
	for (size_t i = 0; i < r.n; i++)
		CHECK_EQ(buf_printf(&b, "%s%s", i ? "," : "", r.addrs[i]), 0);
	CHECK_STR_EQ(b.len ? b.data : "", want);
	buf_free(&b);
	aliases_result_free(&r);
}

static bool
has_warning(const struct aliases *a, size_t line, const char *part)
{
	for (size_t i = 0; i < a->nwarnings; i++)
		if (a->warnings[i].line == line && strstr(a->warnings[i].msg, part))
			return true;
	return false;
}

static void
test_basic(void)
{
	struct aliases a;

	parse(&a,
	      "# comment line\n"
	      "\n"
	      "postmaster: root\n"
	      "Root: admin@example.org, \"Ops Team\"@example.org\r\n"
	      "list: a@x.test,\n"
	      "  b@x.test,\n"
	      "\tc@x.test ,d@x.test\n"
	      "chain1: chain2\n"
	      "chain2: chain3\n"
	      "chain3: final@z.test\n"
	      "self: self, other@x.test\n"
	      "quoted: \"a b\", \"c,d\"@x.test\n"
	      "bs: \\bs, x@y.test\n"
	      "UPPER: up@x.test\n");
	CHECK_EQ(a.nwarnings, 0);
	CHECK_EQ(a.n, 10);
	CHECK(aliases_find(&a, "ROOT") != NULL);
	CHECK_STR_EQ(aliases_find(&a, "upper")->name, "upper");
	CHECK_EQ(aliases_find(&a, "list")->line, 5);
	CHECK(aliases_find(&a, "nobody") == NULL);
	expect(&a, "postmaster", "admin@example.org,\"Ops Team\"@example.org", false);
	expect(&a, "PostMaster", "admin@example.org,\"Ops Team\"@example.org", false);
	expect(&a, "list", "a@x.test,b@x.test,c@x.test,d@x.test", false);
	expect(&a, "chain1", "final@z.test", false);
	expect(&a, "self", "self,other@x.test", false);
	expect(&a, "quoted", "\"a b\",\"c,d\"@x.test", false);
	expect(&a, "bs", "bs,x@y.test", false);
	expect(&a, "nobody", "nobody", false);
	expect(&a, "u@remote.test", "u@remote.test", false);
	expect(&a, "\\root", "root", false);
	CHECK_EQ(aliases_validate(&a), 0);
	aliases_free(&a);
}

static void
test_refused(void)
{
	struct aliases a;
	struct buf b;

	parse(&a,
	      "bad1: |/usr/bin/procmail\n"
	      "bad2: /var/mail/file, ok@x.test\n"
	      "bad3: :include:/etc/list, \"|cmd arg\"\n"
	      "bad4: \"/tmp/f\",\n"
	      " :INCLUDE:/x,\n"
	      " ok2@x.test\n"
	      "nocolon here\n"
	      "  orphan continuation\n"
	      "bad name: x@y.test\n"
	      "e: a@b, , c@@d, \"open\n"
	      "dup: first@x.test\n"
	      "DUP: second@x.test\n"
	      "ctl: a\x01@x.test\n");
	CHECK(has_warning(&a, 1, "command target refused"));
	CHECK(has_warning(&a, 1, "bad1 has no usable target"));
	CHECK(has_warning(&a, 2, "file target refused"));
	CHECK(has_warning(&a, 3, ":include: target refused"));
	CHECK(has_warning(&a, 3, "command target refused: \"|cmd arg\""));
	CHECK(has_warning(&a, 3, "bad3 has no usable target"));
	CHECK(has_warning(&a, 4, "file target refused"));
	CHECK(has_warning(&a, 5, ":include: target refused"));
	CHECK(has_warning(&a, 7, "missing ':'"));
	CHECK(has_warning(&a, 9, "invalid alias name"));
	CHECK(has_warning(&a, 10, "empty target"));
	CHECK(has_warning(&a, 10, "invalid address: c@@d"));
	CHECK(has_warning(&a, 10, "unterminated quote"));
	CHECK(has_warning(&a, 12, "duplicate alias dup ignored (first at line 11 kept)"));
	CHECK(has_warning(&a, 13, "invalid address: a?@x.test"));
	CHECK_EQ(a.nwarnings, 16);
	for (size_t i = 1; i < a.nwarnings; i++)
		CHECK(a.warnings[i - 1].line <= a.warnings[i].line);
	CHECK(aliases_find(&a, "bad1") == NULL);
	CHECK(aliases_find(&a, "bad3") == NULL);
	expect(&a, "bad2", "ok@x.test", false);
	expect(&a, "bad4", "ok2@x.test", false);
	expect(&a, "e", "a@b", false);
	expect(&a, "dup", "first@x.test", false);
	/* Nothing refused was ever stored as a target. */
	for (size_t i = 0; i < a.n; i++)
		for (size_t t = 0; t < a.entries[i].ntargets; t++) {
			const char *tg = a.entries[i].targets[t];
			CHECK(tg[0] != '|' && tg[0] != '/' && strchr(tg, ':') == NULL);
		}
	buf_init(&b, 256);
	CHECK_EQ(aliases_warning_format(&a.warnings[0], &b), 0);
	CHECK_STR_EQ(b.data, "1: command target refused: |/usr/bin/procmail");
	buf_free(&b);
	aliases_free(&a);
}

static void
test_loops(void)
{
	struct aliases a;
	char err[200];
	struct aliases_result r;

	parse(&a,
	      "a: b\n"
	      "b: a, b@x.test\n"
	      "p: q\n"
	      "q: r\n"
	      "r: P\n"
	      "root: root, admin@x.test\n"
	      "ok: root\n");
	expect(&a, "a", "a,b@x.test", true);
	expect(&a, "b", "b,b@x.test", true);
	expect(&a, "p", "P", true); /* as written in the target */
	expect(&a, "root", "root,admin@x.test", false);
	expect(&a, "ok", "root,admin@x.test", false);
	CHECK_EQ(aliases_expand(&a, "q", &r, err, sizeof(err)), 0);
	CHECK(strstr(err, "alias loop from q") != NULL);
	aliases_result_free(&r);
	/* validate: one warning per looping entry, at its line. */
	CHECK_EQ(aliases_validate(&a), 5);
	CHECK(has_warning(&a, 1, "loop from a"));
	CHECK(has_warning(&a, 2, "loop from b"));
	CHECK(has_warning(&a, 5, "loop from r"));
	CHECK(!has_warning(&a, 6, "loop"));
	aliases_free(&a);
}

static void
test_bounds(void)
{
	struct aliases a;
	struct aliases_result r;
	char err[200];
	struct buf text;

	/* A chain of 25: n0 -> n1 -> ... -> n24 -> end@x.test. */
	buf_init(&text, 1 << 20);
	for (int i = 0; i < 25; i++)
		CHECK_EQ(buf_printf(&text, "n%d: n%d\n", i, i + 1), 0);
	CHECK_EQ(buf_printf(&text, "n25: end@x.test\n"), 0);
	parse(&a, text.data);
	CHECK_EQ(aliases_expand(&a, "n0", &r, err, sizeof(err)), -ELOOP);
	CHECK(strstr(err, "deeper than 20") != NULL);
	aliases_result_free(&r);
	expect(&a, "n6", "end@x.test", false); /* 20 levels: fine */
	CHECK_EQ(aliases_expand(&a, "n5", &r, NULL, 0), -ELOOP);
	aliases_result_free(&r);
	CHECK(aliases_validate(&a) == 6);
	aliases_free(&a);

	/* 1000 results are fine, 1001 are not; duplicates do not count. */
	buf_reset(&text);
	CHECK_EQ(buf_puts(&text, "big: u0@x.test"), 0);
	for (int i = 1; i < 1000; i++)
		CHECK_EQ(buf_printf(&text, ",\n u%d@x.test, u%d@X.TEST", i, i - 1), 0);
	CHECK_EQ(buf_puts(&text, "\nbigger: big, one@more.test\n"), 0);
	parse(&a, text.data);
	CHECK_EQ(a.nwarnings, 0);
	CHECK_EQ(aliases_expand(&a, "big", &r, err, sizeof(err)), 0);
	CHECK_EQ(r.n, 1000);
	aliases_result_free(&r);
	CHECK_EQ(aliases_expand(&a, "bigger", &r, err, sizeof(err)), -E2BIG);
	CHECK(strstr(err, "more than 1000") != NULL);
	aliases_result_free(&r);
	aliases_free(&a);

	/* Shared subtrees are walked once: 3^15 paths, few names. */
	buf_reset(&text);
	for (int i = 0; i < 15; i++)
		CHECK_EQ(buf_printf(&text, "w%d: w%d, w%d, w%d\n", i, i + 1, i + 1, i + 1), 0);
	CHECK_EQ(buf_puts(&text, "w15: leaf@x.test, \\w15\n"), 0);
	parse(&a, text.data);
	expect(&a, "w0", "leaf@x.test,w15", false);
	aliases_free(&a);

	/* An entry over ALIASES_ENTRY_MAX is dropped with a warning. */
	buf_reset(&text);
	CHECK_EQ(buf_puts(&text, "huge: a@x.test"), 0);
	for (int i = 0; i < 7000; i++)
		CHECK_EQ(buf_puts(&text, ",\n a@x.test"), 0);
	CHECK_EQ(buf_puts(&text, "\nsmall: s@x.test\n"), 0);
	parse(&a, text.data);
	CHECK(has_warning(&a, 1, "entry longer than"));
	CHECK(aliases_find(&a, "huge") == NULL);
	expect(&a, "small", "s@x.test", false);
	aliases_free(&a);
	buf_free(&text);
}

static void
test_odd_input(void)
{
	struct aliases a;
	static const char nul[] = "a: x@y.test\nb: \0z@y.test\nc: c@y.test";

	aliases_init(&a);
	CHECK_EQ(aliases_parse(&a, nul, sizeof(nul) - 1), 0);
	CHECK(has_warning(&a, 2, "NUL byte"));
	CHECK_EQ(a.n, 2);
	expect(&a, "c", "c@y.test", false);
	aliases_free(&a);

	parse(&a, "");
	CHECK_EQ(a.n, 0);
	expect(&a, "root", "root", false);
	aliases_free(&a);

	/* A comment line ends an entry, so the indented line is orphaned. */
	parse(&a, "a: x@y.test\n# c\n  z@y.test\n");
	CHECK(has_warning(&a, 3, "continuation line outside"));
	expect(&a, "a", "x@y.test", false);
	aliases_free(&a);
}

int
main(void)
{
	test_basic();
	test_refused();
	test_loops();
	test_bounds();
	test_odd_input();
	CHECK_DONE();
}
