/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the spool record decoder (envelope.h).
 *
 *	Input: a mode byte, then record bytes. Mode bit 0 appends the
 *	correct end record ("X8:<crc>\n") so the fuzzer reaches the whole
 *	decoder, not only the checksum test; bit 1 first builds an
 *	envelope from the bytes (fields split at NUL) and encodes it.
 *
 *	Invariants: decode never crashes and leaves a reason on failure;
 *	what decodes re-encodes to exactly the same bytes (the format is
 *	canonical), a copy encodes the same, and what encodes decodes back
 *	to the same fields.
 */
#include <inttypes.h>

#include "fuzz.h"
#include "outbox/crc32.h"
#include "outbox/envelope.h"
#include "outbox/str.h"

#define FENV_MAX (8u << 20)

static void
fenv_same(const struct envelope *a, const struct envelope *b)
{
	FUZZ_ASSERT(strcmp(a->id, b->id) == 0);
	FUZZ_ASSERT(strcmp(a->sender, b->sender) == 0);
	FUZZ_ASSERT(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		FUZZ_ASSERT(strcmp(a->rcpts[i].addr, b->rcpts[i].addr) == 0);
		FUZZ_ASSERT(a->rcpts[i].state == b->rcpts[i].state);
		FUZZ_ASSERT((a->rcpts[i].last_error == NULL) ==
			    (b->rcpts[i].last_error == NULL));
		if (a->rcpts[i].last_error != NULL)
			FUZZ_ASSERT(strcmp(a->rcpts[i].last_error,
					   b->rcpts[i].last_error) == 0);
	}
	FUZZ_ASSERT(a->arrival == b->arrival);
	FUZZ_ASSERT(a->next_attempt == b->next_attempt);
	FUZZ_ASSERT(a->attempts == b->attempts && a->msg_size == b->msg_size);
	FUZZ_ASSERT(a->msg_crc == b->msg_crc && a->flags == b->flags);
	FUZZ_ASSERT(strcmp(a->client, b->client) == 0);
}

/* Decode p[0..n); on success it must be canonical. */
static void
fenv_decode(const char *p, size_t n)
{
	struct envelope e, c;
	char err[128];
	memset(err, 'x', sizeof(err));
	if (envelope_decode(p, n, &e, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL && err[0]);
		FUZZ_ASSERT(e.rcpts == NULL && e.sender == NULL);
		return;
	}
	FUZZ_ASSERT(e.nrcpts >= 1 && e.sender != NULL);
	struct buf out;
	buf_init(&out, FENV_MAX);
	FUZZ_ASSERT(envelope_encode(&e, &out) == 0);
	FUZZ_ASSERT(out.len == n && memcmp(out.data, p, n) == 0);
	FUZZ_ASSERT(envelope_copy(&c, &e) == 0);
	fenv_same(&e, &c);
	buf_reset(&out);
	FUZZ_ASSERT(envelope_encode(&c, &out) == 0);
	FUZZ_ASSERT(out.len == n && memcmp(out.data, p, n) == 0);
	size_t total = 0;
	static const enum rcpt_state st[4] = { RCPT_PENDING, RCPT_SENT,
					       RCPT_FAILED, RCPT_BOUNCED };
	for (int i = 0; i < 4; i++)
		total += envelope_count(&e, st[i]);
	FUZZ_ASSERT(total == e.nrcpts);
	envelope_free(&c);
	envelope_free(&e);
	buf_free(&out);
}

static uint64_t
fenv_num(struct fuzz_in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | fuzz_byte(in);
	return v;
}

/* An envelope made of the input; encode, decode, compare. */
static void
fenv_build(struct fuzz_in *in)
{
	struct envelope e, d;
	envelope_init(&e);
	static const char hex[] = "0123456789ABCDEF";
	for (int i = 0; i < ID_LEN; i++)
		e.id[i] = hex[fuzz_byte(in) & 15];
	e.id[ID_LEN] = '\0';
	e.arrival = (int64_t)fenv_num(in);
	e.next_attempt = (int64_t)fenv_num(in);
	e.attempts = (uint32_t)fenv_num(in);
	e.msg_size = fenv_num(in);
	e.msg_crc = (uint32_t)fenv_num(in);
	e.flags = fuzz_byte(in) & 0x3f;
	char *f = fuzz_field(in, 0, NULL);
	str_copy(e.client, sizeof(e.client), f);
	free(f);
	e.sender = fuzz_field(in, 0, NULL);
	for (int i = 0; i < 20 && in->n > 0; i++) {
		unsigned k = fuzz_byte(in);
		char *a = fuzz_field(in, 0, NULL);
		FUZZ_ASSERT(envelope_add_rcpt(&e, a) == 0);
		e.rcpts[e.nrcpts - 1].state = (enum rcpt_state)(k & 3);
		if (k & 4) {
			char *err = fuzz_field(in, 0, NULL);
			FUZZ_ASSERT(envelope_set_error(&e, e.nrcpts - 1, err) == 0);
			free(err);
		}
		free(a);
	}
	struct buf out;
	buf_init(&out, FENV_MAX);
	if (envelope_encode(&e, &out) == 0) {
		char err[128];
		FUZZ_ASSERT(envelope_decode(out.data, out.len, &d, err,
					    sizeof(err)) == 0);
		fenv_same(&e, &d);
		envelope_free(&d);
	} else {
		FUZZ_ASSERT(out.len == 0);
	}
	buf_free(&out);
	envelope_free(&e);
}

static void
fuzz_envelope(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_byte(&in);
	if (mode & 2) {
		fenv_build(&in);
		return;
	}
	if (!(mode & 1)) {
		fenv_decode((const char *)in.p, in.n);
		return;
	}
	struct buf b;
	buf_init(&b, FENV_MAX);
	char x[16];
	snprintf(x, sizeof(x), "X8:%08" PRIx32 "\n",
		 crc32_update(0, in.p, in.n));
	if (buf_append(&b, in.p, in.n) != 0 || buf_puts(&b, x) != 0)
		abort();
	fenv_decode(b.data, b.len);
	buf_free(&b);
}

FUZZ_ENTRY(fuzz_envelope)
