/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The advice rules of `outbox check`: what the glue observed (a
 *	connect result, a banner, EHLO keywords, a TLS handshake, a
 *	certificate, DNS answers) turned into report steps in plain words,
 *	each failure with the fix. Pure: "now" is an argument, so the rules
 *	are tested byte by byte (tests/unit/test_check_report.c).
 *
 *	The rules encode what users of relays lose hours to: 465/587
 *	confusion (TLS spoken on a STARTTLS port or the reverse, which other
 *	clients report as "wrong version number" or a hang), blocked port
 *	25, missing CA certificates, wrong names on certificates, and AUTH
 *	mechanism mismatches.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "outbox/check.h"
#include "outbox/str.h"

#define DAY_S 86400LL
#define CERT_SOON_DAYS 14

/* ---- connect ------------------------------------------------------------ */

static const char *
check_connect_fix_timeout(unsigned port)
{
	if (port == 25)
		return "outbound port 25 is probably blocked by your provider; "
		       "use 587 with STARTTLS or 465 with TLS";
	return "a firewall drops the connection, or the host is down; "
	       "check the host name and port";
}

/* The connect step; returns whether the session went further. */
static bool
check_connect_report(const char *group, const char *host, unsigned port,
		     enum check_conn conn, const char *addr, const char *err,
		     struct check_report *r)
{
	struct check_step *s;
	switch (conn) {
	case CHECK_CONN_OK:
		s = check_report_add(r, group, "connect", CHK_OK,
				     "connected to %s port %u", addr, port);
		check_step_value(s, "%s", addr);
		return true;
	case CHECK_CONN_REFUSED:
		s = check_report_add(r, group, "connect", CHK_FAIL,
				     "connection refused by %s: nothing "
				     "listens on port %u", addr[0] ? addr : host,
				     port);
		check_step_value(s, "refused");
		check_step_fix(s, "check the host and the port; mail "
				  "submission is 587 (STARTTLS) or 465 (TLS)");
		return false;
	case CHECK_CONN_TIMEOUT:
		s = check_report_add(r, group, "connect", CHK_FAIL,
				     "connecting to %s port %u timed out",
				     addr[0] ? addr : host, port);
		check_step_value(s, "timeout");
		check_step_fix(s, "%s", check_connect_fix_timeout(port));
		return false;
	case CHECK_CONN_NO_ADDR:
		s = check_report_add(r, group, "connect", CHK_FAIL,
				     "%s has no address: %s", host, err);
		check_step_value(s, "no-address");
		check_step_fix(s, "check the spelling of the host name and "
				  "the DNS servers");
		return false;
	case CHECK_CONN_ERROR:
	case CHECK_CONN_NONE:
		break;
	}
	s = check_report_add(r, group, "connect", CHK_FAIL,
			     "cannot connect to %s port %u: %s",
			     addr[0] ? addr : host, port, err[0] ? err : "?");
	check_step_value(s, "error");
	check_step_fix(s, "check the network path to the host");
	return false;
}

/* ---- certificate --------------------------------------------------------- */

static void
check_date(long long t, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
		str_copy(out, size, "unknown");
		return;
	}
	strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void
check_cert_dates(const char *group, const struct check_cert *c, bool verify,
		 long long now, struct check_report *r)
{
	char until[40], from[40];
	check_date(c->not_after, until, sizeof(until));
	check_date(c->not_before, from, sizeof(from));
	enum check_status bad = verify ? CHK_FAIL : CHK_WARN;
	struct check_step *s;
	if (c->not_after != 0 && c->not_after < now) {
		s = check_report_add(r, group, "expiry", bad,
				     "the certificate expired on %s (%lld days "
				     "ago)", until, (now - c->not_after) / DAY_S);
		check_step_fix(s, "the server's operator must renew the "
				  "certificate; outbox will not trust it until "
				  "then");
	} else if (c->not_before != 0 && c->not_before > now) {
		s = check_report_add(r, group, "expiry", bad,
				     "the certificate is not valid before %s",
				     from);
		check_step_fix(s, "check this machine's clock, or wait for "
				  "the certificate's start date");
	} else if (c->not_after != 0 &&
		   c->not_after - now < CERT_SOON_DAYS * DAY_S) {
		s = check_report_add(r, group, "expiry", CHK_WARN,
				     "the certificate expires soon, on %s",
				     until);
		check_step_fix(s, "remind the server's operator to renew it");
	} else {
		s = check_report_add(r, group, "expiry", CHK_OK,
				     "valid until %s (%lld days left)", until,
				     c->not_after ? (c->not_after - now) / DAY_S
						  : 0LL);
	}
	check_step_value(s, "%s", until);
}

