/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The envelope record codec (RELIABILITY.md decision 7, D7, I5): round
 * trips, every torn prefix and every flipped byte rejected, unknown and
 * trailing records, hostile lengths, and addresses that try to forge
 * records.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "outbox/crc32.h"
#include "outbox/envelope.h"

#define TEST_ID "0123456789ABCDEF"

static void
make_env(struct envelope *e)
{
	envelope_init(e);
	memcpy(e->id, TEST_ID, ID_SIZE);
	e->sender = strdup("alice@example.org");
	e->arrival = 1700000000;
	e->next_attempt = 1700000060;
	e->attempts = 2;
	e->msg_size = 12345;
	e->msg_crc = 0xdeadbeef;
	e->flags = ENV_F_8BIT;
	snprintf(e->client, sizeof(e->client), "[127.0.0.1]:40000");
	CHECK_EQ(0, envelope_add_rcpt(e, "bob@example.net"));
	CHECK_EQ(0, envelope_add_rcpt(e, "carol@example.com"));
	CHECK_EQ(0, envelope_add_rcpt(e, "dave@example.com"));
	e->rcpts[1].state = RCPT_SENT;
	e->rcpts[2].state = RCPT_FAILED;
	CHECK_EQ(0, envelope_set_error(e, 2, "550 5.1.1 no such user"));
}

static void
check_same(const struct envelope *a, const struct envelope *b)
{
	CHECK_STR_EQ(a->id, b->id);
	CHECK_STR_EQ(a->sender, b->sender);
	CHECK_EQ(a->arrival, b->arrival);
	CHECK_EQ(a->next_attempt, b->next_attempt);
	CHECK_EQ(a->attempts, b->attempts);
	CHECK_EQ(a->msg_size, b->msg_size);
	CHECK_EQ(a->msg_crc, b->msg_crc);
	CHECK_EQ(a->flags, b->flags);
	CHECK_STR_EQ(a->client, b->client);
	CHECK_EQ(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts && i < b->nrcpts; i++) {
		CHECK_STR_EQ(a->rcpts[i].addr, b->rcpts[i].addr);
		CHECK_EQ(a->rcpts[i].state, b->rcpts[i].state);
		CHECK_EQ(a->rcpts[i].last_error == NULL,
			 b->rcpts[i].last_error == NULL);
		if (a->rcpts[i].last_error != NULL)
			CHECK_STR_EQ(a->rcpts[i].last_error,
				     b->rcpts[i].last_error);
	}
}

static int
decode(const char *p, size_t n, struct envelope *out, char *err, size_t errlen)
{
	return envelope_decode(p, n, out, err, errlen);
}

static void
test_round_trip(void)
{
	struct envelope e, d, c;
	struct buf b;
	char err[128];
	make_env(&e);
	buf_init(&b, 1 << 16);
	CHECK_EQ(0, envelope_encode(&e, &b));
	CHECK(memcmp(b.data, "V1:1\nI16:" TEST_ID "\n", 25) == 0);
	CHECK(b.len > 8 && memcmp(b.data + b.len - 12, "X8:", 3) == 0);
	CHECK_EQ(0, decode(b.data, b.len, &d, err, sizeof(err)));
	check_same(&e, &d);
	CHECK_EQ(1, envelope_count(&d, RCPT_PENDING));
	CHECK_EQ(1, envelope_count(&d, RCPT_SENT));
	CHECK_EQ(1, envelope_count(&d, RCPT_FAILED));
	/* Copy is deep and equal. */
	CHECK_EQ(0, envelope_copy(&c, &d));
	CHECK(c.sender != d.sender);
	check_same(&c, &d);
	/* Re-encoding the decoded form gives the same bytes. */
	struct buf b2;
	buf_init(&b2, 1 << 16);
	CHECK_EQ(0, envelope_encode(&c, &b2));
	CHECK_EQ(b.len, b2.len);
	CHECK_MEM_EQ(b.data, b2.data, b.len);
	buf_free(&b2);
	envelope_free(&c);
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&b);
}

