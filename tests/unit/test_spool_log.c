/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The spool's intake log (spool_log.h) on real files in a mkdtemp
 *	directory with log/ tmp/ msg/ env/, real threads, and a stand-in
 *	segment fsync that records, for every call, the segment it was
 *	given (inode), the segment's size when it began, its start and end
 *	on a global event counter and its result.
 *
 *	Group commit: 32 concurrent accepts each return only after a
 *	successful fsync of their segment that began with their record
 *	already in the file and ended before they returned; they share far
 *	fewer than 32 fsyncs; the segment then holds exactly their 32
 *	records. Failure: a failed fsync reaches the accepts it covered,
 *	its segment is never fsynced again, and later accepts go to a new
 *	segment (also under concurrent load). Sealing when full or idle,
 *	retiring in order, recycling retired segments (and their past never
 *	read as records), zeros written ahead of the records, and start-up
 *	replay of hand-written segments: rebuild, 'D' removals, newer
 *	envelopes kept, garbage replaced, torn tails, foreign names in log/
 *	left alone.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "check.h"
#include "outbox/buf.h"
#include "outbox/crc32.h"
#include "outbox/envelope.h"
#include "outbox/spool_log.h"
#include "outbox/spool_record.h"

static char root[64];
static int logfd = -1, tmpfd = -1, msgfd = -1, envfd = -1;

/* ------------------------------------------------------------------ */
/* Directories and files                                              */
/* ------------------------------------------------------------------ */

static int
open_sub(const char *sub)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", root, sub);
	CHECK_EQ(0, mkdir(p, 0700));
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* Every regular file of dfd (the tests make no subdirectories). */
static void
dir_clear(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	DIR *d = fdopendir(fd);
	CHECK(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		CHECK_EQ(0, unlinkat(dfd, de->d_name, 0));
	}
	closedir(d);
}

static void
dirs_clear(void)
{
	dir_clear(logfd);
	dir_clear(tmpfd);
	dir_clear(msgfd);
	dir_clear(envfd);
}

static int
dir_count(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	DIR *d = fdopendir(fd);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 &&
		     strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* Segments in log/, not the recycled files (NAME.free). */
static int
seg_count(void)
{
	int fd = openat(logfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	DIR *d = fdopendir(fd);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strlen(de->d_name) == 16;
	closedir(d);
	return n;
}

static void
seg_name(char out[32], uint64_t seq)
{
	snprintf(out, 32, "%016llx", (unsigned long long)seq);
}

static bool
file_exists(int dfd, const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static ino_t
file_ino(int dfd, const char *name)
{
	struct stat st;
	CHECK_EQ(0, fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW));
	return st.st_ino;
}

/* dfd/name, whole, into a new buffer; NULL if it is missing. */
static char *
slurp(int dfd, const char *name, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		CHECK_EQ(ENOENT, errno);
		return NULL;
	}
	struct stat st;
	CHECK_EQ(0, fstat(fd, &st));
	char *p = malloc((size_t)st.st_size + 1);
	CHECK(p != NULL);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		CHECK(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return p;
}

static void
put_file(int dfd, const char *name, const char *p, size_t n)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);
	CHECK(fd >= 0);
	CHECK_EQ((ssize_t)n, write(fd, p, n));
	CHECK_EQ(0, close(fd));
}

