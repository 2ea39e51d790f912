/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The queue envelope and its record codec (RELIABILITY.md decision 7).
 *	A file is a fixed sequence of records "<letter><len>:<bytes>\n":
 *
 *	    V version ("1")      I queue id         S sender ("" = <>)
 *	    T arrival            N next attempt     A attempts
 *	    Z message size       C message CRC-32   F flags
 *	    H client             then per recipient: R address, Q state
 *	    ("P", "S", "F" or "B"), optionally E last error; finally X, the CRC-32
 *	    of every byte before it, and nothing after.
 *
 *	Decoding is strict: records must come in exactly this order, numbers
 *	are canonical decimal within bounds, no value holds a control byte
 *	(so no address or error text can be mistaken for structure even by a
 *	careless reader), and anything else is an error. The encoder refuses
 *	what the decoder would refuse, so whatever we write we can read back.
 *	Pure code: no I/O, no clock, no logging.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/crc32.h"
#include "outbox/envelope.h"
#include "outbox/str.h"

#define ENV_VERSION "1"
/* One value may not exceed this; the whole file is bounded by the caller. */
#define ENV_VALUE_MAX (1024u * 1024u)
#define ENV_ADDR_MAX (SMTP_PATH_MAX + 64)
#define ENV_ERROR_MAX SMTP_REPLY_TEXT_MAX
#define ENV_F_KNOWN (ENV_F_8BIT | ENV_F_SMTPUTF8 | ENV_F_HELD | ENV_F_DSN | \
		     ENV_F_ADMIN)

/* ------------------------------------------------------------------ */
/* The in-memory envelope                                             */
/* ------------------------------------------------------------------ */

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
}

void
envelope_free(struct envelope *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].last_error);
	}
	free(e->rcpts);
	free(e->sender);
	envelope_init(e);
}

