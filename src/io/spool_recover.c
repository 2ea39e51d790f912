/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Start-up recovery of the spool (RELIABILITY.md D1, D7, D9) in two
 *	phases, so 100,000 queued messages neither delay the listener nor
 *	hold back delivery until all are loaded:
 *
 *	spool_recover_begin (synchronous, before the listener opens; readdir
 *	only, no file is opened):
 *	1. tmp/ holds only work that was never acknowledged: delete it all.
 *	   Then replay the intake log (spool_log.h), which makes msg/ and
 *	   env/ hold every message whose record is durable.
 *	2. Snapshot env/: names that are not queue ids, or whose directory
 *	   entry is not a regular file, move to corrupt/ with one log line.
 *	   The rest is sorted by name; ids are time-ordered hex, so old mail
 *	   is loaded (and delivered) first.
 *	3. A msg/ file without an envelope in the snapshot is a crash between
 *	   the two renames of a commit, so its client never got 250: delete.
 *
 *	spool_recover_run (thread pool, one batch per work item): every
 *	envelope of the snapshot must be a regular file of ours, named by a
 *	valid queue id equal to the id inside it, that decodes strictly, with
 *	a regular message file msg/ID of exactly the recorded size. Anything
 *	else moves to corrupt/ (the renames happen in the work item; the log
 *	line is written on the loop thread afterwards); nothing is read
 *	through a symlink (O_NOFOLLOW) or blocks on a FIFO (O_NONBLOCK, type
 *	checked before and after opening). Good envelopes go to each() on the
 *	loop thread, batch by batch.
 *
 *	Mail committed while the scan runs is not in the snapshot, so it is
 *	never loaded twice. The work item only touches ids of its own batch,
 *	which nobody else knows yet, so it never races with delivery.
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

#include "outbox/id.h"
#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/str.h"
#include "spool_priv.h"

#define SPOOL_WHY_MAX 256
/* Envelopes per work item when the caller passes 0. */
#define SPOOL_SCAN_BATCH 500

/* The outcome of checking one snapshot entry in the thread pool. */
struct spool_scan_res {
	struct envelope *env; /* good and loaded (heap), until handed over */
	bool good;
	int qrc;              /* quarantine result when not good */
	char why[SPOOL_WHY_MAX];
};

struct spool_scan {
	struct spool *sp;
	struct spool_ids ids;  /* the env/ snapshot, sorted */
	size_t next;           /* first id of the batch in flight */
	size_t count;          /* ids in that batch */
	size_t batch;          /* largest batch */
	struct spool_scan_res *res;
	size_t nres;           /* results filled by the work item */
	uv_work_t work;
	spool_each_fn each;
	void (*done)(void *arg, int found);
	void *arg;
	int found;
	bool running;          /* spool_recover_run accepted it */
	bool in_flight;        /* a work item is queued or running */
	bool reporting;        /* inside the after-work callback */
	bool cancelled;
};

int
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

/* Move both halves of entry ID to corrupt/. Thread-safe: no logging. */
static int
spool_quarantine_pair(struct spool *sp, const char *id)
{
	int rc = spool_quarantine_name(sp, SPOOL_ENV, id, ".env");
	int mrc = spool_quarantine_name(sp, SPOOL_MSG, id, ".msg");
	if (rc == 0 || rc == -ENOENT)
		rc = mrc == -ENOENT ? 0 : mrc;
	return rc;
}

/* The one log line for a quarantined entry (loop thread). */
static void
spool_recover_log_quarantine(const char *name, const char *why, int rc)
{
	char shown[80];
	str_sanitize(shown, sizeof(shown), name, strlen(name));
	if (rc == 0)
		log_warn("%s: quarantined to corrupt/: %s", shown, why);
	else
		log_warn("%s: cannot quarantine (%s): %s", shown, why,
			 strerror(-rc));
}

static void
spool_recover_quarantine(struct spool *sp, const char *name, bool is_id,
			 enum spool_sub where, const char *why)
{
	int rc;
	if (is_id)
		rc = spool_quarantine_pair(sp, name);
	else
		rc = spool_quarantine_name(sp, where, name,
					   where == SPOOL_ENV   ? ".env"
					   : where == SPOOL_MSG ? ".msg"
								: ".tmp");
	spool_recover_log_quarantine(name, why, rc);
}

