/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DAEMON_H
#define OUTBOX_DAEMON_H
/*
 * The daemon's wiring: one libuv loop, one spool, the listener with its
 * inbound sessions, and the queue with its outbound deliveries. Everything
 * here runs on the loop thread. struct daemon is owned by main.c and
 * outlives every object that points at it.
 */
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/config.h"
#include "outbox/header_rewrite.h"
#include "outbox/envelope.h"
#include "outbox/spool.h"
#include "outbox/tls.h"

struct listener;
struct queue;
struct control;
struct maildrop;
struct aliases;

struct daemon {
	uv_loop_t *loop;
	struct config cfg;            /* current; replaced whole on reload */
	char config_path[CONFIG_PATH_MAX];
	bool config_embedded;         /* --local */
	char hostname[HOSTNAME_MAX + 1];
	struct spool *spool;
	struct listener *listener;
	struct queue *queue;
	struct tls_ctx *tls;          /* relay TLS context; NULL with tls = none */
	struct tls_ctx *mx_tls;       /* MX TLS context (verify only for tls = required) */
	struct resolver *resolver;    /* c-ares, for direct delivery */
	struct control *control;      /* outbox queue socket */
	struct maildrop *maildrop;    /* sendmail hand-over */
	struct aliases *aliases;      /* [rewrite] aliases, or NULL */
	char password[512];           /* relay password; wiped at exit */
	bool stopping;
	uint64_t test_timeout_ms;     /* OUTBOX_TEST_CLIENT_TIMEOUT: caps client timeouts */
	uint64_t spool_free;          /* bytes free in the spool, measured each second */
	unsigned route_gen;           /* +1 per reload: older sessions are not reused (D15) */
	bool queue_loading;           /* the start-up scan is still adding to the queue */
};

/* listener.c: bind every [listen] address. 0 or -1 (logged). */
int listener_start(struct daemon *d);
/* Stop accepting; tell idle sessions 421 and close them; busy ones finish. */
void listener_stop(struct listener *l);
/* Sessions still open (shutdown waits for 0). */
unsigned listener_sessions(const struct listener *l);
void listener_free(struct listener *l);
/* Activity stopped: give freed heap back to the system shortly (at most
 * once a second). NULL or a stopping listener: nothing. */
void listener_trim_soon(struct listener *l);

/* session.c: take over an accepted client. */
struct session;
void session_start(struct daemon *d, struct listener *l, uv_stream_t *server);
void session_shutdown(struct session *s);

/* queue.c: the in-memory queue over the spool, and delivery scheduling. */
int queue_new(struct daemon *d, struct queue **out);
/* Take ownership of env (heap) and schedule it. */
void queue_add(struct queue *q, struct envelope *env);
/* Start deliveries for due messages. */
void queue_kick(struct queue *q);
/* Forget the destination's backoff (after a reload changed the route). */
void queue_reset_backoff(struct queue *q);
/* Abort deliveries (messages stay queued). */
void queue_stop(struct queue *q);
/* Deliveries and spool updates still running. */
unsigned queue_busy(const struct queue *q);
void queue_free(struct queue *q);
size_t queue_size(const struct queue *q);

/*
 * queue.c, for the control socket (outbox queue). Messages are named by
 * queue id; busy means a delivery holds it right now.
 */
typedef void (*queue_each_fn)(void *arg, const struct envelope *env, bool busy);
void queue_ctl_foreach(struct queue *q, queue_each_fn fn, void *arg);
const struct envelope *queue_ctl_find(struct queue *q, const char *id,
				      bool *busy);
/* Retry now: one message (0, -ENOENT) or every message (id NULL: count). */
int queue_ctl_flush(struct queue *q, const char *id);
/* Hold (kept, never delivered) or release; persistent. 0 or -ENOENT. */
int queue_ctl_hold(struct queue *q, const char *id, bool hold);
/* Remove without delivery or DSN. 0 done, 1 deferred until the delivery
 * holding it gives it back (never mid-transaction), -ENOENT unknown. */
int queue_ctl_delete(struct queue *q, const char *id);

/* control.c: the UNIX control socket for `outbox queue`. */
int control_start(struct daemon *d);
void control_stop(struct daemon *d);
/* The start-up scan is done: answer the requests held until then. */
void control_queue_loaded(struct daemon *d);

/* rewrite.c: [rewrite] for locally submitted mail. */
void rewrite_domain(const struct daemon *d, char *out, size_t size);
/* Aliases, admin and domain applied to e's recipients and sender. 0 or -errno. */
int rewrite_envelope(const struct daemon *d, struct envelope *e);
/* Read [rewrite] aliases (NULL when unset). 0, or -1 (logged). */
int rewrite_load(const struct config *cfg, struct aliases **out);
/*
 * The header stage of one locally submitted message (header_rewrite.h):
 * [rewrite] domain, from and from_header, and the Date, Message-ID
 * (<id@hostname>) and From (the final envelope sender) to add when
 * missing. sender is the envelope sender before or after
 * rewrite_envelope (the result is the same). Heap; rewrite_stage_free.
 */
struct rewrite_stage {
	struct header_rewrite hr;
	char domain[HOSTNAME_MAX + 1];
	char date[64];
	char msgid[ID_SIZE + HOSTNAME_MAX + 4];
	char from[SMTP_PATH_MAX + 1];
};
struct rewrite_stage *rewrite_stage_new(const struct daemon *d,
					const char *id, const char *sender);
void rewrite_stage_free(struct rewrite_stage *st);
void rewrite_free(struct aliases *a);

/* maildrop.c: take in what `outbox send` (sendmail) dropped. */
int maildrop_start(struct daemon *d);
void maildrop_stop(struct daemon *d);

/* Used by session.c and queue.c. */
void daemon_date(char *out, size_t size);   /* RFC 5322 date, now */
/* [listen] hostname, else the host's FQDN (may block: start-up only). */
void daemon_fqdn(const struct config *cfg, char *out, size_t size);
void daemon_date_at(int64_t when, char *out, size_t size);
int64_t daemon_now(void);                   /* wall clock seconds */
/* Called when a listener session ends or a delivery ends, to finish shutdown. */
void daemon_maybe_exit(struct daemon *d);

#endif
