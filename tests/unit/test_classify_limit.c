/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	classify_host_limit(): which refusals of a whole message speak only
 *	for the host that gave them, so that the next MX host is tried
 *	before a bounce (RELIABILITY B13 SIZE, A23 SMTPUTF8).
 */
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

int
main(void)
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
	CHECK_DONE();
}