/* A fresh directory stream on sub (its own offset, closed by closedir). */
DIR *
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
	} else if (spool_pread_all(fd, data, (size_t)st.st_size, 0) != 0) {
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


/* ------------------------------------------------------------------ */
/* Phase 1: the snapshot (synchronous, directory entries only)         */
/* ------------------------------------------------------------------ */

static void
spool_scan_free(struct spool_scan *scan)
{
	for (size_t i = 0; scan->res != NULL && i < scan->nres; i++) {
		if (scan->res[i].env != NULL) {
			envelope_free(scan->res[i].env);
			free(scan->res[i].env);
		}
	}
	free(scan->res);
	spool_ids_free(&scan->ids);
	free(scan);
}

int
spool_ids_add(struct spool_ids *v, const char *id)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		char(*ids)[ID_SIZE] = realloc(v->id, cap * sizeof(*ids));
		if (ids == NULL)
			return -ENOMEM;
		v->id = ids;
		v->cap = cap;
	}
	memcpy(v->id[v->n++], id, ID_SIZE);
	return 0;
}

static int
spool_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

void
spool_ids_sort(struct spool_ids *v)
{
	if (v->n > 1)
		qsort(v->id, v->n, ID_SIZE, spool_id_cmp);
}

bool
spool_ids_has(const struct spool_ids *v, const char *id)
{
	return v->n > 0 &&
	       bsearch(id, v->id, v->n, ID_SIZE, spool_id_cmp) != NULL;
}

void
spool_ids_free(struct spool_ids *v)
{
	free(v->id);
	*v = (struct spool_ids){ 0 };
}

/* The type a directory entry announces, for the quarantine reason. */
static const char *
spool_dtype_name(unsigned char t)
{
	return spool_type_name(DTTOIF(t));
}

/* Step 2 for one name: keep it in the snapshot or quarantine it. */
static int
spool_scan_env_one(struct spool_scan *scan, const struct dirent *de)
{
	char why[SPOOL_WHY_MAX];
	if (!id_valid(de->d_name)) {
		spool_recover_quarantine(scan->sp, de->d_name, false, SPOOL_ENV,
					 "name is not a queue id");
		return 0;
	}
	/* DT_UNKNOWN (some file systems): phase 2 checks with fstatat. */
	if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
		snprintf(why, sizeof(why), "envelope is a %s, not a regular file",
			 spool_dtype_name(de->d_type));
		spool_recover_quarantine(scan->sp, de->d_name, true, SPOOL_ENV,
					 why);
		return 0;
	}
	return spool_ids_add(&scan->ids, de->d_name);
}

static int
spool_scan_env(struct spool_scan *scan)
{
	DIR *d = spool_opendir(scan->sp, SPOOL_ENV);
	if (d == NULL)
		return -errno;
	int rc = 0;
	struct dirent *de;
	/* A listing cut short by an I/O error would make step 3 delete
	 * messages of real envelopes: fail start-up instead. */
	errno = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!spool_dot(de->d_name))
			rc = spool_scan_env_one(scan, de);
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(d);
	if (rc == 0)
		spool_ids_sort(&scan->ids);
	return rc;
}

