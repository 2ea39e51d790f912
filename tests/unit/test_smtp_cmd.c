/* layer: proto */
/* SPDX-License-Identifier: MIT */
/* Table tests for command tokenizing, MAIL/RCPT paths, parameters, xtext. */
#include "check.h"
#include "outbox/smtp_cmd.h"

static void
test_split(void)
{
	const char *v, *a;
	size_t vl, al;
	const char *line = "MAIL   FROM:<a@b>  ";
	smtp_cmd_split(line, strlen(line), &v, &vl, &a, &al);
	CHECK_EQ(vl, 4);
	CHECK(memcmp(v, "MAIL", 4) == 0);
	CHECK_EQ(al, 10);
	CHECK(memcmp(a, "FROM:<a@b>", 10) == 0);
	smtp_cmd_split("NOOP", 4, &v, &vl, &a, &al);
	CHECK_EQ(vl, 4);
	CHECK_EQ(al, 0);
	smtp_cmd_split("", 0, &v, &vl, &a, &al);
	CHECK_EQ(vl, 0);
	CHECK_EQ(al, 0);
	CHECK(smtp_cmd_is("ehlo", 4, "EHLO"));
	CHECK(!smtp_cmd_is("EHL", 3, "EHLO"));
	CHECK(!smtp_cmd_is("EHLOX", 5, "EHLO"));
}

struct path_case {
	const char *arg;
	const char *prefix;
	enum smtp_cmd_status want;
	const char *path;
	size_t nparams;
};

static const struct path_case cases[] = {
	{ "FROM:<a@b.test>", "FROM:", CMD_OK, "a@b.test", 0 },
	{ "from:<a@b.test>", "FROM:", CMD_OK, "a@b.test", 0 },
	{ "FROM: <a@b.test>", "FROM:", CMD_OK, "a@b.test", 0 },
	{ "FROM:<>", "FROM:", CMD_OK, "", 0 },
	{ "FROM:<a@b.test> SIZE=10 BODY=8BITMIME", "FROM:", CMD_OK, "a@b.test", 2 },
	{ "FROM:<a@b.test>   SMTPUTF8   ", "FROM:", CMD_OK, "a@b.test", 1 },
	{ "FROM:<\"a>b\"@c.test>", "FROM:", CMD_OK, "\"a>b\"@c.test", 0 },
	{ "FROM:<\"a\\\">b\"@c.test> X=1", "FROM:", CMD_OK, "\"a\\\">b\"@c.test", 1 },
	{ "TO:<r@d.test>", "TO:", CMD_OK, "r@d.test", 0 },
	{ "TO:<r@d.test>", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM:a@b.test", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM <a@b.test>", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM:<a@b.test", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM:<a@b.test>x", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM:", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "", "FROM:", CMD_E_SYNTAX, NULL, 0 },
	{ "FROM:<a@b.test> =1", "FROM:", CMD_E_PARAM, NULL, 0 },
	{ "FROM:<a@b.test> -X=1", "FROM:", CMD_E_PARAM, NULL, 0 },
	{ "FROM:<a@b.test> X_Y=1", "FROM:", CMD_E_PARAM, NULL, 0 },
	{ "FROM:<a@b.test> X=a=b", "FROM:", CMD_E_PARAM, NULL, 0 },
	{ "FROM:<a@b.test> X=\x01", "FROM:", CMD_E_PARAM, NULL, 0 },
	{ "FROM:<a@b.test> A B C D E F G H I J K L M N O P", "FROM:", CMD_OK, "a@b.test", 16 },
	{ "FROM:<a@b.test> A B C D E F G H I J K L M N O P Q", "FROM:", CMD_E_TOO_MANY, NULL, 0 },
};

static void
test_path_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct path_case *c = &cases[i];
		struct smtp_cmd_path p;
		enum smtp_cmd_status st =
			smtp_cmd_parse_path(c->arg, strlen(c->arg), c->prefix, &p);
		if (st != c->want)
			fprintf(stderr, "case %zu: %s\n", i, c->arg);
		CHECK_EQ(st, c->want);
		if (st != CMD_OK)
			continue;
		CHECK_EQ(p.plen, strlen(c->path));
		CHECK(memcmp(p.path, c->path, p.plen) == 0);
		CHECK_EQ(p.nparams, c->nparams);
	}
}

static void
test_params(void)
{
	const char *arg = "FROM:<a@b.test> SIZE=123 BODY= SMTPUTF8";
	struct smtp_cmd_path p;
	CHECK_EQ(smtp_cmd_parse_path(arg, strlen(arg), "FROM:", &p), CMD_OK);
	CHECK_EQ(p.nparams, 3);
	CHECK_EQ(p.params[0].klen, 4);
	CHECK(memcmp(p.params[0].key, "SIZE", 4) == 0);
	CHECK_EQ(p.params[0].vlen, 3);
	CHECK(memcmp(p.params[0].val, "123", 3) == 0);
	CHECK(p.params[1].val != NULL);
	CHECK_EQ(p.params[1].vlen, 0);
	CHECK(p.params[2].val == NULL);
	/* The path is not NUL-terminated input: a length cuts it. */
	CHECK_EQ(smtp_cmd_parse_path(arg, 10, "FROM:", &p), CMD_E_SYNTAX);
}

static void
test_xtext(void)
{
	char out[64];
	CHECK_EQ(smtp_cmd_xtext_decode("rfc822;a+2Bb@c", 14, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "rfc822;a+b@c");
	CHECK_EQ(smtp_cmd_xtext_decode("", 0, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "");
	/* Decoded CR/LF would inject a header line (CVE-2020-28026). */
	const char *evil = "x+0D+0AX-Injected:+20yes";
	CHECK_EQ(smtp_cmd_xtext_decode(evil, strlen(evil), out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("a+00", 4, out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("a+2b", 4, out, sizeof(out)), -1); /* lowercase */
	CHECK_EQ(smtp_cmd_xtext_decode("a+2", 3, out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("a+", 2, out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("a b", 3, out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("a=b", 3, out, sizeof(out)), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("abcd", 4, out, 4), -1);
	CHECK_EQ(smtp_cmd_xtext_decode("abc", 3, out, 4), 0);
	CHECK_EQ(smtp_cmd_xtext_decode("+20", 3, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, " ");
}

int
main(void)
{
	test_split();
	test_path_table();
	test_params();
	test_xtext();
	CHECK_DONE();
}
