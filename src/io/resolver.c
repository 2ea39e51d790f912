/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	DNS for direct delivery: c-ares 1.18 on the libuv loop, following
 *	LIBRARIES.md 3.3. The socket-state callback keeps one uv_poll_t per
 *	c-ares socket; one uv_timer_t is re-armed from ares_timeout() after
 *	every call into c-ares. What the answers mean is decided by the pure
 *	proto/mx.c.
 *
 *	User callbacks never run inside c-ares: a finished request is queued
 *	and a uv_idle_t delivers the queue on the next loop turn. That keeps
 *	the "never synchronous" promise (c-ares may complete inside
 *	ares_getaddrinfo) and lets a callback call resolver_free() without
 *	ares_destroy() running inside a c-ares callback.
 *
 *	A request is freed only when c-ares is done with it (in_ares), it is
 *	off the queue (queued) and its callback is not running (in_cb): the
 *	"detached" pattern of STYLE.md 2.6. Cancelling, our own deadline and
 *	resolver_free() only flip flags; the last holder frees.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "outbox/buf.h"
#include "outbox/log.h"
#include "outbox/mx_answer.h"
#include "outbox/resolver.h"
#include "outbox/str.h"

#define RESOLVER_TEXT_MAX 128
#define RESOLVER_CSV_MAX 4096

struct resolver_poll {
	uv_poll_t h;
	struct resolver *r;
	ares_socket_t fd;
	struct resolver_poll *next;
};

enum resolver_kind { REQ_MX, REQ_ADDRS };

struct resolver_req {
	struct resolver *r;
	struct resolver_req *prev, *next; /* r->reqs: every live request */
	struct resolver_req *qnext;       /* r->queue: finished, callback due */
	enum resolver_kind kind;
	resolver_mx_cb mx_cb;
	resolver_addrs_cb addrs_cb;
	void *arg;
	uint64_t deadline;
	uint16_t port;
	bool in_ares;   /* c-ares still holds the request */
	bool queued;    /* on r->queue */
	bool in_cb;     /* its callback is running */
	bool finished;  /* the result is set; later answers are ignored */
	bool cancelled; /* never call back */
	enum mx_status status;
	char text[RESOLVER_TEXT_MAX];
	union {
		struct mx_list mx;
		struct resolver_addrs addrs;
	} res;
};

struct resolver {
	uv_loop_t *loop;
	ares_channel ch;
	uv_timer_t timer;    /* c-ares timeouts */
	uv_timer_t deadline; /* our per-request budget */
	uv_idle_t idle;      /* delivers r->queue */
	struct resolver_poll *polls;
	struct resolver_req *reqs;
	struct resolver_req *qhead, *qtail;
	unsigned handles;    /* open uv handles; r is freed when 0 and closing */
	bool closing;
	uint64_t budget_ms;
	uint64_t rng;
};

static bool resolver_lib_ready;

static void resolver_deadline_cb(uv_timer_t *h);
static void resolver_idle_cb(uv_idle_t *h);
static void resolver_timer_cb(uv_timer_t *h);

/* ---- requests ---------------------------------------------------------- */

static void
resolver_req_release(struct resolver_req *req)
{
	if (req->in_ares || req->queued || req->in_cb)
		return;
	struct resolver *r = req->r;
	if (req->prev)
		req->prev->next = req->next;
	else
		r->reqs = req->next;
	if (req->next)
		req->next->prev = req->prev;
	free(req);
}

static struct resolver_req *
resolver_req_new(struct resolver *r, enum resolver_kind kind, void *arg)
{
	struct resolver_req *req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->r = r;
	req->kind = kind;
	req->arg = arg;
	req->deadline = uv_now(r->loop) + r->budget_ms;
	req->next = r->reqs;
	if (r->reqs)
		r->reqs->prev = req;
	r->reqs = req;
	if (!uv_is_active((uv_handle_t *)&r->deadline))
		uv_timer_start(&r->deadline, resolver_deadline_cb, r->budget_ms,
			       0);
	return req;
}

