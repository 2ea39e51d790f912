/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_ENVELOPE_H
#define OUTBOX_ENVELOPE_H
/*
 * The queue envelope and its on-disk record format (RELIABILITY.md decision
 * 7). A file is a sequence of typed, length-prefixed records:
 *
 *     <type letter><decimal length>:<length bytes>\n
 *
 * and ends with an 'X' record whose value is the CRC-32 (8 hex digits) of
 * every byte before it; nothing may follow it. Because every value is
 * length-prefixed, no byte of an address or error text can start a record,
 * and a file cut anywhere fails to decode. Pure code.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/id.h"
#include "outbox/limits.h"

/*
 * RCPT_FAILED: failed permanently, no notification sent yet; RCPT_BOUNCED:
 * failed and its DSN is queued (or suppressed: null sender). Only the
 * last two states end a recipient's life.
 */
enum rcpt_state { RCPT_PENDING, RCPT_SENT, RCPT_FAILED, RCPT_BOUNCED };

struct env_rcpt {
	char *addr;           /* heap, owned */
	enum rcpt_state state;
	char *last_error;     /* heap, owned, may be NULL: last reply or reason */
};

enum {
	ENV_F_8BIT = 1 << 0,
	ENV_F_SMTPUTF8 = 1 << 1,
	ENV_F_HELD = 1 << 2,     /* outbox queue hold: not delivered until released */
	ENV_F_DSN = 1 << 3,      /* a delivery status notification we generated */
	ENV_F_ADMIN = 1 << 4,    /* ... about one of our own DSNs, sent to [rewrite] admin */
};

struct envelope {
	char id[ID_SIZE];
	char *sender;             /* heap, owned; "" for the null sender */
	struct env_rcpt *rcpts;   /* heap array, owned */
	size_t nrcpts;
	int64_t arrival;          /* wall clock, seconds since the epoch */
	int64_t next_attempt;     /* wall clock; 0 = now */
	uint32_t attempts;
	uint64_t msg_size;        /* bytes of the message file */
	uint32_t msg_crc;         /* CRC-32 of the message file */
	uint32_t flags;           /* ENV_F_* */
	char client[64];          /* submitting client address, for logs */
};

/* Zero everything (no heap). */
void envelope_init(struct envelope *e);
void envelope_free(struct envelope *e);
/* Deep copy; 0 or -ENOMEM. */
int envelope_copy(struct envelope *dst, const struct envelope *src);
/* Add a pending recipient (copied). 0 or -ENOMEM. */
int envelope_add_rcpt(struct envelope *e, const char *addr);
/* Set a recipient's last error (copied, may be NULL). 0 or -ENOMEM. */
int envelope_set_error(struct envelope *e, size_t i, const char *text);
size_t envelope_count(const struct envelope *e, enum rcpt_state state);

/* Append the record form of e to out. 0 or -ENOBUFS. */
int envelope_encode(const struct envelope *e, struct buf *out) BUF_WUR;
/*
 * Decode data[0..len) into out (initialised here). 0, or -EINVAL with a
 * reason in err (torn, bad checksum, unknown record, trailing data, ...).
 */
int envelope_decode(const char *data, size_t len, struct envelope *out,
		    char *err, size_t errlen);

#endif
