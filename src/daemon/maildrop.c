/* SPDX-License-Identifier: MIT */
/*
 * The maildrop pickup: messages that `outbox send` (sendmail) left in
 * <spool>/maildrop are taken into the queue, at start and as they arrive
 * (inotify through uv_fs_event, with a periodic rescan as a fallback).
 *
 * Every maildrop file is untrusted input (any local user can write one):
 * it is opened without following links or blocking, must be a regular
 * file within the size limit, must decode strictly, and its message must
 * match the size and CRC in its head. A file that fails is moved to
 * corrupt/ with one log line. A good one goes through [rewrite], is
 * committed to the spool like SMTP mail, and only then removed from the
 * maildrop, so a crash in between delivers it twice, never zero times.
 * One file is imported at a time; the read runs on the thread pool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/crc32.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/maildrop.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#define MAILDROP_RESCAN_MS 5000

struct maildrop {
	struct daemon *d;
	uv_fs_event_t watch;
	uv_timer_t timer;
	char dir[CONFIG_PATH_MAX + 16];
	bool busy;          /* an import is in flight */
	bool again;         /* something changed while busy: scan again */
	bool stopping;
	unsigned handles;   /* open libuv handles */
};

struct drop_job {
	struct maildrop *md;
	uv_work_t work;
	char name[ID_SIZE];
	/* filled on the thread pool */
	int err;            /* 0, or -errno (read failure: retry later) */
	char why[256];      /* non-empty: the file is bad, quarantine it */
	char *data;
	size_t len, head_len;
	uid_t uid;
	struct envelope env;
	struct spool_tx *tx;
	struct buf msg;     /* the message after the header stage */
};

static void maildrop_scan(struct maildrop *md);

static void
drop_job_free(struct drop_job *j)
{
	free(j->data);
	buf_free(&j->msg);
	envelope_free(&j->env);
	free(j);
}

/* Thread pool: read and verify one file. */
static void
drop_read_work(uv_work_t *w)
{
	struct drop_job *j = w->data;
	char path[sizeof(j->md->dir) + ID_SIZE + 2];
	snprintf(path, sizeof(path), "%s/%s", j->md->dir, j->name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		j->err = -errno;
		if (fd >= 0)
			close(fd);
		if (j->err == -ELOOP)
			snprintf(j->why, sizeof(j->why), "a symbolic link");
		return;
	}
	j->uid = st.st_uid;
	uint64_t max = j->md->d->cfg.listen.max_message_size + MAILDROP_HEAD_MAX;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		snprintf(j->why, sizeof(j->why), "%s",
			 S_ISREG(st.st_mode) ? "larger than the size limit"
					     : "not a regular file");
		close(fd);
		return;
	}
	j->data = malloc((size_t)st.st_size + 1);
	j->len = j->data ? spool_read_head(fd, j->data, (size_t)st.st_size) : 0;
	close(fd);
	if (j->data == NULL) {
		j->err = -ENOMEM;
		return;
	}
	char err[200];
	if (maildrop_decode_head(j->data, j->len, &j->env, &j->head_len, err,
				 sizeof(err)) != 0) {
		snprintf(j->why, sizeof(j->why), "%s", err);
		return;
	}
	const char *msg = j->data + j->head_len;
	size_t n = j->len - j->head_len;
	if (n != j->env.msg_size || crc32_update(0, msg, n) != j->env.msg_crc)
		snprintf(j->why, sizeof(j->why),
			 "message does not match its head (size %zu)", n);
}

static void
drop_quarantine(struct drop_job *j)
{
	struct maildrop *md = j->md;
	char from[sizeof(md->dir) + ID_SIZE + 2], to[CONFIG_PATH_MAX + 64];
	snprintf(from, sizeof(from), "%s/%s", md->dir, j->name);
	snprintf(to, sizeof(to), "%s/corrupt/maildrop.%s",
		 md->d->cfg.spool.dir, j->name);
	if (rename(from, to) != 0)
		unlink(from);
	log_warn("maildrop %s: quarantined to corrupt/: %s", j->name, j->why);
}

