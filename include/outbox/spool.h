/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_H
#define OUTBOX_SPOOL_H
/*
 * The durable queue on disk. Layout under dir:
 *   lock          flock()ed by the owning daemon; holds its PID
 *   tmp/          messages and envelopes being written
 *   msg/ID        message content (immutable once committed)
 *   env/ID        envelope records (envelope.h); its presence = committed
 *   log/SEQ       the intake log (spool_log.h): the durable copy of what
 *                 was committed recently, until msg/ and env/ are synced
 *   corrupt/      quarantined entries, never read again
 *
 * Commit (I1), for a message up to SPOOL_LOG_BODY_MAX: append one record
 * holding envelope and body to the current log segment, and wait for an
 * fsync of the segment that began after the append; concurrent commits
 * share it (group commit). A body whole in memory stays held (below):
 * msg/ID and env/ID are written later, if ever; one streamed to a file
 * gets both written (no fsync) before the append. Larger
 * messages: write message, fsync, rename tmp -> msg/; write envelope,
 * fsync, rename tmp -> env/; fsync msg/ and env/. Only then is the commit
 * callback called with 0. All blocking work runs on the libuv thread
 * pool; callbacks run on the loop thread. A failed fsync is never
 * retried on the same file (fsyncgate): the entry is removed and the
 * callback gets the error.
 *
 * Ownership: a spool_tx is owned by the caller from spool_tx_begin until it
 * passes it to spool_tx_commit or spool_tx_abort; after that the spool owns
 * and frees it. Callbacks are never called synchronously from the function
 * that took them.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/buf.h"
#include "outbox/envelope.h"

struct spool;
struct spool_tx;

typedef void (*spool_cb)(void *arg, int status);

/*
 * Create the layout if needed and take the lock. Fails with a message in
 * err: "spool /x is locked by PID 123", "cannot create /x/tmp: ...".
 */
int spool_open(uv_loop_t *loop, const char *dir, struct spool **out,
	       char *err, size_t errlen);
/* Release the lock and free. No operation may be pending (panics if one is:
 * run the loop until spool_pending() is 0 first). */
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);
/* Call about once a second (loop thread): an intake-log segment idle
 * since the last call is sealed and retired (spool_log.h). true when it
 * sealed one: intake just went quiet. */
bool spool_tick(struct spool *sp);
/* Operations in flight on the thread pool. */
unsigned spool_pending(const struct spool *sp);

/* Intake: a new queue id. The file is created by the first write or the
 * commit, on the thread pool, never on the loop thread. 0 or -ENOMEM. */
int spool_tx_begin(struct spool *sp, struct spool_tx **out);
/* Inside a write or commit callback with a failure: true if the message
 * file could not even be created (read-only or full spool), which the
 * caller reports once per interval rather than once per message. */
bool spool_tx_create_failed(const struct spool_tx *tx);
const char *spool_tx_id(const struct spool_tx *tx);
/*
 * Append data (copied) asynchronously. One write at a time per tx:
 * -EBUSY while a write is pending. After a failed write every later write
 * fails synchronously with the same error (the commit then reports it).
 */
int spool_tx_write(struct spool_tx *tx, const char *data, size_t len,
		   spool_cb cb, void *arg);
/*
 * Keep data (copied) in memory for the commit instead of writing it: a
 * message that fits in the intake log is then written once, by the
 * commit. 0, or -E2BIG when it would not fit (the message would pass
 * SPOOL_LOG_BODY_MAX, all sessions together hold SPOOL_HOLD_TOTAL, or a
 * write already went to the file): then use spool_tx_write, which also
 * writes out what was held. Synchronous, no callback. -EBUSY while a
 * write is pending.
 */
#define SPOOL_HOLD_TOTAL (16u * 1024u * 1024u)
int spool_tx_hold(struct spool_tx *tx, const char *data, size_t len);
/* spool_tx_hold of b's bytes, which leave b (b is empty on 0): the
 * first ones without a copy, b's storage becoming the held body's. */
int spool_tx_hold_buf(struct spool_tx *tx, struct buf *b);
/*
 * Make it durable with env (copied; its id, msg_size and msg_crc are set
 * from the tx). On failure (ENOSPC, EIO) nothing of the entry is left.
 * The spool frees tx after calling cb. A synchronous failure (-EBUSY with
 * a write pending; -EINVAL/-ENOBUFS/-ENOMEM if env cannot be encoded, e.g.
 * no recipient, NULL sender, a control byte in an address) leaves tx with
 * the caller, who should spool_tx_abort it.
 */
int spool_tx_commit(struct spool_tx *tx, const struct envelope *env,
		    spool_cb cb, void *arg);
/*
 * spool_tx_write(data) then spool_tx_commit(env) in one thread-pool round
 * trip, for the last bytes of a message (the whole body of a small one).
 * data is copied. Same contract as spool_tx_commit; a synchronous failure
 * leaves tx as it was, data not appended.
 */
int spool_tx_commit_last(struct spool_tx *tx, const char *data, size_t len,
			 const struct envelope *env, spool_cb cb, void *arg);
/* spool_tx_commit_last of b's bytes, which leave b on 0: when nothing
 * was held they are not copied, b's storage goes with the commit. On a
 * synchronous failure b is as it was. */
int spool_tx_commit_last_buf(struct spool_tx *tx, struct buf *b,
			     const struct envelope *env, spool_cb cb,
			     void *arg);
