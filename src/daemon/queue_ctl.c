/* SPDX-License-Identifier: MIT */
/*
 * Queue operations for the control socket (outbox queue): list, find,
 * flush, hold/release, delete. Each works by queue id on the in-memory
 * queue and writes any change through the spool before it counts.
 *
 * A message a delivery holds right now (busy) is never changed under it:
 * delete waits for the delivery to give the message back, and a hold on a
 * busy message takes effect when it returns.
 */
#include <errno.h>
#include <string.h>

#include "outbox/daemon.h"
#include "outbox/log.h"

#include "queue_priv.h"

static bool
queue_ctl_busy(const struct qmsg *m)
{
	return m->jobs > 0;
}

void
queue_ctl_foreach(struct queue *q, queue_each_fn fn, void *arg)
{
	queue_each_msg(q, fn, arg);
}

const struct envelope *
queue_ctl_find(struct queue *q, const char *id, bool *busy)
{
	struct qmsg *m = queue_lookup(q, id);
	if (m == NULL || m->delete_pending)
		return NULL;
	if (busy)
		*busy = queue_ctl_busy(m);
	return &m->env;
}

static void
queue_ctl_flush_one(void *arg, struct qmsg *m)
{
	struct queue *q = arg;
	if (m->env.flags & ENV_F_HELD || queue_ctl_busy(m))
		return;
	m->env.next_attempt = 0;
	queue_reorder(q, m);
}

int
queue_ctl_flush(struct queue *q, const char *id)
{
	if (id != NULL) {
		struct qmsg *m = queue_lookup(q, id);
		if (m == NULL || m->delete_pending)
			return -ENOENT;
		queue_ctl_flush_one(q, m);
		log_info("%s: flushed by outbox queue", id);
	} else {
		queue_each_qmsg(q, queue_ctl_flush_one, q);
		log_info("queue flushed by outbox queue");
	}
	/* An explicit flush also forgets the destinations' backoff. */
	queue_reset_backoff(q);
	queue_kick(q);
	return id != NULL ? 0 : (int)queue_size(q);
}

int
queue_ctl_hold(struct queue *q, const char *id, bool hold)
{
	struct qmsg *m = queue_lookup(q, id);
	if (m == NULL || m->delete_pending)
		return -ENOENT;
	bool held = (m->env.flags & ENV_F_HELD) != 0;
	if (held == hold)
		return 0;
	if (hold) {
		m->env.flags |= ENV_F_HELD;
		queue_unlist(q, m);
	} else {
		m->env.flags &= ~(uint32_t)ENV_F_HELD;
		m->env.next_attempt = 0;
		if (!queue_ctl_busy(m) && m->heap_idx == QMSG_NOT_QUEUED &&
		    !m->updating)
			queue_requeue(q, m);
	}
	log_info("%s: %s by outbox queue", id, hold ? "held" : "released");
	queue_save(q, m);
	queue_kick(q);
	return 0;
}

int
queue_ctl_delete(struct queue *q, const char *id)
{
	struct qmsg *m = queue_lookup(q, id);
	if (m == NULL || m->delete_pending)
		return -ENOENT;
	m->delete_pending = true;
	log_info("%s: deleted by outbox queue", id);
	if (queue_ctl_busy(m))
		return 1; /* queue_finalize removes it when its jobs are back */
	queue_unlist(q, m);
	queue_remove_now(q, m);
	return 0;
}
