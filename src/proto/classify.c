/* SPDX-License-Identifier: MIT */
/*
 * Failure classification. 2xx is success; 4xx and every failure without a
 * reply (timeouts, lost connections, TLS and protocol errors) are temporary;
 * 5xx is permanent, except a 552 to RCPT, which RFC 5321 4.5.3.1.10 says to
 * treat as "too many recipients", a temporary condition, and except a 5xx
 * that ended the session before any transaction (a 554 greeting, an AUTH
 * refusal): those say nothing about the message and are retried, as
 * Postfix does (smtp_skip_5xx_greeting, smtp_sasl_auth_soft_bounce).
 */
#include <stdio.h>
#include <string.h>

#include "outbox/classify.h"
#include "outbox/str.h"

enum dlv_result
classify_result(const struct smtp_client_result *r, enum dlv_stage stage)
{
	if (r->code >= 200 && r->code < 300)
		return DLV_OK;
	if (r->code >= 500 && r->code < 600) {
		if (stage == STAGE_SESSION)
			return DLV_TEMP;
		if (stage == STAGE_RCPT && r->code == 552)
			return DLV_TEMP;
		return DLV_PERM;
	}
	return DLV_TEMP;
}

void
classify_dsn(const struct smtp_client_result *r, char *out, size_t size)
{
	if (r->enh[0] != '\0') {
		str_copy(out, size, r->enh);
		return;
	}
	int cls = r->code / 100;
	if (cls != 2 && cls != 5)
		cls = 4;
	snprintf(out, size, "%d.0.0", cls);
}

const char *
classify_status_word(enum dlv_result res)
{
	switch (res) {
	case DLV_OK:
		return "sent";
	case DLV_TEMP:
		return "deferred";
	case DLV_PERM:
		return "bounced";
	}
	return "deferred";
}

bool
classify_host_limit(const struct smtp_client_result *r)
{
	if (r->code < 500 || r->code >= 600 || r->cmd == NULL ||
	    strcmp(r->cmd, "MAIL") != 0)
		return false;
	return strcmp(r->enh, "5.3.4") == 0 || strcmp(r->enh, "5.6.7") == 0;
}
