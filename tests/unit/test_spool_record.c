/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Intake-log records (spool_record.h), byte by byte: the "OBL2" header
 *	layout, unstamped and stamped with a segment, against hand-built
 *	bytes (CRCs computed independently with zlib), header/parse round
 *	trips, every truncation is "torn" (0) and never a record, every
 *	single-bit flip is rejected or torn (or, in the segment field,
 *	stale), each malformed field is -EBADMSG even with a correct CRC (so
 *	the field check, not the CRC, is what is tested), records of another
 *	segment are -ESTALE (only the low 32 bits of its number count),
 *	stamping is what makes the CRC right, hand-built legacy "OBL1"
 *	records still parse with any segment, records back to back, the
 *	header alone and spool_rec_payload_len.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/crc32.h"
#include "outbox/spool_record.h"

#define ENV_N 300u
#define BODY_N 70000u
/* The segment records are stamped with and parsed in: four different
 * bytes, the top bit set, so a byte order or sign slip shows. */
#define SEG UINT64_C(0xa1b2c3d4)

static const char id_a[] = "0123456789ABCDEF";
static const char id_d[] = "FEDCBA9876543210";

static void
put_le(char *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (char)(unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const char *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = n; i-- > 0;)
		v = (v << 8) | (unsigned char)p[i];
	return v;
}

/* Deterministic payloads whose lengths need more than one LE byte. */
static void
fill_parts(char *env, char *body)
{
	for (unsigned i = 0; i < ENV_N; i++)
		env[i] = (char)((i * 7 + 3) & 0xff);
	for (unsigned i = 0; i < BODY_N; i++)
		body[i] = (char)((i * 13 + 1) & 0xff);
}

/* header + env + body in one new buffer, stamped with segment seg. */
static char *
build_seg(uint64_t seg, char type, const char *id, const char *env,
	  size_t env_len, const char *body, size_t body_len, size_t *total)
{
	*total = SPOOL_REC_HDR + env_len + body_len;
	char *p = malloc(*total);
	CHECK(p != NULL);
	spool_rec_header(p, type, id, env, env_len, body, body_len);
	spool_rec_stamp(p, seg);
	if (env_len > 0)
		memcpy(p + SPOOL_REC_HDR, env, env_len);
	if (body_len > 0)
		memcpy(p + SPOOL_REC_HDR + env_len, body, body_len);
	return p;
}

/* The same, of segment SEG. */
static char *
build(char type, const char *id, const char *env, size_t env_len,
      const char *body, size_t body_len, size_t *total)
{
	return build_seg(SEG, type, id, env, env_len, body, body_len, total);
}

/* After editing a header field, make the CRC right again so only the
 * field check can reject the record: env, body, then header bytes 0..55;
 * for an "OBL1" header the legacy order, header first. */
static void
fix_crc(char *p, size_t env_len, size_t body_len)
{
	uint32_t crc;
	if (memcmp(p, "OBL1", 4) == 0) {
		crc = crc32_update(0, p, 56);
		crc = crc32_update(crc, p + SPOOL_REC_HDR, env_len + body_len);
	} else {
		crc = crc32_update(0, p + SPOOL_REC_HDR, env_len + body_len);
		crc = crc32_update(crc, p, 56);
	}
	put_le(p + 56, crc, 4);
}

static void
test_crc_reference(void)
{
	/* The CRC the format uses is the zlib/IEEE one the constants below
	 * were computed with. */
	CHECK_EQ(0xCBF43926u, crc32_update(0, "123456789", 9));
}

