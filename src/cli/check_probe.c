/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	One network probe of `outbox check`: a conn (io/conn.c) to one
 *	address, driven by the relay's own SMTP client machine
 *	(proto/smtp_client.c) or by the IMAP/POP3 probe machine
 *	(proto/check_mbox.c), with one uv_timer_t bounding every step
 *	(connect, each reply, the TLS handshake) by ctx->timeout_ms.
 *
 *	The probe never sends MAIL: with no login it QUITs as soon as the
 *	session is ready; with a login (relay doctor) it authenticates
 *	first, and only after a verified certificate when verify is set, so
 *	a check never hands a password to a server outbox would not trust.
 *
 *	Ownership: struct probe lives on the caller's stack; probe_run()
 *	runs the loop until the conn and the timer are closed, so nothing
 *	outlives it. probe_finish() is the one teardown path and is safe
 *	from any callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/check_mbox.h"
#include "outbox/smtp_client.h"
#include "outbox/str.h"

#include "check_priv.h"

#define PROBE_LINE_MAX (SMTP_REPLY_PARSE_MAX + 2)

struct probe {
	struct check_ctx *ctx;
	struct conn *conn;
	uv_timer_t timer;
	bool timer_open;
	bool finished;
	bool connecting;
	bool got_data;             /* any byte since connect */
	const char *tls_host;      /* NULL: verify the IP */
	struct buf lines;
	/* Observations shared by both kinds. */
	enum check_conn *conn_result;
	char *conn_error;          /* [160] */
	bool *greeting_timeout;
	struct check_tls *tls;
	/* SMTP */
	struct smtp_client *cli;
	struct check_smtp_obs *smtp;
	bool must_verify;          /* refuse the session on a bad cert */
	bool login;
	const char *last_state;
	unsigned state_lines;
	/* IMAP / POP3 */
	struct check_mbox *mbox;
};

static void probe_finish(struct probe *p);

static void
probe_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void
probe_set_timer(struct probe *p);

/* ---- SMTP driver -------------------------------------------------------- */

static void
probe_smtp_flush(struct probe *p)
{
	struct buf *out = smtp_client_out(p->cli);
	if (out->len > 0 && p->conn != NULL)
		(void)conn_write(p->conn, out->data, out->len);
	buf_reset(out);
}

static int
probe_start_tls(struct probe *p)
{
	/* STARTTLS rule: nothing may wait across the switch. */
	if (p->lines.len > 0)
		return -1;
	p->tls->tried = true;
	if (p->ctx->tls == NULL) {
		str_copy(p->tls->error, sizeof(p->tls->error),
			 p->ctx->tls_error);
		return -1;
	}
	return conn_start_tls(p->conn, p->ctx->tls, p->tls_host) == 0 ? 0 : -1;
}

static void
probe_smtp_failed(struct probe *p)
{
	const struct smtp_client_failure *f = smtp_client_failure(p->cli);
	if (p->login && f->r.cmd != NULL && strcmp(f->r.cmd, "AUTH") == 0) {
		p->smtp->auth_tried = true;
		if (f->r.code != 0)
			snprintf(p->smtp->auth_error,
				 sizeof(p->smtp->auth_error), "%d %s",
				 f->r.code, f->r.text);
		else
			str_copy(p->smtp->auth_error,
				 sizeof(p->smtp->auth_error), f->r.text);
		return;
	}
	if (f->r.cmd != NULL && strcmp(f->r.cmd, "TLS") == 0 &&
	    p->tls->error[0] == '\0')
		str_copy(p->tls->error, sizeof(p->tls->error), f->r.text);
	if (f->r.cmd != NULL && strcmp(f->r.cmd, "TLS") == 0)
		return; /* the tls step reports it */
	if (f->r.code != 0)
		snprintf(p->smtp->failure, sizeof(p->smtp->failure),
			 "%d %s%s%s", f->r.code, f->r.enh, f->r.enh[0] ? " " : "",
			 f->r.text);
	else
		str_copy(p->smtp->failure, sizeof(p->smtp->failure), f->r.text);
}

static void
probe_smtp_event(struct probe *p, enum smtp_client_event ev)
{
	for (;;) {
		if (p->finished)
			return;
		probe_smtp_flush(p);
		switch (ev) {
		case CLI_WAIT:
			probe_set_timer(p);
			return;
		case CLI_NEED_TLS:
			if (probe_start_tls(p) < 0) {
				ev = smtp_client_abort(p->cli, "4.7.5",
						       p->tls->error[0]
							       ? p->tls->error
							       : "cannot start TLS");
				break;
			}
			probe_set_timer(p);
			return;
		case CLI_READY:
			if (p->login) {
				p->smtp->auth_tried = true;
				p->smtp->auth_ok = true;
			}
			ev = smtp_client_quit(p->cli);
			break;
		case CLI_FAIL:
			probe_smtp_failed(p);
			probe_finish(p);
			return;
		default: /* CLI_CLOSED; no transaction is ever started */
			probe_finish(p);
			return;
		}
	}
}

