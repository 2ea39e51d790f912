/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CHECK_MBOX_H
#define OUTBOX_CHECK_MBOX_H
/*
 * The IMAP and POP3 probes of `outbox check imap|pop3` as a pure state
 * machine, shaped like smtp_client: the glue feeds reply lines (without
 * CRLF) and completion events; the machine appends commands to out and
 * says what to do next. It never logs in: greeting, capabilities,
 * STARTTLS/STLS, capabilities again inside TLS, then LOGOUT/QUIT.
 *
 * IMAP (RFC 9051): "* OK"/"* PREAUTH" greeting, "A1 CAPABILITY",
 * "A2 STARTTLS", "A3 CAPABILITY", "A4 LOGOUT".
 * POP3 (RFC 1939, 2449): "+OK" greeting, CAPA (multi-line, ends with "."),
 * STLS, CAPA, QUIT. Capabilities from before TLS are kept apart from the
 * ones inside TLS (RFC 2595 says to forget the former).
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/buf.h"
#include "outbox/check.h"

enum check_mbox_event {
	MBOX_WAIT,      /* send out, wait for the next line */
	MBOX_NEED_TLS,  /* send out, start TLS, then check_mbox_tls_done() */
	MBOX_DONE,      /* finished: close */
	MBOX_FAIL,      /* failed: the reason is in obs->failure; close */
};

enum check_mbox_state {
	MB_INIT, MB_TLS, MB_GREETING, MB_CAPA, MB_CAPA_LIST, MB_STARTTLS,
	MB_QUIT, MB_DONE, MB_FAILED
};

struct check_mbox {
	enum check_mbox_proto proto;
	bool implicit;                /* TLS from the first byte */
	bool plain_only;              /* never STARTTLS (--tls none); set after init */
	bool tls_active;
	enum check_mbox_state state;
	unsigned tag;                 /* IMAP command counter */
	struct buf out;
	struct check_mbox_obs *obs;   /* borrowed: greeting, caps, failure */
};

/* obs is borrowed and must outlive m; obs->proto is used. */
void check_mbox_init(struct check_mbox *m, struct check_mbox_obs *obs,
		     bool implicit_tls);
void check_mbox_free(struct check_mbox *m);
/* MBOX_NEED_TLS for implicit TLS, else MBOX_WAIT (greeting). */
enum check_mbox_event check_mbox_start(struct check_mbox *m);
enum check_mbox_event check_mbox_on_line(struct check_mbox *m,
					 const char *line, size_t len);
enum check_mbox_event check_mbox_tls_done(struct check_mbox *m, bool ok,
					  const char *text);
/* The peer closed or a timeout hit: MBOX_DONE while quitting, else FAIL. */
enum check_mbox_event check_mbox_abort(struct check_mbox *m, const char *why);
const char *check_mbox_state_name(const struct check_mbox *m);

#endif
