/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_MAILDROP_H
#define OUTBOX_MAILDROP_H
/*
 * The maildrop: how `outbox send` (sendmail) hands a message over, with
 * the daemon running or not. A maildrop file is
 *
 *     "OBXMD1 <head length>\n" <envelope records> <message bytes>
 *
 * where the envelope records are exactly envelope_encode()'s output
 * (<head length> bytes, ending with the CRC record) for an envelope whose
 * id is the file's name, and the message bytes are exactly msg_size long
 * with CRC msg_crc. The daemon treats every maildrop file as untrusted
 * input: anything that does not decode and verify is quarantined.
 *
 * Files are written as <spool>/maildrop/tmp.<random>, fsynced, renamed to
 * <spool>/maildrop/<id>, and the directory fsynced, before sendmail exits
 * 0. The maildrop directory is mode 1733 (anyone may drop a file, nobody
 * may list or remove others' files); the spool directory is 0711 so that
 * unprivileged users (cron runs as everyone) can reach it. Pure code.
 */
#include <stddef.h>

#include "outbox/buf.h"
#include "outbox/envelope.h"

#define MAILDROP_DIR "maildrop"
#define MAILDROP_MAGIC "OBXMD1 "
#define MAILDROP_HEAD_MAX (1024 * 1024)

/* Append the magic line and e's records to out. 0 or -ENOBUFS/-EINVAL. */
int maildrop_encode_head(const struct envelope *e, struct buf *out) BUF_WUR;
/*
 * Decode the head at the start of data[0..len) (len may extend into the
 * message). On success *head_len is the bytes the head takes (magic line
 * included) and out holds the envelope. 0, or -EINVAL with err.
 */
int maildrop_decode_head(const char *data, size_t len, struct envelope *out,
			 size_t *head_len, char *err, size_t errlen);

#endif
