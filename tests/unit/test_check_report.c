/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of `outbox check`: the report model rendered as text and
 * JSON byte by byte, the EHLO keyword helpers, and the advice rules (port
 * 25 blocked, TLS on the wrong kind of port, certificate problems, AUTH
 * mechanism mismatch, null MX, NXDOMAIN, implicit MX).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/check.h"
#include "outbox/str.h"

#define NOW 1800000000LL /* 2027-01-15 */
#define DAY 86400LL

static char *
render(const struct check_report *r, bool json)
{
	static char text[65536];
	struct buf b;
	buf_init(&b, sizeof(text) - 1);
	int rc = json ? check_report_json(r, &b) : check_report_text(r, &b);
	CHECK_EQ(0, rc);
	memcpy(text, b.data, b.len);
	text[b.len] = '\0';
	buf_free(&b);
	return text;
}

/* The step named name in group (or any group if NULL), or NULL. */
static const struct check_step *
step(const struct check_report *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->steps[i].name, name) == 0)
			return &r->steps[i];
	return NULL;
}

static void
test_text_and_json(void)
{
	struct check_report r;
	check_report_init(&r, "smtp", "mail.example:587");
	struct check_step *s = check_report_add(&r, "port 587", "connect",
						CHK_OK, "connected to %s",
						"192.0.2.1");
	check_step_value(s, "192.0.2.1");
	s = check_report_add(&r, "port 587", "auth", CHK_FAIL,
			     "offers \"CRAM-MD5\"\x01\n");
	check_step_fix(s, "use \\PLAIN");
	check_report_add(&r, "port 25", "connect", CHK_WARN, "slow");
	CHECK(!check_report_ok(&r));
	CHECK_EQ(1, check_report_count(&r, CHK_FAIL));
	CHECK_STR_EQ("outbox check smtp mail.example:587\n"
		     "port 587:\n"
		     "  [ ok ] connect: connected to 192.0.2.1\n"
		     "  [FAIL] auth: offers \"CRAM-MD5\"??\n"
		     "         fix: use \\PLAIN\n"
		     "port 25:\n"
		     "  [warn] connect: slow\n"
		     "result: 1 problem, 1 warning\n",
		     render(&r, false));
	CHECK_STR_EQ("{\"command\":\"smtp\",\"target\":\"mail.example:587\","
		     "\"ok\":false,\"problems\":1,\"warnings\":1,"
		     "\"complete\":true,\"steps\":["
		     "{\"group\":\"port 587\",\"step\":\"connect\",\"status\":"
		     "\"ok\",\"value\":\"192.0.2.1\",\"text\":\"connected to "
		     "192.0.2.1\",\"fix\":\"\"},"
		     "{\"group\":\"port 587\",\"step\":\"auth\",\"status\":"
		     "\"fail\",\"value\":\"\",\"text\":\"offers \\\"CRAM-MD5\\\"??"
		     "\",\"fix\":\"use \\\\PLAIN\"},"
		     "{\"group\":\"port 25\",\"step\":\"connect\",\"status\":"
		     "\"warn\",\"value\":\"\",\"text\":\"slow\",\"fix\":\"\"}]}\n",
		     render(&r, true));
	check_report_free(&r);

	check_report_init(&r, "mx", "a.test");
	check_report_add(&r, "", "dns", CHK_INFO, "asked");
	CHECK(check_report_ok(&r));
	CHECK_STR_EQ("outbox check mx a.test\n"
		     "  [info] dns: asked\n"
		     "result: everything checked is fine\n",
		     render(&r, false));
	check_report_free(&r);
	/* NULL steps (out of memory) are accepted by the setters. */
	check_step_fix(NULL, "x");
	check_step_value(NULL, "x");
}

static void
test_caps(void)
{
	char caps[64] = "", arg[32];
	CHECK_EQ(0, check_caps_add(caps, sizeof(caps), "SIZE 1000", 9));
	CHECK_EQ(0, check_caps_add(caps, sizeof(caps), "AUTH=LOGIN", 10));
	CHECK_EQ(0, check_caps_add(caps, sizeof(caps), "STARTTLS", 8));
	CHECK_STR_EQ("SIZE 1000\nAUTH=LOGIN\nSTARTTLS", caps);
	CHECK(check_caps_find(caps, "size", arg, sizeof(arg)) != NULL);
	CHECK_STR_EQ("1000", arg);
	CHECK(check_caps_find(caps, "AUTH", arg, sizeof(arg)) != NULL);
	CHECK_STR_EQ("LOGIN", arg);
	CHECK(check_caps_find(caps, "STARTTLS", arg, sizeof(arg)) != NULL);
	CHECK_STR_EQ("", arg);
	CHECK(check_caps_find(caps, "START", arg, sizeof(arg)) == NULL);
	CHECK(check_caps_find(caps, "PIPELINING", arg, sizeof(arg)) == NULL);
	/* Full: refused, nothing half-written. */
	CHECK_EQ(-1, check_caps_add(caps, sizeof(caps),
				    "01234567890123456789012345678901234", 35));
	CHECK_STR_EQ("SIZE 1000\nAUTH=LOGIN\nSTARTTLS", caps);
}

