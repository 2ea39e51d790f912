/* layer: daemon */
/* SPDX-License-Identifier: MIT */
/*
 * test_config: loading through inih: exact line numbers (after comments,
 * blank lines, CRLF, long lines), syntax errors, sections without keys,
 * environment overrides, the embedded --local config, the password file
 * checks, etc/outbox.ini, and (when the binary is found) `outbox config
 * check` itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "outbox/config.h"

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char cli_env[PATH_MAX]; /* $OUTBOX_CLI at start; tests unset it */

/* Load text named "t.ini"; expect failure with exactly want. */
static void
load_bad(const char *text, const char *want)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";
	int rc = config_load_string(text, "t.ini", &c, err, sizeof err);
	if (rc == 0)
		CHECK_FAIL("loaded, expected: %s", want);
	CHECK_STR_EQ(err, want);
}

static struct config
load_ok(const char *text)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";
	if (config_load_string(text, "t.ini", &c, err, sizeof err) != 0)
		CHECK_FAIL("load failed: %s", err);
	return c;
}

static void
test_basic(void)
{
	struct config c = load_ok("");
	CHECK_EQ(c.listen.naddress, 2);
	CHECK_EQ(c.relay.nhost, 0);
	c = load_ok("; only a comment\n\n# another\n");
	CHECK_EQ(c.listen.max_recipients, 1000);
	c = load_ok("[relay]\nhost = smtp.example.com:465 ; the provider\n"
		    "[log]\nlevel = debug\n[spool]\ndir = q#1\n"
		    "  retry_min = 2m\n");
	CHECK_EQ(c.relay.nhost, 1);
	CHECK_EQ(c.relay.host[0].port, 465);
	CHECK_EQ(c.log.level, LOG_LVL_DEBUG);
	CHECK_STR_EQ(c.spool.dir, "q#1"); /* '#' is not an inline comment */
	CHECK_EQ(c.spool.retry_min_s, 120); /* indented: a key, not a
					       continuation */
	/* Duplicate keys: the later wins. */
	c = load_ok("[log]\nlevel = debug\nlevel = error\n");
	CHECK_EQ(c.log.level, LOG_LVL_ERR);
	/* A section may appear twice. */
	c = load_ok("[log]\nlevel = debug\n[spool]\ndir = a\n[log]\n"
		    "target = syslog\n");
	CHECK_EQ(c.log.level, LOG_LVL_DEBUG);
	CHECK_EQ(c.log.target, LOG_TO_SYSLOG);
	/* CRLF line ends, a UTF-8 BOM, no final newline, "key: value". */
	c = load_ok("\xEF\xBB\xBF[listen]\r\nmax_connections = 7\r\n"
		    "timeout: 9s");
	CHECK_EQ(c.listen.max_connections, 7);
	CHECK_EQ(c.listen.timeout_ms, 9000);
}

static void
test_line_numbers(void)
{
	load_bad("[listen]\nmax_recipients = 5\n",
		 "t.ini:2: max_recipients must be at least 100 (RFC 5321 "
		 "4.5.3.1.8)");
	load_bad("; comment\n\n[listen]\n# c\n\n  ; c\ntimeout = 5m\n"
		 "bare_newline = loose\n",
		 "t.ini:8: bad value 'loose' for bare_newline (use normalize "
		 "or strict)");
	load_bad("[listen]\r\n\r\nfoo = 1\r\n", "t.ini:3: unknown key 'foo' in "
		 "[listen]");
	load_bad("\xEF\xBB\xBF[listenx]\n", "t.ini:1: unknown section "
		 "[listenx]");
	/* The first error in file order wins, syntax or value. */
	load_bad("[log]\nlevel = x\nbroken line\n", "t.ini:2: bad value 'x' "
		 "for level (use error, warning, info or debug)");
	load_bad("[log]\nbroken line\nlevel = x\n", "t.ini:2: syntax error: "
		 "expected 'key = value'");
	load_bad("[log]\n\n  [spool\ndir = x\n", "t.ini:3: syntax error: "
		 "expected '[section]'");
	load_bad("address = 127.0.0.1:25\n", "t.ini:1: key 'address' is "
		 "outside any section (add [listen], [spool], [relay], [mx], "
		 "[rewrite] or [log] above it)");
	load_bad("[spool]\nretry_max = 30s\n", "t.ini:2: retry_max (30s) must "
		 "not be less than retry_min (1m)");
	load_bad("[spool]\nretry_min = 3h\n\n", "t.ini:2: retry_max (1h) must "
		 "not be less than retry_min (3h)");
	load_bad("[relay]\nhost = a\nuser = me\n", "t.ini:3: user is set but "
		 "password_file is not");
}

/* Sections are checked at their header, even when no key follows. */
static void
test_sections(void)
{
	load_bad("[listen]\n[foo]\n", "t.ini:2: unknown section [foo]");
	load_ok("[log]\nlevel = info\n\n[mx]\n; nothing here\n");
	load_bad("[mx]\n[MX]\nport = 25\n", "t.ini:2: unknown section [MX]");
	/* [rewrite] is a section like the others, also without keys. */
	load_ok("[mx]\n[rewrite]\n");
	load_ok("[log]\n  [rewrite] ; address rewriting\n");
	load_bad("[mx]\n[Rewrite]\n", "t.ini:2: unknown section [Rewrite]");
	load_bad("[rewrite]\nalias = x\n", "t.ini:2: unknown key 'alias' in "
		 "[rewrite]");
	load_bad("[Log]\n", "t.ini:1: unknown section [Log]");
}

