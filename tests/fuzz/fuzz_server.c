/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the listener session (smtp_server.h) fed a client byte
 *	stream split at fuzzer-chosen points, driven through DATA and the
 *	glue's answers like daemon/session.c does.
 *
 *	Input: 4 configuration bytes, 12 control bytes (feed sizes and the
 *	glue's answers, used in turn), then the client bytes.
 *
 *	Invariants: consumed <= len, NEED_MORE consumes everything (but
 *	for the reply high-water stall), the
 *	replies are well-formed CRLF lines with 3-digit codes, the stored
 *	message is CRLF lines within max_message_size, a committed
 *	transaction has a clean sender and 1..max_recipients recipients,
 *	and a closed session stays closed.
 */
#include <errno.h>

#include "fuzz.h"
#include "outbox/smtp_server.h"

#define FSRV_CTRL 12

struct fsrv {
	struct smtp_server *s;
	struct smtp_server_cfg cfg;
	uint8_t ctrl[FSRV_CTRL];
	size_t k;            /* next control byte */
	uint64_t stored;     /* bytes of the current message */
	bool prev_cr;        /* its last stored byte was CR */
	bool in_data;
};

static unsigned
fsrv_ctrl(struct fsrv *f)
{
	return f->ctrl[f->k++ % FSRV_CTRL];
}

/* Replies go to the client: they must be well-formed; then drop them. */
static void
fsrv_drain(struct fsrv *f)
{
	struct buf *out = smtp_server_out(f->s);
	FUZZ_ASSERT(fuzz_smtp_replies(out->data, out->len,
				      SMTP_REPLY_LINE_MAX - 2));
	buf_reset(out);
}

/* Body bytes go to the spool file: CRLF lines, never past the limit. */
static void
fsrv_take_chunk(struct fsrv *f)
{
	struct buf *c = smtp_server_chunk(f->s);
	for (size_t i = 0; i < c->len; i++) {
		char ch = c->data[i];
		FUZZ_ASSERT(ch == '\n' ? f->prev_cr : !f->prev_cr);
		f->prev_cr = ch == '\r';
	}
	FUZZ_ASSERT(f->in_data || c->len == 0);
	f->stored += c->len;
	FUZZ_ASSERT(f->stored <= f->cfg.max_message_size);
	buf_reset(c);
}

static void
fsrv_check_tx(struct fsrv *f)
{
	const struct smtp_tx *tx = smtp_server_tx(f->s);
	FUZZ_ASSERT(tx != NULL);
	size_t sl = strnlen(tx->sender, sizeof(tx->sender));
	FUZZ_ASSERT(sl <= SMTP_PATH_MAX && fuzz_no_ctrl(tx->sender, sl));
	FUZZ_ASSERT(tx->nrcpts >= 1 && tx->nrcpts <= f->cfg.max_recipients);
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const char *a = tx->rcpts[i].addr;
		size_t al = strlen(a);
		FUZZ_ASSERT(al >= 1 && al <= SMTP_PATH_MAX);
		FUZZ_ASSERT(fuzz_no_ctrl(a, al));
	}
	FUZZ_ASSERT(!f->prev_cr);
	FUZZ_ASSERT(f->stored >= 2);
	FUZZ_ASSERT(tx->data_size <= f->cfg.max_message_size);
}

static void
fsrv_commit(struct fsrv *f)
{
	fsrv_take_chunk(f);
	fsrv_check_tx(f);
	static const int status[4] = { 0, 0, -ENOSPC, -EIO };
	smtp_server_commit_done(f->s, status[fsrv_ctrl(f) & 3],
				"0123456789ABCDEF");
	f->in_data = false;
	FUZZ_ASSERT(smtp_server_tx(f->s) == NULL);
}

