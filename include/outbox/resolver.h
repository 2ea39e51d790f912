/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_RESOLVER_H
#define OUTBOX_RESOLVER_H
/*
 * DNS for direct delivery: c-ares 1.18 driven by the libuv loop
 * (LIBRARIES.md 3.3): one uv_poll_t per c-ares socket, one uv_timer_t for
 * c-ares timeouts. ares_query, never ares_search: no search domains are
 * appended to mail domains.
 *
 * Requests: resolver_mx() and resolver_addrs() take a callback that is
 * called exactly once, always from the loop and never synchronously from
 * the call that started it, unless the request was cancelled with
 * resolver_cancel(), after which it is never called. The request memory is
 * owned by the resolver; once the callback has returned the request is
 * gone, so forget the pointer in the callback (never cancel it later).
 *
 * Names are looked up in DNS only (no /etc/hosts, no search domains:
 * relays never guess FQDNs). IP-literal hosts given to resolver_addrs
 * are converted without a query.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/config.h"
#include "outbox/mx.h"

struct resolver;
struct resolver_req;

#define RESOLVER_MAX_ADDRS 16

struct resolver_addrs {
	struct sockaddr_storage addr[RESOLVER_MAX_ADDRS]; /* port filled in; IPv6 first, then IPv4 */
	size_t n;
};

/* status: MX_OK/MX_IMPLICIT/MX_NULL/MX_NXDOMAIN/MX_TEMP/MX_BAD; list sorted for MX_OK.
 * text: a short human reason for failures ("SERVFAIL", "timeout", ...). */
typedef void (*resolver_mx_cb)(void *arg, enum mx_status status,
			       const struct mx_list *list, const char *text);
/* status: MX_OK, MX_NXDOMAIN (no such host or no address), MX_TEMP. */
typedef void (*resolver_addrs_cb)(void *arg, enum mx_status status,
				  const struct resolver_addrs *addrs,
				  const char *text);

/*
 * servers: n "IP:port" entries (from [mx] dns_servers), or n = 0 for
 * /etc/resolv.conf. 0, or -1 with err.
 */
int resolver_new(uv_loop_t *loop, const struct config_hostport *servers,
		 size_t n, struct resolver **out, char *err, size_t errlen);

/*
 * Timing knobs (additive; resolver_new uses the defaults). c-ares waits
 * timeout_ms for the first try, doubling on each round over the servers,
 * tries rounds; budget_ms is our own hard bound per request, after which
 * the callback gets MX_TEMP "timeout" whatever c-ares is still doing
 * (RELIABILITY.md C2). Defaults: 2000 ms, 3 tries, 15000 ms, so an MX
 * lookup plus an address lookup stay within 30 s.
 */
struct resolver_opts {
	unsigned timeout_ms; /* >= 1 */
	unsigned tries;      /* >= 1 */
	unsigned budget_ms;  /* >= 1 */
};
#define RESOLVER_TIMEOUT_MS 2000
#define RESOLVER_TRIES 3
#define RESOLVER_BUDGET_MS 15000
int resolver_new_opts(uv_loop_t *loop, const struct config_hostport *servers,
		      size_t n, const struct resolver_opts *opts,
		      struct resolver **out, char *err, size_t errlen);
/* Cancel every request (no callbacks), destroy the channel, close handles.
 * The memory goes in close callbacks: run the loop afterwards. */
void resolver_free(struct resolver *r);

/* Both return NULL only when out of memory or after resolver_free(); the
 * callback is then never called. A domain or host that cannot be a DNS
 * name (empty, > 255 octets, spaces or controls) is not sent: it completes
 * with MX_NXDOMAIN on the next loop turn. */
struct resolver_req *resolver_mx(struct resolver *r, const char *domain,
				 resolver_mx_cb cb, void *arg);
/* A and AAAA of host; port is set in every address. */
struct resolver_req *resolver_addrs(struct resolver *r, const char *host,
				    uint16_t port, resolver_addrs_cb cb,
				    void *arg);
/* NULL is ignored. Safe from inside the request's own callback (no-op). */
void resolver_cancel(struct resolver_req *req);

#endif
