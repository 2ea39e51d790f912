/* SPDX-License-Identifier: MIT */
/*
 * Which smarthost address to try next. [relay] host is a failover list;
 * each name is resolved and its addresses tried in order, at most
 * DELIVERY_MAX_ADDRS per attempt (Postfix smtp_mx_address_limit). A
 * connection that fails before its session is ready (refused, timed out,
 * bad greeting, TLS or AUTH failure) moves on to the next address.
 *
 * The smarthost name is resolved with uv_getaddrinfo (the system resolver,
 * /etc/hosts included), which is what users of a smarthost expect; direct
 * MX delivery will use c-ares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/str.h"

#include "delivery_priv.h"

static void delivery_route_resolve(struct delivery *dl);

const struct config_hostport *
delivery_route_host(const struct delivery *dl)
{
	const struct config *cfg = &dl->d->cfg;
	size_t i = dl->host_idx < cfg->relay.nhost ? dl->host_idx : 0;
	return &cfg->relay.host[i];
}

static void
delivery_route_name(struct delivery *dl, const struct sockaddr *sa)
{
	char ip[64] = "?";
	if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
	const struct config_hostport *hp = delivery_route_host(dl);
	snprintf(dl->relay, sizeof(dl->relay), "%s[%s]:%u", hp->host, ip,
		 hp->port);
}

/* Try the next resolved address of this host, then the next host. */
static void
delivery_route_try(struct delivery *dl)
{
	while (dl->ai_next != NULL && dl->tries < DELIVERY_MAX_ADDRS) {
		struct addrinfo *a = dl->ai_next;
		dl->ai_next = a->ai_next;
		dl->tries++;
		delivery_route_name(dl, a->ai_addr);
		int r = conn_connect(dl->d->loop, a->ai_addr,
				     &delivery_conn_hooks, dl, &dl->conn);
		if (r == 0) {
			dl->connecting = true;
			delivery_set_timer(dl, DELIVERY_CONNECT_MS);
			return;
		}
		snprintf(dl->last_error, sizeof(dl->last_error),
			 "connect to %s: %s", dl->relay, uv_strerror(r));
		log_info("%s", dl->last_error);
	}
	if (dl->ai)
		uv_freeaddrinfo(dl->ai);
	dl->ai = dl->ai_next = NULL;
	dl->host_idx++;
	delivery_route_resolve(dl);
}

static void
delivery_route_resolved(uv_getaddrinfo_t *req, int status,
			struct addrinfo *res)
{
	struct delivery *dl = req->data;
	dl->gai_busy = false;
	if (dl->closing) {
		if (res)
			uv_freeaddrinfo(res);
		delivery_unref(dl);
		return;
	}
	dl->refs--; /* the timer still holds one */
	if (status < 0) {
		const struct config_hostport *hp = delivery_route_host(dl);
		snprintf(dl->last_error, sizeof(dl->last_error),
			 "Host or domain name not found. Name service error "
			 "for name=%s: %s",
			 hp->host, uv_strerror(status));
		str_copy(dl->last_enh, sizeof(dl->last_enh), "4.4.3");
		log_info("%s", dl->last_error);
		dl->host_idx++;
		delivery_route_resolve(dl);
		return;
	}
	dl->ai = dl->ai_next = res;
	delivery_route_try(dl);
}

static void
delivery_route_resolve(struct delivery *dl)
{
	const struct config *cfg = &dl->d->cfg;
	if (dl->host_idx >= cfg->relay.nhost || dl->tries >= DELIVERY_MAX_ADDRS) {
		delivery_give_up(dl);
		return;
	}
	const struct config_hostport *hp = &cfg->relay.host[dl->host_idx];
	char port[8];
	snprintf(port, sizeof(port), "%u", hp->port);
	struct addrinfo hints = { 0 };
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	dl->gai.data = dl;
	int r = uv_getaddrinfo(dl->d->loop, &dl->gai, delivery_route_resolved,
			       hp->host, port, &hints);
	if (r != 0) {
		snprintf(dl->last_error, sizeof(dl->last_error),
			 "cannot resolve %s: %s", hp->host, uv_strerror(r));
		dl->host_idx++;
		delivery_route_resolve(dl);
		return;
	}
	dl->gai_busy = true;
	dl->refs++;
}

void
delivery_route_start(struct delivery *dl)
{
	dl->host_idx = 0;
	dl->tries = 0;
	delivery_route_resolve(dl);
}

void
delivery_route_next(struct delivery *dl)
{
	if (dl->conn != NULL)
		conn_close(dl->conn);
	dl->conn = NULL;
	dl->connecting = false;
	if (dl->cli != NULL)
		smtp_client_free(dl->cli);
	dl->cli = NULL;
	dl->session_ok = false;
	buf_reset(&dl->lines);
	uv_timer_stop(&dl->timer);
	delivery_route_try(dl);
}
