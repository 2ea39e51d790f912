/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The IMAP / POP3 probe machine of `outbox check`, byte by byte: what it
 * sends for each server line, when it asks for TLS, what it records, and
 * how it fails on wrong greetings and unsolicited data.
 */
#include <string.h>

#include "check.h"
#include "outbox/check_mbox.h"

struct run {
	struct check_mbox m;
	struct check_mbox_obs o;
};

static void
run_init(struct run *r, enum check_mbox_proto proto, bool implicit)
{
	memset(r, 0, sizeof(*r));
	r->o.proto = proto;
	check_mbox_init(&r->m, &r->o, implicit);
}

/* Feed one line; return the event and check the bytes sent (NULL: none). */
static enum check_mbox_event
feed(struct run *r, const char *line, const char *want_out)
{
	enum check_mbox_event ev = check_mbox_on_line(&r->m, line, strlen(line));
	char got[256] = "";
	if (r->m.out.len > 0 && r->m.out.len < sizeof(got))
		memcpy(got, r->m.out.data, r->m.out.len);
	CHECK_STR_EQ(want_out ? want_out : "", got);
	buf_reset(&r->m.out);
	return ev;
}

static void
test_imap_starttls(void)
{
	struct run r;
	run_init(&r, CHECK_IMAP, false);
	CHECK_EQ(MBOX_WAIT, check_mbox_start(&r.m));
	CHECK_EQ(MBOX_WAIT, feed(&r, "* OK [CAPABILITY IMAP4rev1] ready",
				 "A1 CAPABILITY\r\n"));
	CHECK_STR_EQ("* OK [CAPABILITY IMAP4rev1] ready", r.o.greeting);
	CHECK_EQ(MBOX_WAIT, feed(&r, "* CAPABILITY IMAP4rev1 STARTTLS "
				     "LOGINDISABLED", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "* OK something else", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "A1 OK done", "A2 STARTTLS\r\n"));
	CHECK(r.o.starttls_offered);
	CHECK_STR_EQ("IMAP4rev1\nSTARTTLS\nLOGINDISABLED", r.o.caps);
	CHECK_EQ(MBOX_NEED_TLS, feed(&r, "A2 OK Begin TLS", NULL));
	/* A line while the handshake runs is never acted upon. */
	struct run bad = r;
	buf_init(&bad.m.out, 64);
	bad.m.obs = &bad.o;
	CHECK_EQ(MBOX_FAIL, feed(&bad, "A3 OK injected", NULL));
	CHECK_STR_EQ("unexpected data from server: A3 OK injected",
		     bad.o.failure);
	check_mbox_free(&bad.m);

	CHECK_EQ(MBOX_WAIT, check_mbox_tls_done(&r.m, true, NULL));
	CHECK_MEM_EQ("A3 CAPABILITY\r\n", r.m.out.data, r.m.out.len);
	buf_reset(&r.m.out);
	CHECK_EQ(MBOX_WAIT, feed(&r, "* CAPABILITY IMAP4rev1 AUTH=PLAIN", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "A3 OK done", "A4 LOGOUT\r\n"));
	CHECK_STR_EQ("IMAP4rev1\nAUTH=PLAIN", r.o.caps_tls);
	CHECK(r.o.caps_tls_seen);
	CHECK_EQ(MBOX_WAIT, feed(&r, "* BYE logging out", NULL));
	CHECK_EQ(MBOX_DONE, feed(&r, "A4 OK bye", NULL));
	CHECK_STR_EQ("", r.o.failure);
	check_mbox_free(&r.m);
}

static void
test_imap_implicit(void)
{
	struct run r;
	run_init(&r, CHECK_IMAP, true);
	CHECK_EQ(MBOX_NEED_TLS, check_mbox_start(&r.m));
	CHECK_EQ(0, r.m.out.len);
	CHECK_EQ(MBOX_WAIT, check_mbox_tls_done(&r.m, true, NULL));
	CHECK_EQ(0, r.m.out.len);
	CHECK_EQ(MBOX_WAIT, feed(&r, "* PREAUTH hi", "A1 CAPABILITY\r\n"));
	CHECK_EQ(MBOX_WAIT, feed(&r, "* CAPABILITY IMAP4rev1 STARTTLS", NULL));
	/* Inside TLS already: no STARTTLS, straight to LOGOUT. */
	CHECK_EQ(MBOX_WAIT, feed(&r, "A1 OK", "A2 LOGOUT\r\n"));
	CHECK_STR_EQ("IMAP4rev1\nSTARTTLS", r.o.caps);
	/* The server closing instead of answering LOGOUT is fine. */
	CHECK_EQ(MBOX_DONE, check_mbox_abort(&r.m, "closed"));
	check_mbox_free(&r.m);

	/* A failed handshake. */
	run_init(&r, CHECK_IMAP, true);
	CHECK_EQ(MBOX_NEED_TLS, check_mbox_start(&r.m));
	CHECK_EQ(MBOX_FAIL, check_mbox_tls_done(&r.m, false, "bad record"));
	CHECK_STR_EQ("the TLS handshake failed: bad record", r.o.failure);
	CHECK_EQ(MBOX_FAIL, feed(&r, "* OK", NULL));
	check_mbox_free(&r.m);
}