/* Set the result once and queue the callback for the next loop turn. */
static void
resolver_req_finish(struct resolver_req *req, enum mx_status st,
		    const char *text)
{
	struct resolver *r = req->r;
	if (req->finished || req->cancelled || r->closing)
		return;
	req->finished = true;
	req->status = st;
	str_copy(req->text, sizeof(req->text), text);
	req->queued = true;
	req->qnext = NULL;
	if (r->qtail)
		r->qtail->qnext = req;
	else
		r->qhead = req;
	r->qtail = req;
	uv_idle_start(&r->idle, resolver_idle_cb);
}

static void
resolver_queue_remove(struct resolver *r, struct resolver_req *req)
{
	struct resolver_req **pp = &r->qhead, *prev = NULL;
	while (*pp && *pp != req) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp == NULL)
		return;
	*pp = req->qnext;
	if (r->qtail == req)
		r->qtail = prev;
	req->queued = false;
}

static void
resolver_req_call(struct resolver_req *req)
{
	if (req->kind == REQ_MX)
		req->mx_cb(req->arg, req->status,
			   req->status == MX_OK ? &req->res.mx : NULL,
			   req->text);
	else
		req->addrs_cb(req->arg, req->status,
			      req->status == MX_OK ? &req->res.addrs : NULL,
			      req->text);
}

static void
resolver_idle_cb(uv_idle_t *h)
{
	struct resolver *r = h->data;
	/* Only what is queued now: callbacks that start new requests which
	 * finish at once are delivered on a later turn. */
	struct resolver_req *tail = r->qtail;
	while (!r->closing && r->qhead != NULL) {
		struct resolver_req *req = r->qhead;
		resolver_queue_remove(r, req);
		if (!req->cancelled) {
			req->cancelled = true; /* exactly once */
			req->in_cb = true;
			resolver_req_call(req);
			req->in_cb = false;
		}
		bool last = req == tail;
		resolver_req_release(req);
		if (last)
			break;
	}
	if (!r->closing && r->qhead == NULL)
		uv_idle_stop(&r->idle);
}

/* ---- c-ares plumbing --------------------------------------------------- */

static void
resolver_rearm(struct resolver *r)
{
	struct timeval tv, *tvp;
	if (r->closing)
		return;
	tvp = ares_timeout(r->ch, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&r->timer);
		return;
	}
	uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000;
	uv_timer_start(&r->timer, resolver_timer_cb, ms ? ms : 1, 0);
}

static void
resolver_handle_closed(uv_handle_t *h)
{
	struct resolver *r = h->data;
	if (h->type == UV_POLL)
		free(h);
	if (--r->handles == 0 && r->closing)
		free(r);
}

static void
resolver_poll_cb(uv_poll_t *h, int status, int events)
{
	struct resolver_poll *p = (struct resolver_poll *)h;
	struct resolver *r = p->r;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
	if (status < 0) {
		rfd = wfd = p->fd; /* c-ares finds the error itself */
	} else {
		if (events & UV_READABLE)
			rfd = p->fd;
		if (events & UV_WRITABLE)
			wfd = p->fd;
	}
	ares_process_fd(r->ch, rfd, wfd);
	resolver_rearm(r);
}

static void
resolver_timer_cb(uv_timer_t *h)
{
	struct resolver *r = h->data;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_rearm(r);
}

static void
resolver_poll_close(struct resolver_poll **pp)
{
	struct resolver_poll *p = *pp;
	*pp = p->next;
	uv_poll_stop(&p->h);
	uv_close((uv_handle_t *)&p->h, resolver_handle_closed);
}

static struct resolver_poll *
resolver_poll_open(struct resolver *r, ares_socket_t fd)
{
	struct resolver_poll *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	if (uv_poll_init_socket(r->loop, &p->h, fd) != 0) {
		free(p);
		return NULL;
	}
	p->h.data = r;
	p->r = r;
	p->fd = fd;
	p->next = r->polls;
	r->polls = p;
	r->handles++;
	return p;
}

/* c-ares calls this before it closes a socket, so the poll handle stops
 * watching the fd first (libuv forbids closing an fd under a poll). */
static void
resolver_sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct resolver_poll **pp = &r->polls;
	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	if (!readable && !writable) {
		if (*pp)
			resolver_poll_close(pp);
		return;
	}
	struct resolver_poll *p = *pp;
	if (p == NULL && (p = resolver_poll_open(r, fd)) == NULL) {
		/* The query then ends by the c-ares timeout. */
		log_warn("resolver: cannot watch DNS socket %d", (int)fd);
		return;
	}
	int ev = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	uv_poll_start(&p->h, ev, resolver_poll_cb);
}

