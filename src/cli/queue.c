/* SPDX-License-Identifier: MIT */
/*
 * `outbox queue [list|show ID|flush [ID]|delete ID|hold ID|release ID]
 * [--json] [-c FILE]`, and `mailq [--json] [-c FILE]` (= list).
 *
 * The spool dir comes from the configuration (-c FILE, $OUTBOX_CONFIG,
 * the default path; OUTBOX_* overrides apply, as for outboxd). The tool
 * connects to <spool dir>/control, sends one request line and reads the
 * daemon's JSON (include/outbox/control.h). --json prints that JSON as
 * it arrives (a LIST is streamed line by line, never held whole); the
 * default prints text (queue_text.c) from the parsed objects.
 *
 * When no daemon answers (the socket is missing, or refuses: a daemon
 * that died), list and show read the spool directly (queue_spool.c) and
 * say so on stderr; flush, delete, hold and release need the daemon and
 * fail with EX_TEMPFAIL.
 *
 * Exit codes: 0 done; 1 no such message; 64 usage (bad id included);
 * 69 the daemon's socket cannot be used; 75 outboxd not running, busy or
 * stopping, or the reply was cut short; 76 a malformed reply; 77 refused
 * (socket permissions or the daemon's peer check); 78 bad configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "outbox/config.h"
#include "outbox/id.h"
#include "outbox/str.h"

#include "cli.h"
#include "queue_priv.h"

#define QCLI_RECV_TIMEOUT_S 60
#define QCLI_READ_CHUNK 65536
#define QCLI_REPLY_MAX (CONTROL_OBJ_MAX + 1024)

struct qcli_opts {
	const char *config;
	bool json;
	bool mailq;
	bool help;
	struct control_req req;
};

struct qcli_rd {
	int fd;
	struct buf in;
	size_t used;            /* bytes of the last line, consumed next time */
	bool eof;
	bool got;               /* received anything at all */
};

static void
qcli_usage(FILE *f, bool mailq)
{
	if (mailq)
		fprintf(f, "usage: mailq [--json] [-c FILE]\n");
	else
		fprintf(f,
			"usage: outbox queue [list | show ID | flush [ID] | "
			"delete ID | hold ID | release ID]\n"
			"                    [--json] [-c FILE]\n");
}

static const struct {
	const char *word;
	enum control_cmd cmd;
	int min, max;           /* ids */
} qcli_words[] = {
	{ "list", CONTROL_LIST, 0, 0 },
	{ "show", CONTROL_SHOW, 1, 1 },
	{ "flush", CONTROL_FLUSH, 0, 1 },
	{ "delete", CONTROL_DELETE, 1, 1 },
	{ "hold", CONTROL_HOLD, 1, 1 },
	{ "release", CONTROL_RELEASE, 1, 1 },
};

static const char *
qcli_word(enum control_cmd cmd)
{
	for (size_t i = 0; i < sizeof(qcli_words) / sizeof(qcli_words[0]);
	     i++)
		if (qcli_words[i].cmd == cmd)
			return qcli_words[i].word;
	return "?";
}

/* Words to a request. 0, or EX_USAGE after a message. */
static int
qcli_request(const char **w, int nw, bool mailq, struct control_req *req)
{
	memset(req, 0, sizeof(*req));
	req->cmd = CONTROL_LIST;
	if (nw == 0)
		return 0;
	if (mailq)
		return EX_USAGE;
	for (size_t i = 0; i < sizeof(qcli_words) / sizeof(qcli_words[0]);
	     i++) {
		if (strcmp(w[0], qcli_words[i].word) != 0)
			continue;
		if (nw - 1 < qcli_words[i].min || nw - 1 > qcli_words[i].max)
			return EX_USAGE;
		req->cmd = qcli_words[i].cmd;
		if (nw == 2 && (str_copy(req->id, sizeof(req->id), w[1]) != 0 ||
				!id_valid(req->id))) {
			fprintf(stderr, "outbox: bad queue id '");
			qcli_print_safe(stderr, w[1]);
			fprintf(stderr, "' (16 hex digits, upper case)\n");
			return EX_USAGE;
		}
		return 0;
	}
	fprintf(stderr, "outbox: unknown queue command '");
	qcli_print_safe(stderr, w[0]);
	fprintf(stderr, "'\n");
	return EX_USAGE;
}

static int
qcli_parse(int argc, char **argv, struct qcli_opts *o)
{
	const char *w[3];
	int nw = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 == argc)
				return EX_USAGE;
			o->config = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			o->config = a + 9;
		} else if (strncmp(a, "-c", 2) == 0) {
			o->config = a + 2;
		} else if (a[0] == '-') {
			return EX_USAGE;
		} else if (nw < 3) {
			w[nw++] = a;
		} else {
			return EX_USAGE;
		}
	}
	if (o->help)
		return 0;
	return nw == 3 ? EX_USAGE : qcli_request(w, nw, o->mailq, &o->req);
}

/* ---- the socket ---- */