/* dfd/name holds exactly p[0..n). */
static void
check_file(int dfd, const char *name, const char *p, size_t n)
{
	size_t len = 0;
	char *data = slurp(dfd, name, &len);
	if (data == NULL)
		CHECK_FAIL("%s missing", name);
	CHECK_EQ(n, len);
	CHECK_MEM_EQ(data, p, n);
	free(data);
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

struct msg {
	char id[ID_SIZE];
	char *body;
	size_t body_len;
	struct buf env;
};

/* Both working files of m hold exactly what its record holds. */
static void
check_restored(const struct msg *m)
{
	check_file(msgfd, m->id, m->body, m->body_len);
	check_file(envfd, m->id, m->env.data, m->env.len);
}

static void
id_make(char id[ID_SIZE], unsigned n)
{
	snprintf(id, ID_SIZE, "00C0FFEE%08X", n);
}

/* An encoded envelope for id and body, with one recipient in state. */
static void
env_make(struct buf *out, const char *id, const char *body, size_t len,
	 enum rcpt_state state, uint32_t attempts)
{
	struct envelope e;
	envelope_init(&e);
	memcpy(e.id, id, ID_SIZE);
	e.sender = strdup("alice@example.org");
	CHECK(e.sender != NULL);
	CHECK_EQ(0, envelope_add_rcpt(&e, "bob@example.net"));
	e.rcpts[0].state = state;
	if (state != RCPT_PENDING)
		CHECK_EQ(0, envelope_set_error(&e, 0, "250 2.0.0 ok"));
	e.arrival = 1700000000;
	e.attempts = attempts;
	e.msg_size = len;
	e.msg_crc = crc32_update(0, body, len);
	snprintf(e.client, sizeof(e.client), "[127.0.0.1]:2525");
	buf_init(out, 1u << 16);
	CHECK_EQ(0, envelope_encode(&e, out));
	envelope_free(&e);
}

static void
msg_make(struct msg *m, unsigned n, size_t body_len)
{
	id_make(m->id, n);
	m->body_len = body_len;
	m->body = malloc(body_len + 1);
	CHECK(m->body != NULL);
	for (size_t i = 0; i < body_len; i++)
		m->body[i] = (char)('A' + (i * 7 + n) % 26);
	if (body_len >= 2) {
		m->body[body_len - 2] = '\r';
		m->body[body_len - 1] = '\n';
	}
	env_make(&m->env, m->id, m->body, body_len, RCPT_PENDING, 0);
}

static void
msg_free(struct msg *m)
{
	free(m->body);
	buf_free(&m->env);
}

static int
msg_accept(struct spool_log *lg, const struct msg *m)
{
	return spool_log_accept(lg, m->id, m->env.data, m->env.len, m->body,
				m->body_len);
}

/* Append a record of m (type 'A') or of id (type 'D') to seg, not
 * stamped: seg_put makes them records of the segment it writes. */
static void
seg_add(struct buf *seg, char type, const struct msg *m, const char *id)
{
	char hdr[SPOOL_REC_HDR];
	if (type == 'D') {
		spool_rec_header(hdr, 'D', id, NULL, 0, NULL, 0);
		CHECK_EQ(0, buf_append(seg, hdr, sizeof(hdr)));
		return;
	}
	spool_rec_header(hdr, 'A', m->id, m->env.data, m->env.len, m->body,
			 m->body_len);
	CHECK_EQ(0, buf_append(seg, hdr, sizeof(hdr)));
	CHECK_EQ(0, buf_append(seg, m->env.data, m->env.len));
	CHECK_EQ(0, buf_append(seg, m->body, m->body_len));
}

static void
put_le(char *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (char)(unsigned char)(v >> (8 * i));
}

/* An 'A' record of m as an older outboxd wrote it: "OBL1", no segment
 * number, the CRC over the header first. */
static void
seg_add_v1(struct buf *seg, const struct msg *m)
{
	char hdr[SPOOL_REC_HDR] = { 0 };
	memcpy(hdr, "OBL1A", 5);
	put_le(hdr + 8, m->env.len, 4);
	put_le(hdr + 16, m->body_len, 8);
	memcpy(hdr + 24, m->id, ID_LEN);
	uint32_t crc = crc32_update(0, hdr, 56);
	crc = crc32_update(crc, m->env.data, m->env.len);
	put_le(hdr + 56, crc32_update(crc, m->body, m->body_len), 4);
	CHECK_EQ(0, buf_append(seg, hdr, sizeof(hdr)));
	CHECK_EQ(0, buf_append(seg, m->env.data, m->env.len));
	CHECK_EQ(0, buf_append(seg, m->body, m->body_len));
}

/* seg's records (a torn last one too, if its header is whole) stamped
 * as segment seq's, as log/ names it. seg itself is left unstamped, so
 * it can be put again. */
static void
seg_put(uint64_t seq, const struct buf *seg)
{
	char *p = malloc(seg->len + 1);
	CHECK(p != NULL);
	if (seg->len > 0)
		memcpy(p, seg->data, seg->len);
	for (size_t off = 0; off + SPOOL_REC_HDR <= seg->len;) {
		uint64_t payload = spool_rec_payload_len(p + off);
		if (!spool_rec_v1(p + off, 4))
			spool_rec_stamp(p + off, seq);
		off += SPOOL_REC_HDR + payload;
	}
	char name[32];
	seg_name(name, seq);
	put_file(logfd, name, p, seg->len);
	free(p);
}

/* The segment number fd is open on, from its name. */
static uint64_t
fd_seq(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	CHECK(n > 16);
	path[n] = '\0';
	return strtoull(path + n - 16, NULL, 16);
}

static bool
all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Where the whole records of segment seq at the start of p[0..len)
 * end. */
static size_t
records_end(const char *p, size_t len, uint64_t seq)
{
	struct spool_rec r;
	size_t off = 0;
	for (int i = 0; i < 100000 &&
			spool_rec_parse(p + off, len - off, seq, &r) == 1; i++)
		off += r.total;
	return off;
}

/* Count the valid records of a segment; all of it must parse, but for
 * the zeros the log writes ahead of its records, or a recycled file's
 * past (a record of an older segment where its own records end). */
static int
seg_records(uint64_t seq, char type)
{
	char name[32];
	seg_name(name, seq);
	size_t len;
	char *data = slurp(logfd, name, &len);
	CHECK(data != NULL);
	struct spool_rec r;
	size_t off = 0;
	int n = 0;
	for (int i = 0; i < 100000 &&
			spool_rec_parse(data + off, len - off, seq, &r) == 1;
	     i++) {
		off += r.total;
		n += r.type == type;
	}
	CHECK(all_zero(data + off, len - off) ||
	      spool_rec_parse_header(data + off, len - off, seq, &r) ==
		      -ESTALE);
	free(data);
	return n;
}

/* ------------------------------------------------------------------ */
/* The stand-in segment fsync                                         */
/* ------------------------------------------------------------------ */

#define SYNCS_MAX 1024

static uv_mutex_t ev_mu;
static uint64_t ev;
static struct {
	uint64_t start, end;
	ino_t ino;
	off_t size;    /* where its whole records ended just before the
			* fsync began (not the file size: zeros run ahead) */
	int rc;
} syncs[SYNCS_MAX];
static unsigned nsyncs;
static unsigned fail_call;    /* 1-based call to fail with EIO; 0 none */
static unsigned sleep_ms = 2;
/* Accepts released the moment a failing fsync returns (failure_round). */
static uv_sem_t burst_sem;
static unsigned burst_left;

static void
burst_release(void)
{
	uv_mutex_lock(&ev_mu);
	unsigned n = burst_left;
	burst_left = 0;
	uv_mutex_unlock(&ev_mu);
	while (n-- > 0)
		uv_sem_post(&burst_sem);
}

static uint64_t
event(void)
{
	uv_mutex_lock(&ev_mu);
	uint64_t e = ++ev;
	uv_mutex_unlock(&ev_mu);
	return e;
}

static void
syncs_reset(unsigned fail, unsigned ms)
{
	uv_mutex_lock(&ev_mu);
	nsyncs = 0;
	fail_call = fail;
	sleep_ms = ms;
	uv_mutex_unlock(&ev_mu);
}

/* Where fd's whole records end: read before the start event, so it can
 * only be understated (a record being written does not parse yet) and a
 * record is never credited to an fsync that began before it. */
static off_t
synced_end(int fd, const struct stat *st)
{
	char *p = malloc((size_t)st->st_size + 1);
	CHECK(p != NULL);
	ssize_t n = pread(fd, p, (size_t)st->st_size, 0);
	CHECK(n >= 0);
	off_t end = (off_t)records_end(p, (size_t)n, fd_seq(fd));
	free(p);
	return end;
}

static int
fake_fsync(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		CHECK_FAIL("fsync of a bad fd %d", fd);
	off_t end = synced_end(fd, &st);
	uv_mutex_lock(&ev_mu);
	unsigned i = nsyncs++;
	if (i >= SYNCS_MAX)
		CHECK_FAIL("too many fsyncs");
	syncs[i].ino = st.st_ino;
	syncs[i].size = end;
	syncs[i].start = ++ev;
	unsigned ms = sleep_ms;
	int rc = fail_call != 0 && i + 1 == fail_call ? -EIO : 0;
	uv_mutex_unlock(&ev_mu);
	if (ms > 0)
		uv_sleep(ms); /* a disk flush: others append meanwhile */
	uv_mutex_lock(&ev_mu);
	syncs[i].end = ++ev;
	syncs[i].rc = rc;
	uv_mutex_unlock(&ev_mu);
	if (rc != 0)
		burst_release();
	return rc;
}

static unsigned
syncs_of(ino_t ino)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nsyncs; i++)
		n += syncs[i].ino == ino;
	return n;
}

static struct spool_log *
log_open(void)
{
	struct spool_log *lg;
	CHECK_EQ(0, spool_log_new(logfd, &lg));
	spool_log_set_fsync(lg, fake_fsync);
	return lg;
}

/* ------------------------------------------------------------------ */
/* Group commit                                                       */
/* ------------------------------------------------------------------ */

#define THREADS 32

static uv_barrier_t start_line;

struct worker {
	uv_thread_t th;
	struct spool_log *lg;
	struct msg m[4];
	int nmsgs;
	uint64_t called[4], returned[4];
	int rc[4];
	bool burst;   /* start at a failed fsync, not at the start line */
};