static bool
check_cert_expired(const struct check_cert *c, long long now)
{
	return (c->not_after != 0 && c->not_after < now) ||
	       (c->not_before != 0 && c->not_before > now);
}

static void
check_cert_chain(const char *group, const struct check_cert *c, bool verify,
		 long long now, struct check_report *r)
{
	struct check_step *s;
	if (c->chain_ok) {
		s = check_report_add(r, group, "chain", CHK_OK,
				     "the chain is verified against the trust "
				     "store");
		check_step_value(s, "verified");
		return;
	}
	s = check_report_add(r, group, "chain",
			     verify ? CHK_FAIL : CHK_WARN,
			     "the chain is not verified: %s",
			     c->chain_error[0] ? c->chain_error : "unknown");
	check_step_value(s, "not-verified");
	if (check_cert_expired(c, now))
		check_step_fix(s, "see expiry above");
	else
		check_step_fix(s, "the certificate is signed by a CA this "
				  "machine does not trust: install the CA "
				  "(apt-get install ca-certificates, or add it "
				  "and run update-ca-certificates), or point "
				  "[relay] ca_file (or --ca-file) at it");
}

static void
check_cert_name(const char *group, const struct check_cert *c,
		const char *host, bool verify, struct check_report *r)
{
	struct check_step *s;
	if (c->name_ok) {
		s = check_report_add(r, group, "hostname", CHK_OK,
				     "the certificate is valid for %s", host);
		check_step_value(s, "matched");
		return;
	}
	s = check_report_add(r, group, "hostname",
			     verify ? CHK_FAIL : CHK_WARN,
			     "the certificate is not for %s (it names %s)",
			     host, c->sans[0] ? c->sans : c->subject);
	check_step_value(s, "mismatch");
	check_step_fix(s, "connect with a name the certificate lists (set "
			  "[relay] host to it), or ask the operator for a "
			  "certificate that names %s", host);
}

void
check_cert_report(const char *group, const struct check_cert *c,
		  const char *host, bool verify, long long now,
		  struct check_report *r)
{
	if (!c->seen) {
		check_report_add(r, group, "certificate",
				 verify ? CHK_FAIL : CHK_WARN,
				 "the server showed no certificate");
		return;
	}
	struct check_step *s = check_report_add(
		r, group, "certificate", CHK_INFO,
		"subject %s, issued by %s", c->subject[0] ? c->subject : "(none)",
		c->issuer[0] ? c->issuer : "(none)");
	check_step_value(s, "%s", c->subject);
	s = check_report_add(r, group, "names", CHK_INFO, "%s",
			     c->sans[0] ? c->sans
					: "no subjectAltName (only the subject "
					  "names the server)");
	check_step_value(s, "%s", c->sans);
	check_cert_dates(group, c, verify, now, r);
	check_cert_chain(group, c, verify, now, r);
	check_cert_name(group, c, host, verify, r);
}

/* ---- TLS handshake --------------------------------------------------------- */

static void
check_tls_report(const char *group, const struct check_tls *t, bool verify,
		 struct check_report *r)
{
	struct check_step *s;
	if (t->ok) {
		s = check_report_add(r, group, "tls", CHK_OK,
				     "%s with cipher %s", t->version, t->cipher);
		check_step_value(s, "%s %s", t->version, t->cipher);
		return;
	}
	s = check_report_add(r, group, "tls", CHK_FAIL,
			     "the TLS handshake failed: %s",
			     t->error[0] ? t->error : "unknown error");
	check_step_value(s, "failed");
	if (t->cert.seen)
		check_step_fix(s, "see the certificate steps below");
	else
		check_step_fix(s, "the server may only offer TLS older than "
				  "1.2 or weak ciphers, which outbox refuses");
	(void)verify;
}

