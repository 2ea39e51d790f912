/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	io/resolver.c against tests/peers/fake_dns.py on 127.0.0.1 (RELIABILITY.md
 *	group C): MX order, NODATA, null MX, NXDOMAIN, SERVFAIL, timeouts,
 *	TC bit and TCP, CNAME, address order, cancel and teardown with
 *	requests in flight. Every case runs on its own loop, bounded by a
 *	guard timer, and ends with uv_loop_close() == 0. The fake server is
 *	killed at the end (and by PR_SET_PDEATHSIG if the test aborts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "outbox/resolver.h"
#include "outbox/str.h"

static char dir[64];
static char zone_path[128];
static char log_path[128];
static pid_t dns_pid = -1;
static uint16_t dns_port;

/* Set right after a request call returns: a callback that sees it false
 * ran synchronously. */
static bool started;

struct result {
	int called;
	bool sync;
	enum mx_status st;
	struct mx_list list;
	struct resolver_addrs addrs;
	char text[128];
};

/* ---- the fake DNS server ---------------------------------------------- */

static const char zone_json[] =
	"{\n"
	" \"mx.test\": {\"MX\": [[20, \"b.mx.test\"], [10, \"a.mx.test\"]]},\n"
	" \"a.mx.test\": {\"A\": [\"127.0.0.1\"]},\n"
	" \"nodata.test\": {\"A\": [\"127.0.0.1\"]},\n"
	" \"null.test\": {\"MX\": [[0, \".\"]], \"A\": [\"127.0.0.1\"]},\n"
	" \"sf.test\": {\"faults\": {\"*\": \"SERVFAIL\"}},\n"
	" \"ref.test\": {\"faults\": {\"MX\": \"REFUSED\"}},\n"
	" \"to.test\": {\"faults\": {\"*\": \"TIMEOUT\"}},\n"
	" \"tc.test\": {\"MX\": [[5, \"a.mx.test\"]], \"faults\": {\"MX\": \"TRUNCATE\"}},\n"
	" \"alias.test\": {\"CNAME\": \"mx.test\"},\n"
	" \"badmx.test\": {\"MX\": [[10, \"mx_bad!.test\"]]},\n"
	" \"v4.test\": {\"A\": [\"127.0.0.1\"]},\n"
	" \"dual.test\": {\"A\": [\"127.0.0.2\", \"127.0.0.3\"], \"AAAA\": [\"::1\"]},\n"
	" \"many.test\": {\"A\": [\"127.0.0.1\", \"127.0.0.2\", \"127.0.0.3\", \"127.0.0.4\","
	"  \"127.0.0.5\", \"127.0.0.6\", \"127.0.0.7\", \"127.0.0.8\", \"127.0.0.9\","
	"  \"127.0.0.10\", \"127.0.0.11\", \"127.0.0.12\", \"127.0.0.13\", \"127.0.0.14\","
	"  \"127.0.0.15\", \"127.0.0.16\", \"127.0.0.17\", \"127.0.0.18\"]},\n"
	" \"a6sf.test\": {\"faults\": {\"A\": \"SERVFAIL\", \"AAAA\": \"SERVFAIL\"}},\n"
	" BIG\n"
	"}\n";

static void
write_file(const char *path, const char *text)
{
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
	CHECK(rename(tmp, path) == 0); /* atomic switch for the server */
}

/* The zone above with "BIG" replaced by 100 MX records (> 512 octets). */
static void
write_zone(const char *extra)
{
	static char text[16384];
	char big[8192];
	size_t off = 0;
	off += (size_t)snprintf(big + off, sizeof(big) - off, "\"big.test\": {\"MX\": [");
	for (int i = 0; i < 100; i++)
		off += (size_t)snprintf(big + off, sizeof(big) - off,
					"%s[%d, \"host%d.big.test\"]", i ? ", " : "",
					i % 7, i);
	snprintf(big + off, sizeof(big) - off, "]}%s", extra);
	const char *mark = strstr(zone_json, "BIG");
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(mark - zone_json),
		 zone_json, big, mark + 3);
	write_file(zone_path, text);
}

