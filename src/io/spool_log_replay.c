/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The intake log at start-up (spool_log.h): rebuild msg/ and env/ from
 *	the segments a crash left, make the rebuilt state durable file by
 *	file, then remove the segments. Also the segment reading shared
 *	with retiring.
 *
 *	Two passes over the segments, in order: the first collects the ids
 *	of 'D' records (a message removed, or a commit that failed), the
 *	second restores every 'A' record not among them. A record is the
 *	authority for the message body; an envelope on disk is kept when it
 *	decodes and describes the same body (it may carry per-recipient
 *	progress newer than the record). Parsing stops at the first bytes
 *	that are not a valid record: only a segment's tail can be torn.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/envelope.h"
#include "outbox/spool_log.h"
#include "outbox/spool_record.h"
#include "spool_log_priv.h"
#include "spool_priv.h"

struct replay {
	int logfd, tmpfd, msgfd, envfd;
	uint64_t *segs;             /* segment numbers, sorted */
	bool *legacy;               /* per segment: an older outboxd's, whose
				     * records carry no number (NULL: not
				     * noted) */
	size_t nsegs;
	struct spool_ids done;      /* ids of 'D' records, sorted */
	struct spool_log_replay_stats *st;
	int (*scan_fn)(const struct spool_rec *r, void *arg);
	void *scan_arg;             /* spool_log_scan's reader */
};

int
spool_log_read_seg(int fd, uint64_t len, char **out)
{
	*out = NULL;
	if (len > SIZE_MAX / 2)
		return -EFBIG;
	char *data = malloc(len > 0 ? (size_t)len : 1);
	if (data == NULL)
		return -ENOMEM;
	int rc = spool_pread_all(fd, data, (size_t)len, 0);
	if (rc != 0) {
		free(data);
		return rc;
	}
	*out = data;
	return 0;
}

