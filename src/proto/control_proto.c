/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's writing half (pure): request lines, and the JSON
 * the daemon answers with. See include/outbox/control.h for the grammar.
 * Every string that reaches JSON here came from outside (addresses, reply
 * texts, header bytes), so control_json_strn escapes every control byte
 * and every byte that is not part of valid UTF-8; the result is valid
 * UTF-8 JSON whatever the input.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "outbox/control.h"
#include "outbox/id.h"
#include "outbox/str.h"

struct control_cmd_def {
	const char *name;
	enum control_cmd cmd;
	int min_args, max_args;
};

static const struct control_cmd_def control_cmds[] = {
	{ "LIST", CONTROL_LIST, 0, 0 },
	{ "SHOW", CONTROL_SHOW, 1, 1 },
	{ "FLUSH", CONTROL_FLUSH, 0, 1 },
	{ "DELETE", CONTROL_DELETE, 1, 1 },
	{ "HOLD", CONTROL_HOLD, 1, 1 },
	{ "RELEASE", CONTROL_RELEASE, 1, 1 },
	{ "STATUS", CONTROL_STATUS, 0, 0 },
};
#define CONTROL_NCMDS (sizeof(control_cmds) / sizeof(control_cmds[0]))

const char *
control_cmd_name(enum control_cmd cmd)
{
	for (size_t i = 0; i < CONTROL_NCMDS; i++)
		if (control_cmds[i].cmd == cmd)
			return control_cmds[i].name;
	return "?";
}

static const struct control_cmd_def *
control_cmd_find(const char *w, size_t n)
{
	for (size_t i = 0; i < CONTROL_NCMDS; i++)
		if (strlen(control_cmds[i].name) == n &&
		    str_prefix_ci(w, n, control_cmds[i].name))
			return &control_cmds[i];
	return NULL;
}

/* Split line into at most 3 words separated by single spaces. */
static int
control_words(const char *line, size_t len, const char *w[3], size_t wl[3])
{
	int n = 0;
	size_t i = 0;
	while (i < len) {
		if (n == 3)
			return -1;
		size_t s = i;
		while (i < len && line[i] != ' ')
			i++;
		if (i == s)
			return -1; /* leading, double or trailing space */
		w[n] = line + s;
		wl[n++] = i - s;
		if (i < len && ++i == len)
			return -1;
	}
	return n;
}

int
control_parse(const char *line, size_t len, struct control_req *out,
	      char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > CONTROL_LINE_MAX) {
		snprintf(err, errlen, "request too long");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] >= 0x7f) {
			snprintf(err, errlen, "control byte in request");
			return -EINVAL;
		}
	}
	const char *w[3];
	size_t wl[3];
	int n = control_words(line, len, w, wl);
	if (n <= 0) {
		snprintf(err, errlen, n == 0 ? "empty request"
					     : "malformed request");
		return -EINVAL;
	}
	const struct control_cmd_def *def = control_cmd_find(w[0], wl[0]);
	if (def == NULL) {
		snprintf(err, errlen, "unknown command");
		return -EINVAL;
	}
	if (n - 1 < def->min_args || n - 1 > def->max_args) {
		snprintf(err, errlen, "wrong number of arguments for %s",
			 def->name);
		return -EINVAL;
	}
	out->cmd = def->cmd;
	if (n == 2) {
		if (str_ncopy(out->id, sizeof(out->id), w[1], wl[1]) != 0 ||
		    !id_valid(out->id)) {
			out->id[0] = '\0';
			snprintf(err, errlen, "bad queue id");
			return -EINVAL;
		}
	}
	return 0;
}

int
control_format(const struct control_req *req, char *out, size_t size)
{
	int n = snprintf(out, size, "%s%s%s\n", control_cmd_name(req->cmd),
			 req->id[0] ? " " : "", req->id);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

size_t
control_header_len(const char *h, size_t n, bool *complete)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && h[i - 1] != '\n')
			continue;
		if (h[i] == '\n' || (h[i] == '\r' && i + 1 < n && h[i + 1] == '\n')) {
			*complete = true;
			return i;
		}
	}
	*complete = false;
	return n;
}

const char *
control_state_name(enum rcpt_state st)
{
	switch (st) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_SENT:
		return "sent";
	case RCPT_FAILED:
		return "failed";
	case RCPT_BOUNCED:
		return "bounced";
	}
	return "unknown";
}

