/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_LOG_H
#define OUTBOX_SPOOL_LOG_H
/*
 * The spool's intake log (issue 7): group commit of new messages.
 *
 * A commit used to cost four flushes one after another (message file,
 * msg/, envelope, env/). Now the pool thread that commits a message
 * writes msg/ID and env/ID WITHOUT fsync (they are the working copy the
 * rest of outbox reads), appends one 'A' record holding the same envelope
 * and body to the current segment log/SEQ, and waits for an fsync of that
 * segment that began after its append (dir_sync.h). Concurrent commits
 * share that one fsync: "250 means stored" holds because the record is
 * durable, and a message is whole on disk as long as its record is.
 *
 * Removing a message appends a 'D' record (not waited for). A segment is
 * sealed at SPOOL_LOG_SEG_MAX bytes or after any write or fsync failure
 * (fsyncgate: it is never fsynced again), and retired once no commit
 * waits on it: every message of it still queued gets its msg/ID and
 * env/ID fsynced, then msg/ and env/, and only then is the segment
 * unlinked. Most messages are delivered before that and never cost an
 * fsync of their own.
 *
 * After a crash, spool_log_replay (start-up, before the per-file
 * recovery) rebuilds from every segment left: an 'A' record without a
 * 'D' record whose msg/ID or env/ID is missing or does not match the
 * record is rewritten from it (an envelope updated since, for the same
 * message, is kept), every such file is fsynced; the files of 'D' ids are
 * unlinked; then the segments are removed.
 *
 * Thread safety: spool_log_accept, spool_log_done and spool_log_retire
 * run on pool threads (any thread for done); the rest on the loop
 * thread. None of them logs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A segment is sealed once it holds this much. */
#define SPOOL_LOG_SEG_MAX (8u * 1024u * 1024u)
/* Larger messages take the per-file commit (4 flushes) instead. */
#define SPOOL_LOG_BODY_MAX (512u * 1024u)

struct spool_log;

/* logfd (log/, borrowed) must stay open until spool_log_free. New
 * segments are numbered after the highest name found there. */
int spool_log_new(int logfd, struct spool_log **out);
/* No commit or retire may be running. Segments stay on disk. */
void spool_log_free(struct spool_log *lg);

/* Pool thread: append an 'A' record and wait until it is durable.
 * 0, or -errno (the record is then never replayed as accepted unless a
 * crash comes first: the caller must remove the files and call
 * spool_log_done). */
int spool_log_accept(struct spool_log *lg, const char *id, const char *env,
		     size_t env_len, const char *body, size_t body_len);
/* Pool thread: append records already encoded (iov, n pieces, len bytes
 * in all; n <= IOV_MAX) in one write and wait until they are durable, as
 * spool_log_accept does for one. *seg (if not NULL) gets the number of
 * the segment that holds them, or 0 if no segment could be created. */
struct iovec;
int spool_log_append_sync(struct spool_log *lg, struct iovec *iov, int n,
			  size_t len, uint64_t *seg);
/* Any thread: append a 'D' record; not waited for. 0 or -errno. */
int spool_log_done(struct spool_log *lg, const char *id);

/* Loop thread: a sealed segment nobody waits on, taken for retiring
 * (returns its number), or 0. At most one is taken at a time. */
uint64_t spool_log_retire_take(struct spool_log *lg);
/* Loop thread: the number retire_take would return now, not taken;
 * *sealed the segments sealed and not yet retired. */
uint64_t spool_log_retire_peek(struct spool_log *lg, unsigned *sealed);
/* Pool thread: make the taken segment's surviving messages durable on
 * their own and recycle or unlink it. 0 or -errno (the segment then stays on disk
 * for the next start-up's replay). */
int spool_log_retire(struct spool_log *lg, uint64_t seq, int msgfd,
		     int envfd);
/* Loop thread, with spool_log_retire's result: forget the segment, or
 * on failure stop retiring (later segments may hold its 'D' records). */
void spool_log_retired(struct spool_log *lg, uint64_t seq, int status);

/* Loop thread, about once a second: seal the current segment if nothing
 * was appended since the previous call and no commit waits on it, so an
 * idle daemon retires it and holds no spool file open for writing (a
 * read-only remount works). true if it sealed one. */
bool spool_log_seal_idle(struct spool_log *lg);
/* Tests: the fsync used for segments created from now on (NULL: fsync). */
void spool_log_set_fsync(struct spool_log *lg, int (*fsync_fn)(int fd));

/* Figures for tests: fsyncs of segments, segments created. */
uint64_t spool_log_syncs(struct spool_log *lg);

struct spool_log_replay_stats {
	unsigned segments;   /* segment files read and removed */
	unsigned accepted;   /* 'A' records without a 'D' */
	unsigned rewritten;  /* ...whose files were rebuilt from the record */
	unsigned done;       /* 'D' records */
	unsigned torn;       /* segments ending in an unreadable tail */
};
/* Start-up, synchronous, before spool_log_new. 0 or -errno. */
int spool_log_replay(int logfd, int tmpfd, int msgfd, int envfd,
		     struct spool_log_replay_stats *st);

/*
 * Read-only, for a reader of a spool whose daemon is not running (the
 * offline `outbox queue`): fn(r, arg) for every 'A' record in the
 * segments of logfd that no 'D' record removed, in log order. The
 * record points into a buffer valid only during the call. Stops at the
 * first non-zero return of fn, which it returns; else 0 or -errno.
 */
struct spool_rec;
int spool_log_scan(int logfd,
		   int (*fn)(const struct spool_rec *r, void *arg), void *arg);

#endif
