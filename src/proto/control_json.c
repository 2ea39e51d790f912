/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's reading half (pure): a small JSON reader for the
 * objects control_proto.c writes, used by `outbox queue` to print text.
 * It is strict JSON (RFC 8259) with bounds: nesting depth, string sizes
 * (CONTROL_OBJ_MAX) and integers that fit int64. Unknown keys are skipped
 * so the daemon can add fields without breaking older CLIs. It also reads
 * the STATUS object of `outbox status` (include/outbox/status.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/control.h"
#include "outbox/status.h"
#include "outbox/str.h"

#define JP_DEPTH_MAX 16

struct jp {
	const char *p, *end;
	int depth;
};

typedef int (*jp_member_fn)(struct jp *j, const char *key, void *arg);
typedef int (*jp_elem_fn)(struct jp *j, void *arg);

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Consume c (after white space) if it is next. */
static bool
jp_eat(struct jp *j, char c)
{
	jp_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static bool
jp_word(struct jp *j, const char *w)
{
	size_t n = strlen(w);
	jp_ws(j);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int
jp_hex4(struct jp *j, uint32_t *out)
{
	if (j->end - j->p < 4)
		return -EINVAL;
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static int
jp_put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12), n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18), n = 4;
	}
	for (size_t i = 1; i < n; i++)
		u[i] = (char)(0x80 | ((cp >> (6 * (n - 1 - i))) & 0x3f));
	return buf_append(b, u, n);
}

/* \uXXXX, with a surrogate pair as one code point. */
static int
jp_unicode(struct jp *j, struct buf *b)
{
	uint32_t cp, lo;
	if (jp_hex4(j, &cp) != 0)
		return -EINVAL;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -EINVAL;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
			return -EINVAL;
		j->p += 2;
		if (jp_hex4(j, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0)
		return -EINVAL; /* our strings are C strings */
	return jp_put_utf8(b, cp);
}

static int
jp_escape(struct jp *j, struct buf *b)
{
	if (j->p >= j->end)
		return -EINVAL;
	char c = *j->p++;
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *k = c != '\0' ? strchr(from, c) : NULL;
	if (k != NULL)
		return buf_append(b, &to[k - from], 1);
	return c == 'u' ? jp_unicode(j, b) : -EINVAL;
}

/* A string into b (reset first; NUL-terminated). */
static int
jp_string(struct jp *j, struct buf *b)
{
	buf_reset(b);
	if (!jp_eat(j, '"'))
		return -EINVAL;
	for (;;) {
		const char *s = j->p;
		while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
		       (unsigned char)*j->p >= 0x20)
			j->p++;
		if (j->p > s && buf_append(b, s, (size_t)(j->p - s)) != 0)
			return -EINVAL;
		if (j->p >= j->end || (unsigned char)*j->p < 0x20)
			return -EINVAL;
		if (*j->p++ == '"')
			break;
		if (jp_escape(j, b) != 0)
			return -EINVAL;
	}
	/* Even "" gets storage, so b->data is a C string. */
	return buf_append(b, "", 0) == 0 ? 0 : -EINVAL;
}

/* A heap copy of a string, or NULL for null. */
static int
jp_nstring(struct jp *j, char **out)
{
	free(*out);
	*out = NULL;
	if (jp_word(j, "null"))
		return 0;
	struct buf b;
	buf_init(&b, CONTROL_OBJ_MAX);
	int rc = jp_string(j, &b);
	if (rc == 0 && (*out = str_ndup(b.data, b.len)) == NULL)
		rc = -ENOMEM;
	buf_free(&b);
	return rc;
}