/* Banner and EHLO keywords, seen on their way into the client. */
static void
probe_smtp_observe(struct probe *p, const char *line, size_t n)
{
	const char *st = smtp_client_state_name(p->cli);
	if (st != p->last_state) {
		p->last_state = st;
		p->state_lines = 0;
	}
	p->state_lines++;
	struct check_smtp_obs *o = p->smtp;
	if (strcmp(st, "greeting") == 0 && p->state_lines == 1 && n >= 3) {
		str_sanitize(o->banner, sizeof(o->banner), line, n);
		uint64_t code = 0;
		if (str_nto_u64(line, 3, 100, 599, &code) == 0)
			o->banner_code = (int)code;
		return;
	}
	if (strcmp(st, "ehlo") != 0)
		return;
	bool tls = conn_is_tls(p->conn);
	if (tls)
		o->ehlo_tls_seen = true;
	/* The first line of the reply is the server's name, not a keyword. */
	if (p->state_lines > 1 && n > 4 && line[0] == '2')
		(void)check_caps_add(tls ? o->ehlo_tls : o->ehlo,
				     CHECK_CAPS_MAX, line + 4, n - 4);
}

static void
probe_smtp_line(struct probe *p, const char *line, size_t n)
{
	probe_smtp_observe(p, line, n);
	probe_smtp_event(p, smtp_client_on_line(p->cli, line, n));
}

/* ---- IMAP / POP3 driver --------------------------------------------------- */

static void
probe_mbox_event(struct probe *p, enum check_mbox_event ev)
{
	if (p->finished)
		return;
	if (p->mbox->out.len > 0 && p->conn != NULL)
		(void)conn_write(p->conn, p->mbox->out.data, p->mbox->out.len);
	buf_reset(&p->mbox->out);
	switch (ev) {
	case MBOX_WAIT:
		probe_set_timer(p);
		return;
	case MBOX_NEED_TLS:
		if (probe_start_tls(p) < 0) {
			probe_mbox_event(p, check_mbox_tls_done(
						    p->mbox, false,
						    p->tls->error[0] ? p->tls->error
								     : "cannot start TLS"));
			return;
		}
		probe_set_timer(p);
		return;
	default:
		probe_finish(p);
		return;
	}
}

/* ---- both ------------------------------------------------------------------- */

static void
probe_abort(struct probe *p, const char *why)
{
	if (p->cli != NULL)
		probe_smtp_event(p, smtp_client_abort(p->cli, "4.4.2", why));
	else
		probe_mbox_event(p, check_mbox_abort(p->mbox, why));
}

static bool
probe_in_greeting(const struct probe *p)
{
	if (p->cli != NULL)
		return strcmp(smtp_client_state_name(p->cli), "greeting") == 0;
	return p->mbox->state == MB_GREETING;
}

static bool
probe_in_tls(const struct probe *p)
{
	if (p->cli != NULL)
		return strcmp(smtp_client_state_name(p->cli), "tls") == 0;
	return p->mbox->state == MB_TLS;
}

static void
probe_timeout_cb(uv_timer_t *t)
{
	struct probe *p = t->data;
	char why[160];
	if (p->finished)
		return;
	if (p->connecting) {
		*p->conn_result = CHECK_CONN_TIMEOUT;
		probe_finish(p);
		return;
	}
	if (probe_in_greeting(p) && !p->got_data) {
		/* Silence: the report says so (and a TLS look may follow). */
		*p->greeting_timeout = true;
		probe_finish(p);
		return;
	}
	if (probe_in_tls(p)) {
		snprintf(p->tls->error, sizeof(p->tls->error),
			 "no answer to the TLS handshake within %llu s",
			 (unsigned long long)(p->ctx->timeout_ms / 1000));
		probe_abort(p, p->tls->error);
		return;
	}
	snprintf(why, sizeof(why), "the server did not answer within %llu s "
		 "(while %s)", (unsigned long long)(p->ctx->timeout_ms / 1000),
		 p->cli ? smtp_client_state_name(p->cli)
			: check_mbox_state_name(p->mbox));
	probe_abort(p, why);
}

