/* SPDX-License-Identifier: MIT */
/*
 * The maildrop writer of `outbox send` (sendmail): one file per message,
 * committed by the spool's rule (RELIABILITY.md I1, D2, G8) before the
 * command may exit 0:
 *
 *   openat(tmp.<random>, O_EXCL|O_NOFOLLOW) -> write head and message ->
 *   fsync -> renameat2(RENAME_NOREPLACE) to <id> -> sync the directory.
 *
 * The maildrop is mode 1733, so an unprivileged caller may create files
 * in it but not open it for reading; the directory is then reached
 * through an O_PATH descriptor, and because fsync() needs a readable
 * descriptor, such a caller syncs the file system (syncfs on the file)
 * instead, which also commits the directory entry. Terminal signals are
 * blocked while the temporary file exists so ^C cannot strand it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <sysexits.h>
#include <unistd.h>

#include "outbox/buf.h"
#include "outbox/id.h"
#include "outbox/maildrop.h"
#include "outbox/spool.h"

#include "send_priv.h"

#define DROP_TRIES 4            /* fresh ids after a name collision */
#define DROP_TMP_SIZE 24        /* "tmp." + 16 hex + NUL */

struct drop {
	int dfd;                /* O_PATH of the maildrop directory */
	char path[4200];        /* for messages */
	char tmp[DROP_TMP_SIZE];
	int fd;                 /* the temporary (then final) file */
	char *why;
	size_t whylen;
};

static int
drop_fail(struct drop *d, const char *what, int err)
{
	snprintf(d->why, d->whylen, "%s %s: %s", what, d->path, strerror(err));
	return EX_TEMPFAIL;
}

/* The maildrop directory; created (mode 1733) when missing, as root can. */
static int
drop_open_dir(struct drop *d, const char *spool_dir)
{
	int n = snprintf(d->path, sizeof(d->path), "%s/%s", spool_dir,
			 MAILDROP_DIR);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		snprintf(d->why, d->whylen, "spool directory name too long");
		return EX_TEMPFAIL;
	}
	d->dfd = open(d->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->dfd < 0 && errno == ENOENT &&
	    (mkdir(d->path, 01733) == 0 || errno == EEXIST)) {
		/* mkdir's mode is cut by the umask: set it exactly. */
		(void)chmod(d->path, 01733);
		d->dfd = open(d->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (d->dfd < 0) {
		int err = errno;
		snprintf(d->why, d->whylen, "maildrop directory %s: %s%s",
			 d->path, strerror(err),
			 err == ENOENT || err == EACCES
				 ? " (outboxd creates it, mode 1733, when it "
				   "starts)"
				 : "");
		return EX_TEMPFAIL;
	}
	return 0;
}

static void
drop_tmp_name(char out[DROP_TMP_SIZE])
{
	unsigned long long r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r ^= (unsigned long long)getpid() << 32 ^ (unsigned long long)time(NULL);
	snprintf(out, DROP_TMP_SIZE, "tmp.%016llx", r);
}

/* Create the temporary file and fill and fsync it. */
static int
drop_write_tmp(struct drop *d, const struct buf *head, const char *msg,
	       size_t len)
{
	drop_tmp_name(d->tmp);
	d->fd = openat(d->dfd, d->tmp,
		       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       0644);
	if (d->fd < 0) {
		int err = errno;
		d->tmp[0] = '\0'; /* not ours: never unlink it */
		return drop_fail(d, "cannot create a file in", err);
	}
	/* 0644 whatever the caller's umask: the daemon may not be root. */
	int r = fchmod(d->fd, 0644) != 0 ? -errno : 0;
	if (r == 0)
		r = spool_write_all(d->fd, head->data, head->len);
	if (r == 0)
		r = spool_write_all(d->fd, msg, len);
	if (r == 0 && fsync(d->fd) != 0)
		r = -errno;
	return r != 0 ? drop_fail(d, "cannot write to", -r) : 0;
}

/* Rename without replacing; -EEXIST means: try another id. */
static int
drop_rename(struct drop *d, const char *id)
{
	if (renameat2(d->dfd, d->tmp, d->dfd, id, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A file system without RENAME_NOREPLACE: link() never replaces. */
	if (linkat(d->dfd, d->tmp, d->dfd, id, 0) != 0)
		return -errno;
	(void)unlinkat(d->dfd, d->tmp, 0);
	return 0;
}

/* Make the new directory entry durable. */
static int
drop_sync_dir(struct drop *d)
{
	int rfd = openat(d->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd >= 0) {
		int r = fsync(rfd) == 0 ? 0 : -errno;
		close(rfd);
		return r;
	}
	if (errno != EACCES)
		return -errno;
	/* Mode 1733 and not the owner: sync the whole file system. */
	return syncfs(d->fd) == 0 ? 0 : -errno;
}

static void
drop_close(struct drop *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* One attempt with e's id. 0, -EEXIST (id taken), or a sysexits code. */
static int
drop_attempt(struct drop *d, const struct envelope *e, const char *msg,
	     size_t len)
{
	struct buf head;
	buf_init(&head, MAILDROP_HEAD_MAX + 64);
	int r = maildrop_encode_head(e, &head);
	if (r != 0) {
		buf_free(&head);
		snprintf(d->why, d->whylen, "%s",
			 r == -ENOBUFS ? "envelope too large (too many "
					 "recipients)"
				       : "cannot encode the envelope");
		return r == -ENOBUFS ? EX_DATAERR : EX_SOFTWARE;
	}
	r = drop_write_tmp(d, &head, msg, len);
	buf_free(&head);
	if (r == 0)
		r = drop_rename(d, e->id);
	if (r == -EEXIST) {
		(void)unlinkat(d->dfd, d->tmp, 0);
		drop_close(d);
		return -EEXIST;
	}
	if (r < 0)
		r = drop_fail(d, "cannot rename a file in", -r);
	else if (r == 0) {
		d->tmp[0] = '\0'; /* renamed: that name is gone */
		r = drop_sync_dir(d);
		if (r != 0) {
			/* Not durable: take it back so a retry cannot double it. */
			(void)unlinkat(d->dfd, e->id, 0);
			r = drop_fail(d, "cannot sync", -r);
		}
	}
	if (r != 0 && d->tmp[0] != '\0')
		(void)unlinkat(d->dfd, d->tmp, 0);
	drop_close(d);
	return r;
}

int
send_drop_write(const char *spool_dir, struct envelope *e, const char *msg,
		size_t len, char *why, size_t whylen)
{
	struct drop d = { .dfd = -1, .fd = -1, .why = why, .whylen = whylen };
	int r = drop_open_dir(&d, spool_dir);
	if (r != 0)
		return r;
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTSTP);
	sigprocmask(SIG_BLOCK, &block, &old);
	r = -EEXIST;
	for (int i = 0; i < DROP_TRIES && r == -EEXIST; i++) {
		if (i > 0 || !id_valid(e->id))
			id_new(e->id);
		d.tmp[0] = '\0';
		r = drop_attempt(&d, e, msg, len);
	}
	if (r == -EEXIST)
		r = drop_fail(&d, "no free file name in", EEXIST);
	close(d.dfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}
