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
 * owned by the resolver.
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
/* Cancel every request (no callbacks), destroy the channel, close handles.
 * The memory goes in close callbacks: run the loop afterwards. */
void resolver_free(struct resolver *r);

struct resolver_req *resolver_mx(struct resolver *r, const char *domain,
				 resolver_mx_cb cb, void *arg);
/* A and AAAA of host; port is set in every address. */
struct resolver_req *resolver_addrs(struct resolver *r, const char *host,
				    uint16_t port, resolver_addrs_cb cb,
				    void *arg);
void resolver_cancel(struct resolver_req *req);

#endif
