/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_SERVER_H
#define OUTBOX_SMTP_SERVER_H
/*
 * The listener's SMTP session as a pure state machine: bytes in, reply
 * bytes (s->out) and events out. No sockets, no clock, no files. The glue
 * (daemon/session.c) reads from the socket, calls smtp_server_feed(), writes
 * s->out, and acts on the returned event. Commands are taken one at a time
 * in order; while an event is outstanding (DATA_START, COMMIT) the glue does
 * not feed more bytes until it has answered with the matching call.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/limits.h"
#include "outbox/smtp_data.h"

enum smtp_server_bare_nl { SRV_BARE_NL_NORMALIZE, SRV_BARE_NL_STRICT };

struct smtp_server_cfg {
	const char *hostname;        /* banner/EHLO name */
	uint64_t max_message_size;   /* bytes of stored message, our Received: included */
	unsigned max_recipients;
	enum smtp_server_bare_nl bare_newline;
	unsigned hop_limit;          /* SMTP_HOP_LIMIT */
	unsigned error_limit;        /* SMTP_ERROR_LIMIT */
	uint64_t min_free;           /* spool bytes needed to take MAIL (D5); 0 = no check */
	/* Optional trace hook for state changes and rejected input (already sanitized). */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
};

enum smtp_server_event {
	SRV_NEED_MORE,   /* all input consumed; send s->out, read more */
	SRV_DATA_START,  /* 354 is in out; glue opens a spool file and calls smtp_server_data_begin() */
	SRV_BODY_CHUNK,  /* s->chunk holds message bytes to append to the spool file; glue empties it */
	SRV_NEED_COMMIT, /* end of data, message acceptable; glue writes s->chunk, commits, calls smtp_server_commit_done() */
	SRV_DATA_ABORT,  /* end of data, message rejected (reply in out); glue discards the spool file */
	SRV_CLOSE,       /* send s->out, then close the connection */
};

struct smtp_rcpt {
	char *addr;      /* heap; the mailbox without <>; "" never (postmaster is "postmaster") */
};

/* The transaction: NULL outside MAIL ... end of data. */
struct smtp_tx {
	char sender[SMTP_PATH_MAX + 1]; /* "" for the null sender */
	struct smtp_rcpt *rcpts;        /* heap array, nrcpts used */
	size_t nrcpts, rcap;
	uint64_t size_param;            /* SIZE=, 0 if absent */
	bool body_8bit;                 /* BODY=8BITMIME given */
	bool smtputf8;                  /* SMTPUTF8 given */
	uint64_t data_size;             /* bytes stored so far (after unstuffing, Received: included) */
};

struct smtp_server; /* opaque */

/*
 * client_ip is the peer address as text; allowed is the result of the
 * glue's allow-list check: a disallowed client gets "554 5.7.1" as its
 * greeting and every command after it is answered 503/554 until QUIT.
 * Returns NULL on allocation failure. Strings in cfg must outlive s.
 */
struct smtp_server *smtp_server_new(const struct smtp_server_cfg *cfg,
				    const char *client_ip, bool allowed);
void smtp_server_free(struct smtp_server *s);

/* Append the greeting to out. Call once, first. */
void smtp_server_greet(struct smtp_server *s);

/*
 * Feed input bytes. *consumed is set to how many bytes were used; the glue
 * keeps the rest and feeds it again after handling the event.
 */
enum smtp_server_event smtp_server_feed(struct smtp_server *s,
					const char *data, size_t len,
					size_t *consumed);

/*
 * Answer to SRV_DATA_START: queue id and an RFC 5322 date string for our
 * Received: header, which becomes the first bytes of s->chunk.
 */
void smtp_server_data_begin(struct smtp_server *s, const char *queue_id,
			    const char *date);

/*
 * Answer to SRV_NEED_COMMIT. status 0 = stored: "250 2.0.0 Ok: queued as ID";
 * -ENOSPC: "452 4.3.1 Insufficient system storage"; other: "451 4.3.0".
 */
void smtp_server_commit_done(struct smtp_server *s, int status,
			     const char *queue_id);

/* Shutdown or timeout: append a 421 reply with the given text; next feed returns SRV_CLOSE. */
void smtp_server_shutdown(struct smtp_server *s, const char *reply_421);

/*
 * Free bytes in the spool, as the glue last measured (UINT64_MAX =
 * unknown, the default). Below cfg.min_free, or below a declared SIZE=,
 * MAIL gets "452 4.3.1 Insufficient system storage".
 */
void smtp_server_set_spool_free(struct smtp_server *s, uint64_t bytes);

/* Accessors for the glue. */
struct buf *smtp_server_out(struct smtp_server *s);   /* reply bytes to send; glue empties */
struct buf *smtp_server_chunk(struct smtp_server *s); /* body bytes to store; glue empties */
/* The most bytes smtp_server_chunk() holds at once. */
#define SRV_CHUNK_MAX (2 * SMTP_DATA_FLUSH + 8 * 1024)
const struct smtp_tx *smtp_server_tx(const struct smtp_server *s);
const char *smtp_server_helo(const struct smtp_server *s); /* "" before HELO/EHLO */
/* Whether the session is in DATA (for "lost connection after DATA" logs). */
const char *smtp_server_state_name(const struct smtp_server *s);
/* Errors so far (the ones error_limit counts), for the disconnect summary. */
unsigned smtp_server_errors(const struct smtp_server *s);

#endif