static void
obs_init(struct check_smtp_obs *o, unsigned port, enum check_tls_mode mode)
{
	memset(o, 0, sizeof(*o));
	o->host = "mail.example";
	o->port = port;
	o->mode = mode;
	o->verify = true;
	o->tls_key = "[relay] tls";
	o->conn = CHECK_CONN_OK;
	str_copy(o->addr, sizeof(o->addr), "192.0.2.1");
}

static void
good_cert(struct check_cert *c)
{
	memset(c, 0, sizeof(*c));
	c->seen = c->chain_ok = c->name_ok = true;
	str_copy(c->subject, sizeof(c->subject), "/CN=mail.example");
	str_copy(c->issuer, sizeof(c->issuer), "/CN=Test CA");
	str_copy(c->sans, sizeof(c->sans), "DNS:mail.example");
	c->not_before = NOW - 10 * DAY;
	c->not_after = NOW + 80 * DAY;
}

static void
test_port25_timeout(void)
{
	struct check_smtp_obs o;
	struct check_report r;
	obs_init(&o, 25, CHECK_TLS_STARTTLS);
	o.conn = CHECK_CONN_TIMEOUT;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	CHECK_EQ(1, r.n);
	CHECK_STR_EQ("connect", r.steps[0].name);
	CHECK_EQ(CHK_FAIL, r.steps[0].status);
	CHECK_STR_EQ("timeout", r.steps[0].value);
	CHECK_STR_EQ("outbound port 25 is probably blocked by your provider; "
		     "use 587 with STARTTLS or 465 with TLS",
		     r.steps[0].fix);
	check_report_free(&r);

	/* Other ports: no talk of providers blocking. */
	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	o.conn = CHECK_CONN_TIMEOUT;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	CHECK(strstr(r.steps[0].fix, "port 25") == NULL);
	check_report_free(&r);

	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	o.conn = CHECK_CONN_REFUSED;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	CHECK_STR_EQ("connection refused by 192.0.2.1: nothing listens on "
		     "port 587", r.steps[0].text);
	CHECK_STR_EQ("refused", r.steps[0].value);
	check_report_free(&r);
}

static void
test_mismatch(void)
{
	struct check_smtp_obs o;
	struct check_report r;
	/* Implicit TLS tried on a STARTTLS port. */
	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	o.mismatch = CHECK_MISMATCH_TLS_ON_PLAIN;
	str_copy(o.banner, sizeof(o.banner), "220 mail.example ESMTP");
	o.banner_code = 220;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	const struct check_step *s = step(&r, "mismatch");
	CHECK(s != NULL);
	CHECK_EQ(CHK_FAIL, s->status);
	CHECK_STR_EQ("tls-on-plain-port", s->value);
	CHECK_STR_EQ("set [relay] tls = starttls (implicit TLS is usually "
		     "port 465, STARTTLS port 587)", s->fix);
	CHECK(strstr(s->text, "wrong version number") != NULL);
	check_report_free(&r);

	/* Plaintext tried on an implicit-TLS port. */
	obs_init(&o, 2465, CHECK_TLS_IMPLICIT);
	o.mismatch = CHECK_MISMATCH_PLAIN_ON_TLS;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	s = step(&r, "mismatch");
	CHECK(s != NULL);
	CHECK_STR_EQ("plain-on-tls-port", s->value);
	CHECK_STR_EQ("set [relay] tls = implicit (or use port 465 with "
		     "[relay] tls = auto)", s->fix);
	check_report_free(&r);

	/* Silence without a TLS answer either: a plain greeting timeout. */
	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	o.greeting_timeout = true;
	check_report_init(&r, "smtp", "mail.example");
	check_smtp_report(&o, NOW, &r);
	s = step(&r, "banner");
	CHECK(s != NULL);
	CHECK_EQ(CHK_FAIL, s->status);
	CHECK(step(&r, "mismatch") == NULL);
	check_report_free(&r);
}