static void
drop_done(struct drop_job *j)
{
	struct maildrop *md = j->md;
	drop_job_free(j);
	md->busy = false;
	if (!md->stopping)
		maildrop_scan(md);
	else if (md->handles == 0)
		free(md);
}

static void
drop_commit_cb(void *arg, int status)
{
	struct drop_job *j = arg;
	struct maildrop *md = j->md;
	if (status != 0) {
		log_warn("maildrop %s: cannot queue it: %s (will retry)",
			 j->name, uv_strerror(status));
		drop_done(j);
		return;
	}
	char path[sizeof(md->dir) + ID_SIZE + 2];
	snprintf(path, sizeof(path), "%s/%s", md->dir, j->name);
	unlink(path);
	if (md->stopping) {
		/* Committed: the next start loads it from the spool. */
		drop_done(j);
		return;
	}
	struct envelope *env = calloc(1, sizeof(*env));
	if (env != NULL && envelope_copy(env, &j->env) == 0) {
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (uid=%u, sendmail)",
			 env->id, env->sender,
			 (unsigned long long)env->msg_size, env->nrcpts,
			 (unsigned)j->uid);
		stats_add(STATUS_RECEIVED, 1);
		queue_add(md->d->queue, env);
	} else {
		free(env); /* on disk: the next start picks it up */
	}
	drop_done(j);
}

static void
drop_write_cb(void *arg, int status)
{
	struct drop_job *j = arg;
	int r = status;
	if (r == 0)
		r = spool_tx_commit(j->tx, &j->env, drop_commit_cb, j);
	if (r != 0) {
		spool_tx_abort(j->tx);
		log_warn("maildrop %s: cannot queue it: %s (will retry)",
			 j->name, uv_strerror(r));
		drop_done(j);
	}
}

/* The message through [rewrite]'s header stage into j->msg. */
static int
drop_rewrite(struct drop_job *j, const char *id)
{
	struct rewrite_stage *st = rewrite_stage_new(j->md->d, id,
						     j->env.sender);
	if (st == NULL)
		return -ENOMEM;
	buf_init(&j->msg, j->len - j->head_len + HEADER_REWRITE_HOLD_MAX);
	int r = header_rewrite_feed(&st->hr, j->data + j->head_len,
				    j->len - j->head_len, &j->msg);
	if (r == 0)
		r = header_rewrite_finish(&st->hr, &j->msg);
	rewrite_stage_free(st);
	return r;
}

/* A verified file: rewrite, then into the spool under a new queue id. */
static void
drop_import(struct drop_job *j)
{
	struct daemon *d = j->md->d;
	int r = rewrite_envelope(d, &j->env);
	if (r == 0)
		r = spool_tx_begin(d->spool, &j->tx);
	if (r == 0 && (r = drop_rewrite(j, spool_tx_id(j->tx))) != 0)
		spool_tx_abort(j->tx);
	if (r == 0) {
		str_copy(j->env.id, sizeof(j->env.id), spool_tx_id(j->tx));
		/* The queue's copy must match what goes to disk. */
		j->env.msg_size = j->msg.len;
		j->env.msg_crc = crc32_update(0, j->msg.data, j->msg.len);
		j->env.arrival = daemon_now();
		j->env.next_attempt = 0;
		j->env.attempts = 0;
		snprintf(j->env.client, sizeof(j->env.client), "uid %u",
			 (unsigned)j->uid);
		r = spool_tx_write(j->tx, j->msg.data, j->msg.len,
				   drop_write_cb, j);
		if (r != 0)
			spool_tx_abort(j->tx);
	}
	if (r != 0) {
		log_warn("maildrop %s: cannot queue it: %s (will retry)",
			 j->name, strerror(-r));
		drop_done(j);
	}
}

