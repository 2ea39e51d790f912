/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_CLIENT_H
#define OUTBOX_SMTP_CLIENT_H
/*
 * The outbound SMTP session as a pure state machine (OpenSMTPD
 * smtp_client.c, curl smtp.c). The glue (daemon/delivery.c) owns the
 * socket, TLS and the message file; this module only decides what to send
 * and what replies mean.
 *
 * Inputs:  smtp_client_start(), smtp_client_on_line() (one reply line,
 *          without CRLF), smtp_client_tls_done(), smtp_client_send_msg(),
 *          smtp_client_body_done(), smtp_client_quit().
 * Outputs: bytes appended to c->out (always: the glue sends out after each
 *          call) and an event telling the glue what to do next.
 *
 * Session: greeting -> EHLO (HELO fallback on 5xx) -> [STARTTLS -> TLS ->
 * EHLO] -> [AUTH PLAIN|LOGIN] -> ready. In ready the glue offers messages
 * one by one (several transactions on one connection), then QUIT.
 * Per message: MAIL [SIZE=] [BODY=8BITMIME] [SMTPUTF8], RCPT..., DATA;
 * pipelined as one group when the server offers PIPELINING.
 * Security rules: AUTH only inside TLS; with tls required and no STARTTLS
 * offered, fail 4.7.4 without sending MAIL; capabilities from before TLS
 * are thrown away; a malformed reply is a temporary session failure.
 * A reply line when none is due (e.g. plaintext that reached the client
 * between STARTTLS's 220 and tls_done) fails the session. After CLI_FAIL
 * or CLI_CLOSED every call returns that event again and does nothing.
 * Reply lines up to SMTP_REPLY_PARSE_MAX octets are parsed (AUTH
 * challenges reach 12288); the glue's read limit should allow that.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/limits.h"
#include "outbox/smtp_reply.h"

enum smtp_client_tls { CLI_TLS_NONE, CLI_TLS_STARTTLS, CLI_TLS_IMPLICIT };

struct smtp_client_cfg {
	const char *helo;      /* our name for EHLO */
	enum smtp_client_tls tls;
	bool tls_required;     /* STARTTLS missing or refused => fail 4.7.4 / 4.7.5 */
	const char *user;      /* NULL or "" = no AUTH */
	const char *password;  /* never logged; the client wipes its copies */
	void (*log)(void *arg, const char *msg); /* optional protocol trace; AUTH redacted */
	void *log_arg;
};

/* EHLO keywords as bits (OpenSMTPD). */
enum {
	EXT_STARTTLS = 1 << 0,
	EXT_PIPELINING = 1 << 1,
	EXT_SIZE = 1 << 2,
	EXT_8BITMIME = 1 << 3,
	EXT_SMTPUTF8 = 1 << 4,
	EXT_AUTH = 1 << 5,
	EXT_AUTH_PLAIN = 1 << 6,
	EXT_AUTH_LOGIN = 1 << 7,
	EXT_ENHANCEDSTATUSCODES = 1 << 8,
	EXT_DSN = 1 << 9,
};

enum smtp_client_event {
	CLI_WAIT,       /* send out (if any), wait for the next reply line */
	CLI_NEED_TLS,   /* send out, then start the TLS handshake; smtp_client_tls_done() after */
	CLI_READY,      /* session is ready: call smtp_client_send_msg() or smtp_client_quit() */
	CLI_NEED_BODY,  /* 354 received: stream the body (dot_stuff), then smtp_client_body_done() */
	CLI_MSG_DONE,   /* the transaction ended: results in smtp_client_msg_result(); then as CLI_READY */
	CLI_FAIL,       /* the session failed: smtp_client_failure(); close the connection */
	CLI_CLOSED,     /* QUIT answered (or sent): close the connection */
};

/* What the client knows about one message it is asked to send. */
struct smtp_client_msg {
	const char *sender;        /* "" for <> */
	const char *const *rcpts;  /* recipients to try in this transaction */
	size_t nrcpts;
	uint64_t size;             /* stored size, for SIZE= */
	bool body_8bit;
	bool smtputf8;
};

