/* SPDX-License-Identifier: MIT */
/*
 * `outbox queue list|show` while outboxd is not running: read the spool
 * directly, read-only, with the same care as start-up recovery: names
 * must be queue ids, files are opened O_NOFOLLOW|O_NONBLOCK (no symlink,
 * no FIFO blocking us), must be regular files of at most QCLI_ENV_MAX
 * bytes, and must decode (checksum included) to the id they are named
 * after. Anything else is skipped with a note on stderr; the spool is
 * never changed (recovery, not the CLI, quarantines). Messages whose
 * files were never written (held in the intake log when outboxd died)
 * come from their log records (queue_log.c). Output is the same as
 * through the daemon (sorted by id; busy is always false).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "outbox/id.h"
#include "outbox/spool.h"
#include "outbox/str.h"

#include "queue_priv.h"

#define QCLI_ENV_MAX (16u * 1024u * 1024u) /* as the spool's SPOOL_ENV_MAX */

/* Open dir/sub/name safely; fd or -errno. */
static int
qcli_open(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					     O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int
qcli_read_all(int fd, char *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Load env/ID into e. 0, -ENOENT, or -EINVAL with why filled. */
static int
qcli_load_env(int envfd, const char *id, struct envelope *e, char *why,
	      size_t whylen)
{
	struct stat st;
	char err[160];
	int fd = qcli_open(envfd, id, &st);
	if (fd < 0) {
		snprintf(why, whylen, "%s", fd == -EINVAL ? "not a regular file"
							  : strerror(-fd));
		return fd == -ENOENT ? -ENOENT : -EINVAL;
	}
	int rc = -EINVAL;
	char *data = NULL;
	if (st.st_size <= 0 || (uint64_t)st.st_size > QCLI_ENV_MAX)
		snprintf(why, whylen, "bad size %lld", (long long)st.st_size);
	else if ((data = malloc((size_t)st.st_size)) == NULL)
		snprintf(why, whylen, "out of memory");
	else if (qcli_read_all(fd, data, (size_t)st.st_size) != 0)
		snprintf(why, whylen, "cannot read it");
	else if (envelope_decode(data, (size_t)st.st_size, e, err,
				 sizeof(err)) != 0)
		snprintf(why, whylen, "bad envelope: %s", err);
	else if (strcmp(e->id, id) != 0) {
		snprintf(why, whylen, "envelope holds id %s", e->id);
		envelope_free(e);
	} else
		rc = 0;
	free(data);
	close(fd);
	return rc;
}

static int
qcli_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ID_LEN);
}

/* The ids in env/, sorted. 0 or -errno. */
static int
qcli_scan(int envfd, char (**out)[ID_SIZE], size_t *n)
{
	int fd = dup(envfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (dir == NULL) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	char(*ids)[ID_SIZE] = NULL;
	size_t cap = 0;
	int rc = 0;
	*n = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (!id_valid(de->d_name))
			continue;
		if (*n == cap) {
			size_t c = cap ? cap * 2 : 256;
			void *p = reallocarray(ids, c, ID_SIZE);
			if (p == NULL) {
				rc = -ENOMEM;
				break;
			}
			ids = p;
			cap = c;
		}
		memcpy(ids[(*n)++], de->d_name, ID_SIZE);
	}
	closedir(dir);
	if (rc == 0 && *n > 1)
		qsort(ids, *n, ID_SIZE, qcli_id_cmp);
	*out = ids;
	return rc;
}

/* Open <dir>/<sub>; fd, or -errno (quiet). */
static int
qcli_open_sub(const char *dir, const char *sub)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* Say why <dir>/<sub> cannot be read; the exit code. */
static int
qcli_sub_fail(const char *dir, const char *sub, int err)
{
	fprintf(stderr, "outbox: cannot read the spool %s/%s: %s\n", dir, sub,
		strerror(-err));
	return err == -EACCES || err == -EPERM ? EX_NOPERM : EX_UNAVAILABLE;
}

static void
qcli_note(const char *id, const char *why)
{
	fprintf(stderr, "outbox: %s: skipped: ", id);
	qcli_print_safe(stderr, why);
	fputc('\n', stderr);
}

