/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_PRIV_H
#define OUTBOX_SPOOL_PRIV_H
/* Internals shared by spool.c (runtime) and spool_recover.c (start-up). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/dir_sync.h"
#include "outbox/spool.h"

/* Subdirectories, each held open so every operation is *at() relative. */
enum spool_sub { SPOOL_TMP, SPOOL_MSG, SPOOL_ENV, SPOOL_CORRUPT, SPOOL_NSUB };

/* An envelope file larger than this is not read (recovery, D7). */
#define SPOOL_ENV_MAX (16u * 1024u * 1024u)

struct spool {
	uv_loop_t *loop;
	char *dir;
	int dirfd;
	int lockfd;
	int sub[SPOOL_NSUB];
	unsigned pending;   /* thread-pool work items in flight */
	/* msg/ and env/ fsyncs shared by concurrent commits (group commit) */
	struct dir_sync dsync[SPOOL_NSUB];
	bool dsync_ready;
	unsigned seq;       /* unique suffix for update temporaries */
};

/* Thread-safe helpers (no logging, no loop access); 0 or -errno. */
int spool_write_all(int fd, const char *p, size_t n);
int spool_fsync_dir(int dfd);

/*
 * Move sub/name to corrupt/<name><suffix> (never replacing an earlier
 * quarantined file; .1, .2, ... are appended instead). Does not log.
 * 0 or -errno (-ENOENT when there is nothing to move).
 */
int spool_quarantine_name(struct spool *sp, enum spool_sub from,
			  const char *name, const char *suffix);

#endif
