/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * Tests for the sendmail command line parser (proto/sendmail_args.c):
 * the calls real programs make (cronie, PHP, mail(1), git send-email),
 * bundling, modes, and the refusals of RELIABILITY.md G1-G3.
 */
#include <string.h>
#include <sysexits.h>

#include "check.h"
#include "outbox/sendmail_args.h"

#define MAXW 32

/* Parse a NULL-terminated word list; argv[0] is "sendmail". */
static int
parse(struct sendmail_args *a, const char *const *words)
{
	static char *argv[MAXW + 2];
	int argc = 0;

	argv[argc++] = (char *)"sendmail";
	for (; *words != NULL && argc < MAXW; words++)
		argv[argc++] = (char *)*words;
	argv[argc] = NULL;
	return sendmail_args_parse(a, argc, argv);
}

#define PARSE(a, ...) parse((a), (const char *const[]){ __VA_ARGS__, NULL })

static void
refused(const char *const *words, const char *needle)
{
	struct sendmail_args a;

	CHECK_EQ(parse(&a, words), -1);
	CHECK_EQ(a.exit_code, EX_USAGE);
	if (strstr(a.error, needle) == NULL)
		fprintf(stderr, "error was: %s\n", a.error);
	CHECK(strstr(a.error, needle) != NULL);
}

#define REFUSED(needle, ...) \
	refused((const char *const[]){ __VA_ARGS__, NULL }, (needle))

static void
test_cronie(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"), 0);
	CHECK_EQ(a.exit_code, 0);
	CHECK_STR_EQ(a.error, "");
	CHECK_EQ(a.mode, SENDMAIL_MODE_DELIVER);
	CHECK_STR_EQ(a.full_name, "CronDaemon");
	CHECK(a.ignore_dots);
	CHECK(!a.extract_rcpts);
	CHECK_EQ(a.body, SENDMAIL_BODY_8BITMIME);
	CHECK(a.sender == NULL);
	CHECK(!a.has_sender);
	CHECK_EQ(a.nrcpts, 1);
	CHECK_STR_EQ(a.rcpts[0], "root");
}

static void
test_php_and_bundles(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-t", "-i"), 0);
	CHECK(a.extract_rcpts);
	CHECK(a.ignore_dots);
	CHECK_EQ(a.nrcpts, 0);

	CHECK_EQ(PARSE(&a, "-ti"), 0);
	CHECK(a.extract_rcpts);
	CHECK(a.ignore_dots);

	/* -oi is -o with "i", not -o then -i */
	CHECK_EQ(PARSE(&a, "-oi", "u@d.test"), 0);
	CHECK(a.ignore_dots);
	CHECK(!a.extract_rcpts);
	CHECK_EQ(a.nrcpts, 1);

	/* a flag bundled before an option with a glued argument */
	CHECK_EQ(PARSE(&a, "-tfme@d.test"), 0);
	CHECK(a.extract_rcpts);
	CHECK_STR_EQ(a.sender, "me@d.test");

	/* without -i, dots are not ignored */
	CHECK_EQ(PARSE(&a, "u@d.test"), 0);
	CHECK(!a.ignore_dots);
	CHECK_EQ(a.body, SENDMAIL_BODY_UNSET);
}

static void
test_sender(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-fuser", "x@d.test"), 0);
	CHECK_STR_EQ(a.sender, "user");
	CHECK(a.has_sender);
	CHECK_EQ(PARSE(&a, "-f", "bounce@x.test", "x@d.test"), 0);
	CHECK_STR_EQ(a.sender, "bounce@x.test");
	CHECK_STR_EQ(a.rcpts[0], "x@d.test");
	CHECK_EQ(PARSE(&a, "-r", "old@x.test", "x@d.test"), 0);
	CHECK_STR_EQ(a.sender, "old@x.test");
	CHECK_EQ(PARSE(&a, "-f", "<a@b.test>", "x"), 0);
	CHECK_STR_EQ(a.sender, "a@b.test");
	/* G3: null sender from "<>" and "" */
	CHECK_EQ(PARSE(&a, "-f", "<>", "x"), 0);
	CHECK_STR_EQ(a.sender, "");
	CHECK(a.has_sender);
	CHECK_EQ(PARSE(&a, "-f", "", "x"), 0);
	CHECK_STR_EQ(a.sender, "");
	/* G3: a valid quoted form is kept byte exact */
	CHECK_EQ(PARSE(&a, "-f", "\"x -X/y\"@b.test", "x"), 0);
	CHECK_STR_EQ(a.sender, "\"x -X/y\"@b.test");
	/* last -F wins, with a space */
	CHECK_EQ(PARSE(&a, "-F", "Cron Daemon", "x"), 0);
	CHECK_STR_EQ(a.full_name, "Cron Daemon");

	REFUSED("control character", "-f", "a@b.test\r\nRCPT TO:<victim@x.test>",
		"x");
	REFUSED("control character", "-F", "Evil\nBcc: v@x.test", "x");
	REFUSED("invalid sender", "-f", "a b@c", "x");
	char longs[300];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	REFUSED("longer than", "-f", longs, "x");
	REFUSED("requires an argument", "-f");
}