static void
worker_run(void *arg)
{
	struct worker *w = arg;
	if (w->burst)
		uv_sem_wait(&burst_sem);
	else
		uv_barrier_wait(&start_line);
	for (int i = 0; i < w->nmsgs; i++) {
		w->called[i] = event();
		w->rc[i] = msg_accept(w->lg, &w->m[i]);
		w->returned[i] = event();
	}
}

/* The 'A' records on disk (segment, id, end offset), indexed once per
 * round for check_accept. */
#define SEGS_MAX 64
#define RECS_MAX 256
static ino_t seg_ino[SEGS_MAX];
static struct {
	uint64_t seq;
	char id[ID_SIZE];
	size_t end;
} recs[RECS_MAX];
static unsigned nrecs;

static void
segs_load(void)
{
	nrecs = 0;
	for (uint64_t seq = 1; seq < SEGS_MAX; seq++) {
		char name[32];
		size_t len, off = 0;
		seg_name(name, seq);
		char *data = slurp(logfd, name, &len);
		if (data == NULL)
			continue;
		seg_ino[seq] = file_ino(logfd, name);
		struct spool_rec r;
		while (nrecs < RECS_MAX &&
		       spool_rec_parse(data + off, len - off, seq, &r) == 1) {
			off += r.total;
			if (r.type != 'A')
				continue;
			recs[nrecs].seq = seq;
			memcpy(recs[nrecs].id, r.id, ID_SIZE);
			recs[nrecs++].end = off;
		}
		free(data);
	}
}

/* Which segment holds the 'A' record of id; the record's end offset in
 * *end. */
static uint64_t
seg_of(const char *id, size_t *end)
{
	for (unsigned i = 0; i < nrecs; i++)
		if (strcmp(recs[i].id, id) == 0) {
			*end = recs[i].end;
			return recs[i].seq;
		}
	return 0;
}

/*
 * One accept's result against the fsync record. Success needs a
 * successful fsync of its segment that began with its record in the file
 * and ended before it returned. Failure needs a failed fsync of its
 * segment that ended before it returned.
 */
static void
check_accept(const char *id, int rc, uint64_t called, uint64_t returned)
{
	size_t end = 0;
	uint64_t seq = seg_of(id, &end);
	if (seq == 0)
		CHECK_FAIL("no 'A' record of %s", id);
	ino_t ino = seg_ino[seq];
	bool covered = false, failed = false;
	for (unsigned i = 0; i < nsyncs; i++) {
		if (syncs[i].ino != ino || syncs[i].end > returned)
			continue;
		if (syncs[i].rc != 0) {
			failed = true;
			continue;
		}
		if (syncs[i].size >= (off_t)end) {
			CHECK(syncs[i].start > called);
			covered = true;
		}
	}
	/* A failure after the covering fsync does not undo it; a success
	 * after a failure is what check_no_sync_after_failure rules out. */
	if (rc == 0) {
		if (!covered)
			CHECK_FAIL("%s: 0 but no covering fsync", id);
	} else {
		CHECK_EQ(-EIO, rc);
		CHECK(failed);
	}
	check_count++;
}

/* After a failed fsync of a segment, no fsync of it may begin again. */
static void
check_no_sync_after_failure(void)
{
	for (unsigned i = 0; i < nsyncs; i++) {
		if (syncs[i].rc == 0)
			continue;
		for (unsigned j = 0; j < nsyncs; j++)
			if (j != i && syncs[j].ino == syncs[i].ino &&
			    syncs[j].start > syncs[i].start)
				CHECK_FAIL("fsync %u (size %lld, rc %d) of a "
					   "segment whose fsync %u (size %lld) "
					   "failed (%u fsyncs in all)", j,
					   (long long)syncs[j].size,
					   syncs[j].rc, i,
					   (long long)syncs[i].size, nsyncs);
	}
	check_count++;
}

static void
workers_run(struct worker *w, int n, int per, unsigned base, size_t size,
	     struct spool_log *lg)
{
	CHECK_EQ(0, uv_barrier_init(&start_line, (unsigned)n));
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .lg = lg, .nmsgs = per };
		for (int k = 0; k < per; k++)
			msg_make(&w[i].m[k], base + (unsigned)(i * per + k),
				 size + (size_t)(i * 37 + k * 11));
		CHECK_EQ(0, uv_thread_create(&w[i].th, worker_run, &w[i]));
	}
	for (int i = 0; i < n; i++)
		CHECK_EQ(0, uv_thread_join(&w[i].th));
	uv_barrier_destroy(&start_line);
}

static void
workers_free(struct worker *w, int n)
{
	for (int i = 0; i < n; i++)
		for (int k = 0; k < w[i].nmsgs; k++)
			msg_free(&w[i].m[k]);
}

static void
test_group_commit(void)
{
	static struct worker w[THREADS];
	dirs_clear();
	syncs_reset(0, 2);
	struct spool_log *lg = log_open();
	workers_run(w, THREADS, 1, 0x100, 100, lg);
	segs_load();
	for (int i = 0; i < THREADS; i++) {
		CHECK_EQ(0, w[i].rc[0]);
		check_accept(w[i].m[0].id, w[i].rc[0], w[i].called[0],
			     w[i].returned[0]);
	}
	/* batching: the 32 commits shared their fsyncs */
	fprintf(stderr, "group commit: %d accepts, %u fsyncs\n", THREADS,
		nsyncs);
	CHECK(nsyncs < THREADS);
	CHECK(nsyncs >= 1);
	CHECK_EQ(nsyncs, spool_log_syncs(lg));
	/* one segment with exactly the 32 records, each as given */
	CHECK_EQ(1, dir_count(logfd));
	CHECK_EQ(THREADS, seg_records(1, 'A'));
	size_t len;
	char *data = slurp(logfd, "0000000000000001", &len);
	CHECK(data != NULL);
	struct spool_rec r;
	size_t off = 0;
	int seen = 0;
	while (seen < THREADS + 1 &&
	       spool_rec_parse(data + off, len - off, 1, &r) == 1) {
		off += r.total;
		const struct msg *m = NULL;
		for (int i = 0; i < THREADS; i++)
			if (strcmp(w[i].m[0].id, r.id) == 0)
				m = &w[i].m[0];
		CHECK(m != NULL);
		CHECK_EQ(m->env.len, r.env_len);
		CHECK_MEM_EQ(m->env.data, r.env, r.env_len);
		CHECK_EQ(m->body_len, r.body_len);
		CHECK_MEM_EQ(m->body, r.body, m->body_len);
		seen++;
	}
	CHECK_EQ(THREADS, seen);
	free(data);
	spool_log_free(lg);
	workers_free(w, THREADS);
	/* segments stay on disk after free */
	CHECK_EQ(1, dir_count(logfd));
}

/* ------------------------------------------------------------------ */
/* Failure                                                            */
/* ------------------------------------------------------------------ */