/* Null sender, extreme numbers, many recipients, 8-bit bytes. */
static void
test_round_trip_edges(void)
{
	struct envelope e, d;
	struct buf b;
	char err[128];
	envelope_init(&e);
	memcpy(e.id, "FFFFFFFFFFFFFFFF", ID_SIZE);
	e.sender = strdup("");
	e.arrival = INT64_MAX;
	e.next_attempt = 0;
	e.attempts = UINT32_MAX;
	e.msg_size = 0;
	e.msg_crc = 0;
	e.flags = ENV_F_8BIT | ENV_F_SMTPUTF8;
	for (int i = 0; i < 1000; i++) {
		char a[64];
		snprintf(a, sizeof(a), "r%d@\xc3\xa9xample.org", i);
		CHECK_EQ(0, envelope_add_rcpt(&e, a));
	}
	CHECK_EQ(0, envelope_set_error(&e, 999, ""));
	buf_init(&b, 1 << 20);
	CHECK_EQ(0, envelope_encode(&e, &b));
	CHECK_EQ(0, decode(b.data, b.len, &d, err, sizeof(err)));
	check_same(&e, &d);
	CHECK_STR_EQ("", d.sender);
	CHECK_STR_EQ("", d.rcpts[999].last_error);
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&b);
}

static void
test_torn_and_flipped(void)
{
	struct envelope e, d;
	struct buf b;
	char err[128];
	make_env(&e);
	buf_init(&b, 1 << 16);
	CHECK_EQ(0, envelope_encode(&e, &b));
	/* Every proper prefix fails (a write cut anywhere). */
	for (size_t n = 0; n < b.len; n++) {
		CHECK_EQ(-EINVAL, decode(b.data, n, &d, err, sizeof(err)));
		CHECK(err[0] != '\0');
		CHECK(d.sender == NULL && d.rcpts == NULL);
	}
	/* Every single flipped bit fails (checksum or structure). */
	char *copy = malloc(b.len);
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, b.data, b.len);
			copy[i] ^= (char)(1 << bit);
			CHECK_EQ(-EINVAL, decode(copy, b.len, &d, err, sizeof(err)));
		}
	}
	free(copy);
	envelope_free(&e);
	buf_free(&b);
}

/* Build a record file by hand, with a correct X record at the end. */
static size_t
seal(char *out, size_t size, const char *body)
{
	size_t n = strlen(body);
	int k = snprintf(out, size, "%sX8:%08" PRIx32 "\n", body,
			 crc32_update(0, body, n));
	return (size_t)k;
}

#define HDR_REST "I16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\nA1:0\n" \
	    "Z3:100\nC8:0000abcd\nF1:0\nH0:\n"
#define HDR "V1:1\n" HDR_REST

static void
expect_bad(const char *body, const char *why)
{
	char file[4096];
	char err[128];
	struct envelope d;
	size_t n = seal(file, sizeof(file), body);
	int rc = decode(file, n, &d, err, sizeof(err));
	if (rc != -EINVAL)
		fprintf(stderr, "accepted bad envelope (%s)\n", why);
	CHECK_EQ(-EINVAL, rc);
	CHECK(d.nrcpts == 0 && d.sender == NULL);
}