static void
dns_start(void)
{
	const char *data = getenv("OUTBOX_TEST_DATA");
	char script[512];
	snprintf(script, sizeof(script), "%s/peers/fake_dns.py",
		 data ? data : "tests");
	int fds[2];
	CHECK(pipe(fds) == 0);
	dns_pid = fork();
	CHECK(dns_pid >= 0);
	if (dns_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl("/usr/bin/python3", "python3", script, "--zone", zone_path,
		      "--log", log_path, "--port", "0", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char line[128] = "";
	size_t len = 0;
	struct pollfd p = { .fd = fds[0], .events = POLLIN };
	/* bounded: at most 100 reads, 10 s each */
	for (int i = 0; i < 100 && strchr(line, '\n') == NULL; i++) {
		CHECK(poll(&p, 1, 10000) == 1);
		ssize_t k = read(fds[0], line + len, sizeof(line) - 1 - len);
		CHECK(k > 0);
		len += (size_t)k;
		line[len] = '\0';
	}
	close(fds[0]);
	unsigned port = 0;
	CHECK(sscanf(line, "READY %u", &port) == 1);
	CHECK(port > 0 && port < 65536);
	dns_port = (uint16_t)port;
}

static void
dns_stop(void)
{
	if (dns_pid > 0) {
		kill(dns_pid, SIGTERM);
		int status;
		CHECK(waitpid(dns_pid, &status, 0) == dns_pid);
		dns_pid = -1;
	}
}

static bool
log_has(const char *line)
{
	FILE *f = fopen(log_path, "r");
	if (f == NULL)
		return false;
	char buf[512];
	bool found = false;
	while (!found && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		found = strcmp(buf, line) == 0;
	}
	fclose(f);
	return found;
}

/* ---- loop helpers ------------------------------------------------------ */

static void
guard_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Run the loop until *count reaches want or ms pass. Returns elapsed ms. */
static uint64_t
run_until(uv_loop_t *loop, const int *count, int want, uint64_t ms)
{
	uv_timer_t guard;
	bool expired = false;
	uint64_t t0 = uv_hrtime();
	uv_timer_init(loop, &guard);
	guard.data = &expired;
	uv_timer_start(&guard, guard_cb, ms, 0);
	for (int i = 0; i < 100000 && !expired && *count < want; i++)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return (uv_hrtime() - t0) / 1000000;
}

static int total_calls;

static void
mx_cb(void *arg, enum mx_status st, const struct mx_list *list,
      const char *text)
{
	struct result *res = arg;
	res->called++;
	total_calls++;
	res->sync = !started;
	res->st = st;
	if (list)
		res->list = *list;
	CHECK(st == MX_OK ? list != NULL : list == NULL);
	CHECK(text != NULL);
	str_copy(res->text, sizeof(res->text), text);
}

static void
addrs_cb(void *arg, enum mx_status st, const struct resolver_addrs *addrs,
	 const char *text)
{
	struct result *res = arg;
	res->called++;
	total_calls++;
	res->sync = !started;
	res->st = st;
	if (addrs)
		res->addrs = *addrs;
	CHECK(st == MX_OK ? addrs != NULL : addrs == NULL);
	CHECK(text != NULL);
	str_copy(res->text, sizeof(res->text), text);
}

static struct resolver *
make_resolver(uv_loop_t *loop, unsigned timeout_ms, unsigned tries,
	      unsigned budget_ms)
{
	struct config_hostport hp = { .host = "127.0.0.1", .port = dns_port };
	struct resolver_opts o = { timeout_ms, tries, budget_ms };
	struct resolver *r = NULL;
	char err[256] = "";
	CHECK_EQ(uv_loop_init(loop), 0);
	if (resolver_new_opts(loop, &hp, 1, &o, &r, err, sizeof(err)) != 0)
		CHECK_FAIL("resolver_new: %s", err);
	return r;
}

static void
finish(uv_loop_t *loop, struct resolver *r)
{
	resolver_free(r);
	for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
		uv_run(loop, UV_RUN_NOWAIT);
	CHECK_EQ(uv_loop_close(loop), 0);
}

/* One MX lookup, run to completion. */
static void
lookup_mx(struct resolver *r, uv_loop_t *loop, const char *domain,
	  struct result *res)
{
	memset(res, 0, sizeof(*res));
	started = false;
	CHECK(resolver_mx(r, domain, mx_cb, res) != NULL);
	started = true;
	run_until(loop, &res->called, 1, 5000);
	CHECK_EQ(res->called, 1);
	CHECK(!res->sync);
}

static void
lookup_addrs(struct resolver *r, uv_loop_t *loop, const char *host,
	     struct result *res)
{
	memset(res, 0, sizeof(*res));
	started = false;
	CHECK(resolver_addrs(r, host, 2525, addrs_cb, res) != NULL);
	started = true;
	run_until(loop, &res->called, 1, 5000);
	CHECK_EQ(res->called, 1);
	CHECK(!res->sync);
}

/* ---- cases ------------------------------------------------------------- */

static void
test_mx_answers(void)
{
	uv_loop_t loop;
	struct resolver *r = make_resolver(&loop, 500, 2, 5000);
	struct result res;

	lookup_mx(r, &loop, "mx.test", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.list.n, 2);
	CHECK_STR_EQ(res.list.host[0].name, "a.mx.test"); /* 10 before 20 */
	CHECK_EQ(res.list.host[0].pref, 10);
	CHECK_STR_EQ(res.list.host[1].name, "b.mx.test");
	CHECK_EQ(res.list.host[1].pref, 20);

	lookup_mx(r, &loop, "MX.Test", &res); /* DNS is case-insensitive */
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.list.n, 2);

	lookup_mx(r, &loop, "nodata.test", &res); /* C4 */
	CHECK_EQ(res.st, MX_IMPLICIT);

	lookup_mx(r, &loop, "null.test", &res); /* C5 */
	CHECK_EQ(res.st, MX_NULL);
	CHECK(log_has("null.test MX udp"));
	CHECK(!log_has("null.test A udp"));

	lookup_mx(r, &loop, "nx.test", &res); /* C3 */
	CHECK_EQ(res.st, MX_NXDOMAIN);

	lookup_mx(r, &loop, "sf.test", &res); /* C1 */
	CHECK_EQ(res.st, MX_TEMP);
	CHECK(strstr(res.text, "SERVFAIL") != NULL);

	lookup_mx(r, &loop, "ref.test", &res);
	CHECK_EQ(res.st, MX_TEMP);

	lookup_mx(r, &loop, "tc.test", &res); /* C9 */
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.list.n, 1);
	CHECK_STR_EQ(res.list.host[0].name, "a.mx.test");
	CHECK(log_has("tc.test MX udp"));
	CHECK(log_has("tc.test MX tcp"));

	lookup_mx(r, &loop, "big.test", &res); /* > 512 octets: over TCP */
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.list.n, MX_MAX_HOSTS);
	CHECK_EQ(res.list.host[0].pref, 0);
	for (size_t i = 1; i < res.list.n; i++)
		CHECK(res.list.host[i - 1].pref <= res.list.host[i].pref);
	CHECK(log_has("big.test MX tcp"));

	lookup_mx(r, &loop, "alias.test", &res); /* C7: CNAME followed */
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.list.n, 2);
	CHECK_STR_EQ(res.list.host[0].name, "a.mx.test");

	lookup_mx(r, &loop, "badmx.test", &res); /* C7: unusable target */
	CHECK_EQ(res.st, MX_BAD);

	lookup_mx(r, &loop, "bad domain", &res); /* never sent */
	CHECK_EQ(res.st, MX_NXDOMAIN);
	lookup_mx(r, &loop, "", &res);
	CHECK_EQ(res.st, MX_NXDOMAIN);

	finish(&loop, r);
}