static void
test_failure_single(void)
{
	struct msg a, b;
	dirs_clear();
	syncs_reset(1, 0);
	struct spool_log *lg = log_open();
	msg_make(&a, 1, 50);
	msg_make(&b, 2, 60);
	CHECK_EQ(-EIO, msg_accept(lg, &a));
	ino_t ino1 = file_ino(logfd, "0000000000000001");
	CHECK_EQ(1, nsyncs);
	CHECK_EQ(0, msg_accept(lg, &b));
	/* a new segment took it; the failed one was not fsynced again */
	CHECK(file_exists(logfd, "0000000000000002"));
	ino_t ino2 = file_ino(logfd, "0000000000000002");
	CHECK_EQ(2, nsyncs);
	CHECK_EQ(1, syncs_of(ino1));
	CHECK_EQ(1, syncs_of(ino2));
	CHECK_EQ(0, syncs[1].rc);
	CHECK_EQ(1, seg_records(1, 'A'));
	CHECK_EQ(1, seg_records(2, 'A'));
	size_t end;
	segs_load();
	CHECK_EQ(2, seg_of(b.id, &end));
	/* the failed commit's 'D' goes to the live segment */
	CHECK_EQ(0, spool_log_done(lg, a.id));
	CHECK_EQ(1, seg_records(2, 'D'));
	CHECK_EQ(2, spool_log_syncs(lg));
	/* more accepts: still no fsync of segment 1 */
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK_EQ(1, syncs_of(ino1));
	CHECK_EQ(2, syncs_of(ino2));
	/* the failed segment is sealed: the first to retire */
	CHECK_EQ(1, spool_log_retire_take(lg));
	CHECK_EQ(0, spool_log_retire(lg, 1, msgfd, envfd));
	spool_log_retired(lg, 1, 0);
	CHECK(!file_exists(logfd, "0000000000000001"));
	CHECK_EQ(1, syncs_of(ino1));
	spool_log_free(lg);
	msg_free(&a);
	msg_free(&b);
}

/*
 * Under load: 16 threads x 4 accepts, fsync number `fail` fails, and 8
 * more accepts start the moment it returns (they race the seal of the
 * failed segment). Every result is justified by the fsync record,
 * nothing is fsynced on a segment after its failure, at least one
 * accept failed and the later ones succeed elsewhere.
 */
#define BURST 8

static void
failure_round(unsigned fail, unsigned base, size_t body)
{
	static struct worker w[16], b[BURST];
	dirs_clear();
	syncs_reset(fail, 2);
	struct spool_log *lg = log_open();
	uv_mutex_lock(&ev_mu);
	burst_left = BURST;
	uv_mutex_unlock(&ev_mu);
	for (int i = 0; i < BURST; i++) {
		b[i] = (struct worker){ .lg = lg, .nmsgs = 1, .burst = true };
		msg_make(&b[i].m[0], base + 0x80 + (unsigned)i, body + 1);
		CHECK_EQ(0, uv_thread_create(&b[i].th, worker_run, &b[i]));
	}
	workers_run(w, 16, 4, base, body, lg);
	burst_release(); /* no failure reached them: let them run anyway */
	for (int i = 0; i < BURST; i++)
		CHECK_EQ(0, uv_thread_join(&b[i].th));
	segs_load();
	int failed = 0, ok = 0;
	for (int i = 0; i < BURST; i++)
		check_accept(b[i].m[0].id, b[i].rc[0], b[i].called[0],
			     b[i].returned[0]);
	for (int i = 0; i < 16; i++)
		for (int k = 0; k < 4; k++) {
			check_accept(w[i].m[k].id, w[i].rc[k],
				     w[i].called[k], w[i].returned[k]);
			failed += w[i].rc[k] != 0;
			ok += w[i].rc[k] == 0;
		}
	check_no_sync_after_failure();
	CHECK(failed >= 1);
	CHECK(ok >= 1);
	CHECK(dir_count(logfd) >= 2);
	spool_log_free(lg);
	workers_free(w, 16);
	workers_free(b, BURST);
}

#define FAIL_ROUNDS 12
#define FAIL_BODY (128u * 1024u)

static void
test_failure_concurrent(void)
{
	/* Big records keep the appender inside lg->mu longer, which is
	 * what opens the window between a failed fsync and the seal. */
	for (unsigned r = 0; r < FAIL_ROUNDS; r++)
		failure_round(1 + r % 3, 0x1000 + r * 0x100,
			      r % 2 ? 100 : FAIL_BODY);
}

/* ------------------------------------------------------------------ */
/* Sealing and retiring                                               */
/* ------------------------------------------------------------------ */

static void
test_seal_idle(void)
{
	struct msg a;
	dirs_clear();
	syncs_reset(0, 0);
	struct spool_log *lg = log_open();
	msg_make(&a, 0x20, 80);
	/* nothing to seal before the first append */
	CHECK(!spool_log_seal_idle(lg));
	CHECK(!spool_log_seal_idle(lg));
	CHECK_EQ(0, dir_count(logfd));
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK(!spool_log_seal_idle(lg));     /* appended since: not idle */
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK(!spool_log_seal_idle(lg));     /* appended in between */
	CHECK_EQ(0, spool_log_done(lg, a.id));
	CHECK(!spool_log_seal_idle(lg));     /* a 'D' counts as well */
	CHECK_EQ(0, spool_log_retire_take(lg));
	CHECK(spool_log_seal_idle(lg));      /* idle for a whole period */
	CHECK(!spool_log_seal_idle(lg));     /* nothing current any more */
	CHECK_EQ(2, seg_records(1, 'A'));
	/* the next append opens segment 2 */
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK(file_exists(logfd, "0000000000000002"));
	CHECK_EQ(1, seg_records(2, 'A'));
	CHECK_EQ(2, seg_records(1, 'A'));    /* sealed: untouched */
	CHECK(!spool_log_seal_idle(lg));
	CHECK(spool_log_seal_idle(lg));
	spool_log_free(lg);
	msg_free(&a);
}

