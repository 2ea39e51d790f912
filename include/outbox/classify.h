/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CLASSIFY_H
#define OUTBOX_CLASSIFY_H
/*
 * The one place that decides what a delivery outcome means (Postfix
 * smtp_trouble.c): sent, retry later, or permanent failure. Pure.
 */
#include <stdbool.h>

#include "outbox/smtp_client.h"

enum dlv_result { DLV_OK, DLV_TEMP, DLV_PERM };

enum dlv_stage { STAGE_SESSION, STAGE_MAIL, STAGE_RCPT, STAGE_DATA };

enum dlv_result classify_result(const struct smtp_client_result *r,
				enum dlv_stage stage);
/* The DSN status for logs: the reply's enhanced code, or one derived from
 * the class ("2.0.0", "4.0.0", "5.0.0"). out must hold 16 bytes. */
void classify_dsn(const struct smtp_client_result *r, char *out, size_t size);
const char *classify_status_word(enum dlv_result res); /* sent|deferred|bounced */
/*
 * Whether a refusal of the whole message speaks only for the host that
 * gave it: its SIZE limit (5.3.4) or no SMTPUTF8 (5.6.7) at MAIL, whether
 * decided locally before MAIL or answered by the server. Another MX host
 * may take the message (RELIABILITY B13, A23; Postfix 5.6.7 only after
 * trying every server).
 */
bool classify_host_limit(const struct smtp_client_result *r);

#endif
