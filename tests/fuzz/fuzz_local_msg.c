/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the sendmail stdin normaliser (local_msg.h) and its
 *	address-list splitter.
 *
 *	Input: an options byte (-i, -t, a small header limit, fix-ups, a
 *	fix-up with a line break), a split seed byte, then the message.
 *
 *	Invariants: any split of stdin gives the same output, status and -t
 *	recipients as one feed; a good message is CRLF lines with no NUL
 *	and no bare CR or LF; with -t no Bcc field is left in the header
 *	section; added fields are there; the -t recipients are as many as
 *	counted; local_msg_parse_addrs gives readable addresses no longer
 *	than its input.
 */
#include <strings.h>

#include "fuzz.h"
#include "outbox/local_msg.h"

#define FLM_OUT_MAX (1u << 22)

struct flm_res {
	struct local_msg m;
	struct buf out;
	enum local_msg_status st;
};

static void
flm_run(const struct local_msg_opts *o, const char *p, size_t n,
	uint64_t seed, bool whole, struct flm_res *r)
{
	local_msg_init(&r->m, o);
	buf_init(&r->out, FLM_OUT_MAX);
	size_t off = 0;
	r->st = LOCAL_MSG_OK;
	while (off < n) {
		size_t k = whole ? n : 1 + fuzz_rand(&seed) % 48;
		if (k > n - off)
			k = n - off;
		r->st = local_msg_feed(&r->m, p + off, k, &r->out);
		off += k;
	}
	r->st = local_msg_finish(&r->m, &r->out);
	FUZZ_ASSERT(local_msg_status_str(r->st) != NULL);
	FUZZ_ASSERT((r->st == LOCAL_MSG_OK) == (local_msg_status_exit(r->st) == 0));
}

static void
flm_same(const struct flm_res *a, const struct flm_res *b)
{
	FUZZ_ASSERT(a->st == b->st);
	if (a->st != LOCAL_MSG_OK)
		return;
	FUZZ_ASSERT(a->out.len == b->out.len);
	FUZZ_ASSERT(a->out.len == 0 ||
		    memcmp(a->out.data, b->out.data, a->out.len) == 0);
	FUZZ_ASSERT(a->m.nrcpts == b->m.nrcpts && a->m.present == b->m.present);
	const char *x = NULL, *y = NULL;
	for (size_t i = 0; i < a->m.nrcpts; i++) {
		x = local_msg_rcpt_next(&a->m, x);
		y = local_msg_rcpt_next(&b->m, y);
		FUZZ_ASSERT(x != NULL && y != NULL && strcmp(x, y) == 0);
	}
}

/* l[0..len) is a field called name; white space may precede the colon
 * (RFC 5322 obsolete syntax, which the normaliser accepts). */
static bool
flm_is_field(const char *l, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(l, name, n) != 0)
		return false;
	while (n < len && (l[n] == ' ' || l[n] == '\t'))
		n++;
	return n < len && l[n] == ':';
}

/* The output's header section has no Bcc with -t; fix-ups are present. */
static void
flm_check(const struct local_msg_opts *o, const struct flm_res *r)
{
	const char *p = r->out.data;
	size_t n = r->out.len;
	FUZZ_ASSERT(fuzz_crlf_lines(p, n, SIZE_MAX, false));
	bool date = false, mid = false, from = false;
	for (size_t i = 0; i < n;) {
		const char *l = p + i;
		size_t len = (size_t)((const char *)memchr(l, '\r', n - i) - l);
		i += len + 2;
		if (len == 0)
			break;
		if (o->extract_rcpts)
			FUZZ_ASSERT(!flm_is_field(l, len, "bcc"));
		date |= flm_is_field(l, len, "date");
		mid |= flm_is_field(l, len, "message-id");
		from |= flm_is_field(l, len, "from");
	}
	if (o->fixup.date != NULL && n > 0)
		FUZZ_ASSERT(date);
	if (o->fixup.message_id != NULL && n > 0)
		FUZZ_ASSERT(mid);
	if (o->fixup.from_addr != NULL && n > 0)
		FUZZ_ASSERT(from);
	size_t count = 0;
	for (const char *a = local_msg_rcpt_next(&r->m, NULL); a != NULL;
	     a = local_msg_rcpt_next(&r->m, a))
		count++;
	FUZZ_ASSERT(count == r->m.nrcpts);
	FUZZ_ASSERT(count <= LOCAL_MSG_RCPTS_MAX);
}

struct flm_span {
	const char *base;
	size_t n;
};

static int
flm_addr_cb(void *arg, const char *addr, size_t len)
{
	struct flm_span *s = arg;
	FUZZ_ASSERT(addr != NULL && len <= s->n);
	unsigned sum = 0; /* touch every byte: ASan checks the pointer */
	for (size_t i = 0; i < len; i++)
		sum += (unsigned char)addr[i];
	return sum > 255 * len ? -1 : 0;
}

static void
fuzz_local_msg(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned opt = fuzz_byte(&in);
	uint64_t seed = fuzz_byte(&in);
	struct local_msg_opts o = {
		.ignore_dots = opt & 1,
		.extract_rcpts = opt & 2,
		.header_max = (opt & 4) ? 64 + (opt >> 4) * 16 : 0,
	};
	if (opt & 8) {
		o.fixup.date = "Thu, 1 Jan 2026 00:00:00 +0000";
		o.fixup.message_id = (opt & 16) ? "<x@y.test>" : "x@y.test";
		o.fixup.from_addr = "root@host.test";
		o.fixup.full_name = (opt & 32) ? "Cron \"Daemon\"" : NULL;
		if ((opt & 0xc0) == 0xc0)
			o.fixup.full_name = "Evil\r\nBcc: x@y";
	}
	const char *p = (const char *)in.p;
	struct flm_res whole, split;
	flm_run(&o, p, in.n, seed, true, &whole);
	flm_run(&o, p, in.n, seed, false, &split);
	flm_same(&whole, &split);
	if (whole.st == LOCAL_MSG_OK)
		flm_check(&o, &whole);
	struct flm_span span = { p, in.n };
	FUZZ_ASSERT(local_msg_parse_addrs(p, in.n, flm_addr_cb, &span) >= 0);
	local_msg_free(&whole.m);
	local_msg_free(&split.m);
	buf_free(&whole.out);
	buf_free(&split.out);
}

FUZZ_ENTRY(fuzz_local_msg)
