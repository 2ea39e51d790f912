/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_ADDR_H
#define OUTBOX_ADDR_H
/*
 * Path and mailbox syntax (RFC 5321 4.1.2, limits 4.5.3.1.1-3). Pure code.
 *
 * A path is the text between the angle brackets of MAIL FROM:<...> or
 * RCPT TO:<...>. A source route ("@a,@b:") is checked and dropped. The
 * local part is a dot-string or a quoted string, kept byte exact (quotes
 * and backslashes included). The domain is optional: a bare "root" or
 * "postmaster" is accepted (the rewrite step qualifies it later), but a
 * domain that is present must be a valid host name or address literal
 * ([1.2.3.4], [IPv6:...]). Control bytes (C0, DEL) anywhere are refused.
 * Bytes >= 0x80 are allowed in the local part and in domain labels and are
 * reported in eightbit, so the caller can demand SMTPUTF8.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/limits.h"

enum addr_status {
	ADDR_OK = 0,
	ADDR_E_SYNTAX,     /* not RFC 5321 path syntax */
	ADDR_E_CTRL,       /* a control byte (0x00-0x1f, 0x7f) */
	ADDR_E_PATH_LONG,  /* more than SMTP_PATH_MAX between the brackets */
	ADDR_E_LOCAL_LONG, /* local part over SMTP_LOCAL_MAX */
	ADDR_E_DOMAIN,     /* bad domain: syntax, label > 63, total > 255 */
};

struct addr_path {
	char mailbox[SMTP_PATH_MAX + 1]; /* "local@domain", "local", "" for <> */
	size_t local_len;                /* bytes of the local part in mailbox */
	bool has_domain;
	bool eightbit;                   /* some byte >= 0x80 */
	bool route;                      /* a source route was present and dropped */
};

/*
 * Parse p[0..n), the text between the brackets. An empty path (n == 0)
 * is ADDR_OK with mailbox "" (the null path; the caller decides whether
 * it is allowed). On error out->mailbox is "".
 */
enum addr_status addr_parse_path(const char *p, size_t n, struct addr_path *out);

/* A domain or address literal (no leading '@'). eightbit may be NULL. */
enum addr_status addr_check_domain(const char *p, size_t n, bool *eightbit);

/* A short English name for a status, for logs and tests. */
const char *addr_status_str(enum addr_status st);

#endif