static void
test_double_dash(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-f", "bounce@x.test", "--", "a@d.test", "b@d.test"), 0);
	CHECK_EQ(a.nrcpts, 2);
	CHECK_STR_EQ(a.rcpts[1], "b@d.test");
	CHECK_EQ(PARSE(&a, "-t", "--"), 0);
	CHECK_EQ(a.nrcpts, 0);
	/* G1: options hidden in recipients, after -- or after an operand */
	REFUSED("-oops", "-f", "bounce@x", "--", "-oops");
	REFUSED("looks like an option", "--", "-X./x.log", "-oQ.", "-C./evil.cf");
	REFUSED("-X./x.log", "user@d.test", "-X./x.log");
	REFUSED("looks like an option", "u@d.test", "-");
	REFUSED("empty recipient", "u@d.test", "");
	REFUSED("control character", "u@d.test\n");
}

static void
test_modes(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-bs"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_SMTP);
	CHECK_EQ(PARSE(&a, "-bp"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_LIST);
	CHECK_EQ(PARSE(&a, "-q"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_FLUSH);
	CHECK(a.flush_interval == NULL);
	CHECK_EQ(PARSE(&a, "-q1h30m"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_FLUSH);
	CHECK_STR_EQ(a.flush_interval, "1h30m");
	CHECK_EQ(PARSE(&a, "-bi"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_NEWALIASES);
	CHECK_EQ(PARSE(&a, "-I"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_NEWALIASES);
	CHECK_EQ(PARSE(&a, "-bp", "-bm", "x"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_DELIVER);
	CHECK_EQ(PARSE(&a, "-b", "s"), 0);
	CHECK_EQ(a.mode, SENDMAIL_MODE_SMTP);
	REFUSED("-bd", "-bd");
	REFUSED("-bv", "-bv", "x");
	REFUSED("-qRd.test", "-qRd.test");
	REFUSED("-qSfoo", "-qSfoo");
	REFUSED("bad queue interval", "-q1x");
}

static void
test_ignored(void)
{
	struct sendmail_args a;

	CHECK_EQ(PARSE(&a, "-oem", "-oee", "-oep", "-oeq", "-oew", "-odi", "-odb",
		       "-odq", "-v", "-m", "-n", "-U", "-Am", "-Ac", "-N",
		       "success,failure", "-R", "hdrs", "-V", "envid1", "u@d"), 0);
	CHECK_EQ(a.nrcpts, 1);
	CHECK_STR_EQ(a.rcpts[0], "u@d");
	CHECK(a.verbose);
	CHECK(!a.ignore_dots);
	/* -N's argument is consumed, never a recipient */
	CHECK_EQ(PARSE(&a, "-Nnever", "-B", "7bit", "u@d"), 0);
	CHECK_EQ(a.nrcpts, 1);
	CHECK_EQ(a.body, SENDMAIL_BODY_7BIT);
	CHECK_EQ(PARSE(&a, "-O", "IgnoreDots=true", "-OErrorMode=m",
		       "-O", "deliverymode=b", "u@d"), 0);
	CHECK(a.ignore_dots);
	CHECK_EQ(PARSE(&a, "-i", "-OIgnoreDots=false", "u@d"), 0);
	CHECK(!a.ignore_dots);
}

static void
test_refused(void)
{
	REFUSED("-C", "-C", "/etc/x", "u@d.test");
	REFUSED("-C", "-C/etc/x", "u@d.test");
	REFUSED("-X", "-X", "./x.log", "u@d.test");
	REFUSED("-d", "-d0.1", "u@d.test");
	REFUSED("-X", "-tX/tmp/log");
	REFUSED("queue directory", "-oQ.");
	REFUSED("queue directory", "-oQ/tmp/q", "u@d.test");
	REFUSED("-O QueueDirectory=.", "-O", "QueueDirectory=.", "u@d");
	REFUSED("QueueDirectory=/tmp", "-OQueueDirectory=/tmp", "u@d");
	REFUSED("-oXfoo", "-oXfoo", "u@d");
	REFUSED("-B", "-B", "BINARYMIME", "u@d");
	REFUSED("-Ax", "-Ax", "u@d");
	REFUSED("unknown option", "-Z", "u@d");
	REFUSED("-M", "-Mrfoo", "u@d");

	/* every refusal keeps exit 64 and names nothing it did not see */
	struct sendmail_args a;
	CHECK_EQ(PARSE(&a, "-C", "/etc/x"), -1);
	CHECK_EQ(a.exit_code, EX_USAGE);
	CHECK_EQ(a.exit_code, 64);
}

int
main(void)
{
	test_cronie();
	test_php_and_bundles();
	test_sender();
	test_double_dash();
	test_modes();
	test_ignored();
	test_refused();
	CHECK_DONE();
}
