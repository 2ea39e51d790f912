/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the outbound session (smtp_client.h) fed server reply
 *	lines, driven like daemon/delivery.c drives it: TLS handshakes
 *	succeed or fail as the input says, READY sends the next message
 *	(or QUIT), NEED_BODY is answered with body_done. Every outcome goes
 *	through the classifier (classify.h).
 *
 *	Input: a configuration byte (TLS mode, TLS required, AUTH, how many
 *	messages, TLS handshake results), then reply lines split at LF (one
 *	CR before it removed).
 *
 *	Invariants: the client only ever sends CRLF-terminated lines, never
 *	a bare CR or LF; every result has a code 0 or 200..599, a command
 *	name, NUL-terminated text; a message result covers exactly the
 *	recipients offered; FAIL and CLOSED are sticky; the classifier gives
 *	a known outcome and a [245].x.y status.
 */
#include "fuzz.h"
#include "outbox/classify.h"
#include "outbox/smtp_client.h"

static const char *const fcli_rcpts[] = {
	"a@example.test", "b@example.test", "bad address@example.test",
	"\xc3\xa9@example.test", "c@[192.0.2.1]",
};

struct fcli {
	struct smtp_client *c;
	unsigned cfgbyte;
	unsigned msgs_left;
	size_t nrcpts;       /* of the message in flight */
	bool done;
};

static void
fcli_result(const struct smtp_client_result *r, enum dlv_stage stage)
{
	FUZZ_ASSERT(r->code == 0 || (r->code >= 200 && r->code <= 599));
	FUZZ_ASSERT(r->cmd != NULL);
	FUZZ_ASSERT(memchr(r->text, '\0', sizeof(r->text)) != NULL);
	FUZZ_ASSERT(memchr(r->enh, '\0', sizeof(r->enh)) != NULL);
	enum dlv_result d = classify_result(r, stage);
	FUZZ_ASSERT(d == DLV_OK || d == DLV_TEMP || d == DLV_PERM);
	FUZZ_ASSERT(classify_status_word(d) != NULL);
	char dsn[16];
	classify_dsn(r, dsn, sizeof(dsn));
	FUZZ_ASSERT(memchr(dsn, '\0', sizeof(dsn)) != NULL);
	FUZZ_ASSERT(dsn[0] == '2' || dsn[0] == '4' || dsn[0] == '5');
	FUZZ_ASSERT(dsn[1] == '.');
}

/* Commands to the server: CRLF lines only. */
static void
fcli_drain(struct fcli *f)
{
	struct buf *out = smtp_client_out(f->c);
	FUZZ_ASSERT(fuzz_crlf_lines(out->data, out->len, SMTP_AUTH_LINE_MAX,
				    false));
	buf_reset(out);
	FUZZ_ASSERT(smtp_client_state_name(f->c) != NULL);
}

static enum smtp_client_event
fcli_send(struct fcli *f)
{
	if (f->msgs_left == 0)
		return smtp_client_quit(f->c);
	f->msgs_left--;
	size_t nr = 1 + (f->msgs_left + f->cfgbyte) % 5;
	struct smtp_client_msg m = {
		.sender = (f->msgs_left & 1) ? "" : "s@client.test",
		.rcpts = fcli_rcpts + (5 - nr),
		.nrcpts = nr,
		.size = 1000 + f->msgs_left,
		.body_8bit = f->cfgbyte & 0x40,
		.smtputf8 = f->cfgbyte & 0x80,
	};
	f->nrcpts = nr;
	return smtp_client_send_msg(f->c, &m);
}

static void
fcli_msg_done(struct fcli *f)
{
	const struct smtp_client_msg_result *mr = smtp_client_msg_result(f->c);
	FUZZ_ASSERT(mr != NULL && mr->nrcpts == f->nrcpts);
	fcli_result(&mr->msg, STAGE_DATA);
	for (size_t i = 0; i < mr->nrcpts; i++)
		fcli_result(&mr->rcpt[i], STAGE_RCPT);
}

static void
fcli_fail(struct fcli *f)
{
	const struct smtp_client_failure *fl = smtp_client_failure(f->c);
	FUZZ_ASSERT(fl != NULL && fl->state != NULL);
	fcli_result(&fl->r, STAGE_SESSION);
	if (fl->in_tx)
		fcli_msg_done(f);
	/* Sticky: nothing more happens. */
	FUZZ_ASSERT(smtp_client_on_line(f->c, "250 ok", 6) == CLI_FAIL);
	FUZZ_ASSERT(smtp_client_out(f->c)->len == 0);
}

/* Act on an event as the glue would, until the client waits for a line. */
static void
fcli_event(struct fcli *f, enum smtp_client_event ev)
{
	for (int guard = 0; guard < 100 && !f->done; guard++) {
		fcli_drain(f);
		switch (ev) {
		case CLI_WAIT:
			return;
		case CLI_NEED_TLS:
			ev = (f->cfgbyte & 0x20)
				     ? smtp_client_tls_done(f->c, false, "bad cert")
				     : smtp_client_tls_done(f->c, true, NULL);
			f->cfgbyte ^= 0x20 & (f->cfgbyte >> 1);
			break;
		case CLI_MSG_DONE:
			fcli_msg_done(f);
			ev = fcli_send(f);
			break;
		case CLI_READY:
			ev = fcli_send(f);
			break;
		case CLI_NEED_BODY:
			ev = smtp_client_body_done(f->c);
			break;
		case CLI_FAIL:
			fcli_fail(f);
			f->done = true;
			return;
		case CLI_CLOSED:
			FUZZ_ASSERT(smtp_client_on_line(f->c, "250 ok", 6) ==
				    CLI_CLOSED);
			f->done = true;
			return;
		}
	}
	FUZZ_ASSERT(f->done);
}

static void
fuzz_client(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fcli f = { .cfgbyte = fuzz_byte(&in) };
	static const enum smtp_client_tls tls[4] = {
		CLI_TLS_NONE, CLI_TLS_STARTTLS, CLI_TLS_IMPLICIT,
		CLI_TLS_STARTTLS,
	};
	struct smtp_client_cfg cfg = {
		.helo = "client.test",
		.tls = tls[f.cfgbyte & 3],
		.tls_required = f.cfgbyte & 4,
		.user = (f.cfgbyte & 8) ? "user" : NULL,
		.password = (f.cfgbyte & 8) ? "secret" : NULL,
	};
	f.msgs_left = 1 + ((f.cfgbyte >> 4) & 1);
	f.c = smtp_client_new(&cfg);
	FUZZ_ASSERT(f.c != NULL);
	fcli_event(&f, smtp_client_start(f.c));
	while (in.n > 0 && !f.done) {
		size_t n;
		char *line = fuzz_field(&in, '\n', &n);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		fcli_event(&f, smtp_client_on_line(f.c, line, n));
		free(line);
	}
	if (!f.done)
		fcli_event(&f, smtp_client_abort(f.c, "4.4.2", "timeout"));
	FUZZ_ASSERT(f.done);
	smtp_client_free(f.c);
}

FUZZ_ENTRY(fuzz_client)