/* C2: a server that never answers gives MX_TEMP within the bound. */
static void
test_timeout(void)
{
	uv_loop_t loop;
	struct result res, other;

	/* c-ares gives up: 200 + 400 ms */
	struct resolver *r = make_resolver(&loop, 200, 2, 10000);
	memset(&res, 0, sizeof(res));
	memset(&other, 0, sizeof(other));
	started = false;
	CHECK(resolver_mx(r, "to.test", mx_cb, &res) != NULL);
	/* other lookups go on during the wait */
	CHECK(resolver_mx(r, "mx.test", mx_cb, &other) != NULL);
	started = true;
	run_until(&loop, &other.called, 1, 5000);
	CHECK_EQ(other.called, 1);
	CHECK_EQ(other.st, MX_OK);
	CHECK_EQ(res.called, 0); /* still waiting for to.test */
	uint64_t ms = run_until(&loop, &res.called, 1, 5000);
	CHECK_EQ(res.called, 1);
	CHECK_EQ(res.st, MX_TEMP);
	CHECK_STR_EQ(res.text, "timeout");
	CHECK(ms >= 300 && ms < 3000);
	finish(&loop, r);

	/* our own budget ends it first; c-ares still holds the query when
	 * the resolver is freed */
	r = make_resolver(&loop, 2000, 3, 400);
	lookup_addrs(r, &loop, "to.test", &res);
	CHECK_EQ(res.st, MX_TEMP);
	CHECK_STR_EQ(res.text, "timeout");
	finish(&loop, r);
}