static void
test_hand_made(void)
{
	char file[4096], err[128];
	struct envelope d;
	/* The baseline is good, so the failures below are for their reason. */
	size_t n = seal(file, sizeof(file), HDR "R3:x@y\nQ1:P\n");
	CHECK_EQ(0, decode(file, n, &d, err, sizeof(err)));
	CHECK_EQ(1, d.nrcpts);
	CHECK_EQ(100, d.msg_size);
	CHECK_EQ(0xabcd, d.msg_crc);
	envelope_free(&d);

	expect_bad(HDR, "no recipient");
	expect_bad(HDR "R3:x@y\nQ1:P\nW1:z\n", "unknown record");
	expect_bad(HDR "R3:x@y\nW1:z\nQ1:P\n", "unknown record in rcpt");
	expect_bad(HDR "R3:x@y\n", "recipient without state");
	expect_bad(HDR "R3:x@y\nQ1:Z\n", "bad state");
	expect_bad(HDR "R3:x@y\nE2:oh\nQ1:P\n", "E before Q");
	expect_bad(HDR "R3:x@y\nQ1:P\nE2:oh\nE2:oh\n", "two errors");
	expect_bad(HDR "R3:x@y\nQ1:P\nV1:1\n", "second header");
	expect_bad(HDR "R0:\nQ1:P\n", "empty address");
	expect_bad(HDR "R-1:\nQ1:P\n", "negative length");
	expect_bad(HDR "R9223372036854775808:x\nQ1:P\n", "length 2^63");
	expect_bad(HDR "R18446744073709551616:x\nQ1:P\n", "length 2^64");
	expect_bad(HDR "R99999999:x\nQ1:P\n", "length past the data");
	expect_bad(HDR "R03:x@y\nQ1:P\n", "leading zero in length");
	expect_bad(HDR "R:x\nQ1:P\n", "no length");
	expect_bad(HDR "R 3:x@y\nQ1:P\n", "space in length");
	expect_bad(HDR "R3:x@yyQ1:P\n", "no LF after value");
	expect_bad(HDR "R3:x\0y\nQ1:P\n", "NUL in value");
	expect_bad("V1:2\n" HDR_REST "R3:x@y\nQ1:P\n", "version 2");
	/* Header records out of order or missing. */
	expect_bad("V1:1\nS3:a@b\nI16:" TEST_ID "\n", "order");
	expect_bad("V1:1\nI16:0123456789abcdef\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "lower-case id");
	expect_bad("V1:1\nI16:0123456789ABCDE/\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "bad id char");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT2:-1\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "negative time");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT19:9223372036854775808\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "time 2^63");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A10:4294967296\nZ3:100\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "attempts 2^32");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ2:01\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "leading zero number");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ0:\nC8:0000abcd\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "empty number");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000ABCD\nF1:0\nH0:\nR3:x@y\nQ1:P\n",
		   "upper-case hex");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF2:32\nH0:\nR3:x@y\nQ1:P\n",
		   "unknown flag");
	expect_bad("V1:1\nI16:" TEST_ID "\nS3:a@b\nT10:1700000000\nN1:0\n"
		   "A1:0\nZ3:100\nC8:0000abcd\nF1:0\nR3:x@y\nQ1:P\n",
		   "missing H");

	/* Trailing data after a good X record. */
	n = seal(file, sizeof(file), HDR "R3:x@y\nQ1:P\n");
	memcpy(file + n, "R3:e@v\n", 7);
	CHECK_EQ(-EINVAL, decode(file, n + 7, &d, err, sizeof(err)));
	CHECK(strstr(err, "trailing") != NULL);
	CHECK_EQ(-EINVAL, decode(file, n + 1, &d, err, sizeof(err)));
	/* A second, valid-looking X does not help. */
	char twice[4200];
	memcpy(twice, file, n);
	memcpy(twice + n, file + n - 12, 12);
	CHECK_EQ(-EINVAL, decode(twice, n + 12, &d, err, sizeof(err)));
	/* Bad checksum is reported as such. */
	file[n - 2] = file[n - 2] == '0' ? '1' : '0';
	CHECK_EQ(-EINVAL, decode(file, n, &d, err, sizeof(err)));
	CHECK(strstr(err, "checksum") != NULL);
	/* A huge length (1 MiB + 1) is refused before looking for the data. */
	expect_bad(HDR "E1048577:x\n", "value over 1 MiB");
	n = seal(file, sizeof(file), HDR "R1048577:x\nQ1:P\n");
	CHECK_EQ(-EINVAL, decode(file, n, &d, err, sizeof(err)));
	CHECK(strstr(err, "bad length") != NULL);
}