/* ---- TLS spoken on the wrong kind of port ---------------------------------- */

/* tls_key NULL: a mail client (IMAP, POP3), not an outbox setting. */
static void
check_mismatch_fix(struct check_step *s, enum check_mismatch m,
		   const char *tls_key)
{
	if (m == CHECK_MISMATCH_TLS_ON_PLAIN && tls_key != NULL)
		check_step_fix(s, "set %s = starttls (implicit TLS is usually "
				  "port 465, STARTTLS port 587)", tls_key);
	else if (m == CHECK_MISMATCH_TLS_ON_PLAIN)
		check_step_fix(s, "set the client to STARTTLS on this port, or "
				  "use the TLS port (IMAP 993, POP3 995)");
	else if (tls_key != NULL)
		check_step_fix(s, "set %s = implicit (or use port 465 with "
				  "%s = auto)", tls_key, tls_key);
	else
		check_step_fix(s, "set the client to SSL/TLS (implicit TLS) on "
				  "this port");
}

static void
check_mismatch_report(const char *group, enum check_mismatch m,
		      const char *tls_key, const char *what,
		      struct check_report *r)
{
	struct check_step *s;
	if (m == CHECK_MISMATCH_TLS_ON_PLAIN) {
		s = check_report_add(r, group, "mismatch", CHK_FAIL,
				     "outbox spoke TLS first (implicit TLS), "
				     "but this port greets in plaintext and "
				     "expects %s (other clients report "
				     "\"wrong version number\")", what);
		check_step_value(s, "tls-on-plain-port");
	} else if (m == CHECK_MISMATCH_PLAIN_ON_TLS) {
		s = check_report_add(r, group, "mismatch", CHK_FAIL,
				     "no greeting in plaintext: this port "
				     "speaks TLS from the first byte (implicit "
				     "TLS), not %s", what);
		check_step_value(s, "plain-on-tls-port");
	} else {
		return;
	}
	check_mismatch_fix(s, m, tls_key);
}

/* ---- SMTP --------------------------------------------------------------------- */

static void
check_caps_oneline(const char *caps, char *out, size_t size)
{
	size_t j = 0;
	for (const char *p = caps; *p && j + 3 < size; p++) {
		if (*p == '\n') {
			out[j++] = ',';
			out[j++] = ' ';
		} else {
			out[j++] = *p;
		}
	}
	out[j] = '\0';
}

static void
check_smtp_banner(const char *group, const struct check_smtp_obs *o,
		  struct check_report *r)
{
	struct check_step *s;
	if (o->banner[0] == '\0') {
		if (o->greeting_timeout && o->mismatch == CHECK_MISMATCH_NONE) {
			s = check_report_add(r, group, "banner", CHK_FAIL,
					     "connected, but the server said "
					     "nothing within the timeout");
			check_step_fix(s, "the server is overloaded, or this "
					  "is not an SMTP port");
		}
		return;
	}
	bool good = o->banner_code >= 200 && o->banner_code < 300;
	s = check_report_add(r, group, "banner", good ? CHK_OK : CHK_FAIL,
			     "%s", o->banner);
	check_step_value(s, "%d", o->banner_code);
	if (!good)
		check_step_fix(s, "the server refuses connections from this "
				  "machine now (busy, or this address is "
				  "blocked)");
}

