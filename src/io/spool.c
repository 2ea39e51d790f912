/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The durable queue (spool.h). All paths are resolved relative to
 *	directory descriptors held open for tmp/, msg/, env/ and corrupt/, so
 *	a rename of the spool or a symlink planted in it cannot redirect us.
 *
 *	Every blocking step (write, fsync, rename, unlink) runs on the libuv
 *	thread pool; the loop thread only allocates, encodes and calls back.
 *	A message up to SPOOL_LOG_BODY_MAX commits through the intake log
 *	(spool_intake.c, spool_log.c): its files are written without fsync
 *	and one log record, fsynced together with every other commit of the
 *	same batch, is what makes the 250 true. A larger message commits file
 *	by file, here: fsync the message, rename it into msg/, fsync msg/,
 *	write and fsync the envelope, rename it into env/, fsync env/ (the
 *	directory fsyncs shared by concurrent commits, dir_sync.h). Syncing
 *	msg/ before the envelope appears means a crash can never leave an
 *	envelope whose message is missing. A failed step is never retried
 *	(fsyncgate): everything the commit created is unlinked and the
 *	callback gets the errno. Removals take both files out of msg/ and
 *	env/ (into spare/ for the next commit to reuse, spool_spare.c) and
 *	append a 'D' log record, in batches (spool_batch.c).
 *
 *	Ownership: a spool_tx belongs to its caller until spool_tx_commit or
 *	spool_tx_abort; after that to the spool, which frees it when its last
 *	work item completes. sp->pending counts work items in flight, and
 *	spool_close refuses (panics) while any remain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/crc32.h"
#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/str.h"
#include "spool_log_priv.h"
#include "spool_priv.h"


static const char *const spool_sub_names[SPOOL_NSUB] = {
	[SPOOL_TMP] = "tmp",
	[SPOOL_MSG] = "msg",
	[SPOOL_ENV] = "env",
	[SPOOL_CORRUPT] = "corrupt",
	[SPOOL_LOG] = "log",
	[SPOOL_SPARE] = "spare",
};

static void spool_removals_run(struct spool *sp, struct spool_link *run);
static void spool_removals_report(struct spool *sp, struct spool_link *item);

/* ------------------------------------------------------------------ */
/* Thread-pool helpers: no logging, no loop access                    */
/* ------------------------------------------------------------------ */

int
spool_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
spool_pread_all(int fd, char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int
spool_fsync_dir(int dfd)
{
	return fsync(dfd) == 0 ? 0 : -errno;
}

/* close() can report a deferred write error (NFS); it counts as failure. */
int
spool_close_fd(int *fd)
{
	int rc = close(*fd) == 0 ? 0 : -errno;
	*fd = -1;
	return rc == -EINTR ? 0 : rc;
}

/*
 * Write a whole new file dfd/name, and fsync it if sync (a logged commit
 * does not: its log record is the durable copy). On failure the file is
 * unlinked and the step that failed is stored in *step.
 */
int
spool_write_file(struct spool *sp, int dfd, const char *name,
		 const struct buf *b, bool sync, const char **step)
{
	int fd = spool_spare_create(sp, dfd, name);
	if (fd < 0) {
		*step = "create envelope";
		return fd;
	}
	int rc = spool_write_all(fd, b->data, b->len);
	*step = "write envelope";
	if (rc == 0 && sync) {
		rc = fsync(fd) == 0 ? 0 : -errno;
		*step = "fsync envelope";
	}
	int crc = spool_close_fd(&fd);
	if (rc == 0 && crc != 0) {
		rc = crc;
		*step = "close envelope";
	}
	if (rc != 0)
		unlinkat(dfd, name, 0);
	return rc;
}

int
spool_install_env(struct spool *sp, const char *tmpname, const char *id,
		  const struct buf *env, bool sync, unsigned *mark,
		  const char **step)
{
	int rc = spool_write_file(sp, sp->sub[SPOOL_TMP], tmpname, env, sync,
				  step);
	if (rc != 0)
		return rc;
	*step = "rename envelope";
	if (mark != NULL)
		*mark = dir_sync_mark(&sp->dsync[SPOOL_ENV]);
	rc = renameat(sp->sub[SPOOL_TMP], tmpname, sp->sub[SPOOL_ENV], id) == 0
		     ? 0 : -errno;
	if (rc != 0)
		unlinkat(sp->sub[SPOOL_TMP], tmpname, 0);
	return rc;
}

void
spool_log_failure(const char *id, const char *what, const char *step, int err)
{
	log_warn("%s: spool %s failed at %s: %s", id, what,
		 step != NULL ? step : "?", strerror(-err));
}

/* ------------------------------------------------------------------ */
/* Open, lock, close                                                  */
/* ------------------------------------------------------------------ */

static void
spool_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
spool_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The PID recorded by the current lock owner, or 0 if unreadable. */
static long
spool_lock_owner(int fd)
{
	char text[32];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return 0;
	size_t k = 0;
	while (k < (size_t)n && text[k] >= '0' && text[k] <= '9')
		k++;
	uint64_t pid;
	if (str_nto_u64(text, k, 1, INT32_MAX, &pid) != 0)
		return 0;
	return (long)pid;
}

static int
spool_lock(struct spool *sp, char *err, size_t errlen)
{
	sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW |
						 O_CLOEXEC, 0640);
	if (sp->lockfd < 0) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot open %s/lock: %s", sp->dir,
			      strerror(-rc));
		return rc;
	}
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
		int rc = -errno;
		long pid = rc == -EWOULDBLOCK ? spool_lock_owner(sp->lockfd) : 0;
		if (pid > 0)
			spool_set_err(err, errlen,
				      "spool %s is locked by PID %ld (another outboxd is running)",
				      sp->dir, pid);
		else if (rc == -EWOULDBLOCK)
			spool_set_err(err, errlen,
				      "spool %s is locked by another process",
				      sp->dir);
		else
			spool_set_err(err, errlen, "cannot lock %s/lock: %s",
				      sp->dir, strerror(-rc));
		return rc;
	}
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(sp->lockfd, 0) != 0 ||
	    pwrite(sp->lockfd, text, (size_t)n, 0) != n) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot write %s/lock: %s", sp->dir,
			      strerror(-rc));
		return rc;
	}
	return 0;
}