/* Print one message in the listing; 0 or -1 (out of memory). */
static int
qcli_spool_emit(struct qcli_list *l, const struct envelope *e,
		struct buf *json)
{
	if (!l->json) {
		qcli_text_msg(stdout, l, e, false);
		return 0;
	}
	buf_reset(json);
	if ((l->count > 0 && buf_puts(json, ",\n") != 0) ||
	    control_json_msg(json, e, false, NULL, 0, false) != 0)
		return -1;
	fwrite(json->data, 1, json->len, stdout);
	l->count++;
	return 0;
}

/* The intake log's messages into lg (only: that id alone). No log/ means
 * none; a log that cannot be read is said, not fatal: the files list. */
static void
qcli_spool_log(const char *dir, const char *only, struct qcli_log *lg)
{
	*lg = (struct qcli_log){ 0 };
	int logfd = qcli_open_sub(dir, "log");
	int rc = logfd >= 0 ? qcli_log_load(logfd, only, lg) : logfd;
	if (logfd >= 0)
		close(logfd);
	if (rc != 0 && rc != -ENOENT)
		fprintf(stderr, "outbox: cannot read the intake log %s/log: %s "
				"(messages not yet in env/ are not shown)\n",
			dir, strerror(-rc));
}

/* e from a logged message's record: 0, or -EINVAL with why filled. */
static int
qcli_logged_env(const struct qcli_logged *m, struct envelope *e, char *why,
		size_t whylen)
{
	char err[160];
	if (envelope_decode(m->env, m->env_len, e, err, sizeof(err)) != 0) {
		snprintf(why, whylen, "bad envelope in the intake log: %s", err);
		return -EINVAL;
	}
	if (strcmp(e->id, m->id) != 0) {
		snprintf(why, whylen, "intake log record holds id %s", e->id);
		envelope_free(e);
		return -EINVAL;
	}
	return 0;
}

/* id's envelope: env/ID (it may hold progress newer than the record),
 * else its intake log record. 0, -ENOENT, or -EINVAL with why. */
static int
qcli_spool_load(int envfd, const struct qcli_log *lg, const char *id,
		struct envelope *e, char *why, size_t whylen)
{
	int r = envfd >= 0 ? qcli_load_env(envfd, id, e, why, whylen) : -ENOENT;
	if (r != -ENOENT)
		return r;
	const struct qcli_logged *m = qcli_log_find(lg, id);
	return m != NULL ? qcli_logged_env(m, e, why, whylen) : -ENOENT;
}

/* The next id of the two sorted lists, each once; NULL at the end. */
static const char *
qcli_next_id(char (*ids)[ID_SIZE], size_t n, size_t *i,
	     const struct qcli_log *lg, size_t *j)
{
	if (*i >= n && *j >= lg->n)
		return NULL;
	if (*j >= lg->n ||
	    (*i < n && memcmp(ids[*i], lg->v[*j].id, ID_LEN) <= 0)) {
		if (*j < lg->n && memcmp(ids[*i], lg->v[*j].id, ID_LEN) == 0)
			(*j)++;
		return ids[(*i)++];
	}
	return lg->v[(*j)++].id;
}

/* Every message of env/ and of the intake log, sorted by id. */
static int
qcli_spool_list_all(int envfd, char (*ids)[ID_SIZE], size_t n,
		    const struct qcli_log *lg, bool json)
{
	struct qcli_list l = { .json = json };
	struct buf b;
	buf_init(&b, CONTROL_OBJ_MAX);
	int rc = 0;
	size_t i = 0, j = 0;
	const char *id;
	if (json)
		fputs("[\n", stdout);
	while (rc == 0 && (id = qcli_next_id(ids, n, &i, lg, &j)) != NULL) {
		struct envelope e;
		char why[256];
		int r = qcli_spool_load(envfd, lg, id, &e, why, sizeof(why));
		if (r == -ENOENT)
			continue; /* delivered since the scan */
		if (r != 0) {
			qcli_note(id, why);
			continue;
		}
		if (qcli_spool_emit(&l, &e, &b) != 0)
			rc = EX_SOFTWARE;
		envelope_free(&e);
	}
	if (json)
		fputs(l.count ? "\n]\n" : "]\n", stdout);
	else
		qcli_text_summary(stdout, &l);
	buf_free(&b);
	return rc;
}