static void
test_happy_smtp(void)
{
	struct check_smtp_obs o;
	struct check_report r;
	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	str_copy(o.banner, sizeof(o.banner), "220 mail.example ESMTP");
	o.banner_code = 220;
	str_copy(o.ehlo, sizeof(o.ehlo), "PIPELINING\nSTARTTLS\nSIZE 1000");
	str_copy(o.ehlo_tls, sizeof(o.ehlo_tls),
		 "PIPELINING\nAUTH PLAIN LOGIN\nSIZE 10485760");
	o.ehlo_tls_seen = true;
	o.tls.tried = o.tls.ok = true;
	str_copy(o.tls.version, sizeof(o.tls.version), "TLSv1.3");
	str_copy(o.tls.cipher, sizeof(o.tls.cipher), "TLS13-AES128-GCM-SHA256");
	good_cert(&o.tls.cert);
	check_report_init(&r, "smtp", "mail.example:587");
	check_smtp_report(&o, NOW, &r);
	CHECK(check_report_ok(&r));
	CHECK_EQ(0, check_report_count(&r, CHK_WARN));
	CHECK_STR_EQ("outbox check smtp mail.example:587\n"
		     "port 587:\n"
		     "  [ ok ] connect: connected to 192.0.2.1 port 587\n"
		     "  [ ok ] banner: 220 mail.example ESMTP\n"
		     "  [info] ehlo: capabilities before TLS: PIPELINING, "
		     "STARTTLS, SIZE 1000\n"
		     "  [ ok ] starttls: STARTTLS is offered\n"
		     "  [ ok ] tls: TLSv1.3 with cipher TLS13-AES128-GCM-SHA256\n"
		     "  [info] certificate: subject /CN=mail.example, issued "
		     "by /CN=Test CA\n"
		     "  [info] names: DNS:mail.example\n"
		     "  [ ok ] expiry: valid until 2027-04-05 08:00:00 UTC (80 "
		     "days left)\n"
		     "  [ ok ] chain: the chain is verified against the trust "
		     "store\n"
		     "  [ ok ] hostname: the certificate is valid for "
		     "mail.example\n"
		     "  [info] ehlo-tls: capabilities after TLS: PIPELINING, "
		     "AUTH PLAIN LOGIN, SIZE 10485760\n"
		     "  [ ok ] auth: AUTH mechanisms after TLS: PLAIN LOGIN\n"
		     "  [info] size: messages up to 10485760 bytes (10.0 MiB)\n"
		     "result: everything checked is fine\n",
		     render(&r, false));
	check_report_free(&r);

	/* No PLAIN or LOGIN after TLS: a mechanism mismatch. */
	str_copy(o.ehlo_tls, sizeof(o.ehlo_tls), "AUTH CRAM-MD5 XOAUTH2");
	check_report_init(&r, "smtp", "mail.example:587");
	check_smtp_report(&o, NOW, &r);
	const struct check_step *s = step(&r, "auth");
	CHECK_EQ(CHK_FAIL, s->status);
	CHECK_STR_EQ("CRAM-MD5 XOAUTH2", s->value);
	CHECK(strstr(s->fix, "PLAIN or LOGIN") != NULL);
	check_report_free(&r);

	/* No STARTTLS on 587: a failure; on 25 a warning. */
	str_copy(o.ehlo, sizeof(o.ehlo), "PIPELINING\nAUTH PLAIN");
	o.tls.tried = o.tls.ok = o.ehlo_tls_seen = false;
	o.ehlo_tls[0] = '\0';
	check_report_init(&r, "smtp", "mail.example:587");
	check_smtp_report(&o, NOW, &r);
	CHECK_EQ(CHK_FAIL, step(&r, "starttls")->status);
	CHECK_EQ(CHK_WARN, step(&r, "auth-plaintext")->status);
	check_report_free(&r);
	o.port = 25;
	check_report_init(&r, "smtp", "mail.example:25");
	check_smtp_report(&o, NOW, &r);
	CHECK_EQ(CHK_WARN, step(&r, "starttls")->status);
	check_report_free(&r);
}