static void
probe_set_timer(struct probe *p)
{
	if (p->timer_open && !p->finished)
		uv_timer_start(&p->timer, probe_timeout_cb, p->ctx->timeout_ms, 0);
}

static void
probe_finish(struct probe *p)
{
	if (p->finished)
		return;
	p->finished = true;
	if (p->conn != NULL)
		conn_close(p->conn);
	p->conn = NULL;
	if (p->timer_open) {
		uv_timer_stop(&p->timer);
		uv_close((uv_handle_t *)&p->timer, probe_timer_closed);
	}
}

static void
probe_on_connect(void *arg, int status)
{
	struct probe *p = arg;
	p->connecting = false;
	if (status != 0) {
		*p->conn_result = status == UV_ECONNREFUSED ? CHECK_CONN_REFUSED
							    : CHECK_CONN_ERROR;
		str_copy(p->conn_error, 160, uv_strerror(status));
		probe_finish(p);
		return;
	}
	*p->conn_result = CHECK_CONN_OK;
	if (p->cli != NULL)
		probe_smtp_event(p, smtp_client_start(p->cli));
	else
		probe_mbox_event(p, check_mbox_start(p->mbox));
}

static void
probe_line(struct probe *p, const char *line, size_t n)
{
	if (p->cli != NULL)
		probe_smtp_line(p, line, n);
	else
		probe_mbox_event(p, check_mbox_on_line(p->mbox, line, n));
}

static void
probe_on_data(void *arg, const char *data, size_t len)
{
	struct probe *p = arg;
	p->got_data = true;
	if (p->finished)
		return;
	if (buf_append(&p->lines, data, len) != 0) {
		probe_abort(p, "reply line too long");
		return;
	}
	while (!p->finished) {
		const char *line;
		size_t n, used;
		enum buf_line st = buf_getline(&p->lines, PROBE_LINE_MAX, &line,
					       &n, &used);
		if (st == BUF_NEED_MORE)
			return;
		if (st == BUF_TOO_LONG) {
			buf_reset(&p->lines);
			probe_abort(p, "reply line too long");
			return;
		}
		char *copy = str_ndup(line, n);
		if (copy == NULL) {
			probe_abort(p, "out of memory");
			return;
		}
		buf_consume(&p->lines, used);
		probe_line(p, copy, n);
		free(copy);
	}
}

static void
probe_on_tls(void *arg, int status, const struct tls_result *res)
{
	struct probe *p = arg;
	if (p->finished)
		return;
	check_tls_copy(p->tls, status, res);
	bool ok = status == 0;
	const char *why = res->error;
	if (ok && p->must_verify && !res->verified) {
		/* Never AUTH to a server outbox itself would not trust. */
		ok = false;
		why = res->error[0] ? res->error : "certificate not verified";
	}
	if (p->cli != NULL)
		probe_smtp_event(p, smtp_client_tls_done(p->cli, ok, why));
	else
		probe_mbox_event(p, check_mbox_tls_done(p->mbox, ok, why));
}

static void
probe_on_drain(void *arg)
{
	(void)arg;
}

static void
probe_on_close(void *arg, int status)
{
	struct probe *p = arg;
	char why[160];
	if (p->finished)
		return;
	if (probe_in_greeting(p) && !p->got_data) {
		snprintf(why, sizeof(why), "the server closed the connection "
			 "without a greeting");
	} else {
		snprintf(why, sizeof(why), "the server closed the connection "
			 "(while %s): %s",
			 p->cli ? smtp_client_state_name(p->cli)
				: check_mbox_state_name(p->mbox),
			 uv_strerror(status));
	}
	if (probe_in_tls(p) && p->tls->error[0] == '\0')
		str_copy(p->tls->error, sizeof(p->tls->error), why);
	probe_abort(p, why);
}

static const struct conn_hooks probe_hooks = {
	.on_connect = probe_on_connect,
	.on_data = probe_on_data,
	.on_tls = probe_on_tls,
	.on_drain = probe_on_drain,
	.on_close = probe_on_close,
};

static void
probe_run(struct probe *p, const struct sockaddr *addr)
{
	buf_init(&p->lines, 2 * PROBE_LINE_MAX);
	uv_timer_init(p->ctx->loop, &p->timer);
	p->timer.data = p;
	p->timer_open = true;
	p->connecting = true;
	int r = conn_connect(p->ctx->loop, addr, &probe_hooks, p, &p->conn);
	if (r != 0) {
		p->conn = NULL;
		*p->conn_result = r == UV_ECONNREFUSED ? CHECK_CONN_REFUSED
						       : CHECK_CONN_ERROR;
		str_copy(p->conn_error, 160, uv_strerror(r));
		probe_finish(p);
	} else {
		probe_set_timer(p);
	}
	uv_run(p->ctx->loop, UV_RUN_DEFAULT);
	buf_free(&p->lines);
}

