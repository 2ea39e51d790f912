/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_RECORD_H
#define OUTBOX_SPOOL_RECORD_H
/*
 * Records of the spool's intake log (spool_log.h), pure code.
 *
 * A record is a 64-byte header, then env_len bytes of encoded envelope,
 * then body_len bytes of message. The header:
 *
 *   0   "OBL1"            magic and version
 *   4   type              'A' accepted message, 'D' message done (removed)
 *   5   3 zero bytes
 *   8   env_len  u32 LE   0 for 'D'
 *   12  4 zero bytes
 *   16  body_len u64 LE   0 for 'D'
 *   24  queue id          ID_LEN bytes, NUL padded to 32
 *   56  crc      u32 LE   CRC-32 of header bytes 0..55, env and body
 *   60  4 zero bytes
 *
 * A record is valid only if every field is in range, the padding is zero,
 * the id is a queue id and the CRC matches, so a torn or stale tail is
 * never mistaken for a record.
 */
#include <stddef.h>
#include <stdint.h>

#include "outbox/id.h"

#define SPOOL_REC_HDR 64u
#define SPOOL_REC_ENV_MAX (16u * 1024u * 1024u)
#define SPOOL_REC_BODY_MAX (1024u * 1024u * 1024u)

enum spool_rec_type { SPOOL_REC_ACCEPT = 'A', SPOOL_REC_DONE = 'D' };

struct spool_rec {
	char type;                 /* enum spool_rec_type */
	char id[ID_SIZE];
	const char *env;           /* points into the parsed buffer */
	size_t env_len;
	const char *body;
	uint64_t body_len;
	size_t total;              /* header + env + body */
};

/* Fill hdr for a record of these parts (CRC included). */
void spool_rec_header(char hdr[SPOOL_REC_HDR], char type, const char *id,
		      const char *env, size_t env_len, const char *body,
		      uint64_t body_len);
/* The same from the body's CRC-32 (crc32_update(0, body, body_len)),
 * which the caller has already: the body is not read. */
void spool_rec_header_sum(char hdr[SPOOL_REC_HDR], char type, const char *id,
			  const char *env, size_t env_len, uint64_t body_len,
			  uint32_t body_crc);

/*
 * Parse the record at the start of p[0..n). 1 and *out (pointing into p),
 * 0 if p holds only the beginning of a plausible record (a torn tail),
 * -EBADMSG if it is not a record at all.
 */
int spool_rec_parse(const char *p, size_t n, struct spool_rec *out);
/*
 * The header alone at the start of p[0..n): 1 and *out (type, id,
 * lengths, total; env and body NULL), 0 if n < SPOOL_REC_HDR, -EBADMSG.
 * For a walk that needs only the ids of records this process wrote and
 * fsynced (retiring a segment): the payload is neither read nor checked.
 */
int spool_rec_parse_header(const char *p, size_t n, struct spool_rec *out);

#endif
