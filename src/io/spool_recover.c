/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Start-up recovery of the spool (RELIABILITY.md D1, D7, D9), run
 *	synchronously before the listener opens:
 *
 *	1. tmp/ holds only work that was never acknowledged: delete it all.
 *	2. Every entry of env/ must be a regular file of ours, named by a
 *	   valid queue id equal to the id inside it, that decodes strictly,
 *	   with a regular message file msg/ID of exactly the recorded size.
 *	   Anything else moves to corrupt/ with one log line; nothing is read
 *	   through a symlink (O_NOFOLLOW) or blocks on a FIFO (O_NONBLOCK,
 *	   type checked before and after opening).
 *	3. A msg/ file without an envelope is a crash between the two renames
 *	   of a commit, so its client never got 250: delete it.
 *
 *	The message CRC is not read here (100k queued messages would make
 *	start-up slow); the delivery reader checks it.
 */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/str.h"
#include "spool_priv.h"

#define SPOOL_WHY_MAX 256

static int
spool_rename_noreplace(int from, const char *name, int to, const char *target)
{
	if (renameat2(from, name, to, target, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* File systems without RENAME_NOREPLACE: check, then rename. */
	struct stat st;
	if (fstatat(to, target, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(from, name, to, target) == 0 ? 0 : -errno;
}

int
spool_quarantine_name(struct spool *sp, enum spool_sub from, const char *name,
		      const char *suffix)
{
	char target[256];
	int rc = -EEXIST;
	for (int i = 0; i < 100 && rc == -EEXIST; i++) {
		/* Cut very long names so the result stays under NAME_MAX. */
		if (i == 0)
			snprintf(target, sizeof(target), "%.200s%s", name, suffix);
		else
			snprintf(target, sizeof(target), "%.200s%s.%d", name,
				 suffix, i);
		rc = spool_rename_noreplace(sp->sub[from], name,
					    sp->sub[SPOOL_CORRUPT], target);
	}
	return rc;
}

static void
spool_recover_quarantine(struct spool *sp, const char *name, bool is_id,
			 enum spool_sub where, const char *why)
{
	char shown[80];
	str_sanitize(shown, sizeof(shown), name, strlen(name));
	int rc;
	if (is_id) {
		rc = spool_quarantine_name(sp, SPOOL_ENV, name, ".env");
		int mrc = spool_quarantine_name(sp, SPOOL_MSG, name, ".msg");
		if (rc == 0 || rc == -ENOENT)
			rc = mrc == -ENOENT ? 0 : mrc;
	} else {
		rc = spool_quarantine_name(sp, where, name,
					   where == SPOOL_ENV   ? ".env"
					   : where == SPOOL_MSG ? ".msg"
								: ".tmp");
	}
	if (rc == 0)
		log_warn("%s: quarantined to corrupt/: %s", shown, why);
	else
		log_warn("%s: cannot quarantine (%s): %s", shown, why,
			 strerror(-rc));
}

/* A fresh directory stream on sub (its own offset, closed by closedir). */
static DIR *
spool_opendir(struct spool *sp, enum spool_sub s)
{
	int fd = openat(sp->sub[s], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (d == NULL)
		close(fd);
	return d;
}

static bool
spool_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Step 1: nothing in tmp/ was ever acknowledged. */
static int
spool_recover_tmp(struct spool *sp)
{
	DIR *d = spool_opendir(sp, SPOOL_TMP);
	if (d == NULL)
		return -errno;
	unsigned removed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (spool_dot(de->d_name))
			continue;
		if (unlinkat(sp->sub[SPOOL_TMP], de->d_name, 0) == 0)
			removed++;
		else if (errno == EISDIR || errno == EPERM)
			spool_recover_quarantine(sp, de->d_name, false,
						 SPOOL_TMP, "directory in tmp/");
		else
			log_warn("spool: cannot remove tmp/%.80s: %s",
				 de->d_name, strerror(errno));
	}
	closedir(d);
	if (removed > 0)
		log_info("spool: removed %u unfinished files from tmp/", removed);
	return 0;
}

static int
spool_read_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static const char *
spool_type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "special file";
	}
}

/*
 * Open sub/name without following a symlink or blocking on a FIFO, and
 * check that it is a regular file of ours. fd, or -1 with why set.
 */
static int
spool_open_checked(struct spool *sp, enum spool_sub s, const char *name,
		   const char *what, struct stat *st, char *why, size_t whylen)
{
	if (fstatat(sp->sub[s], name, st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			snprintf(why, whylen, "%s file missing", what);
		else
			snprintf(why, whylen, "%s: %s", what, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s is a %s, not a regular file", what,
			 spool_type_name(st->st_mode));
		return -1;
	}
	int fd = openat(sp->sub[s], name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
						  O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", what, strerror(errno));
		return -1;
	}
	/* Checked again on the open file: the name may have been swapped. */
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", what);
	} else if (st->st_uid != geteuid()) {
		snprintf(why, whylen, "%s is owned by uid %lu", what,
			 (unsigned long)st->st_uid);
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

static int
spool_load_env(struct spool *sp, const char *name, struct envelope *e,
	       char *why, size_t whylen)
{
	struct stat st;
	int fd = spool_open_checked(sp, SPOOL_ENV, name, "envelope", &st, why,
				    whylen);
	if (fd < 0)
		return -1;
	int rc = -1;
	char *data = NULL;
	char err[160];
	if (st.st_size == 0) {
		snprintf(why, whylen, "envelope is empty");
	} else if ((uint64_t)st.st_size > SPOOL_ENV_MAX) {
		snprintf(why, whylen, "envelope too large (%lld bytes)",
			 (long long)st.st_size);
	} else if ((data = malloc((size_t)st.st_size)) == NULL) {
		snprintf(why, whylen, "out of memory");
	} else if (spool_read_all(fd, data, (size_t)st.st_size) != 0) {
		snprintf(why, whylen, "cannot read envelope");
	} else if (envelope_decode(data, (size_t)st.st_size, e, err,
				   sizeof(err)) != 0) {
		snprintf(why, whylen, "bad envelope: %s", err);
	} else if (strcmp(e->id, name) != 0) {
		snprintf(why, whylen, "envelope holds id %s", e->id);
		envelope_free(e);
	} else {
		rc = 0;
	}
	free(data);
	close(fd);
	return rc;
}

static int
spool_check_msg(struct spool *sp, const char *name, const struct envelope *e,
		char *why, size_t whylen)
{
	struct stat st;
	int fd = spool_open_checked(sp, SPOOL_MSG, name, "message", &st, why,
				    whylen);
	if (fd < 0)
		return -1;
	close(fd);
	if ((uint64_t)st.st_size != e->msg_size) {
		snprintf(why, whylen, "message has %lld bytes, envelope says %llu",
			 (long long)st.st_size, (unsigned long long)e->msg_size);
		return -1;
	}
	return 0;
}

/* Step 2 for one name: 1 if good (handed to each), 0 if quarantined. */
static int
spool_recover_env_one(struct spool *sp, const char *name, spool_each_fn each,
		      void *arg)
{
	char why[SPOOL_WHY_MAX];
	struct envelope e;
	if (!id_valid(name)) {
		spool_recover_quarantine(sp, name, false, SPOOL_ENV,
					 "name is not a queue id");
		return 0;
	}
	if (spool_load_env(sp, name, &e, why, sizeof(why)) != 0) {
		spool_recover_quarantine(sp, name, true, SPOOL_ENV, why);
		return 0;
	}
	if (spool_check_msg(sp, name, &e, why, sizeof(why)) != 0) {
		envelope_free(&e);
		spool_recover_quarantine(sp, name, true, SPOOL_ENV, why);
		return 0;
	}
	struct envelope *heap = malloc(sizeof(*heap));
	if (heap == NULL || each == NULL) {
		/* Still a good entry; without memory it waits for a restart. */
		envelope_free(&e);
		free(heap);
		return 1;
	}
	*heap = e;
	each(arg, heap);
	return 1;
}

static int
spool_recover_env(struct spool *sp, spool_each_fn each, void *arg)
{
	DIR *d = spool_opendir(sp, SPOOL_ENV);
	if (d == NULL)
		return -errno;
	int good = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!spool_dot(de->d_name))
			good += spool_recover_env_one(sp, de->d_name, each, arg);
	}
	closedir(d);
	return good;
}

/* Step 3 for one name of msg/. */
static void
spool_recover_msg_one(struct spool *sp, const char *name)
{
	struct stat st;
	if (!id_valid(name)) {
		spool_recover_quarantine(sp, name, false, SPOOL_MSG,
					 "name is not a queue id");
		return;
	}
	if (fstatat(sp->sub[SPOOL_ENV], name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return;
	if (fstatat(sp->sub[SPOOL_MSG], name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		spool_recover_quarantine(sp, name, false, SPOOL_MSG,
					 "directory in msg/");
		return;
	}
	/* unlink removes a symlink itself, never its target. */
	if (unlinkat(sp->sub[SPOOL_MSG], name, 0) == 0)
		log_info("%s: removed message without envelope (never acknowledged)",
			 name);
	else
		log_warn("%s: cannot remove message without envelope: %s",
			 name, strerror(errno));
}

static int
spool_recover_msg(struct spool *sp)
{
	DIR *d = spool_opendir(sp, SPOOL_MSG);
	if (d == NULL)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!spool_dot(de->d_name))
			spool_recover_msg_one(sp, de->d_name);
	}
	closedir(d);
	return 0;
}

int
spool_recover(struct spool *sp, spool_each_fn each, void *arg)
{
	int rc = spool_recover_tmp(sp);
	if (rc < 0)
		return rc;
	int good = spool_recover_env(sp, each, arg);
	if (good < 0)
		return good;
	rc = spool_recover_msg(sp);
	return rc < 0 ? rc : good;
}