static void
check_smtp_starttls(const char *group, const struct check_smtp_obs *o,
		    struct check_report *r)
{
	char arg[8];
	if (o->ehlo[0] == '\0')
		return;
	char line[CHECK_CAPS_MAX];
	check_caps_oneline(o->ehlo, line, sizeof(line));
	struct check_step *s = check_report_add(
		r, group, "ehlo", CHK_INFO, "capabilities%s: %s",
		o->mode == CHECK_TLS_STARTTLS ? " before TLS" : "", line);
	check_step_value(s, "%s", line);
	if (o->mode != CHECK_TLS_STARTTLS)
		return;
	if (check_caps_find(o->ehlo, "STARTTLS", arg, sizeof(arg))) {
		check_report_add(r, group, "starttls", CHK_OK,
				 "STARTTLS is offered");
		return;
	}
	s = check_report_add(r, group, "starttls",
			     o->port == 25 ? CHK_WARN : CHK_FAIL,
			     "STARTTLS is not offered: mail and passwords "
			     "would travel in plaintext, which outbox refuses "
			     "for a smarthost");
	check_step_fix(s, "use port 465 with %s = implicit if the provider "
			  "offers it, or ask the provider to enable STARTTLS",
		       o->tls_key ? o->tls_key : "tls");
}

static bool
check_auth_supported(const char *mechs)
{
	char w[32];
	const char *p = mechs;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		str_ncopy(w, sizeof(w), p, n);
		if (strcasecmp(w, "PLAIN") == 0 || strcasecmp(w, "LOGIN") == 0)
			return true;
		p += n;
	}
	return false;
}

static void
check_smtp_auth(const char *group, const struct check_smtp_obs *o,
		bool tls_up, struct check_report *r)
{
	char mechs[CHECK_TEXT_MAX];
	const char *caps = tls_up ? o->ehlo_tls : o->ehlo;
	struct check_step *s;
	if (!tls_up && o->mode == CHECK_TLS_STARTTLS &&
	    check_caps_find(o->ehlo, "AUTH", mechs, sizeof(mechs))) {
		s = check_report_add(r, group, "auth-plaintext", CHK_WARN,
				     "AUTH is offered without TLS (%s); "
				     "outbox never sends a password that way",
				     mechs);
	}
	if (!tls_up && o->mode != CHECK_TLS_NONE)
		return;
	if (check_caps_find(caps, "AUTH", mechs, sizeof(mechs)) == NULL) {
		s = check_report_add(r, group, "auth",
				     o->port == 25 ? CHK_INFO : CHK_WARN,
				     "no AUTH offered%s%s", tls_up ? " after TLS" : "",
				     o->port == 25 ? " (normal for an MX on port "
						     "25)"
						   : "");
		if (o->port != 25)
			check_step_fix(s, "this server takes mail without a "
					  "login, or only from its own "
					  "network; leave [relay] user empty");
		return;
	}
	bool ok = check_auth_supported(mechs);
	s = check_report_add(r, group, "auth", ok ? CHK_OK : CHK_FAIL,
			     "AUTH mechanisms%s: %s", tls_up ? " after TLS" : "",
			     mechs);
	check_step_value(s, "%s", mechs);
	if (!ok)
		check_step_fix(s, "outbox logs in with AUTH PLAIN or LOGIN, "
				  "which this server does not offer; ask the "
				  "provider to enable one of them");
}

static void
check_smtp_size(const char *group, const struct check_smtp_obs *o,
		bool tls_up, struct check_report *r)
{
	char arg[64];
	const char *caps = tls_up ? o->ehlo_tls : o->ehlo;
	if (caps[0] == '\0')
		return;
	struct check_step *s;
	uint64_t v = 0;
	if (check_caps_find(caps, "SIZE", arg, sizeof(arg)) == NULL ||
	    str_to_u64(arg, 0, UINT64_MAX, &v) < 0 || v == 0) {
		s = check_report_add(r, group, "size", CHK_INFO,
				     "no message size limit announced");
		check_step_value(s, "0");
		return;
	}
	s = check_report_add(r, group, "size", CHK_INFO,
			     "messages up to %llu bytes (%.1f MiB)",
			     (unsigned long long)v, (double)v / 1048576.0);
	check_step_value(s, "%llu", (unsigned long long)v);
}

