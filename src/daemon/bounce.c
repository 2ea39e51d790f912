/* SPDX-License-Identifier: MIT */
/*
 * Bounces: one RFC 3464 DSN per message for the recipients that failed
 * permanently since the last one, sent from the null sender to the
 * envelope sender and queued through the same spool as any other mail.
 *
 * Order (at least once, never lost): the DSN is committed to the spool
 * first; only then are its recipients marked RCPT_BOUNCED in the original
 * envelope. A crash between the two can send a DSN twice, never zero times.
 *
 * Never a bounce of a bounce (RFC 5321 6.1): a failed message from the
 * null sender is dropped with a log line; a DSN of ours that fails is
 * reported once to [rewrite] admin when set (that report, if it fails
 * too, is dropped), else dropped with a log line.
 * DSNs to one address are rate-limited (BOUNCE_RATE_MAX per window) so a
 * storm of failures cannot turn into a storm of bounces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "outbox/crc32.h"
#include "outbox/daemon.h"
#include "outbox/dsn.h"
#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#include "queue_priv.h"

#define BOUNCE_RATE_MAX 10       /* DSNs per address ... */
#define BOUNCE_RATE_WINDOW 600   /* ... per this many seconds */
#define BOUNCE_RATE_SLOTS 256
#define BOUNCE_DSN_MAX (DSN_HEADERS_MAX + 64 * 1024)

struct bounce_rate {
	uint64_t hash;
	int64_t window_start;
	unsigned count;
};

static struct bounce_rate bounce_rates[BOUNCE_RATE_SLOTS];

struct bounce {
	struct queue *q;
	struct qmsg *m;
	uv_work_t work;
	int fd;
	char *headers;        /* read on the thread pool */
	size_t headers_len;
	struct spool_tx *tx;
	struct buf dsn;
	size_t *idx;          /* recipients this DSN reports */
	size_t n;
	char id[ID_SIZE];     /* the DSN's queue id */
	const char *to;       /* the original sender, or [rewrite] admin */
	uint32_t flags;       /* the DSN's envelope flags */
	struct envelope *env; /* the DSN's envelope (to the queue on success) */
};

static uint64_t
bounce_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 1099511628211ull;
	}
	return h;
}

/* True when one more DSN to addr is allowed now. */
static bool
bounce_rate_ok(const char *addr, int64_t now)
{
	uint64_t h = bounce_hash(addr);
	struct bounce_rate *r = &bounce_rates[h % BOUNCE_RATE_SLOTS];
	if (r->hash != h || now - r->window_start >= BOUNCE_RATE_WINDOW) {
		r->hash = h;
		r->window_start = now;
		r->count = 0;
	}
	return ++r->count <= BOUNCE_RATE_MAX;
}

/* Mark the reported (or suppressed) recipients terminal, then go on. */
static void
bounce_settle(struct queue *q, struct qmsg *m)
{
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_FAILED)
			m->env.rcpts[i].state = RCPT_BOUNCED;
	m->dirty = true;
	m->bouncing = false;
	queue_finalize_write(q, m);
}

static void
bounce_free(struct bounce *b)
{
	if (b->fd >= 0)
		close(b->fd);
	free(b->headers);
	free(b->idx);
	buf_free(&b->dsn);
	if (b->env) {
		envelope_free(b->env);
		free(b->env);
	}
	free(b);
}

/* The DSN could not be queued: keep the failures, try at the next attempt. */
static void
bounce_failed(struct bounce *b, const char *why)
{
	struct qmsg *m = b->m;
	log_warn("%s: cannot queue a delivery status notification: %s "
		 "(will try again)",
		 m->env.id, why);
	struct queue *q = b->q;
	bounce_free(b);
	m->bouncing = false;
	m->bounce_failed = true;
	queue_finalize_write(q, m);
}

/* Thread pool: the original's header section, bounded. */
static void
bounce_read_work(uv_work_t *w)
{
	struct bounce *b = w->data;
	size_t cap = DSN_HEADERS_MAX + 2;
	b->headers = malloc(cap);
	if (b->headers == NULL || b->fd < 0)
		return;
	size_t got = spool_read_head(b->fd, b->headers, cap);
	b->headers_len = dsn_header_len(b->headers, got, DSN_HEADERS_MAX);
}

