/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_LOG_PRIV_H
#define OUTBOX_SPOOL_LOG_PRIV_H
/* Shared by spool_log.c (run time) and spool_log_replay.c (start-up).
 * All thread-safe, no logging; 0 or -errno. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* log/ names: 16 lower-case hex digits, never 0. */
int spool_log_seg_name(char *out, size_t outlen, uint64_t seq);
int spool_log_seg_parse(const char *name, uint64_t *seq);
/* Recycled segments (spool_log.c): a segment's name + ".free", at most
 * SPOOL_LOG_FREE_MAX of them kept. */
#define SPOOL_LOG_FREE_MAX 2
#define SPOOL_LOG_FREE_SUFFIX ".free"
int spool_log_free_name(char *out, size_t outlen, uint64_t seq);
int spool_log_free_parse(const char *name, uint64_t *seq);
/* Segment seq out of the way: renamed to its recycled name when keep
 * (and the rename works), else unlinked. 1 recycled, 0 removed, or
 * -errno; log/ itself is the caller's to fsync. */
int spool_log_seg_drop(int logfd, uint64_t seq, bool keep);
/* The segment numbers in log/ (recycled files' with frees), ascending,
 * in a new array *out. */
int spool_log_list(int logfd, bool frees, uint64_t **out, size_t *n);
/* The first len bytes of fd into a new heap buffer *out (caller frees). */
int spool_log_read_seg(int fd, uint64_t len, char **out);
/* fsync msg/ID and env/ID of every 'A' record in the first end bytes of
 * segment seq (open as segfd) that still has them, then msg/ and env/
 * themselves; -EBADMSG if a record header is not where one should be. */
int spool_log_sync_survivors(int segfd, uint64_t seq, uint64_t end,
			     int msgfd, int envfd);

#endif
