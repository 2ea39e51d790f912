/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Intake-log records (spool_record.h), byte by byte: the header layout
 *	against hand-built bytes (CRCs computed independently with zlib),
 *	header/parse round trips, every truncation is "torn" (0) and never a
 *	record, every single-bit flip is rejected or torn, each malformed
 *	field is -EBADMSG even with a correct CRC (so the field check, not
 *	the CRC, is what is tested), and records back to back.
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

static const char id_a[] = "0123456789ABCDEF";
static const char id_d[] = "FEDCBA9876543210";

/* Deterministic payloads whose lengths need more than one LE byte. */
static void
fill_parts(char *env, char *body)
{
	for (unsigned i = 0; i < ENV_N; i++)
		env[i] = (char)((i * 7 + 3) & 0xff);
	for (unsigned i = 0; i < BODY_N; i++)
		body[i] = (char)((i * 13 + 1) & 0xff);
}

/* header + env + body in one new buffer. */
static char *
build(char type, const char *id, const char *env, size_t env_len,
      const char *body, size_t body_len, size_t *total)
{
	*total = SPOOL_REC_HDR + env_len + body_len;
	char *p = malloc(*total);
	CHECK(p != NULL);
	spool_rec_header(p, type, id, env, env_len, body, body_len);
	if (env_len > 0)
		memcpy(p + SPOOL_REC_HDR, env, env_len);
	if (body_len > 0)
		memcpy(p + SPOOL_REC_HDR + env_len, body, body_len);
	return p;
}

/* After editing a header field, make the CRC right again so only the
 * field check can reject the record. */
static void
fix_crc(char *p, size_t env_len, size_t body_len)
{
	uint32_t crc = crc32_update(0, p, 56);
	crc = crc32_update(crc, p + SPOOL_REC_HDR, env_len + body_len);
	for (int i = 0; i < 4; i++)
		p[56 + i] = (char)(unsigned char)(crc >> (8 * i));
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
	static const unsigned char want[SPOOL_REC_HDR] = {
		'O', 'B', 'L', '1', 'A', 0, 0, 0,
		0x2c, 0x01, 0, 0, 0, 0, 0, 0,               /* env_len 300 */
		0x70, 0x11, 0x01, 0, 0, 0, 0, 0,            /* body_len 70000 */
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x19, 0x3c, 0x6c, 0xca, 0, 0, 0, 0,        /* crc 0xca6c3c19 */
	};
	char *env = malloc(ENV_N), *body = malloc(BODY_N);
	CHECK(env != NULL && body != NULL);
	fill_parts(env, body);
	char hdr[SPOOL_REC_HDR];
	memset(hdr, 0x5a, sizeof(hdr)); /* padding must be written, not left */
	spool_rec_header(hdr, 'A', id_a, env, ENV_N, body, BODY_N);
	CHECK_MEM_EQ(hdr, want, SPOOL_REC_HDR);

	size_t total;
	char *rec = build('A', id_a, env, ENV_N, body, BODY_N, &total);
	struct spool_rec r;
	memset(&r, 0, sizeof(r));
	CHECK_EQ(1, spool_rec_parse(rec, total, &r));
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
	CHECK_EQ(1, spool_rec_parse(more, total + 10, &r));
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
		'O', 'B', 'L', '1', 'D', 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		'F', 'E', 'D', 'C', 'B', 'A', '9', '8',
		'7', '6', '5', '4', '3', '2', '1', '0',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x49, 0x8d, 0xbe, 0xda, 0, 0, 0, 0,        /* crc 0xdabe8d49 */
	};
	char hdr[SPOOL_REC_HDR];
	memset(hdr, 0xa5, sizeof(hdr));
	spool_rec_header(hdr, 'D', id_d, NULL, 0, NULL, 0);
	CHECK_MEM_EQ(hdr, want, SPOOL_REC_HDR);
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(hdr, sizeof(hdr), &r));
	CHECK_EQ('D', r.type);
	CHECK_STR_EQ(id_d, r.id);
	CHECK_EQ(0, r.env_len);
	CHECK_EQ(0, r.body_len);
	CHECK_EQ(SPOOL_REC_HDR, r.total);
	/* The hand-built bytes parse as well: the layout is the format. */
	CHECK_EQ(1, spool_rec_parse((const char *)want, sizeof(want), &r));
	CHECK_STR_EQ(id_d, r.id);
}

