/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Name lookups of `outbox check`, each bounded by ctx->timeout_ms.
 *	- check_resolve(): a server's addresses with the system resolver
 *	  (uv_getaddrinfo, so /etc/hosts works), as the daemon resolves a
 *	  smarthost. On timeout the request is cancelled; one that the
 *	  thread pool already runs cannot be, and is waited for.
 *	- check_mx_run(): MX routing with the relay's own c-ares resolver
 *	  (io/resolver.c) and its DNS servers ([mx] dns_servers or --dns),
 *	  then each host's addresses, as direct delivery would see them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/resolver.h"
#include "outbox/str.h"

#include "check_priv.h"

struct check_gai {
	uv_getaddrinfo_t req;
	uv_timer_t timer;
	bool done;
	bool timed_out;
	int status;
	struct addrinfo *res;
};

static void
check_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct check_gai *g = req->data;
	g->done = true;
	g->status = status;
	g->res = res;
	uv_timer_stop(&g->timer);
}

static void
check_gai_timeout(uv_timer_t *t)
{
	struct check_gai *g = t->data;
	g->timed_out = true;
	(void)uv_cancel((uv_req_t *)&g->req);
}

static void
check_gai_copy(const struct addrinfo *ai, unsigned port,
	       struct sockaddr_storage *out, size_t max, size_t *n)
{
	*n = 0;
	for (; ai != NULL && *n < max; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memset(&out[*n], 0, sizeof(out[*n]));
		memcpy(&out[*n], ai->ai_addr, ai->ai_addrlen);
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)&out[*n])->sin_port =
				htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&out[*n])->sin6_port =
				htons((uint16_t)port);
		(*n)++;
	}
}

int
check_resolve(struct check_ctx *ctx, const char *host, unsigned port,
	      struct sockaddr_storage *out, size_t max, size_t *n, char *err,
	      size_t errlen)
{
	struct addrinfo hints;
	struct check_gai g;
	memset(&hints, 0, sizeof(hints));
	memset(&g, 0, sizeof(g));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	g.req.data = &g;
	uv_timer_init(ctx->loop, &g.timer);
	g.timer.data = &g;
	int r = uv_getaddrinfo(ctx->loop, &g.req, check_gai_cb, host, NULL,
			       &hints);
	if (r == 0) {
		uv_timer_start(&g.timer, check_gai_timeout, ctx->timeout_ms, 0);
		uv_run(ctx->loop, UV_RUN_DEFAULT); /* until the request ends */
		r = g.status;
	}
	uv_close((uv_handle_t *)&g.timer, NULL);
	uv_run(ctx->loop, UV_RUN_DEFAULT);
	*n = 0;
	if (r == 0)
		check_gai_copy(g.res, port, out, max, n);
	uv_freeaddrinfo(g.res);
	if (r == 0 && *n > 0)
		return 0;
	if (g.timed_out)
		snprintf(err, errlen, "the lookup timed out after %llu s",
			 (unsigned long long)(ctx->timeout_ms / 1000));
	else
		snprintf(err, errlen, "%s", r ? uv_strerror(r) : "no address");
	return -1;
}

/* ---- MX ----------------------------------------------------------------- */

struct check_dns {
	struct check_mx_obs *obs;
	bool done;
	struct check_mx_host *host;  /* the address lookup in flight */
};

static void
check_dns_servers(const struct check_ctx *ctx, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < ctx->ndns; i++) {
		size_t used = strlen(out);
		bool v6 = strchr(ctx->dns[i].host, ':') != NULL;
		snprintf(out + used, size - used, "%s%s%s%s:%u", i ? " " : "",
			 v6 ? "[" : "", ctx->dns[i].host, v6 ? "]" : "",
			 ctx->dns[i].port);
	}
	if (ctx->ndns > 0)
		return;
	/* The system's servers, as c-ares reads them. */
	FILE *f = fopen("/etc/resolv.conf", "r");
	char line[256];
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char ip[128];
		if (sscanf(line, " nameserver %127s", ip) != 1)
			continue;
		size_t used = strlen(out);
		snprintf(out + used, size - used, "%s%s", used ? " " : "", ip);
	}
	if (f != NULL)
		fclose(f);
	size_t used = strlen(out);
	snprintf(out + used, size - used, "%s(/etc/resolv.conf)",
		 used ? " " : "");
}