static void
test_addrs(void)
{
	uv_loop_t loop;
	struct resolver *r = make_resolver(&loop, 500, 2, 5000);
	struct result res;
	char ip[64];

	lookup_addrs(r, &loop, "v4.test", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.addrs.n, 1);
	const struct sockaddr_in *s4 = (const void *)&res.addrs.addr[0];
	CHECK_EQ(s4->sin_family, AF_INET);
	CHECK_EQ(ntohs(s4->sin_port), 2525);
	inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
	CHECK_STR_EQ(ip, "127.0.0.1");

	lookup_addrs(r, &loop, "dual.test", &res); /* C12: IPv6 first */
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.addrs.n, 3);
	const struct sockaddr_in6 *s6 = (const void *)&res.addrs.addr[0];
	CHECK_EQ(s6->sin6_family, AF_INET6);
	CHECK_EQ(ntohs(s6->sin6_port), 2525);
	inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
	CHECK_STR_EQ(ip, "::1");
	CHECK_EQ(res.addrs.addr[1].ss_family, AF_INET);
	CHECK_EQ(res.addrs.addr[2].ss_family, AF_INET);
	s4 = (const void *)&res.addrs.addr[2];
	CHECK_EQ(ntohs(s4->sin_port), 2525);

	lookup_addrs(r, &loop, "many.test", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.addrs.n, RESOLVER_MAX_ADDRS);

	lookup_addrs(r, &loop, "nx.test", &res);
	CHECK_EQ(res.st, MX_NXDOMAIN);
	lookup_addrs(r, &loop, "mx.test", &res); /* name without A/AAAA */
	CHECK_EQ(res.st, MX_NXDOMAIN);
	lookup_addrs(r, &loop, "a6sf.test", &res); /* C4: SERVFAIL for A */
	CHECK_EQ(res.st, MX_TEMP);

	/* An IP literal completes inside ares_getaddrinfo; the callback
	 * still comes later. */
	lookup_addrs(r, &loop, "192.0.2.7", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.addrs.n, 1);
	s4 = (const void *)&res.addrs.addr[0];
	inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
	CHECK_STR_EQ(ip, "192.0.2.7");
	lookup_addrs(r, &loop, "2001:db8::7", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_EQ(res.addrs.addr[0].ss_family, AF_INET6);

	finish(&loop, r);
}

/* Cancelled requests never call back; memory goes (ASan checks). */
static void
test_cancel(void)
{
	uv_loop_t loop;
	struct resolver *r = make_resolver(&loop, 200, 1, 5000);
	struct result a, b, c, d;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	total_calls = 0;

	struct resolver_req *qa = resolver_mx(r, "mx.test", mx_cb, &a);
	struct resolver_req *qb = resolver_mx(r, "to.test", mx_cb, &b);
	struct resolver_req *qc = resolver_addrs(r, "192.0.2.1", 25, addrs_cb, &c);
	CHECK(qa && qb && qc);
	resolver_cancel(qa);
	resolver_cancel(qb);
	resolver_cancel(qc); /* already finished inside c-ares, not yet told */
	resolver_cancel(NULL);
	/* a request that is not cancelled still arrives */
	CHECK(resolver_mx(r, "mx.test", mx_cb, &d) != NULL);
	run_until(&loop, &d.called, 1, 3000);
	CHECK_EQ(d.called, 1);
	/* past the c-ares timeout of the cancelled to.test query */
	int never = 0;
	run_until(&loop, &never, 1, 500);
	CHECK_EQ(a.called + b.called + c.called, 0);
	CHECK_EQ(total_calls, 1);
	finish(&loop, r);
}

/* resolver_free with requests in flight: no callbacks, loop closes. */
static void
test_free_in_flight(void)
{
	uv_loop_t loop;
	struct resolver *r = make_resolver(&loop, 2000, 3, 5000);
	struct result a, b, c;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	total_calls = 0;
	CHECK(resolver_mx(r, "to.test", mx_cb, &a) != NULL);
	CHECK(resolver_addrs(r, "to.test", 25, addrs_cb, &b) != NULL);
	CHECK(resolver_addrs(r, "192.0.2.1", 25, addrs_cb, &c) != NULL);
	uv_run(&loop, UV_RUN_NOWAIT); /* the queries are sent */
	finish(&loop, r);
	CHECK_EQ(total_calls, 0);
}

/* A callback that frees the resolver: the others are never called. */
static struct resolver *cb_resolver;

