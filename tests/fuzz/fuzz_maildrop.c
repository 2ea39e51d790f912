/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the maildrop file reader (maildrop.h), which reads
 *	files any local user may drop into the spool.
 *
 *	Input: a mode byte, then file bytes. Mode bit 0 builds the file as
 *	a well-formed magic line + records + correct end record + message
 *	tail (the record bytes being the input up to a NUL), so the whole
 *	decoder is reached; otherwise the bytes are the file.
 *
 *	Invariants: never a crash; on success the head fits in the data,
 *	and the records re-encode to the file's own head bytes (with the
 *	magic line, when its length has no leading zero).
 */
#include <inttypes.h>

#include "fuzz.h"
#include "outbox/crc32.h"
#include "outbox/maildrop.h"

static void
fmd_decode(const char *p, size_t n)
{
	struct envelope e;
	size_t head = 0;
	char err[128];
	memset(err, 'x', sizeof(err));
	if (maildrop_decode_head(p, n, &e, &head, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL && err[0]);
		FUZZ_ASSERT(e.rcpts == NULL && e.sender == NULL);
		return;
	}
	FUZZ_ASSERT(head > strlen(MAILDROP_MAGIC) && head <= n);
	struct buf out;
	buf_init(&out, 2 * MAILDROP_HEAD_MAX);
	FUZZ_ASSERT(maildrop_encode_head(&e, &out) == 0);
	const char *digits = p + strlen(MAILDROP_MAGIC);
	if (digits[0] != '0') {
		FUZZ_ASSERT(out.len == head);
		FUZZ_ASSERT(memcmp(out.data, p, head) == 0);
	} else {
		/* Same records after a different-looking magic line. */
		const char *nl = memchr(out.data, '\n', out.len);
		size_t rec = out.len - (size_t)(nl + 1 - out.data);
		FUZZ_ASSERT(rec <= head &&
			    memcmp(nl + 1, p + head - rec, rec) == 0);
	}
	buf_free(&out);
	envelope_free(&e);
}

static void
fuzz_maildrop(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_byte(&in);
	if (!(mode & 1)) {
		fmd_decode((const char *)in.p, in.n);
		return;
	}
	size_t rl;
	char *rec = fuzz_field(&in, 0, &rl);
	char x[16];
	snprintf(x, sizeof(x), "X8:%08" PRIx32 "\n", crc32_update(0, rec, rl));
	struct buf b;
	buf_init(&b, 4 * MAILDROP_HEAD_MAX);
	if (buf_printf(&b, "%s%zu\n", MAILDROP_MAGIC, rl + strlen(x)) != 0 ||
	    buf_append(&b, rec, rl) != 0 || buf_puts(&b, x) != 0 ||
	    buf_append(&b, in.p, in.n) != 0)
		abort();
	fmd_decode(b.data, b.len);
	buf_free(&b);
	free(rec);
}

FUZZ_ENTRY(fuzz_maildrop)
