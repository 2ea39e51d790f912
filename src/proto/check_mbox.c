/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The IMAP / POP3 probe of `outbox check imap|pop3` as a pure state
 *	machine (see include/outbox/check_mbox.h). It reads the greeting,
 *	asks for capabilities, upgrades with STARTTLS / STLS when offered,
 *	asks again inside TLS and says goodbye. It never logs in.
 *
 *	Invariants: check_mbox_enter() is the only writer of m->state; a
 *	line when none is due fails the probe (nothing the server sends
 *	ahead of the TLS switch is acted upon); capabilities from before
 *	TLS are kept apart from those inside it.
 */
#include <stdio.h>
#include <string.h>

#include "outbox/check_mbox.h"
#include "outbox/str.h"

#define MBOX_OUT_MAX 1024

static const char *const mbox_state_names[] = {
	[MB_INIT] = "init",         [MB_TLS] = "tls",
	[MB_GREETING] = "greeting", [MB_CAPA] = "capability",
	[MB_CAPA_LIST] = "capa-list", [MB_STARTTLS] = "starttls",
	[MB_QUIT] = "quit",         [MB_DONE] = "done",
	[MB_FAILED] = "failed",
};

const char *
check_mbox_state_name(const struct check_mbox *m)
{
	return mbox_state_names[m->state];
}

static void
check_mbox_enter(struct check_mbox *m, enum check_mbox_state s)
{
	m->state = s;
}

void
check_mbox_init(struct check_mbox *m, struct check_mbox_obs *obs,
		bool implicit_tls)
{
	memset(m, 0, sizeof(*m));
	m->obs = obs;
	m->proto = obs->proto;
	m->implicit = implicit_tls;
	buf_init(&m->out, MBOX_OUT_MAX);
}

void
check_mbox_free(struct check_mbox *m)
{
	buf_free(&m->out);
}

/* what: the reason; arg: the peer's line or detail, sanitized. */
static enum check_mbox_event
mbox_fail(struct check_mbox *m, const char *what, const char *arg)
{
	char clean[256];
	str_sanitize(clean, sizeof(clean), arg ? arg : "", arg ? strlen(arg) : 0);
	snprintf(m->obs->failure, sizeof(m->obs->failure), "%s%s%s", what,
		 clean[0] ? ": " : "", clean);
	check_mbox_enter(m, MB_FAILED);
	return MBOX_FAIL;
}

/* IMAP commands carry a tag: A1, A2, ... */
static enum check_mbox_event
mbox_send(struct check_mbox *m, const char *cmd, enum check_mbox_state next)
{
	int rc;
	if (m->proto == CHECK_IMAP)
		rc = buf_printf(&m->out, "A%u %s\r\n", ++m->tag, cmd);
	else
		rc = buf_printf(&m->out, "%s\r\n", cmd);
	if (rc < 0)
		return mbox_fail(m, "internal error", "output full");
	check_mbox_enter(m, next);
	return MBOX_WAIT;
}

enum check_mbox_event
check_mbox_start(struct check_mbox *m)
{
	if (m->implicit) {
		check_mbox_enter(m, MB_TLS);
		return MBOX_NEED_TLS;
	}
	check_mbox_enter(m, MB_GREETING);
	return MBOX_WAIT;
}

static char *
mbox_caps(struct check_mbox *m)
{
	return m->tls_active && !m->implicit ? m->obs->caps_tls : m->obs->caps;
}

/* IMAP capabilities are one line of atoms: keep one per caps line. */
static void
mbox_imap_caps(struct check_mbox *m, const char *p, size_t n)
{
	char *caps = mbox_caps(m);
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		size_t k = i;
		while (k < n && p[k] != ' ' && p[k] != ']')
			k++;
		if (k > i)
			(void)check_caps_add(caps, CHECK_CAPS_MAX, p + i, k - i);
		if (k < n && p[k] == ']')
			break;
		i = k;
	}
	if (m->tls_active)
		m->obs->caps_tls_seen = true;
}

static bool
mbox_has_starttls(const struct check_mbox *m)
{
	char arg[8];
	const char *kw = m->proto == CHECK_IMAP ? "STARTTLS" : "STLS";
	return check_caps_find(m->obs->caps, kw, arg, sizeof(arg)) != NULL;
}

/* After the capabilities: upgrade, or leave. */
static enum check_mbox_event
mbox_after_caps(struct check_mbox *m)
{
	if (!m->tls_active) {
		m->obs->starttls_offered = mbox_has_starttls(m);
		if (m->obs->starttls_offered && !m->plain_only)
			return mbox_send(m, m->proto == CHECK_IMAP ? "STARTTLS"
								  : "STLS",
					 MB_STARTTLS);
	}
	return mbox_send(m, m->proto == CHECK_IMAP ? "LOGOUT" : "QUIT",
			 MB_QUIT);
}

static bool
line_is(const char *line, size_t len, const char *prefix)
{
	return str_prefix_ci(line, len, prefix);
}

static void
mbox_keep_greeting(struct check_mbox *m, const char *line, size_t len)
{
	str_sanitize(m->obs->greeting, sizeof(m->obs->greeting), line, len);
}

/* A greeting that is not this protocol: say which one it is. */
static enum check_mbox_event
mbox_wrong_greeting(struct check_mbox *m, const char *line)
{
	if (line_is(line, strlen(line), "+OK"))
		return mbox_fail(m, "this is a POP3 server, not IMAP", line);
	if (line_is(line, strlen(line), "* OK"))
		return mbox_fail(m, "this is an IMAP server, not POP3", line);
	if (strlen(line) >= 4 && line[0] >= '2' && line[0] <= '5' &&
	    line[3] == ' ')
		return mbox_fail(m, "this is an SMTP server", line);
	return mbox_fail(m, "unexpected greeting", line);
}