static void
test_layout_accept(void)
{
	/* as spool_rec_header leaves it: segment 0, the slot holding
	 * crc32(env || body) */
	static const unsigned char want0[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '2', 'A', 0, 0, 0,
		0x2c, 0x01, 0, 0, 0, 0, 0, 0,               /* env_len 300 */
		0x70, 0x11, 0x01, 0, 0, 0, 0, 0,            /* body_len 70000 */
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x5d, 0x06, 0x84, 0xe3, 0, 0, 0, 0,        /* crc 0xe384065d */
	};
	/* stamped with SEG: the segment, the CRC of env, body, header */
	static const unsigned char want[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '2', 'A', 0, 0, 0,
		0x2c, 0x01, 0, 0,                           /* env_len 300 */
		0xd4, 0xc3, 0xb2, 0xa1,                     /* segment SEG */
		0x70, 0x11, 0x01, 0, 0, 0, 0, 0,            /* body_len 70000 */
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x99, 0x4d, 0x7a, 0x84, 0, 0, 0, 0,        /* crc 0x847a4d99 */
	};
	char *env = malloc(ENV_N), *body = malloc(BODY_N);
	CHECK(env != NULL && body != NULL);
	fill_parts(env, body);
	char hdr[SPOOL_REC_HDR];
	memset(hdr, 0x5a, sizeof(hdr)); /* padding must be written, not left */
	spool_rec_header(hdr, 'A', id_a, env, ENV_N, body, BODY_N);
	CHECK_MEM_EQ(hdr, want0, SPOOL_REC_HDR);
	CHECK_EQ(ENV_N + BODY_N, spool_rec_payload_len(hdr));
	/* from the body's CRC the caller has: the same bytes */
	char sum[SPOOL_REC_HDR];
	memset(sum, 0xa5, sizeof(sum));
	spool_rec_header_sum(sum, 'A', id_a, env, ENV_N, BODY_N,
			     crc32_update(0, body, BODY_N));
	CHECK_MEM_EQ(sum, want0, SPOOL_REC_HDR);
	spool_rec_stamp(hdr, SEG);
	CHECK_MEM_EQ(hdr, want, SPOOL_REC_HDR);
	CHECK_EQ(ENV_N + BODY_N, spool_rec_payload_len(hdr));
	/* only the low 32 bits of the number are stored */
	spool_rec_stamp(sum, SEG | UINT64_C(0xffffffff00000000));
	CHECK_MEM_EQ(sum, want, SPOOL_REC_HDR);

	size_t total;
	char *rec = build('A', id_a, env, ENV_N, body, BODY_N, &total);
	CHECK_MEM_EQ(rec, want, SPOOL_REC_HDR);
	struct spool_rec r;
	memset(&r, 0, sizeof(r));
	CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_a, r.id);
	CHECK(r.env == rec + SPOOL_REC_HDR);
	CHECK_EQ(ENV_N, r.env_len);
	CHECK(r.body == rec + SPOOL_REC_HDR + ENV_N);
	CHECK_EQ(BODY_N, r.body_len);
	CHECK_EQ(total, r.total);
	CHECK_EQ(SPOOL_REC_HDR + ENV_N + BODY_N, r.total);
	CHECK_MEM_EQ(r.env, env, ENV_N);
	CHECK_MEM_EQ(r.body, body, BODY_N);
	/* Bytes after the record are not its business. */
	char *more = malloc(total + 10);
	CHECK(more != NULL);
	memcpy(more, rec, total);
	memset(more + total, 0xff, 10);
	CHECK_EQ(1, spool_rec_parse(more, total + 10, SEG, &r));
	CHECK_EQ(total, r.total);
	/* The hand-built header with its payload parses: the layout is the
	 * format. */
	memcpy(more, want, SPOOL_REC_HDR);
	CHECK_EQ(1, spool_rec_parse(more, total, SEG, &r));
	CHECK_STR_EQ(id_a, r.id);
	CHECK_EQ(total, r.total);
	free(more);
	free(rec);
	free(env);
	free(body);
}

static void
test_layout_done(void)
{
	static const unsigned char want[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '2', 'D', 0, 0, 0,
		0, 0, 0, 0,
		0xd4, 0xc3, 0xb2, 0xa1,                     /* segment SEG */
		0, 0, 0, 0, 0, 0, 0, 0,
		'F', 'E', 'D', 'C', 'B', 'A', '9', '8',
		'7', '6', '5', '4', '3', '2', '1', '0',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x1e, 0x99, 0xac, 0xf4, 0, 0, 0, 0,        /* crc 0xf4ac991e */
	};
	static const char zero[8];
	char hdr[SPOOL_REC_HDR];
	memset(hdr, 0xa5, sizeof(hdr));
	spool_rec_header(hdr, 'D', id_d, NULL, 0, NULL, 0);
	/* unstamped: segment 0, and the CRC of no payload is 0 */
	CHECK_MEM_EQ(hdr, want, 12);
	CHECK_MEM_EQ(hdr + 12, zero, 4);
	CHECK_MEM_EQ(hdr + 16, want + 16, 40);
	CHECK_MEM_EQ(hdr + 56, zero, 8);
	CHECK_EQ(0, spool_rec_payload_len(hdr));
	spool_rec_stamp(hdr, SEG);
	CHECK_MEM_EQ(hdr, want, SPOOL_REC_HDR);
	CHECK_EQ(0, spool_rec_payload_len(hdr));
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
	CHECK_EQ('D', r.type);
	CHECK_STR_EQ(id_d, r.id);
	CHECK_EQ(0, r.env_len);
	CHECK_EQ(0, r.body_len);
	CHECK_EQ(SPOOL_REC_HDR, r.total);
	/* The hand-built bytes parse as well: the layout is the format. */
	CHECK_EQ(1, spool_rec_parse((const char *)want, sizeof(want), SEG, &r));
	CHECK_STR_EQ(id_d, r.id);
}

/* An 'A' record with an empty body is valid (env carries the size). */
static void
test_empty_body(void)
{
	size_t total;
	char *rec = build('A', id_a, "E", 1, NULL, 0, &total);
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r));
	CHECK_EQ(SPOOL_REC_HDR + 1, r.total);
	CHECK_EQ(0, r.body_len);
	CHECK_EQ('E', r.env[0]);
	free(rec);
}

