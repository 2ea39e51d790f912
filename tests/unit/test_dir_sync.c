/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * dir_sync: group commit of directory fsyncs. 32 threads each "rename"
 * (take an event number), then dir_sync() with a stand-in fsync that
 * records when it started and ended. Every thread must be decided by the
 * first fsync that STARTED after its rename, must not return before that
 * fsync ENDED, and must get that fsync's result; and the 32 commits must
 * share far fewer than 32 fsyncs. Rounds with an injected EIO show that a
 * failure reaches exactly the commits it covered.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>

#include "check.h"
#include "outbox/dir_sync.h"

#define THREADS 32
#define SYNCS_MAX 256

static uv_mutex_t ev_mu;
static uint64_t ev;                 /* global event counter */
static struct { uint64_t start, end; int rc; } syncs[SYNCS_MAX];
static unsigned nsyncs;
static unsigned fail_call;          /* 1-based fsync call to fail; 0 none */

static uint64_t
event(void)
{
	uv_mutex_lock(&ev_mu);
	uint64_t e = ++ev;
	uv_mutex_unlock(&ev_mu);
	return e;
}

static int
fake_fsync(int fd)
{
	(void)fd;
	uv_mutex_lock(&ev_mu);
	unsigned i = nsyncs++;
	syncs[i].start = ++ev;
	uv_mutex_unlock(&ev_mu);
	uv_sleep(3); /* a disk flush: others arrive meanwhile */
	int rc = fail_call != 0 && i + 1 == fail_call ? -EIO : 0;
	uv_mutex_lock(&ev_mu);
	syncs[i].end = ++ev;
	syncs[i].rc = rc;
	uv_mutex_unlock(&ev_mu);
	return rc;
}

static uv_barrier_t start_line; /* all renamed before anyone syncs */

struct worker {
	uv_thread_t th;
	struct dir_sync *ds;
	uint64_t marked, renamed, returned;
	int rc;
};

static void
worker_run(void *arg)
{
	struct worker *w = arg;
	w->marked = event();
	unsigned mark = dir_sync_mark(w->ds);
	w->renamed = event();
	uv_barrier_wait(&start_line);
	w->rc = dir_sync(w->ds, 7, mark);
	w->returned = event();
}

/*
 * What a worker's result may be: success needs a successful fsync that
 * started after its rename and ended before it returned, and no failed
 * fsync that started after the rename and ended before it returned
 * (fsyncgate); a failure needs a failed fsync that ended after its mark
 * and before it returned.
 */
static void
check_worker(const struct worker *w)
{
	bool covered = false, failed_inside = false, failed_window = false;
	for (unsigned i = 0; i < nsyncs; i++) {
		bool inside = syncs[i].start > w->renamed &&
			      syncs[i].end < w->returned;
		covered |= inside && syncs[i].rc == 0;
		failed_inside |= inside && syncs[i].rc != 0;
		failed_window |= syncs[i].rc != 0 && syncs[i].end > w->marked &&
				 syncs[i].end < w->returned;
	}
	if (w->rc == 0) {
		CHECK(covered);
		CHECK(!failed_inside);
	} else {
		CHECK_EQ(w->rc, -EIO);
		CHECK(failed_window);
	}
}

static void
round_run(unsigned fail, unsigned *failed_out)
{
	struct dir_sync ds;
	struct worker w[THREADS];
	nsyncs = 0;
	fail_call = fail;
	CHECK_EQ(dir_sync_init(&ds, fake_fsync), 0);
	CHECK_EQ(uv_barrier_init(&start_line, THREADS), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .ds = &ds };
		CHECK_EQ(uv_thread_create(&w[i].th, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(uv_thread_join(&w[i].th), 0);
	unsigned failed = 0;
	for (int i = 0; i < THREADS; i++) {
		check_worker(&w[i]);
		failed += w[i].rc != 0;
	}
	uv_barrier_destroy(&start_line);
	CHECK_EQ(ds.syncs, nsyncs);
	/* the batch shared its fsyncs */
	CHECK(nsyncs <= THREADS / 4);
	dir_sync_destroy(&ds);
	*failed_out = failed;
}

int
main(void)
{
	unsigned failed;
	CHECK_EQ(uv_mutex_init(&ev_mu), 0);
	for (int r = 0; r < 5; r++) {
		round_run(0, &failed);
		CHECK_EQ(failed, 0);
	}
	/* The first or the second fsync fails: whoever it may have covered
	 * fails (at least the one that ran it), nobody succeeds past it. */
	round_run(1, &failed);
	CHECK(failed >= 1);
	round_run(2, &failed);
	CHECK(failed >= 1);
	/* A real directory with the real fsync. */
	struct dir_sync ds;
	CHECK_EQ(dir_sync_init(&ds, NULL), 0);
	CHECK_EQ(dir_sync(&ds, -1, dir_sync_mark(&ds)), -EBADF);
	/* a failure since the mark fails a later sync too, and without
	 * issuing an fsync that could not change the result */
	unsigned old = 0;
	int fd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	CHECK_EQ(dir_sync(&ds, fd, old), -EBADF);
	CHECK_EQ(dir_sync(&ds, fd, dir_sync_mark(&ds)), 0);
	CHECK_EQ(ds.syncs, 2);
	close(fd);
	dir_sync_destroy(&ds);
	uv_mutex_destroy(&ev_mu);
	CHECK_DONE();
}