static int
envelope_grow(struct envelope *e)
{
	/*
	 * The array holds 4, then doubles whenever nrcpts reaches a power of
	 * two, so its capacity follows from nrcpts alone.
	 */
	size_t n = e->nrcpts;
	if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
		return 0;
	size_t cap = n == 0 ? 4 : n * 2;
	if (cap > SIZE_MAX / sizeof(struct env_rcpt))
		return -ENOMEM;
	struct env_rcpt *r = realloc(e->rcpts, cap * sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	e->rcpts = r;
	return 0;
}

static int
envelope_push_rcpt(struct envelope *e, char *addr, enum rcpt_state state,
		   char *last_error)
{
	if (envelope_grow(e) != 0)
		return -ENOMEM;
	struct env_rcpt *r = &e->rcpts[e->nrcpts++];
	r->addr = addr;
	r->state = state;
	r->last_error = last_error;
	return 0;
}

int
envelope_add_rcpt(struct envelope *e, const char *addr)
{
	char *a = str_ndup(addr, strlen(addr));
	if (a == NULL)
		return -ENOMEM;
	if (envelope_push_rcpt(e, a, RCPT_PENDING, NULL) != 0) {
		free(a);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Error text comes from upstream servers. Control bytes (a multi-line
 * reply's CRLF, tabs) become spaces here, so the stored text is one line
 * and always encodable; it is cut to ENV_ERROR_MAX.
 */
int
envelope_set_error(struct envelope *e, size_t i, const char *text)
{
	char *t = NULL;
	if (i >= e->nrcpts)
		return -EINVAL;
	if (text != NULL) {
		size_t n = strlen(text);
		if (n > ENV_ERROR_MAX)
			n = ENV_ERROR_MAX;
		t = str_ndup(text, n);
		if (t == NULL)
			return -ENOMEM;
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)t[k] < 0x20 || t[k] == 0x7f)
				t[k] = ' ';
	}
	free(e->rcpts[i].last_error);
	e->rcpts[i].last_error = t;
	return 0;
}

size_t
envelope_count(const struct envelope *e, enum rcpt_state state)
{
	size_t n = 0;
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == state)
			n++;
	return n;
}

static char *
envelope_dup_opt(const char *s, int *err)
{
	if (s == NULL)
		return NULL;
	char *d = str_ndup(s, strlen(s));
	if (d == NULL)
		*err = -ENOMEM;
	return d;
}

int
envelope_copy(struct envelope *dst, const struct envelope *src)
{
	int err = 0;
	envelope_init(dst);
	memcpy(dst->id, src->id, sizeof(dst->id));
	memcpy(dst->client, src->client, sizeof(dst->client));
	dst->arrival = src->arrival;
	dst->next_attempt = src->next_attempt;
	dst->attempts = src->attempts;
	dst->msg_size = src->msg_size;
	dst->msg_crc = src->msg_crc;
	dst->flags = src->flags;
	dst->sender = envelope_dup_opt(src->sender, &err);
	for (size_t i = 0; i < src->nrcpts && err == 0; i++) {
		const struct env_rcpt *r = &src->rcpts[i];
		char *a = envelope_dup_opt(r->addr, &err);
		char *t = envelope_dup_opt(r->last_error, &err);
		if (err == 0)
			err = envelope_push_rcpt(dst, a, r->state, t);
		if (err != 0) {
			free(a);
			free(t);
		}
	}
	if (err != 0)
		envelope_free(dst);
	return err;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                           */
/* ------------------------------------------------------------------ */

/* True when v[0..n) holds no control byte (and so no CR, LF or NUL). */
static bool
envelope_clean(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

static int
envelope_put(struct buf *out, char type, const char *v, size_t n)
{
	int rc = buf_printf(out, "%c%zu:", type, n);
	if (rc == 0)
		rc = buf_append(out, v, n);
	if (rc == 0)
		rc = buf_append(out, "\n", 1);
	return rc;
}

static int
envelope_put_str(struct buf *out, char type, const char *s)
{
	return envelope_put(out, type, s, strlen(s));
}

static int
envelope_put_u64(struct buf *out, char type, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRIu64, v);
	return envelope_put(out, type, num, (size_t)n);
}

static const char *const envelope_state_letter[] = {
	[RCPT_PENDING] = "P",
	[RCPT_SENT] = "S",
	[RCPT_FAILED] = "F",
	[RCPT_BOUNCED] = "B",
};

static bool
envelope_str_ok(const char *s, size_t min, size_t max)
{
	if (s == NULL)
		return false;
	size_t n = strlen(s);
	return n >= min && n <= max && envelope_clean(s, n);
}

/* The encoder's half of the contract: refuse what decode would refuse. */
static bool
envelope_valid(const struct envelope *e)
{
	if (!id_valid(e->id) || e->arrival < 0 || e->next_attempt < 0 ||
	    e->msg_size > INT64_MAX || (e->flags & ~(uint32_t)ENV_F_KNOWN) ||
	    e->nrcpts == 0 || memchr(e->client, '\0', sizeof(e->client)) == NULL)
		return false;
	if (!envelope_str_ok(e->sender, 0, ENV_ADDR_MAX) ||
	    !envelope_str_ok(e->client, 0, sizeof(e->client) - 1))
		return false;
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		if (!envelope_str_ok(r->addr, 1, ENV_ADDR_MAX) ||
		    (unsigned)r->state > RCPT_BOUNCED)
			return false;
		if (r->last_error != NULL &&
		    !envelope_str_ok(r->last_error, 0, ENV_ERROR_MAX))
			return false;
	}
	return true;
}

static int
envelope_put_rcpts(const struct envelope *e, struct buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < e->nrcpts && rc == 0; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		rc = envelope_put_str(out, 'R', r->addr);
		if (rc == 0)
			rc = envelope_put_str(out, 'Q',
					      envelope_state_letter[r->state]);
		if (rc == 0 && r->last_error != NULL)
			rc = envelope_put_str(out, 'E', r->last_error);
	}
	return rc;
}

/*
 * Also returns -EINVAL (not only -ENOBUFS) for an envelope the decoder
 * would reject: bad id, no recipient, a control byte in a value, a
 * negative time. out is left as it was on any failure.
 */