static void
check_smtp_login(const char *group, const struct check_smtp_obs *o,
		 struct check_report *r)
{
	if (!o->auth_tried)
		return;
	struct check_step *s;
	if (o->auth_ok) {
		check_report_add(r, group, "login", CHK_OK,
				 "the server accepted the user name and "
				 "password");
		return;
	}
	s = check_report_add(r, group, "login", CHK_FAIL, "%s",
			     o->auth_error[0] ? o->auth_error
					      : "authentication failed");
	check_step_fix(s, "check [relay] user and the password in "
			  "password_file (first line, no trailing spaces); "
			  "some providers want an app password");
}

static void
check_smtp_after_tls(const char *group, const struct check_smtp_obs *o,
		     struct check_report *r)
{
	if (o->ehlo_tls_seen && o->ehlo_tls[0] != '\0') {
		char line[CHECK_CAPS_MAX];
		check_caps_oneline(o->ehlo_tls, line, sizeof(line));
		struct check_step *s = check_report_add(
			r, group, "ehlo-tls", CHK_INFO,
			"capabilities after TLS: %s", line);
		check_step_value(s, "%s", line);
	}
}

void
check_smtp_report(const struct check_smtp_obs *o, long long now,
		  struct check_report *r)
{
	char group[96];
	if (o->group != NULL)
		str_copy(group, sizeof(group), o->group);
	else
		snprintf(group, sizeof(group), "port %u", o->port);
	if (!check_connect_report(group, o->host, o->port, o->conn, o->addr,
				  o->conn_error, r))
		return;
	check_mismatch_report(group, o->mismatch,
			      o->tls_key ? o->tls_key : "tls", "STARTTLS", r);
	check_smtp_banner(group, o, r);
	check_smtp_starttls(group, o, r);
	if (o->tls.tried) {
		check_tls_report(group, &o->tls, o->verify, r);
		if (o->tls.cert.seen || o->tls.ok)
			check_cert_report(group, &o->tls.cert, o->host,
					  o->verify, now, r);
	}
	bool tls_up = o->tls.ok && o->ehlo_tls_seen;
	check_smtp_after_tls(group, o, r);
	if (tls_up || o->mode == CHECK_TLS_NONE ||
	    (o->mode == CHECK_TLS_STARTTLS && o->ehlo[0] != '\0'))
		check_smtp_auth(group, o, tls_up, r);
	if (tls_up || o->ehlo[0] != '\0')
		check_smtp_size(group, o, tls_up, r);
	check_smtp_login(group, o, r);
	if (o->failure[0] != '\0' && !o->auth_tried) {
		struct check_step *s = check_report_add(
			r, group, "session", CHK_FAIL, "%s", o->failure);
		check_step_value(s, "failed");
	}
}

/* ---- IMAP / POP3 ----------------------------------------------------------------- */

static void
check_mbox_caps(const char *group, const struct check_mbox_obs *o,
		struct check_report *r)
{
	char line[CHECK_CAPS_MAX];
	struct check_step *s;
	if (o->caps[0] != '\0') {
		check_caps_oneline(o->caps, line, sizeof(line));
		s = check_report_add(r, group, "capabilities", CHK_INFO,
				     "%s%s", o->mode == CHECK_TLS_STARTTLS
						     ? "before TLS: "
						     : "",
				     line);
		check_step_value(s, "%s", line);
	}
	if (o->mode == CHECK_TLS_STARTTLS && o->greeting[0] != '\0') {
		const char *cmd = o->proto == CHECK_IMAP ? "STARTTLS" : "STLS";
		if (o->starttls_offered) {
			check_report_add(r, group, "starttls", CHK_OK,
					 "%s is offered", cmd);
		} else {
			s = check_report_add(r, group, "starttls", CHK_FAIL,
					     "%s is not offered: passwords "
					     "would travel in plaintext", cmd);
			check_step_fix(s, "use port %u (TLS from the first "
					  "byte) instead",
				       o->proto == CHECK_IMAP ? 993 : 995);
		}
	}
}

