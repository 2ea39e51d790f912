/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: qualification of local names (qualify.h), applied to
 *	locally submitted envelopes and header fields.
 *
 *	Input: a byte choosing the output limit, the domain up to a NUL,
 *	then the address or header value.
 *
 *	Invariants: -EINVAL (bad domain) and buffer errors leave out as it
 *	was; otherwise the output never loses input bytes (it is at least
 *	as long, equal when nothing was qualified), adds no CR, LF or NUL,
 *	and qualifying again changes nothing (idempotence, documented).
 */
#include <errno.h>

#include "fuzz.h"
#include "outbox/qualify.h"

typedef int (*fq_fn)(const char *, size_t, const char *, struct buf *);

static size_t
fq_count(const char *p, size_t n, char c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += p[i] == c;
	return k;
}

static void
fq_one(fq_fn fn, const char *v, size_t n, const char *dom, size_t max)
{
	struct buf out;
	buf_init(&out, max);
	if (buf_puts(&out, "P:") != 0)
		abort();
	int rc = fn(v, n, dom, &out);
	if (rc < 0) {
		FUZZ_ASSERT(rc == -EINVAL || rc == -ENOBUFS || rc == -ENOMEM);
		FUZZ_ASSERT(out.len == 2 && memcmp(out.data, "P:", 2) == 0);
		buf_free(&out);
		return;
	}
	const char *q = out.data + 2;
	size_t ql = out.len - 2;
	FUZZ_ASSERT(rc > 0 ? ql > n : (ql == n && memcmp(q, v, n) == 0));
	static const char keep[3] = { '\r', '\n', '\0' };
	for (int k = 0; k < 3; k++)
		FUZZ_ASSERT(fq_count(q, ql, keep[k]) == fq_count(v, n, keep[k]));
	struct buf again;
	buf_init(&again, 1 << 20);
	FUZZ_ASSERT(fn(q, ql, dom, &again) == 0);
	FUZZ_ASSERT(again.len == ql && memcmp(again.data, q, ql) == 0);
	buf_free(&again);
	buf_free(&out);
}

static void
fuzz_qualify(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	size_t max = 16 + fuzz_byte(&in) * 64;
	char *dom = fuzz_field(&in, 0, NULL);
	char *v = malloc(in.n ? in.n : 1);
	if (v == NULL)
		abort();
	if (in.n)
		memcpy(v, in.p, in.n);
	fq_one(qualify_addr, v, in.n, dom, max);
	fq_one(qualify_header, v, in.n, dom, max);
	free(v);
	free(dom);
}

FUZZ_ENTRY(fuzz_qualify)