static bool
probe_is_ip(const char *host)
{
	unsigned char tmp[16];
	return strchr(host, ':') != NULL ||
	       uv_inet_pton(AF_INET, host, tmp) == 0;
}

static void
probe_addr_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
	if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, out, size);
	else
		uv_ip4_name((const struct sockaddr_in *)ss, out, size);
}

/* ---- SMTP probe ----------------------------------------------------------------- */

static void
probe_smtp_once(struct check_ctx *ctx, const struct sockaddr_storage *addr,
		const struct check_login *login, bool verify,
		struct check_smtp_obs *o)
{
	struct smtp_client_cfg cfg = {
		.helo = ctx->helo,
		.tls = o->mode == CHECK_TLS_IMPLICIT   ? CLI_TLS_IMPLICIT
		       : o->mode == CHECK_TLS_STARTTLS ? CLI_TLS_STARTTLS
						       : CLI_TLS_NONE,
		.tls_required = false,
		.user = login ? login->user : NULL,
		.password = login ? login->password : NULL,
	};
	struct probe p = {
		.ctx = ctx,
		.tls_host = probe_is_ip(o->host) ? NULL : o->host,
		.conn_result = &o->conn,
		.conn_error = o->conn_error,
		.greeting_timeout = &o->greeting_timeout,
		.tls = &o->tls,
		.smtp = o,
		.must_verify = verify && login != NULL && login->user != NULL,
		.login = login != NULL && login->user != NULL &&
			 login->user[0] != '\0',
	};
	probe_addr_text(addr, o->addr, sizeof(o->addr));
	p.cli = smtp_client_new(&cfg);
	if (p.cli == NULL) {
		o->conn = CHECK_CONN_ERROR;
		str_copy(o->conn_error, sizeof(o->conn_error), "out of memory");
		return;
	}
	probe_run(&p, (const struct sockaddr *)addr);
	smtp_client_free(p.cli);
}

/* Fresh observations for another attempt, keeping who and how. */
static void
probe_smtp_reset(struct check_smtp_obs *o, const char *host, unsigned port,
		 enum check_tls_mode mode, bool verify)
{
	const char *key = o->tls_key, *group = o->group;
	bool auto_port = o->auto_port;
	memset(o, 0, sizeof(*o));
	o->group = group;
	o->host = host;
	o->port = port;
	o->mode = mode;
	o->verify = verify;
	o->tls_key = key;
	o->auto_port = auto_port;
}

/* Connect to each address until one answers at all; returns its index. */
static size_t
probe_smtp_addrs(struct check_ctx *ctx, const struct sockaddr_storage *addrs,
		 size_t n, const struct check_login *login, bool verify,
		 struct check_smtp_obs *o)
{
	for (size_t i = 0; i < n; i++) {
		probe_smtp_reset(o, o->host, o->port, o->mode, verify);
		probe_smtp_once(ctx, &addrs[i], login, verify, o);
		if (o->conn == CHECK_CONN_OK)
			return i;
	}
	return 0;
}

void
check_smtp_port(struct check_ctx *ctx, const char *host, unsigned port,
		enum check_tls_mode mode, const struct check_login *login,
		bool verify, struct check_smtp_obs *obs)
{
	struct sockaddr_storage addrs[CHECK_MAX_ADDRS];
	size_t n = 0;
	probe_smtp_reset(obs, host, port, mode, verify);
	if (check_resolve(ctx, host, port, addrs, CHECK_MAX_ADDRS, &n,
			  obs->conn_error, sizeof(obs->conn_error)) < 0) {
		obs->conn = CHECK_CONN_NO_ADDR;
		return;
	}
	size_t used = probe_smtp_addrs(ctx, addrs, n, login, verify, obs);
	if (obs->conn != CHECK_CONN_OK)
		return;
	/* The wrong kind of port? Look again the other way, no login. */
	bool silent = mode == CHECK_TLS_STARTTLS && obs->greeting_timeout;
	bool garbled = mode == CHECK_TLS_IMPLICIT && obs->tls.tried &&
		       !obs->tls.ok && !obs->tls.cert.seen;
	if (!silent && !garbled)
		return;
	struct check_smtp_obs *again = malloc(sizeof(*again));
	if (again == NULL)
		return;
	*again = *obs;
	probe_smtp_reset(again, host, port,
			 silent ? CHECK_TLS_IMPLICIT : CHECK_TLS_STARTTLS, verify);
	probe_smtp_once(ctx, &addrs[used], NULL, verify, again);
	bool found = silent ? again->tls.ok : again->banner[0] != '\0';
	if (found) {
		/* The second look's facts, with the mismatch as the finding. */
		again->mismatch = silent ? CHECK_MISMATCH_PLAIN_ON_TLS
					 : CHECK_MISMATCH_TLS_ON_PLAIN;
		*obs = *again;
	}
	free(again);
}