static void
check_mbox_caps_tls(const char *group, const struct check_mbox_obs *o,
		    struct check_report *r)
{
	char line[CHECK_CAPS_MAX];
	if (o->caps_tls_seen && o->caps_tls[0] != '\0') {
		check_caps_oneline(o->caps_tls, line, sizeof(line));
		struct check_step *s = check_report_add(
			r, group, "capabilities-tls", CHK_INFO,
			"after TLS: %s", line);
		check_step_value(s, "%s", line);
	}
}

void
check_mbox_report(const struct check_mbox_obs *o, long long now,
		  struct check_report *r)
{
	char group[96];
	const char *proto = o->proto == CHECK_IMAP ? "IMAP" : "POP3";
	snprintf(group, sizeof(group), "port %u", o->port);
	if (!check_connect_report(group, o->host, o->port, o->conn, o->addr,
				  o->conn_error, r))
		return;
	check_mismatch_report(group, o->mismatch, NULL,
			      o->proto == CHECK_IMAP ? "STARTTLS" : "STLS", r);
	struct check_step *s;
	if (o->greeting[0] != '\0') {
		s = check_report_add(r, group, "greeting", CHK_OK, "%s",
				     o->greeting);
		check_step_value(s, "%s", proto);
	} else if (o->greeting_timeout &&
		   o->mismatch == CHECK_MISMATCH_NONE) {
		s = check_report_add(r, group, "greeting", CHK_FAIL,
				     "connected, but the server said nothing "
				     "within the timeout");
		check_step_fix(s, "the server is overloaded, or this is not "
				  "an %s port", proto);
	}
	check_mbox_caps(group, o, r);
	if (o->tls.tried) {
		check_tls_report(group, &o->tls, true, r);
		if (o->tls.cert.seen || o->tls.ok)
			check_cert_report(group, &o->tls.cert, o->host, true,
					  now, r);
	}
	check_mbox_caps_tls(group, o, r);
	if (o->failure[0] != '\0') {
		s = check_report_add(r, group, "session", CHK_FAIL, "%s",
				     o->failure);
		check_step_value(s, "failed");
	}
}

/* ---- MX ---------------------------------------------------------------------- */

static void
check_mx_host_report(const struct check_mx_obs *o, const struct check_mx_host *h,
		     bool implicit, struct check_report *r)
{
	char group[HOSTNAME_MAX + 32], list[CHECK_TEXT_MAX] = "";
	if (implicit)
		snprintf(group, sizeof(group), "%s (implicit MX)", h->name);
	else
		snprintf(group, sizeof(group), "MX %u %s", h->pref, h->name);
	struct check_step *s;
	if (h->naddrs == 0) {
		s = check_report_add(r, group, "addresses", CHK_FAIL,
				     "%s has no address: %s", h->name,
				     h->error[0] ? h->error : "no A or AAAA "
							     "records");
		check_step_fix(s, "the domain's DNS names a mail host that "
				  "does not exist; its administrator must fix "
				  "the MX or address records");
		return;
	}
	for (size_t i = 0; i < h->naddrs; i++) {
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s",
			 i ? " " : "", h->addrs[i]);
	}
	s = check_report_add(r, group, "addresses", CHK_OK, "%s", list);
	check_step_value(s, "%s", list);
	(void)o;
}

static void
check_mx_route(const struct check_mx_obs *o, struct check_report *r)
{
	char order[CHECK_TEXT_MAX] = "";
	size_t usable = 0;
	for (size_t i = 0; i < o->nhosts; i++) {
		if (o->host[i].naddrs == 0)
			continue;
		size_t used = strlen(order);
		snprintf(order + used, sizeof(order) - used, "%s%s",
			 usable ? ", then " : "", o->host[i].name);
		usable++;
	}
	struct check_step *s;
	if (usable == 0) {
		s = check_report_add(r, o->domain, "route", CHK_FAIL,
				     "no mail host has an address: outbox "
				     "would defer mail for %s and retry",
				     o->domain);
		check_step_value(s, "defer");
		return;
	}
	s = check_report_add(r, o->domain, "route", CHK_OK,
			     "outbox would deliver to %s on port %u", order,
			     o->port);
	check_step_value(s, "deliver");
}

