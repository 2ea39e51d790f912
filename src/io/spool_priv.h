/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SPOOL_PRIV_H
#define OUTBOX_SPOOL_PRIV_H
/* Internals shared by spool.c (runtime) and spool_recover.c (start-up). */
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/buf.h"
#include "outbox/dir_sync.h"
#include "outbox/id.h"
#include "outbox/spool.h"
#include "outbox/spool_log.h"

/* Subdirectories, each held open so every operation is *at() relative. */
enum spool_sub { SPOOL_TMP, SPOOL_MSG, SPOOL_ENV, SPOOL_CORRUPT, SPOOL_LOG,
		SPOOL_SPARE, SPOOL_NSUB };

/* An envelope file larger than this is not read (recovery, D7). */
#define SPOOL_ENV_MAX (16u * 1024u * 1024u)

#define SPOOL_TMP_NAME_MAX 48

/* An item of a batch (spool_batch.c): the first member of its struct. */
struct spool_link {
	struct spool_link *next;
};

/* Recycled queue files (spool_spare.c): removed files wait in spare/,
 * emptied, for the next file the spool creates. */
#define SPOOL_SPARE_MAX 1024
struct spool_spares {
	uv_mutex_t mu;
	uint32_t next;     /* number of the next spare */
	unsigned held;     /* on the list, or being put there */
	unsigned n;        /* on the list */
	uint32_t num[SPOOL_SPARE_MAX];
};

struct spool;
/* Loop-thread list of items and the batch in flight (spool_batch.c). */
struct spool_batch {
	struct spool *sp;
	struct spool_link *head, **tail;  /* waiting for the next batch */
	struct spool_link *run;           /* the batch in flight */
	unsigned max;                     /* items per batch */
	size_t max_bytes;                 /* ...and their bytes (size_fn) */
	size_t (*size_fn)(const struct spool_link *item); /* NULL: 0 */
	bool busy;                        /* its work item is in flight */
	bool hold;                        /* reporting: start the next after */
	uv_work_t work;
	/* Pool thread: do the work of every item of run. */
	void (*run_fn)(struct spool *sp, struct spool_link *run);
	/* Loop: call the item back and free it. */
	void (*report)(struct spool *sp, struct spool_link *item);
};
/* size_fn and max_bytes may be set after init; a batch always takes at
 * least one item. */
void spool_batch_init(struct spool_batch *b, struct spool *sp, unsigned max,
		      void (*run_fn)(struct spool *sp, struct spool_link *run),
		      void (*report)(struct spool *sp,
				     struct spool_link *item));
/* Loop: queue item (counted in spool_pending until reported). */
void spool_batch_add(struct spool_batch *b, struct spool_link *item);

/*
 * A held message (spool_held.c): committed, its intake-log record its only
 * copy on disk, its body and envelope in memory; msg/ID and env/ID are
 * written only when something needs them. Loop thread, except that a
 * pool thread reads id, env and body while `writing`.
 */
struct spool_held {
	struct spool_link link;        /* in a spill batch; first member */
	struct spool_held *hnext;      /* hash chain */
	struct spool_held *prev, *next; /* held list, oldest record first */
	char id[ID_SIZE];
	uint64_t seg;                  /* the log segment of its record */
	struct buf env;                /* encoded envelope, as committed */
	char *body;                    /* owned */
	size_t len;
	unsigned refs;                 /* the table's, and each reader's */
	bool in_table;
	bool writing;                  /* its files are being written */
	bool files_maybe;              /* a failed write may have left some */
	int status;                    /* of that write */
	const char *step;              /* ...and where it failed */
	struct spool_op *after;        /* updates or removals waiting */
};

struct spool_held_table {
	struct spool_held **bucket;
	size_t nbuckets, n;
	struct spool_held *oldest, *newest;
	size_t bytes;                  /* bodies and envelopes in the table */
	bool blocked;                  /* a spill failed: none until a tick */
};

struct spool {
	uv_loop_t *loop;
	char *dir;
	int dirfd;
	int lockfd;
	int sub[SPOOL_NSUB];
	unsigned pending;   /* thread-pool work items in flight */
	/* msg/ and env/ fsyncs shared by concurrent commits (group commit) */
	struct dir_sync dsync[SPOOL_NSUB];
	bool dsync_ready;
	unsigned seq;       /* unique suffix for update temporaries */
	struct spool_log *log;  /* the intake log (spool_log.h) */
	uv_work_t retire_work;  /* retiring one sealed segment */
	uint64_t retire_seq;    /* the segment, 0 if none in flight */
	uint64_t retire_waits;  /* the one held messages kept from retiring
				 * at the last tick, 0 if none */
	int retire_status;
	size_t held_bytes;           /* all txs' held bytes (spool_tx_hold) */
	struct spool_batch intake;   /* small commits (spool_intake.c) */
	struct spool_batch removals; /* logged removals (spool.c) */
	struct spool_spares spares;  /* recycled files (spool_spare.c) */
	bool spares_ready;
	struct spool_held_table held; /* held messages (spool_held.c) */
	struct spool_batch spills;    /* their files, written (spool_held.c) */
};