static void
test_imap_wrong(void)
{
	struct run r;
	run_init(&r, CHECK_IMAP, false);
	check_mbox_start(&r.m);
	CHECK_EQ(MBOX_FAIL, feed(&r, "+OK POP3 ready", NULL));
	CHECK_STR_EQ("this is a POP3 server, not IMAP: +OK POP3 ready",
		     r.o.failure);
	check_mbox_free(&r.m);

	run_init(&r, CHECK_IMAP, false);
	check_mbox_start(&r.m);
	CHECK_EQ(MBOX_FAIL, feed(&r, "220 smtp.example ESMTP", NULL));
	CHECK_STR_EQ("this is an SMTP server: 220 smtp.example ESMTP",
		     r.o.failure);
	check_mbox_free(&r.m);

	run_init(&r, CHECK_IMAP, false);
	check_mbox_start(&r.m);
	CHECK_EQ(MBOX_FAIL, feed(&r, "* BYE too many connections", NULL));
	CHECK_STR_EQ("the server refused the connection: * BYE too many "
		     "connections", r.o.failure);
	check_mbox_free(&r.m);

	/* No STARTTLS offered: the report says so; the probe just leaves. */
	run_init(&r, CHECK_IMAP, false);
	check_mbox_start(&r.m);
	feed(&r, "* OK hi", "A1 CAPABILITY\r\n");
	feed(&r, "* CAPABILITY IMAP4rev1", NULL);
	CHECK_EQ(MBOX_WAIT, feed(&r, "A1 OK", "A2 LOGOUT\r\n"));
	CHECK(!r.o.starttls_offered);
	/* STARTTLS refused. */
	check_mbox_free(&r.m);
	run_init(&r, CHECK_IMAP, false);
	check_mbox_start(&r.m);
	feed(&r, "* OK hi", "A1 CAPABILITY\r\n");
	feed(&r, "* CAPABILITY IMAP4rev1 STARTTLS", NULL);
	feed(&r, "A1 OK", "A2 STARTTLS\r\n");
	CHECK_EQ(MBOX_FAIL, feed(&r, "A2 NO not now", NULL));
	CHECK_STR_EQ("STARTTLS was refused: A2 NO not now", r.o.failure);
	check_mbox_free(&r.m);

	/* --tls none: STARTTLS is seen and reported, never sent. */
	run_init(&r, CHECK_IMAP, false);
	r.m.plain_only = true;
	check_mbox_start(&r.m);
	feed(&r, "* OK hi", "A1 CAPABILITY\r\n");
	feed(&r, "* CAPABILITY IMAP4rev1 STARTTLS", NULL);
	CHECK_EQ(MBOX_WAIT, feed(&r, "A1 OK", "A2 LOGOUT\r\n"));
	CHECK(r.o.starttls_offered);
	check_mbox_free(&r.m);
}

static void
test_pop3(void)
{
	struct run r;
	run_init(&r, CHECK_POP3, false);
	CHECK_EQ(MBOX_WAIT, check_mbox_start(&r.m));
	CHECK_EQ(MBOX_WAIT, feed(&r, "+OK Dovecot ready.", "CAPA\r\n"));
	CHECK_EQ(MBOX_WAIT, feed(&r, "+OK", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "TOP", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "STLS", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, "..dotted", NULL));
	CHECK_EQ(MBOX_WAIT, feed(&r, ".", "STLS\r\n"));
	CHECK_STR_EQ("TOP\nSTLS\n.dotted", r.o.caps);
	CHECK_EQ(MBOX_NEED_TLS, feed(&r, "+OK Begin TLS", NULL));
	CHECK_EQ(MBOX_WAIT, check_mbox_tls_done(&r.m, true, NULL));
	CHECK_MEM_EQ("CAPA\r\n", r.m.out.data, r.m.out.len);
	buf_reset(&r.m.out);
	feed(&r, "+OK", NULL);
	feed(&r, "SASL PLAIN", NULL);
	CHECK_EQ(MBOX_WAIT, feed(&r, ".", "QUIT\r\n"));
	CHECK_STR_EQ("SASL PLAIN", r.o.caps_tls);
	CHECK_EQ(MBOX_DONE, feed(&r, "+OK bye", NULL));
	CHECK_STR_EQ("done", check_mbox_state_name(&r.m));
	check_mbox_free(&r.m);

	/* An RFC 1939 server without CAPA. */
	run_init(&r, CHECK_POP3, false);
	check_mbox_start(&r.m);
	feed(&r, "+OK old server", "CAPA\r\n");
	CHECK_EQ(MBOX_WAIT, feed(&r, "-ERR unknown command", "QUIT\r\n"));
	CHECK(!r.o.starttls_offered);
	check_mbox_free(&r.m);

	run_init(&r, CHECK_POP3, false);
	check_mbox_start(&r.m);
	CHECK_EQ(MBOX_FAIL, feed(&r, "* OK IMAP4rev1 ready", NULL));
	CHECK_STR_EQ("this is an IMAP server, not POP3: * OK IMAP4rev1 ready",
		     r.o.failure);
	check_mbox_free(&r.m);

	/* A timeout in the middle is a failure with the glue's words. */
	run_init(&r, CHECK_POP3, false);
	check_mbox_start(&r.m);
	feed(&r, "+OK", "CAPA\r\n");
	CHECK_EQ(MBOX_FAIL, check_mbox_abort(&r.m, "timed out"));
	CHECK_STR_EQ("timed out", r.o.failure);
	check_mbox_free(&r.m);
}

int
main(void)
{
	test_imap_starttls();
	test_imap_implicit();
	test_imap_wrong();
	test_pop3();
	CHECK_DONE();
}