/*
 * Each prefix in its own exact-size heap block, so ASan catches a
 * parse that reads past n. Torn, except that fewer than 64 bytes are
 * torn only as a prefix of "OBL2": a legacy "OBL1" record cut within
 * its header is -EBADMSG (it is never written any more).
 */
static void
check_truncations(const char *rec, size_t total)
{
	int v1 = memcmp(rec, "OBL1", 4) == 0;
	for (size_t n = 0; n < total; n++) {
		char *p = malloc(n ? n : 1);
		CHECK(p != NULL);
		memcpy(p, rec, n);
		struct spool_rec r;
		memset(&r, 0x77, sizeof(r));
		int want = v1 && n >= 4 && n < SPOOL_REC_HDR ? -EBADMSG : 0;
		int rc = spool_rec_parse(p, n, SEG, &r);
		if (rc != want)
			CHECK_FAIL("truncated to %zu of %zu: %d, want %d", n,
				   total, rc, want);
		free(p);
	}
	check_count++;
}

static void
test_truncations(void)
{
	char env[40], body[90];
	for (unsigned i = 0; i < sizeof(env); i++)
		env[i] = (char)('a' + i % 26);
	for (unsigned i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 31);
	size_t total;
	char *rec = build('A', id_a, env, sizeof(env), body, sizeof(body),
			  &total);
	check_truncations(rec, total);
	free(rec);
	rec = build('D', id_d, NULL, 0, NULL, 0, &total);
	check_truncations(rec, total);
	free(rec);
}

/*
 * Every bit of every byte of the record, one at a time: rejected or
 * torn; in the segment field (bytes 12..15 of "OBL2") the header is
 * otherwise valid, so exactly -ESTALE.
 */
static void
check_flips(char *rec, size_t total)
{
	int v2 = memcmp(rec, "OBL2", 4) == 0;
	for (size_t i = 0; i < total; i++) {
		int seg_byte = v2 && i >= 12 && i < 16;
		for (int b = 0; b < 8; b++) {
			rec[i] ^= (char)(1 << b);
			struct spool_rec r;
			int rc = spool_rec_parse(rec, total, SEG, &r);
			if (seg_byte ? rc != -ESTALE
				     : rc != 0 && rc != -EBADMSG)
				CHECK_FAIL("byte %zu bit %d flipped: %d", i, b,
					   rc);
			rec[i] ^= (char)(1 << b);
		}
	}
	/* and whole-byte replacements */
	for (size_t i = 0; i < total; i++) {
		int seg_byte = v2 && i >= 12 && i < 16;
		char old = rec[i];
		rec[i] = (char)~old;
		struct spool_rec r;
		int rc = spool_rec_parse(rec, total, SEG, &r);
		if (seg_byte ? rc != -ESTALE : rc != 0 && rc != -EBADMSG)
			CHECK_FAIL("byte %zu inverted: %d", i, rc);
		rec[i] = old;
	}
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r)); /* restored */
	CHECK_EQ(total, r.total);
}

static void
test_flips(void)
{
	char env[33], body[77];
	for (unsigned i = 0; i < sizeof(env); i++)
		env[i] = (char)(i ^ 0x5c);
	for (unsigned i = 0; i < sizeof(body); i++)
		body[i] = (char)(200 - i);
	size_t total;
	char *rec = build('A', id_a, env, sizeof(env), body, sizeof(body),
			  &total);
	check_flips(rec, total);
	free(rec);
	rec = build('D', id_d, NULL, 0, NULL, 0, &total);
	check_flips(rec, total);
	free(rec);
}

/* Set byte i of a valid record to v, fix the CRC, expect -EBADMSG, for
 * any segment: a malformed header is not a stale one. */
static void
check_field(size_t i, char v)
{
	char env[20], body[30];
	memset(env, 'e', sizeof(env));
	memset(body, 'b', sizeof(body));
	size_t total;
	char *rec = build('A', id_a, env, sizeof(env), body, sizeof(body),
			  &total);
	rec[i] = v;
	fix_crc(rec, sizeof(env), sizeof(body));
	struct spool_rec r;
	int rc = spool_rec_parse(rec, total, SEG, &r);
	if (rc != -EBADMSG)
		CHECK_FAIL("byte %zu = 0x%02x: %d, want -EBADMSG", i,
			   (unsigned char)v, rc);
	check_count++;
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG ^ 1, &r));
	/* every one of these is in the header: a header walk sees it too */
	CHECK_EQ(-EBADMSG, spool_rec_parse_header(rec, SPOOL_REC_HDR, SEG, &r));
	CHECK_EQ(-EBADMSG,
		 spool_rec_parse_header(rec, SPOOL_REC_HDR, SEG ^ 1, &r));
	free(rec);
}