/* [mx]: every key, and its errors at their own lines. */
static void
test_mx(void)
{
	struct config c = load_ok("[relay]\nhost =\n\n[mx]\n"
				  "port = 2525\n"
				  "tls = required ; for the test MX\n"
				  "dns_servers = 127.0.0.1:10053, [::1]\n"
				  "connections_per_domain = 3\n");
	CHECK_EQ(c.relay.nhost, 0);
	CHECK_EQ(c.mx.port, 2525);
	CHECK_EQ(c.mx.tls, CONFIG_MX_TLS_REQUIRED);
	CHECK_EQ(c.mx.ndns_servers, 2);
	CHECK_STR_EQ(c.mx.dns_servers[0].host, "127.0.0.1");
	CHECK_EQ(c.mx.dns_servers[0].port, 10053);
	CHECK_STR_EQ(c.mx.dns_servers[1].host, "::1");
	CHECK_EQ(c.mx.dns_servers[1].port, 53);
	CHECK_EQ(c.mx.connections_per_domain, 3);
	CHECK_STR_EQ(c.mx.ca_file, "");
	/* Defaults when [mx] is absent or empty. */
	c = load_ok("[mx]\n");
	CHECK_EQ(c.mx.port, 25);
	CHECK_EQ(c.mx.tls, CONFIG_MX_TLS_OPPORTUNISTIC);
	CHECK_EQ(c.mx.ndns_servers, 0);
	CHECK_EQ(c.mx.connections_per_domain, 10);

	load_bad("[mx]\n\nport = 0\n", "t.ini:3: port must not be 0");
	load_bad("[mx]\nport = 65536\n", "t.ini:2: port is too large (at "
		 "most 65535)");
	load_bad("[log]\nlevel = info\n[mx]\ntls = required\ntls = maybe\n",
		 "t.ini:5: bad value 'maybe' for tls (use opportunistic, "
		 "required or none)");
	load_bad("[mx]\r\n; c\r\ndns_servers = localhost:53\r\n",
		 "t.ini:3: DNS server must be an IP address, not a name, in "
		 "'localhost:53'");
	load_bad("[mx]\ndns_servers = 127.0.0.1:53 127.0.0.1:99999\n",
		 "t.ini:2: port out of range in '127.0.0.1:99999'");
	load_bad("[mx]\ndns_servers = 127.0.0.1:0\n",
		 "t.ini:2: port out of range in '127.0.0.1:0'");
	load_bad("[mx]\ndns_servers = 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 "
		 "6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9\n", "t.ini:2: too many "
		 "entries in dns_servers (at most 8)");
	load_bad("[mx]\nport = 25\n\nconnections_per_domain = 1001\n",
		 "t.ini:4: connections_per_domain is too large (at most 1000)");
	load_bad("[mx]\nconnections_per_domain = 0\n", "t.ini:2: "
		 "connections_per_domain must not be 0");
	load_bad("[mx]\nretry_min = 1m\n", "t.ini:2: unknown key "
		 "'retry_min' in [mx]");
	load_bad("[spool]\nretry_min = 1m\n[mx]\nport = x\n", "t.ini:4: "
		 "bad number 'x' for port");
}

/* Lines up to CONFIG_LINE_MAX arrive whole; longer ones are refused. */
static void
test_long_lines(void)
{
	static char text[3 * CONFIG_LINE_MAX];
	char want[CONFIG_ERR_MAX];
	size_t vlen = CONFIG_LINE_MAX - strlen("dir = ");
	int n = snprintf(text, sizeof text, "[spool]\n; %0300d\ndir = ", 0);
	memset(text + n, 'd', vlen);
	snprintf(text + n + vlen, sizeof text - (size_t)n - vlen,
		 "\r\n\n[log]\nlevel = bad\n");
	struct config c;
	char err[CONFIG_ERR_MAX];
	CHECK_EQ(config_load_string(text, "t.ini", &c, err, sizeof err), -1);
	CHECK_STR_EQ(err, "t.ini:6: bad value 'bad' for level (use error, "
		     "warning, info or debug)");
	/* The same without the error: the full value arrives. */
	snprintf(text + n + vlen, sizeof text - (size_t)n - vlen,
		 "\r\n\n[log]\nlevel = debug\n");
	c = load_ok(text);
	CHECK_EQ(strlen(c.spool.dir), vlen);
	CHECK_EQ(c.spool.dir[vlen - 1], 'd');
	CHECK_EQ(c.log.level, LOG_LVL_DEBUG);
	/* 300 bytes (over inih's default 200): whole, not cut. */
	n = snprintf(text, sizeof text, "[spool]\ndir = /");
	memset(text + n, 'c', 299);
	snprintf(text + n + 299, 32, "\n[relay]\nverify = no\n");
	c = load_ok(text);
	CHECK_EQ(strlen(c.spool.dir), 300);
	CHECK(!c.relay.verify);
	/* One byte over: refused at its own line. */
	n = snprintf(text, sizeof text, "[spool]\n\ndir = ");
	memset(text + n, 'd', vlen + 1);
	snprintf(text + n + vlen + 1, 32, "\nretry_min = x\n");
	snprintf(want, sizeof want, "t.ini:3: line too long (over %d bytes)",
		 CONFIG_LINE_MAX);
	load_bad(text, want);
	/* A long comment line counts the same. */
	n = snprintf(text, sizeof text, "[spool]\n;");
	memset(text + n, ';', 2 * CONFIG_LINE_MAX);
	snprintf(text + n + 2 * CONFIG_LINE_MAX, 32, "\n");
	snprintf(want, sizeof want, "t.ini:2: line too long (over %d bytes)",
		 CONFIG_LINE_MAX);
	load_bad(text, want);
}

