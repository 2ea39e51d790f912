/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The listener's SMTP session as a pure state machine (OpenSMTPD
 *	smtp_session.c shape): bytes in, reply bytes in s->out, events out.
 *	This file owns the session object, input framing, the DATA phase and
 *	the glue's answers; smtp_server_cmd.c owns the command table.
 *
 *	Invariants:
 *	- server_enter_state() is the only writer of s->state.
 *	- s->tx is NULL outside MAIL .. end of data (commit_done or abort).
 *	- Every buffer is bounded: the command line by SMTP_CMD_MAX (a longer
 *	  line ends the session; its tail is never parsed), replies by
 *	  SRV_OUT_MAX (no new command is read while more than SRV_OUT_HIGH
 *	  reply bytes wait, so a client that pipelines without reading stalls
 *	  instead of growing memory), the body chunk by SRV_CHUNK_MAX.
 *	- Commands are taken one at a time, in order; DATA, QUIT and any
 *	  closing reply end a feed, so bytes after them are never run as
 *	  commands of the old state.
 *
 *	Policies (documented in tests/transcripts/server/README):
 *	- Input that arrives before the greeting is processed like any other
 *	  (RFC 2920 pipelining; the glue greets before it reads anyway).
 *	- A disallowed client gets a 554 greeting, then "503 5.7.1" to every
 *	  command but QUIT (RFC 5321 3.1), until QUIT or the error limit.
 *	- A line starting with a byte that is not a letter, a first word
 *	  ending in ':' (a header, "Subject: hi"), and GET/POST/CONNECT/HEAD/PUT get
 *	  "221 2.7.0" and the session ends (Postfix smtpd_forbidden_commands).
 *	  The first-byte test runs before the line is complete, so a TLS
 *	  ClientHello (no LF) is answered at once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/log.h"
#include "outbox/str.h"
#include "smtp_server_int.h"

#define SRV_DEFAULT_MAX_SIZE (35ULL * 1024 * 1024)
#define SRV_DEFAULT_MAX_RCPTS 1000

static const char *const server_state_names[] = {
	[SRV_S_GREETING] = "greeting", [SRV_S_READY] = "ready",
	[SRV_S_MAIL] = "mail",         [SRV_S_RCPT] = "rcpt",
	[SRV_S_DATA] = "data",         [SRV_S_QUIT] = "quit",
};

void
server_log(struct smtp_server *s, const char *fmt, ...)
{
	if (s->cfg.log == NULL)
		return;
	char msg[SMTP_REPLY_LINE_MAX + SRV_LOG_CMD_MAX + 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_arg, msg);
}

void
server_enter_state(struct smtp_server *s, enum smtp_server_state st)
{
	if (s->state == st)
		return;
	server_log(s, "state %s -> %s", server_state_names[s->state],
		   server_state_names[st]);
	s->state = st;
}

enum smtp_server_state
server_idle_state(const struct smtp_server *s)
{
	return s->helo_done ? SRV_S_READY : SRV_S_GREETING;
}

/* Format one reply line (cut to the RFC reply line limit) and queue it. */
static void
server_vreply(struct smtp_server *s, char *line, size_t size, const char *fmt,
	      va_list ap)
{
	vsnprintf(line, size - 2, fmt, ap);
	size_t n = strlen(line);
	memcpy(line + n, "\r\n", 3);
	if (buf_append(&s->out, line, n + 2) < 0)
		s->failed = true;
	line[n] = '\0';
}

