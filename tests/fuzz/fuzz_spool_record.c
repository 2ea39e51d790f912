/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the intake-log record parser (spool_record.h), driven
 *	the way start-up replay reads a segment: parse at the offset,
 *	advance by total while it returns 1, stop at the first 0 (torn)
 *	or -EBADMSG.
 *
 *	Input: a mode byte, then segment bytes. Mode bit 0 first walks the
 *	bytes as consecutive records (lengths taken from each header, as
 *	the parser reads them) and writes the right CRC into each one that
 *	fits, so the fuzzer gets past the checksum to the field checks and
 *	to long chains of valid records.
 *
 *	Invariants: parse returns 1, 0 or -EBADMSG only; a record is at
 *	least a header, lies within the bytes, its env and body are where
 *	the header says, its type, lengths and id are valid; re-encoding it
 *	with spool_rec_header gives back the input's header bytes exactly
 *	(the format is canonical); the same record cut by one byte is torn
 *	(0), never a record; nothing but records precedes the stop.
 */
#include <errno.h>

#include "fuzz.h"
#include "outbox/crc32.h"
#include "outbox/spool_record.h"

static uint64_t
fsrec_le(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = n; i-- > 0;)
		v = (v << 8) | p[i];
	return v;
}

/* Give every record-shaped stretch of p[0..n) its correct CRC. */
static void
fsrec_fix_crcs(unsigned char *p, size_t n)
{
	size_t off = 0;
	for (unsigned i = 0; i < 4096 && n - off >= SPOOL_REC_HDR; i++) {
		unsigned char *h = p + off;
		uint64_t env = fsrec_le(h + 8, 4), body = fsrec_le(h + 16, 8);
		if (body > n || env + body > n - off - SPOOL_REC_HDR)
			return;
		size_t total = SPOOL_REC_HDR + (size_t)env + (size_t)body;
		uint32_t crc = crc32_update(0, h, 56);
		crc = crc32_update(crc, h + SPOOL_REC_HDR, total - SPOOL_REC_HDR);
		for (int k = 0; k < 4; k++)
			h[56 + k] = (unsigned char)(crc >> (8 * k));
		off += total;
	}
}

static void
fsrec_check(const char *p, size_t n, const struct spool_rec *r)
{
	FUZZ_ASSERT(r->total >= SPOOL_REC_HDR && r->total <= n);
	FUZZ_ASSERT(r->total == SPOOL_REC_HDR + r->env_len + r->body_len);
	FUZZ_ASSERT(r->env == p + SPOOL_REC_HDR);
	FUZZ_ASSERT(r->body == r->env + r->env_len);
	FUZZ_ASSERT(id_valid(r->id));
	if (r->type == SPOOL_REC_DONE)
		FUZZ_ASSERT(r->env_len == 0 && r->body_len == 0);
	else
		FUZZ_ASSERT(r->type == SPOOL_REC_ACCEPT && r->env_len > 0 &&
			    r->env_len <= SPOOL_REC_ENV_MAX &&
			    r->body_len <= SPOOL_REC_BODY_MAX);
	char hdr[SPOOL_REC_HDR];
	spool_rec_header(hdr, r->type, r->id, r->env, r->env_len, r->body,
			 r->body_len);
	FUZZ_ASSERT(memcmp(hdr, p, SPOOL_REC_HDR) == 0);
	/* one byte short is a torn record, never a (different) record */
	struct spool_rec t;
	FUZZ_ASSERT(spool_rec_parse(p, r->total - 1, &t) == 0);
}

/* Walk the segment as replay does. */
static void
fsrec_walk(const char *p, size_t n)
{
	size_t off = 0;
	int rc = 1;
	/* each record is at least a header: the loop is bounded by n/64 */
	for (size_t i = 0; i <= n / SPOOL_REC_HDR + 1; i++) {
		struct spool_rec r;
		rc = spool_rec_parse(p + off, n - off, &r);
		FUZZ_ASSERT(rc == 1 || rc == 0 || rc == -EBADMSG);
		if (rc != 1)
			break;
		fsrec_check(p + off, n - off, &r);
		off += r.total;
	}
	FUZZ_ASSERT(rc != 1);
	FUZZ_ASSERT(off <= n);
	if (off == n)
		FUZZ_ASSERT(rc == 0);
}

static void
fuzz_spool_record(const uint8_t *data, size_t size)
{
	if (size == 0)
		return;
	unsigned mode = data[0];
	size_t n = size - 1;
	/* an exact-size copy, so ASan sees any read past the segment */
	unsigned char *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	if (n > 0)
		memcpy(p, data + 1, n);
	if (mode & 1)
		fsrec_fix_crcs(p, n);
	fsrec_walk((const char *)p, n);
	free(p);
}

FUZZ_ENTRY(fuzz_spool_record)
