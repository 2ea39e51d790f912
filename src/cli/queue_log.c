/* SPDX-License-Identifier: MIT */
/*
 * The offline `outbox queue` and the intake log: a message committed
 * through the log may have no env/ID or msg/ID yet (held: outboxd writes
 * them only when needed, at the latest when it stops cleanly). After a
 * crash its log record is its only copy until the next start-up replays
 * it, so the offline listing reads the records too. Read-only, like the
 * rest of the offline path: nothing in the spool changes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/control.h"
#include "outbox/spool_log.h"
#include "outbox/spool_record.h"

#include "queue_priv.h"

struct log_load {
	struct qcli_log *out;
	const char *only;
};

/* A copy of n bytes (at least one byte allocated), or NULL. */
static char *
copy_of(const char *p, size_t n)
{
	char *c = malloc(n > 0 ? n : 1);
	if (c != NULL && n > 0)
		memcpy(c, p, n);
	return c;
}

static int
log_load_one(const struct spool_rec *r, void *arg)
{
	struct log_load *ld = arg;
	struct qcli_log *l = ld->out;
	if (ld->only != NULL && strcmp(ld->only, r->id) != 0)
		return 0;
	if (l->n == l->cap) {
		size_t c = l->cap ? l->cap * 2 : 64;
		void *p = reallocarray(l->v, c, sizeof(*l->v));
		if (p == NULL)
			return -ENOMEM;
		l->v = p;
		l->cap = c;
	}
	struct qcli_logged *m = &l->v[l->n];
	*m = (struct qcli_logged){ 0 };
	memcpy(m->id, r->id, ID_SIZE);
	m->env = copy_of(r->env, r->env_len);
	m->env_len = r->env_len;
	if (ld->only != NULL) {
		/* show: the header section, as spool_read_head reads it */
		m->head_len = r->body_len < CONTROL_HEADERS_MAX
				      ? (size_t)r->body_len
				      : CONTROL_HEADERS_MAX;
		m->head = copy_of(r->body, m->head_len);
	}
	if (m->env == NULL || (ld->only != NULL && m->head == NULL)) {
		free(m->env);
		free(m->head);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

static int
logged_cmp(const void *a, const void *b)
{
	const struct qcli_logged *x = a, *y = b;
	return memcmp(x->id, y->id, ID_LEN);
}

int
qcli_log_load(int logfd, const char *only, struct qcli_log *out)
{
	*out = (struct qcli_log){ 0 };
	struct log_load ld = { .out = out, .only = only };
	int rc = spool_log_scan(logfd, log_load_one, &ld);
	if (rc != 0) {
		qcli_log_free(out);
		return rc;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), logged_cmp);
	return 0;
}

const struct qcli_logged *
qcli_log_find(const struct qcli_log *l, const char *id)
{
	struct qcli_logged key;
	memcpy(key.id, id, ID_SIZE);
	return l->n > 0 ? bsearch(&key, l->v, l->n, sizeof(*l->v), logged_cmp)
			: NULL;
}

void
qcli_log_free(struct qcli_log *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].env);
		free(l->v[i].head);
	}
	free(l->v);
	*l = (struct qcli_log){ 0 };
}
