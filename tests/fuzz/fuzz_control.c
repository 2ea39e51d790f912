/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the control protocol (control.h): the daemon parses
 *	request lines from local users, the CLI parses JSON from the daemon.
 *
 *	Input: a mode byte, then text. Mode 0: a request line
 *	(control_parse; what parses formats back to a line that parses the
 *	same). Mode 1: a message object (control_json_msg_parse; what parses
 *	is written with control_json_msg; from the second write on, writing
 *	and reading are a fixed point: same bytes, same fields).
 *	Mode 2: a reply object (control_json_reply_parse), the header
 *	length scan and control_json_strn on the bytes.
 *
 *	Invariants: no crash; failures say why; round trips keep every
 *	field; a JSON string we write is one line of valid quoted JSON text
 *	without raw control bytes.
 */
#include <errno.h>

#include "fuzz.h"
#include "outbox/control.h"

static void
fctl_request(const char *p, size_t n)
{
	struct control_req req, again;
	char err[128], line[CONTROL_LINE_MAX + 2];
	if (control_parse(p, n, &req, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) && err[0]);
		return;
	}
	FUZZ_ASSERT(control_cmd_name(req.cmd) != NULL);
	FUZZ_ASSERT(control_format(&req, line, sizeof(line)) == 0);
	size_t l = strlen(line);
	FUZZ_ASSERT(l > 0 && line[l - 1] == '\n');
	FUZZ_ASSERT(control_parse(line, l - 1, &again, err, sizeof(err)) == 0);
	FUZZ_ASSERT(again.cmd == req.cmd && strcmp(again.id, req.id) == 0);
}

static void
fctl_same_msg(const struct control_msg *a, const struct control_msg *b)
{
	const struct envelope *x = &a->env, *y = &b->env;
	FUZZ_ASSERT(strcmp(x->id, y->id) == 0);
	FUZZ_ASSERT((x->sender == NULL) == (y->sender == NULL));
	if (x->sender != NULL)
		FUZZ_ASSERT(strcmp(x->sender, y->sender) == 0);
	FUZZ_ASSERT(x->nrcpts == y->nrcpts);
	for (size_t i = 0; i < x->nrcpts; i++) {
		FUZZ_ASSERT(strcmp(x->rcpts[i].addr, y->rcpts[i].addr) == 0);
		FUZZ_ASSERT(x->rcpts[i].state == y->rcpts[i].state);
	}
	FUZZ_ASSERT(x->msg_size == y->msg_size && x->arrival == y->arrival);
	FUZZ_ASSERT(x->attempts == y->attempts);
	FUZZ_ASSERT(x->next_attempt == y->next_attempt);
	FUZZ_ASSERT((x->flags & ENV_F_HELD) == (y->flags & ENV_F_HELD));
	FUZZ_ASSERT(a->busy == b->busy);
}

/* Write m as a message object into out (reset first); 0 or the error. */
static int
fctl_write(const struct control_msg *m, struct buf *out)
{
	buf_reset(out);
	size_t hl = m->headers ? strlen(m->headers) : 0;
	int rc = control_json_msg(out, &m->env, m->busy, m->headers, hl,
				  m->headers_truncated);
	if (rc == 0)
		FUZZ_ASSERT(memchr(out->data, '\n', out->len) == NULL);
	return rc;
}

/*
 * Invalid UTF-8 in the input is written as \u00XX (the byte read as
 * Latin-1, by design), which reads back as valid UTF-8 and is then
 * written raw: so the first two writes may differ. From the second
 * write on, writing and reading are a fixed point.
 */
static void
fctl_msg(const char *p, size_t n)
{
	struct control_msg m, m2, m3;
	char err[128];
	memset(err, 0, sizeof(err));
	if (control_json_msg_parse(p, n, &m, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(err[0] != '\0');
		control_msg_free(&m);
		return;
	}
	struct buf o1, o2, o3;
	buf_init(&o1, CONTROL_OBJ_MAX);
	buf_init(&o2, CONTROL_OBJ_MAX);
	buf_init(&o3, CONTROL_OBJ_MAX);
	if (fctl_write(&m, &o1) == 0) {
		FUZZ_ASSERT(control_json_msg_parse(o1.data, o1.len, &m2, err,
						   sizeof(err)) == 0);
		FUZZ_ASSERT(fctl_write(&m2, &o2) == 0);
		FUZZ_ASSERT(control_json_msg_parse(o2.data, o2.len, &m3, err,
						   sizeof(err)) == 0);
		FUZZ_ASSERT(fctl_write(&m3, &o3) == 0);
		FUZZ_ASSERT(o2.len == o3.len &&
			    memcmp(o2.data, o3.data, o2.len) == 0);
		fctl_same_msg(&m2, &m3);
		control_msg_free(&m2);
		control_msg_free(&m3);
	}
	buf_free(&o1);
	buf_free(&o2);
	buf_free(&o3);
	control_msg_free(&m);
}

static void
fctl_misc(const char *p, size_t n)
{
	struct control_reply r;
	if (control_json_reply_parse(p, n, &r) == 0) {
		FUZZ_ASSERT(memchr(r.error, '\0', sizeof(r.error)));
		FUZZ_ASSERT(memchr(r.code, '\0', sizeof(r.code)));
		FUZZ_ASSERT(memchr(r.id, '\0', sizeof(r.id)));
	}
	bool complete;
	FUZZ_ASSERT(control_header_len(p, n, &complete) <= n);
	struct buf out;
	buf_init(&out, 8 * n + 16);
	FUZZ_ASSERT(control_json_strn(&out, p, n) == 0);
	FUZZ_ASSERT(out.len >= 2 && out.data[0] == '"' &&
		    out.data[out.len - 1] == '"');
	FUZZ_ASSERT(fuzz_no_ctrl(out.data, out.len) ||
		    !"raw control byte in a JSON string");
	buf_free(&out);
}

static void
fuzz_control(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_byte(&in) % 3;
	char *p = malloc(in.n ? in.n : 1);
	if (p == NULL)
		abort();
	if (in.n)
		memcpy(p, in.p, in.n);
	if (mode == 0)
		fctl_request(p, in.n);
	else if (mode == 1)
		fctl_msg(p, in.n);
	else
		fctl_misc(p, in.n);
	free(p);
}

FUZZ_ENTRY(fuzz_control)