static void
bounce_status(const char *text, char *out, size_t size)
{
	/* "550 5.1.1 ..." or "4.4.7 ..." : the first d.d.d token. */
	const char *p = text;
	for (int tok = 0; p && *p && tok < 2; tok++) {
		unsigned a, b2, c;
		char tail;
		if (sscanf(p, "%1u.%3u.%3u%c", &a, &b2, &c, &tail) >= 3 &&
		    (a == 2 || a == 4 || a == 5)) {
			snprintf(out, size, "%u.%u.%u", a, b2, c);
			return;
		}
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	str_copy(out, size, text && text[0] == '4' ? "4.0.0" : "5.0.0");
}

/*
 * "host mx.example[192.0.2.1]:25 said: 550 5.1.1 ..." (queue.c stores a
 * server's answer so): the host name into mta, and the reply returned.
 * Other text is returned whole, with mta empty.
 */
static const char *
bounce_remote_mta(const char *text, char *mta, size_t size)
{
	mta[0] = '\0';
	const char *said = strstr(text, " said: ");
	if (strncmp(text, "host ", 5) != 0 || said == NULL)
		return text;
	const char *h = text + 5;
	size_t n = strcspn(h, "[ ");
	str_ncopy(mta, size, h, n);
	return said + 7;
}

static int
bounce_build(struct bounce *b)
{
	struct daemon *d = queue_daemon(b->q);
	const struct envelope *e = &b->m->env;
	struct dsn_rcpt *r = calloc(b->n, sizeof(*r));
	char (*status)[16] = calloc(b->n, sizeof(*status));
	if (r == NULL || status == NULL) {
		free(r);
		free(status);
		return -ENOMEM;
	}
	char (*mta)[HOSTNAME_MAX + 1] = calloc(b->n, sizeof(*mta));
	if (mta == NULL) {
		free(r);
		free(status);
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct env_rcpt *er = &e->rcpts[b->idx[i]];
		const char *text = er->last_error ? er->last_error : "";
		text = bounce_remote_mta(text, mta[i], sizeof(mta[i]));
		bounce_status(text, status[i], sizeof(status[i]));
		r[i].addr = er->addr;
		r[i].status = status[i];
		r[i].remote_mta = mta[i][0] ? mta[i] : NULL;
		r[i].diagnostic = text[0] ? text : NULL;
		r[i].smtp_diagnostic = text[0] >= '2' && text[0] <= '5' &&
				       text[1] >= '0' && text[1] <= '9';
	}
	char from[HOSTNAME_MAX + 32], arrival[64], now[64], msgid[128],
		boundary[64];
	uint64_t rnd[2] = { 0, 0 };
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd[0] = (uint64_t)daemon_now();
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", d->hostname);
	daemon_date_at(e->arrival, arrival, sizeof(arrival));
	daemon_date(now, sizeof(now));
	snprintf(msgid, sizeof(msgid), "<%s.%016llx@%s>", b->id,
		 (unsigned long long)rnd[0], d->hostname);
	snprintf(boundary, sizeof(boundary), "%s.%016llx/%s", b->id,
		 (unsigned long long)rnd[1], d->hostname);
	struct dsn_msg dm = {
		.reporting_mta = d->hostname,
		.from = from,
		.to = b->to,
		.queue_id = e->id,
		.arrival_date = arrival,
		.date = now,
		.message_id = msgid,
		.boundary = boundary,
		.headers = b->headers,
		.headers_len = b->headers ? b->headers_len : 0,
	};
	int rc = dsn_build(&dm, r, b->n, &b->dsn);
	free(r);
	free(status);
	free(mta);
	return rc;
}

static void
bounce_commit_cb(void *arg, int status)
{
	struct bounce *b = arg;
	struct queue *q = b->q;
	struct qmsg *m = b->m;
	if (status != 0) {
		b->tx = NULL; /* the spool freed it */
		bounce_failed(b, uv_strerror(status));
		return;
	}
	log_info("%s: sender non-delivery notification: %s", m->env.id, b->id);
	log_info("%s: from=<>, size=%llu, nrcpt=1 (notification for %s)",
		 b->id, (unsigned long long)b->env->msg_size, m->env.id);
	struct envelope *env = b->env;
	b->env = NULL;
	bounce_free(b);
	stats_add(STATUS_DSN_SENT, 1);
	queue_add(q, env);
	bounce_settle(q, m);
}

static void
bounce_write_cb(void *arg, int status)
{
	struct bounce *b = arg;
	if (status != 0) {
		spool_tx_abort(b->tx);
		b->tx = NULL;
		bounce_failed(b, uv_strerror(status));
		return;
	}
	int rc = spool_tx_commit(b->tx, b->env, bounce_commit_cb, b);
	if (rc != 0) {
		spool_tx_abort(b->tx);
		b->tx = NULL;
		bounce_failed(b, uv_strerror(rc));
	}
}

static struct envelope *
bounce_envelope(struct bounce *b)
{
	struct envelope *env = calloc(1, sizeof(*env));
	if (env == NULL)
		return NULL;
	envelope_init(env);
	str_copy(env->id, sizeof(env->id), b->id);
	env->sender = strdup("");
	env->arrival = daemon_now();
	env->msg_size = b->dsn.len;
	env->msg_crc = crc32_update(0, b->dsn.data, b->dsn.len);
	env->flags = b->flags;
	str_copy(env->client, sizeof(env->client), "localhost");
	if (env->sender == NULL ||
	    envelope_add_rcpt(env, b->to) != 0) {
		envelope_free(env);
		free(env);
		return NULL;
	}
	return env;
}

static void
bounce_read_done(uv_work_t *w, int status)
{
	struct bounce *b = w->data;
	queue_bounce_pending(b->q, -1);
	struct spool *sp = queue_daemon(b->q)->spool;
	int rc = spool_tx_begin(sp, &b->tx);
	if (rc != 0) {
		bounce_failed(b, uv_strerror(rc));
		return;
	}
	str_copy(b->id, sizeof(b->id), spool_tx_id(b->tx));
	rc = bounce_build(b);
	if (rc == 0 && (b->env = bounce_envelope(b)) == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = spool_tx_write(b->tx, b->dsn.data, b->dsn.len,
				    bounce_write_cb, b);
	if (rc != 0) {
		spool_tx_abort(b->tx);
		b->tx = NULL;
		bounce_failed(b, uv_strerror(rc));
	}
}

/* Whether to notify, and whom (*to); false settles the failures. */
static bool
bounce_wanted(struct queue *q, struct qmsg *m, int64_t now, const char **to,
	      uint32_t *flags)
{
	const struct envelope *e = &m->env;
	const char *admin = queue_daemon(q)->cfg.rewrite.admin;
	*to = e->sender;
	*flags = ENV_F_DSN;
	if ((e->flags & ENV_F_DSN) && !(e->flags & ENV_F_ADMIN) && admin[0]) {
		log_info("%s: undeliverable delivery status notification "
			 "reported to the admin <%s>",
			 e->id, admin);
		*to = admin;
		*flags = ENV_F_DSN | ENV_F_ADMIN;
		return true;
	}
	if (e->flags & ENV_F_DSN) {
		log_info("%s: undeliverable delivery status notification "
			 "dropped (never bounce a bounce)",
			 e->id);
		return false;
	}
	if (e->sender[0] == '\0') {
		log_info("%s: sender is the null sender <>, notification "
			 "suppressed",
			 e->id);
		return false;
	}
	if (!bounce_rate_ok(e->sender, now)) {
		log_warn("%s: notification to <%s> suppressed: more than %d "
			 "in %d s to that address",
			 e->id, e->sender, BOUNCE_RATE_MAX, BOUNCE_RATE_WINDOW);
		return false;
	}
	return true;
}

void
bounce_start(struct queue *q, struct qmsg *m)
{
	struct envelope *e = &m->env;
	m->bouncing = true;
	const char *to;
	uint32_t flags;
	if (!bounce_wanted(q, m, daemon_now(), &to, &flags)) {
		bounce_settle(q, m);
		return;
	}
	struct bounce *b = calloc(1, sizeof(*b));
	size_t *idx = calloc(e->nrcpts, sizeof(size_t));
	if (b == NULL || idx == NULL) {
		free(b);
		free(idx);
		m->bouncing = false;
		m->bounce_failed = true;
		queue_finalize_write(q, m);
		return;
	}
	b->q = q;
	b->m = m;
	b->idx = idx;
	b->to = to;   /* points into m's envelope or the config: both outlive b */
	b->flags = flags;
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == RCPT_FAILED)
			b->idx[b->n++] = i;
	buf_init(&b->dsn, BOUNCE_DSN_MAX);
	b->fd = spool_msg_open(queue_daemon(q)->spool, e->id, NULL);
	b->work.data = b;
	if (uv_queue_work(queue_daemon(q)->loop, &b->work, bounce_read_work,
			  bounce_read_done) != 0) {
		bounce_failed(b, "cannot queue work");
		return;
	}
	queue_bounce_pending(q, 1);
}
