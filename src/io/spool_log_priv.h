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
/* The segment numbers in log/, ascending, in a new array *out. */
int spool_log_list(int logfd, uint64_t **out, size_t *n);
/* Are p[0..n) all zero: the zeros written ahead of a segment's records,
 * its clean end, not a torn record? */
bool spool_log_zero_tail(const char *p, size_t n);
/* The first len bytes of fd into a new heap buffer *out (caller frees). */
int spool_log_read_seg(int fd, uint64_t len, char **out);
/* fsync msg/ID and env/ID of every 'A' record in the segment segfd's
 * first end bytes that still has them, then msg/ and env/ themselves;
 * -EBADMSG if a record header is not where one should be. */
int spool_log_sync_survivors(int segfd, uint64_t end, int msgfd, int envfd);

#endif
