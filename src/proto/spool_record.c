/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Encode and parse intake-log records (spool_record.h). Little-endian
 *	fixed fields, one CRC over envelope, body and header. Pure code.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "outbox/crc32.h"
#include "outbox/spool_record.h"

#define REC_MAGIC "OBL2"
#define REC_MAGIC_V1 "OBL1" /* read only */
#define REC_SEG_OFF 12u
#define REC_ID_OFF 24u
#define REC_ID_SPACE 32u
#define REC_CRC_OFF 56u

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

/* Over the bytes: what a reader checks (v1: the header first). */
static uint32_t
rec_crc(const char *hdr, const char *env, size_t env_len, const char *body,
	uint64_t body_len)
{
	bool v1 = spool_rec_v1(hdr, 4);
	uint32_t crc = v1 ? crc32_update(0, hdr, REC_CRC_OFF) : 0;
	crc = crc32_update(crc, env, env_len);
	crc = crc32_update(crc, body, (size_t)body_len);
	return v1 ? crc : crc32_update(crc, hdr, REC_CRC_OFF);
}

void
spool_rec_header(char hdr[SPOOL_REC_HDR], char type, const char *id,
		 const char *env, size_t env_len, const char *body,
		 uint64_t body_len)
{
	spool_rec_header_sum(hdr, type, id, env, env_len, body_len,
			     crc32_update(0, body, (size_t)body_len));
}

void
spool_rec_header_sum(char hdr[SPOOL_REC_HDR], char type, const char *id,
		     const char *env, size_t env_len, uint64_t body_len,
		     uint32_t body_crc)
{
	memset(hdr, 0, SPOOL_REC_HDR);
	memcpy(hdr, REC_MAGIC, 4);
	hdr[4] = type;
	put_le(hdr + 8, env_len, 4);
	put_le(hdr + 16, body_len, 8);
	memcpy(hdr + REC_ID_OFF, id, strnlen(id, ID_LEN));
	uint32_t crc = crc32_update(0, env, env_len);
	put_le(hdr + REC_CRC_OFF, crc32_combine(crc, body_crc, body_len), 4);
}

void
spool_rec_stamp(char hdr[SPOOL_REC_HDR], uint64_t seg)
{
	uint32_t payload = (uint32_t)get_le(hdr + REC_CRC_OFF, 4);
	put_le(hdr + REC_SEG_OFF, (uint32_t)seg, 4);
	put_le(hdr + REC_CRC_OFF, crc32_update(payload, hdr, REC_CRC_OFF), 4);
}

uint64_t
spool_rec_payload_len(const char hdr[SPOOL_REC_HDR])
{
	return get_le(hdr + 8, 4) + get_le(hdr + 16, 8);
}

bool
spool_rec_v1(const char *p, size_t n)
{
	return n > 0 && memcmp(p, REC_MAGIC_V1, n < 4 ? n : 4) == 0;
}

static int
rec_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Header checks that need no payload: 0, -ESTALE (another segment's)
 * or -EBADMSG. */
static int
rec_check_header(const char *p, uint64_t seg, struct spool_rec *r)
{
	bool v1 = spool_rec_v1(p, 4);
	if ((!v1 && memcmp(p, REC_MAGIC, 4) != 0) || !rec_zero(p + 5, 3) ||
	    (v1 && !rec_zero(p + REC_SEG_OFF, 4)) || !rec_zero(p + 60, 4))
		return -EBADMSG;
	r->type = p[4];
	r->env_len = (size_t)get_le(p + 8, 4);
	r->body_len = get_le(p + 16, 8);
	if (r->type == SPOOL_REC_DONE) {
		if (r->env_len != 0 || r->body_len != 0)
			return -EBADMSG;
	} else if (r->type != SPOOL_REC_ACCEPT || r->env_len == 0 ||
		   r->env_len > SPOOL_REC_ENV_MAX ||
		   r->body_len > SPOOL_REC_BODY_MAX) {
		return -EBADMSG;
	}
	const char *id = p + REC_ID_OFF;
	if (!rec_zero(id + ID_LEN, REC_ID_SPACE - ID_LEN))
		return -EBADMSG;
	memcpy(r->id, id, ID_LEN);
	r->id[ID_LEN] = '\0';
	if (!id_valid(r->id))
		return -EBADMSG;
	if (!v1 && get_le(p + REC_SEG_OFF, 4) != (uint32_t)seg)
		return -ESTALE;
	return 0;
}

int
spool_rec_parse_header(const char *p, size_t n, uint64_t seg,
		       struct spool_rec *out)
{
	struct spool_rec r = { 0 };
	if (n < SPOOL_REC_HDR)
		return 0;
	int rc = rec_check_header(p, seg, &r);
	if (rc != 0)
		return rc;
	r.total = SPOOL_REC_HDR + r.env_len + (size_t)r.body_len;
	*out = r;
	return 1;
}

int
spool_rec_parse(const char *p, size_t n, uint64_t seg, struct spool_rec *out)
{
	struct spool_rec r;
	if (n < SPOOL_REC_HDR)
		return n == 0 || memcmp(p, REC_MAGIC, n < 4 ? n : 4) == 0
			       ? 0 : -EBADMSG;
	int rc = spool_rec_parse_header(p, n, seg, &r);
	if (rc != 1)
		return rc;
	if (n < r.total)
		return 0;
	r.env = p + SPOOL_REC_HDR;
	r.body = r.env + r.env_len;
	uint32_t want = (uint32_t)get_le(p + REC_CRC_OFF, 4);
	if (rec_crc(p, r.env, r.env_len, r.body, r.body_len) != want)
		return -EBADMSG;
	*out = r;
	return 1;
}
