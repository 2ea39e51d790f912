/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the MAIL/RCPT argument parsers. smtp_cmd_split and
 *	smtp_cmd_parse_path on the input as a command line, every ESMTP
 *	parameter value through xtext decoding, the path through
 *	addr_parse_path, and the input itself through addr_parse_path,
 *	addr_check_domain and smtp_cmd_xtext_decode.
 *
 *	Input: a byte choosing the xtext buffer size, then the text.
 *
 *	Invariants: pointers returned stay inside the input; at most
 *	SMTP_CMD_MAX_PARAMS parameters; an accepted mailbox is NUL-terminated,
 *	at most SMTP_PATH_MAX, free of control bytes, with a consistent
 *	local part and domain flag, flagged eightbit when it has 8-bit
 *	bytes, and parses again to itself (the spool stores it and the
 *	client sends it back out); a refused path leaves "" behind; xtext
 *	output is NUL-terminated, fits, and holds no control byte.
 */
#include "fuzz.h"
#include "outbox/addr.h"
#include "outbox/smtp_cmd.h"

static bool
faddr_inside(const char *p, size_t n, const char *base, size_t len)
{
	return p >= base && p + n <= base + len;
}

static void
faddr_path(const char *p, size_t n)
{
	struct addr_path a;
	enum addr_status st = addr_parse_path(p, n, &a);
	FUZZ_ASSERT(addr_status_str(st) != NULL);
	size_t ml = strnlen(a.mailbox, sizeof(a.mailbox));
	FUZZ_ASSERT(ml < sizeof(a.mailbox));
	if (st != ADDR_OK) {
		FUZZ_ASSERT(ml == 0);
		return;
	}
	FUZZ_ASSERT(ml <= SMTP_PATH_MAX && fuzz_no_ctrl(a.mailbox, ml));
	FUZZ_ASSERT(a.local_len <= ml && a.local_len <= SMTP_LOCAL_MAX);
	FUZZ_ASSERT(a.has_domain == (a.local_len < ml));
	if (a.has_domain)
		FUZZ_ASSERT(a.mailbox[a.local_len] == '@');
	for (size_t i = 0; i < ml; i++)
		if ((unsigned char)a.mailbox[i] >= 0x80)
			FUZZ_ASSERT(a.eightbit);
	struct addr_path again;
	FUZZ_ASSERT(addr_parse_path(a.mailbox, ml, &again) == ADDR_OK);
	FUZZ_ASSERT(strcmp(again.mailbox, a.mailbox) == 0);
	FUZZ_ASSERT(again.local_len == a.local_len);
}

static void
faddr_xtext(const char *p, size_t n, size_t size)
{
	char out[600];
	memset(out, 'x', sizeof(out));
	if (smtp_cmd_xtext_decode(p, n, out, size) != 0)
		return;
	size_t l = strnlen(out, size);
	FUZZ_ASSERT(l < size);
	FUZZ_ASSERT(fuzz_no_ctrl(out, l));
	FUZZ_ASSERT(l <= n);
}

static void
faddr_cmd(const char *line, size_t n, size_t xsize)
{
	const char *verb, *arg;
	size_t vlen, alen;
	smtp_cmd_split(line, n, &verb, &vlen, &arg, &alen);
	FUZZ_ASSERT(faddr_inside(verb, vlen, line, n));
	FUZZ_ASSERT(alen == 0 || faddr_inside(arg, alen, line, n));
	static const char *const prefix[2] = { "FROM:", "TO:" };
	for (int k = 0; k < 2; k++) {
		struct smtp_cmd_path cp;
		if (smtp_cmd_parse_path(arg, alen, prefix[k], &cp) != CMD_OK)
			continue;
		FUZZ_ASSERT(cp.nparams <= SMTP_CMD_MAX_PARAMS);
		FUZZ_ASSERT(cp.plen == 0 || faddr_inside(cp.path, cp.plen, arg, alen));
		faddr_path(cp.path, cp.plen);
		for (size_t i = 0; i < cp.nparams; i++) {
			const struct smtp_param *pm = &cp.params[i];
			FUZZ_ASSERT(pm->klen > 0 &&
				    faddr_inside(pm->key, pm->klen, arg, alen));
			if (pm->val == NULL)
				continue;
			FUZZ_ASSERT(pm->vlen == 0 ||
				    faddr_inside(pm->val, pm->vlen, arg, alen));
			faddr_xtext(pm->val, pm->vlen, xsize);
		}
	}
}

static void
fuzz_addr(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	size_t xsize = 1 + fuzz_byte(&in) * 2;
	/* A heap copy of exactly the input, so ASan sees any overread. */
	char *p = malloc(in.n ? in.n : 1);
	if (p == NULL)
		abort();
	if (in.n)
		memcpy(p, in.p, in.n);
	faddr_cmd(p, in.n, xsize);
	faddr_path(p, in.n);
	bool eight = false;
	(void)addr_check_domain(p, in.n, &eight);
	(void)addr_check_domain(p, in.n, NULL);
	faddr_xtext(p, in.n, xsize);
	free(p);
}

FUZZ_ENTRY(fuzz_addr)