static void
test_retire(void)
{
	struct msg a, b;
	dirs_clear();
	syncs_reset(0, 0);
	struct spool_log *lg = log_open();
	msg_make(&a, 0x30, 90);
	msg_make(&b, 0x31, 91);
	/* a survivor with its files, and one already removed */
	put_file(msgfd, a.id, a.body, a.body_len);
	put_file(envfd, a.id, a.env.data, a.env.len);
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK_EQ(0, msg_accept(lg, &b));
	CHECK_EQ(0, spool_log_done(lg, b.id));
	CHECK_EQ(0, spool_log_retire_take(lg)); /* current, not sealed */
	CHECK(!spool_log_seal_idle(lg));
	CHECK(spool_log_seal_idle(lg));
	/* not taken yet: refused */
	CHECK_EQ(-ENOENT, spool_log_retire(lg, 1, msgfd, envfd));
	CHECK_EQ(-ENOENT, spool_log_retire(lg, 7, msgfd, envfd));
	CHECK_EQ(1, spool_log_retire_take(lg));
	CHECK_EQ(0, spool_log_retire_take(lg)); /* one at a time */
	ino_t ino1 = file_ino(logfd, "0000000000000001");
	CHECK_EQ(0, spool_log_retire(lg, 1, msgfd, envfd));
	CHECK(!file_exists(logfd, "0000000000000001"));
	spool_log_retired(lg, 1, 0);
	CHECK_EQ(0, spool_log_retire_take(lg));
	/* recycled, not removed */
	CHECK_EQ(1, dir_count(logfd));
	CHECK_EQ(ino1, file_ino(logfd, "0000000000000001.free"));
	/* retiring keeps the working copies */
	check_restored(&a);

	/* two sealed segments retire oldest first; the first of them is
	 * the recycled file, its own records over segment 1's */
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK_EQ(ino1, file_ino(logfd, "0000000000000002"));
	CHECK(!file_exists(logfd, "0000000000000001.free"));
	CHECK_EQ(1, seg_records(2, 'A'));
	CHECK(!spool_log_seal_idle(lg));
	CHECK(spool_log_seal_idle(lg));
	CHECK_EQ(0, msg_accept(lg, &b));
	CHECK(!spool_log_seal_idle(lg));
	CHECK(spool_log_seal_idle(lg));
	CHECK(file_exists(logfd, "0000000000000002"));
	CHECK(file_exists(logfd, "0000000000000003"));
	CHECK_EQ(2, spool_log_retire_take(lg));
	CHECK_EQ(0, spool_log_retire(lg, 2, msgfd, envfd));
	spool_log_retired(lg, 2, 0);
	CHECK(file_exists(logfd, "0000000000000002.free"));
	CHECK_EQ(3, spool_log_retire_take(lg));
	/* a failed retire stops retiring: later segments may hold the 'D'
	 * records of its messages */
	spool_log_retired(lg, 3, -EIO);
	CHECK(file_exists(logfd, "0000000000000003"));
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK(!spool_log_seal_idle(lg));
	CHECK(spool_log_seal_idle(lg));
	CHECK_EQ(0, spool_log_retire_take(lg));
	CHECK(file_exists(logfd, "0000000000000003"));
	CHECK(file_exists(logfd, "0000000000000004"));
	CHECK(!file_exists(logfd, "0000000000000002.free"));
	CHECK_EQ(1, seg_records(4, 'A'));
	spool_log_free(lg);
	msg_free(&a);
	msg_free(&b);
}

/* Put 4 bytes over a sealed segment's record header at off. */
static void
seg_smash(uint64_t seq, off_t off)
{
	char name[32];
	snprintf(name, sizeof(name), "%016llx", (unsigned long long)seq);
	int fd = openat(logfd, name, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(4, pwrite(fd, "JUNK", 4, off));
	close(fd);
}

/*
 * A retire reads only the record headers (in 16 KiB windows, skipping
 * bodies): it walks across windows, over a body far bigger than one, to
 * the last record, and a header that is not one stops it (-EBADMSG, the
 * segment kept for the next start's replay) instead of passing for the
 * end. 40 small records, a 200 KiB one, 5 small ones.
 */
static void
test_retire_walk(void)
{
	struct msg small[45], big;
	size_t off[47], at = 0;
	for (int i = 0; i < 45; i++)
		msg_make(&small[i], 0x60 + (unsigned)i, 900);
	msg_make(&big, 0x5f, 200 * 1024);
	for (int bad = 0; bad < 3; bad++) {
		dirs_clear();
		syncs_reset(0, 0);
		struct spool_log *lg = log_open();
		at = 0;
		for (int i = 0; i < 45; i++) {
			if (i == 40) {
				off[45] = at;
				CHECK_EQ(0, msg_accept(lg, &big));
				at += SPOOL_REC_HDR + big.env.len + big.body_len;
			}
			off[i] = at;
			CHECK_EQ(0, msg_accept(lg, &small[i]));
			at += SPOOL_REC_HDR + small[i].env.len + small[i].body_len;
		}
		CHECK(!spool_log_seal_idle(lg));
		CHECK(spool_log_seal_idle(lg));
		CHECK_EQ(1, spool_log_retire_take(lg));
		/* none smashed; one past the first window; the last record,
		 * right after the big body */
		if (bad == 1)
			seg_smash(1, (off_t)off[30]);
		if (bad == 2)
			seg_smash(1, (off_t)off[44]);
		CHECK(off[30] > 16 * 1024);
		int rc = spool_log_retire(lg, 1, msgfd, envfd);
		CHECK_EQ(bad == 0 ? 0 : -EBADMSG, rc);
		CHECK_EQ(bad != 0, file_exists(logfd, "0000000000000001"));
		spool_log_retired(lg, 1, rc);
		spool_log_free(lg);
	}
	for (int i = 0; i < 45; i++)
		msg_free(&small[i]);
	msg_free(&big);
}

/* Zeros run ahead of the records, so an append does not grow the file:
 * 64 KiB past the first record; a second record lands in them. */
static void
test_zero_ahead(void)
{
	struct msg a, b;
	struct stat st;
	dirs_clear();
	syncs_reset(0, 0);
	struct spool_log *lg = log_open();
	msg_make(&a, 0x48, 1000);
	msg_make(&b, 0x49, 1000);
	size_t rec = SPOOL_REC_HDR + a.env.len + a.body_len;
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK_EQ(0, fstatat(logfd, "0000000000000001", &st, 0));
	CHECK_EQ((off_t)(rec + 64 * 1024), st.st_size);
	CHECK_EQ(0, msg_accept(lg, &b));
	CHECK_EQ(0, fstatat(logfd, "0000000000000001", &st, 0));
	CHECK_EQ((off_t)(rec + 64 * 1024), st.st_size);
	CHECK_EQ(2, seg_records(1, 'A'));   /* and zeros after them */
	spool_log_free(lg);
	msg_free(&a);
	msg_free(&b);
}

/* Full segments seal themselves at SPOOL_LOG_SEG_MAX. */
static void
test_seal_full(void)
{
	struct msg m;
	dirs_clear();
	syncs_reset(0, 0);
	struct spool_log *lg = log_open();
	msg_make(&m, 0x40, SPOOL_LOG_BODY_MAX);
	size_t rec = SPOOL_REC_HDR + m.env.len + m.body_len;
	unsigned fit = SPOOL_LOG_SEG_MAX / (unsigned)rec;
	for (unsigned i = 0; i <= fit; i++)
		CHECK_EQ(0, msg_accept(lg, &m));
	struct stat st;
	CHECK_EQ(0, fstatat(logfd, "0000000000000001", &st, 0));
	CHECK(st.st_size <= (off_t)SPOOL_LOG_SEG_MAX);
	size_t len;
	char *data = slurp(logfd, "0000000000000001", &len);
	CHECK_EQ(fit * rec, records_end(data, len, 1));
	free(data);
	CHECK_EQ((int)fit, seg_records(1, 'A'));
	CHECK_EQ(1, seg_records(2, 'A'));
	/* sealed without an idle tick, so it retires */
	CHECK_EQ(1, spool_log_retire_take(lg));
	CHECK_EQ(0, spool_log_retire(lg, 1, msgfd, envfd));
	spool_log_retired(lg, 1, 0);
	CHECK(!file_exists(logfd, "0000000000000001"));
	CHECK(file_exists(logfd, "0000000000000002"));
	spool_log_free(lg);
	/* a new log numbers after the highest segment found */
	lg = log_open();
	CHECK_EQ(0, msg_accept(lg, &m));
	CHECK(file_exists(logfd, "0000000000000003"));
	spool_log_free(lg);
	msg_free(&m);
}

/* ------------------------------------------------------------------ */
/* Replay                                                             */
/* ------------------------------------------------------------------ */

static void
replay(struct spool_log_replay_stats *st)
{
	memset(st, 0xee, sizeof(*st));
	CHECK_EQ(0, spool_log_replay(logfd, tmpfd, msgfd, envfd, st));
	CHECK_EQ(0, dir_count(tmpfd));
}

static void
test_replay_empty(void)
{
	struct spool_log_replay_stats st;
	dirs_clear();
	replay(&st);
	CHECK_EQ(0, st.segments + st.accepted + st.rewritten + st.done +
			    st.torn);
}

/* (a) msg/ and env/ missing: both rebuilt from the record. */
static void
test_replay_rebuild(void)
{
	struct msg a, b;
	struct buf seg;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0x50, 333);
	msg_make(&b, 0x51, 0); /* an empty body */
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &a, NULL);
	seg_add(&seg, 'A', &b, NULL);
	seg_put(5, &seg);
	replay(&st);
	check_restored(&a);
	check_file(msgfd, b.id, "", 0);
	check_file(envfd, b.id, b.env.data, b.env.len);
	CHECK_EQ(1, st.segments);
	CHECK_EQ(2, st.accepted);
	CHECK_EQ(4, st.rewritten);
	CHECK_EQ(0, st.done);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());       /* (f) */
	/* a second replay has nothing left to do */
	replay(&st);
	CHECK_EQ(0, st.segments + st.accepted + st.rewritten);
	check_file(msgfd, a.id, a.body, a.body_len);
	buf_free(&seg);
	msg_free(&a);
	msg_free(&b);
}

