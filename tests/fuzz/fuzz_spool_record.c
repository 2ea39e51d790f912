/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the intake-log record parser (spool_record.h), driven
 *	the way start-up replay reads a segment: parse at the offset,
 *	advance by total while it returns 1, stop at the first 0 (torn),
 *	-ESTALE (an earlier life of a recycled segment) or -EBADMSG.
 *
 *	Input: a mode byte, then segment bytes. The segment is read as
 *	number FSREC_SEG plus (mode >> 4) << 32: only the low 32 bits are
 *	stored in a record, so the high ones must make no difference. Mode
 *	bit 0 first walks the bytes as consecutive records (lengths taken
 *	from each header, as the parser reads them) and writes the right
 *	CRC into each one that fits ("OBL1" headers: the legacy order),
 *	so the fuzzer gets past the checksum to the field checks and to
 *	long chains of valid records; with bit 1 as well it first stamps
 *	the segment into each header that is not "OBL1", so it gets past
 *	the segment check too.
 *
 *	Invariants: parse returns 1, 0, -ESTALE or -EBADMSG only; a record
 *	is at least a header, lies within the bytes, its env and body are
 *	where the header says, its type, lengths and id are valid, the
 *	header walk (spool_rec_parse_header) and spool_rec_payload_len
 *	agree; re-encoding it with spool_rec_header (or _sum) and
 *	spool_rec_stamp gives back the input's header bytes exactly ("OBL1":
 *	the legacy header) (the format is canonical); an "OBL2" record is
 *	-ESTALE in another segment, an "OBL1" one in every segment a
 *	record; the same record cut by one byte is torn (0), never a record
 *	(a legacy one cut within its header: -EBADMSG); a stop at -ESTALE
 *	is a valid header of the segment it names, a stop at 0 a prefix of
 *	"OBL2" or a valid header whose record runs past the bytes; nothing
 *	but records precedes the stop.
 */
#include <errno.h>

#include "fuzz.h"
#include "outbox/crc32.h"
#include "outbox/spool_record.h"

#define FSREC_SEG UINT64_C(0xa1b2c3d4)

static uint64_t
fsrec_le(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = n; i-- > 0;)
		v = (v << 8) | p[i];
	return v;
}