static void
test_bad_fields(void)
{
	/* magic; '1' makes it a legacy header, whose bytes 12..15 (here
	 * the stamped segment) must be zero */
	check_field(0, 'o');
	check_field(3, '1');
	check_field(3, '3');
	/* padding after the type, id tail, after the CRC (bytes 12..15 are
	 * the segment: test_stale) */
	for (size_t i = 5; i < 8; i++)
		check_field(i, 1);
	for (size_t i = 40; i < 56; i++)
		check_field(i, 'A');
	for (size_t i = 60; i < 64; i++)
		check_field(i, 1);
	/* invalid id: lower case, a NUL inside, a non-hex letter */
	check_field(24, 'a');
	check_field(30, 0);
	check_field(39, 'G');
	check_field(39, 0);
	/* unknown types */
	check_field(4, 'X');
	check_field(4, 'a');
	check_field(4, 0);
	/* 'A' with env_len 0: header says 0, bytes still follow */
	{
		size_t total;
		char *rec = build('A', id_a, NULL, 0, "body", 4, &total);
		struct spool_rec r;
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
		free(rec);
	}
	/* 'D' with lengths, CRC correct */
	{
		size_t total;
		char *rec = build('D', id_d, "env", 3, NULL, 0, &total);
		struct spool_rec r;
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
		free(rec);
		rec = build('D', id_d, NULL, 0, "b", 1, &total);
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
		free(rec);
	}
	/* a short id written by spool_rec_header is NUL padded: invalid */
	{
		size_t total;
		char *rec = build('D', "0123ABCD", NULL, 0, NULL, 0, &total);
		struct spool_rec r;
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
		free(rec);
	}
}

/*
 * A record of another segment (a recycled segment's past) is -ESTALE,
 * decided from the header alone: whole or torn after its header,
 * whatever its payload. Only the low 32 bits of the segment number are
 * stored, so numbers that differ only above bit 31 are the same segment
 * to the reader: SEG + 2^32 reads SEG's records.
 */
static void
test_stale(void)
{
	static const uint64_t other[] = {
		0, 1, SEG - 1, SEG + 1, SEG ^ 1, SEG ^ 0x80000000u,
		UINT32_MAX, UINT64_MAX, SEG << 32,
	};
	static const uint64_t same[] = {
		SEG + (UINT64_C(1) << 32), SEG | UINT64_C(0xffffffff00000000),
	};
	char env[25], body[45];
	memset(env, 'e', sizeof(env));
	memset(body, 'b', sizeof(body));
	size_t total, dtotal;
	char *rec = build('A', id_a, env, sizeof(env), body, sizeof(body),
			  &total);
	char *done = build('D', id_d, NULL, 0, NULL, 0, &dtotal);
	struct spool_rec r;
	for (size_t k = 0; k < sizeof(other) / sizeof(other[0]); k++) {
		uint64_t s = other[k];
		CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, s, &r));
		CHECK_EQ(-ESTALE, spool_rec_parse_header(rec, total, s, &r));
		CHECK_EQ(-ESTALE,
			 spool_rec_parse_header(rec, SPOOL_REC_HDR, s, &r));
		CHECK_EQ(-ESTALE, spool_rec_parse(done, dtotal, s, &r));
		CHECK_EQ(-ESTALE, spool_rec_parse_header(done, dtotal, s, &r));
	}
	for (size_t k = 0; k < sizeof(same) / sizeof(same[0]); k++) {
		CHECK_EQ(1, spool_rec_parse(rec, total, same[k], &r));
		CHECK_EQ(total, r.total);
		CHECK_EQ(1, spool_rec_parse_header(rec, total, same[k], &r));
		CHECK_EQ(1, spool_rec_parse(done, dtotal, same[k], &r));
		/* and stamped with it, the record is the same bytes */
		size_t t2;
		char *rec2 = build_seg(same[k], 'A', id_a, env, sizeof(env),
				       body, sizeof(body), &t2);
		CHECK_EQ(total, t2);
		CHECK_MEM_EQ(rec2, rec, total);
		free(rec2);
	}
	/* torn after the header: stale; within it: torn, not yet known */
	for (size_t n = 0; n < total; n++) {
		int want = n < SPOOL_REC_HDR ? 0 : -ESTALE;
		int rc = spool_rec_parse(rec, n, SEG - 1, &r);
		if (rc != want)
			CHECK_FAIL("stale cut to %zu: %d, want %d", n, rc,
				   want);
	}
	check_count++;
	/* the payload is not what decides */
	rec[total - 1] ^= 1;
	CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, SEG - 1, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
	rec[total - 1] ^= 1;
	/* each byte of the segment field, CRC right: stale for SEG, a
	 * record of the segment it now names */
	for (size_t i = 12; i < 16; i++) {
		char old = rec[i];
		rec[i] ^= (char)0x80;
		fix_crc(rec, sizeof(env), sizeof(body));
		uint64_t now = SEG ^ (UINT64_C(0x80) << (8 * (i - 12)));
		CHECK_EQ(now, get_le(rec + 12, 4));
		CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, SEG, &r));
		CHECK_EQ(-ESTALE, spool_rec_parse_header(rec, total, SEG, &r));
		CHECK_EQ(1, spool_rec_parse(rec, total, now, &r));
		CHECK_EQ(1, spool_rec_parse_header(rec, total, now, &r));
		rec[i] = old;
		fix_crc(rec, sizeof(env), sizeof(body));
		CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r));
	}
	/* a recycled segment: this life's records, then an earlier life's,
	 * whole and with a good CRC, where replay stops */
	size_t n3;
	char *old = build_seg(SEG - 1, 'A', id_d, "E2", 2, "old\r\n", 5, &n3);
	size_t len = total + dtotal + n3;
	char *buf = malloc(len);
	CHECK(buf != NULL);
	memcpy(buf, rec, total);
	memcpy(buf + total, done, dtotal);
	memcpy(buf + total + dtotal, old, n3);
	size_t off = 0;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG, &r));
	off += r.total;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG, &r));
	off += r.total;
	CHECK_EQ(total + dtotal, off);
	CHECK_EQ(-ESTALE, spool_rec_parse(buf + off, len - off, SEG, &r));
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG - 1, &r));
	CHECK_EQ(n3, r.total);
	free(buf);
	free(old);
	free(done);
	free(rec);
}

