/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DELIVERY_PRIV_H
#define OUTBOX_DELIVERY_PRIV_H
/*
 * One outbound delivery: a connection to the smarthost that carries one or
 * more messages. Split over delivery.c (protocol events and results),
 * delivery_route.c (which host and address to try next) and
 * delivery_body.c (streaming the message file through dot-stuffing).
 */
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/conn.h"
#include "outbox/dot.h"
#include "outbox/smtp_client.h"

#include "queue_priv.h"

#define DELIVERY_MAX_ADDRS 5     /* addresses per attempt (Postfix) */
#define DELIVERY_CONNECT_MS 30000
#define DELIVERY_READ_SIZE (64 * 1024)
#define DELIVERY_HIGH_WATER (256 * 1024)

struct delivery {
	struct daemon *d;
	struct queue *q;
	struct conn *conn;
	uv_timer_t timer;
	struct smtp_client *cli;
	struct smtp_client_cfg ccfg;
	struct buf lines;           /* reply bytes not yet framed into lines */
	struct qmsg *msg;           /* in hand, borrowed from the queue */
	const char **rcpt_ptrs;     /* recipients offered in this transaction */
	size_t *rcpt_idx;           /* their index in msg->env.rcpts */
	size_t nsent;

	/* route */
	uv_getaddrinfo_t gai;
	bool gai_busy;
	size_t host_idx;            /* [relay] host entry being tried */
	struct addrinfo *ai, *ai_next;
	unsigned tries;
	char relay[320];            /* "host[ip]:port" for logs, "none" before */
	bool session_ok;            /* reached READY on this connection */
	bool connecting;
	char last_error[SMTP_REPLY_TEXT_MAX];
	char last_enh[16];

	/* body */
	uv_fs_t fsreq;
	bool fs_busy;
	bool wait_drain;
	int fd;
	char *rbuf;
	int64_t roff;
	uint32_t crc;
	struct dot_stuff dot;
	struct buf wire;

	bool started;
	bool closing;
	bool reported;              /* queue_delivery_done() called */
	unsigned refs;
};

/* delivery.c */
void delivery_event(struct delivery *dl, enum smtp_client_event ev);
void delivery_set_timer(struct delivery *dl, uint64_t ms);
void delivery_end(struct delivery *dl);
void delivery_unref(struct delivery *dl);
void delivery_session_begin(struct delivery *dl);
/* No address of any host worked: defer the message, back the relay off. */
void delivery_give_up(struct delivery *dl);
extern const struct conn_hooks delivery_conn_hooks;

/* delivery_route.c */
void delivery_route_start(struct delivery *dl);
/* The current connection failed before the session was usable: next address. */
void delivery_route_next(struct delivery *dl);
const struct config_hostport *delivery_route_host(const struct delivery *dl);

/* delivery_body.c */
void delivery_body_start(struct delivery *dl);
void delivery_body_drain(struct delivery *dl);
void delivery_body_stop(struct delivery *dl);

#endif