enum tx_busy { TX_IDLE, TX_WRITING, TX_COMMITTING, TX_CLEANING };

/* An intake transaction (spool.h); spool.c and spool_intake.c. */
struct spool_tx {
	struct spool_link link;   /* in an intake batch; first member */
	struct spool *sp;
	uv_work_t work;
	char id[ID_SIZE];
	char tmpname[SPOOL_TMP_NAME_MAX];   /* tmp/ID.msg */
	int fd;
	uint64_t size;
	uint32_t crc;
	int werr;             /* first write error; sticky */
	bool created;         /* the message file exists (made on first use) */
	bool create_failed;   /* ...and making it failed */
	enum tx_busy busy;
	bool aborted;         /* owner let go during a write */
	char *wdata;          /* the write in flight */
	size_t wlen;
	struct buf env;       /* encoded envelope, for the commit */
	uint64_t body_size;   /* ...and the whole body's size and CRC, */
	uint32_t body_crc;    /* as in it */
	struct buf held;      /* body bytes kept in memory (spool_tx_hold) */
	uint32_t held_crc;
	spool_cb cb;
	void *arg;
	int status;
	const char *step;     /* where a commit failed, for the log */
	unsigned mark[SPOOL_NSUB]; /* dir_sync_mark before each rename */
	bool msg_in, env_in;  /* a commit's files in place, to undo on failure */
	struct spool_held *keep; /* held, not written, if its commit succeeds */
	uint64_t seg;         /* the log segment of its record */
};

/* An envelope update or removal (spool.c). */
struct spool_op {
	struct spool_link link;   /* in a removal batch; first member */
	struct spool *sp;
	uv_work_t work;
	char id[ID_SIZE];
	char tmpname[SPOOL_TMP_NAME_MAX];
	const char *what;     /* "update", "remove" */
	bool remove;
	struct buf env;       /* update: the new envelope, encoded */
	struct spool_held *held; /* its message's files are written first
				    (update) or there are none (remove) */
	spool_cb cb;
	void *arg;
	int status;
	const char *step;
};


/* spool.c, for spool_intake.c. Thread-safe unless marked loop. */
int spool_close_fd(int *fd);
int spool_write_file(struct spool *sp, int dfd, const char *name,
		     const struct buf *b, bool sync, const char **step);
/* env into tmp/tmpname (fsynced if sync), renamed to env/id; *mark (if
 * not NULL) taken just before the rename. On failure no temporary file
 * is left and *step says where. 0 or -errno. */
int spool_install_env(struct spool *sp, const char *tmpname, const char *id,
		      const struct buf *env, bool sync, unsigned *mark,
		      const char **step);
void spool_log_failure(const char *id, const char *what, const char *step,
		       int err);
int spool_queue(struct spool *sp, uv_work_t *work, uv_work_cb fn,
		uv_after_work_cb done);          /* loop */
void spool_tx_free(struct spool_tx *tx);
int spool_tx_create(struct spool_tx *tx, int dfd, const char *name);
/* spool_recover.c: a fresh listing of a subdirectory (its own file
 * description, so other readers' offsets do not matter), or NULL. */
DIR *spool_opendir(struct spool *sp, enum spool_sub s);
/* spool_recover.c: renameat2 RENAME_NOREPLACE, or check-then-rename on a
 * file system without it. */
int spool_rename_noreplace(int from, const char *name, int to,
			   const char *target);
/* spool_spare.c. Thread-safe. create: an fd open O_RDWR on a new, empty
 * dfd/name (mode 0600, -EEXIST if it exists), or -errno. recycle: remove
 * dfd/name (0 or -errno, as unlinkat). */
int spool_spares_init(struct spool_spares *s);
void spool_spares_destroy(struct spool_spares *s);
int spool_spare_create(struct spool *sp, int dfd, const char *name);
int spool_spare_recycle(struct spool *sp, int dfd, const char *name);
void spool_spares_clear(struct spool *sp);   /* start-up */
void spool_retire_kick(struct spool *sp); /* loop */
/* Thread pool: tx's encoded envelope into tmp/ID.env (fsynced if sync),
 * renamed to env/ID (tx->env_in; tx->mark[SPOOL_ENV] taken just before).
 * On failure nothing of it is left. 0 or -errno, tx->step set. */