/*
 * Stamping is what makes a record: spool_rec_header leaves segment 0
 * and the payload's CRC in the slot, which is not the record's CRC, so
 * the unstamped header is no record, not even of segment 0. Only the
 * header walk, which checks no CRC, takes it. Stamping twice (misuse:
 * once only) breaks the CRC again.
 */
static void
test_stamp(void)
{
	static const char env[] = "envelope", body[] = "body\r\n";
	size_t env_len = sizeof(env) - 1, body_len = sizeof(body) - 1;
	size_t total = SPOOL_REC_HDR + env_len + body_len;
	char *rec = malloc(total);
	CHECK(rec != NULL);
	spool_rec_header(rec, 'A', id_a, env, env_len, body, body_len);
	memcpy(rec + SPOOL_REC_HDR, env, env_len);
	memcpy(rec + SPOOL_REC_HDR + env_len, body, body_len);
	CHECK_EQ(0, get_le(rec + 12, 4));
	CHECK_EQ(crc32_update(0, rec + SPOOL_REC_HDR, env_len + body_len),
		 get_le(rec + 56, 4));
	struct spool_rec r;
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, 0, &r));
	CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, SEG, &r));
	CHECK_EQ(1, spool_rec_parse_header(rec, total, 0, &r));
	CHECK_EQ(-ESTALE, spool_rec_parse_header(rec, total, SEG, &r));
	spool_rec_stamp(rec, 0);
	CHECK_EQ(1, spool_rec_parse(rec, total, 0, &r));
	CHECK_EQ(total, r.total);
	CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, SEG, &r));
	spool_rec_stamp(rec, 0);
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, 0, &r));

	/* the same from spool_rec_header_sum, stamped with SEG */
	spool_rec_header_sum(rec, 'A', id_a, env, env_len, body_len,
			     crc32_update(0, body, body_len));
	CHECK_EQ(-ESTALE, spool_rec_parse(rec, total, SEG, &r));
	spool_rec_stamp(rec, SEG);
	CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r));
	CHECK_MEM_EQ(r.body, body, body_len);
	free(rec);

	/* 'D': the unstamped slot holds 0, the CRC of nothing */
	char hdr[SPOOL_REC_HDR];
	spool_rec_header(hdr, 'D', id_d, NULL, 0, NULL, 0);
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), 0, &r));
	spool_rec_stamp(hdr, 0);
	CHECK_EQ(1, spool_rec_parse(hdr, sizeof(hdr), 0, &r));
	CHECK_EQ('D', r.type);
}

/* env_len + body_len, each field read whole; what follows the header,
 * so a header's total is SPOOL_REC_HDR + spool_rec_payload_len. */
static void
test_payload_len(void)
{
	char hdr[SPOOL_REC_HDR];
	spool_rec_header(hdr, 'D', id_d, NULL, 0, NULL, 0);
	CHECK_EQ(0, spool_rec_payload_len(hdr));
	spool_rec_header(hdr, 'A', id_a, "E", 1, "bb", 2);
	CHECK_EQ(3, spool_rec_payload_len(hdr));
	spool_rec_stamp(hdr, SEG);
	CHECK_EQ(3, spool_rec_payload_len(hdr));
	/* the largest valid record; the body is not read */
	char env[ENV_N];
	memset(env, 'e', sizeof(env));
	spool_rec_header_sum(hdr, 'A', id_a, env, ENV_N, SPOOL_REC_BODY_MAX,
			     0x12345678u);
	spool_rec_stamp(hdr, SEG);
	CHECK_EQ((uint64_t)ENV_N + SPOOL_REC_BODY_MAX,
		 spool_rec_payload_len(hdr));
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse_header(hdr, sizeof(hdr), SEG, &r));
	CHECK_EQ(SPOOL_REC_HDR + spool_rec_payload_len(hdr), r.total);
	/* every byte of both fields counts, and only those */
	memset(hdr, 0xff, sizeof(hdr));
	put_le(hdr + 8, 0x01020304u, 4);
	put_le(hdr + 16, UINT64_C(0x0000000506070809), 8);
	CHECK_EQ(UINT64_C(0x01020304) + UINT64_C(0x0000000506070809),
		 spool_rec_payload_len(hdr));
}