static int
jp_int(struct jp *j, int64_t *out)
{
	jp_ws(j);
	bool neg = j->p < j->end && *j->p == '-';
	if (neg)
		j->p++;
	const char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	uint64_t v;
	size_t n = (size_t)(j->p - s);
	if (n == 0 || (n > 1 && *s == '0') ||
	    str_nto_u64(s, n, 0, INT64_MAX, &v) != 0)
		return -EINVAL;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static int
jp_bool(struct jp *j, bool *out)
{
	if (jp_word(j, "true"))
		*out = true;
	else if (jp_word(j, "false"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int jp_skip(struct jp *j);

static int
jp_skip_member(struct jp *j, const char *key, void *arg)
{
	return jp_skip(j);
}

static int
jp_skip_elem(struct jp *j, void *arg)
{
	return jp_skip(j);
}

static int jp_object(struct jp *j, jp_member_fn fn, void *arg);
static int jp_array(struct jp *j, jp_elem_fn fn, void *arg);

/* Any value; numbers may have fractions and exponents here. */
static int
jp_skip(struct jp *j)
{
	jp_ws(j);
	if (j->p >= j->end)
		return -EINVAL;
	if (*j->p == '{')
		return jp_object(j, jp_skip_member, NULL);
	if (*j->p == '[')
		return jp_array(j, jp_skip_elem, NULL);
	if (*j->p == '"') {
		struct buf b;
		buf_init(&b, CONTROL_OBJ_MAX);
		int rc = jp_string(j, &b);
		buf_free(&b);
		return rc;
	}
	if (jp_word(j, "true") || jp_word(j, "false") || jp_word(j, "null"))
		return 0;
	const char *s = j->p;
	while (j->p < j->end && strchr("+-.eE0123456789", *j->p) != NULL &&
	       *j->p != '\0')
		j->p++;
	return j->p > s ? 0 : -EINVAL;
}

static int
jp_object(struct jp *j, jp_member_fn fn, void *arg)
{
	if (!jp_eat(j, '{') || ++j->depth > JP_DEPTH_MAX)
		return -EINVAL;
	struct buf key;
	buf_init(&key, 64);
	int rc = 0;
	if (!jp_eat(j, '}')) {
		do {
			rc = jp_string(j, &key);
			if (rc == 0 && !jp_eat(j, ':'))
				rc = -EINVAL;
			if (rc == 0)
				rc = fn(j, key.data, arg);
		} while (rc == 0 && jp_eat(j, ','));
		if (rc == 0 && !jp_eat(j, '}'))
			rc = -EINVAL;
	}
	buf_free(&key);
	j->depth--;
	return rc;
}

static int
jp_array(struct jp *j, jp_elem_fn fn, void *arg)
{
	if (!jp_eat(j, '[') || ++j->depth > JP_DEPTH_MAX)
		return -EINVAL;
	int rc = 0;
	if (!jp_eat(j, ']')) {
		do
			rc = fn(j, arg);
		while (rc == 0 && jp_eat(j, ','));
		if (rc == 0 && !jp_eat(j, ']'))
			rc = -EINVAL;
	}
	j->depth--;
	return rc;
}

/* ---- message objects ---- */

static int
jp_state(struct jp *j, enum rcpt_state *out)
{
	struct buf b;
	buf_init(&b, 16);
	int rc = jp_string(j, &b);
	static const enum rcpt_state all[] = { RCPT_PENDING, RCPT_SENT,
					       RCPT_FAILED, RCPT_BOUNCED };
	if (rc == 0) {
		rc = -EINVAL;
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			if (strcmp(b.data, control_state_name(all[i])) == 0) {
				*out = all[i];
				rc = 0;
			}
	}
	buf_free(&b);
	return rc;
}

static int
jp_rcpt_member(struct jp *j, const char *key, void *arg)
{
	struct env_rcpt *r = arg;
	if (strcmp(key, "address") == 0)
		return jp_nstring(j, &r->addr);
	if (strcmp(key, "state") == 0)
		return jp_state(j, &r->state);
	if (strcmp(key, "last_error") == 0)
		return jp_nstring(j, &r->last_error);
	return jp_skip(j);
}

static int
jp_rcpt(struct jp *j, void *arg)
{
	struct envelope *e = arg;
	if (envelope_add_rcpt(e, "") != 0)
		return -ENOMEM;
	struct env_rcpt *r = &e->rcpts[e->nrcpts - 1];
	int rc = jp_object(j, jp_rcpt_member, r);
	return rc == 0 && (r->addr == NULL || r->addr[0] == '\0') ? -EINVAL
							       : rc;
}

static int
jp_u64_field(struct jp *j, uint64_t max, uint64_t *out)
{
	int64_t v;
	if (jp_int(j, &v) != 0 || v < 0 || (uint64_t)v > max)
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

static int
jp_msg_num(struct jp *j, const char *key, struct envelope *e)
{
	uint64_t v = 0;
	int rc;
	if (strcmp(key, "size") == 0)
		return jp_u64_field(j, INT64_MAX, &e->msg_size);
	if (strcmp(key, "attempts") == 0) {
		rc = jp_u64_field(j, UINT32_MAX, &v);
		e->attempts = (uint32_t)v;
	} else if (strcmp(key, "arrival") == 0) {
		rc = jp_u64_field(j, INT64_MAX, &v);
		e->arrival = (int64_t)v;
	} else {
		rc = jp_u64_field(j, INT64_MAX, &v);
		e->next_attempt = (int64_t)v;
	}
	return rc;
}

static int
jp_msg_id(struct jp *j, struct envelope *e)
{
	struct buf b;
	buf_init(&b, ID_SIZE);
	int rc = jp_string(j, &b);
	if (rc == 0 && (str_copy(e->id, sizeof(e->id), b.data) != 0 ||
			!id_valid(e->id)))
		rc = -EINVAL;
	buf_free(&b);
	return rc;
}

static int
jp_msg_member(struct jp *j, const char *key, void *arg)
{
	struct control_msg *m = arg;
	bool b;
	if (strcmp(key, "id") == 0)
		return jp_msg_id(j, &m->env);
	if (strcmp(key, "sender") == 0)
		return jp_nstring(j, &m->env.sender);
	if (strcmp(key, "recipients") == 0)
		return jp_array(j, jp_rcpt, &m->env);
	if (strcmp(key, "size") == 0 || strcmp(key, "attempts") == 0 ||
	    strcmp(key, "arrival") == 0 || strcmp(key, "next_attempt") == 0)
		return jp_msg_num(j, key, &m->env);
	if (strcmp(key, "held") == 0) {
		if (jp_bool(j, &b) != 0)
			return -EINVAL;
		m->env.flags = b ? m->env.flags | ENV_F_HELD
				 : m->env.flags & ~(uint32_t)ENV_F_HELD;
		return 0;
	}
	if (strcmp(key, "busy") == 0)
		return jp_bool(j, &m->busy);
	if (strcmp(key, "headers") == 0)
		return jp_nstring(j, &m->headers);
	if (strcmp(key, "headers_truncated") == 0)
		return jp_bool(j, &m->headers_truncated);
	return jp_skip(j);
}

void
control_msg_free(struct control_msg *m)
{
	envelope_free(&m->env);
	free(m->headers);
	m->headers = NULL;
}

/* Allow "obj" or "obj," with white space around. */
static int
jp_whole(struct jp *j)
{
	jp_eat(j, ',');
	jp_ws(j);
	return j->p == j->end ? 0 : -EINVAL;
}

int
control_json_msg_parse(const char *s, size_t n, struct control_msg *out,
		       char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	envelope_init(&out->env);
	struct jp j = { s, s + n, 0 };
	int rc = jp_object(&j, jp_msg_member, out);
	if (rc == 0)
		rc = jp_whole(&j);
	if (rc == 0 && (out->env.id[0] == '\0' || out->env.sender == NULL))
		rc = -EINVAL;
	if (rc != 0) {
		snprintf(err, errlen, "malformed message object near byte %zu",
			 (size_t)(j.p - s));
		return -EINVAL;
	}
	return 0;
}

static int
jp_text_field(struct jp *j, char *out, size_t size)
{
	struct buf b;
	buf_init(&b, 4096);
	int rc = jp_string(j, &b);
	if (rc == 0)
		str_sanitize(out, size, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
jp_reply_member(struct jp *j, const char *key, void *arg)
{
	struct control_reply *r = arg;
	int64_t v;
	if (strcmp(key, "ok") == 0)
		return jp_bool(j, &r->ok);
	if (strcmp(key, "error") == 0)
		return jp_text_field(j, r->error, sizeof(r->error));
	if (strcmp(key, "code") == 0)
		return jp_text_field(j, r->code, sizeof(r->code));
	if (strcmp(key, "id") == 0)
		return jp_text_field(j, r->id, sizeof(r->id));
	if (strcmp(key, "deferred") == 0)
		return jp_bool(j, &r->deferred);
	if (strcmp(key, "count") == 0) {
		if (jp_int(j, &v) != 0)
			return -EINVAL;
		r->count = v;
		return 0;
	}
	return jp_skip(j);
}

int
control_json_reply_parse(const char *s, size_t n, struct control_reply *out)
{
	memset(out, 0, sizeof(*out));
	out->count = -1;
	struct jp j = { s, s + n, 0 };
	int rc = jp_object(&j, jp_reply_member, out);
	if (rc == 0)
		rc = jp_whole(&j);
	if (rc == 0 && !out->ok && out->error[0] == '\0')
		rc = -EINVAL;
	return rc;
}

/* ---- STATUS replies (include/outbox/status.h) ---- */

/* An age: a non-negative integer, or null (-1). */
static int
jp_age(struct jp *j, int64_t *out)
{
	if (jp_word(j, "null")) {
		*out = -1;
		return 0;
	}
	return jp_int(j, out) == 0 && *out >= 0 ? 0 : -EINVAL;
}

static int
jp_status_queue(struct jp *j, const char *key, void *arg)
{
	struct status *st = arg;
	if (strcmp(key, "messages") == 0)
		return jp_u64_field(j, INT64_MAX, &st->messages);
	if (strcmp(key, "recipients_pending") == 0)
		return jp_u64_field(j, INT64_MAX, &st->recipients_pending);
	if (strcmp(key, "held") == 0)
		return jp_u64_field(j, INT64_MAX, &st->held);
	if (strcmp(key, "oldest_age") == 0)
		return jp_age(j, &st->oldest_age);
	if (strcmp(key, "oldest_deferred_age") == 0)
		return jp_age(j, &st->oldest_deferred_age);
	return jp_skip(j);
}

static int
jp_status_counter(struct jp *j, const char *key, void *arg)
{
	struct status *st = arg;
	for (int i = 0; i < STATUS_NCOUNTERS; i++)
		if (strcmp(key, status_counter_name(i)) == 0)
			return jp_u64_field(j, INT64_MAX, &st->counters[i]);
	return jp_skip(j);
}

/* A string or null ("") into out[size], control bytes as '?'. */
static int
jp_ntext_field(struct jp *j, char *out, size_t size)
{
	out[0] = '\0';
	if (jp_word(j, "null"))
		return 0;
	return jp_text_field(j, out, size);
}

static int
jp_status_dest_member(struct jp *j, const char *key, void *arg)
{
	struct status_dest *d = arg;
	if (strcmp(key, "name") == 0)
		return jp_text_field(j, d->name, sizeof(d->name));
	if (strcmp(key, "queued") == 0)
		return jp_u64_field(j, INT64_MAX, &d->queued);
	if (strcmp(key, "last_error") == 0)
		return jp_ntext_field(j, d->last_error, sizeof(d->last_error));
	if (strcmp(key, "last_error_at") == 0)
		return jp_int(j, &d->last_error_at);
	if (strcmp(key, "next_attempt") == 0)
		return jp_int(j, &d->next_attempt);
	return jp_skip(j);
}

static int
jp_status_dest(struct jp *j, void *arg)
{
	struct status *st = arg;
	if (st->ndests == STATUS_DEST_MAX)
		return jp_skip(j);
	struct status_dest *d = &st->dests[st->ndests];
	memset(d, 0, sizeof(*d));
	int rc = jp_object(j, jp_status_dest_member, d);
	if (rc == 0)
		st->ndests++;
	return rc;
}

static int
jp_status_member(struct jp *j, const char *key, void *arg)
{
	struct status *st = arg;
	if (strcmp(key, "version") == 0)
		return jp_text_field(j, st->version, sizeof(st->version));
	if (strcmp(key, "pid") == 0)
		return jp_int(j, &st->pid);
	if (strcmp(key, "time") == 0)
		return jp_int(j, &st->time);
	if (strcmp(key, "uptime") == 0)
		return jp_u64_field(j, INT64_MAX, &st->uptime);
	if (strcmp(key, "queue") == 0)
		return jp_object(j, jp_status_queue, st);
	if (strcmp(key, "stuck_after") == 0)
		return jp_u64_field(j, INT64_MAX, &st->stuck_after);
	if (strcmp(key, "stuck") == 0)
		return jp_bool(j, &st->stuck);
	if (strcmp(key, "counters") == 0)
		return jp_object(j, jp_status_counter, st);
	if (strcmp(key, "destinations") == 0)
		return jp_array(j, jp_status_dest, st);
	if (strcmp(key, "destinations_total") == 0)
		return jp_u64_field(j, INT64_MAX, &st->dests_total);
	return jp_skip(j);
}

int
status_json_parse(const char *s, size_t n, struct status *out, char *err,
		  size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->oldest_age = out->oldest_deferred_age = -1;
	out->pid = -1;
	struct jp j = { s, s + n, 0 };
	int rc = jp_object(&j, jp_status_member, out);
	if (rc == 0)
		rc = jp_whole(&j);
	if (rc == 0 && out->pid < 0)
		rc = -EINVAL; /* not a status object at all */
	if (rc != 0) {
		snprintf(err, errlen, "malformed status object near byte %zu",
			 (size_t)(j.p - s));
		return -EINVAL;
	}
	return 0;
}