/* Our budget: answer MX_TEMP for requests c-ares is still working on. */
static void
resolver_deadline_cb(uv_timer_t *h)
{
	struct resolver *r = h->data;
	uint64_t now = uv_now(r->loop), next = 0;
	for (struct resolver_req *q = r->reqs; q; q = q->next) {
		if (q->finished || q->cancelled)
			continue;
		if (q->deadline <= now)
			resolver_req_finish(q, MX_TEMP, "timeout");
		else if (next == 0 || q->deadline < next)
			next = q->deadline;
	}
	if (next != 0)
		uv_timer_start(&r->deadline, resolver_deadline_cb, next - now,
			       0);
}

static const char *
resolver_temp_text(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 reports SERVFAIL and REFUSED this way too: it
		 * skips such a server and fails when none is left. */
		return "DNS servers failed (SERVFAIL, REFUSED or unreachable)";
	default:
		return ares_strerror(status);
	}
}

/* ---- MX ---------------------------------------------------------------- */

static uint32_t
resolver_random(void *arg)
{
	/* splitmix64, seeded from getrandom() in resolver_new */
	struct resolver *r = arg;
	uint64_t z = (r->rng += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void
resolver_mx_parse(struct resolver_req *req, const unsigned char *abuf,
		  int alen)
{
	const char *why;
	enum mx_status ms = mx_answer_route(abuf, alen, &req->res.mx,
					    resolver_random, req->r, &why);
	resolver_req_finish(req, ms, why);
}

static void
resolver_mx_done(void *arg, int status, int timeouts, unsigned char *abuf,
		 int alen)
{
	struct resolver_req *req = arg;
	(void)timeouts;
	req->in_ares = false;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ||
	    req->finished || req->cancelled)
		; /* nobody to tell */
	else if (status == ARES_SUCCESS)
		resolver_mx_parse(req, abuf, alen);
	else if (status == ARES_ENODATA)
		resolver_req_finish(req, MX_IMPLICIT, "no MX records");
	else if (status == ARES_ENOTFOUND)
		resolver_req_finish(req, MX_NXDOMAIN, "NXDOMAIN");
	else
		resolver_req_finish(req, MX_TEMP, resolver_temp_text(status));
	resolver_req_release(req);
}

/* A name c-ares can be asked about: non-empty, short, printable. */
static bool
resolver_name_ok(const char *name)
{
	size_t len = strnlen(name, HOSTNAME_MAX + 1);
	if (len == 0 || len > HOSTNAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return false;
	return true;
}

struct resolver_req *
resolver_mx(struct resolver *r, const char *domain, resolver_mx_cb cb,
	    void *arg)
{
	if (r->closing)
		return NULL;
	struct resolver_req *req = resolver_req_new(r, REQ_MX, arg);
	if (req == NULL)
		return NULL;
	req->mx_cb = cb;
	if (!resolver_name_ok(domain)) {
		resolver_req_finish(req, MX_NXDOMAIN, "invalid domain name");
		return req;
	}
	req->in_ares = true;
	/* May call resolver_mx_done before it returns; req stays valid
	 * because a finished request is queued, not freed. */
	ares_query(r->ch, domain, ns_c_in, ns_t_mx, resolver_mx_done, req);
	resolver_rearm(r);
	return req;
}

/* ---- addresses --------------------------------------------------------- */

static void
resolver_addrs_add(struct resolver_addrs *out, const struct sockaddr *sa,
		   uint16_t port)
{
	if (out->n >= RESOLVER_MAX_ADDRS)
		return;
	struct sockaddr_storage *ss = &out->addr[out->n];
	memset(ss, 0, sizeof(*ss));
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		memcpy(s6, sa, sizeof(*s6));
		s6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		memcpy(s4, sa, sizeof(*s4));
		s4->sin_port = htons(port);
	}
	out->n++;
}

/*
 * IPv6 first, then IPv4, each in answer order: the simple end of RFC 6724
 * (C12: a dead IPv6 address costs one connect attempt, then IPv4 follows
 * in the same delivery attempt).
 */
static void
resolver_addrs_collect(struct resolver_req *req, struct ares_addrinfo *ai)
{
	static const int order[2] = { AF_INET6, AF_INET };
	struct resolver_addrs *out = &req->res.addrs;
	out->n = 0;
	for (int k = 0; k < 2; k++)
		for (struct ares_addrinfo_node *nd = ai->nodes; nd;
		     nd = nd->ai_next)
			if (nd->ai_family == order[k] && nd->ai_addr)
				resolver_addrs_add(out, nd->ai_addr,
						   req->port);
}

static void
resolver_addrs_done(void *arg, int status, int timeouts,
		    struct ares_addrinfo *ai)
{
	struct resolver_req *req = arg;
	(void)timeouts;
	req->in_ares = false;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ||
	    req->finished || req->cancelled) {
		; /* nobody to tell */
	} else if (status == ARES_SUCCESS && ai != NULL) {
		resolver_addrs_collect(req, ai);
		if (req->res.addrs.n > 0)
			resolver_req_finish(req, MX_OK, "");
		else
			resolver_req_finish(req, MX_NXDOMAIN, "no address");
	} else if (status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
		   status == ARES_ENODATA) {
		resolver_req_finish(req, MX_NXDOMAIN,
				    status == ARES_ENODATA ? "no address" :
				    "NXDOMAIN");
	} else {
		resolver_req_finish(req, MX_TEMP, resolver_temp_text(status));
	}
	if (ai)
		ares_freeaddrinfo(ai);
	resolver_req_release(req);
}