/* fsync dfd/name if it is there; a missing file is fine. */
static int
sync_name(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
				   O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int
sync_dirs(int msgfd, int envfd)
{
	if (fsync(msgfd) != 0 || fsync(envfd) != 0)
		return -errno;
	return 0;
}

/* Window of the walk below: many small records per read, one header
 * per read of a big one. */
#define SURVIVOR_WINDOW (16u * 1024u)

/* The ids of the segment's 'A' and 'D' records, from their headers
 * alone, into acc and done. */
static int
survivors_walk(int segfd, uint64_t seq, uint64_t end, struct spool_ids *acc,
	       struct spool_ids *done)
{
	char *win = malloc(SURVIVOR_WINDOW);
	if (win == NULL)
		return -ENOMEM;
	uint64_t off = 0, woff = 0;   /* next record; win[0]'s offset */
	size_t wlen = 0;
	int rc = 0;
	while (rc == 0 && off < end) {
		if (off + SPOOL_REC_HDR > woff + wlen) {
			uint64_t left = end - off;
			wlen = left < SURVIVOR_WINDOW ? (size_t)left
						      : SURVIVOR_WINDOW;
			woff = off;
			rc = spool_pread_all(segfd, win, wlen, off);
			if (rc != 0)
				break;
		}
		struct spool_rec r;
		size_t at = (size_t)(off - woff);
		if (spool_rec_parse_header(win + at, wlen - at, seq, &r) != 1 ||
		    r.total > end - off) {
			rc = -EBADMSG;
			break;
		}
		off += r.total;
		rc = spool_ids_add(r.type == SPOOL_REC_ACCEPT ? acc : done, r.id);
	}
	free(win);
	return rc;
}

/*
 * Only the headers are read: the bodies, most of a segment, were written
 * and fsynced by this process, and what a retire needs of them is their
 * ids. A message whose 'D' record is in the segment too has no files to
 * look for (most of them: delivered within the segment's life). A
 * header that is not one before the end stops the retire (the segment
 * stays for the next start's replay) rather than skip the rest.
 */
int
spool_log_sync_survivors(int segfd, uint64_t seq, uint64_t end, int msgfd,
			 int envfd)
{
	struct spool_ids acc = { 0 }, done = { 0 };
	int rc = survivors_walk(segfd, seq, end, &acc, &done);
	spool_ids_sort(&done);
	for (size_t i = 0; rc == 0 && i < acc.n; i++) {
		if (spool_ids_has(&done, acc.id[i]))
			continue;
		rc = sync_name(msgfd, acc.id[i]);
		if (rc == 0)
			rc = sync_name(envfd, acc.id[i]);
	}
	spool_ids_free(&acc);
	spool_ids_free(&done);
	return rc == 0 ? sync_dirs(msgfd, envfd) : rc;
}

/* ------------------------------------------------------------------ */
/* Listing and reading segments                                       */
/* ------------------------------------------------------------------ */

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int
spool_log_list(int logfd, bool frees, uint64_t **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	int fd = openat(logfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	uint64_t *segs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		uint64_t seq;
		if ((frees ? spool_log_free_parse(de->d_name, &seq)
			   : spool_log_seg_parse(de->d_name, &seq)) != 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			uint64_t *more = realloc(segs, nc * sizeof(*more));
			if (more == NULL) {
				rc = -ENOMEM;
				break;
			}
			segs = more;
			cap = nc;
		}
		segs[n++] = seq;
	}
	closedir(d);
	if (rc != 0) {
		free(segs);
		return rc;
	}
	if (n > 1)
		qsort(segs, n, sizeof(*segs), u64_cmp);
	*out = segs;
	*nout = n;
	return 0;
}

/* Segment number i, whole, into *data. */
static int
replay_read(struct replay *rp, size_t i, char **data, size_t *len)
{
	char name[32];
	int rc = spool_log_seg_name(name, sizeof(name), rp->segs[i]);
	if (rc != 0)
		return rc;
	int fd = openat(rp->logfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					 O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		rc = -EINVAL;
	if (rc == 0)
		rc = spool_log_read_seg(fd, (uint64_t)st.st_size, data);
	close(fd);
	if (rc == 0)
		*len = (size_t)st.st_size;
	return rc;
}

/*
 * Is the tail after a segment's last record, where parsing it gave prc,
 * a torn record of its own (a header of this segment that is not whole
 * or not one with its payload)? Zeros are a new file's clean end; the
 * records of older segments and bytes from the middle of one are a
 * recycled file's.
 */
static bool
replay_tail_torn(const char *p, size_t n, uint64_t seq, int prc)
{
	struct spool_rec r;
	return prc == 0 ||
	       (prc == -EBADMSG && spool_rec_parse_header(p, n, seq, &r) == 1);
}

/*
 * Every valid record of every segment, in order, to fn; stops at the
 * first failure. Counts the segments that end in a torn record when
 * count_torn.
 */
static int
replay_walk(struct replay *rp, bool count_torn,
	    int (*fn)(struct replay *rp, const struct spool_rec *r))
{
	for (size_t i = 0; i < rp->nsegs; i++) {
		char *data = NULL;
		size_t len = 0, off = 0;
		int rc = replay_read(rp, i, &data, &len);
		if (rc != 0)
			return rc;
		if (rp->legacy != NULL)
			rp->legacy[i] = spool_rec_v1(data, len);
		struct spool_rec r;
		int prc = 1;
		while (rc == 0 && (prc = spool_rec_parse(data + off, len - off,
							 rp->segs[i], &r)) == 1) {
			off += r.total;
			rc = fn(rp, &r);
		}
		if (count_torn && rc == 0 && off < len &&
		    replay_tail_torn(data + off, len - off, rp->segs[i], prc))
			rp->st->torn++;
		free(data);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Pass 1: the ids of 'D' records. */
static int
replay_note_done(struct replay *rp, const struct spool_rec *r)
{
	return r->type == SPOOL_REC_DONE ? spool_ids_add(&rp->done, r->id) : 0;
}

/* ------------------------------------------------------------------ */
/* Pass 2: restore the accepted messages                              */
/* ------------------------------------------------------------------ */

/* dfd/name as a whole regular file of at most max bytes, or NULL. */
static char *
read_small(int dfd, const char *name, size_t max, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
				   O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *data = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size <= max &&
	    spool_log_read_seg(fd, (uint64_t)st.st_size, &data) == 0)
		*len = (size_t)st.st_size;
	close(fd);
	return data;
}

/* Is dfd/id exactly this body? */
static bool
msg_matches(int msgfd, const struct spool_rec *r)
{
	size_t len = 0;
	char *data = read_small(msgfd, r->id, (size_t)r->body_len, &len);
	bool same = data != NULL && len == r->body_len &&
		    memcmp(data, r->body, len) == 0;
	free(data);
	return same;
}

/* Does env/id decode as an envelope of this message and body? */
static bool
env_matches(int envfd, const struct spool_rec *r, const struct envelope *want)
{
	size_t len = 0;
	char *data = read_small(envfd, r->id, SPOOL_REC_ENV_MAX, &len);
	if (data == NULL)
		return false;
	struct envelope e;
	char err[128];
	bool same = envelope_decode(data, len, &e, err, sizeof(err)) == 0;
	if (same) {
		same = strcmp(e.id, r->id) == 0 &&
		       e.msg_size == want->msg_size &&
		       e.msg_crc == want->msg_crc;
		envelope_free(&e);
	}
	free(data);
	return same;
}

/* Write tmp/ID.suffix durably and rename it over dfd/ID. */
static int
restore_file(struct replay *rp, int dfd, const char *id, const char *suffix,
	     const char *p, size_t n)
{
	char tmp[48];
	snprintf(tmp, sizeof(tmp), "%s.%s", id, suffix);
	int fd = openat(rp->tmpfd, tmp, O_WRONLY | O_CREAT | O_TRUNC |
					O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = 0;
	while (rc == 0 && n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = w < 0 ? -errno : -EIO;
		else {
			p += w;
			n -= (size_t)w;
		}
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0 && errno != EINTR)
		rc = -errno;
	if (rc == 0 && renameat(rp->tmpfd, tmp, dfd, id) != 0)
		rc = -errno;
	if (rc != 0)
		unlinkat(rp->tmpfd, tmp, 0);
	return rc;
}

static int
replay_accept(struct replay *rp, const struct spool_rec *r)
{
	struct envelope want;
	char err[128];
	/* A record whose envelope does not decode was never written by us
	 * (we encode what we decode): leave it to nobody. */
	if (envelope_decode(r->env, r->env_len, &want, err, sizeof(err)) != 0)
		return 0;
	bool ok = strcmp(want.id, r->id) == 0 &&
		  want.msg_size == r->body_len;
	int rc = 0;
	rp->st->accepted++;
	if (ok && !msg_matches(rp->msgfd, r)) {
		rc = restore_file(rp, rp->msgfd, r->id, "msg", r->body,
				  (size_t)r->body_len);
		rp->st->rewritten++;
	} else if (ok) {
		rc = sync_name(rp->msgfd, r->id);
	}
	if (ok && rc == 0 && !env_matches(rp->envfd, r, &want)) {
		rc = restore_file(rp, rp->envfd, r->id, "env", r->env,
				  r->env_len);
		rp->st->rewritten++;
	} else if (ok && rc == 0) {
		rc = sync_name(rp->envfd, r->id);
	}
	envelope_free(&want);
	return rc;
}

/* Pass 2: an 'A' record not removed since. */
static int
replay_restore(struct replay *rp, const struct spool_rec *r)
{
	if (r->type != SPOOL_REC_ACCEPT || spool_ids_has(&rp->done, r->id))
		return 0;
	return replay_accept(rp, r);
}

/* Removals the crash may have left undone, then the segments. */
static int
replay_finish(struct replay *rp)
{
	for (size_t i = 0; i < rp->done.n; i++) {
		unlinkat(rp->envfd, rp->done.id[i], 0);
		unlinkat(rp->msgfd, rp->done.id[i], 0);
	}
	int rc = sync_dirs(rp->msgfd, rp->envfd);
	size_t nfree = 0;
	uint64_t *frees = NULL;
	if (rc == 0 && rp->nsegs > 0)
		rc = spool_log_list(rp->logfd, true, &frees, &nfree);
	free(frees);
	/* Recycled while fewer than SPOOL_LOG_FREE_MAX are (spool_log.c),
	 * but for an older outboxd's segment. */
	for (size_t i = 0; rc == 0 && i < rp->nsegs; i++) {
		bool keep = !rp->legacy[i] && nfree < SPOOL_LOG_FREE_MAX;
		rc = spool_log_seg_drop(rp->logfd, rp->segs[i], keep);
		nfree += rc == 1;
		if (rc >= 0) {
			rc = 0;
			rp->st->segments++;
		}
	}
	if (rc == 0 && rp->nsegs > 0 && fsync(rp->logfd) != 0)
		rc = -errno;
	return rc;
}

int
spool_log_replay(int logfd, int tmpfd, int msgfd, int envfd,
		 struct spool_log_replay_stats *st)
{
	*st = (struct spool_log_replay_stats){ 0 };
	struct replay rp = { .logfd = logfd, .tmpfd = tmpfd, .msgfd = msgfd,
			     .envfd = envfd, .st = st };
	int rc = spool_log_list(logfd, false, &rp.segs, &rp.nsegs);
	if (rc == 0 && rp.nsegs > 0) {
		rp.legacy = calloc(rp.nsegs, sizeof(*rp.legacy));
		rc = rp.legacy != NULL ? 0 : -ENOMEM;
	}
	if (rc == 0 && rp.nsegs > 0)
		rc = replay_walk(&rp, true, replay_note_done);
	spool_ids_sort(&rp.done);
	st->done = (unsigned)rp.done.n;
	if (rc == 0 && rp.nsegs > 0)
		rc = replay_walk(&rp, false, replay_restore);
	if (rc == 0 && rp.nsegs > 0)
		rc = replay_finish(&rp);
	free(rp.segs);
	free(rp.legacy);
	spool_ids_free(&rp.done);
	return rc;
}

/* spool_log_scan, pass 2: an 'A' record not removed since. */
static int
scan_one(struct replay *rp, const struct spool_rec *r)
{
	if (r->type != SPOOL_REC_ACCEPT || spool_ids_has(&rp->done, r->id))
		return 0;
	return rp->scan_fn(r, rp->scan_arg);
}

int
spool_log_scan(int logfd, int (*fn)(const struct spool_rec *r, void *arg),
	       void *arg)
{
	struct spool_log_replay_stats st;
	struct replay rp = { .logfd = logfd, .tmpfd = -1, .msgfd = -1,
			     .envfd = -1, .st = &st, .scan_fn = fn,
			     .scan_arg = arg };
	int rc = spool_log_list(logfd, false, &rp.segs, &rp.nsegs);
	if (rc == 0 && rp.nsegs > 0)
		rc = replay_walk(&rp, false, replay_note_done);
	spool_ids_sort(&rp.done);
	if (rc == 0 && rp.nsegs > 0)
		rc = replay_walk(&rp, false, scan_one);
	free(rp.segs);
	spool_ids_free(&rp.done);
	return rc;
}