static void
test_login(void)
{
	struct check_smtp_obs o;
	struct check_report r;
	obs_init(&o, 587, CHECK_TLS_STARTTLS);
	o.auth_tried = true;
	str_copy(o.auth_error, sizeof(o.auth_error),
		 "535 authentication failed: 5.7.8 bad credentials");
	check_report_init(&r, "relay", "x.ini");
	check_smtp_report(&o, NOW, &r);
	const struct check_step *s = step(&r, "login");
	CHECK_EQ(CHK_FAIL, s->status);
	CHECK_STR_EQ("535 authentication failed: 5.7.8 bad credentials",
		     s->text);
	CHECK(strstr(s->fix, "password_file") != NULL);
	check_report_free(&r);
	o.auth_ok = true;
	check_report_init(&r, "relay", "x.ini");
	check_smtp_report(&o, NOW, &r);
	CHECK_EQ(CHK_OK, step(&r, "login")->status);
	check_report_free(&r);
}

static void
test_certs(void)
{
	struct check_cert c;
	struct check_report r;
	/* Expired. */
	good_cert(&c);
	c.not_after = NOW - 3 * DAY;
	c.chain_ok = false;
	str_copy(c.chain_error, sizeof(c.chain_error),
		 "certificate has expired");
	check_report_init(&r, "smtp", "h");
	check_cert_report("g", &c, "mail.example", true, NOW, &r);
	CHECK_EQ(CHK_FAIL, step(&r, "expiry")->status);
	CHECK(strstr(step(&r, "expiry")->text, "(3 days ago)") != NULL);
	CHECK_EQ(CHK_FAIL, step(&r, "chain")->status);
	CHECK_STR_EQ("see expiry above", step(&r, "chain")->fix);
	CHECK_EQ(CHK_OK, step(&r, "hostname")->status);
	check_report_free(&r);
	/* Untrusted. */
	good_cert(&c);
	c.chain_ok = false;
	str_copy(c.chain_error, sizeof(c.chain_error),
		 "unable to get local issuer certificate");
	check_report_init(&r, "smtp", "h");
	check_cert_report("g", &c, "mail.example", true, NOW, &r);
	CHECK_STR_EQ("the chain is not verified: unable to get local issuer "
		     "certificate", step(&r, "chain")->text);
	CHECK(strstr(step(&r, "chain")->fix, "ca_file") != NULL);
	CHECK_EQ(CHK_OK, step(&r, "expiry")->status);
	check_report_free(&r);
	/* Wrong name; opportunistic (port 25) makes it a warning. */
	good_cert(&c);
	c.name_ok = false;
	str_copy(c.sans, sizeof(c.sans), "DNS:other.example");
	check_report_init(&r, "smtp", "h");
	check_cert_report("g", &c, "mail.example", false, NOW, &r);
	CHECK_EQ(CHK_WARN, step(&r, "hostname")->status);
	CHECK_STR_EQ("the certificate is not for mail.example (it names "
		     "DNS:other.example)", step(&r, "hostname")->text);
	CHECK(check_report_ok(&r));
	check_report_free(&r);
	/* Expiring soon. */
	good_cert(&c);
	c.not_after = NOW + 5 * DAY;
	check_report_init(&r, "smtp", "h");
	check_cert_report("g", &c, "mail.example", true, NOW, &r);
	CHECK_EQ(CHK_WARN, step(&r, "expiry")->status);
	check_report_free(&r);
}

static void
mx_obs(struct check_mx_obs *o, enum mx_status st)
{
	memset(o, 0, sizeof(*o));
	o->domain = "a.test";
	o->status = st;
	o->port = 25;
	str_copy(o->servers, sizeof(o->servers), "127.0.0.1:53");
}

