/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * test_config_check: the pure half of configuration: value syntax, every
 * key's validation message, cross-field rules and their sources, and the
 * raw entry list. No files, no environment.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "outbox/config.h"
#include "outbox/str.h"

static void
test_defaults(void)
{
	struct config c;
	config_defaults(&c);
	CHECK_EQ(c.listen.naddress, 2);
	CHECK_STR_EQ(c.listen.address[0].host, "127.0.0.1");
	CHECK_EQ(c.listen.address[0].port, 25);
	CHECK_STR_EQ(c.listen.address[1].host, "::1");
	CHECK_EQ(c.listen.address[1].port, 25);
	CHECK_STR_EQ(c.listen.hostname, "");
	CHECK_EQ(c.listen.nallow, 2);
	CHECK_EQ(c.listen.allow[0].family, AF_INET);
	CHECK_EQ(c.listen.allow[0].prefix, 8);
	CHECK_MEM_EQ(c.listen.allow[0].addr, "\x7f\0\0\0", 4);
	CHECK_EQ(c.listen.allow[1].family, AF_INET6);
	CHECK_EQ(c.listen.allow[1].prefix, 128);
	CHECK_EQ(c.listen.allow[1].addr[15], 1);
	CHECK_EQ(c.listen.max_message_size, 35ull * 1024 * 1024);
	CHECK_EQ(c.listen.max_recipients, 1000);
	CHECK_EQ(c.listen.max_connections, 512);
	CHECK_EQ(c.listen.timeout_ms, 300000);
	CHECK_EQ(c.listen.bare_newline, CONFIG_BARE_NL_NORMALIZE);
	CHECK_STR_EQ(c.spool.dir, "/var/spool/outbox");
	CHECK_EQ(c.spool.max_lifetime_s, 5 * 86400);
	CHECK_EQ(c.spool.retry_min_s, 60);
	CHECK_EQ(c.spool.retry_max_s, 3600);
	CHECK_EQ(c.relay.nhost, 0);
	CHECK_EQ(c.relay.tls, CONFIG_TLS_AUTO);
	CHECK(c.relay.verify);
	CHECK_STR_EQ(c.relay.ca_file, "");
	CHECK_STR_EQ(c.relay.user, "");
	CHECK_STR_EQ(c.relay.password_file, "");
	CHECK_EQ(c.mx.port, 25);
	CHECK_EQ(c.mx.tls, CONFIG_MX_TLS_OPPORTUNISTIC);
	CHECK_EQ(c.mx.ndns_servers, 0);
	CHECK_EQ(c.mx.connections_per_domain, 10);
	CHECK_STR_EQ(c.mx.ca_file, "");
	CHECK_STR_EQ(c.rewrite.domain, "");
	CHECK_STR_EQ(c.rewrite.aliases, "");
	CHECK_STR_EQ(c.rewrite.admin, "");
	CHECK_STR_EQ(c.rewrite.from, "");
	CHECK(!c.rewrite.from_header_rewrite);
	CHECK_EQ(c.log.target, LOG_TO_STDERR);
	CHECK_EQ(c.log.level, LOG_LVL_INFO);
}