static void
fsrec_put_le(unsigned char *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static bool
fsrec_v1(const void *h)
{
	return memcmp(h, "OBL1", 4) == 0;
}

/* Give every record-shaped stretch of p[0..n) its correct CRC, after
 * stamping seg into it if stamp (not into "OBL1" headers). */
static void
fsrec_fix_crcs(unsigned char *p, size_t n, bool stamp, uint64_t seg)
{
	size_t off = 0;
	for (unsigned i = 0; i < 4096 && n - off >= SPOOL_REC_HDR; i++) {
		unsigned char *h = p + off;
		uint64_t env = fsrec_le(h + 8, 4), body = fsrec_le(h + 16, 8);
		if (body > n || env + body > n - off - SPOOL_REC_HDR)
			return;
		size_t total = SPOOL_REC_HDR + (size_t)env + (size_t)body;
		const unsigned char *pay = h + SPOOL_REC_HDR;
		uint32_t crc;
		if (fsrec_v1(h)) {
			crc = crc32_update(0, h, 56);
			crc = crc32_update(crc, pay, total - SPOOL_REC_HDR);
		} else {
			if (stamp)
				fsrec_put_le(h + 12, (uint32_t)seg, 4);
			crc = crc32_update(0, pay, total - SPOOL_REC_HDR);
			crc = crc32_update(crc, h, 56);
		}
		fsrec_put_le(h + 56, crc, 4);
		off += total;
	}
}

static void
fsrec_check(const char *p, size_t n, uint64_t seg, const struct spool_rec *r)
{
	bool v1 = fsrec_v1(p);
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
	FUZZ_ASSERT(spool_rec_payload_len(p) == r->env_len + r->body_len);
	/* the header walk sees the same record */
	struct spool_rec h;
	FUZZ_ASSERT(spool_rec_parse_header(p, n, seg, &h) == 1);
	FUZZ_ASSERT(h.type == r->type && strcmp(h.id, r->id) == 0 &&
		    h.env_len == r->env_len && h.body_len == r->body_len &&
		    h.total == r->total && h.env == NULL && h.body == NULL);
	/* canonical: the writer makes exactly these header bytes */
	char hdr[SPOOL_REC_HDR], sum[SPOOL_REC_HDR];
	spool_rec_header(hdr, r->type, r->id, r->env, r->env_len, r->body,
			 r->body_len);
	spool_rec_header_sum(sum, r->type, r->id, r->env, r->env_len,
			     r->body_len,
			     crc32_update(0, r->body, (size_t)r->body_len));
	FUZZ_ASSERT(memcmp(hdr, sum, SPOOL_REC_HDR) == 0);
	FUZZ_ASSERT(spool_rec_payload_len(hdr) == r->env_len + r->body_len);
	struct spool_rec t;
	if (v1) {
		/* the legacy header: bytes 12..15 zero, the CRC over the
		 * header first */
		memcpy(hdr, "OBL1", 4);
		memset(hdr + 12, 0, 4);
		uint32_t crc = crc32_update(0, hdr, 56);
		crc = crc32_update(crc, r->env, r->env_len);
		crc = crc32_update(crc, r->body, (size_t)r->body_len);
		fsrec_put_le((unsigned char *)hdr + 56, crc, 4);
		FUZZ_ASSERT(memcmp(hdr, p, SPOOL_REC_HDR) == 0);
		/* no segment in it: a record whatever the segment */
		FUZZ_ASSERT(spool_rec_parse(p, r->total, seg ^ 1, &t) == 1);
	} else {
		spool_rec_stamp(hdr, seg);
		FUZZ_ASSERT(memcmp(hdr, p, SPOOL_REC_HDR) == 0);
		FUZZ_ASSERT(fsrec_le((const unsigned char *)p + 12, 4) ==
			    (uint32_t)seg);
		/* another segment's; one 2^32 away is the same */
		FUZZ_ASSERT(spool_rec_parse(p, r->total, seg ^ 1, &t) ==
			    -ESTALE);
		FUZZ_ASSERT(spool_rec_parse_header(p, n, seg ^ 1, &t) ==
			    -ESTALE);
		FUZZ_ASSERT(spool_rec_parse(p, r->total,
					    seg + (UINT64_C(1) << 32),
					    &t) == 1);
	}
	/* one byte short is a torn record, never a (different) record; a
	 * short input is torn only as a prefix of "OBL2" */
	int cut = spool_rec_parse(p, r->total - 1, seg, &t);
	if (v1 && r->total - 1 < SPOOL_REC_HDR)
		FUZZ_ASSERT(cut == -EBADMSG);
	else
		FUZZ_ASSERT(cut == 0);
}

/* Why the walk stopped at p[0..n) with rc (not 1). */
static void
fsrec_check_stop(const char *p, size_t n, uint64_t seg, int rc)
{
	struct spool_rec h;
	int hrc = spool_rec_parse_header(p, n, seg, &h);
	if (rc == -ESTALE) {
		/* a whole, valid "OBL2" header of the segment it names */
		FUZZ_ASSERT(n >= SPOOL_REC_HDR && !fsrec_v1(p));
		uint32_t other = (uint32_t)fsrec_le((const unsigned char *)p
						    + 12, 4);
		FUZZ_ASSERT(other != (uint32_t)seg);
		FUZZ_ASSERT(hrc == -ESTALE);
		FUZZ_ASSERT(spool_rec_parse_header(p, n, other, &h) == 1);
	} else if (rc == 0) {
		if (n < SPOOL_REC_HDR) {
			FUZZ_ASSERT(hrc == 0);
			FUZZ_ASSERT(memcmp(p, "OBL2", n < 4 ? n : 4) == 0);
		} else {
			FUZZ_ASSERT(hrc == 1 && h.total > n);
		}
	} else {
		/* -EBADMSG: a bad header, or a good one with a bad CRC */
		FUZZ_ASSERT(rc == -EBADMSG);
		FUZZ_ASSERT(hrc == -EBADMSG || hrc == 1 ||
			    (hrc == 0 && n < SPOOL_REC_HDR));
		if (hrc == 1)
			FUZZ_ASSERT(h.total <= n);
		if (n < SPOOL_REC_HDR)
			FUZZ_ASSERT(memcmp(p, "OBL2", n < 4 ? n : 4) != 0);
	}
}

/* Walk the segment as replay does. */
static void
fsrec_walk(const char *p, size_t n, uint64_t seg)
{
	size_t off = 0;
	int rc = 1;
	/* each record is at least a header: the loop is bounded by n/64 */
	for (size_t i = 0; i <= n / SPOOL_REC_HDR + 1; i++) {
		struct spool_rec r;
		rc = spool_rec_parse(p + off, n - off, seg, &r);
		FUZZ_ASSERT(rc == 1 || rc == 0 || rc == -ESTALE ||
			    rc == -EBADMSG);
		if (rc != 1)
			break;
		fsrec_check(p + off, n - off, seg, &r);
		off += r.total;
	}
	FUZZ_ASSERT(rc != 1);
	FUZZ_ASSERT(off <= n);
	if (off == n)
		FUZZ_ASSERT(rc == 0);
	fsrec_check_stop(p + off, n - off, seg, rc);
}

static void
fuzz_spool_record(const uint8_t *data, size_t size)
{
	if (size == 0)
		return;
	unsigned mode = data[0];
	uint64_t seg = FSREC_SEG + ((uint64_t)(mode >> 4) << 32);
	size_t n = size - 1;
	/* an exact-size copy, so ASan sees any read past the segment */
	unsigned char *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	if (n > 0)
		memcpy(p, data + 1, n);
	if (mode & 1)
		fsrec_fix_crcs(p, n, (mode & 2) != 0, seg);
	fsrec_walk((const char *)p, n, seg);
	free(p);
}

FUZZ_ENTRY(fuzz_spool_record)