static void
check_dns_addrs_cb(void *arg, enum mx_status status,
		   const struct resolver_addrs *addrs, const char *text)
{
	struct check_dns *d = arg;
	struct check_mx_host *h = d->host;
	d->done = true;
	h->resolved = true;
	if (status != MX_OK || addrs == NULL) {
		snprintf(h->error, sizeof(h->error), "%s",
			 text && text[0] ? text : "no address");
		return;
	}
	for (size_t i = 0; i < addrs->n && h->naddrs < CHECK_MX_ADDRS; i++) {
		const struct sockaddr_storage *ss = &addrs->addr[i];
		char *dst = h->addrs[h->naddrs];
		int r = ss->ss_family == AF_INET6
				? uv_ip6_name((const struct sockaddr_in6 *)ss,
					      dst, 64)
				: uv_ip4_name((const struct sockaddr_in *)ss,
					      dst, 64);
		if (r == 0)
			h->naddrs++;
	}
}

static void
check_dns_mx_cb(void *arg, enum mx_status status, const struct mx_list *list,
		const char *text)
{
	struct check_dns *d = arg;
	struct check_mx_obs *o = d->obs;
	d->done = true;
	o->status = status;
	snprintf(o->status_text, sizeof(o->status_text), "%s",
		 text ? text : "");
	if (status != MX_OK || list == NULL)
		return;
	for (size_t i = 0; i < list->n && i < MX_MAX_HOSTS; i++) {
		str_copy(o->host[i].name, sizeof(o->host[i].name),
			 list->host[i].name);
		o->host[i].pref = list->host[i].pref;
	}
	o->nhosts = list->n < MX_MAX_HOSTS ? list->n : MX_MAX_HOSTS;
}

/* Run the loop until the request in flight has called back. The
 * resolver's own budget timer guarantees that it does. */
static void
check_dns_wait(struct check_ctx *ctx, struct check_dns *d)
{
	while (!d->done)
		uv_run(ctx->loop, UV_RUN_ONCE);
}

static void
check_dns_hosts(struct check_ctx *ctx, struct resolver *res,
		struct check_dns *d)
{
	struct check_mx_obs *o = d->obs;
	for (size_t i = 0; i < o->nhosts; i++) {
		d->host = &o->host[i];
		d->done = false;
		if (resolver_addrs(res, o->host[i].name, (uint16_t)o->port,
				   check_dns_addrs_cb, d) == NULL) {
			str_copy(o->host[i].error, sizeof(o->host[i].error),
				 "out of memory");
			continue;
		}
		check_dns_wait(ctx, d);
	}
}

static int
check_dns_open(struct check_ctx *ctx, struct resolver **res, char *err,
	       size_t errlen)
{
	uint64_t t = ctx->timeout_ms;
	struct resolver_opts opts = {
		.timeout_ms = (unsigned)(t < RESOLVER_TIMEOUT_MS ? t / 2 + 1
							   : RESOLVER_TIMEOUT_MS),
		.tries = 2,
		.budget_ms = (unsigned)t,
	};
	return resolver_new_opts(ctx->loop, ctx->dns, ctx->ndns, &opts, res,
				 err, errlen);
}

void
check_mx_run(struct check_ctx *ctx, const char *domain,
	     struct check_report *r)
{
	struct check_mx_obs *o = calloc(1, sizeof(*o));
	struct resolver *res = NULL;
	char err[256];
	if (o == NULL) {
		r->oom = true;
		return;
	}
	o->domain = domain;
	o->port = ctx->cfg.mx.port ? ctx->cfg.mx.port : 25;
	check_dns_servers(ctx, o->servers, sizeof(o->servers));
	if (check_dns_open(ctx, &res, err, sizeof(err)) < 0) {
		o->status = MX_TEMP;
		snprintf(o->status_text, sizeof(o->status_text),
			 "cannot set up the resolver: %s", err);
		check_mx_report(o, r);
		free(o);
		return;
	}
	struct check_dns d = { .obs = o };
	if (resolver_mx(res, domain, check_dns_mx_cb, &d) == NULL) {
		o->status = MX_TEMP;
		str_copy(o->status_text, sizeof(o->status_text), "out of memory");
		d.done = true;
	}
	check_dns_wait(ctx, &d);
	if (o->status == MX_IMPLICIT) {
		/* RFC 5321 5.1: the domain itself, at preference 0. */
		str_copy(o->host[0].name, sizeof(o->host[0].name), domain);
		o->nhosts = 1;
	}
	if (o->status == MX_OK || o->status == MX_IMPLICIT)
		check_dns_hosts(ctx, res, &d);
	resolver_free(res);
	uv_run(ctx->loop, UV_RUN_DEFAULT);
	check_mx_report(o, r);
	free(o);
}
