/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Group commit of directory fsyncs: tickets, one fsync in flight per
 *	directory, every waiter decided by the first fsync that started
 *	after its ticket (dir_sync.h); any failure since the caller's mark
 *	fails it. The failure ring keeps the errno to report.
 */
#include <errno.h>
#include <unistd.h>

#include "outbox/dir_sync.h"

static int
dir_sync_fsync(int fd)
{
	return fsync(fd) == 0 ? 0 : -errno;
}

int
dir_sync_init(struct dir_sync *ds, int (*fsync_fn)(int fd))
{
	*ds = (struct dir_sync){ .fsync_fn = fsync_fn ? fsync_fn
						      : dir_sync_fsync };
	int rc = uv_mutex_init(&ds->mu);
	if (rc != 0)
		return rc;
	rc = uv_cond_init(&ds->cv);
	if (rc != 0)
		uv_mutex_destroy(&ds->mu);
	return rc;
}

void
dir_sync_destroy(struct dir_sync *ds)
{
	uv_cond_destroy(&ds->cv);
	uv_mutex_destroy(&ds->mu);
}

/* The result for a caller marked at `mark` (called with mu held). */
static int
dir_sync_result(const struct dir_sync *ds, unsigned mark)
{
	if (ds->nfails == mark)
		return 0;
	/* The latest failure since the mark, if the ring still has it. */
	if (ds->nfails - mark <= DIR_SYNC_FAILS)
		return ds->fails[(ds->nfails - 1) % DIR_SYNC_FAILS];
	return -EIO;
}

/* Run one fsync for everyone who has a ticket (called with mu held). */
static void
dir_sync_run(struct dir_sync *ds, int fd)
{
	uint64_t hi = ds->tickets;
	ds->running = true;
	uv_mutex_unlock(&ds->mu);
	int rc = ds->fsync_fn(fd);
	uv_mutex_lock(&ds->mu);
	ds->running = false;
	ds->syncs++;
	if (rc != 0) {
		ds->fails[ds->nfails++ % DIR_SYNC_FAILS] = rc;
	}
	ds->decided = hi;
	uv_cond_broadcast(&ds->cv);
}

unsigned
dir_sync_mark(struct dir_sync *ds)
{
	uv_mutex_lock(&ds->mu);
	unsigned mark = ds->nfails;
	uv_mutex_unlock(&ds->mu);
	return mark;
}

int
dir_sync(struct dir_sync *ds, int fd, unsigned mark)
{
	uv_mutex_lock(&ds->mu);
	uint64_t ticket = ++ds->tickets;
	while (ds->decided < ticket) {
		/* Already failed since the mark: no fsync can change that,
		 * and none is issued in vain on a file that failed one. */
		if (ds->nfails != mark)
			break;
		if (ds->running)
			uv_cond_wait(&ds->cv, &ds->mu);
		else
			dir_sync_run(ds, fd);
	}
	int rc = dir_sync_result(ds, mark);
	uv_mutex_unlock(&ds->mu);
	return rc;
}
