/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_CLIENT_PRIV_H
#define OUTBOX_SMTP_CLIENT_PRIV_H
/*
 * Internals shared by smtp_client.c (session and transactions) and
 * smtp_client_auth.c (AUTH PLAIN / LOGIN). Not a public contract.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/smtp_client.h"
#include "outbox/smtp_reply.h"

enum cli_state {
	CS_INIT,
	CS_TLS,         /* handshake in progress (implicit or after STARTTLS) */
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_AUTH,        /* AUTH sent: waiting for 334 or the final reply */
	CS_AUTH_CANCEL, /* "*" sent: the exchange fails whatever comes back */
	CS_READY,
	CS_RSET,
	CS_MAIL,
	CS_RCPT,
	CS_DATA,
	CS_BODY,        /* the glue streams the body; no reply is due */
	CS_DATA_END,
	CS_QUIT,
	CS_CLOSED,
	CS_FAILED,
	CS_COUNT
};

enum cli_mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN };

/* One transaction; lives from smtp_client_send_msg() to the next one. */
struct cli_tx {
	char *sender;
	char **rcpts;
	bool *skip;       /* refused locally: never sent */
	size_t nrcpts;
	uint64_t size;
	bool body_8bit;
	bool smtputf8;
	bool pipelined;   /* MAIL, RCPTs and DATA went out as one group */
	bool mail_failed; /* pipelined MAIL refused: drain RCPT/DATA replies */
	bool abandoned;   /* 354 with nobody accepted: a lone "." was sent */
	size_t next;      /* recipient whose RCPT reply comes next */
	size_t naccepted;
};

struct smtp_client {
	char *helo;
	char *user;
	char *password;
	enum smtp_client_tls tls;
	bool tls_required;
	void (*log)(void *arg, const char *msg);
	void *log_arg;

	enum cli_state state;  /* written only by smtp_client_enter() */
	struct buf out;
	struct smtp_reply reply;
	unsigned ext;          /* from the last complete EHLO reply */
	uint64_t size_limit;
	unsigned ehlo_ext;     /* collected while an EHLO reply arrives */
	uint64_t ehlo_size;
	bool tls_active;
	bool need_rset;        /* the last transaction failed: RSET first */
	bool oom;              /* out overflowed: the call fails */

	enum cli_mech mech;
	int login_step;        /* LOGIN: 334 challenges answered so far */
	struct buf chal;       /* raw base64 of the current 334 line */
	bool chal_bad;         /* the 334 line was too long */
	char cancel_why[160];

	bool tx_active;
	struct cli_tx tx;
	struct smtp_client_msg_result res;
	struct smtp_client_failure fail;
};

static inline bool
reply_is(const struct smtp_reply *r, int cls)
{
	return r->code / 100 == cls;
}

static inline bool
reply_failed(const struct smtp_reply *r)
{
	return reply_is(r, 4) || reply_is(r, 5);
}

/* smtp_client.c */
void smtp_client_enter(struct smtp_client *c, enum cli_state s);
void smtp_client_trace(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append one command plus CRLF; shown (if not NULL) replaces it in the trace. */
void smtp_client_send(struct smtp_client *c, const char *shown,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum smtp_client_event smtp_client_fail(struct smtp_client *c, int code,
					const char *enh, const char *text,
					const char *cmd);
enum smtp_client_event smtp_client_fail_reply(struct smtp_client *c,
					      const struct smtp_reply *r,
					      const char *prefix,
					      const char *cmd);
enum smtp_client_event smtp_client_fail_protocol(struct smtp_client *c,
						 const struct smtp_reply *r);
enum smtp_client_event smtp_client_ready(struct smtp_client *c);
/* A glue call in the wrong state: fail the session (code 0, 4.3.0). */
enum smtp_client_event smtp_client_internal(struct smtp_client *c,
					    const char *what);
/* Every public entry point ends here: an output overflow fails the call. */
enum smtp_client_event smtp_client_check(struct smtp_client *c,
					 enum smtp_client_event ev);
void smtp_client_result_set(struct smtp_client_result *res, int code,
			    const char *enh, const char *text, const char *cmd);
void smtp_client_result_reply(struct smtp_client_result *res,
			      const struct smtp_reply *r, const char *cmd);
char *smtp_client_strdup(const char *s);

/* smtp_client_tx.c */
void smtp_client_tx_free(struct smtp_client *c);
/* A complete reply in CS_RSET, CS_MAIL, CS_RCPT, CS_DATA or CS_DATA_END. */
enum smtp_client_event smtp_client_tx_reply(struct smtp_client *c,
					    const struct smtp_reply *r);

/* smtp_client_auth.c */
enum smtp_client_event smtp_client_auth_start(struct smtp_client *c);
void smtp_client_auth_line(struct smtp_client *c, const char *line,
			   size_t len);
enum smtp_client_event smtp_client_auth_reply(struct smtp_client *c,
					      const struct smtp_reply *r);
enum smtp_client_event smtp_client_auth_malformed(struct smtp_client *c,
						  const struct smtp_reply *r);
void smtp_client_auth_wipe(struct smtp_client *c);

#endif