/* (b) 'A' then 'D' (in a later segment): files removed, not rebuilt. */
static void
test_replay_done(void)
{
	struct msg a, b, c, d;
	struct buf s1, s2;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0x60, 100);   /* removed, files still there */
	msg_make(&b, 0x61, 101);   /* removed, files gone */
	msg_make(&c, 0x62, 102);   /* still queued, files gone */
	msg_make(&d, 0x63, 103);   /* 'D' only: its 'A' retired earlier */
	buf_init(&s1, 1u << 20);
	buf_init(&s2, 1u << 20);
	seg_add(&s1, 'A', &a, NULL);
	seg_add(&s1, 'A', &b, NULL);
	seg_add(&s1, 'D', NULL, b.id);
	seg_add(&s1, 'A', &c, NULL);
	seg_add(&s2, 'D', NULL, a.id);
	seg_add(&s2, 'D', NULL, d.id);
	seg_put(0x10, &s1);
	seg_put(0x11, &s2);
	put_file(msgfd, a.id, a.body, a.body_len);
	put_file(envfd, a.id, a.env.data, a.env.len);
	put_file(msgfd, d.id, d.body, d.body_len);
	put_file(envfd, d.id, d.env.data, d.env.len);
	replay(&st);
	CHECK(!file_exists(msgfd, a.id));
	CHECK(!file_exists(envfd, a.id));
	CHECK(!file_exists(msgfd, b.id));
	CHECK(!file_exists(envfd, b.id));
	CHECK(!file_exists(msgfd, d.id));
	CHECK(!file_exists(envfd, d.id));
	check_restored(&c);
	CHECK_EQ(1, dir_count(msgfd));
	CHECK_EQ(1, dir_count(envfd));
	CHECK_EQ(2, st.segments);
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(2, st.rewritten);
	CHECK_EQ(3, st.done);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());
	buf_free(&s1);
	buf_free(&s2);
	msg_free(&a);
	msg_free(&b);
	msg_free(&c);
	msg_free(&d);
}

/* (c) a newer envelope of the same message is kept; a missing body is
 * rebuilt; matching files are left alone. */
static void
test_replay_keep_newer(void)
{
	struct msg a, b;
	struct buf seg, newer;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0x70, 200);
	msg_make(&b, 0x71, 201);
	/* same msg_size and msg_crc, the recipient delivered since */
	env_make(&newer, a.id, a.body, a.body_len, RCPT_SENT, 3);
	CHECK(newer.len != a.env.len ||
	      memcmp(newer.data, a.env.data, a.env.len) != 0);
	put_file(envfd, a.id, newer.data, newer.len);
	put_file(msgfd, b.id, b.body, b.body_len);
	put_file(envfd, b.id, b.env.data, b.env.len);
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &a, NULL);
	seg_add(&seg, 'A', &b, NULL);
	seg_put(1, &seg);
	replay(&st);
	check_file(envfd, a.id, newer.data, newer.len);
	check_file(msgfd, a.id, a.body, a.body_len);
	check_restored(&b);
	CHECK_EQ(2, st.accepted);
	CHECK_EQ(1, st.rewritten);
	CHECK_EQ(0, seg_count());
	buf_free(&newer);
	buf_free(&seg);
	msg_free(&a);
	msg_free(&b);
}

/* (d) env/ID that does not decode, or describes another body or
 * another message, is rewritten; a wrong body is rewritten. */
static void
test_replay_garbage(void)
{
	struct msg a, b, c;
	struct buf seg, other;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0x80, 300);
	msg_make(&b, 0x81, 301);
	msg_make(&c, 0x82, 302);
	put_file(msgfd, a.id, a.body, a.body_len);
	put_file(envfd, a.id, "not an envelope\n", 16);
	/* b: a valid envelope of a different body, and a body with one
	 * byte changed (same length) */
	env_make(&other, b.id, "x", 1, RCPT_PENDING, 0);
	put_file(envfd, b.id, other.data, other.len);
	b.body[10] ^= 1;
	put_file(msgfd, b.id, b.body, b.body_len);
	b.body[10] ^= 1;
	/* c: the envelope of another message (a), same size and CRC */
	c.body_len = a.body_len;
	memcpy(c.body, a.body, a.body_len);
	buf_free(&c.env);
	env_make(&c.env, c.id, c.body, c.body_len, RCPT_PENDING, 0);
	put_file(envfd, c.id, a.env.data, a.env.len);
	put_file(msgfd, c.id, c.body, c.body_len);
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &a, NULL);
	seg_add(&seg, 'A', &b, NULL);
	seg_add(&seg, 'A', &c, NULL);
	seg_put(3, &seg);
	replay(&st);
	check_restored(&a);
	check_restored(&b);
	check_restored(&c);
	CHECK_EQ(3, st.accepted);
	CHECK_EQ(4, st.rewritten);
	CHECK_EQ(0, seg_count());
	buf_free(&other);
	buf_free(&seg);
	msg_free(&a);
	msg_free(&b);
	msg_free(&c);
}

