/* SPDX-License-Identifier: MIT */
/*
 * `outbox status [--json] [--check] [--stuck-after DURATION] [-c FILE]`:
 * the daemon's health over the control socket (STATUS request; the reply
 * is include/outbox/status.h).
 *
 * Without --check it prints the status as text (or the daemon's JSON with
 * --json). With --check it is a monitoring probe: exit 0 when the daemon
 * answers and the queue is not stuck, else non-zero with one line on
 * stderr saying why. "Stuck" means the oldest deferred message (tried at
 * least once, still pending, not held) is older than stuck_after: the
 * daemon's [metrics] stuck_after, or --stuck-after when given (the daemon's
 * own "stuck" is then recomputed, and --json prints the recomputed one).
 *
 * Exit codes (STATUS_EXIT_TEXT below, also in the usage):
 *   0 ok; 1 queue stuck (--check only); 64 usage; 69 outboxd not running
 *   (no control socket, or it refuses connections); 75 outboxd busy or
 *   stopping, or the reply was cut short; 76 malformed reply; 77 permission
 *   denied; 78 bad configuration.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "outbox/config.h"
#include "outbox/control.h"
#include "outbox/status.h"
#include "outbox/str.h"

#include "cli.h"

#define SCLI_TIMEOUT_S 30
#define SCLI_EXIT_STUCK 1

#define STATUS_EXIT_TEXT                                                   \
	"exit: 0 ok, 1 queue stuck (--check), 64 usage, 69 outboxd not "   \
	"running,\n      75 outboxd busy or stopping, 76 bad reply, 77 "   \
	"permission denied, 78 bad config\n"

struct scli_opts {
	const char *config;
	bool json, check, help;
	bool have_stuck_after;
	uint64_t stuck_after;    /* seconds */
};

static void
scli_usage(FILE *f)
{
	fprintf(f, "usage: outbox status [--json] [--check] "
		   "[--stuck-after DURATION] [-c FILE]\n" STATUS_EXIT_TEXT);
}

static int
scli_stuck_after(const char *v, struct scli_opts *o)
{
	uint64_t ms;
	if (config_value_duration_ms(v, &ms) != 0) {
		fprintf(stderr, "outbox: bad --stuck-after '%s' (e.g. 30m, 2h)\n",
			v);
		return -1;
	}
	o->stuck_after = ms / 1000;
	o->have_stuck_after = true;
	return 0;
}

/* 0, or EX_USAGE (after a message for a bad value). */
static int
scli_parse(int argc, char **argv, struct scli_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--check") == 0) {
			o->check = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
		} else if (strcmp(a, "--stuck-after") == 0) {
			if (i + 1 == argc || scli_stuck_after(argv[++i], o) != 0)
				return EX_USAGE;
		} else if (strncmp(a, "--stuck-after=", 14) == 0) {
			if (scli_stuck_after(a + 14, o) != 0)
				return EX_USAGE;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 == argc)
				return EX_USAGE;
			o->config = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			o->config = a + 9;
		} else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
			o->config = a + 2;
		} else {
			return EX_USAGE;
		}
	}
	return 0;
}

/* ---- the socket ---- */

/* Send STATUS and read the whole reply into in (until the daemon
 * closes). 0 or -errno; -EMSGSIZE past the bound. */
static int
scli_exchange(int fd, struct buf *in)
{
	static const char req[] = "STATUS\n";
	/* A refusing daemon may have answered and closed already: its
	 * reply can still be read after EPIPE. The request is tiny, so one
	 * send takes all of it. */
	ssize_t w = send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	if (w < 0 && errno != EPIPE && errno != ECONNRESET)
		return -errno;
	for (;;) {
		if (buf_reserve(in, 4096) != 0)
			return -EMSGSIZE;
		ssize_t r = read(fd, in->data + in->len, in->cap - in->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET && in->len > 0)
			break;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			break;
		in->len += (size_t)r;
		in->data[in->len] = '\0';
	}
	return 0;
}

/* ---- text ---- */