/* ---- IMAP / POP3 probe ---------------------------------------------------------- */

static void
probe_mbox_once(struct check_ctx *ctx, const struct sockaddr_storage *addr,
		struct check_mbox_obs *o)
{
	struct check_mbox m;
	check_mbox_init(&m, o, o->mode == CHECK_TLS_IMPLICIT);
	m.plain_only = o->mode == CHECK_TLS_NONE;
	struct probe p = {
		.ctx = ctx,
		.tls_host = probe_is_ip(o->host) ? NULL : o->host,
		.conn_result = &o->conn,
		.conn_error = o->conn_error,
		.greeting_timeout = &o->greeting_timeout,
		.tls = &o->tls,
		.mbox = &m,
	};
	probe_addr_text(addr, o->addr, sizeof(o->addr));
	probe_run(&p, (const struct sockaddr *)addr);
	check_mbox_free(&m);
}

static void
probe_mbox_reset(struct check_mbox_obs *o, const char *host, unsigned port,
		 enum check_mbox_proto proto, enum check_tls_mode mode)
{
	memset(o, 0, sizeof(*o));
	o->host = host;
	o->port = port;
	o->proto = proto;
	o->mode = mode;
}

void
check_mbox_port(struct check_ctx *ctx, const char *host, unsigned port,
		enum check_mbox_proto proto, enum check_tls_mode mode,
		struct check_mbox_obs *obs)
{
	struct sockaddr_storage addrs[CHECK_MAX_ADDRS];
	size_t n = 0;
	probe_mbox_reset(obs, host, port, proto, mode);
	if (check_resolve(ctx, host, port, addrs, CHECK_MAX_ADDRS, &n,
			  obs->conn_error, sizeof(obs->conn_error)) < 0) {
		obs->conn = CHECK_CONN_NO_ADDR;
		return;
	}
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		probe_mbox_reset(obs, host, port, proto, mode);
		probe_mbox_once(ctx, &addrs[i], obs);
		used = i;
		if (obs->conn == CHECK_CONN_OK)
			break;
	}
	if (obs->conn != CHECK_CONN_OK)
		return;
	bool silent = mode == CHECK_TLS_STARTTLS && obs->greeting_timeout;
	bool garbled = mode == CHECK_TLS_IMPLICIT && obs->tls.tried &&
		       !obs->tls.ok && !obs->tls.cert.seen;
	if (!silent && !garbled)
		return;
	struct check_mbox_obs *again = malloc(sizeof(*again));
	if (again == NULL)
		return;
	probe_mbox_reset(again, host, port, proto,
			 silent ? CHECK_TLS_IMPLICIT : CHECK_TLS_STARTTLS);
	probe_mbox_once(ctx, &addrs[used], again);
	if (silent ? again->tls.ok : again->greeting[0] != '\0') {
		again->mismatch = silent ? CHECK_MISMATCH_PLAIN_ON_TLS
					 : CHECK_MISMATCH_TLS_ON_PLAIN;
		again->mode = silent ? CHECK_TLS_IMPLICIT : CHECK_TLS_STARTTLS;
		*obs = *again;
	}
	free(again);
}

void
check_tls_copy(struct check_tls *dst, int status, const struct tls_result *res)
{
	dst->tried = true;
	dst->ok = status == 0;
	str_copy(dst->version, sizeof(dst->version), res->version);
	str_copy(dst->cipher, sizeof(dst->cipher), res->cipher);
	if (status != 0)
		str_copy(dst->error, sizeof(dst->error), res->error);
	struct check_cert *c = &dst->cert;
	c->seen = res->cert_seen;
	c->chain_ok = res->chain_ok;
	c->name_ok = res->name_ok;
	str_copy(c->chain_error, sizeof(c->chain_error), res->chain_error);
	str_copy(c->subject, sizeof(c->subject), res->subject);
	str_copy(c->issuer, sizeof(c->issuer), res->issuer);
	str_copy(c->sans, sizeof(c->sans), res->sans);
	c->not_before = res->not_before;
	c->not_after = res->not_after;
}