/* (e) a torn tail: the records before it restored, the rest ignored,
 * and the next segment still read. */
static void
test_replay_torn(void)
{
	struct msg a, b, c, d, e;
	struct buf s1, s2;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0x90, 150);
	msg_make(&b, 0x91, 151);
	msg_make(&c, 0x92, 152);   /* torn */
	msg_make(&d, 0x93, 153);   /* next segment */
	msg_make(&e, 0x94, 154);   /* after garbage: never read */
	buf_init(&s1, 1u << 20);
	buf_init(&s2, 1u << 20);
	seg_add(&s1, 'A', &a, NULL);
	seg_add(&s1, 'A', &b, NULL);
	seg_add(&s1, 'A', &c, NULL);
	s1.len -= 5;
	seg_add(&s2, 'A', &d, NULL);
	seg_put(8, &s1);
	seg_put(9, &s2);
	replay(&st);
	check_restored(&a);
	check_restored(&b);
	check_restored(&d);
	CHECK(!file_exists(msgfd, c.id) && !file_exists(envfd, c.id));
	CHECK_EQ(2, st.segments);
	CHECK_EQ(3, st.accepted);
	CHECK_EQ(6, st.rewritten);
	CHECK_EQ(1, st.torn);
	CHECK_EQ(0, seg_count());

	/* bytes that are no record stop the segment: what follows them
	 * is never trusted. Not counted as torn: a recycled file's past
	 * looks the same from where the records end. */
	dirs_clear();
	buf_reset(&s2);
	seg_add(&s2, 'A', &d, NULL);
	CHECK_EQ(0, buf_append(&s2, "\0\0\0\0garbage", 11));
	seg_add(&s2, 'A', &e, NULL);
	seg_put(9, &s2);
	replay(&st);
	check_file(msgfd, d.id, d.body, d.body_len);
	CHECK(!file_exists(msgfd, e.id) && !file_exists(envfd, e.id));
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());

	/* a recycled file: segment 9's record, then whole records of the
	 * segment it was before (7), with good CRCs. They are its past,
	 * not its messages, and not a torn tail. */
	dirs_clear();
	buf_reset(&s1);
	buf_reset(&s2);
	seg_add(&s1, 'A', &e, NULL);
	seg_add(&s1, 'A', &c, NULL);
	seg_put(7, &s1);
	size_t past_len;
	char *past = slurp(logfd, "0000000000000007", &past_len);
	CHECK(past != NULL);
	CHECK_EQ(0, unlinkat(logfd, "0000000000000007", 0));
	seg_add(&s2, 'A', &d, NULL);
	seg_put(9, &s2);
	int fd = openat(logfd, "0000000000000009", O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK_EQ((ssize_t)past_len, write(fd, past, past_len));
	close(fd);
	free(past);
	replay(&st);
	check_restored(&d);
	CHECK(!file_exists(msgfd, e.id) && !file_exists(envfd, e.id));
	CHECK(!file_exists(msgfd, c.id) && !file_exists(envfd, c.id));
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());

	/* ...but a record of its own whose payload did not all land (a
	 * whole header, a bad CRC) is torn */
	dirs_clear();
	buf_reset(&s2);
	seg_add(&s2, 'A', &d, NULL);
	seg_add(&s2, 'A', &e, NULL);
	s2.data[s2.len - 1] ^= 0x40;
	seg_put(9, &s2);
	replay(&st);
	check_restored(&d);
	CHECK(!file_exists(msgfd, e.id) && !file_exists(envfd, e.id));
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(1, st.torn);
	CHECK_EQ(0, seg_count());

	/* the zeros written ahead of the records are the clean end of a
	 * segment, not a torn tail */
	dirs_clear();
	buf_reset(&s1);
	seg_add(&s1, 'A', &a, NULL);
	CHECK_EQ(0, buf_append(&s1, (const char[4096]){ 0 }, 4096));
	seg_put(1, &s1);
	replay(&st);
	check_restored(&a);
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());

	/* only a torn header: one torn segment, nothing restored */
	dirs_clear();
	buf_reset(&s1);
	seg_add(&s1, 'A', &a, NULL);
	s1.len = 40;
	seg_put(1, &s1);
	replay(&st);
	CHECK_EQ(1, st.torn);
	CHECK_EQ(1, st.segments);
	CHECK_EQ(0, st.accepted);
	CHECK_EQ(0, dir_count(msgfd) + dir_count(envfd) + seg_count());
	buf_free(&s1);
	buf_free(&s2);
	msg_free(&a);
	msg_free(&b);
	msg_free(&c);
	msg_free(&d);
	msg_free(&e);
}

/* (g) names in log/ that are not segments are not touched. */
/* At start, the recycled files left in log/ count for the numbering: a
 * new segment's number is above theirs, so their past is never taken
 * for its records. At most two are kept, and the first append takes one
 * of them; a replay after that reads its new record and not its past. */
static void
test_recycle_start(void)
{
	static const uint64_t old[] = { 0x20, 0x21, 0x22 };
	struct msg a, b;
	struct buf seg;
	struct spool_log_replay_stats st;
	dirs_clear();
	syncs_reset(0, 0);
	msg_make(&a, 0x4c, 500);
	msg_make(&b, 0x4d, 500);
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &b, NULL);
	seg_add(&seg, 'A', &b, NULL);
	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		char name[32], to[40];
		seg_put(old[i], &seg);
		seg_name(name, old[i]);
		snprintf(to, sizeof(to), "%s.free", name);
		CHECK_EQ(0, renameat(logfd, name, logfd, to));
	}
	struct spool_log *lg = log_open();
	CHECK_EQ(2, dir_count(logfd));
	CHECK(!file_exists(logfd, "0000000000000022.free"));
	ino_t ino = file_ino(logfd, "0000000000000021.free");
	CHECK_EQ(0, msg_accept(lg, &a));
	CHECK_EQ(ino, file_ino(logfd, "0000000000000023"));
	CHECK(file_exists(logfd, "0000000000000020.free"));
	CHECK_EQ(2, dir_count(logfd));
	CHECK_EQ(1, seg_records(0x23, 'A'));
	spool_log_free(lg);
	replay(&st);
	check_restored(&a);
	CHECK(!file_exists(msgfd, b.id) && !file_exists(envfd, b.id));
	CHECK_EQ(1, st.accepted);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(1, st.segments);
	/* the replayed segment recycled in turn */
	CHECK_EQ(ino, file_ino(logfd, "0000000000000023.free"));
	CHECK_EQ(2, dir_count(logfd));
	buf_free(&seg);
	msg_free(&a);
	msg_free(&b);
}