/* Outcome of one reply, with the class the failure belongs to. */
struct smtp_client_result {
	int code;                   /* SMTP code, or 0 when no reply (network/protocol) */
	char enh[16];               /* enhanced status: from the reply, or ours ("4.4.2") */
	char text[SMTP_REPLY_TEXT_MAX];
	/*
	 * What the outcome answers, a static string, never NULL: "CONNECT"
	 * (greeting), "TLS", "EHLO", "HELO", "STARTTLS", "AUTH", "RSET",
	 * "MAIL", "RCPT", "DATA", "." (end of data), "QUIT", or "" before a
	 * result is known. Local decisions name the command they stand in
	 * for: SIZE and SMTPUTF8 refusals are "MAIL", a bad recipient "RCPT".
	 * The caller maps it to a classify stage (a 552 to "MAIL" is
	 * permanent, to "RCPT" temporary).
	 */
	const char *cmd;
};

struct smtp_client_msg_result {
	size_t nrcpts;
	struct smtp_client_result *rcpt; /* per recipient, in order; 2xx only if the final dot got 2xx */
	/*
	 * The reply that ended the transaction: the end-of-data reply (250
	 * on success), or the MAIL / DATA refusal, or, when no recipient
	 * was accepted, the last RCPT refusal (or the DATA refusal under
	 * PIPELINING). Local refusals of the whole message (SIZE 552 5.3.4,
	 * SMTPUTF8 553 5.6.7, bad sender 553 5.1.7) are cmd "MAIL" and are
	 * copied to every recipient; a malformed recipient gets 553 5.1.3
	 * cmd "RCPT" and is never sent.
	 */
	struct smtp_client_result msg;
};

/* Session failure: applies to the current message's pending recipients. */
struct smtp_client_failure {
	struct smtp_client_result r;
	bool permanent;  /* 5xx where the whole session cannot deliver (rare: auth 5xx are soft) */
	bool in_data;    /* failed after the body started: possible duplicate if after final dot */
	bool after_dot;  /* failed waiting for the end-of-data reply: log "possible duplicate" */
	/*
	 * STARTTLS was refused or its handshake failed while cfg.tls is
	 * CLI_TLS_STARTTLS and tls_required is false: the glue may retry
	 * this host in plaintext at once (RELIABILITY.md decision 4). Never
	 * set for implicit TLS or when TLS is required.
	 */
	bool tls_failed;
	/*
	 * A transaction was open: smtp_client_msg_result() holds its
	 * per-recipient state. Recipients refused by MAIL/RCPT (or locally)
	 * keep that result; every other recipient carries this failure.
	 */
	bool in_tx;
	/* The state the session failed in ("greeting", "rcpt", ...), static. */
	const char *state;
};

struct smtp_client;

struct smtp_client *smtp_client_new(const struct smtp_client_cfg *cfg);
void smtp_client_free(struct smtp_client *c);

struct buf *smtp_client_out(struct smtp_client *c);
unsigned smtp_client_ext(const struct smtp_client *c);
uint64_t smtp_client_size_limit(const struct smtp_client *c); /* SIZE n, 0 = none */

/* Implicit TLS: returns CLI_NEED_TLS; otherwise CLI_WAIT for the greeting. */
enum smtp_client_event smtp_client_start(struct smtp_client *c);
enum smtp_client_event smtp_client_on_line(struct smtp_client *c,
					   const char *line, size_t len);
/* ok=false: handshake or verification failed; text says why. */
enum smtp_client_event smtp_client_tls_done(struct smtp_client *c, bool ok,
					    const char *text);
/* In READY: begin a transaction for msg (copied). */
enum smtp_client_event smtp_client_send_msg(struct smtp_client *c,
					    const struct smtp_client_msg *msg);
/* The body and its final dot have been sent. */
enum smtp_client_event smtp_client_body_done(struct smtp_client *c);
/* In READY: send QUIT. */
enum smtp_client_event smtp_client_quit(struct smtp_client *c);
/* Glue-detected failure (timeout, connection lost, TLS error): returns CLI_FAIL
 * with code 0, the given enhanced code and text. */
enum smtp_client_event smtp_client_abort(struct smtp_client *c,
					 const char *enh, const char *text);

const struct smtp_client_msg_result *smtp_client_msg_result(const struct smtp_client *c);
const struct smtp_client_failure *smtp_client_failure(const struct smtp_client *c);
/* Name of the current state, for timeouts and logs ("greeting", "mail", "data-end", ...). */
const char *smtp_client_state_name(const struct smtp_client *c);
/* The RFC 5321 4.5.3.2 timeout for the current state, in milliseconds. */
uint64_t smtp_client_timeout_ms(const struct smtp_client *c);

#endif