static int
qcli_send(int fd, const struct control_req *req)
{
	char line[CONTROL_LINE_MAX + 2];
	if (control_format(req, line, sizeof(line)) != 0)
		return -EINVAL;
	size_t n = strlen(line), off = 0;
	while (off < n) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

static int
qcli_rd_fill(struct qcli_rd *rd)
{
	size_t room = rd->in.max - rd->in.len;
	if (room == 0)
		return -EMSGSIZE;
	if (room > QCLI_READ_CHUNK)
		room = QCLI_READ_CHUNK;
	if (buf_reserve(&rd->in, room) != 0)
		return -ENOMEM;
	for (;;) {
		ssize_t r = read(rd->fd, rd->in.data + rd->in.len, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET && rd->got) {
			/* The daemon closed with our bytes unread: the reset
			 * only says that; the framing tells a cut reply. */
			rd->eof = true;
			return 0;
		}
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			rd->eof = true;
		rd->got = true;
		rd->in.len += (size_t)r;
		rd->in.data[rd->in.len] = '\0';
		return 0;
	}
}

/* The next reply line: 1 (NUL-terminated, without its line end), 0 at
 * the end, or -errno. A last line without LF still counts. */
static int
qcli_rd_line(struct qcli_rd *rd, char **line, size_t *len)
{
	buf_consume(&rd->in, rd->used);
	rd->used = 0;
	for (;;) {
		const char *l;
		size_t used;
		enum buf_line r = buf_getline(&rd->in, rd->in.max, &l, len,
					      &used);
		if (r == BUF_LINE) {
			*line = (char *)l;
			(*line)[*len] = '\0';
			rd->used = used;
			return 1;
		}
		if (r == BUF_TOO_LONG)
			return -EMSGSIZE;
		if (rd->eof) {
			*line = rd->in.data;
			*len = rd->in.len;
			rd->used = rd->in.len;
			return rd->in.len > 0 ? 1 : 0;
		}
		int e = qcli_rd_fill(rd);
		if (e < 0)
			return e;
	}
}

/* ---- replies ---- */

static int
qcli_lost(int r)
{
	if (r < 0)
		fprintf(stderr, "outbox: reading from outboxd: %s\n",
			strerror(-r));
	else
		fprintf(stderr, "outbox: outboxd closed the connection before "
				"the end of its reply\n");
	return EX_TEMPFAIL;
}

static int
qcli_malformed(void)
{
	fprintf(stderr, "outbox: malformed reply from outboxd\n");
	return EX_PROTOCOL;
}

/* An error reply: the message and the exit code. */
static int
qcli_fail(const struct control_reply *r, const struct control_req *req)
{
	const char *id = req->id[0] ? req->id : NULL;
	fprintf(stderr, "outbox: %s%s%s\n", id ? id : "", id ? ": " : "",
		r->error);
	if (strcmp(r->code, "ENOENT") == 0)
		return 1;
	if (strcmp(r->code, "EPERM") == 0)
		return EX_NOPERM;
	if (strcmp(r->code, "EAGAIN") == 0 || strcmp(r->code, "ESHUTDOWN") == 0)
		return EX_TEMPFAIL;
	if (strcmp(r->code, "EINVAL") == 0)
		return EX_PROTOCOL;
	return EX_UNAVAILABLE;
}

/* If line is an error object, report it: the exit code; else -1. */
static int
qcli_error_reply(const char *line, size_t len, const struct qcli_opts *o)
{
	struct control_reply r;
	if (control_json_reply_parse(line, len, &r) != 0 || r.ok)
		return -1;
	if (o->json)
		printf("%s\n", line);
	return qcli_fail(&r, &o->req);
}

static int
qcli_list_line(char *line, size_t len, struct qcli_list *l)
{
	if (l->json) {
		printf("%s\n", line);
		l->count++;
		return 0;
	}
	struct control_msg m;
	char err[128];
	int rc = control_json_msg_parse(line, len, &m, err, sizeof(err));
	if (rc == 0)
		qcli_text_msg(stdout, l, &m.env, m.busy);
	control_msg_free(&m);
	return rc;
}

static int
qcli_list(struct qcli_rd *rd, const struct qcli_opts *o)
{
	char *line;
	size_t len;
	int r = qcli_rd_line(rd, &line, &len);
	if (r <= 0)
		return qcli_lost(r);
	if (strcmp(line, "[") != 0) {
		int rc = qcli_error_reply(line, len, o);
		return rc >= 0 ? rc : qcli_malformed();
	}
	if (o->json)
		printf("[\n");
	struct qcli_list l = { .json = o->json };
	while ((r = qcli_rd_line(rd, &line, &len)) == 1) {
		if (strcmp(line, "]") == 0)
			break;
		if (qcli_list_line(line, len, &l) != 0)
			return qcli_malformed();
	}
	if (r != 1)
		return qcli_lost(r);
	if (o->json)
		printf("]\n");
	else
		qcli_text_summary(stdout, &l);
	return 0;
}

static int
qcli_show(struct qcli_rd *rd, const struct qcli_opts *o)
{
	char *line;
	size_t len;
	int r = qcli_rd_line(rd, &line, &len);
	if (r <= 0)
		return qcli_lost(r);
	int rc = qcli_error_reply(line, len, o);
	if (rc >= 0)
		return rc;
	struct control_msg m;
	char err[128];
	if (control_json_msg_parse(line, len, &m, err, sizeof(err)) != 0) {
		control_msg_free(&m);
		return qcli_malformed();
	}
	if (o->json)
		printf("%s\n", line);
	else
		qcli_text_show(stdout, &m);
	control_msg_free(&m);
	return 0;
}

static void
qcli_done_text(const struct control_reply *r, const struct control_req *req)
{
	switch (req->cmd) {
	case CONTROL_FLUSH:
		if (req->id[0])
			printf("%s: flushed: delivery will be tried now\n",
			       req->id);
		else
			printf("Queue flushed: %lld message%s queued\n",
			       (long long)r->count, r->count == 1 ? "" : "s");
		break;
	case CONTROL_DELETE:
		if (r->deferred)
			printf("%s: deleted: removed when its current delivery "
			       "attempt ends\n", req->id);
		else
			printf("%s: deleted\n", req->id);
		break;
	case CONTROL_HOLD:
		printf("%s: held\n", req->id);
		break;
	default:
		printf("%s: released\n", req->id);
		break;
	}
}

static int
qcli_change(struct qcli_rd *rd, const struct qcli_opts *o)
{
	char *line;
	size_t len;
	int r = qcli_rd_line(rd, &line, &len);
	if (r <= 0)
		return qcli_lost(r);
	struct control_reply rep;
	if (control_json_reply_parse(line, len, &rep) != 0)
		return qcli_malformed();
	if (!rep.ok) {
		if (o->json)
			printf("%s\n", line);
		return qcli_fail(&rep, &o->req);
	}
	if (o->json)
		printf("%s\n", line);
	else
		qcli_done_text(&rep, &o->req);
	return 0;
}

static int
qcli_online(int fd, const struct qcli_opts *o)
{
	int e = qcli_send(fd, &o->req);
	/* A daemon that refused us may have closed already: its reply
	 * can still be waiting to be read. */
	if (e < 0 && e != -EPIPE && e != -ECONNRESET) {
		fprintf(stderr, "outbox: sending to outboxd: %s\n", strerror(-e));
		return EX_UNAVAILABLE;
	}
	struct qcli_rd rd = { .fd = fd };
	buf_init(&rd.in, QCLI_REPLY_MAX);
	int rc;
	if (o->req.cmd == CONTROL_LIST)
		rc = qcli_list(&rd, o);
	else if (o->req.cmd == CONTROL_SHOW)
		rc = qcli_show(&rd, o);
	else
		rc = qcli_change(&rd, o);
	buf_free(&rd.in);
	return rc;
}

/* No daemon: read the spool for list/show, refuse the rest. */
static int
qcli_offline(const char *dir, const char *path, const struct qcli_opts *o)
{
	if (o->req.cmd != CONTROL_LIST && o->req.cmd != CONTROL_SHOW) {
		fprintf(stderr, "outbox: outboxd is not running (no answer on "
				"%s): cannot %s\n", path, qcli_word(o->req.cmd));
		return EX_TEMPFAIL;
	}
	fprintf(stderr, "(daemon not running: read from the spool)\n");
	if (o->req.cmd == CONTROL_LIST)
		return qcli_spool_list(dir, o->json);
	return qcli_spool_show(dir, o->req.id, o->json);
}

static int
qcli_run(const struct qcli_opts *o)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	if (config_load(cli_config_path(o->config), &cfg, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "outbox: %s\n", err);
		return EX_CONFIG;
	}
	const char *dir = cfg.spool.dir;
	char path[CONFIG_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", dir, CONTROL_SOCKET_NAME);
	int fd = cli_control_connect(path, QCLI_RECV_TIMEOUT_S);
	if (fd == -ENOENT || fd == -ECONNREFUSED)
		return qcli_offline(dir, path, o);
	if (fd < 0) {
		fprintf(stderr, "outbox: cannot connect to outboxd at %s: %s\n",
			path, strerror(-fd));
		return fd == -EACCES || fd == -EPERM ? EX_NOPERM
						     : EX_UNAVAILABLE;
	}
	int rc = qcli_online(fd, o);
	close(fd);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EX_IOERR;
	return rc;
}

int
cli_queue_main(int argc, char **argv)
{
	struct qcli_opts o = { 0 };
	if (qcli_parse(argc, argv, &o) != 0) {
		qcli_usage(stderr, false);
		return EX_USAGE;
	}
	if (o.help) {
		qcli_usage(stdout, false);
		return 0;
	}
	return qcli_run(&o);
}

int
cli_mailq_main(int argc, char **argv)
{
	struct qcli_opts o = { .mailq = true };
	if (qcli_parse(argc, argv, &o) != 0) {
		qcli_usage(stderr, true);
		return EX_USAGE;
	}
	if (o.help) {
		qcli_usage(stdout, true);
		return 0;
	}
	return qcli_run(&o);
}