/* A replayed segment is recycled (at most two are kept), but for one of
 * an older outboxd, whose records carry no segment number: its records
 * still replay, and it is removed. */
static void
test_replay_recycles(void)
{
	struct msg a, b, c;
	struct buf s1, s2, s3;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0xb0, 130);
	msg_make(&b, 0xb1, 131);
	msg_make(&c, 0xb2, 132);
	buf_init(&s1, 1u << 20);
	buf_init(&s2, 1u << 20);
	buf_init(&s3, 1u << 20);
	seg_add_v1(&s1, &a);
	seg_add(&s2, 'A', &b, NULL);
	seg_add(&s3, 'A', &c, NULL);
	seg_put(4, &s1);
	seg_put(5, &s2);
	seg_put(6, &s3);
	put_file(logfd, "0000000000000001.free", "x", 1);
	ino_t ino5 = file_ino(logfd, "0000000000000005");
	replay(&st);
	check_restored(&a);
	check_restored(&b);
	check_restored(&c);
	CHECK_EQ(3, st.segments);
	CHECK_EQ(3, st.accepted);
	CHECK_EQ(0, seg_count());
	CHECK(!file_exists(logfd, "0000000000000004.free"));
	CHECK_EQ(ino5, file_ino(logfd, "0000000000000005.free"));
	CHECK(!file_exists(logfd, "0000000000000006.free"));
	CHECK(file_exists(logfd, "0000000000000001.free"));
	CHECK_EQ(2, dir_count(logfd));
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&s3);
	msg_free(&a);
	msg_free(&b);
	msg_free(&c);
}

static void
test_replay_foreign(void)
{
	static const char *names[] = {
		"README", "0000000000000000", "00000000000000AB",
		"000000000000001", "00000000000000010", ".0000000000000001",
		"0000000000000001.free",
	};
	struct msg a;
	struct buf seg;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0xa0, 120);
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &a, NULL);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		put_file(logfd, names[i], seg.data, seg.len);
	seg_add(&seg, 'D', NULL, a.id);
	seg_put(0xab, &seg); /* the real one: accepted, then done */
	replay(&st);
	CHECK_EQ(1, st.segments);
	CHECK_EQ(0, st.accepted);
	CHECK_EQ(1, st.done);
	CHECK_EQ(8, dir_count(logfd)); /* and the real one, recycled */
	CHECK(file_exists(logfd, "00000000000000ab.free"));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		check_file(logfd, names[i], seg.data,
			   seg.len - SPOOL_REC_HDR);
	CHECK_EQ(0, dir_count(msgfd) + dir_count(envfd));
	buf_free(&seg);
	msg_free(&a);
}

/* A record whose envelope does not decode is not ours: nothing made. */
static void
test_replay_bad_env(void)
{
	struct msg a;
	struct buf seg;
	struct spool_log_replay_stats st;
	dirs_clear();
	msg_make(&a, 0xb0, 64);
	buf_reset(&a.env);
	CHECK_EQ(0, buf_puts(&a.env, "V1:1\nbroken"));
	buf_init(&seg, 1u << 20);
	seg_add(&seg, 'A', &a, NULL);
	seg_put(2, &seg);
	replay(&st);
	CHECK_EQ(1, st.segments);
	CHECK_EQ(0, st.rewritten);
	CHECK_EQ(0, dir_count(msgfd) + dir_count(envfd) + seg_count());
	buf_free(&seg);
	msg_free(&a);
}

/* End to end: segments written by spool_log_accept/spool_log_done with
 * the real fsync, working copies lost, replay restores the queued ones. */
static void
test_replay_from_log(void)
{
	struct msg m[4];
	struct spool_log_replay_stats st;
	dirs_clear();
	struct spool_log *lg;
	CHECK_EQ(0, spool_log_new(logfd, &lg));
	for (unsigned i = 0; i < 4; i++) {
		msg_make(&m[i], 0xc0 + i, 500 + i);
		put_file(msgfd, m[i].id, m[i].body, m[i].body_len);
		put_file(envfd, m[i].id, m[i].env.data, m[i].env.len);
		CHECK_EQ(0, msg_accept(lg, &m[i]));
		if (i == 1) { /* a new segment for the rest */
			CHECK(!spool_log_seal_idle(lg));
			CHECK(spool_log_seal_idle(lg));
		}
	}
	CHECK(spool_log_syncs(lg) >= 2);
	/* m[1] delivered and removed; the 'D' is in the second segment */
	CHECK_EQ(0, unlinkat(envfd, m[1].id, 0));
	CHECK_EQ(0, unlinkat(msgfd, m[1].id, 0));
	CHECK_EQ(0, spool_log_done(lg, m[1].id));
	spool_log_free(lg);
	CHECK_EQ(2, dir_count(logfd));
	/* the crash lost unsynced working copies */
	CHECK_EQ(0, unlinkat(msgfd, m[0].id, 0));
	CHECK_EQ(0, unlinkat(envfd, m[2].id, 0));
	put_file(msgfd, m[3].id, "", 0);
	replay(&st);
	for (unsigned i = 0; i < 4; i++) {
		if (i == 1) {
			CHECK(!file_exists(msgfd, m[i].id));
			CHECK(!file_exists(envfd, m[i].id));
			continue;
		}
		check_file(msgfd, m[i].id, m[i].body, m[i].body_len);
		check_file(envfd, m[i].id, m[i].env.data, m[i].env.len);
	}
	CHECK_EQ(2, st.segments);
	CHECK_EQ(3, st.accepted);
	CHECK_EQ(3, st.rewritten);
	CHECK_EQ(1, st.done);
	CHECK_EQ(0, st.torn);
	CHECK_EQ(0, seg_count());
	for (unsigned i = 0; i < 4; i++)
		msg_free(&m[i]);
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int
main(void)
{
	snprintf(root, sizeof(root), "/tmp/outbox-spool-log-XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	logfd = open_sub("log");
	tmpfd = open_sub("tmp");
	msgfd = open_sub("msg");
	envfd = open_sub("env");
	CHECK_EQ(0, uv_mutex_init(&ev_mu));
	CHECK_EQ(0, uv_sem_init(&burst_sem, 0));

	test_group_commit();
	test_failure_single();
	test_failure_concurrent();
	test_seal_idle();
	test_retire();
	test_retire_walk();
	test_seal_full();
	test_zero_ahead();
	test_recycle_start();
	test_replay_empty();
	test_replay_rebuild();
	test_replay_done();
	test_replay_keep_newer();
	test_replay_garbage();
	test_replay_torn();
	test_replay_recycles();
	test_replay_foreign();
	test_replay_bad_env();
	test_replay_from_log();

	uv_sem_destroy(&burst_sem);
	uv_mutex_destroy(&ev_mu);
	close(logfd);
	close(tmpfd);
	close(msgfd);
	close(envfd);
	CHECK_EQ(0, nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS));
	CHECK_DONE();
}