/* "2d 3h", "3h 4m", "4m 5s", "5s". */
static void
scli_dur(char *out, size_t size, uint64_t s)
{
	if (s >= 86400)
		snprintf(out, size, "%" PRIu64 "d %" PRIu64 "h", s / 86400,
			 s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, size, "%" PRIu64 "h %" PRIu64 "m", s / 3600,
			 s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(out, size, "%" PRIu64 "s", s);
}

static void
scli_age(char *out, size_t size, int64_t age)
{
	if (age < 0)
		snprintf(out, size, "none");
	else
		scli_dur(out, size, (uint64_t)age);
}

static void
scli_text_queue(FILE *f, const struct status *st)
{
	char a[32], b[32], c[32];
	scli_age(a, sizeof(a), st->oldest_age);
	scli_age(b, sizeof(b), st->oldest_deferred_age);
	scli_dur(c, sizeof(c), st->stuck_after);
	fprintf(f,
		"Queue: %" PRIu64 " message%s, %" PRIu64
		" recipient%s pending, %" PRIu64 " held\n"
		"  oldest message: %s%s; oldest deferred: %s%s\n"
		"  stuck: %s (after %s)\n",
		st->messages, st->messages == 1 ? "" : "s",
		st->recipients_pending, st->recipients_pending == 1 ? "" : "s",
		st->held, a, st->oldest_age < 0 ? "" : " old", b,
		st->oldest_deferred_age < 0 ? "" : " old",
		st->stuck ? "YES" : "no", c);
}

static void
scli_text_counters(FILE *f, const struct status *st)
{
	fprintf(f, "Counters since start:\n ");
	for (int i = 0; i < STATUS_NCOUNTERS; i++) {
		fprintf(f, " %s %" PRIu64, status_counter_name(i),
			st->counters[i]);
		if (i == STATUS_DSN_SENT)
			fprintf(f, "\n ");
	}
	fprintf(f, "\n");
}

static void
scli_text_dest(FILE *f, const struct status *st, const struct status_dest *d)
{
	char when[32];
	fprintf(f, "  %s: %" PRIu64 " queued", d->name, d->queued);
	if (d->next_attempt > st->time) {
		scli_dur(when, sizeof(when),
			 (uint64_t)(d->next_attempt - st->time));
		fprintf(f, ", next attempt in %s", when);
	} else if (d->next_attempt > 0) {
		fprintf(f, ", due now");
	}
	fprintf(f, "\n");
	if (d->last_error[0] != '\0') {
		int64_t ago = st->time - d->last_error_at;
		scli_dur(when, sizeof(when), ago > 0 ? (uint64_t)ago : 0);
		fprintf(f, "    last error (%s ago): %s\n", when, d->last_error);
	}
}

static void
scli_text(FILE *f, const struct status *st)
{
	char up[32];
	scli_dur(up, sizeof(up), st->uptime);
	fprintf(f, "outboxd %s (pid %" PRId64 "), up %s\n", st->version,
		st->pid, up);
	scli_text_queue(f, st);
	scli_text_counters(f, st);
	if (st->dests_total == 0)
		return;
	fprintf(f, "Destinations with queued mail (%zu of %" PRIu64 "):\n",
		st->ndests, st->dests_total);
	for (size_t i = 0; i < st->ndests; i++)
		scli_text_dest(f, st, &st->dests[i]);
}

/* ---- the reply ---- */

/* An error reply's exit code (after its line on stderr). */
static int
scli_fail(const struct control_reply *r)
{
	fprintf(stderr, "outbox: status: %s\n", r->error);
	if (strcmp(r->code, "EPERM") == 0)
		return EX_NOPERM;
	if (strcmp(r->code, "EAGAIN") == 0 || strcmp(r->code, "ESHUTDOWN") == 0)
		return EX_TEMPFAIL;
	if (strcmp(r->code, "EINVAL") == 0)
		return EX_PROTOCOL;
	return EX_UNAVAILABLE;
}

/* The --check verdict: its line and exit code. */
static int
scli_check(const struct status *st)
{
	char age[32], limit[32];
	scli_age(age, sizeof(age), st->oldest_deferred_age);
	scli_dur(limit, sizeof(limit), st->stuck_after);
	if (!st->stuck) {
		printf("outbox: ok: %" PRIu64 " message%s queued, oldest "
		       "deferred %s (stuck after %s)\n",
		       st->messages, st->messages == 1 ? "" : "s", age, limit);
		return 0;
	}
	const struct status_dest *d = st->ndests > 0 ? &st->dests[0] : NULL;
	fprintf(stderr,
		"outbox: queue stuck: the oldest deferred message is %s old "
		"(stuck after %s)%s%s%s%s\n",
		age, limit, d && d->last_error[0] ? "; " : "",
		d && d->last_error[0] ? d->name : "",
		d && d->last_error[0] ? ": " : "",
		d && d->last_error[0] ? d->last_error : "");
	return SCLI_EXIT_STUCK;
}

static int
scli_output(const struct scli_opts *o, struct status *st, const char *raw,
	    size_t rawlen)
{
	if (o->have_stuck_after) {
		st->stuck_after = o->stuck_after;
		st->stuck = status_is_stuck(st, o->stuck_after);
	}
	if (o->json && !o->have_stuck_after) {
		fwrite(raw, 1, rawlen, stdout);
	} else if (o->json) {
		struct buf b;
		buf_init(&b, STATUS_JSON_MAX);
		if (status_json(&b, st) == 0)
			fwrite(b.data, 1, b.len, stdout);
		buf_free(&b);
	} else if (!o->check) {
		scli_text(stdout, st);
	}
	return o->check ? scli_check(st) : 0;
}

static int
scli_reply(const struct scli_opts *o, struct buf *in)
{
	const char *s = in->data ? in->data : "";
	size_t n = in->len;
	struct control_reply rep;
	if (n == 0) {
		fprintf(stderr, "outbox: status: outboxd closed the connection "
				"without a reply\n");
		return EX_TEMPFAIL;
	}
	if (control_json_reply_parse(s, n, &rep) == 0 && !rep.ok)
		return scli_fail(&rep);
	struct status *st = calloc(1, sizeof(*st));
	char err[128];
	if (st == NULL) {
		fprintf(stderr, "outbox: out of memory\n");
		return EX_OSERR;
	}
	int rc;
	if (status_json_parse(s, n, st, err, sizeof(err)) != 0) {
		fprintf(stderr, "outbox: status: malformed reply from outboxd: "
				"%s\n", err);
		rc = EX_PROTOCOL;
	} else {
		rc = scli_output(o, st, s, n);
	}
	free(st);
	return rc;
}

static int
scli_run(const struct scli_opts *o)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	if (config_load(cli_config_path(o->config), &cfg, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "outbox: %s\n", err);
		return EX_CONFIG;
	}
	char path[CONFIG_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", cfg.spool.dir,
		 CONTROL_SOCKET_NAME);
	int fd = cli_control_connect(path, SCLI_TIMEOUT_S);
	if (fd == -ENOENT || fd == -ECONNREFUSED) {
		fprintf(stderr, "outbox: outboxd is not running (no answer on "
				"%s)\n", path);
		return EX_UNAVAILABLE;
	}
	if (fd < 0) {
		fprintf(stderr, "outbox: cannot connect to outboxd at %s: %s\n",
			path, strerror(-fd));
		return fd == -EACCES || fd == -EPERM ? EX_NOPERM
						     : EX_UNAVAILABLE;
	}
	struct buf in;
	buf_init(&in, STATUS_JSON_MAX + 1);
	int r = scli_exchange(fd, &in);
	close(fd);
	int rc;
	if (r != 0) {
		fprintf(stderr, "outbox: status: reading from outboxd: %s\n",
			strerror(-r));
		rc = r == -EMSGSIZE ? EX_PROTOCOL : EX_TEMPFAIL;
	} else {
		rc = scli_reply(o, &in);
	}
	buf_free(&in);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EX_IOERR;
	return rc;
}

int
cli_status_main(int argc, char **argv)
{
	struct scli_opts o = { 0 };
	if (scli_parse(argc, argv, &o) != 0) {
		scli_usage(stderr);
		return EX_USAGE;
	}
	if (o.help) {
		scli_usage(stdout);
		return 0;
	}
	return scli_run(&o);
}
