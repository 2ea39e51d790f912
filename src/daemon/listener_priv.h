/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_LISTENER_PRIV_H
#define OUTBOX_LISTENER_PRIV_H
/* Shared between listener.c and session.c only. */
#include "outbox/daemon.h"

struct server_sock;

/* Descriptors kept from sessions, on top of a quarter of RLIMIT_NOFILE. */
#define LISTENER_FD_RESERVE 32

struct listener {
	struct daemon *d;
	struct server_sock *socks[CONFIG_MAX_LISTEN];
	size_t nsocks;
	struct session *sessions;   /* intrusive list of open sessions */
	unsigned nsessions;
	unsigned fd_cap;            /* sessions RLIMIT_NOFILE allows (E2) */
	bool stopping;
	uv_timer_t space_timer;     /* measures free spool space (D5) */
	uv_fs_t space_req;
	bool space_busy;
	bool orphaned;              /* freed by its owner while statfs ran */
	uv_timer_t trim_timer;      /* listener_trim_soon */
	uint64_t trim_last;         /* loop time of the last trim */
};

struct session *session_next(struct session *s);

#endif
