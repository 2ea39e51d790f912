/* layer: proto */
/* SPDX-License-Identifier: MIT */
#include "check.h"
#include "outbox/classify.h"
#include "outbox/str.h"

static struct smtp_client_result
res(int code, const char *enh)
{
	struct smtp_client_result r = { 0 };
	r.code = code;
	str_copy(r.enh, sizeof(r.enh), enh);
	return r;
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
		struct smtp_client_result r = res(cases[i].code, "");
		CHECK_EQ(classify_result(&r, cases[i].stage), cases[i].want);
	}
	char dsn[16];
	struct smtp_client_result r = res(550, "5.1.1");
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "5.1.1");
	r = res(550, "");
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "5.0.0");
	r = res(0, "");
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "4.0.0");
	r = res(250, "");
	classify_dsn(&r, dsn, sizeof(dsn));
	CHECK_STR_EQ(dsn, "2.0.0");
	CHECK_STR_EQ(classify_status_word(DLV_OK), "sent");
	CHECK_STR_EQ(classify_status_word(DLV_TEMP), "deferred");
	CHECK_STR_EQ(classify_status_word(DLV_PERM), "bounced");
	CHECK_DONE();
}