/* The body's size and CRC-32 as the committed envelope has them (the
 * spool computes them as it takes the bytes): valid once a commit call
 * has returned 0, until its callback returns. */
void spool_tx_sum(const struct spool_tx *tx, uint64_t *size, uint32_t *crc);
/*
 * Throw it away: unlink and free (waits internally for a pending write,
 * whose callback is then NOT called). Not allowed after spool_tx_commit.
 */
void spool_tx_abort(struct spool_tx *tx);

/*
 * A message committed through the intake log whose body was whole in
 * memory is held: its record is its only copy on disk and msg/ID and
 * env/ID are written only when needed (an update, its log segment's
 * retirement, spool_close). Its body while held, with a reference for
 * the caller (spool_held_put), or NULL: read msg/ID (spool_msg_open)
 * then. The bytes are immutable and stay valid until the put. Loop
 * thread. spool_msg_open works for held messages too (a memfd copy).
 */
struct spool_held;
struct spool_held *spool_held_get(struct spool *sp, const char *id,
				  const char **body, size_t *len);
void spool_held_put(struct spool_held *h); /* NULL is a no-op */

/*
 * Start-up recovery, synchronous (called before the listener opens):
 * removes leftovers in tmp/ and msg/ files without an envelope, moves
 * anything unverifiable (bad envelope, missing or short message, symlink,
 * FIFO, wrong owner) to corrupt/ with one log line each, and calls each()
 * for every good envelope. env is heap-allocated and owned by each(),
 * which must envelope_free(env) and free(env) when done. each may be NULL.
 * Returns the number of good entries or a negative errno. Built on the
 * two phases below, run inline.
 */
typedef void (*spool_each_fn)(void *arg, struct envelope *env);
int spool_recover(struct spool *sp, spool_each_fn each, void *arg);

/*
 * The same recovery in two phases, so a large queue (100,000 messages)
 * does not delay accepting mail and old mail starts moving at once.
 *
 * spool_recover_begin: synchronous and fast, call it BEFORE the listener
 * opens. Clears tmp/, snapshots the names in env/ and msg/ (readdir only,
 * no file is read), deletes msg/ files without an envelope in the
 * snapshot, quarantines names that are not queue ids or not regular files
 * (by directory entry type). 0 and *out, or a negative errno.
 *
 * spool_recover_run: load the snapshot in batches of `batch` envelopes
 * (0 = 500), oldest id first, one thread-pool work item at a time (counted
 * by spool_pending). Every envelope gets the full checks of spool_recover
 * (corrupt entries are quarantined with one log line each); each() is
 * called on the loop thread for every good one (env owned by each, as
 * above), never from inside spool_recover_run, then done(arg, found) once
 * with the number of good entries. The scan is freed just before done() is called: forget the
 * pointer there. Mail committed after spool_recover_begin is not in the
 * snapshot and is never reported. -EBUSY if already running, -ENOMEM;
 * on a synchronous failure the scan stays with the caller (cancel it).
 *
 * spool_recover_cancel: for shutdown, or to drop a scan that was never
 * run. No each()/done() call happens after it returns (it may be called
 * from inside each()). Memory is freed once the work item in flight ends;
 * spool_pending() stays non-zero until then. Not allowed after done().
 */
struct spool_scan;
int spool_recover_begin(struct spool *sp, struct spool_scan **out);
/* Envelopes in the snapshot still to be loaded. */
size_t spool_scan_left(const struct spool_scan *scan);
int spool_recover_run(struct spool_scan *scan, size_t batch, spool_each_fn each,
		      void (*done)(void *arg, int found), void *arg);
void spool_recover_cancel(struct spool_scan *scan);

/*
 * Rewrite the envelope atomically (tmp, fsync, rename, dir fsync). env is
 * encoded before return (so the caller may change it at once). On failure
 * the previous envelope stays intact. -EINVAL synchronously if env cannot
 * be encoded. Do not update an entry that is being removed.
 */
int spool_env_update(struct spool *sp, const struct envelope *env, spool_cb cb,
		     void *arg);
/* Remove a finished message: env/ID first, then msg/ID, then a 'D' log
 * record (not waited for: a crash right after may deliver it again, as
 * with Postfix's unlink, never lose it). cb gets -ENOENT if there was no
 * envelope (the message is still removed). */
int spool_remove(struct spool *sp, const char *id, spool_cb cb, void *arg);
/*
 * Move an entry to corrupt/ as ID.env and ID.msg (e.g. message file fails
 * verification at delivery) and log "ID: quarantined to corrupt/: why".
 * Synchronous (two renames on the loop thread; rare; a held message's
 * files are written first, there too). 0, -ENOENT if neither file
 * exists, -EBUSY if a held message's files are being written, -errno.
 */
int spool_quarantine(struct spool *sp, const char *id, const char *why);
/*
 * Read up to max bytes from the start of fd (retrying short reads and
 * EINTR): the bounded way to look at a message's header section. Returns
 * the bytes read (stops early at end of file). Safe on any thread.
 */
size_t spool_read_head(int fd, char *buf, size_t max);
/* Write all of p (retrying short writes and EINTR). 0 or -errno. Any thread. */
int spool_write_all(int fd, const char *p, size_t n);
/* Open msg/ID for reading (O_RDONLY|O_NOFOLLOW|O_NONBLOCK, regular file
 * check). fd or -errno; its size in *size unless size is NULL. */
int spool_msg_open(struct spool *sp, const char *id, uint64_t *size);

#endif