static bool
spool_msg_is_dir(struct spool *sp, const struct dirent *de)
{
	struct stat st;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	return fstatat(sp->sub[SPOOL_MSG], de->d_name, &st,
		       AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Step 3 for one name of msg/. */
static void
spool_scan_msg_one(struct spool_scan *scan, const struct dirent *de)
{
	struct spool *sp = scan->sp;
	const char *name = de->d_name;
	if (!id_valid(name)) {
		spool_recover_quarantine(sp, name, false, SPOOL_MSG,
					 "name is not a queue id");
		return;
	}
	if (spool_ids_has(&scan->ids, name))
		return;
	/* Belt and braces: the snapshot is complete, but one stat per
	 * orphan (rare) costs nothing against deleting queued mail. */
	struct stat st;
	if (fstatat(sp->sub[SPOOL_ENV], name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return;
	if (spool_msg_is_dir(sp, de)) {
		spool_recover_quarantine(sp, name, false, SPOOL_MSG,
					 "directory in msg/");
		return;
	}
	/* unlink removes a symlink itself, never its target. ENOENT: it went
	 * to corrupt/ with its envelope in step 2. */
	if (unlinkat(sp->sub[SPOOL_MSG], name, 0) == 0)
		log_info("%s: removed message without envelope (never acknowledged)",
			 name);
	else if (errno != ENOENT)
		log_warn("%s: cannot remove message without envelope: %s",
			 name, strerror(errno));
}

/*
 * Deleting a message whose envelope is not in the snapshot is safe ONLY
 * because this runs before the listener opens (and the spool lock keeps
 * every other writer out): no commit can be between its two renames now.
 * Once mail is accepted, a message legitimately sits in msg/ without its
 * envelope for the length of an fsync; never run this step after that.
 */
static int
spool_scan_msg(struct spool_scan *scan)
{
	DIR *d = spool_opendir(scan->sp, SPOOL_MSG);
	if (d == NULL)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!spool_dot(de->d_name))
			spool_scan_msg_one(scan, de);
	}
	closedir(d);
	return 0;
}

/* The intake log a crash left behind (spool_log.h), before the scan. */
static int
spool_recover_log(struct spool *sp)
{
	struct spool_log_replay_stats st;
	int rc = spool_log_replay(sp->sub[SPOOL_LOG], sp->sub[SPOOL_TMP],
				  sp->sub[SPOOL_MSG], sp->sub[SPOOL_ENV], &st);
	if (rc != 0) {
		log_err("spool: cannot replay %s/log: %s", sp->dir,
			  strerror(-rc));
		return rc;
	}
	if (st.segments > 0)
		log_info("spool: replayed %u log segment(s): %u message(s) "
			 "still queued, %u rebuilt file(s), %u removal(s)%s",
			 st.segments, st.accepted, st.rewritten, st.done,
			 st.torn > 0 ? ", a torn record at the end ignored" : "");
	return 0;
}

int
spool_recover_begin(struct spool *sp, struct spool_scan **out)
{
	*out = NULL;
	struct spool_scan *scan = calloc(1, sizeof(*scan));
	if (scan == NULL)
		return -ENOMEM;
	scan->sp = sp;
	int rc = spool_recover_tmp(sp);
	if (rc == 0)
		spool_spares_clear(sp);
	if (rc == 0)
		rc = spool_recover_log(sp);
	if (rc == 0)
		rc = spool_scan_env(scan);
	if (rc == 0)
		rc = spool_scan_msg(scan);
	if (rc != 0) {
		spool_scan_free(scan);
		return rc;
	}
	*out = scan;
	return 0;
}

size_t
spool_scan_left(const struct spool_scan *scan)
{
	return scan->ids.n - scan->next;
}

/* ------------------------------------------------------------------ */
/* Phase 2: full checks, batch by batch                               */
/* ------------------------------------------------------------------ */

/* Thread pool (or inline): check one entry; quarantine it if bad. */
static void
spool_scan_check(struct spool *sp, const char *name, struct spool_scan_res *r)
{
	struct envelope e;
	r->env = NULL;
	r->good = false;
	r->qrc = 0;
	r->why[0] = '\0';
	if (spool_load_env(sp, name, &e, r->why, sizeof(r->why)) != 0) {
		r->qrc = spool_quarantine_pair(sp, name);
		return;
	}
	if (spool_check_msg(sp, name, &e, r->why, sizeof(r->why)) != 0) {
		envelope_free(&e);
		r->qrc = spool_quarantine_pair(sp, name);
		return;
	}
	r->good = true;
	/* Without memory it is still a good entry; it waits for a restart. */
	r->env = malloc(sizeof(*r->env));
	if (r->env != NULL)
		*r->env = e;
	else
		envelope_free(&e);
}

static void
spool_scan_work(uv_work_t *w)
{
	struct spool_scan *scan = w->data;
	for (size_t i = 0; i < scan->count; i++) {
		spool_scan_check(scan->sp, scan->ids.id[scan->next + i],
				 &scan->res[i]);
		scan->nres = i + 1;
	}
}

/*
 * Loop thread: log what the batch quarantined and hand over the good
 * envelopes in order. each() may cancel the scan; after that the rest
 * is only logged and freed.
 */
static void
spool_scan_report(struct spool_scan *scan)
{
	for (size_t i = 0; i < scan->nres; i++) {
		struct spool_scan_res *r = &scan->res[i];
		if (!r->good) {
			spool_recover_log_quarantine(scan->ids.id[scan->next + i],
						     r->why, r->qrc);
			continue;
		}
		scan->found++;
		struct envelope *env = r->env;
		r->env = NULL;
		if (env == NULL)
			continue;
		if (scan->each == NULL || scan->cancelled) {
			envelope_free(env);
			free(env);
			continue;
		}
		scan->each(scan->arg, env);
	}
	scan->nres = 0;
}

static void spool_scan_after(uv_work_t *w, int status);

static int
spool_scan_queue(struct spool_scan *scan)
{
	size_t left = scan->ids.n - scan->next;
	scan->count = left < scan->batch ? left : scan->batch;
	scan->nres = 0;
	scan->work.data = scan;
	int rc = uv_queue_work(scan->sp->loop, &scan->work, spool_scan_work,
			       spool_scan_after);
	if (rc != 0)
		return rc;
	scan->sp->pending++;
	scan->in_flight = true;
	return 0;
}

/* The scan is freed before done() so that done may close the spool. */
static void
spool_scan_finish(struct spool_scan *scan)
{
	void (*done)(void *, int) = scan->done;
	void *arg = scan->arg;
	int found = scan->found;
	spool_scan_free(scan);
	if (done != NULL)
		done(arg, found);
}

static void
spool_scan_after(uv_work_t *w, int status)
{
	struct spool_scan *scan = w->data;
	scan->sp->pending--;
	scan->in_flight = false;
	/* UV_ECANCELED: cancelled before it started; nres is 0. */
	scan->reporting = true;
	spool_scan_report(scan);
	scan->reporting = false;
	if (status == 0)
		scan->next += scan->count;
	if (scan->cancelled) {
		spool_scan_free(scan);
		return;
	}
	if (scan->next < scan->ids.n) {
		int rc = spool_scan_queue(scan);
		if (rc == 0)
			return;
		/* Cannot happen with valid callbacks; the rest waits for a
		 * restart rather than being loaded twice. */
		log_err("spool: recovery stopped with %zu envelopes left: %s",
			scan->ids.n - scan->next, uv_strerror(rc));
	}
	spool_scan_finish(scan);
}

int
spool_recover_run(struct spool_scan *scan, size_t batch, spool_each_fn each,
		  void (*done)(void *arg, int found), void *arg)
{
	if (scan->running || scan->cancelled)
		return -EBUSY;
	scan->batch = batch > 0 ? batch : SPOOL_SCAN_BATCH;
	size_t cap = scan->ids.n < scan->batch ? scan->ids.n : scan->batch;
	free(scan->res);
	scan->res = calloc(cap > 0 ? cap : 1, sizeof(*scan->res));
	if (scan->res == NULL)
		return -ENOMEM;
	scan->each = each;
	scan->done = done;
	scan->arg = arg;
	/* Even an empty snapshot goes through the pool: done() is never
	 * called from inside this function. */
	int rc = spool_scan_queue(scan);
	if (rc != 0)
		return rc;
	scan->running = true;
	return 0;
}

void
spool_recover_cancel(struct spool_scan *scan)
{
	if (scan == NULL)
		return;
	if (!scan->in_flight && !scan->reporting) {
		spool_scan_free(scan);
		return;
	}
	scan->cancelled = true;
	/* Not started yet: skip it. Running: spool_scan_after frees. */
	if (scan->in_flight)
		uv_cancel((uv_req_t *)&scan->work);
}

/* Both phases inline: for tests and for callers that can wait. */
int
spool_recover(struct spool *sp, spool_each_fn each, void *arg)
{
	struct spool_scan *scan;
	int rc = spool_recover_begin(sp, &scan);
	if (rc != 0)
		return rc;
	scan->batch = SPOOL_SCAN_BATCH;
	scan->res = calloc(scan->batch, sizeof(*scan->res));
	if (scan->res == NULL) {
		spool_scan_free(scan);
		return -ENOMEM;
	}
	scan->each = each;
	scan->arg = arg;
	while (scan->next < scan->ids.n) {
		size_t left = scan->ids.n - scan->next;
		scan->count = left < scan->batch ? left : scan->batch;
		scan->work.data = scan;
		spool_scan_work(&scan->work);
		spool_scan_report(scan);
		scan->next += scan->count;
	}
	int found = scan->found;
	spool_scan_free(scan);
	return found;
}
