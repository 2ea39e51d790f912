/* SPDX-License-Identifier: MIT */
/*
 * Which host and address a delivery tries next (RFC 5321 5.1).
 *
 * Hosts: the [relay] host failover list in relay mode; otherwise the
 * destination's MX hosts in preference order (c-ares), the domain itself
 * when it has no MX (implicit MX), or the address of an address literal.
 * Each host's addresses are tried in order, at most DELIVERY_MAX_ADDRS
 * per attempt, and at most DELIVERY_MAX_SESSIONS connections that reached
 * an MX server (Postfix smtp_mx_address_limit / smtp_mx_session_limit).
 *
 * Smarthost names are resolved with the system resolver (uv_getaddrinfo,
 * so /etc/hosts works, as users of a smarthost expect); MX lookups and MX
 * host addresses use c-ares, never with search domains.
 *
 * Outcomes: a permanent DNS answer (null MX, NXDOMAIN, no usable host)
 * fails the destination's jobs; anything else that leaves no address to
 * try defers them and backs the destination off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/str.h"

#include "delivery_priv.h"

void delivery_give_up(struct delivery *dl);
void delivery_route_failed(struct delivery *dl,
			   const struct smtp_client_result *r);

static void delivery_route_resolve(struct delivery *dl);

bool
delivery_route_is_relay(const struct delivery *dl)
{
	return dl->dest->name[0] == '\0';
}

const struct route_host *
delivery_route_host(const struct delivery *dl)
{
	size_t i = dl->host_idx < dl->nhosts ? dl->host_idx : 0;
	return &dl->hosts[i];
}

static void
delivery_route_name(struct delivery *dl, const struct sockaddr *sa)
{
	char ip[64] = "?";
	if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
	const struct route_host *h = delivery_route_host(dl);
	snprintf(dl->relay, sizeof(dl->relay), "%s[%s]:%u", h->name, ip,
		 h->port);
}

static int
delivery_route_connect(struct delivery *dl)
{
	delivery_route_name(dl, (struct sockaddr *)&dl->cur_addr);
	int r = conn_connect(dl->d->loop, (struct sockaddr *)&dl->cur_addr,
			     &delivery_conn_hooks, dl, &dl->conn);
	if (r != 0) {
		delivery_set_last(dl, 0, "4.4.1", "connect to %s: %s",
				  dl->relay, uv_strerror(r));
		return r;
	}
	dl->connecting = true;
	delivery_set_timer(dl, DELIVERY_CONNECT_MS);
	return 0;
}

static bool
delivery_route_budget(const struct delivery *dl)
{
	if (dl->tries >= DELIVERY_MAX_ADDRS)
		return false;
	return delivery_route_is_relay(dl) ||
	       dl->sessions < DELIVERY_MAX_SESSIONS;
}

bool
delivery_route_more(const struct delivery *dl)
{
	if (!delivery_route_budget(dl))
		return false;
	return dl->addr_idx < dl->addrs.n || dl->host_idx + 1 < dl->nhosts;
}

/* Try the next address of this host, then the next host. */
static void
delivery_route_try(struct delivery *dl)
{
	while (dl->addr_idx < dl->addrs.n && delivery_route_budget(dl)) {
		dl->cur_addr = dl->addrs.addr[dl->addr_idx++];
		dl->tries++;
		dl->plain_retry = false;
		if (delivery_route_connect(dl) == 0)
			return;
	}
	dl->addrs.n = dl->addr_idx = 0;
	dl->host_idx++;
	delivery_route_resolve(dl);
}

static void
delivery_route_got_addrs(void *arg, enum mx_status status,
			 const struct resolver_addrs *addrs, const char *text)
{
	struct delivery *dl = arg;
	dl->dns = NULL;
	const struct route_host *h = delivery_route_host(dl);
	if (status != MX_OK) {
		if (status == MX_TEMP)
			dl->any_temp = true;
		delivery_set_last(dl, 0, status == MX_TEMP ? "4.4.3" : "5.4.4",
				  "Host or domain name not found. Name service "
				  "error for name=%s type=A: %s",
				  h->name, text ? text : "no address");
		dl->host_idx++;
		delivery_route_resolve(dl);
		return;
	}
	dl->addrs = *addrs;
	dl->addr_idx = 0;
	delivery_route_try(dl);
}

static void
delivery_route_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
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
	struct resolver_addrs addrs = { .n = 0 };
	for (struct addrinfo *a = res; a && addrs.n < RESOLVER_MAX_ADDRS;
	     a = a->ai_next)
		if (a->ai_addrlen <= sizeof(addrs.addr[0]))
			memcpy(&addrs.addr[addrs.n++], a->ai_addr, a->ai_addrlen);
	if (res)
		uv_freeaddrinfo(res);
	if (status < 0 || addrs.n == 0) {
		delivery_route_got_addrs(dl, MX_TEMP, NULL,
					 uv_strerror(status ? status : UV_ENOENT));
		return;
	}
	delivery_route_got_addrs(dl, MX_OK, &addrs, NULL);
}

/* An IP literal needs no lookup. */
static bool
delivery_route_literal(const struct route_host *h, struct resolver_addrs *out)
{
	struct sockaddr_storage *ss = &out->addr[0];
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(h->name, h->port, (struct sockaddr_in *)ss) != 0 &&
	    uv_ip6_addr(h->name, h->port, (struct sockaddr_in6 *)ss) != 0)
		return false;
	out->n = 1;
	return true;
}