static int
spool_open_sub(struct spool *sp, enum spool_sub s, char *err, size_t errlen)
{
	const char *name = spool_sub_names[s];
	if (mkdirat(sp->dirfd, name, 0700) != 0 && errno != EEXIST) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot create %s/%s: %s", sp->dir,
			      name, strerror(-rc));
		return rc;
	}
	sp->sub[s] = openat(sp->dirfd, name, O_RDONLY | O_DIRECTORY |
					       O_NOFOLLOW | O_CLOEXEC);
	if (sp->sub[s] < 0) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot open %s/%s: %s", sp->dir,
			      name, strerror(-rc));
		return rc;
	}
	return 0;
}

static void
spool_free(struct spool *sp)
{
	if (sp->held.bucket != NULL)
		spool_held_close(sp);
	spool_log_free(sp->log);
	if (sp->spares_ready)
		spool_spares_destroy(&sp->spares);
	for (int s = 0; s < SPOOL_NSUB; s++) {
		if (sp->sub[s] >= 0)
			close(sp->sub[s]);
		if (sp->dsync_ready)
			dir_sync_destroy(&sp->dsync[s]);
	}
	/* Closing the descriptor releases the flock. */
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	free(sp->dir);
	free(sp);
}

static int
spool_open_dir(struct spool *sp, char *err, size_t errlen)
{
	if (mkdir(sp->dir, 0750) != 0 && errno != EEXIST) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot create %s: %s", sp->dir,
			      strerror(-rc));
		return rc;
	}
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		int rc = -errno;
		spool_set_err(err, errlen, "cannot open %s: %s", sp->dir,
			      strerror(-rc));
		return rc;
	}
	return 0;
}