static void
drop_read_done(uv_work_t *w, int status)
{
	struct drop_job *j = w->data;
	if (j->md->stopping) {
		drop_done(j);
		return;
	}
	if (j->why[0] != '\0') {
		drop_quarantine(j);
		drop_done(j);
		return;
	}
	if (j->err != 0) {
		if (j->err != -ENOENT) /* gone meanwhile: nothing to say */
			log_warn("maildrop %s: cannot read it: %s", j->name,
				 strerror(-j->err));
		drop_done(j);
		return;
	}
	drop_import(j);
}

static void
drop_start(struct maildrop *md, const char *name)
{
	struct drop_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->md = md;
	envelope_init(&j->env);
	str_copy(j->name, sizeof(j->name), name);
	j->work.data = j;
	if (uv_queue_work(md->d->loop, &j->work, drop_read_work,
			  drop_read_done) != 0) {
		drop_job_free(j);
		return;
	}
	md->busy = true;
}

/* The oldest queue-id-named file, if any; removes stale temporaries. */
static void
maildrop_scan(struct maildrop *md)
{
	if (md->busy) {
		md->again = true;
		return;
	}
	md->again = false;
	DIR *dir = opendir(md->dir);
	if (dir == NULL)
		return;
	char best[ID_SIZE] = "";
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (id_valid(de->d_name) &&
		    (best[0] == '\0' || strcmp(de->d_name, best) < 0))
			str_copy(best, sizeof(best), de->d_name);
	}
	closedir(dir);
	if (best[0] != '\0')
		drop_start(md, best);
}

static void
maildrop_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
	maildrop_scan(h->data);
}

static void
maildrop_timer_cb(uv_timer_t *t)
{
	maildrop_scan(t->data);
}

/* Anyone may drop (cron runs as every user); nobody may list. */
static int
maildrop_dir(struct maildrop *md, const char *spool)
{
	snprintf(md->dir, sizeof(md->dir), "%s/%s", spool, MAILDROP_DIR);
	if (mkdir(md->dir, 01733) != 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(md->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (chmod(md->dir, 01733) != 0 || stat(spool, &st) != 0)
		return -errno;
	/* The spool must be searchable by others to reach the maildrop. */
	if ((st.st_mode & 0011) != 0011 &&
	    chmod(spool, (st.st_mode & 07777) | 0011) != 0)
		return -errno;
	return 0;
}

int
maildrop_start(struct daemon *d)
{
	struct maildrop *md = calloc(1, sizeof(*md));
	if (md == NULL)
		return -1;
	md->d = d;
	int r = maildrop_dir(md, d->cfg.spool.dir);
	if (r != 0) {
		log_err("cannot set up the maildrop %s: %s", md->dir,
			strerror(-r));
		free(md);
		return -1;
	}
	uv_timer_init(d->loop, &md->timer);
	md->timer.data = md;
	uv_timer_start(&md->timer, maildrop_timer_cb, 0, MAILDROP_RESCAN_MS);
	md->handles = 1;
	if (uv_fs_event_init(d->loop, &md->watch) == 0) {
		md->handles++;
		md->watch.data = md;
		if (uv_fs_event_start(&md->watch, maildrop_event_cb, md->dir, 0) != 0)
			log_warn("maildrop: no change notification; scanning "
				 "every %d s",
				 MAILDROP_RESCAN_MS / 1000);
	}
	d->maildrop = md;
	return 0;
}

static void
maildrop_closed(uv_handle_t *h)
{
	struct maildrop *md = h->data;
	if (--md->handles == 0 && !md->busy)
		free(md);
}

void
maildrop_stop(struct daemon *d)
{
	struct maildrop *md = d->maildrop;
	if (md == NULL || md->stopping)
		return;
	md->stopping = true;
	d->maildrop = NULL;
	uv_close((uv_handle_t *)&md->timer, maildrop_closed);
	if (md->handles > 1)
		uv_close((uv_handle_t *)&md->watch, maildrop_closed);
}
