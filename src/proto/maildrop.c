/* SPDX-License-Identifier: MIT */
/*
 * Maildrop file heads (see maildrop.h): a magic line with the length of
 * the envelope records that follow, so the records can be decoded with
 * the same strict decoder as the spool's, and the message starts right
 * after them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "outbox/maildrop.h"
#include "outbox/str.h"

int
maildrop_encode_head(const struct envelope *e, struct buf *out)
{
	struct buf rec;
	buf_init(&rec, MAILDROP_HEAD_MAX);
	int r = envelope_encode(e, &rec);
	if (r == 0)
		r = buf_printf(out, "%s%zu\n", MAILDROP_MAGIC, rec.len);
	if (r == 0)
		r = buf_append(out, rec.data, rec.len);
	buf_free(&rec);
	return r;
}

int
maildrop_decode_head(const char *data, size_t len, struct envelope *out,
		     size_t *head_len, char *err, size_t errlen)
{
	envelope_init(out);
	size_t m = strlen(MAILDROP_MAGIC);
	const char *nl = len > m ? memchr(data, '\n', len < 32 ? len : 32) : NULL;
	uint64_t rec_len;
	if (nl == NULL || memcmp(data, MAILDROP_MAGIC, m) != 0 ||
	    str_nto_u64(data + m, (size_t)(nl - data) - m, 1,
			MAILDROP_HEAD_MAX, &rec_len) != 0) {
		snprintf(err, errlen, "not a maildrop file (bad first line)");
		return -EINVAL;
	}
	size_t start = (size_t)(nl - data) + 1;
	if (rec_len > len - start) {
		snprintf(err, errlen, "maildrop head cut short");
		return -EINVAL;
	}
	int r = envelope_decode(data + start, (size_t)rec_len, out, err, errlen);
	if (r != 0)
		return r;
	*head_len = start + (size_t)rec_len;
	return 0;
}