static void
clear_env(void)
{
	static const char *const vars[] = {
		"OUTBOX_RELAY_HOST", "OUTBOX_RELAY_HOSTX", "OUTBOX_LISTEN_ADDRESS",
		"OUTBOX_SPOOL_DIR", "OUTBOX_LOG_LEVEL", "OUTBOX_MX_PORT",
		"OUTBOX_LISTEN_TIMEOUT", "OUTBOX_CONFIG", "OUTBOX_RELAY_TLS",
		"OUTBOX_RELAY_USER", "OUTBOX_RELAY_PASSWORD_FILE",
		"OUTBOX_SPOOL_RETRY_MAX", "OUTBOX_REWRITE_FROM", "OUTBOX_RELAY_",
		"OUTBOXD", "OUTBOX_CLI", "OUTBOX_LISTEN_MAX_MESSAGE_SIZE",
		"OUTBOX_TEST_CLIENT_TIMEOUT", "OUTBOX_MX_DNS_SERVERS",
		"OUTBOX_MX_TLS", "OUTBOX_MX_CONNECTIONS_PER_DOMAIN",
		"OUTBOX_MX_CA_FILE", "OUTBOX_MX_DNS", "OUTBOX_RELAY_CA_FILE",
		"OUTBOX_REWRITE_FROMX", "OUTBOX_REWRITE_DOMAIN",
		"OUTBOX_REWRITE_ALIASES", "OUTBOX_REWRITE_ADMIN",
		"OUTBOX_REWRITE_FROM_HEADER", "OUTBOX_DAEMON_USER",
		"OUTBOX_METRICS_STUCK_AFTER",
	};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

static void
test_env(void)
{
	clear_env();
	/* Not overrides: the config path and test harness variables. */
	setenv("OUTBOX_CONFIG", "/nonexistent.ini", 1);
	setenv("OUTBOXD", "/x/outboxd", 1);
	setenv("OUTBOX_CLI", "/x/outbox", 1);
	setenv("OUTBOX_TEST_CLIENT_TIMEOUT", "5", 1);
	struct config c = load_ok("[relay]\nhost = file.example.com\n");
	CHECK_STR_EQ(c.relay.host[0].host, "file.example.com");

	/* [daemon] and [metrics] are sections like the others. */
	setenv("OUTBOX_DAEMON_USER", "outbox", 1);
	setenv("OUTBOX_METRICS_STUCK_AFTER", "2h", 1);
	c = load_ok("");
	CHECK_STR_EQ(c.daemon.user, "outbox");
	CHECK_EQ(c.metrics.stuck_after_s, 7200);
	unsetenv("OUTBOX_DAEMON_USER");
	unsetenv("OUTBOX_METRICS_STUCK_AFTER");

	setenv("OUTBOX_RELAY_HOST", "smtp.example.com:2525 [::1]", 1);
	setenv("OUTBOX_LISTEN_ADDRESS", "127.0.0.1:2526", 1);
	setenv("OUTBOX_SPOOL_DIR", "/tmp/q", 1);
	setenv("OUTBOX_LOG_LEVEL", "debug", 1);
	setenv("OUTBOX_LISTEN_MAX_MESSAGE_SIZE", "1K", 1);
	c = load_ok("[relay]\nhost = file.example.com\n[log]\nlevel = error\n"
		    "target = syslog\n");
	CHECK_EQ(c.relay.nhost, 2);
	CHECK_STR_EQ(c.relay.host[0].host, "smtp.example.com");
	CHECK_EQ(c.relay.host[0].port, 2525);
	CHECK_STR_EQ(c.relay.host[1].host, "::1");
	CHECK_EQ(c.relay.host[1].port, 587);
	CHECK_EQ(c.listen.naddress, 1);
	CHECK_EQ(c.listen.address[0].port, 2526);
	CHECK_STR_EQ(c.spool.dir, "/tmp/q");
	CHECK_EQ(c.log.level, LOG_LVL_DEBUG);
	CHECK_EQ(c.log.target, LOG_TO_SYSLOG); /* the file still counts */
	CHECK_EQ(c.listen.max_message_size, 1024);
	/* An empty override clears the value: direct delivery. */
	setenv("OUTBOX_RELAY_HOST", "", 1);
	c = load_ok("[relay]\nhost = file.example.com\n");
	CHECK_EQ(c.relay.nhost, 0);
	clear_env();

	setenv("OUTBOX_RELAY_HOSTX", "a", 1);
	load_bad("", "environment OUTBOX_RELAY_HOSTX: unknown key 'hostx' in "
		 "[relay]");
	unsetenv("OUTBOX_RELAY_HOSTX");
	setenv("OUTBOX_RELAY_", "a", 1);
	load_bad("", "environment OUTBOX_RELAY_: unknown key '' in [relay]");
	unsetenv("OUTBOX_RELAY_");
	setenv("OUTBOX_MX_DNS", "127.0.0.1", 1);
	load_bad("", "environment OUTBOX_MX_DNS: unknown key 'dns' in [mx]");
	unsetenv("OUTBOX_MX_DNS");
	setenv("OUTBOX_REWRITE_FROMX", "a@b", 1);
	load_bad("", "environment OUTBOX_REWRITE_FROMX: unknown key 'fromx' "
		 "in [rewrite]");
	unsetenv("OUTBOX_REWRITE_FROMX");
	setenv("OUTBOX_LISTEN_TIMEOUT", "soon", 1);
	load_bad("[listen]\ntimeout = 1m\n", "environment "
		 "OUTBOX_LISTEN_TIMEOUT: bad duration 'soon' for timeout (use "
		 "a number with s, m, h or d)");
	unsetenv("OUTBOX_LISTEN_TIMEOUT");
	setenv("OUTBOX_RELAY_HOST", "smtp.example.com:99999", 1);
	load_bad("", "environment OUTBOX_RELAY_HOST: port out of range in "
		 "'smtp.example.com:99999'");
	/* File errors come first. */
	load_bad("[relay]\ntls = maybe\n", "t.ini:2: bad value 'maybe' for tls "
		 "(use auto, starttls, implicit or none)");
	unsetenv("OUTBOX_RELAY_HOST");
	/* Cross-field errors point at the override. */
	setenv("OUTBOX_SPOOL_RETRY_MAX", "10s", 1);
	load_bad("[spool]\nretry_min = 1m\n", "environment "
		 "OUTBOX_SPOOL_RETRY_MAX: retry_max (10s) must not be less "
		 "than retry_min (1m)");
	unsetenv("OUTBOX_SPOOL_RETRY_MAX");
	setenv("OUTBOX_RELAY_USER", "me", 1);
	load_bad("", "environment OUTBOX_RELAY_USER: user is set but "
		 "password_file is not");
	clear_env();
}

/* OUTBOX_MX_* reaches [mx] like the other sections. */
static void
test_env_mx(void)
{
	clear_env();
	setenv("OUTBOX_MX_DNS_SERVERS", "127.0.0.1:5353", 1);
	struct config c = load_ok("[mx]\ndns_servers = 192.0.2.1 192.0.2.2\n"
				  "port = 2526\n");
	CHECK_EQ(c.mx.ndns_servers, 1);
	CHECK_STR_EQ(c.mx.dns_servers[0].host, "127.0.0.1");
	CHECK_EQ(c.mx.dns_servers[0].port, 5353);
	CHECK_EQ(c.mx.port, 2526); /* the file still counts */
	setenv("OUTBOX_MX_PORT", "10025", 1);
	setenv("OUTBOX_MX_TLS", "none", 1);
	setenv("OUTBOX_MX_CONNECTIONS_PER_DOMAIN", "2", 1);
	c = load_ok("[mx]\nport = 2526\ntls = required\n");
	CHECK_EQ(c.mx.port, 10025);
	CHECK_EQ(c.mx.tls, CONFIG_MX_TLS_NONE);
	CHECK_EQ(c.mx.connections_per_domain, 2);
	/* An empty override goes back to /etc/resolv.conf. */
	setenv("OUTBOX_MX_DNS_SERVERS", "", 1);
	c = load_ok("[mx]\ndns_servers = 192.0.2.1\n");
	CHECK_EQ(c.mx.ndns_servers, 0);
	clear_env();

	setenv("OUTBOX_MX_DNS_SERVERS", "localhost:53", 1);
	load_bad("", "environment OUTBOX_MX_DNS_SERVERS: DNS server must be "
		 "an IP address, not a name, in 'localhost:53'");
	setenv("OUTBOX_MX_DNS_SERVERS", "[::1]:65536", 1);
	load_bad("", "environment OUTBOX_MX_DNS_SERVERS: port out of range in "
		 "'[::1]:65536'");
	/* File errors come first. */
	load_bad("[mx]\nport = 0\n", "t.ini:2: port must not be 0");
	clear_env();
	setenv("OUTBOX_MX_PORT", "0", 1);
	load_bad("[mx]\nport = 25\n", "environment OUTBOX_MX_PORT: port must "
		 "not be 0");
	clear_env();
	setenv("OUTBOX_MX_TLS", "STARTTLS", 1);
	load_bad("", "environment OUTBOX_MX_TLS: bad value 'STARTTLS' for tls "
		 "(use opportunistic, required or none)");
	clear_env();
}

static void
test_local(void)
{
	clear_env();
	CHECK(strstr(config_local_ini, "\nhost") == NULL);
	CHECK(strstr(config_local_ini, "[relay]") == NULL);
	struct config c;
	char err[CONFIG_ERR_MAX] = "";
	CHECK_EQ(config_load_string(config_local_ini, "local", &c, err,
				    sizeof err), 0);
	CHECK_EQ(c.listen.naddress, 1);
	CHECK_STR_EQ(c.listen.address[0].host, "127.0.0.1");
	CHECK_EQ(c.listen.address[0].port, 2525);
	CHECK_STR_EQ(c.spool.dir, "./spool");
	CHECK_EQ(c.log.target, LOG_TO_STDERR);
	CHECK_EQ(c.log.level, LOG_LVL_INFO);
	CHECK_EQ(c.relay.nhost, 0); /* direct MX delivery */
	CHECK_EQ(c.mx.port, 25);
	CHECK_EQ(c.mx.ndns_servers, 0);
	CHECK(strstr(config_local_ini, "required") == NULL);
	CHECK(strstr(config_local_ini, "MX hosts") != NULL);
	setenv("OUTBOX_MX_DNS_SERVERS", "127.0.0.1:10053", 1);
	CHECK_EQ(config_load_string(config_local_ini, "local", &c, err,
				    sizeof err), 0);
	CHECK_EQ(c.mx.ndns_servers, 1);
	CHECK_EQ(c.mx.dns_servers[0].port, 10053);
	unsetenv("OUTBOX_MX_DNS_SERVERS");
	setenv("OUTBOX_RELAY_HOST", "smtp.example.com", 1);
	CHECK_EQ(config_load_string(config_local_ini, "local", &c, err,
				    sizeof err), 0);
	CHECK_EQ(c.relay.nhost, 1);
	CHECK_STR_EQ(c.relay.host[0].host, "smtp.example.com");
	CHECK_EQ(c.relay.host[0].port, 587);
	clear_env();
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(chmod(path, mode), 0); /* exact mode, whatever the umask */
}

/* config text with [relay] user and password_file = path. */
static const char *
relay_ini(const char *path)
{
	static char text[CONFIG_PATH_MAX + 128];
	snprintf(text, sizeof text, "[relay]\nhost = smtp.example.com\n"
		 "user = me\npassword_file = %s\n", path);
	return text;
}

/* [rewrite]: every key from a file, errors at their own lines. */
static void
test_rewrite(void)
{
	char path[128], want[CONFIG_ERR_MAX], text[CONFIG_PATH_MAX];
	clear_env();
	struct config c = load_ok("");
	CHECK_STR_EQ(c.rewrite.domain, "");
	CHECK_STR_EQ(c.rewrite.aliases, "");
	CHECK_STR_EQ(c.rewrite.admin, "");
	CHECK_STR_EQ(c.rewrite.from, "");
	CHECK(!c.rewrite.from_header_rewrite);

	snprintf(path, sizeof path, "%s/aliases", tmpdir);
	write_file(path, "root: ops@example.org\n", 0644);
	snprintf(text, sizeof text, "; local mail\n[rewrite]\n"
		 "domain = example.org\naliases = %s\n"
		 "admin = ops@example.org\nfrom = relay@example.org\n"
		 "from_header = rewrite\n", path);
	c = load_ok(text);
	CHECK_STR_EQ(c.rewrite.domain, "example.org");
	CHECK_STR_EQ(c.rewrite.aliases, path);
	CHECK_STR_EQ(c.rewrite.admin, "ops@example.org");
	CHECK_STR_EQ(c.rewrite.from, "relay@example.org");
	CHECK(c.rewrite.from_header_rewrite);

	load_bad("[log]\nlevel = info\n[rewrite]\n\ndomain = a b\n",
		 "t.ini:5: bad domain 'a b' for domain (use a name such as "
		 "example.org)");
	load_bad("[rewrite]\ndomain = example.org\nadmin = root\n",
		 "t.ini:3: bad address 'root' for admin (use local@domain)");
	load_bad("[rewrite]\nfrom = <me@example.org>\n", "t.ini:2: bad "
		 "address '<me@example.org>' for from (use local@domain)");
	load_bad("[rewrite]\nfrom_header = always\n", "t.ini:2: bad value "
		 "'always' for from_header (use keep or rewrite)");
	/* An inline comment is not part of the value. */
	c = load_ok("[rewrite]\nadmin = ops@example.org ; the team\n");
	CHECK_STR_EQ(c.rewrite.admin, "ops@example.org");

	/* aliases must exist and be a regular file, like ca_file. */
	unlink(path);
	snprintf(text, sizeof text, "[rewrite]\ndomain = example.org\n"
		 "aliases = %s\n", path);
	snprintf(want, sizeof want, "t.ini:3: aliases %s: No such file or "
		 "directory", path);
	load_bad(text, want);
	snprintf(text, sizeof text, "[rewrite]\naliases = %s\n", tmpdir);
	snprintf(want, sizeof want, "t.ini:2: aliases %s is not a regular "
		 "file", tmpdir);
	load_bad(text, want);
	/* [mx]'s bad file is reported before [rewrite]'s. */
	snprintf(text, sizeof text, "[rewrite]\naliases = %s\n[mx]\n"
		 "ca_file = %s/gone.pem\n", path, tmpdir);
	snprintf(want, sizeof want, "t.ini:4: ca_file %s/gone.pem: No such "
		 "file or directory", tmpdir);
	load_bad(text, want);
	clear_env();
}

/* OUTBOX_REWRITE_* reaches [rewrite] and wins over the file. */
static void
test_env_rewrite(void)
{
	char path[128], want[CONFIG_ERR_MAX];
	clear_env();
	snprintf(path, sizeof path, "%s/aliases.env", tmpdir);
	write_file(path, "", 0600);
	setenv("OUTBOX_REWRITE_DOMAIN", "env.example.org", 1);
	setenv("OUTBOX_REWRITE_ALIASES", path, 1);
	setenv("OUTBOX_REWRITE_ADMIN", "boss@env.example.org", 1);
	setenv("OUTBOX_REWRITE_FROM", "", 1);
	setenv("OUTBOX_REWRITE_FROM_HEADER", "rewrite", 1);
	struct config c = load_ok("[rewrite]\ndomain = file.example.org\n"
				  "from = file@example.org\n"
				  "from_header = keep\n");
	CHECK_STR_EQ(c.rewrite.domain, "env.example.org");
	CHECK_STR_EQ(c.rewrite.aliases, path);
	CHECK_STR_EQ(c.rewrite.admin, "boss@env.example.org");
	CHECK_STR_EQ(c.rewrite.from, ""); /* an empty override clears */
	CHECK(c.rewrite.from_header_rewrite);
	clear_env();

	setenv("OUTBOX_REWRITE_DOMAIN", "1.2.3.4", 1);
	load_bad("", "environment OUTBOX_REWRITE_DOMAIN: bad domain '1.2.3.4' "
		 "for domain (use a name such as example.org)");
	clear_env();
	setenv("OUTBOX_REWRITE_FROM", "nobody", 1);
	load_bad("", "environment OUTBOX_REWRITE_FROM: bad address 'nobody' "
		 "for from (use local@domain)");
	clear_env();
	unlink(path);
	setenv("OUTBOX_REWRITE_ALIASES", path, 1);
	snprintf(want, sizeof want, "environment OUTBOX_REWRITE_ALIASES: "
		 "aliases %s: No such file or directory", path);
	load_bad("", want);
	clear_env();
}

/* [mx] ca_file must exist, like [relay]'s; each error names its own line. */
static void
test_mx_ca_file(void)
{
	char path[128], want[CONFIG_ERR_MAX], text[CONFIG_PATH_MAX];
	clear_env();
	snprintf(path, sizeof path, "%s/mx-ca.pem", tmpdir);
	unlink(path);
	snprintf(text, sizeof text, "[log]\nlevel = info\n\n[mx]\n"
		 "ca_file = %s\n", path);
	snprintf(want, sizeof want, "t.ini:5: ca_file %s: No such file or "
		 "directory", path);
	load_bad(text, want);
	/* The source is [mx]'s line, not [relay]'s. */
	snprintf(text, sizeof text, "[relay]\nverify = yes\n[mx]\n"
		 "ca_file = %s\n", path);
	snprintf(want, sizeof want, "t.ini:4: ca_file %s: No such file or "
		 "directory", path);
	load_bad(text, want);
	snprintf(text, sizeof text, "[mx]\nca_file = %s\n", tmpdir);
	snprintf(want, sizeof want, "t.ini:2: ca_file %s is not a regular "
		 "file", tmpdir);
	load_bad(text, want);

	write_file(path, "-----BEGIN CERTIFICATE-----\n", 0644);
	snprintf(text, sizeof text, "[mx]\ntls = required\nca_file = %s\n",
		 path);
	struct config c = load_ok(text);
	CHECK_STR_EQ(c.mx.ca_file, path);
	CHECK_STR_EQ(c.relay.ca_file, "");
	/* [relay]'s missing file is reported before [mx]'s good one. */
	snprintf(text, sizeof text, "[mx]\nca_file = %s\n[relay]\n"
		 "ca_file = %s/gone.pem\n", path, tmpdir);
	snprintf(want, sizeof want, "t.ini:4: ca_file %s/gone.pem: No such "
		 "file or directory", tmpdir);
	load_bad(text, want);

	/* From the environment, the source is the variable. */
	unlink(path);
	setenv("OUTBOX_MX_CA_FILE", path, 1);
	snprintf(want, sizeof want, "environment OUTBOX_MX_CA_FILE: ca_file "
		 "%s: No such file or directory", path);
	load_bad("", want);
	clear_env();
}

static void
test_password(void)
{
	char pw[256], path[128], want[CONFIG_ERR_MAX], err[CONFIG_ERR_MAX];
	struct config c;
	clear_env();
	snprintf(path, sizeof path, "%s/secret", tmpdir);

	write_file(path, "s3cret;#x \r\nsecond line\n", 0644);
	snprintf(want, sizeof want, "t.ini:4: password_file %s is readable "
		 "by others (mode 0644); chmod 600 it", path);
	load_bad(relay_ini(path), want);
	CHECK_EQ(chmod(path, 0602), 0);
	snprintf(want, sizeof want, "t.ini:4: password_file %s is accessible "
		 "by others (mode 0602); chmod 600 it", path);
	load_bad(relay_ini(path), want);

	CHECK_EQ(chmod(path, 0640), 0);
	c = load_ok(relay_ini(path));
	CHECK_EQ(chmod(path, 0600), 0);
	c = load_ok(relay_ini(path));
	CHECK_STR_EQ(c.relay.password_file, path);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), 0);
	CHECK_STR_EQ(pw, "s3cret;#x "); /* the line as is, not INI syntax */

	/* Too small an output buffer is an error, not a cut password. */
	CHECK_EQ(config_read_password(&c, pw, 4, err, sizeof err), -1);
	snprintf(want, sizeof want, "password_file %s: the password is too "
		 "long or not text", path);
	CHECK_STR_EQ(err, want);

	/* The mode is checked again on read. */
	CHECK_EQ(chmod(path, 0644), 0);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), -1);
	snprintf(want, sizeof want, "password_file %s: not a regular file, or "
		 "open to others (mode 0644); chmod 600 it", path);
	CHECK_STR_EQ(err, want);

	write_file(path, "\nlater\n", 0600);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), -1);
	snprintf(want, sizeof want, "password_file %s: the first line is "
		 "empty", path);
	CHECK_STR_EQ(err, want);
	write_file(path, "nonewline", 0600);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), 0);
	CHECK_STR_EQ(pw, "nonewline");

	unlink(path);
	snprintf(want, sizeof want, "t.ini:4: password_file %s: No such file "
		 "or directory", path);
	load_bad(relay_ini(path), want);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), -1);

	snprintf(want, sizeof want, "t.ini:4: password_file %s is not a "
		 "regular file", tmpdir);
	load_bad(relay_ini(tmpdir), want);

	/* From the environment, the source is the variable. */
	write_file(path, "pw\n", 0604);
	setenv("OUTBOX_RELAY_USER", "me", 1);
	setenv("OUTBOX_RELAY_PASSWORD_FILE", path, 1);
	snprintf(want, sizeof want, "environment OUTBOX_RELAY_PASSWORD_FILE: "
		 "password_file %s is readable by others (mode 0604); chmod "
		 "600 it", path);
	load_bad("", want);
	clear_env();
	unlink(path);

	config_defaults(&c);
	CHECK_EQ(config_read_password(&c, pw, sizeof pw, err, sizeof err), -1);
	CHECK_STR_EQ(err, "no password_file in [relay]");

	/* ca_file must exist too. */
	snprintf(want, sizeof want, "t.ini:2: ca_file %s/nope.pem: No such "
		 "file or directory", tmpdir);
	char text[CONFIG_PATH_MAX];
	snprintf(text, sizeof text, "[relay]\nca_file = %s/nope.pem\n", tmpdir);
	load_bad(text, want);
	test_mx_ca_file();
}

