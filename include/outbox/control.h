/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CONTROL_H
#define OUTBOX_CONTROL_H
/*
 * The control protocol of `outbox queue` (pure code: proto/control_proto.c
 * and proto/control_json.c; the socket is daemon/control.c).
 *
 * A client connects to <spool dir>/control, sends ONE request line
 * (at most CONTROL_LINE_MAX bytes before the LF; a CR before it is
 * ignored):
 *
 *     LIST | SHOW <id> | FLUSH [<id>] | DELETE <id> | HOLD <id> | RELEASE <id>
 *     | STATUS
 *
 * (command case-insensitive, one space between words, ids checked with
 * id_valid), and reads one JSON document until the daemon closes:
 *
 *  - LIST: an array with one message object per line:
 *        "[\n" {obj} ",\n" {obj} ... "\n]\n"      (empty: "[\n]\n")
 *    Strings never contain a raw LF, so every object is one line; the CLI
 *    relies on that framing to stream 100,000 messages.
 *  - SHOW: one message object plus "headers" (the message's header
 *    section, at most CONTROL_HEADERS_MAX bytes) and "headers_truncated".
 *  - STATUS (`outbox status`): one status object on one line, see
 *    include/outbox/status.h.
 *  - the others: {"ok":true,...} or, for any failure,
 *    {"error":"text","code":"ENOENT"} (codes: ENOENT, EINVAL, EPERM,
 *    EAGAIN, ESHUTDOWN, EIO).
 *
 * A message object:
 *    {"id","sender","recipients":[{"address","state","last_error"}],
 *     "size","arrival","attempts","next_attempt","held","busy","last_error"}
 * state is pending|sent|failed|bounced; times are epoch seconds; last_error
 * is a string or null (the message's is the first pending recipient's
 * error, else the first recipient error at all).
 *
 * JSON strings are escaped by control_json_str: '"' '\\' and every control
 * byte (< 0x20, 0x7f) are escaped; valid UTF-8 passes through unchanged;
 * any byte of an invalid UTF-8 sequence becomes \u00XX (the byte read as
 * Latin-1), so the output is always valid UTF-8 JSON.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/buf.h"
#include "outbox/envelope.h"

#define CONTROL_SOCKET_NAME "control"
#define CONTROL_LINE_MAX 256            /* request line, without the LF */
#define CONTROL_HEADERS_MAX (16 * 1024) /* SHOW: header bytes read */
#define CONTROL_OBJ_MAX (32u * 1024u * 1024u) /* one message object */

enum control_cmd {
	CONTROL_LIST,
	CONTROL_SHOW,
	CONTROL_FLUSH,
	CONTROL_DELETE,
	CONTROL_HOLD,
	CONTROL_RELEASE,
	CONTROL_STATUS,         /* health and counters (status.h) */
};

struct control_req {
	enum control_cmd cmd;
	char id[ID_SIZE];       /* "" when none (LIST, FLUSH of everything) */
};

/* The request word of cmd ("LIST"...). */
const char *control_cmd_name(enum control_cmd cmd);
/*
 * Parse one request line line[0..len) (without its LF; a trailing CR is
 * dropped). 0, or -EINVAL with a reason in err ("unknown command",
 * "bad queue id", ...).
 */
int control_parse(const char *line, size_t len, struct control_req *out,
		  char *err, size_t errlen);
/* Format a request line with its LF into out[size]. 0 or -1 (too small). */
int control_format(const struct control_req *req, char *out, size_t size);

/*
 * The header section at the start of a message h[0..n): its length up to
 * the empty line that ends it (the last header's line end included; an
 * empty line is LF or CRLF). *complete: that empty line was seen.
 */
size_t control_header_len(const char *h, size_t n, bool *complete);

/* "pending", "sent", "failed", "bounced". */
const char *control_state_name(enum rcpt_state st);
/* The message's last_error as described above, or NULL. */
const char *control_last_error(const struct envelope *e);

/* Append s as a quoted JSON string (NULL: null). 0 or -ENOBUFS. */
int control_json_str(struct buf *out, const char *s) BUF_WUR;
/* The same for s[0..n). */
int control_json_strn(struct buf *out, const char *s, size_t n) BUF_WUR;
/*
 * Append one message object (one line, no LF). headers (may be NULL)
 * adds "headers" and "headers_truncated". On failure out may hold part
 * of the object: the caller truncates back to its old length.
 */
int control_json_msg(struct buf *out, const struct envelope *e, bool busy,
		     const char *headers, size_t hlen, bool truncated) BUF_WUR;
/* {"error":msg,"code":code} with a LF. */
int control_json_error(struct buf *out, const char *msg,
		       const char *code) BUF_WUR;

/* A message object read back (the CLI). */
struct control_msg {
	struct envelope env;    /* HELD in env.flags from "held" */
	bool busy;
	char *headers;          /* heap or NULL */
	bool headers_truncated;
};
void control_msg_free(struct control_msg *m);
/*
 * Parse one message object s[0..n) (surrounding white space and one
 * trailing ',' allowed). Unknown keys are skipped. 0, or -EINVAL with a
 * reason in err; out is always safe to control_msg_free.
 */
int control_json_msg_parse(const char *s, size_t n, struct control_msg *out,
			   char *err, size_t errlen);

/* A reply to FLUSH/DELETE/HOLD/RELEASE, or an error reply of any request. */
struct control_reply {
	bool ok;
	char error[256];        /* "" when none */
	char code[32];
	char id[ID_SIZE];
	int64_t count;          /* FLUSH of everything: messages queued; -1 */
	bool deferred;          /* DELETE of a busy message */
};
/* Parse a reply object. 0, or -EINVAL (not an object, or neither "ok"
 * nor "error"). */
int control_json_reply_parse(const char *s, size_t n,
			     struct control_reply *out);

#endif