int
qcli_spool_list(const char *dir, bool json)
{
	int envfd = qcli_open_sub(dir, "env");
	/* No env/ at all: the daemon never ran here, the queue is empty. */
	if (envfd < 0 && envfd != -ENOENT)
		return qcli_sub_fail(dir, "env", envfd);
	if (envfd == -ENOENT)
		fprintf(stderr, "outbox: no spool at %s (a relative [spool] dir "
				"is taken from the current directory)\n", dir);
	char(*ids)[ID_SIZE] = NULL;
	size_t n = 0;
	if (envfd >= 0 && qcli_scan(envfd, &ids, &n) != 0) {
		fprintf(stderr, "outbox: cannot list %s/env\n", dir);
		close(envfd);
		free(ids);
		return EX_UNAVAILABLE;
	}
	struct qcli_log lg;
	qcli_spool_log(dir, NULL, &lg);
	int rc = qcli_spool_list_all(envfd, ids, n, &lg, json);
	qcli_log_free(&lg);
	free(ids);
	if (envfd >= 0)
		close(envfd);
	return rc;
}

/* h (n bytes read of a body, room for one more; owned) becomes
 * m->headers: its header section. */
static void
qcli_head_take(char *h, size_t n, struct control_msg *m)
{
	bool complete;
	size_t len = control_header_len(h, n, &complete);
	h[len] = '\0';
	m->headers = h;
	m->headers_truncated = !complete && n == CONTROL_HEADERS_MAX;
}

/* The same from a copy of a logged record's first bytes. */
static void
qcli_head_headers(const char *head, size_t n, struct control_msg *m)
{
	char *h = malloc(n + 1);
	if (h == NULL)
		return;
	memcpy(h, head, n);
	qcli_head_take(h, n, m);
}

/* The header section of msg/ID into m->headers (NULL if unreadable). */
static void
qcli_spool_headers(const char *dir, struct control_msg *m)
{
	int msgfd = qcli_open_sub(dir, "msg");
	if (msgfd < 0)
		return;
	struct stat st;
	int fd = qcli_open(msgfd, m->env.id, &st);
	close(msgfd);
	if (fd < 0)
		return;
	char *h = malloc(CONTROL_HEADERS_MAX + 1);
	size_t n = h ? spool_read_head(fd, h, CONTROL_HEADERS_MAX) : 0;
	close(fd);
	if (h != NULL)
		qcli_head_take(h, n, m);
}

int
qcli_spool_show(const char *dir, const char *id, bool json)
{
	int envfd = qcli_open_sub(dir, "env");
	if (envfd < 0 && envfd != -ENOENT)
		return qcli_sub_fail(dir, "env", envfd);
	struct control_msg m = { 0 };
	char why[256];
	struct qcli_log lg;
	qcli_spool_log(dir, id, &lg);
	int r = qcli_spool_load(envfd, &lg, id, &m.env, why, sizeof(why));
	if (envfd >= 0)
		close(envfd);
	if (r != 0) {
		qcli_log_free(&lg);
		if (r == -ENOENT) {
			fprintf(stderr, "outbox: %s: no such message\n", id);
			return 1;
		}
		qcli_note(id, why);
		return EX_DATAERR;
	}
	qcli_spool_headers(dir, &m);
	if (m.headers == NULL && lg.n == 1 && lg.v[0].head != NULL)
		qcli_head_headers(lg.v[0].head, lg.v[0].head_len, &m);
	qcli_log_free(&lg);
	int rc = 0;
	if (json) {
		struct buf b;
		buf_init(&b, CONTROL_OBJ_MAX);
		const char *h = m.headers;
		if (control_json_msg(&b, &m.env, false, h, h ? strlen(h) : 0,
				     m.headers_truncated) == 0)
			printf("%s\n", b.data);
		else
			rc = EX_SOFTWARE;
		buf_free(&b);
	} else {
		qcli_text_show(stdout, &m);
	}
	control_msg_free(&m);
	return rc;
}