/* I5: no address or error text can create a record. */
static void
test_forged_records(void)
{
	struct envelope e, d;
	struct buf b;
	char err[128];
	make_env(&e);
	buf_init(&b, 1 << 16);
	/* An address with a line break cannot be encoded at all... */
	free(e.rcpts[0].addr);
	e.rcpts[0].addr = strdup("x@y\nR5:evil\nQ1:P");
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	CHECK_EQ(0, b.len);
	free(e.sender);
	e.sender = strdup("a\rb@c");
	free(e.rcpts[0].addr);
	e.rcpts[0].addr = strdup("x@y");
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	free(e.sender);
	e.sender = strdup("a@b");
	/* ...and a file holding one, even with a valid checksum, is refused. */
	expect_bad(HDR "R16:x@y\nR5:evil\nQ1:P\nQ1:P\n", "LF inside an address");
	/* Record syntax without line breaks is plain data. */
	free(e.rcpts[0].addr);
	e.rcpts[0].addr = strdup("R5:evil@x Q1:P X8:00000000");
	/* Error text from upstream has its line breaks flattened. */
	CHECK_EQ(0, envelope_set_error(&e, 1, "451 a\r\nR5:evil\nQ1:S\n\t"));
	CHECK_STR_EQ("451 a  R5:evil Q1:S  ", e.rcpts[1].last_error);
	CHECK_EQ(0, envelope_encode(&e, &b));
	CHECK_EQ(0, decode(b.data, b.len, &d, err, sizeof(err)));
	CHECK_EQ(3, d.nrcpts);
	CHECK_STR_EQ("R5:evil@x Q1:P X8:00000000", d.rcpts[0].addr);
	CHECK_STR_EQ("451 a  R5:evil Q1:S  ", d.rcpts[1].last_error);
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&b);
}

static void
test_encode_refuses(void)
{
	struct envelope e;
	struct buf b;
	make_env(&e);
	buf_init(&b, 1 << 16);
	memcpy(e.id, "not-an-id-000000", ID_SIZE);
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	memcpy(e.id, TEST_ID, ID_SIZE);
	e.arrival = -1;
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	e.arrival = 1;
	e.flags = 1u << 7;
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	e.flags = 0;
	CHECK_EQ(-EINVAL, envelope_set_error(&e, 3, "x"));
	/* A bounded buffer that is too small: -ENOBUFS, left unchanged. */
	struct buf small;
	buf_init(&small, 64);
	CHECK_EQ(0, buf_append(&small, "keep", 4));
	CHECK_EQ(-ENOBUFS, envelope_encode(&e, &small));
	CHECK_EQ(4, small.len);
	CHECK_STR_EQ("keep", small.data);
	buf_free(&small);
	/* Appends after existing content; the checksum covers only its own. */
	CHECK_EQ(0, buf_append(&b, "prefix", 6));
	CHECK_EQ(0, envelope_encode(&e, &b));
	struct envelope d;
	char err[128];
	CHECK_EQ(0, decode(b.data + 6, b.len - 6, &d, err, sizeof(err)));
	envelope_free(&d);
	/* No recipients. */
	envelope_free(&e);
	envelope_init(&e);
	memcpy(e.id, TEST_ID, ID_SIZE);
	e.sender = strdup("");
	CHECK_EQ(-EINVAL, envelope_encode(&e, &b));
	envelope_free(&e);
	buf_free(&b);
}

int
main(void)
{
	test_round_trip();
	test_round_trip_edges();
	test_torn_and_flipped();
	test_hand_made();
	test_forged_records();
	test_encode_refuses();
	CHECK_DONE();
}