int spool_tx_install_env(struct spool_tx *tx, bool sync);
/* Thread pool: remove what a failed commit of tx created (its temporary
 * file, and msg/ID, env/ID as tx->msg_in, tx->env_in say). */
void spool_tx_undo(struct spool_tx *tx);

/* Loop: the held bytes of tx, given back to the budget. */
void spool_tx_release_held(struct spool_tx *tx);

/* spool_intake.c: the logged commit (spool_log.h), in batches. */
/* Loop: may tx join a batch (logged, not failed)? */
bool spool_intake_batchable(const struct spool_tx *tx);
/* Loop: add tx (env encoded, cb set) to the next batch. */
void spool_intake_add(struct spool_tx *tx);
/* spool_open: set up sp->intake. */
void spool_intake_init(struct spool *sp);

/* Thread-safe helpers (no logging, no loop access); 0 or -errno. */
int spool_write_all(int fd, const char *p, size_t n);
int spool_fsync_dir(int dfd);
/* n bytes at off, retrying short reads and EINTR (-EIO at end of file). */
int spool_pread_all(int fd, char *p, size_t n, uint64_t off);

/* spool_held.c. Loop thread unless marked. */
int spool_held_init(struct spool *sp);
/* spool_close: write every held message's files, free the table. */
void spool_held_close(struct spool *sp);
/* At commit: reserve tx->keep if tx may stay held (0 = it may not). */
void spool_held_reserve(struct spool_tx *tx);
/* Give back tx->keep unused. */
void spool_held_unreserve(struct spool_tx *tx);
/* Commit reported with 0: tx->keep takes tx's envelope and body. */
void spool_held_adopt(struct spool_tx *tx);
struct spool_held *spool_held_find(struct spool *sp, const char *id);
void spool_held_unref(struct spool_held *h);
/* Sealed segments past which a retire no longer waits for the delivery
 * of held messages (spool.c). */
#define SPOOL_RETIRE_WAIT 4u
/* Before retiring segment seq: true while held messages of it (or older)
 * still have no files. With spill, their writing is started, and a
 * retire kick follows when it ends; without, the retire waits for
 * their removals (each kicks). */
bool spool_held_block_retire(struct spool *sp, uint64_t seq, bool spill);
/* op (an update or removal of h's message) runs now or after h's write:
 * true if it waits for that write (spool_held_written relaunches it);
 * false to run it now, the usual way, with op->held set (an update
 * writes msg/ID first; a removal appends only its 'D' record). */
bool spool_held_route(struct spool *sp, struct spool_held *h,
		      struct spool_op *op);
/* Thread pool: write msg/ID, and env/ID as committed if with_env (not
 * fsynced). 0 or -errno with *step set; on failure neither is left. */
int spool_held_write(struct spool *sp, struct spool_held *h, bool with_env,
		     const char **step);
/* Loop: op's write of h ended (status): h leaves the table if done. */
void spool_held_written(struct spool *sp, struct spool_held *h, int status);
/* spool_quarantine: write h's files now, on the loop thread (rare), and
 * let go of it. 0, -EBUSY while a write of them is in flight, -errno. */
int spool_held_unhold(struct spool *sp, struct spool_held *h);
/* A memfd holding h's body (spool_msg_open), or -errno. */
int spool_held_memfd(const struct spool_held *h);
/* spool.c: run op (an update or removal) now, or after its held
 * message's write. 0, or -errno with op freed and not called back. */
int spool_op_launch(struct spool *sp, struct spool_op *op);
/* spool.c, loop: call op back with op->status and free it. */
void spool_op_report(struct spool_op *op);

/* A growable list of queue ids (spool_recover.c). */
struct spool_ids {
	char (*id)[ID_SIZE];
	size_t n, cap;
};
int spool_ids_add(struct spool_ids *v, const char *id);
void spool_ids_sort(struct spool_ids *v);
/* After spool_ids_sort. */
bool spool_ids_has(const struct spool_ids *v, const char *id);
void spool_ids_free(struct spool_ids *v);

/*
 * Move sub/name to corrupt/<name><suffix> (never replacing an earlier
 * quarantined file; .1, .2, ... are appended instead). Does not log.
 * 0 or -errno (-ENOENT when there is nothing to move).
 */
int spool_quarantine_name(struct spool *sp, enum spool_sub from,
			  const char *name, const char *suffix);

#endif