/*
 * Legacy "OBL1" records, as an outboxd before segment recycling wrote
 * them, hand-built with zlib CRCs (over the header first): they parse
 * with any segment number, whole and by header. Bytes 12..15 must be
 * zero there, and each version's CRC order is its own.
 */
static void
test_legacy(void)
{
	static const unsigned char v1_a[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '1', 'A', 0, 0, 0,
		0x2c, 0x01, 0, 0, 0, 0, 0, 0,               /* env_len 300 */
		0x70, 0x11, 0x01, 0, 0, 0, 0, 0,            /* body_len 70000 */
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x19, 0x3c, 0x6c, 0xca, 0, 0, 0, 0,        /* crc 0xca6c3c19 */
	};
	static const unsigned char v1_d[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '1', 'D', 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		'F', 'E', 'D', 'C', 'B', 'A', '9', '8',
		'7', '6', '5', '4', '3', '2', '1', '0',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x49, 0x8d, 0xbe, 0xda, 0, 0, 0, 0,        /* crc 0xdabe8d49 */
	};
	/* "legacy-env", "legacy body\r\n" */
	static const unsigned char v1_small[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '1', 'A', 0, 0, 0,
		0x0a, 0, 0, 0, 0, 0, 0, 0,                  /* env_len 10 */
		0x0d, 0, 0, 0, 0, 0, 0, 0,                  /* body_len 13 */
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x23, 0xbc, 0x43, 0x75, 0, 0, 0, 0,        /* crc 0x7543bc23 */
	};
	static const uint64_t segs[] = {
		SEG, 0, 1, UINT32_MAX, UINT64_MAX,
	};
	char *env = malloc(ENV_N), *body = malloc(BODY_N);
	CHECK(env != NULL && body != NULL);
	fill_parts(env, body);
	size_t total = SPOOL_REC_HDR + ENV_N + BODY_N;
	char *rec = malloc(total);
	CHECK(rec != NULL);
	memcpy(rec, v1_a, SPOOL_REC_HDR);
	memcpy(rec + SPOOL_REC_HDR, env, ENV_N);
	memcpy(rec + SPOOL_REC_HDR + ENV_N, body, BODY_N);
	struct spool_rec r;
	for (size_t k = 0; k < sizeof(segs) / sizeof(segs[0]); k++) {
		memset(&r, 0, sizeof(r));
		CHECK_EQ(1, spool_rec_parse(rec, total, segs[k], &r));
		CHECK_EQ('A', r.type);
		CHECK_STR_EQ(id_a, r.id);
		CHECK(r.env == rec + SPOOL_REC_HDR);
		CHECK_EQ(ENV_N, r.env_len);
		CHECK(r.body == rec + SPOOL_REC_HDR + ENV_N);
		CHECK_EQ(BODY_N, r.body_len);
		CHECK_EQ(total, r.total);
		CHECK_EQ(1, spool_rec_parse_header(rec, SPOOL_REC_HDR,
						   segs[k], &r));
		CHECK_EQ(total, r.total);
		CHECK_EQ(1, spool_rec_parse((const char *)v1_d, SPOOL_REC_HDR,
					    segs[k], &r));
		CHECK_EQ('D', r.type);
		CHECK_STR_EQ(id_d, r.id);
		CHECK_EQ(SPOOL_REC_HDR, r.total);
	}
	CHECK_EQ(ENV_N + BODY_N, spool_rec_payload_len(rec));
	/* cut after the header: torn, as before */
	CHECK_EQ(0, spool_rec_parse(rec, SPOOL_REC_HDR, SEG, &r));
	CHECK_EQ(0, spool_rec_parse(rec, total - 1, SEG, &r));
	/* bytes 12..15 not zero, CRC (header first) right: not a record;
	 * nor with the reader's segment stamped there */
	for (size_t i = 12; i < 16; i++) {
		rec[i] = (char)0x80;
		fix_crc(rec, ENV_N, BODY_N);
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, 0, &r));
		CHECK_EQ(-EBADMSG,
			 spool_rec_parse_header(rec, SPOOL_REC_HDR, SEG, &r));
		memcpy(rec, v1_a, SPOOL_REC_HDR);
	}
	put_le(rec + 12, SEG, 4);
	fix_crc(rec, ENV_N, BODY_N);
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
	memcpy(rec, v1_a, SPOOL_REC_HDR);
	CHECK_EQ(1, spool_rec_parse(rec, total, SEG, &r));
	/* "OBL1" with the CRC in the "OBL2" order: not a record */
	uint32_t crc = crc32_update(0, env, ENV_N);
	crc = crc32_update(crc, body, BODY_N);
	put_le(rec + 56, crc32_update(crc, rec, 56), 4);
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
	/* nor "OBL2" (stamped with SEG) with the CRC in the "OBL1" order */
	memcpy(rec, "OBL2", 4);
	put_le(rec + 12, SEG, 4);
	crc = crc32_update(0, rec, 56);
	crc = crc32_update(crc, env, ENV_N);
	put_le(rec + 56, crc32_update(crc, body, BODY_N), 4);
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
	/* and fix_crc agrees with the hand-built bytes for both */
	memcpy(rec, v1_a, SPOOL_REC_HDR);
	memset(rec + 56, 0, 4);
	fix_crc(rec, ENV_N, BODY_N);
	CHECK_MEM_EQ(rec, v1_a, SPOOL_REC_HDR);
	spool_rec_header(rec, 'A', id_a, env, ENV_N, body, BODY_N);
	spool_rec_stamp(rec, SEG);
	char want[SPOOL_REC_HDR];
	memcpy(want, rec, sizeof(want));
	memset(rec + 56, 0, 4);
	fix_crc(rec, ENV_N, BODY_N);
	CHECK_MEM_EQ(rec, want, SPOOL_REC_HDR);
	free(rec);

	/* a small one: every truncation and every flip */
	size_t stotal = SPOOL_REC_HDR + 10 + 13;
	char *small = malloc(stotal);
	CHECK(small != NULL);
	memcpy(small, v1_small, SPOOL_REC_HDR);
	memcpy(small + SPOOL_REC_HDR, "legacy-env", 10);
	memcpy(small + SPOOL_REC_HDR + 10, "legacy body\r\n", 13);
	CHECK_EQ(1, spool_rec_parse(small, stotal, SEG, &r));
	CHECK_MEM_EQ(r.env, "legacy-env", 10);
	CHECK_MEM_EQ(r.body, "legacy body\r\n", 13);
	check_truncations(small, stotal);
	check_flips(small, stotal);
	char d[SPOOL_REC_HDR];
	memcpy(d, v1_d, sizeof(d));
	check_truncations(d, sizeof(d));
	check_flips(d, sizeof(d));

	/* a legacy record and a new one back to back both parse */
	size_t dtotal;
	char *done = build('D', id_a, NULL, 0, NULL, 0, &dtotal);
	char *buf = malloc(stotal + dtotal);
	CHECK(buf != NULL);
	memcpy(buf, small, stotal);
	memcpy(buf + stotal, done, dtotal);
	CHECK_EQ(1, spool_rec_parse(buf, stotal + dtotal, SEG, &r));
	CHECK_EQ(stotal, r.total);
	CHECK_EQ(1, spool_rec_parse(buf + stotal, dtotal, SEG, &r));
	CHECK_EQ('D', r.type);
	free(buf);
	free(done);
	free(small);
	free(env);
	free(body);
}