static void
test_mx(void)
{
	struct check_mx_obs o;
	struct check_report r;
	mx_obs(&o, MX_OK);
	o.nhosts = 2;
	str_copy(o.host[0].name, sizeof(o.host[0].name), "mx1.a.test");
	o.host[0].pref = 10;
	str_copy(o.host[0].addrs[0], 64, "192.0.2.1");
	o.host[0].naddrs = 1;
	str_copy(o.host[1].name, sizeof(o.host[1].name), "mx2.a.test");
	o.host[1].pref = 20;
	str_copy(o.host[1].error, sizeof(o.host[1].error), "NXDOMAIN");
	check_report_init(&r, "mx", "a.test");
	check_mx_report(&o, &r);
	CHECK_STR_EQ("outbox check mx a.test\n"
		     "a.test:\n"
		     "  [info] dns: asked 127.0.0.1:53\n"
		     "  [ ok ] mx: 2 MX hosts in preference order: 10 "
		     "mx1.a.test, 20 mx2.a.test\n"
		     "MX 10 mx1.a.test:\n"
		     "  [ ok ] addresses: 192.0.2.1\n"
		     "MX 20 mx2.a.test:\n"
		     "  [FAIL] addresses: mx2.a.test has no address: NXDOMAIN\n"
		     "         fix: the domain's DNS names a mail host that "
		     "does not exist; its administrator must fix the MX or "
		     "address records\n"
		     "a.test:\n"
		     "  [ ok ] route: outbox would deliver to mx1.a.test on "
		     "port 25\n"
		     "result: 1 problem, 0 warnings\n",
		     render(&r, false));
	check_report_free(&r);

	mx_obs(&o, MX_NULL);
	check_report_init(&r, "mx", "a.test");
	check_mx_report(&o, &r);
	CHECK_STR_EQ("null", step(&r, "mx")->value);
	CHECK_STR_EQ("bounce", step(&r, "route")->value);
	CHECK(strstr(step(&r, "route")->text, "5.1.10") != NULL);
	CHECK(!check_report_ok(&r));
	check_report_free(&r);

	mx_obs(&o, MX_NXDOMAIN);
	check_report_init(&r, "mx", "a.test");
	check_mx_report(&o, &r);
	CHECK_STR_EQ("nxdomain", step(&r, "mx")->value);
	CHECK(strstr(step(&r, "route")->text, "5.1.2") != NULL);
	check_report_free(&r);

	mx_obs(&o, MX_TEMP);
	str_copy(o.status_text, sizeof(o.status_text), "timeout");
	check_report_init(&r, "mx", "a.test");
	check_mx_report(&o, &r);
	CHECK_STR_EQ("the DNS lookup failed: timeout", step(&r, "mx")->text);
	CHECK_STR_EQ("defer", step(&r, "route")->value);
	check_report_free(&r);

	mx_obs(&o, MX_IMPLICIT);
	o.nhosts = 1;
	str_copy(o.host[0].name, sizeof(o.host[0].name), "a.test");
	str_copy(o.host[0].addrs[0], 64, "192.0.2.9");
	o.host[0].naddrs = 1;
	check_report_init(&r, "mx", "a.test");
	check_mx_report(&o, &r);
	CHECK_STR_EQ("implicit", step(&r, "mx")->value);
	CHECK_STR_EQ("a.test (implicit MX)", r.steps[2].group);
	CHECK(check_report_ok(&r));
	check_report_free(&r);
}

static void
test_mbox_report(void)
{
	struct check_mbox_obs o;
	struct check_report r;
	memset(&o, 0, sizeof(o));
	o.host = "imap.example";
	o.port = 143;
	o.proto = CHECK_IMAP;
	o.mode = CHECK_TLS_STARTTLS;
	o.conn = CHECK_CONN_OK;
	str_copy(o.addr, sizeof(o.addr), "192.0.2.1");
	str_copy(o.greeting, sizeof(o.greeting), "* OK ready");
	str_copy(o.caps, sizeof(o.caps), "IMAP4rev1\nLOGINDISABLED");
	check_report_init(&r, "imap", "imap.example");
	check_mbox_report(&o, NOW, &r);
	CHECK_STR_EQ("outbox check imap imap.example\n"
		     "port 143:\n"
		     "  [ ok ] connect: connected to 192.0.2.1 port 143\n"
		     "  [ ok ] greeting: * OK ready\n"
		     "  [info] capabilities: before TLS: IMAP4rev1, "
		     "LOGINDISABLED\n"
		     "  [FAIL] starttls: STARTTLS is not offered: passwords "
		     "would travel in plaintext\n"
		     "         fix: use port 993 (TLS from the first byte) "
		     "instead\n"
		     "result: 1 problem, 0 warnings\n",
		     render(&r, false));
	check_report_free(&r);

	/* TLS spoken on the STARTTLS port: the fix is the client's. */
	o.mismatch = CHECK_MISMATCH_TLS_ON_PLAIN;
	o.proto = CHECK_POP3;
	o.starttls_offered = true;
	check_report_init(&r, "pop3", "pop.example");
	check_mbox_report(&o, NOW, &r);
	CHECK_STR_EQ("set the client to STARTTLS on this port, or use the TLS "
		     "port (IMAP 993, POP3 995)", step(&r, "mismatch")->fix);
	CHECK(strstr(step(&r, "mismatch")->text, "expects STLS") != NULL);
	CHECK_STR_EQ("STLS is offered", step(&r, "starttls")->text);
	check_report_free(&r);
}

int
main(void)
{
	test_text_and_json();
	test_caps();
	test_port25_timeout();
	test_mismatch();
	test_happy_smtp();
	test_login();
	test_certs();
	test_mx();
	test_mbox_report();
	CHECK_DONE();
}