static enum check_mbox_event
mbox_imap_greeting(struct check_mbox *m, const char *line, size_t len)
{
	if (line_is(line, len, "* BYE"))
		return mbox_fail(m, "the server refused the connection",
				 line);
	if (!line_is(line, len, "* OK") && !line_is(line, len, "* PREAUTH"))
		return mbox_wrong_greeting(m, line);
	if (!m->tls_active || m->implicit)
		mbox_keep_greeting(m, line, len);
	return mbox_send(m, "CAPABILITY", MB_CAPA);
}

static enum check_mbox_event
mbox_imap_line(struct check_mbox *m, const char *line, size_t len)
{
	char tag[16];
	int tn = snprintf(tag, sizeof(tag), "A%u ", m->tag);
	bool tagged = tn > 0 && (size_t)tn <= len &&
		      memcmp(line, tag, (size_t)tn) == 0;
	switch (m->state) {
	case MB_GREETING:
		return mbox_imap_greeting(m, line, len);
	case MB_CAPA:
		if (line_is(line, len, "* CAPABILITY ")) {
			mbox_imap_caps(m, line + 13, len - 13);
			return MBOX_WAIT;
		}
		if (line_is(line, len, "* "))
			return MBOX_WAIT; /* other untagged data */
		if (tagged && line_is(line + tn, len - tn, "OK"))
			return mbox_after_caps(m);
		return mbox_fail(m, "CAPABILITY failed", line);
	case MB_STARTTLS:
		if (tagged && line_is(line + tn, len - tn, "OK")) {
			check_mbox_enter(m, MB_TLS);
			return MBOX_NEED_TLS;
		}
		if (line_is(line, len, "* "))
			return MBOX_WAIT;
		return mbox_fail(m, "STARTTLS was refused", line);
	case MB_QUIT:
		if (tagged || line_is(line, len, "* BYE"))
			check_mbox_enter(m, tagged ? MB_DONE : MB_QUIT);
		return m->state == MB_DONE ? MBOX_DONE : MBOX_WAIT;
	default:
		return mbox_fail(m, "unexpected data from server", line);
	}
}

static enum check_mbox_event
mbox_pop3_line(struct check_mbox *m, const char *line, size_t len)
{
	switch (m->state) {
	case MB_GREETING:
		if (line_is(line, len, "-ERR"))
			return mbox_fail(m, "the server refused the "
					    "connection", line);
		if (!line_is(line, len, "+OK"))
			return mbox_wrong_greeting(m, line);
		if (!m->tls_active || m->implicit)
			mbox_keep_greeting(m, line, len);
		return mbox_send(m, "CAPA", MB_CAPA);
	case MB_CAPA:
		/* -ERR: no CAPA (RFC 1939 server): no capabilities known. */
		if (line_is(line, len, "+OK")) {
			check_mbox_enter(m, MB_CAPA_LIST);
			return MBOX_WAIT;
		}
		return mbox_after_caps(m);
	case MB_CAPA_LIST:
		if (len == 1 && line[0] == '.') {
			if (m->tls_active)
				m->obs->caps_tls_seen = true;
			return mbox_after_caps(m);
		}
		/* RFC 1939 byte-stuffing of a leading dot. */
		if (len > 1 && line[0] == '.')
			line++, len--;
		(void)check_caps_add(mbox_caps(m), CHECK_CAPS_MAX, line, len);
		return MBOX_WAIT;
	case MB_STARTTLS:
		if (line_is(line, len, "+OK")) {
			check_mbox_enter(m, MB_TLS);
			return MBOX_NEED_TLS;
		}
		return mbox_fail(m, "STLS was refused", line);
	case MB_QUIT:
		check_mbox_enter(m, MB_DONE);
		return MBOX_DONE;
	default:
		return mbox_fail(m, "unexpected data from server", line);
	}
}

enum check_mbox_event
check_mbox_on_line(struct check_mbox *m, const char *line, size_t len)
{
	char copy[CHECK_TEXT_MAX];
	if (m->state == MB_FAILED)
		return MBOX_FAIL;
	if (m->state == MB_DONE)
		return MBOX_DONE;
	/* Work on a bounded, NUL-terminated copy: the glue's line is not. */
	if (len >= sizeof(copy))
		len = sizeof(copy) - 1;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (m->state == MB_INIT || m->state == MB_TLS)
		return mbox_fail(m, "unexpected data from server", copy);
	if (m->proto == CHECK_IMAP)
		return mbox_imap_line(m, copy, len);
	return mbox_pop3_line(m, copy, len);
}

enum check_mbox_event
check_mbox_tls_done(struct check_mbox *m, bool ok, const char *text)
{
	if (m->state != MB_TLS)
		return mbox_fail(m, "internal error", "tls_done");
	if (!ok)
		return mbox_fail(m, "the TLS handshake failed", text);
	m->tls_active = true;
	if (m->implicit) {
		check_mbox_enter(m, MB_GREETING);
		return MBOX_WAIT;
	}
	/* RFC 2595 / 9051: ask again, the old answer may have been forged. */
	return mbox_send(m, m->proto == CHECK_IMAP ? "CAPABILITY" : "CAPA",
			 MB_CAPA);
}

enum check_mbox_event
check_mbox_abort(struct check_mbox *m, const char *why)
{
	if (m->state == MB_QUIT || m->state == MB_DONE) {
		check_mbox_enter(m, MB_DONE);
		return MBOX_DONE;
	}
	if (m->state == MB_FAILED)
		return MBOX_FAIL;
	return mbox_fail(m, why, NULL);
}