static void
delivery_route_system(struct delivery *dl, const struct route_host *h)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", h->port);
	struct addrinfo hints = { 0 };
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	dl->gai.data = dl;
	int r = uv_getaddrinfo(dl->d->loop, &dl->gai, delivery_route_gai_cb,
			       h->name, port, &hints);
	if (r != 0) {
		dl->any_temp = true;
		delivery_set_last(dl, 0, "4.4.3", "cannot resolve %s: %s",
				  h->name, uv_strerror(r));
		dl->host_idx++;
		delivery_route_resolve(dl);
		return;
	}
	dl->gai_busy = true;
	dl->refs++;
}

/* Nothing left to try: bounce when no host could ever be used. */
static void
delivery_route_exhausted(struct delivery *dl)
{
	if (!delivery_route_is_relay(dl) && dl->tries == 0 && !dl->any_temp) {
		struct smtp_client_result r = { .code = 550, .cmd = "" };
		str_copy(r.enh, sizeof(r.enh), dl->implicit_mx ? "5.1.2" : "5.4.4");
		snprintf(r.text, sizeof(r.text),
			 dl->implicit_mx
				 ? "Host or domain name not found: %s has no "
				   "MX and no address"
				 : "no usable MX host for %s",
			 dl->dest->name);
		delivery_route_failed(dl, &r);
		return;
	}
	delivery_give_up(dl);
}

static void
delivery_route_resolve(struct delivery *dl)
{
	if (dl->host_idx >= dl->nhosts || !delivery_route_budget(dl)) {
		delivery_route_exhausted(dl);
		return;
	}
	const struct route_host *h = &dl->hosts[dl->host_idx];
	if (delivery_route_literal(h, &dl->addrs)) {
		dl->addr_idx = 0;
		delivery_route_try(dl);
		return;
	}
	if (delivery_route_is_relay(dl)) {
		delivery_route_system(dl, h);
		return;
	}
	dl->dns = resolver_addrs(dl->d->resolver, h->name, h->port,
				 delivery_route_got_addrs, dl);
	if (dl->dns == NULL)
		delivery_route_got_addrs(dl, MX_TEMP, NULL, "out of memory");
}

static void
delivery_route_got_mx(void *arg, enum mx_status status,
		      const struct mx_list *list, const char *text)
{
	struct delivery *dl = arg;
	dl->dns = NULL;
	const char *domain = dl->dest->name;
	uint16_t port = dl->d->cfg.mx.port;
	if (status == MX_OK) {
		for (size_t i = 0; i < list->n && i < MX_MAX_HOSTS; i++) {
			str_copy(dl->hosts[i].name, sizeof(dl->hosts[i].name),
				 list->host[i].name);
			dl->hosts[i].port = port;
		}
		dl->nhosts = list->n < MX_MAX_HOSTS ? list->n : MX_MAX_HOSTS;
	} else if (status == MX_IMPLICIT) {
		str_copy(dl->hosts[0].name, sizeof(dl->hosts[0].name), domain);
		dl->hosts[0].port = port;
		dl->nhosts = 1;
		dl->implicit_mx = true;
	} else {
		struct smtp_client_result r = { .code = mx_status_code(status),
						.cmd = "" };
		str_copy(r.enh, sizeof(r.enh), mx_status_enh(status));
		snprintf(r.text, sizeof(r.text), "%s: %s%s%s",
			 status == MX_NULL ? "Recipient address has null MX"
			 : status == MX_NXDOMAIN
				 ? "Host or domain name not found"
			 : status == MX_BAD ? "no usable MX host"
					    : "DNS lookup failed",
			 domain, text && *text ? ": " : "", text ? text : "");
		if (mx_status_permanent(status)) {
			log_info("%s: %s", domain, r.text);
			delivery_route_failed(dl, &r);
		} else {
			dl->last = r;
			log_info("%s: %s", domain, r.text);
			delivery_give_up(dl);
		}
		return;
	}
	dl->host_idx = 0;
	delivery_route_resolve(dl);
}

static void
delivery_route_relay_hosts(struct delivery *dl)
{
	const struct config *cfg = &dl->d->cfg;
	dl->nhosts = 0;
	for (size_t i = 0; i < cfg->relay.nhost && i < MX_MAX_HOSTS; i++) {
		str_copy(dl->hosts[i].name, sizeof(dl->hosts[i].name),
			 cfg->relay.host[i].host);
		dl->hosts[i].port = cfg->relay.host[i].port;
		dl->nhosts++;
	}
}

void
delivery_route_start(struct delivery *dl)
{
	dl->host_idx = dl->tries = dl->sessions = 0;
	dl->any_temp = false;
	if (delivery_route_is_relay(dl)) {
		delivery_route_relay_hosts(dl);
		delivery_route_resolve(dl);
		return;
	}
	char ip[64];
	if (mx_literal_ip(dl->dest->name, ip, sizeof(ip)) == 0) {
		str_copy(dl->hosts[0].name, sizeof(dl->hosts[0].name), ip);
		dl->hosts[0].port = dl->d->cfg.mx.port;
		dl->nhosts = 1;
		delivery_route_resolve(dl);
		return;
	}
	dl->dns = resolver_mx(dl->d->resolver, dl->dest->name,
			      delivery_route_got_mx, dl);
	if (dl->dns == NULL)
		delivery_route_got_mx(dl, MX_TEMP, NULL, "out of memory");
}

static void
delivery_route_drop_conn(struct delivery *dl)
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
}

void
delivery_route_next(struct delivery *dl)
{
	delivery_route_drop_conn(dl);
	delivery_route_try(dl);
}

void
delivery_route_plain(struct delivery *dl)
{
	delivery_route_drop_conn(dl);
	dl->plain_retry = true;
	if (delivery_route_connect(dl) != 0)
		delivery_route_try(dl);
}
