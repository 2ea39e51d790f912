/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_DIR_SYNC_H
#define OUTBOX_DIR_SYNC_H
/*
 * Group commit of directory fsyncs (issue 7). Many thread-pool workers
 * rename entries into the same directory and each must not report success
 * before an fsync of that directory that started AFTER its rename has
 * completed. dir_sync() shares such fsyncs: a caller takes a ticket (its
 * rename is already done), and waits until one fsync that began after the
 * ticket was taken finishes. Only one fsync of a directory runs at a time;
 * everybody who arrived while it ran is covered by the next one, so under
 * load N commits cost about two directory fsyncs instead of N.
 *
 * Failure (fsyncgate): after a failed fsync a later one may succeed
 * without the earlier changes being durable. So a caller takes a mark
 * BEFORE its rename (dir_sync_mark), and dir_sync() fails if its covering
 * fsync failed or ANY fsync of the directory failed since the mark. A
 * failure can only turn a success into a 4xx, never the reverse.
 * Nothing is retried.
 *
 * Thread-safe; blocking (thread pool only, never the loop thread).
 */
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#define DIR_SYNC_FAILS 64   /* failure errnos remembered */

struct dir_sync {
	uv_mutex_t mu;
	uv_cond_t cv;
	uint64_t tickets;       /* last ticket handed out */
	uint64_t decided;       /* every ticket <= this has its result */
	bool running;           /* an fsync is in progress */
	int fails[DIR_SYNC_FAILS]; /* errnos of the latest failures */
	unsigned nfails;        /* total failures (ring index = n % size) */
	uint64_t syncs;         /* fsyncs done (for tests and figures) */
	int (*fsync_fn)(int fd); /* fsync, or a test's stand-in */
};

/* 0 or -errno. fsync_fn NULL = fsync(2). */
int dir_sync_init(struct dir_sync *ds, int (*fsync_fn)(int fd));
void dir_sync_destroy(struct dir_sync *ds);
/* Before the rename or unlink: the failure count to compare against. */
unsigned dir_sync_mark(struct dir_sync *ds);
/* After it: 0 once a covering fsync of fd succeeded and no fsync failed
 * since mark; else the -errno of a failure (-EIO if it is forgotten). */
int dir_sync(struct dir_sync *ds, int fd, unsigned mark);

#endif