void
server_reply(struct smtp_server *s, const char *fmt, ...)
{
	char line[SMTP_REPLY_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	server_vreply(s, line, sizeof(line), fmt, ap);
	va_end(ap);
}

/* The command as it may be logged: sanitized, and only the verb for AUTH. */
static void
server_cmd_text(struct smtp_server *s, char *dst, size_t size)
{
	size_t n = s->cur_len;
	const struct server_cmd *c = NULL;
	const char *verb, *arg;
	size_t vlen, alen;
	smtp_cmd_split(s->cur, n, &verb, &vlen, &arg, &alen);
	c = server_cmd_find(verb, vlen);
	if (c != NULL && (c->flags & SRV_F_SECRET))
		n = vlen;
	str_sanitize(dst, size, s->cur, n);
}

void
server_reject(struct smtp_server *s, const char *fmt, ...)
{
	char line[SMTP_REPLY_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	server_vreply(s, line, sizeof(line), fmt, ap);
	va_end(ap);
	s->errors++;
	char cmd[SRV_LOG_CMD_MAX];
	server_cmd_text(s, cmd, sizeof(cmd));
	server_log(s, "reject: %s: %s", cmd, line);
}

enum smtp_server_event
server_close(struct smtp_server *s)
{
	server_enter_state(s, SRV_S_QUIT);
	return SRV_CLOSE;
}

void
server_tx_free(struct smtp_server *s)
{
	if (s->tx == NULL)
		return;
	for (size_t i = 0; i < s->tx->nrcpts; i++)
		free(s->tx->rcpts[i].addr);
	free(s->tx->rcpts);
	free(s->tx);
	s->tx = NULL;
	s->rcpt_tried = 0;
}

struct smtp_server *
smtp_server_new(const struct smtp_server_cfg *cfg, const char *client_ip,
		bool allowed)
{
	struct smtp_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	if (s->cfg.hostname == NULL || s->cfg.hostname[0] == '\0')
		s->cfg.hostname = "localhost";
	if (s->cfg.max_message_size == 0)
		s->cfg.max_message_size = SRV_DEFAULT_MAX_SIZE;
	if (s->cfg.max_recipients == 0)
		s->cfg.max_recipients = SRV_DEFAULT_MAX_RCPTS;
	if (s->cfg.hop_limit == 0)
		s->cfg.hop_limit = SMTP_HOP_LIMIT;
	if (s->cfg.error_limit == 0)
		s->cfg.error_limit = SMTP_ERROR_LIMIT;
	const char *ip = client_ip ? client_ip : "unknown";
	str_sanitize(s->client_ip, sizeof(s->client_ip), ip, strlen(ip));
	s->allowed = allowed;
	s->state = SRV_S_GREETING;
	s->pending = SRV_NEED_MORE;
	buf_init(&s->line, SMTP_CMD_MAX);
	buf_init(&s->out, SRV_OUT_MAX);
	buf_init(&s->chunk, SRV_CHUNK_MAX);
	s->spool_free = UINT64_MAX;
	return s;
}

void
smtp_server_free(struct smtp_server *s)
{
	if (s == NULL)
		return;
	server_tx_free(s);
	buf_free(&s->line);
	buf_free(&s->out);
	buf_free(&s->chunk);
	free(s);
}

void
smtp_server_greet(struct smtp_server *s)
{
	if (s->allowed) {
		server_reply(s, "220 %s ESMTP outbox", s->cfg.hostname);
		return;
	}
	server_reply(s, "554 5.7.1 %s Client host [%s] rejected: Access denied",
		     s->cfg.hostname, s->client_ip);
	server_log(s, "reject: connect from [%s]: access denied", s->client_ip);
}

/* A: "221 2.7.0" and close for input that is not SMTP at all. */
static enum smtp_server_event
server_bogus(struct smtp_server *s)
{
	server_reject(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
	return server_close(s);
}

static bool
server_is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static enum smtp_server_event
server_dispatch(struct smtp_server *s, const char *line, size_t n)
{
	struct server_args a;
	memset(&a, 0, sizeof(a));
	smtp_cmd_split(line, n, &a.verb, &a.vlen, &a.arg, &a.alen);
	if (a.vlen > 1 && a.verb[a.vlen - 1] == ':')
		return server_bogus(s); /* "Subject: hi": a header, not a command */
	const struct server_cmd *c = server_cmd_find(a.verb, a.vlen);
	if (c == NULL) {
		server_reject(s, "500 5.5.1 Error: command not recognized");
		return SRV_NEED_MORE;
	}
	if (c->flags & SRV_F_BOGUS)
		return server_bogus(s);
	if (!s->allowed && !(c->flags & SRV_F_DENIED_OK)) {
		server_reject(s, "503 5.7.1 Error: access denied for [%s]",
			      s->client_ip);
		return SRV_NEED_MORE;
	}
	if (c->check != NULL && c->check(s, &a) < 0)
		return SRV_NEED_MORE;
	return c->proceed(s, &a);
}

/* One complete command line, LF included. */
static enum smtp_server_event
server_line(struct smtp_server *s, const char *line, size_t n)
{
	n--; /* the LF */
	s->line_crlf = n > 0 && line[n - 1] == '\r';
	if (s->line_crlf)
		n--;
	s->cur = line;
	s->cur_len = n;
	if (!s->line_crlf && s->cfg.bare_newline == SRV_BARE_NL_STRICT) {
		server_reject(s, "500 5.5.2 Error: bare <LF> received");
		return server_close(s);
	}
	enum smtp_server_event ev;
	if (memchr(line, '\r', n) != NULL) {
		server_reject(s, "500 5.5.2 Error: bare <CR> received");
		ev = SRV_NEED_MORE;
	} else if (n == 0) {
		server_reject(s, "500 5.5.2 Error: bad syntax");
		ev = SRV_NEED_MORE;
	} else {
		ev = server_dispatch(s, line, n);
	}
	if (ev == SRV_NEED_MORE && s->errors >= s->cfg.error_limit) {
		server_reply(s, "421 4.7.0 %s Too many errors", s->cfg.hostname);
		server_log(s, "too many errors (%u)", s->errors);
		return server_close(s);
	}
	return ev;
}

/*
 * Command mode: gather at most one line into s->line, handle it when its
 * LF arrives. *used is 0 only under reply backpressure.
 */
static enum smtp_server_event
server_line_feed(struct smtp_server *s, const char *p, size_t n, size_t *used)
{
	*used = 0;
	if (s->line.len == 0) {
		if (s->out.len >= SRV_OUT_HIGH)
			return SRV_NEED_MORE;
		unsigned char c = (unsigned char)p[0];
		if (!server_is_letter(c) && c != '\r' && c != '\n') {
			*used = 1;
			s->cur = p;
			s->cur_len = 1;
			return server_bogus(s);
		}
	}
	const char *lf = memchr(p, '\n', n);
	size_t take = lf ? (size_t)(lf - p) + 1 : n;
	size_t total = s->line.len + take;
	if (total > SMTP_CMD_MAX || (lf == NULL && total >= SMTP_CMD_MAX)) {
		*used = take;
		s->cur = s->line.len ? s->line.data : p;
		s->cur_len = s->line.len ? s->line.len : take;
		server_reject(s, "500 5.5.2 Error: line too long");
		return server_close(s);
	}
	*used = take;
	if (buf_append(&s->line, p, take) < 0) {
		s->failed = true;
		return SRV_CLOSE;
	}
	if (lf == NULL)
		return SRV_NEED_MORE;
	enum smtp_server_event ev = server_line(s, s->line.data, s->line.len);
	buf_reset(&s->line);
	s->cur = NULL;
	s->cur_len = 0;
	return ev;
}

/* End of data: reject (tx gone, reply queued) or ask the glue to commit. */
static enum smtp_server_event
server_data_end(struct smtp_server *s)
{
	const struct smtp_data *d = &s->data;
	const char *why = NULL;
	if (d->nomem)
		why = "451 4.3.0 Error: local error: out of memory";
	else if (d->bare_lf && s->cfg.bare_newline == SRV_BARE_NL_STRICT)
		why = "550 5.5.2 bare <LF> received";
	else if (d->bare_cr)
		why = "550 5.6.0 bare <CR> received";
	else if (d->too_big)
		why = "552 5.3.4 Message size exceeds fixed maximum message size";
	else if (d->hops > s->cfg.hop_limit)
		why = "554 5.4.6 Too many hops";
	if (why == NULL) {
		s->pending = SRV_NEED_COMMIT;
		return SRV_NEED_COMMIT;
	}
	server_reply(s, "%s", why);
	server_log(s, "reject: end of data: %s", why);
	server_tx_free(s);
	server_enter_state(s, server_idle_state(s));
	return SRV_DATA_ABORT;
}

static enum smtp_server_event
server_data_feed(struct smtp_server *s, const char *p, size_t n, size_t *used)
{
	enum smtp_data_result r = smtp_data_feed(&s->data, p, n, &s->chunk,
						 used);
	s->tx->data_size = s->data.size;
	switch (r) {
	case DATA_NEED_MORE:
		return SRV_NEED_MORE;
	case DATA_FLUSH:
		return SRV_BODY_CHUNK;
	case DATA_END:
		return server_data_end(s);
	}
	OB_PANIC("smtp_data_feed returned %d", (int)r);
}

enum smtp_server_event
smtp_server_feed(struct smtp_server *s, const char *data, size_t len,
		 size_t *consumed)
{
	*consumed = 0;
	if (s->failed || s->state == SRV_S_QUIT)
		return SRV_CLOSE;
	if (s->pending != SRV_NEED_MORE)
		return s->pending; /* the glue still owes an answer */
	enum smtp_server_event ev = SRV_NEED_MORE;
	size_t off = 0;
	while (off < len) {
		size_t used = 0;
		if (s->state == SRV_S_DATA)
			ev = server_data_feed(s, data + off, len - off, &used);
		else
			ev = server_line_feed(s, data + off, len - off, &used);
		off += used;
		if (ev != SRV_NEED_MORE || used == 0)
			break;
	}
	*consumed = off;
	if (s->failed) {
		server_close(s);
		return SRV_CLOSE;
	}
	return ev;
}

/* Printable ASCII without the characters that structure a Received: line. */
static void
server_header_text(char *dst, size_t size, const char *src)
{
	str_sanitize(dst, size, src, strlen(src));
	for (char *p = dst; *p; p++)
		if (*p == ' ' || *p == '(' || *p == ')' || *p == ';' ||
		    *p == '[' || *p == ']')
			*p = '_';
}

static int
server_received(struct smtp_server *s, struct buf *b, const char *queue_id,
		const char *date)
{
	char helo[HOSTNAME_MAX + 1], id[64], dt[64];
	server_header_text(helo, sizeof(helo), s->helo);
	str_sanitize(id, sizeof(id), queue_id, strlen(queue_id));
	str_sanitize(dt, sizeof(dt), date, strlen(date));
	const char *proto = s->tx->smtputf8 ? "UTF8SMTP"
			    : s->esmtp      ? "ESMTP"
					    : "SMTP";
	int r = buf_printf(b,
			   "Received: from %s (unknown [%s])\r\n"
			   "\tby %s (outbox) with %s id %s",
			   helo, s->client_ip, s->cfg.hostname, proto, id);
	if (r == 0 && s->tx->nrcpts == 1)
		r = buf_printf(b, "\r\n\tfor <%s>; %s\r\n",
			       s->tx->rcpts[0].addr, dt);
	else if (r == 0)
		r = buf_printf(b, ";\r\n\t%s\r\n", dt);
	return r;
}

void
smtp_server_data_begin(struct smtp_server *s, const char *queue_id,
		       const char *date)
{
	if (s->pending != SRV_DATA_START)
		return;
	s->pending = SRV_NEED_MORE;
	struct buf b;
	buf_init(&b, 4 * SMTP_PATH_MAX + 2 * HOSTNAME_MAX + 256);
	if (server_received(s, &b, queue_id, date) < 0)
		s->data.nomem = true;
	else
		smtp_data_put_raw(&s->data, &s->chunk, b.data, b.len);
	buf_free(&b);
	s->tx->data_size = s->data.size;
}

void
smtp_server_commit_done(struct smtp_server *s, int status,
			const char *queue_id)
{
	if (s->pending != SRV_NEED_COMMIT)
		return;
	s->pending = SRV_NEED_MORE;
	if (status == 0) {
		char id[64];
		str_sanitize(id, sizeof(id), queue_id, strlen(queue_id));
		server_reply(s, "250 2.0.0 Ok: queued as %s", id);
		s->junk = 0; /* a client that sends mail is not idling */
	} else if (status == -ENOSPC) {
		server_reply(s, "452 4.3.1 Insufficient system storage");
	} else {
		server_reply(s, "451 4.3.0 Error: queue file write error");
	}
	server_tx_free(s);
	server_enter_state(s, server_idle_state(s));
}

void
smtp_server_shutdown(struct smtp_server *s, const char *reply_421)
{
	char text[SMTP_REPLY_LINE_MAX];
	str_sanitize(text, sizeof(text), reply_421, strlen(reply_421));
	server_reply(s, "421 %s", text);
	s->pending = SRV_NEED_MORE;
	server_close(s);
}

struct buf *
smtp_server_out(struct smtp_server *s)
{
	return &s->out;
}

struct buf *
smtp_server_chunk(struct smtp_server *s)
{
	return &s->chunk;
}

const struct smtp_tx *
smtp_server_tx(const struct smtp_server *s)
{
	return s->tx;
}

const char *
smtp_server_helo(const struct smtp_server *s)
{
	return s->helo;
}

const char *
smtp_server_state_name(const struct smtp_server *s)
{
	return server_state_names[s->state];
}

unsigned
smtp_server_errors(const struct smtp_server *s)
{
	return s->errors;
}

void
smtp_server_set_spool_free(struct smtp_server *s, uint64_t bytes)
{
	s->spool_free = bytes;
}