/* Lengths out of range are rejected from the header alone: a huge
 * length is not a "torn" record the reader would wait for. */
static void
test_lengths(void)
{
	char hdr[SPOOL_REC_HDR];
	struct spool_rec r;
	spool_rec_header(hdr, 'A', id_a, "x", 1, NULL, 0);
	spool_rec_stamp(hdr, SEG);
	uint32_t env_len = SPOOL_REC_ENV_MAX + 1;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
	env_len = UINT32_MAX;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
	/* exactly the maximum is plausible: only 64 bytes of it are here */
	env_len = SPOOL_REC_ENV_MAX;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(0, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));

	spool_rec_header(hdr, 'A', id_a, "x", 1, NULL, 0);
	spool_rec_stamp(hdr, SEG);
	uint64_t body_len = (uint64_t)SPOOL_REC_BODY_MAX + 1;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
	body_len = UINT64_MAX;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
	body_len = SPOOL_REC_BODY_MAX;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(0, spool_rec_parse(hdr, sizeof(hdr), SEG, &r));
}

/* Short inputs: a prefix of "OBL2" is torn, anything else is not a
 * record, a legacy "OBL1" prefix included (only whole legacy headers are
 * read); zeroes (a preallocated or hole-filled tail) are not a record
 * either. */
static void
test_short_and_zero(void)
{
	struct spool_rec r;
	CHECK_EQ(0, spool_rec_parse("", 0, SEG, &r));
	CHECK_EQ(0, spool_rec_parse("O", 1, SEG, &r));
	CHECK_EQ(0, spool_rec_parse("OBL", 3, SEG, &r));
	CHECK_EQ(0, spool_rec_parse("OBL2", 4, SEG, &r));
	CHECK_EQ(0, spool_rec_parse("OBL2A", 5, SEG, &r));
	CHECK_EQ(0, spool_rec_parse("OBL2A", 5, 0, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("X", 1, SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBX", 3, SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBL1", 4, SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBL1A", 5, SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBL3", 4, SEG, &r));
	char zero[SPOOL_REC_HDR * 2];
	memset(zero, 0, sizeof(zero));
	CHECK_EQ(-EBADMSG, spool_rec_parse(zero, 10, SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse(zero, sizeof(zero), SEG, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse(zero, sizeof(zero), 0, &r));
}

/* A, D, A back to back: parse, advance by total, land on the end. */
static void
test_sequence(void)
{
	size_t n1, n2, n3;
	char *r1 = build('A', id_a, "env-one", 7, "body one\r\n", 10, &n1);
	char *r2 = build('D', id_a, NULL, 0, NULL, 0, &n2);
	char *r3 = build('A', id_d, "E2", 2, "second\r\n", 8, &n3);
	size_t len = n1 + n2 + n3;
	char *buf = malloc(len);
	CHECK(buf != NULL);
	memcpy(buf, r1, n1);
	memcpy(buf + n1, r2, n2);
	memcpy(buf + n1 + n2, r3, n3);
	struct spool_rec r;
	size_t off = 0;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_a, r.id);
	CHECK_MEM_EQ(r.body, "body one\r\n", 10);
	off += r.total;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG, &r));
	CHECK_EQ('D', r.type);
	CHECK_STR_EQ(id_a, r.id);
	off += r.total;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, SEG, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_d, r.id);
	CHECK_MEM_EQ(r.env, "E2", 2);
	CHECK_MEM_EQ(r.body, "second\r\n", 8);
	off += r.total;
	CHECK_EQ(len, off);
	CHECK_EQ(0, spool_rec_parse(buf + off, len - off, SEG, &r));
	/* the last one torn: the first two still parse, then 0 */
	off = 0;
	len -= 3;
	int rc, count = 0;
	while ((rc = spool_rec_parse(buf + off, len - off, SEG, &r)) == 1 &&
	       count < 10) {
		off += r.total;
		count++;
	}
	CHECK_EQ(2, count);
	CHECK_EQ(0, rc);
	CHECK_EQ(n1 + n2, off);
	free(buf);
	free(r1);
	free(r2);
	free(r3);
}

