/* layer: proto */
/* SPDX-License-Identifier: MIT */
#include "check.h"
#include "outbox/classify.h"
#include "outbox/str.h"

static struct smtp_client_result
res(int code, const char *enh, const char *cmd)
{
	struct smtp_client_result r = { 0 };
	r.code = code;
	r.cmd = cmd;
	str_copy(r.enh, sizeof(r.enh), enh);
	return r;
}

/*
 * classify_host_limit(): which refusals of a whole message speak only for
 * the host that gave them, so that the next MX host is tried before a
 * bounce (RELIABILITY B13 SIZE, A23 SMTPUTF8).
 */
static void
test_host_limit(void)
{
	static const struct {
		int code;
		const char *enh, *cmd;
		bool want;
	} cases[] = {
		/* the client's own refusals before MAIL, and the same answers
		 * from a server at MAIL */
		{ 552, "5.3.4", "MAIL", true },
		{ 553, "5.6.7", "MAIL", true },
		{ 550, "5.6.7", "MAIL", true },
		/* about the message or the sender everywhere: bounce at once */
		{ 553, "5.1.7", "MAIL", false },
		{ 550, "5.7.1", "MAIL", false },
		/* the same codes after MAIL are about recipients or the data */
		{ 552, "5.3.4", "RCPT", false },
		{ 552, "5.3.4", ".", false },
		{ 553, "5.6.7", "RCPT", false },
		/* temporary or not a refusal */
		{ 452, "4.3.4", "MAIL", false },
		{ 250, "2.1.0", "MAIL", false },
		{ 0, "5.3.4", "MAIL", false },
		{ 552, "5.3.4", NULL, false },
		{ 552, "", "MAIL", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_client_result r =
			res(cases[i].code, cases[i].enh, cases[i].cmd);
		if (classify_host_limit(&r) != cases[i].want)
			CHECK_FAIL("case %zu: %d %s %s", i, cases[i].code,
				   cases[i].enh, cases[i].cmd ? cases[i].cmd : "-");
		CHECK(true);
	}
}

int
main(void)
{
	static const struct {
		int code;
		enum dlv_stage stage;
		enum dlv_result want;
	} cases[] = {
		{ 250, STAGE_DATA, DLV_OK },      { 251, STAGE_RCPT, DLV_OK },
		{ 450, STAGE_RCPT, DLV_TEMP },    { 451, STAGE_MAIL, DLV_TEMP },
		{ 421, STAGE_SESSION, DLV_TEMP }, { 550, STAGE_RCPT, DLV_PERM },
		{ 554, STAGE_DATA, DLV_PERM },    { 552, STAGE_DATA, DLV_PERM },
		/* RFC 5321 4.5.3.1.10: 552 to RCPT means too many recipients. */
		{ 552, STAGE_RCPT, DLV_TEMP },
		/* No reply at all (timeout, lost connection, TLS): temporary. */
		{ 0, STAGE_SESSION, DLV_TEMP },   { 0, STAGE_DATA, DLV_TEMP },
		{ 354, STAGE_DATA, DLV_TEMP },
		/* A 5xx that ended the session (greeting, AUTH) is retried. */
		{ 554, STAGE_SESSION, DLV_TEMP }, { 535, STAGE_SESSION, DLV_TEMP },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_client_result r = res(cases[i].code, "", NULL);
		CHECK_EQ(classify_result(&r, cases[i].stage), cases[i].want);
	}
	char dsn[16];
	struct smtp_client_result r = res(550, "5.1.1", NULL);
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "5.1.1");
	r = res(550, "", NULL);
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "5.0.0");
	r = res(0, "", NULL);
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "4.0.0");
	r = res(250, "", NULL);
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "2.0.0");
	CHECK_STR_EQ(classify_status_word(DLV_OK), "sent");
	CHECK_STR_EQ(classify_status_word(DLV_TEMP), "deferred");
	CHECK_STR_EQ(classify_status_word(DLV_PERM), "bounced");
	test_host_limit();
	CHECK_DONE();
}