static void
test_files(void)
{
	char path[128], want[CONFIG_ERR_MAX], err[CONFIG_ERR_MAX];
	struct config c;
	clear_env();
	snprintf(path, sizeof path, "%s/missing.ini", tmpdir);
	CHECK_EQ(config_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	CHECK_STR_EQ(err, want);

	CHECK_EQ(config_load(tmpdir, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: not a regular file", tmpdir);
	CHECK_STR_EQ(err, want);

	snprintf(path, sizeof path, "%s/o.ini", tmpdir);
	write_file(path, "[listen]\naddress = 127.0.0.1:2525\n\n[log]\n"
		   "level = chatty\n", 0644);
	CHECK_EQ(config_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:5: bad value 'chatty' for level (use "
		 "error, warning, info or debug)", path);
	CHECK_STR_EQ(err, want);

	/* A NUL byte is refused at its line (inih would stop reading at it). */
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0);
	static const char nul[] = "[log]\nlevel = info\x00x\n";
	CHECK_EQ(write(fd, nul, sizeof nul - 1), (long long)sizeof nul - 1);
	close(fd);
	CHECK_EQ(config_load(path, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
	CHECK_STR_EQ(err, want);

	write_file(path, "[listen]\naddress = 127.0.0.1:2525\n", 0644);
	CHECK_EQ(config_load(path, &c, err, sizeof err), 0);
	CHECK_EQ(c.listen.address[0].port, 2525);
	unlink(path);
}

/* Read a whole file into a heap string (caller frees). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/*
 * etc/outbox.ini passes, and uncommenting every "#key = value" line gives
 * exactly the defaults: the reference file documents the real defaults.
 */
static void
test_reference_ini(void)
{
	const char *data = getenv("OUTBOX_TEST_DATA");
	char path[PATH_MAX], err[CONFIG_ERR_MAX];
	struct config c, d, def;
	clear_env();
	if (data == NULL) {
		printf("test_config: OUTBOX_TEST_DATA unset; skipping "
		       "etc/outbox.ini\n");
		return;
	}
	snprintf(path, sizeof path, "%s/../etc/outbox.ini", data);
	CHECK_EQ(config_load(path, &c, err, sizeof err), 0);
	const char *text = slurp(path);
	static char active[65536];
	size_t n = 0, keys = 0;
	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p + 1) : strlen(p);
		bool key = p[0] == '#' && p[1] >= 'a' && p[1] <= 'z' &&
			   memchr(p, '=', len) != NULL;
		keys += key;
		memcpy(active + n, p + key, len - key);
		n += len - key;
		p += len;
	}
	active[n] = '\0';
	/* every key of [listen] [spool] [relay] [mx] [rewrite] [log]
	 * [daemon] [metrics] */
	CHECK_EQ(keys, 36);
	CHECK_EQ(config_load_string(active, "active", &d, err, sizeof err), 0);
	config_defaults(&def);
	CHECK_EQ(d.listen.naddress, def.listen.naddress);
	CHECK_MEM_EQ(d.listen.address, def.listen.address,
		     sizeof def.listen.address);
	CHECK_EQ(d.listen.nallow, def.listen.nallow);
	CHECK_MEM_EQ(d.listen.allow, def.listen.allow, sizeof def.listen.allow);
	CHECK_EQ(d.listen.max_message_size, def.listen.max_message_size);
	CHECK_EQ(d.listen.max_recipients, def.listen.max_recipients);
	CHECK_EQ(d.listen.max_connections, def.listen.max_connections);
	CHECK_EQ(d.listen.timeout_ms, def.listen.timeout_ms);
	CHECK_EQ(d.listen.bare_newline, def.listen.bare_newline);
	CHECK_STR_EQ(d.spool.dir, def.spool.dir);
	CHECK_EQ(d.spool.max_lifetime_s, def.spool.max_lifetime_s);
	CHECK_EQ(d.spool.retry_min_s, def.spool.retry_min_s);
	CHECK_EQ(d.spool.retry_max_s, def.spool.retry_max_s);
	CHECK_EQ(d.relay.nhost, 0);
	CHECK_EQ(d.relay.tls, def.relay.tls);
	CHECK_EQ(d.relay.verify, def.relay.verify);
	CHECK_STR_EQ(d.relay.ca_file, def.relay.ca_file);
	CHECK_STR_EQ(d.relay.user, def.relay.user);
	CHECK_STR_EQ(d.relay.password_file, def.relay.password_file);
	CHECK_EQ(d.mx.port, def.mx.port);
	CHECK_EQ(d.mx.tls, def.mx.tls);
	CHECK_EQ(d.mx.ndns_servers, def.mx.ndns_servers);
	CHECK_MEM_EQ(d.mx.dns_servers, def.mx.dns_servers,
		     sizeof def.mx.dns_servers);
	CHECK_EQ(d.mx.connections_per_domain, def.mx.connections_per_domain);
	CHECK_STR_EQ(d.mx.ca_file, def.mx.ca_file);
	/* Every key was really there: the active text names each. */
	static const char *const mx_keys[] = { "\nport = 25\n",
		"\ntls = opportunistic\n", "\ndns_servers =\n",
		"\nconnections_per_domain = 10\n", "\n[mx]\n" };
	for (size_t i = 0; i < sizeof mx_keys / sizeof mx_keys[0]; i++)
		CHECK(strstr(active, mx_keys[i]) != NULL);
	CHECK_STR_EQ(d.rewrite.domain, def.rewrite.domain);
	CHECK_STR_EQ(d.rewrite.aliases, def.rewrite.aliases);
	CHECK_STR_EQ(d.rewrite.admin, def.rewrite.admin);
	CHECK_STR_EQ(d.rewrite.from, def.rewrite.from);
	CHECK_EQ(d.rewrite.from_header_rewrite, def.rewrite.from_header_rewrite);
	static const char *const rw_keys[] = { "\n[rewrite]\n",
		"\ndomain =\n", "\naliases =\n", "\nadmin =\n", "\nfrom =\n",
		"\nfrom_header = keep\n" };
	for (size_t i = 0; i < sizeof rw_keys / sizeof rw_keys[0]; i++)
		CHECK(strstr(active, rw_keys[i]) != NULL);
	CHECK_EQ(d.log.target, def.log.target);
	CHECK_EQ(d.log.level, def.log.level);
	CHECK_EQ(d.log.json, def.log.json);
	CHECK_STR_EQ(d.daemon.user, def.daemon.user);
	CHECK_STR_EQ(d.metrics.textfile, def.metrics.textfile);
	CHECK_EQ(d.metrics.interval_s, def.metrics.interval_s);
	CHECK_EQ(d.metrics.stuck_after_s, def.metrics.stuck_after_s);
	static const char *const new_keys[] = { "\nformat = text\n",
		"\n[daemon]\n", "\nuser =\n", "\n[metrics]\n", "\ntextfile =\n",
		"\ninterval = 15s\n", "\nstuck_after = 1h\n" };
	for (size_t i = 0; i < sizeof new_keys / sizeof new_keys[0]; i++)
		CHECK(strstr(active, new_keys[i]) != NULL);
}

/* Run the CLI with argv; capture stdout+stderr into out. Exit status. */
static int
run_cli(const char *cli, char *const argv[], char *out, size_t size)
{
	int fds[2];
	CHECK_EQ(pipe(fds), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		execv(cli, argv);
		_exit(127);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The CLI binary: $OUTBOX_CLI, else ../outbox next to this test. */
static bool
find_cli(char *cli, size_t size)
{
	if (cli_env[0] != '\0')
		return snprintf(cli, size, "%s", cli_env) < (int)size;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return false;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	snprintf(cli, size, "%s/../outbox", self);
	return access(cli, X_OK) == 0;
}

static void
test_cli(void)
{
	char cli[PATH_MAX], out[4096], path[128], want[CONFIG_ERR_MAX];
	if (!find_cli(cli, sizeof cli)) {
		printf("test_config: outbox binary not found; skipping CLI\n");
		return;
	}
	clear_env();
	snprintf(path, sizeof path, "%s/cli.ini", tmpdir);
	write_file(path, "[listen]\naddress = 127.0.0.1:2525\n", 0644);

	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check", "-c",
					  path, NULL }, out, sizeof out), 0);
	snprintf(want, sizeof want, "%s: ok\n", path);
	CHECK_STR_EQ(out, want);
	/* OUTBOX_CONFIG names the file when -c is absent. */
	setenv("OUTBOX_CONFIG", path, 1);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check", NULL },
			 out, sizeof out), 0);
	CHECK_STR_EQ(out, want);
	unsetenv("OUTBOX_CONFIG");

	write_file(path, "[listen]\n\naddress = localhost:25\n", 0644);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check",
					  "--config", path, NULL }, out,
			 sizeof out), 1);
	snprintf(want, sizeof want, "%s:3: listen address must be an IP "
		 "address, not a name, in 'localhost:25'\n", path);
	CHECK_STR_EQ(out, want);
	/* The environment is part of what is checked. */
	write_file(path, "", 0644);
	setenv("OUTBOX_LOG_LEVEL", "loud", 1);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check", "-c",
					  path, NULL }, out, sizeof out), 1);
	CHECK_STR_EQ(out, "environment OUTBOX_LOG_LEVEL: bad value 'loud' for "
		     "level (use error, warning, info or debug)\n");
	unsetenv("OUTBOX_LOG_LEVEL");
	unlink(path);

	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "--version", NULL }, out,
			 sizeof out), 0);
	CHECK(strncmp(out, "outbox ", 7) == 0);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "help", NULL }, out,
			 sizeof out), 0);
	CHECK(strstr(out, "config check") != NULL);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", NULL }, out, sizeof out),
		 64);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "frobnicate", NULL }, out,
			 sizeof out), 64);
	CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", NULL }, out,
			 sizeof out), 64);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check", "-x",
					  NULL }, out, sizeof out), 64);
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "config", "check", "-c",
					  NULL }, out, sizeof out), 64);
	/* sendmail by argv[0] basename, and `outbox send`: modes that read
	 * neither stdin nor the configuration. */
	CHECK_EQ(run_cli(cli, (char *[]){ "outbox", "send", "-C", "x", NULL },
			 out, sizeof out), 64);
	CHECK(strncmp(out, "sendmail: ", 10) == 0);
}

int
main(void)
{
	const char *env = getenv("OUTBOX_CLI");
	if (env != NULL)
		snprintf(cli_env, sizeof cli_env, "%s", env);
	CHECK(mkdtemp(tmpdir) != NULL);
	test_basic();
	test_line_numbers();
	test_sections();
	test_mx();
	test_long_lines();
	test_env();
	test_env_mx();
	test_rewrite();
	test_env_rewrite();
	test_local();
	test_password();
	test_files();
	test_reference_ini();
	test_cli();
	CHECK_EQ(rmdir(tmpdir), 0);
	CHECK_DONE();
}