static void
free_in_cb(void *arg, enum mx_status st, const struct resolver_addrs *addrs,
	   const char *text)
{
	(void)st;
	(void)addrs;
	(void)text;
	(*(int *)arg)++;
	total_calls++;
	resolver_free(cb_resolver);
	resolver_free(cb_resolver); /* twice is harmless */
}

static void
test_free_in_callback(void)
{
	uv_loop_t loop;
	cb_resolver = make_resolver(&loop, 2000, 3, 5000);
	int first = 0;
	struct result a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	total_calls = 0;
	/* both complete inside c-ares and are queued for the same turn */
	CHECK(resolver_addrs(cb_resolver, "192.0.2.1", 25,
			     free_in_cb, &first) != NULL);
	CHECK(resolver_addrs(cb_resolver, "192.0.2.2", 25, addrs_cb, &a) != NULL);
	CHECK(resolver_mx(cb_resolver, "to.test", mx_cb, &b) != NULL);
	run_until(&loop, &first, 1, 2000);
	CHECK_EQ(first, 1);
	for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_EQ(uv_loop_close(&loop), 0);
	CHECK_EQ(total_calls, 1);
	CHECK_EQ(a.called + b.called, 0);
}

static void
test_servers(void)
{
	uv_loop_t loop;
	struct resolver *r = NULL;
	char err[256];
	CHECK_EQ(uv_loop_init(&loop), 0);

	struct config_hostport bad_port = { .host = "127.0.0.1", .port = 0 };
	err[0] = '\0';
	CHECK_EQ(resolver_new(&loop, &bad_port, 1, &r, err, sizeof(err)), -1);
	CHECK(r == NULL);
	CHECK(strstr(err, "port") != NULL);

	struct config_hostport name = { .host = "localhost", .port = 53 };
	CHECK_EQ(resolver_new(&loop, &name, 1, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "not an IP address") != NULL);

	struct config_hostport junk[] = {
		{ .host = "127.0.0.1", .port = 53 },
		{ .host = "1.2.3.4.5", .port = 53 },
	};
	CHECK_EQ(resolver_new(&loop, junk, 2, &r, err, sizeof(err)), -1);
	struct config_hostport inject = { .host = "127.0.0.1,10.0.0.1", .port = 53 };
	CHECK_EQ(resolver_new(&loop, &inject, 1, &r, err, sizeof(err)), -1);
	struct config_hostport bracket = { .host = "[::1]", .port = 53 };
	CHECK_EQ(resolver_new(&loop, &bracket, 1, &r, err, sizeof(err)), -1);

	struct resolver_opts zero = { 0, 3, 1000 };
	CHECK_EQ(resolver_new_opts(&loop, &junk[0], 1, &zero, &r, err,
				   sizeof(err)), -1);

	/* IPv6 and IPv4 servers with high ports are accepted as given */
	struct config_hostport good[] = {
		{ .host = "::1", .port = 65535 },
		{ .host = "127.0.0.1", .port = 5353 },
	};
	CHECK_EQ(resolver_new(&loop, good, 2, &r, err, sizeof(err)), 0);
	CHECK(r != NULL);
	resolver_free(r);
	r = NULL;
	/* n == 0: /etc/resolv.conf (nothing is queried here) */
	CHECK_EQ(resolver_new(&loop, NULL, 0, &r, err, sizeof(err)), 0);
	resolver_free(r);
	for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

/* The zone file is re-read: behaviour switches at run time (C13). */
static void
test_zone_switch(void)
{
	uv_loop_t loop;
	struct resolver *r = make_resolver(&loop, 500, 2, 5000);
	struct result res;
	lookup_mx(r, &loop, "later.test", &res);
	CHECK_EQ(res.st, MX_NXDOMAIN);
	write_zone(", \"later.test\": {\"MX\": [[1, \"a.mx.test\"]]}");
	lookup_mx(r, &loop, "later.test", &res);
	CHECK_EQ(res.st, MX_OK);
	CHECK_STR_EQ(res.list.host[0].name, "a.mx.test");
	write_zone("");
	finish(&loop, r);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/outbox-resolver-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(zone_path, sizeof(zone_path), "%s/zone.json", dir);
	snprintf(log_path, sizeof(log_path), "%s/queries.log", dir);
	write_zone("");
	dns_start();

	test_mx_answers();
	test_timeout();
	test_addrs();
	test_cancel();
	test_free_in_flight();
	test_free_in_callback();
	test_servers();
	test_zone_switch();

	dns_stop();
	unlink(zone_path);
	unlink(log_path);
	rmdir(dir);
	CHECK_DONE();
}