const char *
control_last_error(const struct envelope *e)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == RCPT_PENDING && e->rcpts[i].last_error)
			return e->rcpts[i].last_error;
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].last_error)
			return e->rcpts[i].last_error;
	return NULL;
}

static int
control_json_esc(struct buf *out, unsigned char c)
{
	switch (c) {
	case '"':
		return buf_append(out, "\\\"", 2);
	case '\\':
		return buf_append(out, "\\\\", 2);
	case '\n':
		return buf_append(out, "\\n", 2);
	case '\r':
		return buf_append(out, "\\r", 2);
	case '\t':
		return buf_append(out, "\\t", 2);
	default:
		return buf_printf(out, "\\u%04x", c);
	}
}

int
control_json_strn(struct buf *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	int rc = buf_append(out, "\"", 1);
	size_t i = 0;
	while (rc == 0 && i < n) {
		size_t run = i;
		/* Copy plain printable ASCII in one append. */
		while (run < n && u[run] >= 0x20 && u[run] < 0x7f &&
		       u[run] != '"' && u[run] != '\\')
			run++;
		if (run > i) {
			rc = buf_append(out, s + i, run - i);
			i = run;
			continue;
		}
		size_t ul = u[i] >= 0x80 ? str_utf8_len(u + i, n - i) : 0;
		if (ul > 0) {
			rc = buf_append(out, s + i, ul);
			i += ul;
		} else {
			rc = control_json_esc(out, u[i++]);
		}
	}
	return rc == 0 ? buf_append(out, "\"", 1) : rc;
}

int
control_json_str(struct buf *out, const char *s)
{
	if (s == NULL)
		return buf_append(out, "null", 4);
	return control_json_strn(out, s, strlen(s));
}

static int
control_json_rcpt(struct buf *out, const struct env_rcpt *r)
{
	int rc = buf_puts(out, "{\"address\":");
	if (rc == 0)
		rc = control_json_str(out, r->addr);
	if (rc == 0)
		rc = buf_printf(out, ",\"state\":\"%s\",\"last_error\":",
				control_state_name(r->state));
	if (rc == 0)
		rc = control_json_str(out, r->last_error);
	return rc == 0 ? buf_append(out, "}", 1) : rc;
}

static int
control_json_tail(struct buf *out, const struct envelope *e, bool busy)
{
	int rc = buf_printf(out,
			    ",\"size\":%" PRIu64 ",\"arrival\":%" PRId64
			    ",\"attempts\":%" PRIu32 ",\"next_attempt\":%" PRId64
			    ",\"held\":%s,\"busy\":%s,\"last_error\":",
			    e->msg_size, e->arrival, e->attempts,
			    e->next_attempt,
			    e->flags & ENV_F_HELD ? "true" : "false",
			    busy ? "true" : "false");
	return rc == 0 ? control_json_str(out, control_last_error(e)) : rc;
}

int
control_json_msg(struct buf *out, const struct envelope *e, bool busy,
		 const char *headers, size_t hlen, bool truncated)
{
	int rc = buf_printf(out, "{\"id\":\"%s\",\"sender\":", e->id);
	if (rc == 0)
		rc = control_json_str(out, e->sender ? e->sender : "");
	if (rc == 0)
		rc = buf_puts(out, ",\"recipients\":[");
	for (size_t i = 0; rc == 0 && i < e->nrcpts; i++) {
		if (i > 0)
			rc = buf_append(out, ",", 1);
		if (rc == 0)
			rc = control_json_rcpt(out, &e->rcpts[i]);
	}
	if (rc == 0)
		rc = buf_append(out, "]", 1);
	if (rc == 0)
		rc = control_json_tail(out, e, busy);
	if (rc == 0 && headers != NULL) {
		rc = buf_puts(out, ",\"headers\":");
		if (rc == 0)
			rc = control_json_strn(out, headers, hlen);
		if (rc == 0)
			rc = buf_printf(out, ",\"headers_truncated\":%s",
					truncated ? "true" : "false");
	}
	return rc == 0 ? buf_append(out, "}", 1) : rc;
}

int
control_json_error(struct buf *out, const char *msg, const char *code)
{
	int rc = buf_puts(out, "{\"error\":");
	if (rc == 0)
		rc = control_json_str(out, msg);
	if (rc == 0)
		rc = buf_puts(out, ",\"code\":");
	if (rc == 0)
		rc = control_json_str(out, code);
	return rc == 0 ? buf_puts(out, "}\n") : rc;
}
