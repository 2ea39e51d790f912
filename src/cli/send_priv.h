/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CLI_SEND_PRIV_H
#define OUTBOX_CLI_SEND_PRIV_H
/* Shared between send.c (the sendmail command) and send_drop.c. */
#include <stddef.h>

#include "outbox/envelope.h"

#define SEND_WHY_MAX 512

/*
 * Write e and msg[0..len) as one
 * maildrop file under <spool_dir>/maildrop (maildrop.h): tmp.<random>,
 * fsync, rename to the id without replacing anything, then sync the
 * directory. Returns 0 only once all of that is done; else a sysexits
 * code (EX_TEMPFAIL for any I/O failure, EX_DATAERR for a head too big to
 * encode, EX_SOFTWARE for an envelope the encoder refuses) with the
 * reason in why. No temporary file is left behind on failure. e->id is
 * used when valid, else (and after a name collision) a fresh id_new().
 */
int send_drop_write(const char *spool_dir, struct envelope *e,
		    const char *msg, size_t len, char *why, size_t whylen);

/*
 * -bs: an SMTP session on stdin/stdout (send_bs.c); host is our name for
 * the banner. Returns the exit status.
 */
struct config;
int send_bs(const struct config *cfg, const char *host);

#endif