/* The glue's answer to one event; false when the session is over. */
static bool
fsrv_event(struct fsrv *f, enum smtp_server_event ev)
{
	switch (ev) {
	case SRV_NEED_MORE:
	case SRV_BODY_CHUNK:
		fsrv_take_chunk(f);
		return true;
	case SRV_DATA_START:
		FUZZ_ASSERT(smtp_server_tx(f->s) != NULL);
		f->in_data = true;
		f->stored = 0;
		f->prev_cr = false;
		smtp_server_data_begin(f->s, "0123456789ABCDEF",
				       "Thu, 1 Jan 2026 00:00:00 +0000");
		fsrv_take_chunk(f);
		return true;
	case SRV_NEED_COMMIT:
		fsrv_commit(f);
		return true;
	case SRV_DATA_ABORT:
		buf_reset(smtp_server_chunk(f->s));
		f->in_data = false;
		FUZZ_ASSERT(smtp_server_tx(f->s) == NULL);
		return true;
	case SRV_CLOSE:
		return false;
	}
	FUZZ_ASSERT(!"unknown event");
	return false;
}

static void
fsrv_config(struct fsrv *f, struct fuzz_in *in)
{
	unsigned flags = fuzz_byte(in), size = fuzz_byte(in);
	unsigned rcpts = fuzz_byte(in), errs = fuzz_byte(in);
	f->cfg.hostname = "mx.test";
	f->cfg.bare_newline = (flags & 1) ? SRV_BARE_NL_STRICT
					  : SRV_BARE_NL_NORMALIZE;
	f->cfg.max_message_size = (flags & 4) ? 300 + size * 16 : 1000000;
	f->cfg.max_recipients = (flags & 8) ? 1 + rcpts % 8 : 100;
	f->cfg.hop_limit = (flags & 16) ? 1 + size % 4 : SMTP_HOP_LIMIT;
	f->cfg.error_limit = (flags & 32) ? 1 + errs % 25 : SMTP_ERROR_LIMIT;
	f->cfg.min_free = (flags & 64) ? 1000 : 0;
	for (size_t i = 0; i < FSRV_CTRL; i++)
		f->ctrl[i] = (uint8_t)fuzz_byte(in);
}

static void
fsrv_run(struct fsrv *f, const char *p, size_t len)
{
	size_t off = 0;
	for (size_t guard = 0; guard < 4 * len + 64; guard++) {
		unsigned c = fsrv_ctrl(f);
		if (c == 0xff)
			smtp_server_shutdown(f->s, "4.3.2 Service shutting down");
		else if (c == 0xfe)
			smtp_server_set_spool_free(f->s, 10);
		size_t left = len - off;
		size_t n = (c % 32 == 0 || c % 32 > left) ? left : c % 32;
		size_t used = 0;
		enum smtp_server_event ev =
			smtp_server_feed(f->s, p + off, n, &used);
		FUZZ_ASSERT(used <= n);
		/* NEED_MORE uses all input, unless replies pile up unread. */
		FUZZ_ASSERT(ev != SRV_NEED_MORE || used == n ||
			    smtp_server_out(f->s)->len > 0);
		FUZZ_ASSERT(smtp_server_state_name(f->s) != NULL);
		off += used;
		fsrv_drain(f);
		if (!fsrv_event(f, ev)) {
			ev = smtp_server_feed(f->s, p + off, len - off, &used);
			FUZZ_ASSERT(ev == SRV_CLOSE && used == 0);
			return;
		}
		if (off == len && ev == SRV_NEED_MORE)
			return;
	}
	FUZZ_ASSERT(!"feed loop does not end");
}

static void
fuzz_server(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fsrv f;
	memset(&f, 0, sizeof(f));
	fsrv_config(&f, &in);
	bool allowed = (size > 0 && (data[0] & 2)) ? false : true;
	f.s = smtp_server_new(&f.cfg, "192.0.2.1", allowed);
	FUZZ_ASSERT(f.s != NULL);
	smtp_server_greet(f.s);
	fsrv_drain(&f);
	fsrv_run(&f, (const char *)in.p, in.n);
	smtp_server_free(f.s);
}

FUZZ_ENTRY(fuzz_server)