int
envelope_encode(const struct envelope *e, struct buf *out)
{
	if (!envelope_valid(e))
		return -EINVAL;
	size_t start = out->len;
	char crc[9];
	int rc = envelope_put_str(out, 'V', ENV_VERSION);
	if (rc == 0)
		rc = envelope_put_str(out, 'I', e->id);
	if (rc == 0)
		rc = envelope_put_str(out, 'S', e->sender);
	if (rc == 0)
		rc = envelope_put_u64(out, 'T', (uint64_t)e->arrival);
	if (rc == 0)
		rc = envelope_put_u64(out, 'N', (uint64_t)e->next_attempt);
	if (rc == 0)
		rc = envelope_put_u64(out, 'A', e->attempts);
	if (rc == 0)
		rc = envelope_put_u64(out, 'Z', e->msg_size);
	if (rc == 0) {
		snprintf(crc, sizeof(crc), "%08" PRIx32, e->msg_crc);
		rc = envelope_put_str(out, 'C', crc);
	}
	if (rc == 0)
		rc = envelope_put_u64(out, 'F', e->flags);
	if (rc == 0)
		rc = envelope_put_str(out, 'H', e->client);
	if (rc == 0)
		rc = envelope_put_rcpts(e, out);
	if (rc == 0) {
		uint32_t sum = crc32_update(0, out->data + start,
					    out->len - start);
		snprintf(crc, sizeof(crc), "%08" PRIx32, sum);
		rc = envelope_put_str(out, 'X', crc);
	}
	if (rc != 0) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                           */
/* ------------------------------------------------------------------ */

struct env_rd {
	const char *data;
	size_t len;
	size_t pos;
	/* The record just read. */
	size_t start;
	char type;
	const char *val;
	size_t vlen;
	char *err;
	size_t errlen;
};

static int
env_rd_fail(struct env_rd *rd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
env_rd_fail(struct env_rd *rd, const char *fmt, ...)
{
	if (rd->errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rd->err, rd->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool
env_rd_known(char c)
{
	return c != '\0' && strchr("VISTNAZCFHRQEX", c) != NULL;
}

/*
 * Read one record at rd->pos. The length is canonical decimal (no sign,
 * no leading zero) and at most ENV_VALUE_MAX; the value must fit in the
 * data and be followed by LF.
 */
static int
env_rd_next(struct env_rd *rd)
{
	size_t p = rd->pos;
	rd->start = p;
	if (p >= rd->len)
		return env_rd_fail(rd, "torn: no end record");
	rd->type = rd->data[p++];
	if (!env_rd_known(rd->type))
		return env_rd_fail(rd, "unknown record type 0x%02x at offset %zu",
				   (unsigned char)rd->type, rd->start);
	size_t digits = p;
	while (p < rd->len && p - digits <= 8 && rd->data[p] >= '0' &&
	       rd->data[p] <= '9')
		p++;
	uint64_t n;
	if (p >= rd->len)
		return env_rd_fail(rd, "torn: record '%c' at offset %zu",
				   rd->type, rd->start);
	if (rd->data[p] != ':' || p == digits ||
	    (p - digits > 1 && rd->data[digits] == '0') ||
	    str_nto_u64(rd->data + digits, p - digits, 0, ENV_VALUE_MAX, &n) != 0)
		return env_rd_fail(rd, "bad length in record '%c' at offset %zu",
				   rd->type, rd->start);
	p++;
	if (n > rd->len - p || rd->len - p - n < 1)
		return env_rd_fail(rd, "torn: record '%c' at offset %zu",
				   rd->type, rd->start);
	if (rd->data[p + n] != '\n')
		return env_rd_fail(rd, "record '%c' at offset %zu not ended by LF",
				   rd->type, rd->start);
	rd->val = rd->data + p;
	rd->vlen = (size_t)n;
	rd->pos = p + n + 1;
	if (!envelope_clean(rd->val, rd->vlen))
		return env_rd_fail(rd, "control byte in record '%c' at offset %zu",
				   rd->type, rd->start);
	return 0;
}

/* Read the next record, which must be of the given type. */
static int
env_rd_expect(struct env_rd *rd, char type, size_t min, size_t max)
{
	int rc = env_rd_next(rd);
	if (rc != 0)
		return rc;
	if (rd->type != type)
		return env_rd_fail(rd, "expected record '%c', got '%c' at offset %zu",
				   type, rd->type, rd->start);
	if (rd->vlen < min || rd->vlen > max)
		return env_rd_fail(rd, "bad length of record '%c'", type);
	return 0;
}

static int
env_rd_u64(struct env_rd *rd, char type, uint64_t max, uint64_t *out)
{
	int rc = env_rd_expect(rd, type, 1, 20);
	if (rc != 0)
		return rc;
	if ((rd->vlen > 1 && rd->val[0] == '0') ||
	    str_nto_u64(rd->val, rd->vlen, 0, max, out) != 0)
		return env_rd_fail(rd, "bad number in record '%c'", type);
	return 0;
}

static int
env_rd_hex32(struct env_rd *rd, char type, uint32_t *out)
{
	int rc = env_rd_expect(rd, type, 8, 8);
	if (rc != 0)
		return rc;
	uint32_t v = 0;
	for (size_t i = 0; i < 8; i++) {
		char c = rd->val[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return env_rd_fail(rd, "bad hex in record '%c'", type);
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

static int
env_rd_dup(struct env_rd *rd, char **out)
{
	*out = str_ndup(rd->val, rd->vlen);
	return *out == NULL ? -ENOMEM : 0;
}

static int
env_rd_header(struct env_rd *rd, struct envelope *e)
{
	uint64_t v;
	int rc = env_rd_expect(rd, 'V', 1, 1);
	if (rc == 0 && memcmp(rd->val, ENV_VERSION, 1) != 0)
		return env_rd_fail(rd, "unsupported version");
	if (rc == 0)
		rc = env_rd_expect(rd, 'I', ID_LEN, ID_LEN);
	if (rc == 0) {
		memcpy(e->id, rd->val, ID_LEN);
		e->id[ID_LEN] = '\0';
		if (!id_valid(e->id))
			return env_rd_fail(rd, "bad queue id");
	}
	if (rc == 0)
		rc = env_rd_expect(rd, 'S', 0, ENV_ADDR_MAX);
	if (rc == 0)
		rc = env_rd_dup(rd, &e->sender);
	if (rc == 0 && (rc = env_rd_u64(rd, 'T', INT64_MAX, &v)) == 0)
		e->arrival = (int64_t)v;
	if (rc == 0 && (rc = env_rd_u64(rd, 'N', INT64_MAX, &v)) == 0)
		e->next_attempt = (int64_t)v;
	if (rc == 0 && (rc = env_rd_u64(rd, 'A', UINT32_MAX, &v)) == 0)
		e->attempts = (uint32_t)v;
	if (rc == 0)
		rc = env_rd_u64(rd, 'Z', INT64_MAX, &e->msg_size);
	if (rc == 0)
		rc = env_rd_hex32(rd, 'C', &e->msg_crc);
	if (rc == 0 && (rc = env_rd_u64(rd, 'F', ENV_F_KNOWN, &v)) == 0) {
		if (v & ~(uint64_t)ENV_F_KNOWN)
			return env_rd_fail(rd, "unknown flags");
		e->flags = (uint32_t)v;
	}
	if (rc == 0)
		rc = env_rd_expect(rd, 'H', 0, sizeof(e->client) - 1);
	if (rc == 0) {
		memcpy(e->client, rd->val, rd->vlen);
		e->client[rd->vlen] = '\0';
	}
	return rc;
}

static int
env_rd_state(struct env_rd *rd, enum rcpt_state *out)
{
	int rc = env_rd_expect(rd, 'Q', 1, 1);
	if (rc != 0)
		return rc;
	switch (rd->val[0]) {
	case 'P': *out = RCPT_PENDING; return 0;
	case 'S': *out = RCPT_SENT; return 0;
	case 'F': *out = RCPT_FAILED; return 0;
	case 'B': *out = RCPT_BOUNCED; return 0;
	default: return env_rd_fail(rd, "bad recipient state");
	}
}

/* One recipient: R, Q, then E if present. Leaves the next record read. */
static int
env_rd_rcpt(struct env_rd *rd, struct envelope *e)
{
	char *addr = NULL, *error = NULL;
	enum rcpt_state state = RCPT_PENDING;
	if (rd->vlen < 1 || rd->vlen > ENV_ADDR_MAX)
		return env_rd_fail(rd, "bad length of record 'R'");
	int rc = env_rd_dup(rd, &addr);
	if (rc == 0)
		rc = env_rd_state(rd, &state);
	if (rc == 0)
		rc = env_rd_next(rd);
	if (rc == 0 && rd->type == 'E') {
		if (rd->vlen > ENV_ERROR_MAX)
			rc = env_rd_fail(rd, "bad length of record 'E'");
		if (rc == 0)
			rc = env_rd_dup(rd, &error);
		if (rc == 0)
			rc = env_rd_next(rd);
	}
	if (rc == 0)
		rc = envelope_push_rcpt(e, addr, state, error);
	if (rc != 0) {
		free(addr);
		free(error);
	}
	return rc;
}

/* The end record: the CRC of everything before it, then nothing. */
static int
env_rd_end(struct env_rd *rd)
{
	if (rd->type != 'X')
		return env_rd_fail(rd, "expected record 'R' or 'X', got '%c' at offset %zu",
				   rd->type, rd->start);
	if (rd->vlen != 8)
		return env_rd_fail(rd, "bad length of record 'X'");
	size_t end = rd->start;
	rd->pos = rd->start;
	uint32_t want;
	int rc = env_rd_hex32(rd, 'X', &want);
	if (rc != 0)
		return rc;
	if (crc32_update(0, rd->data, end) != want)
		return env_rd_fail(rd, "bad checksum");
	if (rd->pos != rd->len)
		return env_rd_fail(rd, "trailing data after end record");
	return 0;
}

int
envelope_decode(const char *data, size_t len, struct envelope *out, char *err,
		size_t errlen)
{
	struct env_rd rd = {
		.data = data, .len = len, .err = err, .errlen = errlen,
	};
	envelope_init(out);
	if (errlen > 0)
		err[0] = '\0';
	int rc = env_rd_header(&rd, out);
	if (rc == 0)
		rc = env_rd_next(&rd);
	if (rc == 0 && rd.type != 'R')
		rc = env_rd_fail(&rd, "no recipient");
	while (rc == 0 && rd.type == 'R')
		rc = env_rd_rcpt(&rd, out);
	if (rc == 0)
		rc = env_rd_end(&rd);
	if (rc == -ENOMEM && errlen > 0)
		snprintf(err, errlen, "out of memory");
	if (rc != 0)
		envelope_free(out);
	return rc;
}