struct resolver_req *
resolver_addrs(struct resolver *r, const char *host, uint16_t port,
	       resolver_addrs_cb cb, void *arg)
{
	if (r->closing)
		return NULL;
	struct resolver_req *req = resolver_req_new(r, REQ_ADDRS, arg);
	if (req == NULL)
		return NULL;
	req->addrs_cb = cb;
	req->port = port;
	if (!resolver_name_ok(host)) {
		resolver_req_finish(req, MX_NXDOMAIN, "invalid host name");
		return req;
	}
	struct ares_addrinfo_hints hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT; /* we order; no probe sockets */
	req->in_ares = true;
	/* Completes synchronously for IP literals; see resolver_mx. */
	ares_getaddrinfo(r->ch, host, NULL, &hints, resolver_addrs_done, req);
	resolver_rearm(r);
	return req;
}

void
resolver_cancel(struct resolver_req *req)
{
	if (req == NULL || req->in_cb)
		return;
	req->cancelled = true;
	if (req->queued)
		resolver_queue_remove(req->r, req);
	/* Still in c-ares: resolver_*_done frees it when c-ares lets go. */
	resolver_req_release(req);
}

/* ---- setup and teardown ------------------------------------------------ */

static int
resolver_servers_csv(const struct config_hostport *servers, size_t n,
		     struct buf *csv, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct config_hostport *s = &servers[i];
		unsigned char bin[16];
		bool v6 = inet_pton(AF_INET6, s->host, bin) == 1;
		if (!v6 && inet_pton(AF_INET, s->host, bin) != 1) {
			snprintf(err, errlen,
				 "DNS server \"%.64s\" is not an IP address",
				 s->host);
			return -1;
		}
		/* c-ares wraps bad ports silently (LIBRARIES.md 3.3). */
		if (s->port == 0) {
			snprintf(err, errlen, "DNS server %s: bad port 0",
				 s->host);
			return -1;
		}
		if (buf_printf(csv, "%s%s%s%s:%u", i ? "," : "", v6 ? "[" : "",
			       s->host, v6 ? "]" : "", s->port) != 0) {
			snprintf(err, errlen, "too many DNS servers");
			return -1;
		}
	}
	return 0;
}

static int
resolver_set_servers(ares_channel ch, const struct config_hostport *servers,
		     size_t n, char *err, size_t errlen)
{
	struct buf csv;
	int ret = -1;
	buf_init(&csv, RESOLVER_CSV_MAX);
	if (resolver_servers_csv(servers, n, &csv, err, errlen) != 0)
		goto out;
	int st = ares_set_servers_ports_csv(ch, csv.data);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS servers: %s", ares_strerror(st));
		goto out;
	}
	/* Check that c-ares took what we meant (it has parsed silently before). */
	struct ares_addr_port_node *list = NULL;
	size_t got = 0;
	bool ports_ok = true;
	if (ares_get_servers_ports(ch, &list) == ARES_SUCCESS) {
		for (struct ares_addr_port_node *p = list; p; p = p->next, got++)
			if (got < n && (unsigned)p->udp_port != servers[got].port)
				ports_ok = false;
		ares_free_data(list);
	}
	if (got != n || !ports_ok) {
		snprintf(err, errlen, "DNS servers: c-ares stored a different list");
		goto out;
	}
	ret = 0;