static void
test_size(void)
{
	uint64_t v = 7;
	CHECK_EQ(config_value_size("0", &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(config_value_size("1000", &v), 0);
	CHECK_EQ(v, 1000);
	CHECK_EQ(config_value_size("4k", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(config_value_size("35M", &v), 0);
	CHECK_EQ(v, 35ull << 20);
	CHECK_EQ(config_value_size("2G", &v), 0);
	CHECK_EQ(v, 2ull << 30);
	CHECK_EQ(config_value_size("17179869184G", &v), -1); /* overflow */
	v = 7;
	CHECK_EQ(config_value_size("12Q", &v), -1);
	CHECK_EQ(config_value_size("M", &v), -1);
	CHECK_EQ(config_value_size("", &v), -1);
	CHECK_EQ(config_value_size("1MB", &v), -1);
	CHECK_EQ(config_value_size("-1", &v), -1);
	CHECK_EQ(config_value_size(" 1", &v), -1);
	CHECK_EQ(config_value_size("1.5M", &v), -1);
	CHECK_EQ(v, 7);
}

static void
test_duration(void)
{
	uint64_t v = 7;
	CHECK_EQ(config_value_duration_ms("30", &v), 0);
	CHECK_EQ(v, 30000);
	CHECK_EQ(config_value_duration_ms("30s", &v), 0);
	CHECK_EQ(v, 30000);
	CHECK_EQ(config_value_duration_ms("250ms", &v), 0);
	CHECK_EQ(v, 250);
	CHECK_EQ(config_value_duration_ms("5m", &v), 0);
	CHECK_EQ(v, 300000);
	CHECK_EQ(config_value_duration_ms("2h", &v), 0);
	CHECK_EQ(v, 7200000);
	CHECK_EQ(config_value_duration_ms("5d", &v), 0);
	CHECK_EQ(v, 432000000);
	v = 7;
	CHECK_EQ(config_value_duration_ms("5w", &v), -1);
	CHECK_EQ(config_value_duration_ms("m", &v), -1);
	CHECK_EQ(config_value_duration_ms("5 m", &v), -1);
	CHECK_EQ(config_value_duration_ms("5M", &v), -1);
	CHECK_EQ(config_value_duration_ms("99999999999999999d", &v), -1);
	CHECK_EQ(v, 7);
}

static void
test_bool(void)
{
	static const char *const yes[] = { "yes", "YES", "true", "On", "1" };
	static const char *const no[] = { "no", "False", "off", "0" };
	bool b;
	for (size_t i = 0; i < 5; i++) {
		b = false;
		CHECK_EQ(config_value_bool(yes[i], &b), 0);
		CHECK(b);
	}
	for (size_t i = 0; i < 4; i++) {
		b = true;
		CHECK_EQ(config_value_bool(no[i], &b), 0);
		CHECK(!b);
	}
	CHECK_EQ(config_value_bool("maybe", &b), -1);
	CHECK_EQ(config_value_bool("", &b), -1);
	CHECK_EQ(config_value_bool("y", &b), -1);
}

static void
hp_ok(const char *s, uint16_t defport, bool port0, const char *host,
      unsigned port)
{
	struct config_hostport hp;
	char msg[256] = "";
	CHECK_EQ(config_value_hostport(s, strlen(s), defport, port0, &hp, msg,
				       sizeof msg), 0);
	CHECK_STR_EQ(hp.host, host);
	CHECK_EQ(hp.port, port);
}

static void
hp_bad(const char *s, bool port0, const char *want)
{
	struct config_hostport hp;
	char msg[256] = "";
	CHECK_EQ(config_value_hostport(s, strlen(s), 587, port0, &hp, msg,
				       sizeof msg), -1);
	CHECK_STR_EQ(msg, want);
}

static void
test_hostport(void)
{
	hp_ok("smtp.example.com:465", 587, false, "smtp.example.com", 465);
	hp_ok("smtp.example.com", 587, false, "smtp.example.com", 587);
	hp_ok("mail_relay-1.example.", 25, false, "mail_relay-1.example.", 25);
	hp_ok("127.0.0.1:25", 587, false, "127.0.0.1", 25);
	hp_ok("[::1]:25", 587, false, "::1", 25);
	hp_ok("[2001:db8::1]", 587, false, "2001:db8::1", 587);
	hp_ok("127.0.0.1:0", 25, true, "127.0.0.1", 0);
	hp_ok("h:65535", 25, false, "h", 65535);
	/* Only the first n bytes count. */
	struct config_hostport hp;
	CHECK_EQ(config_value_hostport("a.b:26 c:27", 6, 25, false, &hp, NULL,
				       0), 0);
	CHECK_STR_EQ(hp.host, "a.b");
	CHECK_EQ(hp.port, 26);

	hp_bad("h:65536", false, "port out of range in 'h:65536'");
	hp_bad("h:99999999999999999999999", false,
	       "bad port in 'h:99999999999999999999999'");
	hp_bad("h:0", false, "port out of range in 'h:0'");
	hp_bad("h:", false, "bad port in 'h:'");
	hp_bad("h:2x", false, "bad port in 'h:2x'");
	hp_bad("h:-1", false, "bad port in 'h:-1'");
	hp_bad("::1", false, "IPv6 address needs brackets ([::1]:25) in '::1'");
	hp_bad("::1:25", false,
	       "IPv6 address needs brackets ([::1]:25) in '::1:25'");
	hp_bad("[::1", false, "missing ']' in '[::1'");
	hp_bad("[::1]25", false, "bad address in '[::1]25'");
	hp_bad("[::1]:99999", false, "port out of range in '[::1]:99999'");
	hp_bad("[nope]:25", false, "bad IPv6 address in '[nope]:25'");
	hp_bad("[127.0.0.1]:25", false, "bad IPv6 address in '[127.0.0.1]:25'");
	hp_bad(":25", false, "missing host in ':25'");
	hp_bad("[]:25", false, "missing host in '[]:25'");
	hp_bad("bad_host!:25", false, "bad host in 'bad_host!:25'");
	hp_bad("-a.example:25", false, "bad host in '-a.example:25'");
	hp_bad("a..example:25", false, "bad host in 'a..example:25'");
	hp_bad("999.1.1.1:25", false, "bad host in '999.1.1.1:25'");
	hp_bad("", false, "bad address in ''");
}

static void
cidr_ok(const char *s, int family, unsigned prefix, const char *addr)
{
	struct config_cidr c;
	unsigned char want[16] = { 0 };
	CHECK_EQ(config_value_cidr(s, strlen(s), &c, NULL, 0), 0);
	CHECK_EQ(c.family, family);
	CHECK_EQ(c.prefix, prefix);
	CHECK_EQ(inet_pton(family, addr, want), 1);
	CHECK_MEM_EQ(c.addr, want, family == AF_INET ? 4 : 16);
}

static void
cidr_bad(const char *s, const char *want)
{
	struct config_cidr c;
	char msg[256];
	CHECK_EQ(config_value_cidr(s, strlen(s), &c, msg, sizeof msg), -1);
	CHECK_STR_EQ(msg, want);
}

static void
test_cidr(void)
{
	cidr_ok("127.0.0.0/8", AF_INET, 8, "127.0.0.0");
	cidr_ok("10.1.2.3", AF_INET, 32, "10.1.2.3");
	cidr_ok("10.1.2.3/0", AF_INET, 0, "0.0.0.0");
	cidr_ok("192.168.77.77/20", AF_INET, 20, "192.168.64.0"); /* masked */
	cidr_ok("::1/128", AF_INET6, 128, "::1");
	cidr_ok("::1", AF_INET6, 128, "::1");
	cidr_ok("2001:db8:ffff::1/33", AF_INET6, 33, "2001:db8:8000::");
	cidr_bad("10.0.0.0/33", "prefix out of range in '10.0.0.0/33'");
	cidr_bad("::/129", "prefix out of range in '::/129'");
	cidr_bad("10.0.0.0/", "bad network in '10.0.0.0/'");
	cidr_bad("10.0.0.0/8x", "bad network in '10.0.0.0/8x'");
	cidr_bad("/8", "bad network in '/8'");
	cidr_bad("localhost", "bad network in 'localhost'");
	cidr_bad("10.0.0/8", "bad network in '10.0.0/8'");
}

static void
test_hostname(void)
{
	char long_label[80], long_name[300];
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	memset(long_name, 'a', 256);
	for (size_t i = 10; i < 256; i += 10)
		long_name[i] = '.';
	long_name[256] = '\0';
	CHECK(config_value_hostname("mail.example.com"));
	CHECK(config_value_hostname("localhost"));
	CHECK(config_value_hostname("192.0.2.1"));
	CHECK(!config_value_hostname(""));
	CHECK(!config_value_hostname("a b"));
	CHECK(!config_value_hostname("a.-b"));
	CHECK(!config_value_hostname(".a"));
	CHECK(!config_value_hostname(long_label));
	CHECK(!config_value_hostname(long_name));
	CHECK(config_value_is_ip("::1"));
	CHECK(config_value_is_ip("0.0.0.0"));
	CHECK(!config_value_is_ip("localhost"));
}

/* One entry from "t.ini:7"; returns config_check's result. */
static int
check_one(const char *section, const char *key, const char *value,
	  struct config *out, char *err, size_t errlen)
{
	struct config_raw raw = { 0 };
	CHECK_EQ(config_raw_set(&raw, section, key, value, "t.ini:7"), 0);
	int rc = config_check(&raw, out, err, errlen);
	config_raw_free(&raw);
	return rc;
}

static void
bad(const char *section, const char *key, const char *value,
    const char *want)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "", full[CONFIG_ERR_MAX];
	CHECK_EQ(check_one(section, key, value, &c, err, sizeof err), -1);
	snprintf(full, sizeof full, "t.ini:7: %s", want);
	CHECK_STR_EQ(err, full);
}

static struct config
ok(const char *section, const char *key, const char *value)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";
	int rc = check_one(section, key, value, &c, err, sizeof err);
	if (rc != 0)
		CHECK_FAIL("[%s] %s = %s: %s", section, key, value, err);
	return c;
}

static void
test_sections(void)
{
	char msg[128];
	CHECK_EQ(config_check_section("listen", msg, sizeof msg), 0);
	CHECK_EQ(config_check_section("log", msg, sizeof msg), 0);
	CHECK_EQ(config_check_section("mx", msg, sizeof msg), 0);
	CHECK_EQ(config_check_section("MX", msg, sizeof msg), -1);
	CHECK_STR_EQ(msg, "unknown section [MX]");
	CHECK_EQ(config_check_section("rewrite", msg, sizeof msg), 0);
	CHECK_EQ(config_check_section("Rewrite", msg, sizeof msg), -1);
	CHECK_STR_EQ(msg, "unknown section [Rewrite]");
	CHECK_EQ(config_check_section("Listen", msg, sizeof msg), -1);
	CHECK_STR_EQ(msg, "unknown section [Listen]");
	CHECK_EQ(config_check_section("foo\x01", msg, sizeof msg), -1);
	CHECK_STR_EQ(msg, "unknown section [foo?]");
	bad("foo", "x", "1", "unknown section [foo]");
	bad("rewrite", "fromx", "a@b", "unknown key 'fromx' in [rewrite]");
	bad("", "address", "1.2.3.4:25", "key 'address' is outside any "
	    "section (add [listen], [spool], [relay], [mx], [rewrite] or "
	    "[log] above it)");
	bad("log", "format", "xml", "bad value 'xml' for format (use text or json)");
	bad("metrics", "interval", "0", "interval must not be 0");
	bad("metrics", "stuck_after", "soon", "bad duration 'soon' for stuck_after (use a number with s, m, h or d)");
	CHECK(ok("log", "format", "json").log.json);
	CHECK_EQ(ok("metrics", "interval", "1m").metrics.interval_s, 60);
	CHECK_STR_EQ(ok("daemon", "user", "outbox").daemon.user, "outbox");
	bad("listen", "foo", "1", "unknown key 'foo' in [listen]");
	bad("relay", "hostx", "a", "unknown key 'hostx' in [relay]");
	bad("relay", "Host", "a", "unknown key 'Host' in [relay]");
}

static void
test_listen(void)
{
	struct config c = ok("listen", "address",
			     "0.0.0.0:2525, [::]:0\t127.0.0.2");
	CHECK_EQ(c.listen.naddress, 3);
	CHECK_STR_EQ(c.listen.address[0].host, "0.0.0.0");
	CHECK_EQ(c.listen.address[0].port, 2525);
	CHECK_STR_EQ(c.listen.address[1].host, "::");
	CHECK_EQ(c.listen.address[1].port, 0);
	CHECK_STR_EQ(c.listen.address[2].host, "127.0.0.2");
	CHECK_EQ(c.listen.address[2].port, 25);
	bad("listen", "address", "", "address must not be empty");
	bad("listen", "address", " , ", "address must not be empty");
	bad("listen", "address", "localhost:25", "listen address must be an "
	    "IP address, not a name, in 'localhost:25'");
	bad("listen", "address", "127.0.0.1:70000",
	    "port out of range in '127.0.0.1:70000'");
	bad("listen", "address", "127.0.0.1:25 ::1:25",
	    "IPv6 address needs brackets ([::1]:25) in '::1:25'");
	char many[400] = "";
	for (int i = 0; i <= CONFIG_MAX_LISTEN; i++) {
		size_t n = strlen(many);
		snprintf(many + n, sizeof many - n, "127.0.0.1:%d ", 100 + i);
	}
	bad("listen", "address", many, "too many entries in address (at most "
	    "16)");

	c = ok("listen", "hostname", "mx.example.org");
	CHECK_STR_EQ(c.listen.hostname, "mx.example.org");
	bad("listen", "hostname", "bad name", "bad hostname 'bad name'");

	c = ok("listen", "allow", "10.0.0.0/8 192.168.1.5,fd00::/8");
	CHECK_EQ(c.listen.nallow, 3);
	CHECK_EQ(c.listen.allow[1].prefix, 32);
	CHECK_EQ(c.listen.allow[2].family, AF_INET6);
	c = ok("listen", "allow", "");
	CHECK_EQ(c.listen.nallow, 0);
	bad("listen", "allow", "10.0.0.0/8 10.0.0.0/40",
	    "prefix out of range in '10.0.0.0/40'");
	bad("listen", "allow", "everyone", "bad network in 'everyone'");

	c = ok("listen", "max_message_size", "10K");
	CHECK_EQ(c.listen.max_message_size, 10240);
	c = ok("listen", "max_message_size", "1000");
	CHECK_EQ(c.listen.max_message_size, 1000);
	bad("listen", "max_message_size", "12Q", "bad size '12Q' for "
	    "max_message_size (use a number with K, M or G)");
	bad("listen", "max_message_size", "0", "max_message_size must not "
	    "be 0");

	c = ok("listen", "max_recipients", "100");
	CHECK_EQ(c.listen.max_recipients, 100);
	bad("listen", "max_recipients", "99", "max_recipients must be at "
	    "least 100 (RFC 5321 4.5.3.1.8)");
	bad("listen", "max_recipients", "1000001", "max_recipients is too "
	    "large (at most 1000000)");
	bad("listen", "max_recipients", "lots", "bad number 'lots' for "
	    "max_recipients");
	c = ok("listen", "max_connections", "1");
	CHECK_EQ(c.listen.max_connections, 1);
	bad("listen", "max_connections", "0", "max_connections must not be 0");
	bad("listen", "max_connections", "-5", "bad number '-5' for "
	    "max_connections");

	c = ok("listen", "timeout", "90");
	CHECK_EQ(c.listen.timeout_ms, 90000);
	c = ok("listen", "timeout", "500ms");
	CHECK_EQ(c.listen.timeout_ms, 500);
	bad("listen", "timeout", "5x", "bad duration '5x' for timeout (use a "
	    "number with s, m, h or d)");
	bad("listen", "timeout", "0s", "timeout must not be 0");
	bad("listen", "timeout", "2d", "timeout is too large (at most "
	    "86400000)");

	c = ok("listen", "bare_newline", "strict");
	CHECK_EQ(c.listen.bare_newline, CONFIG_BARE_NL_STRICT);
	bad("listen", "bare_newline", "reject", "bad value 'reject' for "
	    "bare_newline (use normalize or strict)");
}

static void
test_spool(void)
{
	struct config c = ok("spool", "dir", "./spool");
	CHECK_STR_EQ(c.spool.dir, "./spool");
	bad("spool", "dir", "", "dir must not be empty");
	c = ok("spool", "max_lifetime", "2h");
	CHECK_EQ(c.spool.max_lifetime_s, 7200);
	c = ok("spool", "max_lifetime", "10");
	CHECK_EQ(c.spool.max_lifetime_s, 10);
	bad("spool", "max_lifetime", "1500ms", "max_lifetime must be whole "
	    "seconds");
	bad("spool", "max_lifetime", "0", "max_lifetime must not be 0");
	bad("spool", "retry_min", "1y", "bad duration '1y' for retry_min "
	    "(use a number with s, m, h or d)");
	c = ok("spool", "retry_min", "30s");
	CHECK_EQ(c.spool.retry_min_s, 30);
	c = ok("spool", "retry_max", "1m"); /* equal to the default minimum */
	CHECK_EQ(c.spool.retry_max_s, 60);
}

static void
test_relay(void)
{
	struct config c = ok("relay", "host", "smtp.example.com "
			     "backup.example.com:465 [2001:db8::25]:2525");
	CHECK_EQ(c.relay.nhost, 3);
	CHECK_STR_EQ(c.relay.host[0].host, "smtp.example.com");
	CHECK_EQ(c.relay.host[0].port, 587);
	CHECK_EQ(c.relay.host[1].port, 465);
	CHECK_STR_EQ(c.relay.host[2].host, "2001:db8::25");
	CHECK_EQ(c.relay.host[2].port, 2525);
	c = ok("relay", "host", "");
	CHECK_EQ(c.relay.nhost, 0);
	bad("relay", "host", "smtp.example.com:0",
	    "port out of range in 'smtp.example.com:0'");
	bad("relay", "host", "smtp.example.com:99999",
	    "port out of range in 'smtp.example.com:99999'");
	bad("relay", "host", "a b c d e f g h i", "too many entries in host "
	    "(at most 8)");
	static const char *const tls[] = { "auto", "starttls", "implicit",
					   "none" };
	for (int i = 0; i < 4; i++) {
		c = ok("relay", "tls", tls[i]);
		CHECK_EQ(c.relay.tls, i);
	}
	bad("relay", "tls", "STARTTLS", "bad value 'STARTTLS' for tls (use "
	    "auto, starttls, implicit or none)");
	c = ok("relay", "verify", "no");
	CHECK(!c.relay.verify);
	bad("relay", "verify", "sometimes", "bad value 'sometimes' for verify "
	    "(use yes or no)");
	c = ok("relay", "ca_file", "/etc/ssl/ca.pem");
	CHECK_STR_EQ(c.relay.ca_file, "/etc/ssl/ca.pem");
	char user[300];
	memset(user, 'u', 299);
	user[299] = '\0';
	bad("relay", "user", user, "user is too long (at most 255 bytes)");
	bad("relay", "user", "me", "user is set but password_file is not");
	bad("relay", "password_file", "/p", "password_file is set but user "
	    "is not");
}

static void
test_mx_port(void)
{
	struct config c = ok("mx", "port", "2525");
	CHECK_EQ(c.mx.port, 2525);
	c = ok("mx", "port", "65535");
	CHECK_EQ(c.mx.port, 65535);
	c = ok("mx", "port", "1");
	CHECK_EQ(c.mx.port, 1);
	bad("mx", "port", "0", "port must not be 0");
	bad("mx", "port", "65536", "port is too large (at most 65535)");
	bad("mx", "port", "99999999999999999999", "bad number "
	    "'99999999999999999999' for port");
	bad("mx", "port", "smtp", "bad number 'smtp' for port");
	bad("mx", "port", "", "bad number '' for port");
	bad("mx", "port", "-25", "bad number '-25' for port");
}

static void
test_rewrite_domain(void)
{
	struct config c = ok("rewrite", "domain", "example.org");
	CHECK_STR_EQ(c.rewrite.domain, "example.org");
	c = ok("rewrite", "domain", "localdomain");
	CHECK_STR_EQ(c.rewrite.domain, "localdomain");
	c = ok("rewrite", "domain", "");
	CHECK_STR_EQ(c.rewrite.domain, "");
	bad("rewrite", "domain", "bad name", "bad domain 'bad name' for "
	    "domain (use a name such as example.org)");
	bad("rewrite", "domain", "a..b", "bad domain 'a..b' for domain (use "
	    "a name such as example.org)");
	bad("rewrite", "domain", "-a.org", "bad domain '-a.org' for domain "
	    "(use a name such as example.org)");
	bad("rewrite", "domain", "example.org.", "bad domain 'example.org.' "
	    "for domain (use a name such as example.org)");
	bad("rewrite", "domain", "192.0.2.1", "bad domain '192.0.2.1' for "
	    "domain (use a name such as example.org)");
	bad("rewrite", "domain", "[192.0.2.1]", "bad domain '[192.0.2.1]' "
	    "for domain (use a name such as example.org)");
	bad("rewrite", "domain", "@example.org", "bad domain '@example.org' "
	    "for domain (use a name such as example.org)");
	bad("rewrite", "domain", "b\xc3\xa4r.de", "bad domain 'b??r.de' for "
	    "domain (use a name such as example.org)");
	char label[80];
	memset(label, 'a', 64);
	snprintf(label + 64, sizeof label - 64, ".org");
	struct config_entry e = { 0 };
	snprintf(e.section, sizeof e.section, "rewrite");
	snprintf(e.key, sizeof e.key, "domain");
	snprintf(e.value, sizeof e.value, "%s", label);
	snprintf(e.source, sizeof e.source, "t.ini:3");
	char err[CONFIG_ERR_MAX];
	config_defaults(&c);
	CHECK_EQ(config_check_entry(&e, &c, err, sizeof err), -1);
	CHECK(strncmp(err, "t.ini:3: bad domain 'aaaa", 25) == 0);
	CHECK_STR_EQ(c.rewrite.domain, ""); /* unchanged on error */
}

/* "a...a@" (nlocal a's) and a 253-byte domain of long labels. */
static void
long_path(char *out, size_t size, size_t nlocal)
{
	char label[64];
	memset(label, 'b', 63);
	label[63] = '\0';
	snprintf(out, size, "%.*s@%s.%s.%s.%.61s", (int)nlocal, "aaaa", label,
		 label, label, label);
}

static void
test_rewrite_mailbox(void)
{
	static const char *const keys[] = { "admin", "from" };
	for (int i = 0; i < 2; i++) {
		const char *k = keys[i];
		char want[CONFIG_ERR_MAX];
		struct config c = ok("rewrite", k, "ops@example.org");
		const char *got = i == 0 ? c.rewrite.admin : c.rewrite.from;
		CHECK_STR_EQ(got, "ops@example.org");
		CHECK_STR_EQ(i == 0 ? c.rewrite.from : c.rewrite.admin, "");
		c = ok("rewrite", k, "\"a b\"@[192.0.2.1]");
		got = i == 0 ? c.rewrite.admin : c.rewrite.from;
		CHECK_STR_EQ(got, "\"a b\"@[192.0.2.1]");
		c = ok("rewrite", k, "");
		CHECK_STR_EQ(i == 0 ? c.rewrite.admin : c.rewrite.from, "");
		static const char *const bads[] = { "root", "@example.org",
			"a@", "a@b@c", "<a@example.org>", "a@-x.org",
			"@r.org:a@example.org", "a b@example.org",
			"caf\xc3\xa9@example.org", "a@example.org " };
		static const char *const shown[] = { "root", "@example.org",
			"a@", "a@b@c", "<a@example.org>", "a@-x.org",
			"@r.org:a@example.org", "a b@example.org",
			"caf??@example.org", "a@example.org " };
		for (size_t j = 0; j < sizeof bads / sizeof bads[0]; j++) {
			snprintf(want, sizeof want, "bad address '%s' for %s "
				 "(use local@domain)", shown[j], k);
			bad("rewrite", k, bads[j], want);
		}
		/* A path of SMTP_PATH_MAX bytes fits; one more does not
		 * (RFC 5321 4.5.3.1.3). */
		char longer[SMTP_PATH_MAX + 16];
		long_path(longer, sizeof longer, 2);
		CHECK_EQ(strlen(longer), SMTP_PATH_MAX);
		struct config_entry e = { 0 };
		snprintf(e.section, sizeof e.section, "rewrite");
		snprintf(e.key, sizeof e.key, "%s", k);
		snprintf(e.value, sizeof e.value, "%s", longer);
		snprintf(e.source, sizeof e.source, "t.ini:4");
		char err[CONFIG_ERR_MAX] = "";
		config_defaults(&c);
		CHECK_EQ(config_check_entry(&e, &c, err, sizeof err), 0);
		CHECK_STR_EQ(i == 0 ? c.rewrite.admin : c.rewrite.from, longer);
		long_path(e.value, sizeof e.value, 3);
		CHECK_EQ(config_check_entry(&e, &c, err, sizeof err), -1);
		CHECK(strncmp(err, "t.ini:4: bad address 'aaa@bbb", 29) == 0);
		/* The earlier value stays. */
		CHECK_STR_EQ(i == 0 ? c.rewrite.admin : c.rewrite.from, longer);
	}
}

static void
test_rewrite_other(void)
{
	struct config c = ok("rewrite", "aliases", "/etc/aliases");
	CHECK_STR_EQ(c.rewrite.aliases, "/etc/aliases");
	c = ok("rewrite", "aliases", "");
	CHECK_STR_EQ(c.rewrite.aliases, "");
	c = ok("rewrite", "from_header", "rewrite");
	CHECK(c.rewrite.from_header_rewrite);
	c = ok("rewrite", "from_header", "keep");
	CHECK(!c.rewrite.from_header_rewrite);
	bad("rewrite", "from_header", "yes", "bad value 'yes' for from_header "
	    "(use keep or rewrite)");
	bad("rewrite", "from_header", "Rewrite", "bad value 'Rewrite' for "
	    "from_header (use keep or rewrite)");
	bad("rewrite", "from_header", "", "bad value '' for from_header (use "
	    "keep or rewrite)");
}

static void
test_mx_tls(void)
{
	static const char *const tls[] = { "opportunistic", "required",
					   "none" };
	static const enum config_mx_tls want[] = {
		CONFIG_MX_TLS_OPPORTUNISTIC, CONFIG_MX_TLS_REQUIRED,
		CONFIG_MX_TLS_NONE };
	for (int i = 0; i < 3; i++) {
		struct config c = ok("mx", "tls", tls[i]);
		CHECK_EQ(c.mx.tls, want[i]);
	}
	bad("mx", "tls", "starttls", "bad value 'starttls' for tls (use "
	    "opportunistic, required or none)");
	bad("mx", "tls", "Required", "bad value 'Required' for tls (use "
	    "opportunistic, required or none)");
	bad("mx", "tls", "", "bad value '' for tls (use opportunistic, "
	    "required or none)");
	/* [relay] tls keeps its own words. */
	bad("relay", "tls", "opportunistic", "bad value 'opportunistic' for "
	    "tls (use auto, starttls, implicit or none)");
}

static void
test_mx_dns(void)
{
	struct config c = ok("mx", "dns_servers", "127.0.0.1:10053");
	CHECK_EQ(c.mx.ndns_servers, 1);
	CHECK_STR_EQ(c.mx.dns_servers[0].host, "127.0.0.1");
	CHECK_EQ(c.mx.dns_servers[0].port, 10053);
	c = ok("mx", "dns_servers", " 192.0.2.53, [::1]:5354\t[2001:db8::53] "
	       "10.0.0.1:65535 ");
	CHECK_EQ(c.mx.ndns_servers, 4);
	CHECK_STR_EQ(c.mx.dns_servers[0].host, "192.0.2.53");
	CHECK_EQ(c.mx.dns_servers[0].port, 53);
	CHECK_STR_EQ(c.mx.dns_servers[1].host, "::1");
	CHECK_EQ(c.mx.dns_servers[1].port, 5354);
	CHECK_STR_EQ(c.mx.dns_servers[2].host, "2001:db8::53");
	CHECK_EQ(c.mx.dns_servers[2].port, 53);
	CHECK_STR_EQ(c.mx.dns_servers[3].host, "10.0.0.1");
	CHECK_EQ(c.mx.dns_servers[3].port, 65535);
	c = ok("mx", "dns_servers", "");
	CHECK_EQ(c.mx.ndns_servers, 0);
	c = ok("mx", "dns_servers", " , ");
	CHECK_EQ(c.mx.ndns_servers, 0);

	/* c-ares takes IP addresses only. */
	bad("mx", "dns_servers", "localhost:53", "DNS server must be an IP "
	    "address, not a name, in 'localhost:53'");
	bad("mx", "dns_servers", "127.0.0.1 ns1.example.com", "DNS server "
	    "must be an IP address, not a name, in 'ns1.example.com'");
	/* c-ares would wrap these silently. */
	bad("mx", "dns_servers", "127.0.0.1:99999",
	    "port out of range in '127.0.0.1:99999'");
	bad("mx", "dns_servers", "127.0.0.1:65536",
	    "port out of range in '127.0.0.1:65536'");
	bad("mx", "dns_servers", "[::1]:70000",
	    "port out of range in '[::1]:70000'");
	bad("mx", "dns_servers", "127.0.0.1:0",
	    "port out of range in '127.0.0.1:0'");
	bad("mx", "dns_servers", "127.0.0.1:", "bad port in '127.0.0.1:'");
	bad("mx", "dns_servers", "::1", "IPv6 address needs brackets "
	    "([::1]:25) in '::1'");
	bad("mx", "dns_servers", "[::1", "missing ']' in '[::1'");
	bad("mx", "dns_servers", "[127.0.0.1]:53",
	    "bad IPv6 address in '[127.0.0.1]:53'");
	bad("mx", "dns_servers", "300.0.0.1", "bad host in '300.0.0.1'");
	bad("mx", "dns_servers", "127.1:53", "bad host in '127.1:53'");

	char many[256] = "";
	for (int i = 0; i < CONFIG_MAX_DNS; i++) {
		size_t n = strlen(many);
		snprintf(many + n, sizeof many - n, "127.0.0.%d ", i + 1);
	}
	c = ok("mx", "dns_servers", many);
	CHECK_EQ(c.mx.ndns_servers, CONFIG_MAX_DNS);
	CHECK_STR_EQ(c.mx.dns_servers[CONFIG_MAX_DNS - 1].host, "127.0.0.8");
	size_t n = strlen(many);
	snprintf(many + n, sizeof many - n, "127.0.0.9");
	bad("mx", "dns_servers", many, "too many entries in dns_servers (at "
	    "most 8)");
}

static void
test_mx_other(void)
{
	struct config c = ok("mx", "connections_per_domain", "1");
	CHECK_EQ(c.mx.connections_per_domain, 1);
	c = ok("mx", "connections_per_domain", "1000");
	CHECK_EQ(c.mx.connections_per_domain, 1000);
	bad("mx", "connections_per_domain", "0", "connections_per_domain must "
	    "not be 0");
	bad("mx", "connections_per_domain", "1001", "connections_per_domain "
	    "is too large (at most 1000)");
	bad("mx", "connections_per_domain", "ten", "bad number 'ten' for "
	    "connections_per_domain");
	c = ok("mx", "ca_file", "/etc/ssl/mx-ca.pem");
	CHECK_STR_EQ(c.mx.ca_file, "/etc/ssl/mx-ca.pem");
	CHECK_STR_EQ(c.relay.ca_file, ""); /* the two are separate */
	c = ok("relay", "ca_file", "/r.pem");
	CHECK_STR_EQ(c.mx.ca_file, "");
	c = ok("mx", "ca_file", "");
	CHECK_STR_EQ(c.mx.ca_file, "");
	bad("mx", "dns", "127.0.0.1", "unknown key 'dns' in [mx]");
	bad("mx", "host", "a", "unknown key 'host' in [mx]");

	/* No relay host and no [mx] keys: direct delivery, valid. */
	struct config_raw raw = { 0 };
	char err[CONFIG_ERR_MAX];
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_EQ(c.relay.nhost, 0);
	/* [mx] keys beside a relay host are valid too: the daemon decides. */
	CHECK_EQ(config_raw_set(&raw, "relay", "host", "smtp.example.com",
				"m:1"), 0);
	CHECK_EQ(config_raw_set(&raw, "mx", "tls", "required", "m:2"), 0);
	CHECK_EQ(config_raw_set(&raw, "mx", "port", "2525", "m:3"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_EQ(c.relay.nhost, 1);
	CHECK_EQ(c.mx.tls, CONFIG_MX_TLS_REQUIRED);
	CHECK_EQ(c.mx.port, 2525);
	/* The first bad [mx] entry in order is the one reported. */
	CHECK_EQ(config_raw_set(&raw, "mx", "dns_servers", "dns.example:53",
				"m:4"), 0);
	CHECK_EQ(config_raw_set(&raw, "mx", "connections_per_domain", "0",
				"m:5"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "m:4: DNS server must be an IP address, not a name, "
		     "in 'dns.example:53'");
	config_raw_free(&raw);
}

static void
test_log(void)
{
	struct config c = ok("log", "target", "syslog");
	CHECK_EQ(c.log.target, LOG_TO_SYSLOG);
	c = ok("log", "level", "debug");
	CHECK_EQ(c.log.level, LOG_LVL_DEBUG);
	c = ok("log", "level", "warning");
	CHECK_EQ(c.log.level, LOG_LVL_WARN);
	c = ok("log", "level", "error");
	CHECK_EQ(c.log.level, LOG_LVL_ERR);
	bad("log", "target", "file", "bad value 'file' for target (use stderr "
	    "or syslog)");
	bad("log", "level", "loud", "bad value 'loud' for level (use error, "
	    "warning, info or debug)");
	/* Control bytes in values are not echoed. */
	bad("log", "level", "a\x1b[2Jb", "bad value 'a?[2Jb' for level (use "
	    "error, warning, info or debug)");
}

static void
test_cross_field(void)
{
	struct config_raw raw = { 0 };
	struct config c;
	char err[CONFIG_ERR_MAX];
	/* retry_max below the default retry_min: at retry_max. */
	CHECK_EQ(config_raw_set(&raw, "spool", "retry_max", "30s", "a:3"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "a:3: retry_max (30s) must not be less than "
		     "retry_min (1m)");
	config_raw_free(&raw);
	/* retry_min above the default retry_max: at retry_min. */
	CHECK_EQ(config_raw_set(&raw, "spool", "retry_min", "2h", "a:4"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "a:4: retry_max (1h) must not be less than "
		     "retry_min (2h)");
	/* Both given: at retry_max, wherever it is. */
	CHECK_EQ(config_raw_set(&raw, "spool", "retry_max", "90m",
				"environment OUTBOX_SPOOL_RETRY_MAX"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "environment OUTBOX_SPOOL_RETRY_MAX: retry_max "
		     "(90m) must not be less than retry_min (2h)");
	CHECK_EQ(config_raw_set(&raw, "spool", "retry_max", "2h", "a:9"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_EQ(c.spool.retry_min_s, 7200);
	CHECK_EQ(c.spool.retry_max_s, 7200);
	config_raw_free(&raw);

	/* user and password_file go together. */
	CHECK_EQ(config_raw_set(&raw, "relay", "user", "me", "b:2"), 0);
	CHECK_EQ(config_raw_set(&raw, "relay", "password_file", "/p", "b:3"),
		 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_STR_EQ(c.relay.user, "me");
	CHECK_STR_EQ(c.relay.password_file, "/p");
	CHECK_EQ(config_raw_set(&raw, "relay", "user", "", "b:5"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "b:3: password_file is set but user is not");
	config_raw_free(&raw);
}

static void
test_raw(void)
{
	struct config_raw raw = { 0 };
	struct config c;
	char err[CONFIG_ERR_MAX], big[CONFIG_PATH_MAX + 1];
	CHECK_EQ(config_raw_set(&raw, "log", "level", "debug", "f:1"), 0);
	CHECK_EQ(config_raw_set(&raw, "log", "target", "syslog", "f:2"), 0);
	CHECK_EQ(config_raw_set(&raw, "log", "level", "bogus", "f:3"), 0);
	CHECK_EQ(raw.n, 2);
	CHECK_STR_EQ(raw.entries[0].value, "bogus");
	CHECK_STR_EQ(raw.entries[0].source, "f:3");
	CHECK(config_raw_find(&raw, "log", "target") == &raw.entries[1]);
	CHECK(config_raw_find(&raw, "log", "nope") == NULL);
	/* The first bad entry, in order, is the one reported. */
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "f:3: bad value 'bogus' for level (use error, "
		     "warning, info or debug)");
	/* The later value wins. */
	CHECK_EQ(config_raw_set(&raw, "log", "level", "error", "f:4"), 0);
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_EQ(c.log.level, LOG_LVL_ERR);
	CHECK_EQ(c.log.target, LOG_TO_SYSLOG);
	/* Too long for the entry: refused, nothing stored. */
	memset(big, 'x', CONFIG_PATH_MAX);
	big[CONFIG_PATH_MAX] = '\0';
	CHECK_EQ(config_raw_set(&raw, "spool", "dir", big, "f:5"), -1);
	CHECK_EQ(config_raw_set(&raw, "spool", big + 4000, "x", "f:5"), -1);
	CHECK_EQ(raw.n, 2);
	/* Growth past the first allocation keeps earlier entries. */
	for (int i = 0; i < 100; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		CHECK_EQ(config_raw_set(&raw, "listen", key, "v", "f:6"), 0);
	}
	CHECK_EQ(raw.n, 102);
	CHECK_STR_EQ(raw.entries[1].key, "target");
	CHECK_STR_EQ(raw.entries[101].key, "k99");
	config_raw_free(&raw);
	CHECK(raw.entries == NULL);
	CHECK_EQ(raw.n, 0);
	/* An empty raw set is the defaults. */
	CHECK_EQ(config_check(&raw, &c, err, sizeof err), 0);
	CHECK_EQ(c.listen.max_recipients, 1000);
	/* A failed check leaves out alone. */
	c.listen.max_recipients = 4242;
	CHECK_EQ(check_one("listen", "max_recipients", "5", &c, err,
			   sizeof err), -1);
	CHECK_EQ(c.listen.max_recipients, 4242);
}

static void
test_check_entry(void)
{
	struct config_entry e = { .section = "listen", .key = "timeout",
				  .value = "9s", .source = "x:1" };
	struct config c;
	char err[CONFIG_ERR_MAX];
	config_defaults(&c);
	CHECK_EQ(config_check_entry(&e, &c, err, sizeof err), 0);
	CHECK_EQ(c.listen.timeout_ms, 9000);
	CHECK_EQ(config_check_entry(&e, &c, NULL, 0), 0);
	str_copy(e.value, sizeof e.value, "9q");
	CHECK_EQ(config_check_entry(&e, &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "x:1: bad duration '9q' for timeout (use a number "
		     "with s, m, h or d)");
	CHECK_EQ(c.listen.timeout_ms, 9000);
	/* A short err buffer is cut, not overrun. */
	char small[8];
	CHECK_EQ(config_check_entry(&e, &c, small, sizeof small), -1);
	CHECK_STR_EQ(small, "x:1: ba");
}

int
main(void)
{
	test_defaults();
	test_size();
	test_duration();
	test_bool();
	test_hostport();
	test_cidr();
	test_hostname();
	test_sections();
	test_listen();
	test_spool();
	test_relay();
	test_mx_port();
	test_mx_tls();
	test_mx_dns();
	test_mx_other();
	test_rewrite_domain();
	test_rewrite_mailbox();
	test_rewrite_other();
	test_log();
	test_cross_field();
	test_raw();
	test_check_entry();
	CHECK_DONE();
}