int
spool_open(uv_loop_t *loop, const char *dir, struct spool **out, char *err,
	   size_t errlen)
{
	*out = NULL;
	struct spool *sp = calloc(1, sizeof(*sp));
	if (sp == NULL || (sp->dir = str_ndup(dir, strlen(dir))) == NULL) {
		free(sp);
		spool_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sp->loop = loop;
	sp->dirfd = sp->lockfd = -1;
	for (int s = 0; s < SPOOL_NSUB; s++)
		sp->sub[s] = -1;
	/* Lock before touching the layout, so two daemons never race on it. */
	int rc = spool_open_dir(sp, err, errlen);
	if (rc == 0)
		rc = spool_lock(sp, err, errlen);
	for (int s = 0; s < SPOOL_NSUB && rc == 0; s++)
		rc = spool_open_sub(sp, (enum spool_sub)s, err, errlen);
	int s = 0;
	for (; s < SPOOL_NSUB && rc == 0; s++)
		if (dir_sync_init(&sp->dsync[s], NULL) != 0)
			break;
	if (rc == 0 && s < SPOOL_NSUB) {
		while (s-- > 0)
			dir_sync_destroy(&sp->dsync[s]);
		spool_set_err(err, errlen, "cannot set up directory syncs");
		rc = -ENOMEM;
	}
	sp->dsync_ready = rc == 0;
	if (rc == 0 && spool_spares_init(&sp->spares) != 0) {
		spool_set_err(err, errlen, "cannot set up spare files");
		rc = -ENOMEM;
	}
	sp->spares_ready = rc == 0;
	if (rc == 0) {
		spool_intake_init(sp);
		spool_batch_init(&sp->removals, sp, 1024, spool_removals_run,
				 spool_removals_report);
	}
	if (rc == 0 && (rc = spool_log_new(sp->sub[SPOOL_LOG], &sp->log)) != 0)
		spool_set_err(err, errlen, "cannot open %s/log: %s", sp->dir,
			      strerror(-rc));
	if (rc == 0 && (rc = spool_held_init(sp)) != 0)
		spool_set_err(err, errlen, "out of memory");
	if (rc != 0) {
		spool_free(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->pending != 0)
		OB_PANIC("spool_close with %u operations pending", sp->pending);
	spool_free(sp);
}

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}

unsigned
spool_pending(const struct spool *sp)
{
	return sp->pending;
}

int
spool_queue(struct spool *sp, uv_work_t *work, uv_work_cb fn,
	    uv_after_work_cb done)
{
	int rc = uv_queue_work(sp->loop, work, fn, done);
	if (rc == 0)
		sp->pending++;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Retiring intake-log segments                                       */
/* ------------------------------------------------------------------ */


static void
spool_retire_work(uv_work_t *w)
{
	struct spool *sp = w->data;
	sp->retire_status = spool_log_retire(sp->log, sp->retire_seq,
					     sp->sub[SPOOL_MSG],
					     sp->sub[SPOOL_ENV]);
}

static void
spool_retire_done(uv_work_t *w, int status)
{
	struct spool *sp = w->data;
	sp->pending--;
	if (sp->retire_status != 0)
		log_warn("spool: cannot retire log/%016llx: %s; it and later "
			 "segments stay until the next start",
			 (unsigned long long)sp->retire_seq,
			 strerror(-sp->retire_status));
	spool_log_retired(sp->log, sp->retire_seq, sp->retire_status);
	sp->retire_seq = 0;
	spool_retire_kick(sp);
}

/*
 * A retire waits for the delivery of its segment's held messages: most
 * are delivered in milliseconds, while a segment of 100 KiB messages
 * fills in 40, and a retire as soon as one was sealed wrote files for
 * most of its messages (every one a spill, at 100 KiB c=10). Their
 * files are written instead when it has waited a whole tick (a message
 * stuck in a slow delivery, or deferred) or when more than
 * SPOOL_RETIRE_WAIT segments are sealed (32 MiB of log on disk; the
 * held bodies' own budget is the same size).
 */
static void
spool_retire_start(struct spool *sp, bool tick)
{
	if (sp->log == NULL || sp->retire_seq != 0)
		return;
	unsigned sealed;
	uint64_t next = spool_log_retire_peek(sp->log, &sealed);
	bool spill = (tick && next != 0 && next == sp->retire_waits) ||
		     sealed > SPOOL_RETIRE_WAIT;
	if (tick)
		sp->retire_waits = next;
	/* Past the wait, its held messages get their files (that kicks). */
	if (next == 0 || spool_held_block_retire(sp, next, spill))
		return;
	uint64_t seq = spool_log_retire_take(sp->log);
	if (seq == 0)
		return;
	sp->retire_seq = seq;
	sp->retire_work.data = sp;
	if (spool_queue(sp, &sp->retire_work, spool_retire_work,
			spool_retire_done) != 0) {
		spool_log_retired(sp->log, seq, -EAGAIN);
		sp->retire_seq = 0;
	}
}

/* Loop thread, after each commit or removal: retire a sealed segment
 * nobody waits on any more, one at a time. */
void
spool_retire_kick(struct spool *sp)
{
	spool_retire_start(sp, false);
}

bool
spool_tick(struct spool *sp)
{
	if (sp->log == NULL)
		return false;
	/* A failed write of held messages is tried again once a tick. */
	sp->held.blocked = false;
	bool sealed = spool_log_seal_idle(sp->log);
	spool_retire_start(sp, true);
	return sealed;
}

/* ------------------------------------------------------------------ */
/* Intake transaction                                                 */
/* ------------------------------------------------------------------ */

void
spool_tx_free(struct spool_tx *tx)
{
	spool_held_unreserve(tx);
	spool_tx_release_held(tx);
	buf_free(&tx->env);
	free(tx->wdata);
	free(tx);
}

void
spool_tx_release_held(struct spool_tx *tx)
{
	tx->sp->held_bytes -= tx->held.len;
	buf_free(&tx->held);
	tx->held_crc = 0;
}

/* 0 if len more bytes may be held, else -EBUSY or -E2BIG. */
static int
spool_tx_hold_check(const struct spool_tx *tx, size_t len)
{
	const struct spool *sp = tx->sp;
	if (tx->busy != TX_IDLE)
		return -EBUSY;
	if (sp->log == NULL || tx->created || tx->werr != 0 ||
	    tx->held.len + len > SPOOL_LOG_BODY_MAX ||
	    sp->held_bytes + len > SPOOL_HOLD_TOTAL)
		return -E2BIG;
	return 0;
}

/* The last len bytes of tx->held are new: count them. */
static void
spool_tx_held_grew(struct spool_tx *tx, size_t len)
{
	tx->sp->held_bytes += len;
	tx->held_crc = crc32_update(tx->held_crc,
				    tx->held.data + tx->held.len - len, len);
}

int
spool_tx_hold(struct spool_tx *tx, const char *data, size_t len)
{
	int r = spool_tx_hold_check(tx, len);
	if (r != 0)
		return r;
	if (buf_append(&tx->held, data, len) != 0)
		return -E2BIG; /* out of memory: the file it is */
	spool_tx_held_grew(tx, len);
	return 0;
}

/* Whether b's storage may move as it is: not when most of it is spare
 * room (a buffer that once carried a bigger chunk), which a held body
 * would then keep for its whole life. */
static bool
spool_buf_movable(const struct buf *b)
{
	return b->cap <= 2 * b->len + 4096;
}

int
spool_tx_hold_buf(struct spool_tx *tx, struct buf *b)
{
	if (tx->held.len > 0 || !spool_buf_movable(b)) {
		int r = spool_tx_hold(tx, b->data, b->len);
		if (r == 0)
			buf_reset(b);
		return r;
	}
	/* The first bytes move over whole: b's storage becomes the held
	 * body, and later ones append to it (its room is a chunk's). */
	size_t len = b->len;
	int r = spool_tx_hold_check(tx, len);
	if (r == 0 && buf_swap(&tx->held, b) != 0)
		r = -E2BIG;
	if (r != 0)
		return r;
	spool_tx_held_grew(tx, len);
	return 0;
}

int
spool_tx_begin(struct spool *sp, struct spool_tx **out)
{
	*out = NULL;
	struct spool_tx *tx = calloc(1, sizeof(*tx));
	if (tx == NULL)
		return -ENOMEM;
	tx->sp = sp;
	tx->fd = -1;
	buf_init(&tx->env, SPOOL_ENV_MAX);
	/* Room for the last bytes a commit adds to what was held. */
	buf_init(&tx->held, SPOOL_LOG_BODY_MAX + 1024u * 1024u);
	/* No file yet: the pool thread creates it on first use, so the
	 * loop thread never waits for an inode allocation. */
	id_new(tx->id);
	snprintf(tx->tmpname, sizeof(tx->tmpname), "%s.msg", tx->id);
	*out = tx;
	return 0;
}

/*
 * Thread pool: create the message file on first use, dfd/name (tmp/ID.msg,
 * or msg/ID directly for a logged commit, which needs no rename). Ids
 * are unique by construction; O_EXCL makes sure of it.
 */
int
spool_tx_create(struct spool_tx *tx, int dfd, const char *name)
{
	if (tx->created)
		return 0;
	tx->fd = spool_spare_create(tx->sp, dfd, name);
	if (tx->fd < 0) {
		int rc = tx->fd;
		tx->fd = -1;
		tx->create_failed = true;
		tx->step = "create message";
		return rc;
	}
	tx->created = true;
	return 0;
}

bool
spool_tx_create_failed(const struct spool_tx *tx)
{
	return tx->create_failed;
}

const char *
spool_tx_id(const struct spool_tx *tx)
{
	return tx->id;
}

/* Thread pool: close and unlink the temporary file of a dropped tx. */
static void
spool_tx_cleanup_work(uv_work_t *w)
{
	struct spool_tx *tx = w->data;
	if (tx->fd >= 0)
		spool_close_fd(&tx->fd);
	unlinkat(tx->sp->sub[SPOOL_TMP], tx->tmpname, 0);
}

static void
spool_tx_cleanup_done(uv_work_t *w, int status)
{
	struct spool_tx *tx = w->data;
	tx->sp->pending--;
	spool_tx_free(tx);
}

static void
spool_tx_cleanup(struct spool_tx *tx)
{
	if (!tx->created) {
		spool_tx_free(tx);
		return;
	}
	tx->busy = TX_CLEANING;
	tx->work.data = tx;
	if (spool_queue(tx->sp, &tx->work, spool_tx_cleanup_work,
			spool_tx_cleanup_done) != 0) {
		/* Cannot happen with valid callbacks; do it inline rather than leak. */
		spool_tx_cleanup_work(&tx->work);
		spool_tx_free(tx);
	}
}

static void
spool_tx_write_work(uv_work_t *w)
{
	struct spool_tx *tx = w->data;
	tx->status = spool_tx_create(tx, tx->sp->sub[SPOOL_TMP], tx->tmpname);
	if (tx->status == 0)
		tx->status = spool_write_all(tx->fd, tx->wdata, tx->wlen);
	if (tx->status == 0) {
		tx->crc = crc32_update(tx->crc, tx->wdata, tx->wlen);
		tx->size += tx->wlen;
	} else {
		tx->werr = tx->status;
	}
}

static void
spool_tx_write_done(uv_work_t *w, int status)
{
	struct spool_tx *tx = w->data;
	tx->sp->pending--;
	free(tx->wdata);
	tx->wdata = NULL;
	tx->busy = TX_IDLE;
	/* An aborted tx has no owner left to call back. */
	if (tx->aborted) {
		spool_tx_cleanup(tx);
		return;
	}
	if (tx->status != 0 && !tx->create_failed)
		spool_log_failure(tx->id, "write", "write message", tx->status);
	tx->cb(tx->arg, tx->status);
}

int
spool_tx_write(struct spool_tx *tx, const char *data, size_t len, spool_cb cb,
	       void *arg)
{
	if (tx->busy != TX_IDLE)
		return -EBUSY;
	if (tx->werr != 0)
		return tx->werr;
	/* What was held goes first: the file gets the body in order. */
	size_t held = tx->held.len;
	tx->wdata = malloc(held + len > 0 ? held + len : 1);
	if (tx->wdata == NULL)
		return -ENOMEM;
	if (held > 0)
		memcpy(tx->wdata, tx->held.data, held);
	memcpy(tx->wdata + held, data, len);
	tx->wlen = held + len;
	spool_tx_release_held(tx);
	tx->cb = cb;
	tx->arg = arg;
	tx->work.data = tx;
	int rc = spool_queue(tx->sp, &tx->work, spool_tx_write_work,
			     spool_tx_write_done);
	if (rc != 0) {
		free(tx->wdata);
		tx->wdata = NULL;
		return rc;
	}
	tx->busy = TX_WRITING;
	return 0;
}

/* Thread pool: make the message durable in msg/. */
static int
spool_commit_msg(struct spool_tx *tx)
{
	struct spool *sp = tx->sp;
	if (tx->werr == 0)
		tx->werr = spool_tx_create(tx, sp->sub[SPOOL_TMP], tx->tmpname);
	if (tx->create_failed)
		return tx->werr;
	if (tx->werr == 0 && tx->held.len > 0)
		tx->werr = spool_write_all(tx->fd, tx->held.data, tx->held.len);
	if (tx->werr == 0 && tx->wdata != NULL)
		tx->werr = spool_write_all(tx->fd, tx->wdata, tx->wlen);
	if (tx->werr != 0) {
		tx->step = "write message";
		return tx->werr;
	}
	tx->step = "fsync message";
	if (fsync(tx->fd) != 0)
		return -errno;
	tx->step = "close message";
	int rc = spool_close_fd(&tx->fd);
	if (rc != 0)
		return rc;
	tx->step = "rename message";
	tx->mark[SPOOL_MSG] = dir_sync_mark(&sp->dsync[SPOOL_MSG]);
	if (renameat(sp->sub[SPOOL_TMP], tx->tmpname, sp->sub[SPOOL_MSG],
		     tx->id) != 0)
		return -errno;
	return 0;
}

int
spool_tx_install_env(struct spool_tx *tx, bool sync)
{
	struct spool *sp = tx->sp;
	char envtmp[SPOOL_TMP_NAME_MAX];
	snprintf(envtmp, sizeof(envtmp), "%s.env", tx->id);
	int rc = spool_install_env(sp, envtmp, tx->id, &tx->env, sync,
				   &tx->mark[SPOOL_ENV], &tx->step);
	tx->env_in = rc == 0;
	return rc;
}

void
spool_tx_undo(struct spool_tx *tx)
{
	struct spool *sp = tx->sp;
	if (tx->fd >= 0)
		spool_close_fd(&tx->fd);
	unlinkat(sp->sub[SPOOL_TMP], tx->tmpname, 0);
	if (tx->env_in)
		unlinkat(sp->sub[SPOOL_ENV], tx->id, 0);
	if (tx->msg_in)
		unlinkat(sp->sub[SPOOL_MSG], tx->id, 0);
}

/* Thread pool: the per-file commit, for messages too big for the log. */
static void
spool_commit_files(struct spool_tx *tx)
{
	struct spool *sp = tx->sp;
	int rc = spool_commit_msg(tx);
	if (rc == 0) {
		tx->msg_in = true;
		tx->step = "fsync msg/";
		rc = dir_sync(&sp->dsync[SPOOL_MSG], sp->sub[SPOOL_MSG],
			      tx->mark[SPOOL_MSG]);
	}
	if (rc == 0)
		rc = spool_tx_install_env(tx, true);
	if (rc == 0) {
		tx->step = "fsync env/";
		rc = dir_sync(&sp->dsync[SPOOL_ENV], sp->sub[SPOOL_ENV],
			      tx->mark[SPOOL_ENV]);
	}
	tx->status = rc;
	/* Leave nothing of a failed entry; the client will get 4xx. */
	if (rc != 0)
		spool_tx_undo(tx);
}

/* Thread pool: a commit the intake log does not take (too big, or a
 * write already failed). */
static void
spool_tx_commit_work(uv_work_t *w)
{
	spool_commit_files(w->data);
}

static void
spool_tx_commit_done(uv_work_t *w, int status)
{
	struct spool_tx *tx = w->data;
	tx->sp->pending--;
	/* The caller reports a file that could not be created at all
	 * (spool_tx_create_failed), at most once per interval. */
	if (tx->status != 0 && !tx->create_failed)
		spool_log_failure(tx->id, "commit", tx->step, tx->status);
	struct spool *sp = tx->sp;
	tx->cb(tx->arg, tx->status);
	spool_tx_free(tx);
	spool_retire_kick(sp);
}

/*
 * Synchronous failures (-EBUSY while a write is pending, -EINVAL or
 * -ENOBUFS from encoding env) leave tx with the caller, who may retry or
 * spool_tx_abort it. A failed earlier write is reported through cb.
 * size and crc describe the file once wdata (if any) is written.
 */
static int
spool_tx_queue_commit(struct spool_tx *tx, const struct envelope *env,
		      uint64_t size, uint32_t crc, spool_cb cb, void *arg)
{
	struct envelope e;
	int rc = envelope_copy(&e, env);
	if (rc != 0)
		return rc;
	memcpy(e.id, tx->id, sizeof(e.id));
	e.msg_size = size;
	e.msg_crc = crc;
	tx->body_size = size;
	tx->body_crc = crc;
	buf_reset(&tx->env);
	rc = envelope_encode(&e, &tx->env);
	envelope_free(&e);
	if (rc != 0)
		return rc;
	tx->cb = cb;
	tx->arg = arg;
	tx->work.data = tx;
	/* Up to SPOOL_LOG_BODY_MAX: the next intake batch. */
	if (spool_intake_batchable(tx)) {
		spool_held_reserve(tx);
		spool_intake_add(tx);
		tx->busy = TX_COMMITTING;
		return 0;
	}
	rc = spool_queue(tx->sp, &tx->work, spool_tx_commit_work,
			 spool_tx_commit_done);
	if (rc == 0)
		tx->busy = TX_COMMITTING;
	return rc;
}

int
spool_tx_commit(struct spool_tx *tx, const struct envelope *env, spool_cb cb,
		void *arg)
{
	if (tx->busy != TX_IDLE)
		return -EBUSY;
	/* Held bytes are the whole body: nothing went to a file then. */
	if (tx->held.len > 0)
		return spool_tx_queue_commit(tx, env, tx->held.len,
					     tx->held_crc, cb, arg);
	return spool_tx_queue_commit(tx, env, tx->size, tx->crc, cb, arg);
}

/*
 * data (len bytes, malloc'd) is written first by the pool thread, and the
 * envelope already counts it. On 0 the tx owns data; on failure the
 * caller still does, and tx is as it was.
 */
static int
spool_tx_commit_wdata(struct spool_tx *tx, char *data, size_t len,
		      const struct envelope *env, spool_cb cb, void *arg)
{
	tx->wdata = data;
	tx->wlen = len;
	int rc = spool_tx_queue_commit(tx, env, tx->size + len,
				       crc32_update(tx->crc, data, len), cb,
				       arg);
	if (rc != 0) {
		tx->wdata = NULL;
		tx->wlen = 0;
	}
	return rc;
}

int
spool_tx_commit_last(struct spool_tx *tx, const char *data, size_t len,
		     const struct envelope *env, spool_cb cb, void *arg)
{
	if (tx->busy != TX_IDLE)
		return -EBUSY;
	if (len == 0 || tx->werr != 0)
		return spool_tx_commit(tx, env, cb, arg);
	if (tx->held.len > 0) {
		/* The rest joins what is held; the commit writes it all. */
		if (buf_append(&tx->held, data, len) != 0)
			return -ENOMEM;
		tx->sp->held_bytes += len;
		uint32_t crc = tx->held_crc;
		tx->held_crc = crc32_update(tx->held_crc, data, len);
		int rc = spool_tx_commit(tx, env, cb, arg);
		if (rc != 0) {
			/* As it was: the data not appended. */
			tx->held.len -= len;
			tx->sp->held_bytes -= len;
			tx->held_crc = crc;
		}
		return rc;
	}
	char *copy = malloc(len);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, data, len);
	int rc = spool_tx_commit_wdata(tx, copy, len, env, cb, arg);
	if (rc != 0)
		free(copy);
	return rc;
}

int
spool_tx_commit_last_buf(struct spool_tx *tx, struct buf *b,
			 const struct envelope *env, spool_cb cb, void *arg)
{
	if (tx->busy != TX_IDLE)
		return -EBUSY;
	if (b->len == 0 || tx->werr != 0 || tx->held.len > 0 ||
	    !spool_buf_movable(b)) {
		int r = spool_tx_commit_last(tx, b->data, b->len, env, cb, arg);
		if (r == 0)
			buf_reset(b);
		return r;
	}
	/* Nothing held: b's storage itself goes to the pool, no copy. */
	struct buf was = *b;
	char *data = buf_take(b);
	int rc = spool_tx_commit_wdata(tx, data, was.len, env, cb, arg);
	if (rc != 0)
		*b = was;
	return rc;
}

void
spool_tx_sum(const struct spool_tx *tx, uint64_t *size, uint32_t *crc)
{
	*size = tx->body_size;
	*crc = tx->body_crc;
}

void
spool_tx_abort(struct spool_tx *tx)
{
	if (tx == NULL)
		return;
	if (tx->busy == TX_COMMITTING || tx->busy == TX_CLEANING || tx->aborted)
		OB_PANIC("%s: spool_tx_abort on a tx the spool owns", tx->id);
	tx->aborted = true;
	if (tx->busy == TX_WRITING)
		return; /* spool_tx_write_done cleans up */
	spool_tx_cleanup(tx);
}

/* ------------------------------------------------------------------ */
/* Envelope update and removal                                        */
/* ------------------------------------------------------------------ */

static void
spool_op_free(struct spool_op *op)
{
	spool_held_unref(op->held);
	buf_free(&op->env);
	free(op);
}

void
spool_op_report(struct spool_op *op)
{
	if (op->status != 0)
		spool_log_failure(op->id, op->what, op->step, op->status);
	op->cb(op->arg, op->status);
	spool_op_free(op);
}

static void
spool_op_done(uv_work_t *w, int status)
{
	(void)status;
	struct spool_op *op = w->data;
	struct spool *sp = op->sp;
	sp->pending--;
	/* An update of a held message wrote its files (or failed to). */
	if (op->held != NULL && !op->remove)
		spool_held_written(sp, op->held, op->status);
	spool_op_report(op);
	spool_retire_kick(sp);
}

static struct spool_op *
spool_op_new(struct spool *sp, const char *id, const char *what, spool_cb cb,
	     void *arg)
{
	struct spool_op *op = calloc(1, sizeof(*op));
	if (op == NULL)
		return NULL;
	op->sp = sp;
	op->work.data = op;
	memcpy(op->id, id, ID_SIZE);
	op->what = what;
	op->cb = cb;
	op->arg = arg;
	buf_init(&op->env, SPOOL_ENV_MAX);
	return op;
}

static void
spool_update_work(uv_work_t *w)
{
	struct spool_op *op = w->data;
	struct spool *sp = op->sp;
	unsigned mark = dir_sync_mark(&sp->dsync[SPOOL_ENV]);
	int rc = 0;
	/* Held: its message file first, covered by its log record until
	 * the segment is retired, like any file the intake writes. */
	if (op->held != NULL)
		rc = spool_held_write(sp, op->held, false, &op->step);
	if (rc == 0)
		rc = spool_install_env(sp, op->tmpname, op->id, &op->env, true,
				       NULL, &op->step);
	if (rc == 0) {
		op->step = "fsync env/";
		rc = dir_sync(&sp->dsync[SPOOL_ENV], sp->sub[SPOOL_ENV], mark);
	}
	op->status = rc;
}

/*
 * The old envelope stays in place until the rename, so a failure at any
 * step leaves the previous, complete state (D6). The caller must not
 * update an entry it is removing at the same time.
 */
int
spool_env_update(struct spool *sp, const struct envelope *env, spool_cb cb,
		 void *arg)
{
	if (!id_valid(env->id))
		return -EINVAL;
	struct spool_op *op = spool_op_new(sp, env->id, "update", cb, arg);
	if (op == NULL)
		return -ENOMEM;
	/* Unique per update, so two updates in flight never share a file. */
	snprintf(op->tmpname, sizeof(op->tmpname), "%s.u%u", env->id,
		 sp->seq++);
	int rc = envelope_encode(env, &op->env);
	if (rc == 0)
		rc = spool_op_launch(sp, op);
	if (rc != 0)
		spool_op_free(op);
	return rc;
}

static void
spool_remove_work(uv_work_t *w)
{
	struct spool_op *op = w->data;
	struct spool *sp = op->sp;
	/* Envelope first: a crash then leaves at worst an orphan message,
	 * which recovery deletes, never an envelope without its message. */
	op->step = "unlink envelope";
	unsigned env_mark = dir_sync_mark(&sp->dsync[SPOOL_ENV]);
	unsigned msg_mark = dir_sync_mark(&sp->dsync[SPOOL_MSG]);
	int rc = unlinkat(sp->sub[SPOOL_ENV], op->id, 0) == 0 ? 0 : -errno;
	if (rc == 0) {
		op->step = "fsync env/";
		rc = dir_sync(&sp->dsync[SPOOL_ENV], sp->sub[SPOOL_ENV],
			      env_mark);
	}
	if (rc == 0 || rc == -ENOENT) {
		int mrc = unlinkat(sp->sub[SPOOL_MSG], op->id, 0) == 0 ? 0 : -errno;
		if (rc == 0 && mrc != 0)
			op->step = "unlink message";
		if (rc == 0)
			rc = mrc;
	}
	if (rc == 0) {
		op->step = "fsync msg/";
		rc = dir_sync(&sp->dsync[SPOOL_MSG], sp->sub[SPOOL_MSG],
			      msg_mark);
	}
	op->status = rc;
}

/*
 * With the intake log: recycle both (spool_spare.c), and a 'D' record
 * (not waited for) tells a replay the message is gone. Like Postfix's
 * removal of a delivered queue file, it is not flushed on its own: a
 * crash right after can at worst deliver it again, never lose mail.
 */
static void
spool_remove_logged(struct spool_op *op)
{
	struct spool *sp = op->sp;
	/* Held: never written, its 'D' record is all there is to do, unless
	 * a failed write of its files left some of them. */
	bool held = op->held != NULL;
	if (held && !op->held->files_maybe) {
		(void)spool_log_done(sp->log, op->id);
		op->status = 0;
		return;
	}
	op->step = "unlink envelope";
	int rc = spool_spare_recycle(sp, sp->sub[SPOOL_ENV], op->id);
	int mrc = spool_spare_recycle(sp, sp->sub[SPOOL_MSG], op->id);
	if (held && rc == -ENOENT)
		rc = 0;
	if (held && mrc == -ENOENT)
		mrc = 0;
	if (rc == 0 && mrc != 0) {
		op->step = "unlink message";
		rc = mrc;
	}
	(void)spool_log_done(sp->log, op->id);
	op->status = rc;
}

/* Thread pool: a batch of logged removals (spool_batch.c). */
static void
spool_removals_run(struct spool *sp, struct spool_link *run)
{
	(void)sp;
	for (struct spool_link *l = run; l != NULL; l = l->next)
		spool_remove_logged((struct spool_op *)l);
}

static void
spool_removals_report(struct spool *sp, struct spool_link *item)
{
	(void)sp;
	spool_op_report((struct spool_op *)item);
}

int
spool_remove(struct spool *sp, const char *id, spool_cb cb, void *arg)
{
	if (!id_valid(id))
		return -EINVAL;
	struct spool_op *op = spool_op_new(sp, id, "remove", cb, arg);
	if (op == NULL)
		return -ENOMEM;
	op->remove = true;
	int rc = spool_op_launch(sp, op);
	if (rc != 0)
		spool_op_free(op);
	return rc;
}

int
spool_op_launch(struct spool *sp, struct spool_op *op)
{
	struct spool_held *h = spool_held_find(sp, op->id);
	if (h != NULL && spool_held_route(sp, h, op))
		return 0;
	if (op->remove && sp->log != NULL) {
		spool_batch_add(&sp->removals, &op->link);
		return 0;
	}
	int rc = spool_queue(sp, &op->work, op->remove ? spool_remove_work
						       : spool_update_work,
			     spool_op_done);
	if (rc != 0 && op->held != NULL && !op->remove) {
		/* Not run after all: it is held as before. */
		op->held->writing = false;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Quarantine and reading                                             */
/* ------------------------------------------------------------------ */

int
spool_quarantine(struct spool *sp, const char *id, const char *why)
{
	if (!id_valid(id))
		return -EINVAL;
	/* Held: no files to move yet; they are written first. */
	struct spool_held *h = spool_held_find(sp, id);
	int rc = h != NULL ? spool_held_unhold(sp, h) : 0;
	if (rc != 0)
		return rc;
	int rc_env = spool_quarantine_name(sp, SPOOL_ENV, id, ".env");
	int rc_msg = spool_quarantine_name(sp, SPOOL_MSG, id, ".msg");
	if (rc_env == -ENOENT && rc_msg == -ENOENT)
		return -ENOENT;
	/* Or a replay would restore it from its log record. */
	if (sp->log != NULL)
		(void)spool_log_done(sp->log, id);
	char text[256];
	str_sanitize(text, sizeof(text), why, strlen(why));
	log_warn("%s: quarantined to corrupt/: %s", id, text);
	if (rc_env != 0 && rc_env != -ENOENT)
		return rc_env;
	return rc_msg == -ENOENT ? 0 : rc_msg;
}

int
spool_msg_open(struct spool *sp, const char *id, uint64_t *size)
{
	if (!id_valid(id))
		return -EINVAL;
	int fd = openat(sp->sub[SPOOL_MSG], id, O_RDONLY | O_NOFOLLOW |
							O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* Held: a copy in memory, for readers that want a file. */
		struct spool_held *h = spool_held_find(sp, id);
		if (h != NULL) {
			if (size != NULL)
				*size = h->len;
			return spool_held_memfd(h);
		}
	}
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (size != NULL)
		*size = (uint64_t)st.st_size;
	return fd;
}

size_t
spool_read_head(int fd, char *buf, size_t max)
{
	size_t n = 0;
	while (n < max) {
		ssize_t r = read(fd, buf + n, max - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	return n;
}