/* An 'A' record with an empty body is valid (env carries the size). */
static void
test_empty_body(void)
{
	size_t total;
	char *rec = build('A', id_a, "E", 1, NULL, 0, &total);
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(rec, total, &r));
	CHECK_EQ(SPOOL_REC_HDR + 1, r.total);
	CHECK_EQ(0, r.body_len);
	CHECK_EQ('E', r.env[0]);
	free(rec);
}

/* Each prefix in its own exact-size heap block, so ASan catches a
 * parse that reads past n. */
static void
check_truncations(const char *rec, size_t total)
{
	for (size_t n = 0; n < total; n++) {
		char *p = malloc(n ? n : 1);
		CHECK(p != NULL);
		memcpy(p, rec, n);
		struct spool_rec r;
		memset(&r, 0x77, sizeof(r));
		int rc = spool_rec_parse(p, n, &r);
		if (rc != 0)
			CHECK_FAIL("truncated to %zu of %zu: %d", n, total, rc);
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

/* Every bit of every byte of the record, one at a time. */
static void
check_flips(char *rec, size_t total)
{
	for (size_t i = 0; i < total; i++) {
		for (int b = 0; b < 8; b++) {
			rec[i] ^= (char)(1 << b);
			struct spool_rec r;
			int rc = spool_rec_parse(rec, total, &r);
			if (rc != 0 && rc != -EBADMSG)
				CHECK_FAIL("byte %zu bit %d flipped: %d", i, b,
					   rc);
			rec[i] ^= (char)(1 << b);
		}
	}
	/* and whole-byte replacements */
	for (size_t i = 0; i < total; i++) {
		char old = rec[i];
		rec[i] = (char)~old;
		struct spool_rec r;
		int rc = spool_rec_parse(rec, total, &r);
		if (rc != 0 && rc != -EBADMSG)
			CHECK_FAIL("byte %zu inverted: %d", i, rc);
		rec[i] = old;
	}
	struct spool_rec r;
	CHECK_EQ(1, spool_rec_parse(rec, total, &r)); /* restored */
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

/* Set byte i of a valid record to v, fix the CRC, expect -EBADMSG. */
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
	int rc = spool_rec_parse(rec, total, &r);
	if (rc != -EBADMSG)
		CHECK_FAIL("byte %zu = 0x%02x: %d, want -EBADMSG", i,
			   (unsigned char)v, rc);
	check_count++;
	/* every one of these is in the header: a header walk sees it too */
	CHECK_EQ(-EBADMSG, spool_rec_parse_header(rec, SPOOL_REC_HDR, &r));
	free(rec);
}

static void
test_bad_fields(void)
{
	/* magic */
	check_field(0, 'o');
	check_field(3, '2');
	/* padding after the type, after env_len, id tail, after the CRC */
	for (size_t i = 5; i < 8; i++)
		check_field(i, 1);
	for (size_t i = 12; i < 16; i++)
		check_field(i, (char)0x80);
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
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, &r));
		free(rec);
	}
	/* 'D' with lengths, CRC correct */
	{
		size_t total;
		char *rec = build('D', id_d, "env", 3, NULL, 0, &total);
		struct spool_rec r;
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, &r));
		free(rec);
		rec = build('D', id_d, NULL, 0, "b", 1, &total);
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, &r));
		free(rec);
	}
	/* a short id written by spool_rec_header is NUL padded: invalid */
	{
		size_t total;
		char *rec = build('D', "0123ABCD", NULL, 0, NULL, 0, &total);
		struct spool_rec r;
		CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, &r));
		free(rec);
	}
}

/* Lengths out of range are rejected from the header alone: a huge
 * length is not a "torn" record the reader would wait for. */
