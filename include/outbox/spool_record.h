/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_RECORD_H
#define OUTBOX_SPOOL_RECORD_H
/*
 * Records of the spool's intake log (spool_log.h), pure code.
 *
 * A record is a 64-byte header, then env_len bytes of encoded envelope,
 * then body_len bytes of message. The header:
 *
 *   0   "OBL2"            magic and version
 *   4   type              'A' accepted message, 'D' message done (removed)
 *   5   3 zero bytes
 *   8   env_len  u32 LE   0 for 'D'
 *   12  segment  u32 LE   low 32 bits of the number of the segment it is in
 *   16  body_len u64 LE   0 for 'D'
 *   24  queue id          ID_LEN bytes, NUL padded to 32
 *   56  crc      u32 LE   CRC-32 of env, body, then header bytes 0..55
 *   60  4 zero bytes
 *
 * A record is valid only if every field is in range, the padding is zero,
 * the id is a queue id, the segment is the one it is read from and the
 * CRC matches, so a torn or stale tail is never mistaken for a record.
 * The segment number is there because segments are recycled
 * (spool_log.c): past a segment's last record lie the records of its
 * earlier lives, whole and with good CRCs, but of older segments.
 *
 * The CRC covers the header last so that the segment can be stamped
 * into a record under the log's lock, when it is known, at the cost of
 * 56 bytes of CRC: until then the slot holds the CRC of env and body.
 *
 * "OBL1" records (before recycling: no segment, the CRC over the header
 * first) are still read, so a queue left by an older outboxd replays.
 */
#include <stdbool.h>
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

/* Fill hdr for a record of these parts, not yet stamped. */
void spool_rec_header(char hdr[SPOOL_REC_HDR], char type, const char *id,
		      const char *env, size_t env_len, const char *body,
		      uint64_t body_len);
/* The same from the body's CRC-32 (crc32_update(0, body, body_len)),
 * which the caller has already: the body is not read. */
void spool_rec_header_sum(char hdr[SPOOL_REC_HDR], char type, const char *id,
			  const char *env, size_t env_len, uint64_t body_len,
			  uint32_t body_crc);
/* Make a filled header a record of segment seg: its number and the CRC.
 * Once only. */
void spool_rec_stamp(char hdr[SPOOL_REC_HDR], uint64_t seg);
/* env_len + body_len of a filled header: the bytes that follow it. */
uint64_t spool_rec_payload_len(const char hdr[SPOOL_REC_HDR]);
/* Does p[0..n) start like an "OBL1" record (the first n bytes of its
 * magic)? */
bool spool_rec_v1(const char *p, size_t n);

/*
 * Parse the record of segment seg at the start of p[0..n). 1 and *out
 * (pointing into p), 0 if p holds only the beginning of a plausible
 * record (a torn tail), -ESTALE if it is a record header of another
 * segment (a recycled segment's past), -EBADMSG if it is not a record
 * at all.
 */
int spool_rec_parse(const char *p, size_t n, uint64_t seg,
		    struct spool_rec *out);
/*
 * The header alone at the start of p[0..n): 1 and *out (type, id,
 * lengths, total; env and body NULL), 0 if n < SPOOL_REC_HDR, -ESTALE,
 * -EBADMSG. For a walk that needs only the ids of records this process
 * wrote and fsynced (retiring a segment): the payload is neither read
 * nor checked.
 */
int spool_rec_parse_header(const char *p, size_t n, uint64_t seg,
			   struct spool_rec *out);

#endif