static void
check_mx_failed(const struct check_mx_obs *o, struct check_report *r)
{
	struct check_step *s;
	switch (o->status) {
	case MX_NULL:
		s = check_report_add(r, o->domain, "mx", CHK_FAIL,
				     "%s publishes a null MX (RFC 7505): it "
				     "accepts no mail at all", o->domain);
		check_step_value(s, "null");
		s = check_report_add(r, o->domain, "route", CHK_FAIL,
				     "outbox bounces mail for %s at once "
				     "(%s %s)", o->domain, mx_status_enh(o->status),
				     mx_status_text(o->status));
		check_step_value(s, "bounce");
		check_step_fix(s, "the address is wrong or the domain sends "
				  "only; use another address");
		return;
	case MX_NXDOMAIN:
		s = check_report_add(r, o->domain, "mx", CHK_FAIL,
				     "%s does not exist (NXDOMAIN)", o->domain);
		check_step_value(s, "nxdomain");
		s = check_report_add(r, o->domain, "route", CHK_FAIL,
				     "outbox bounces mail for %s at once "
				     "(%s %s)", o->domain, mx_status_enh(o->status),
				     mx_status_text(o->status));
		check_step_value(s, "bounce");
		check_step_fix(s, "check the spelling of the domain");
		return;
	case MX_BAD:
		s = check_report_add(r, o->domain, "mx", CHK_FAIL,
				     "the MX records of %s name no usable host",
				     o->domain);
		check_step_value(s, "bad");
		s = check_report_add(r, o->domain, "route", CHK_FAIL,
				     "outbox bounces mail for %s (%s %s)",
				     o->domain, mx_status_enh(o->status),
				     mx_status_text(o->status));
		check_step_value(s, "bounce");
		check_step_fix(s, "the domain's administrator must fix its "
				  "MX records");
		return;
	default:
		break;
	}
	s = check_report_add(r, o->domain, "mx", CHK_FAIL,
			     "the DNS lookup failed: %s",
			     o->status_text[0] ? o->status_text : "temporary "
								  "failure");
	check_step_value(s, "temporary");
	s = check_report_add(r, o->domain, "route", CHK_FAIL,
			     "outbox would defer mail for %s and retry",
			     o->domain);
	check_step_value(s, "defer");
	check_step_fix(s, "check the DNS servers ([mx] dns_servers or "
			  "/etc/resolv.conf, --dns) and the network");
}

void
check_mx_report(const struct check_mx_obs *o, struct check_report *r)
{
	struct check_step *s = check_report_add(
		r, o->domain, "dns", CHK_INFO, "asked %s", o->servers);
	check_step_value(s, "%s", o->servers);
	if (o->status != MX_OK && o->status != MX_IMPLICIT) {
		check_mx_failed(o, r);
		return;
	}
	if (o->status == MX_IMPLICIT) {
		s = check_report_add(r, o->domain, "mx", CHK_INFO,
				     "%s has no MX records: mail goes to the "
				     "domain's own address (implicit MX, RFC "
				     "5321 5.1)", o->domain);
		check_step_value(s, "implicit");
	} else {
		char list[CHECK_TEXT_MAX] = "";
		for (size_t i = 0; i < o->nhosts; i++) {
			size_t used = strlen(list);
			snprintf(list + used, sizeof(list) - used, "%s%u %s",
				 i ? ", " : "", o->host[i].pref,
				 o->host[i].name);
		}
		s = check_report_add(r, o->domain, "mx", CHK_OK,
				     "%zu MX host%s in preference order: %s",
				     o->nhosts, o->nhosts == 1 ? "" : "s",
				     list);
		check_step_value(s, "%s", list);
	}
	for (size_t i = 0; i < o->nhosts; i++)
		check_mx_host_report(o, &o->host[i], o->status == MX_IMPLICIT,
				     r);
	check_mx_route(o, r);
}
