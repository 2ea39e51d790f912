/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DELIVERY_PRIV_H
#define OUTBOX_DELIVERY_PRIV_H
/*
 * One outbound delivery: a connection to one destination that carries one
 * or more jobs. Split over delivery.c (protocol events and results),
 * delivery_route.c (which host and address to try next: smarthost list,
 * MX records, address literal) and delivery_body.c (streaming the message
 * file through dot-stuffing).
 */
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/conn.h"
#include "outbox/dot.h"
#include "outbox/mx.h"
#include "outbox/resolver.h"
#include "outbox/smtp_client.h"

#include "queue_priv.h"

#define DELIVERY_MAX_ADDRS 5     /* addresses per attempt (Postfix) */
#define DELIVERY_MAX_SESSIONS 2  /* MX sessions per attempt (Postfix) */
#define DELIVERY_CONNECT_MS 30000
#define DELIVERY_IDLE_MS 2000    /* keep a ready session for the next job */
#define DELIVERY_READ_SIZE (64 * 1024)
#define DELIVERY_HIGH_WATER (256 * 1024)

struct route_host {
	char name[HOSTNAME_MAX + 3];
	uint16_t port;
};

struct delivery {
	struct daemon *d;
	struct queue *q;
	struct dest *dest;
	struct delivery *all_next, *all_prev;  /* dest->all */
	struct delivery *idle_next;            /* dest->idle */
	struct conn *conn;
	uv_timer_t timer;
	struct smtp_client *cli;
	struct smtp_client_cfg ccfg;
	struct buf lines;           /* reply bytes not yet framed into lines */
	struct job *job;            /* in hand, borrowed from the queue */
	const char **rcpt_ptrs;     /* recipients offered in this transaction */
	size_t *rcpt_idx;           /* their index in job->idx */
	size_t nsent;

	/* route */
	struct route_host hosts[MX_MAX_HOSTS];
	size_t nhosts, host_idx;
	bool implicit_mx;
	struct resolver_addrs addrs;
	size_t addr_idx;
	uv_getaddrinfo_t gai;
	bool gai_busy;
	struct resolver_req *dns;
	unsigned tries;             /* addresses tried this attempt */
	unsigned sessions;          /* connections that reached the server */
	bool any_temp;              /* a lookup failed temporarily */
	struct sockaddr_storage cur_addr;
	bool plain_retry;           /* opportunistic TLS failed: same host, no TLS */
	char relay[320];            /* "host[ip]:port" for logs, "none" before */
	bool session_ok;            /* reached READY on this connection */
	bool ever_ok;               /* ... on any connection */
	bool connecting;
	bool tls_verified;
	struct smtp_client_result last; /* why the last address failed */

	/* body */
	uv_fs_t fsreq;
	bool fs_busy;
	bool wait_drain;
	int fd;
	struct spool_held *held;  /* or the body held in memory (a ref) */
	const char *hbody;        /* ...its bytes */
	char *rbuf;
	int64_t roff;
	size_t rwant;         /* bytes asked of the read in progress */
	uint32_t crc;
	struct dot_stuff dot;
	struct buf wire;

	unsigned route_gen;         /* d->route_gen when it started */
	bool started;
	bool idle;                  /* parked, waiting for a job */
	bool waking;                /* a job was handed over; run it next turn */
	bool closing;
	unsigned refs;
};

/* delivery.c */
void delivery_event(struct delivery *dl, enum smtp_client_event ev);
void delivery_set_timer(struct delivery *dl, uint64_t ms);
/* Started before the last reload: it takes no new job (D15). */
bool delivery_stale(const struct delivery *dl);
void delivery_end(struct delivery *dl);
void delivery_unref(struct delivery *dl);
void delivery_session_begin(struct delivery *dl);
void delivery_set_last(struct delivery *dl, int code, const char *enh,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
extern const struct conn_hooks delivery_conn_hooks;

/* delivery_route.c */
void delivery_route_start(struct delivery *dl);
/* The current connection failed before the session was usable: next address. */
void delivery_route_next(struct delivery *dl);
/* Opportunistic TLS failed: the same address again, in plaintext. */
void delivery_route_plain(struct delivery *dl);
const struct route_host *delivery_route_host(const struct delivery *dl);
/* Whether another address or host is left to try in this attempt. */
bool delivery_route_more(const struct delivery *dl);
bool delivery_route_is_relay(const struct delivery *dl);

/* delivery_body.c */
void delivery_body_start(struct delivery *dl);
void delivery_body_drain(struct delivery *dl);
/* A parked session's body buffers (read piece, wire) go back to the heap
 * until its next message: idle sessions hold no 200 KiB each. */
void delivery_body_release(struct delivery *dl);
void delivery_body_stop(struct delivery *dl);

#endif