out:
	buf_free(&csv);
	return ret;
}

static int
resolver_channel(struct resolver *r, const struct resolver_opts *o,
		 char *err, size_t errlen)
{
	struct ares_options opts;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = resolver_sock_cb;
	opts.sock_state_cb_data = r;
	opts.timeout = (int)o->timeout_ms;
	opts.tries = (int)o->tries;
	opts.domains = NULL;      /* no search domains: never guess FQDNs */
	opts.ndomains = 0;
	opts.lookups = (char *)"b"; /* DNS only, as Postfix smtp_host_lookup=dns */
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
		   ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
	int st = ares_init_options(&r->ch, &opts, mask);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(st));
		return -1;
	}
	return 0;
}

static void
resolver_seed(struct resolver *r)
{
	if (uv_random(NULL, NULL, &r->rng, sizeof(r->rng), 0, NULL) != 0)
		r->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32);
}

static bool
resolver_opts_ok(const struct resolver_opts *o)
{
	return o->timeout_ms >= 1 && o->timeout_ms <= 600000 &&
	       o->tries >= 1 && o->tries <= 100 && o->budget_ms >= 1;
}

int
resolver_new_opts(uv_loop_t *loop, const struct config_hostport *servers,
		  size_t n, const struct resolver_opts *opts,
		  struct resolver **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!resolver_opts_ok(opts)) {
		snprintf(err, errlen, "resolver: bad timeout options");
		return -1;
	}
	if (!resolver_lib_ready) {
		int st = ares_library_init(ARES_LIB_INIT_ALL);
		if (st != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
			return -1;
		}
		resolver_lib_ready = true;
	}
	struct resolver *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->loop = loop;
	r->budget_ms = opts->budget_ms;
	if (resolver_channel(r, opts, err, errlen) != 0) {
		free(r);
		return -1;
	}
	if (n > 0 && resolver_set_servers(r->ch, servers, n, err, errlen) != 0) {
		ares_destroy(r->ch); /* no sockets yet: no socket callbacks */
		free(r);
		return -1;
	}
	resolver_seed(r);
	uv_timer_init(loop, &r->timer);
	uv_timer_init(loop, &r->deadline);
	uv_idle_init(loop, &r->idle);
	r->timer.data = r->deadline.data = r->idle.data = r;
	r->handles = 3;
	/* Pending queries keep the loop alive through c-ares' own timer and
	 * sockets; the budget timer alone should not. */
	uv_unref((uv_handle_t *)&r->deadline);
	*out = r;
	return 0;
}

int
resolver_new(uv_loop_t *loop, const struct config_hostport *servers,
	     size_t n, struct resolver **out, char *err, size_t errlen)
{
	const struct resolver_opts opts = {
		.timeout_ms = RESOLVER_TIMEOUT_MS,
		.tries = RESOLVER_TRIES,
		.budget_ms = RESOLVER_BUDGET_MS,
	};
	return resolver_new_opts(loop, servers, n, &opts, out, err, errlen);
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL || r->closing)
		return;
	r->closing = true;
	/* Runs every pending c-ares callback with ARES_EDESTRUCTION (they see
	 * r->closing and only let go) and reports every socket closed. */
	ares_destroy(r->ch);
	while (r->polls)
		resolver_poll_close(&r->polls);
	while (r->qhead)
		resolver_queue_remove(r, r->qhead);
	/* Every request not inside its own callback goes now; that one is
	 * released by resolver_idle_cb when the callback returns. */
	struct resolver_req *q = r->reqs;
	while (q) {
		struct resolver_req *next = q->next;
		q->cancelled = true;
		resolver_req_release(q);
		q = next;
	}
	uv_close((uv_handle_t *)&r->timer, resolver_handle_closed);
	uv_close((uv_handle_t *)&r->deadline, resolver_handle_closed);
	uv_close((uv_handle_t *)&r->idle, resolver_handle_closed);
}
