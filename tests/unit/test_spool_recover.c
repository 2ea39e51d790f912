/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * Two-phase start-up recovery (spool_recover_begin / _run / _cancel) on a
 * real libuv loop in a mkdtemp directory: corrupt entries are quarantined
 * as by spool_recover (D7); 20,000 planted envelopes arrive exactly once,
 * oldest first, in batches, never synchronously; mail committed during the
 * scan is not reported and its files survive; msg/ orphans are removed only
 * from the snapshot; cancel (from outside, from inside each(), before run)
 * stops every callback without a leak and uv_loop_close returns 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "spool_fixture.h"
#include "outbox/envelope.h"
#include "outbox/log.h"
#include "outbox/spool.h"

#define NBIG 20000
#define BIG_BASE 0x0000100000000000ull

static size_t
encode_for(const char *id, uint64_t size, char *out, size_t cap)
{
	struct envelope e;
	struct buf b;
	make_env(&e, "x@y");
	memcpy(e.id, id, ID_SIZE);
	e.msg_size = size;
	buf_init(&b, cap - 1);
	CHECK_EQ(0, envelope_encode(&e, &b));
	size_t n = b.len;
	memcpy(out, b.data, n);
	buf_free(&b);
	envelope_free(&e);
	return n;
}

/* A good entry: envelope and a message of `size` bytes. */
static void
plant_good(const char *id, size_t size)
{
	char env[1024];
	char msg[64];
	memset(msg, 'm', sizeof(msg));
	size_t n = encode_for(id, size, env, sizeof(env));
	plant("env", id, env, n);
	plant("msg", id, msg, size);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Callback bookkeeping                                               */
/* ------------------------------------------------------------------ */

struct scan_seen {
	bool in_run;          /* inside spool_recover_run: each must not come */
	int calls;            /* each() calls */
	int done_calls;
	int found;
	int cancel_at;        /* cancel from inside each() at this call (0: no) */
	struct spool_scan *scan;
	bool ordered;         /* every id larger than the previous */
	char last[ID_SIZE];
	unsigned char *hits;  /* per planted big id */
	int foreign;          /* ids outside the planted range */
	char foreign_id[ID_SIZE];
};

static void
seen_each(void *arg, struct envelope *env)
{
	struct scan_seen *s = arg;
	if (s->in_run)
		CHECK_FAIL("each() called synchronously from spool_recover_run");
	if (s->done_calls != 0)
		CHECK_FAIL("each() after done()");
	s->calls++;
	if (s->last[0] != '\0' && strcmp(s->last, env->id) >= 0)
		s->ordered = false;
	memcpy(s->last, env->id, ID_SIZE);
	unsigned long long v = strtoull(env->id, NULL, 16);
	if (s->hits != NULL && v >= BIG_BASE && v < BIG_BASE + NBIG)
		s->hits[v - BIG_BASE]++;
	else {
		s->foreign++;
		memcpy(s->foreign_id, env->id, ID_SIZE);
	}
	envelope_free(env);
	free(env);
	if (s->cancel_at != 0 && s->calls == s->cancel_at) {
		spool_recover_cancel(s->scan);
		s->scan = NULL;
	}
}

static void
seen_done(void *arg, int found)
{
	struct scan_seen *s = arg;
	if (s->in_run)
		CHECK_FAIL("done() called synchronously from spool_recover_run");
	s->done_calls++;
	s->found = found;
	s->scan = NULL;
}

static void
seen_init(struct scan_seen *s, unsigned char *hits)
{
	memset(s, 0, sizeof(*s));
	s->ordered = true;
	s->hits = hits;
	if (hits != NULL)
		memset(hits, 0, NBIG);
}

/* Start s->scan and check nothing is called back synchronously. */
static void
run_scan(struct scan_seen *s, size_t batch)
{
	s->in_run = true;
	CHECK_EQ(0, spool_recover_run(s->scan, batch, seen_each, seen_done, s));
	s->in_run = false;
	CHECK_EQ(0, s->calls);
	CHECK_EQ(0, s->done_calls);
}

static void
run_until_done(struct spool *sp, struct scan_seen *s)
{
	for (int i = 0; i < 200000 && s->done_calls == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ(1, s->done_calls);
	CHECK_EQ(0, spool_pending(sp));
}

/* Start a commit through the API; the caller runs the loop. */
static void
commit_start(struct spool *sp, struct waiter *w, char id[ID_SIZE])
{
	struct spool_tx *tx;
	struct envelope e;
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	/* Zero bytes: the write step is skipped, the commit still runs. */
	make_env(&e, "bob@example.net");
	CHECK_EQ(0, spool_tx_commit(tx, &e, on_done, w));
	envelope_free(&e);
}

/* ------------------------------------------------------------------ */
/* Corrupt entries through the new API (mirrors test_spool's D7 set)  */
/* ------------------------------------------------------------------ */

#define ID_GOOD1 "0F00000000000001"
#define ID_GOOD2 "0F00000000000002"
#define ID_GOOD3 "0F00000000000003"
#define ID_TRUNC "1000000000000001"
#define ID_NOMSG "1000000000000002"
#define ID_NOENV "1000000000000003"
#define ID_LINK  "1000000000000004"
#define ID_FIFO  "1000000000000005"
#define ID_EMPTY "1000000000000006"
#define ID_RAND  "1000000000000007"
#define ID_SIZEX "1000000000000008"
#define ID_OTHER "1000000000000009"
#define ID_DIR   "100000000000000A"
#define ID_MLINK "100000000000000B"
#define ID_MFIFO "100000000000000D"
#define ID_MDIR  "100000000000000E"

static void
plant_corrupt(void)
{
	char env[1024];
	char p[256], q[256];
	char msg[100];
	memset(msg, 'm', sizeof(msg));

	size_t n = encode_for(ID_TRUNC, 100, env, sizeof(env));
	plant("env", ID_TRUNC, env, n - 5);
	plant("msg", ID_TRUNC, msg, 100);
	n = encode_for(ID_NOMSG, 100, env, sizeof(env));
	plant("env", ID_NOMSG, env, n);
	plant("msg", ID_NOENV, msg, 100);
	path_of(p, sizeof(p), "env", ID_LINK);
	CHECK_EQ(0, symlink("/etc/passwd", p));
	plant("msg", ID_LINK, msg, 100);
	path_of(p, sizeof(p), "env", ID_FIFO);
	CHECK_EQ(0, mkfifo(p, 0600));
	plant("env", ID_EMPTY, "", 0);
	char rnd[512];
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (char)(i * 131 + 7);
	plant("env", ID_RAND, rnd, sizeof(rnd));
	n = encode_for(ID_SIZEX, 100, env, sizeof(env));
	plant("env", ID_SIZEX, env, n);
	plant("msg", ID_SIZEX, msg, 50);
	n = encode_for(ID_TRUNC, 100, env, sizeof(env));
	plant("env", ID_OTHER, env, n);
	plant("msg", ID_OTHER, msg, 100);
	path_of(p, sizeof(p), "env", ID_DIR);
	CHECK_EQ(0, mkdir(p, 0700));
	n = encode_for(ID_MLINK, 100, env, sizeof(env));
	plant("env", ID_MLINK, env, n);
	plant("", "secret", msg, 100);
	path_of(p, sizeof(p), "msg", ID_MLINK);
	snprintf(q, sizeof(q), "%s/secret", root);
	CHECK_EQ(0, symlink(q, p));
	n = encode_for(ID_MFIFO, 0, env, sizeof(env));
	plant("env", ID_MFIFO, env, n);
	path_of(p, sizeof(p), "msg", ID_MFIFO);
	CHECK_EQ(0, mkfifo(p, 0600));
	/* A directory in msg/ without an envelope: quarantined, not removed. */
	path_of(p, sizeof(p), "msg", ID_MDIR);
	CHECK_EQ(0, mkdir(p, 0700));
	plant("env", "junk.txt", "hello", 5);
	plant("msg", "README", "hello", 5);
	plant("tmp", "0123456789ABCDEF.msg", "partial", 7);
	plant("tmp", "0123456789ABCDEF.env", "V1:1\n", 5);
}

static void
test_corrupt(struct spool *sp)
{
	struct scan_seen s;
	plant_corrupt();
	plant_good(ID_GOOD1, 10);
	plant_good(ID_GOOD2, 20);
	plant_good(ID_GOOD3, 0);
	seen_init(&s, NULL);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	/* Phase 1 already cleaned tmp/, removed the orphan, and moved the
	 * names it can judge from the directory entry alone. */
	CHECK_EQ(0, count_entries("tmp"));
	CHECK(!exists("msg", ID_NOENV));
	CHECK(exists("corrupt", "junk.txt.env"));
	CHECK(exists("corrupt", "README.msg"));
	CHECK(exists("corrupt", ID_DIR ".env"));
	CHECK(exists("corrupt", ID_LINK ".env"));
	CHECK(exists("corrupt", ID_LINK ".msg"));
	CHECK(exists("corrupt", ID_FIFO ".env"));
	CHECK(exists("corrupt", ID_MDIR ".msg"));
	/* Decoding is phase 2: these are still in place. */
	CHECK(exists("env", ID_TRUNC) && exists("env", ID_RAND));
	/* 3 good + TRUNC NOMSG EMPTY RAND SIZEX OTHER MLINK MFIFO */
	CHECK_EQ(11, spool_scan_left(s.scan));
	/* Batches of 2: good and bad entries cross batch boundaries. */
	run_scan(&s, 2);
	CHECK(spool_pending(sp) > 0);
	run_until_done(sp, &s);
	CHECK_EQ(3, s.found);
	CHECK_EQ(3, s.calls);
	CHECK(s.ordered);
	CHECK_EQ(3, count_entries("env"));
	CHECK_EQ(3, count_entries("msg"));
	CHECK(exists("env", ID_GOOD1) && exists("msg", ID_GOOD3));
	CHECK(exists("corrupt", ID_TRUNC ".env"));
	CHECK(exists("corrupt", ID_TRUNC ".msg"));
	CHECK(exists("corrupt", ID_NOMSG ".env"));
	CHECK(exists("corrupt", ID_EMPTY ".env"));
	CHECK(exists("corrupt", ID_RAND ".env"));
	CHECK(exists("corrupt", ID_SIZEX ".env"));
	CHECK(exists("corrupt", ID_SIZEX ".msg"));
	CHECK(exists("corrupt", ID_OTHER ".env"));
	CHECK(exists("corrupt", ID_MLINK ".env"));
	CHECK(exists("corrupt", ID_MLINK ".msg"));
	CHECK(exists("corrupt", ID_MFIFO ".env"));
	CHECK(exists("corrupt", ID_MFIFO ".msg"));
	CHECK(!exists("corrupt", ID_NOENV ".msg"));
	struct stat st;
	char p[256];
	snprintf(p, sizeof(p), "%s/secret", root);
	CHECK_EQ(0, stat(p, &st));
	path_of(p, sizeof(p), "corrupt", ID_LINK ".env");
	CHECK_EQ(0, lstat(p, &st));
	CHECK(S_ISLNK(st.st_mode));

	/* The synchronous wrapper sees the same three. */
	CHECK_EQ(3, spool_recover(sp, NULL, NULL));
	/* Quarantine never overwrites: the same bad name gets a suffix. */
	plant("env", "junk.txt", "again", 5);
	seen_init(&s, NULL);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	CHECK(exists("corrupt", "junk.txt.env.1"));
	run_scan(&s, 0);
	run_until_done(sp, &s);
	CHECK_EQ(3, s.found);
	/* Clean up for the next tests. */
	for (int i = 0; i < 3; i++) {
		const char *id = i == 0 ? ID_GOOD1 : i == 1 ? ID_GOOD2 : ID_GOOD3;
		struct waiter w = { 0 };
		CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
		drain(sp);
		CHECK_EQ(0, w.status);
	}
}

/* An empty spool: done(0) still comes from the loop, not from run. */
static void
test_empty(struct spool *sp)
{
	struct scan_seen s;
	seen_init(&s, NULL);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	CHECK_EQ(0, spool_scan_left(s.scan));
	run_scan(&s, 100);
	CHECK_EQ(1, spool_pending(sp));
	run_until_done(sp, &s);
	CHECK_EQ(0, s.found);
	CHECK_EQ(0, s.calls);
	/* A scan that is never run is freed by cancel (ASan: no leak). */
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	spool_recover_cancel(s.scan);
	spool_recover_cancel(NULL);
}

/* ------------------------------------------------------------------ */
/* 20,000 entries                                                     */
/* ------------------------------------------------------------------ */

static void
big_id(char id[ID_SIZE], size_t i)
{
	snprintf(id, ID_SIZE, "%016llX", (unsigned long long)(BIG_BASE + i));
}

static void
plant_big(void)
{
	char id[ID_SIZE];
	/* Planted newest first, so directory order is no help. */
	for (size_t i = NBIG; i-- > 0;) {
		big_id(id, i);
		plant_good(id, 1 + i % 50);
	}
}

static bool
all_once(const struct scan_seen *s)
{
	for (size_t i = 0; i < NBIG; i++)
		if (s->hits[i] != 1)
			return false;
	return true;
}

static void
test_big(struct spool *sp, unsigned char *hits)
{
	struct scan_seen s;
	char p[256];
	char orphan_old[ID_SIZE] = "0E00000000000001";
	char orphan_new[ID_SIZE] = "0E00000000000002";
	plant_big();
	plant("msg", orphan_old, "x", 1);
	seen_init(&s, hits);
	double t0 = now_s();
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	double t1 = now_s();
	fprintf(stderr, "spool_recover_begin: %d names in %.3f s\n", NBIG,
		t1 - t0);
	CHECK(t1 - t0 < 1.0);
	CHECK_EQ(NBIG, spool_scan_left(s.scan));
	CHECK(!exists("msg", orphan_old));
	run_scan(&s, 500);

	/* While the scan runs: a commit through the API, and a message
	 * file without an envelope (as between a commit's two renames).
	 * Neither is in the snapshot: not reported, not removed. */
	struct waiter w = { 0 };
	char fresh[ID_SIZE];
	commit_start(sp, &w, fresh);
	plant("msg", orphan_new, "x", 1);
	for (int i = 0; i < 100000 && (w.calls == 0 || s.calls == 0); i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ(1, w.calls);
	CHECK_EQ(0, w.status);
	CHECK(s.calls < NBIG); /* delivering started before the scan ended */
	CHECK_EQ(0, s.done_calls);
	CHECK(spool_pending(sp) > 0);
	run_until_done(sp, &s);
	CHECK_EQ(NBIG, s.found);
	CHECK_EQ(NBIG, s.calls);
	CHECK(all_once(&s));
	CHECK(s.ordered);
	CHECK_EQ(0, s.foreign);
	/* The commit is held (its log record, no files): its reader is the
	 * queue that got its callback, never a scan. */
	CHECK(!exists("env", fresh) && !exists("msg", fresh));
	const char *body;
	size_t blen;
	struct spool_held *h = spool_held_get(sp, fresh, &body, &blen);
	CHECK(h != NULL);
	CHECK_EQ(0, blen);
	spool_held_put(h);
	CHECK(exists("msg", orphan_new));
	CHECK_EQ(NBIG, count_entries("env"));
	path_of(p, sizeof(p), "msg", orphan_new);
	CHECK_EQ(0, unlink(p));

	/* Its files once written (an update), a new snapshot sees it too,
	 * exactly once. */
	struct envelope e;
	make_env(&e, "bob@example.net");
	snprintf(e.id, sizeof(e.id), "%s", fresh);
	e.msg_size = 0;
	e.msg_crc = 0;
	w.calls = 0;
	CHECK_EQ(0, spool_env_update(sp, &e, on_done, &w));
	envelope_free(&e);
	drain(sp);
	CHECK_EQ(1, w.calls);
	CHECK_EQ(0, w.status);
	CHECK(exists("env", fresh) && exists("msg", fresh));
	CHECK(spool_held_get(sp, fresh, &body, &blen) == NULL);
	seen_init(&s, hits);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	run_scan(&s, 7000);
	run_until_done(sp, &s);
	CHECK_EQ(NBIG + 1, s.found);
	CHECK(all_once(&s));
	CHECK_EQ(1, s.foreign);
	CHECK_STR_EQ(fresh, s.foreign_id);
	CHECK(s.ordered);
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, fresh, on_done, &w));
	drain(sp);
	CHECK_EQ(0, w.status);
}

/* Cancel from outside while a batch is in flight. */
static void
test_cancel_outside(struct spool *sp, unsigned char *hits)
{
	struct scan_seen s;
	seen_init(&s, hits);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	run_scan(&s, 300);
	for (int i = 0; i < 100000 && s.calls == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(s.calls > 0 && s.calls < NBIG);
	/* After the first batch's callbacks the next is already queued. */
	CHECK_EQ(1, spool_pending(sp));
	int before = s.calls;
	spool_recover_cancel(s.scan);
	s.scan = NULL;
	drain(sp);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_EQ(before, s.calls);
	CHECK_EQ(0, s.done_calls);
	/* Nothing was lost: the files are all still there. */
	CHECK_EQ(NBIG, count_entries("env"));
	CHECK_EQ(NBIG, count_entries("msg"));
}

/* Cancel from inside each(), in the middle of a batch. */
static void
test_cancel_inside(struct spool *sp, unsigned char *hits)
{
	struct scan_seen s;
	seen_init(&s, hits);
	s.cancel_at = 1234;
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	run_scan(&s, 1000);
	for (int i = 0; i < 100000 && s.scan != NULL; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(s.scan == NULL);
	CHECK_EQ(1234, s.calls);
	/* The cancelled scan is freed inside its own callback. */
	CHECK_EQ(0, spool_pending(sp));
	for (int i = 0; i < 20; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_EQ(1234, s.calls);
	CHECK_EQ(0, s.done_calls);
	/* Cancel right after run, before anything started or finished. */
	seen_init(&s, hits);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	run_scan(&s, 500);
	spool_recover_cancel(s.scan);
	s.scan = NULL;
	drain(sp);
	CHECK_EQ(0, s.calls);
	CHECK_EQ(0, s.done_calls);
	/* A second run on a running scan is refused. */
	seen_init(&s, hits);
	CHECK_EQ(0, spool_recover_begin(sp, &s.scan));
	run_scan(&s, 0);
	CHECK_EQ(-EBUSY, spool_recover_run(s.scan, 0, seen_each, seen_done,
					   &s));
	run_until_done(sp, &s);
	CHECK_EQ(NBIG, s.found);
	CHECK(all_once(&s));
}

int
main(void)
{
	struct spool *sp;
	char err[256];
	fixture_start("test_spool_recover", "recover");
	CHECK_EQ(0, uv_loop_init(&loop));
	CHECK_EQ(0, spool_open(&loop, root, &sp, err, sizeof(err)));
	unsigned char *hits = malloc(NBIG);
	CHECK(hits != NULL);

	test_empty(sp);
	test_corrupt(sp);
	test_big(sp, hits);
	test_cancel_outside(sp, hits);
	test_cancel_inside(sp, hits);

	free(hits);
	drain(sp);
	spool_close(sp);
	fixture_finish();
	CHECK_DONE();
}