static void
test_lengths(void)
{
	char hdr[SPOOL_REC_HDR];
	struct spool_rec r;
	spool_rec_header(hdr, 'A', id_a, "x", 1, NULL, 0);
	uint32_t env_len = SPOOL_REC_ENV_MAX + 1;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), &r));
	env_len = UINT32_MAX;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), &r));
	/* exactly the maximum is plausible: only 64 bytes of it are here */
	env_len = SPOOL_REC_ENV_MAX;
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (char)(unsigned char)(env_len >> (8 * i));
	CHECK_EQ(0, spool_rec_parse(hdr, sizeof(hdr), &r));

	spool_rec_header(hdr, 'A', id_a, "x", 1, NULL, 0);
	uint64_t body_len = (uint64_t)SPOOL_REC_BODY_MAX + 1;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), &r));
	body_len = UINT64_MAX;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(-EBADMSG, spool_rec_parse(hdr, sizeof(hdr), &r));
	body_len = SPOOL_REC_BODY_MAX;
	for (int i = 0; i < 8; i++)
		hdr[16 + i] = (char)(unsigned char)(body_len >> (8 * i));
	CHECK_EQ(0, spool_rec_parse(hdr, sizeof(hdr), &r));
}

/* Short inputs: a magic prefix is torn, anything else is not a record;
 * zeroes (a preallocated or hole-filled tail) are not a record either. */
static void
test_short_and_zero(void)
{
	struct spool_rec r;
	CHECK_EQ(0, spool_rec_parse("", 0, &r));
	CHECK_EQ(0, spool_rec_parse("O", 1, &r));
	CHECK_EQ(0, spool_rec_parse("OBL", 3, &r));
	CHECK_EQ(0, spool_rec_parse("OBL1A", 5, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("X", 1, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBX", 3, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse("OBL2", 4, &r));
	char zero[SPOOL_REC_HDR * 2];
	memset(zero, 0, sizeof(zero));
	CHECK_EQ(-EBADMSG, spool_rec_parse(zero, 10, &r));
	CHECK_EQ(-EBADMSG, spool_rec_parse(zero, sizeof(zero), &r));
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
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_a, r.id);
	CHECK_MEM_EQ(r.body, "body one\r\n", 10);
	off += r.total;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, &r));
	CHECK_EQ('D', r.type);
	CHECK_STR_EQ(id_a, r.id);
	off += r.total;
	CHECK_EQ(1, spool_rec_parse(buf + off, len - off, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_d, r.id);
	CHECK_MEM_EQ(r.env, "E2", 2);
	CHECK_MEM_EQ(r.body, "second\r\n", 8);
	off += r.total;
	CHECK_EQ(len, off);
	CHECK_EQ(0, spool_rec_parse(buf + off, len - off, &r));
	/* the last one torn: the first two still parse, then 0 */
	off = 0;
	len -= 3;
	int rc, count = 0;
	while ((rc = spool_rec_parse(buf + off, len - off, &r)) == 1 &&
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
	CHECK_EQ(1, spool_rec_parse_header(rec, SPOOL_REC_HDR, &r));
	CHECK_EQ('A', r.type);
	CHECK_STR_EQ(id_a, r.id);
	CHECK_EQ(ENV_N, r.env_len);
	CHECK_EQ(BODY_N, r.body_len);
	CHECK_EQ(total, r.total);
	CHECK(r.env == NULL && r.body == NULL);
	/* a body byte flipped: the record is rejected, its header is not */
	rec[total - 1] ^= 1;
	CHECK_EQ(-EBADMSG, spool_rec_parse(rec, total, &r));
	CHECK_EQ(1, spool_rec_parse_header(rec, total, &r));
	CHECK_EQ(total, r.total);
	CHECK_EQ(0, spool_rec_parse_header(rec, SPOOL_REC_HDR - 1, &r));
	CHECK_EQ(0, spool_rec_parse_header(rec, 0, &r));
	free(rec);
	rec = build('D', id_d, NULL, 0, NULL, 0, &total);
	CHECK_EQ(1, spool_rec_parse_header(rec, total, &r));
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
	test_lengths();
	test_short_and_zero();
	test_sequence();
	test_header_only();
	CHECK_DONE();
}