/* The header alone: fields and total from 64 bytes, the payload neither
 * needed nor checked, fewer than 64 bytes is 0. */
static void
test_header_only(void)
{
	char env[ENV_N], *body = malloc(BODY_N);
	CHECK(body != NULL);
	fill_parts(env, body);
	size_t total;
	char *rec = build('A', id_a, env, ENV_N, body, BODY_N, &total);
	struct spool_rec r;
	memset(&r, 0x55, sizeof(r));
	CHECK_EQ(1, spool_rec_parse_header(rec, SPOOL_REC_HDR, SEG, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_a, r.id);
	CHECK_EQ(ENV_N, r.env_len);
	CHECK_EQ(BODY_N, r.body_len);
	CHECK_EQ(total, r.total);
	CHECK_EQ(SPOOL_REC_HDR + spool_rec_payload_len(rec), r.total);
	CHECK(r.env == NULL && r.body == NULL);
	/* a body byte flipped: the record is rejected, its header is not */
	rec[total - 1] ^= 1;
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, SEG, &r));
	CHECK_EQ(1, spool_rec_parse_header(rec, total, SEG, &r));
	CHECK_EQ(total, r.total);
	CHECK_EQ(0, spool_rec_parse_header(rec, SPOOL_REC_HDR - 1, SEG, &r));
	CHECK_EQ(0, spool_rec_parse_header(rec, 0, SEG, &r));
	/* fewer than 64 bytes is 0 whatever the segment */
	CHECK_EQ(0,
		 spool_rec_parse_header(rec, SPOOL_REC_HDR - 1, SEG - 1, &r));
	free(rec);
	rec = build('D', id_d, NULL, 0, NULL, 0, &total);
	CHECK_EQ(1, spool_rec_parse_header(rec, total, SEG, &r));
	CHECK_EQ('D', r.type);
	CHECK_STR_EQ(id_d, r.id);
	CHECK_EQ((size_t)SPOOL_REC_HDR, r.total);
	free(rec);
	free(body);
}

int
main(void)
{
	test_crc_reference();
	test_layout_accept();
	test_layout_done();
	test_empty_body();
	test_truncations();
	test_flips();
	test_bad_fields();
	test_stale();
	test_stamp();
	test_payload_len();
	test_legacy();
	test_lengths();
	test_short_and_zero();
	test_sequence();
	test_header_only();
	CHECK_DONE();
}
