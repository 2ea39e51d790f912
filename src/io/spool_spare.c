/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Recycled queue files. A removed message or envelope is renamed into
 *	spare/ and emptied instead of unlinked, and the next file the spool
 *	creates takes one from there (a rename) instead of allocating an
 *	inode. On ext4 a new inode costs a search of the inode bitmap, and
 *	without a journal that search skips every inode freed in the last
 *	minutes (recently_deleted): at a few thousand messages a second,
 *	two files each, it took 60% of the daemon's CPU and grew with
 *	every run. A spare keeps its inode and nothing else: it is
 *	truncated when it comes in, so a taker finds it empty.
 *
 *	spare/ holds nothing anyone needs, and start-up empties it. A file
 *	that left spare/ for msg/ but was never written is an orphan
 *	message, which recovery removes as it always has; one whose content
 *	did not reach the disk before a crash is rewritten from its log
 *	record by the replay, and a body that does not match its envelope's
 *	size and CRC is never sent. At most SPOOL_SPARE_MAX spares are
 *	kept; beyond that a removal unlinks.
 *
 *	Thread-safe: the pool threads create and remove files concurrently;
 *	the list of spares is under a mutex, the file operations are not.
 */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spool_priv.h"

#define SPARE_NAME_MAX 16

static void
spare_name(char *out, uint32_t n)
{
	snprintf(out, SPARE_NAME_MAX, "s%u", (unsigned)n);
}

int
spool_spares_init(struct spool_spares *s)
{
	memset(s, 0, sizeof(*s));
	return uv_mutex_init(&s->mu);
}

void
spool_spares_destroy(struct spool_spares *s)
{
	uv_mutex_destroy(&s->mu);
}

/* A spare's number off the list, false if there is none. */
static bool
spare_pop(struct spool_spares *s, uint32_t *n)
{
	uv_mutex_lock(&s->mu);
	bool ok = s->n > 0;
	if (ok) {
		*n = s->num[--s->n];
		s->held--;
	}
	uv_mutex_unlock(&s->mu);
	return ok;
}

/* Room for one more spare: a fresh number, false when full. */
static bool
spare_reserve(struct spool_spares *s, uint32_t *n)
{
	uv_mutex_lock(&s->mu);
	bool ok = s->held < SPOOL_SPARE_MAX;
	if (ok) {
		s->held++;
		*n = s->next++;
	}
	uv_mutex_unlock(&s->mu);
	return ok;
}

/* A reserved number becomes an available spare (push), or is given up. */
static void
spare_settle(struct spool_spares *s, uint32_t n, bool push)
{
	uv_mutex_lock(&s->mu);
	if (push)
		s->num[s->n++] = n;   /* n < held <= SPOOL_SPARE_MAX */
	else
		s->held--;
	uv_mutex_unlock(&s->mu);
}

/*
 * Create dfd/name for writing (O_RDWR), like O_CREAT|O_EXCL, mode 0600:
 * from a spare when there is one (emptied when it became a spare).
 */
int
spool_spare_create(struct spool *sp, int dfd, const char *name)
{
	int sfd = sp->sub[SPOOL_SPARE];
	uint32_t n;
	while (spare_pop(&sp->spares, &n)) {
		char sname[SPARE_NAME_MAX];
		spare_name(sname, n);
		/* No O_TRUNC: it is empty already, and on ext4 a truncate
		 * to 0 makes the next close start writeback (auto_da_alloc),
		 * which would cost a disk write per message. */
		int fd = openat(sfd, sname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			unlinkat(sfd, sname, 0);
			continue;
		}
		int rc = spool_rename_noreplace(sfd, sname, dfd, name);
		if (rc == 0)
			return fd;
		close(fd);
		unlinkat(sfd, sname, 0);
		if (rc == -EEXIST)
			return rc;   /* as O_EXCL would say */
	}
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					   O_CLOEXEC, 0600);
	return fd >= 0 ? fd : -errno;
}

/*
 * Remove dfd/name, as unlinkat would (0 or -errno): into spare/ and
 * emptied when there is room, else unlinked.
 */
int
spool_spare_recycle(struct spool *sp, int dfd, const char *name)
{
	int sfd = sp->sub[SPOOL_SPARE];
	uint32_t n;
	if (!spare_reserve(&sp->spares, &n))
		return unlinkat(dfd, name, 0) == 0 ? 0 : -errno;
	char sname[SPARE_NAME_MAX];
	spare_name(sname, n);
	int rc = spool_rename_noreplace(dfd, name, sfd, sname);
	if (rc == -EEXIST) {
		/* A number from before a wrap; the name must still go. */
		spare_settle(&sp->spares, n, false);
		return unlinkat(dfd, name, 0) == 0 ? 0 : -errno;
	}
	if (rc != 0) {
		spare_settle(&sp->spares, n, false);
		return rc;
	}
	/* The name is gone from dfd: done, whatever happens to the spare. */
	int fd = openat(sfd, sname, O_WRONLY | O_TRUNC | O_NOFOLLOW |
					O_CLOEXEC);
	if (fd < 0) {
		unlinkat(sfd, sname, 0);
		spare_settle(&sp->spares, n, false);
		return 0;
	}
	close(fd);
	spare_settle(&sp->spares, n, true);
	return 0;
}

/*
 * Start-up: empty spare/. Its files are not taken over: after a crash on
 * a file system without a journal, a spare's rename into msg/ may have
 * reached the disk while its removal from spare/ did not, and emptying
 * that name would empty a queued message. Unlinking a name is always
 * safe; spares come back with the first removals.
 */
void
spool_spares_clear(struct spool *sp)
{
	int sfd = sp->sub[SPOOL_SPARE];
	DIR *d = spool_opendir(sp, SPOOL_SPARE);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(sfd, de->d_name, 0);
	closedir(d);
}
