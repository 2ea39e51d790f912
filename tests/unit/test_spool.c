/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * The durable spool on a real libuv loop in a mkdtemp directory: commit
 * and its files, abort, the single-owner lock (D11), recovery of planted
 * corrupt entries (D7), envelope update and removal, recycled files
 * (spare/), and failing writes
 * (RLIMIT_FSIZE stands in for a full disk: D3/D4 leave nothing behind).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "spool_fixture.h"
#include "outbox/crc32.h"
#include "outbox/envelope.h"
#include "outbox/log.h"
#include "outbox/spool.h"
#include "outbox/spool_log.h"

static void
on_never(void *arg, int status)
{
	CHECK_FAIL("callback after abort (status %d)", status);
}

/* A full commit through the API; returns the id in id. */
static void
commit_one(struct spool *sp, const char *body, char id[ID_SIZE])
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	CHECK_EQ(0, spool_tx_write(tx, body, strlen(body), on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	make_env(&e, "bob@example.net");
	w.calls = 0;
	CHECK_EQ(0, spool_tx_commit(tx, &e, on_done, &w));
	envelope_free(&e);
	wait_for(&w);
	CHECK_EQ(0, w.status);
}

static void
load_env(const char *id, struct envelope *e)
{
	size_t n;
	char err[128];
	char *data = slurp("env", id, &n);
	CHECK_EQ(0, envelope_decode(data, n, e, err, sizeof(err)));
	free(data);
}

static void
test_commit(struct spool *sp)
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	const char *part1 = "Subject: hi\r\n\r\n";
	const char *part2 = "body line\r\n";
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	const char *id = spool_tx_id(tx);
	char saved[ID_SIZE];
	memcpy(saved, id, ID_SIZE);
	CHECK(id_valid(id));
	/* No file until the first write: begin never touches the disk. */
	CHECK_EQ(0, count_entries("tmp"));
	CHECK_EQ(0, spool_tx_write(tx, part1, strlen(part1), on_done, &w));
	/* One write at a time. */
	CHECK_EQ(-EBUSY, spool_tx_write(tx, part2, strlen(part2), on_done, &w));
	struct envelope e;
	make_env(&e, "bob@example.net");
	CHECK_EQ(-EBUSY, spool_tx_commit(tx, &e, on_done, &w));
	CHECK_EQ(0, w.calls); /* never called synchronously */
	wait_for(&w);
	CHECK_EQ(0, w.status);
	w.calls = 0;
	CHECK_EQ(0, spool_tx_write(tx, part2, strlen(part2), on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK_EQ(1, count_entries("tmp"));
	/* Nothing is visible in msg/ or env/ before the commit. */
	CHECK_EQ(0, count_entries("msg"));
	CHECK_EQ(0, count_entries("env"));
	w.calls = 0;
	CHECK_EQ(0, spool_tx_commit(tx, &e, on_done, &w));
	CHECK_EQ(0, w.calls);
	CHECK(spool_pending(sp) > 0); /* the commit and its batch are in flight */
	envelope_free(&e); /* copied by commit */
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK_EQ(0, spool_pending(sp));
	CHECK_EQ(0, count_entries("tmp"));

	size_t n;
	char *msg = slurp("msg", saved, &n);
	CHECK_EQ(strlen(part1) + strlen(part2), n);
	CHECK_MEM_EQ(part1, msg, strlen(part1));
	CHECK_MEM_EQ(part2, msg + strlen(part1), strlen(part2));
	load_env(saved, &e);
	CHECK_STR_EQ(saved, e.id);
	CHECK_EQ(n, e.msg_size);
	CHECK_EQ(crc32_update(0, msg, n), e.msg_crc);
	CHECK_STR_EQ("alice@example.org", e.sender);
	CHECK_EQ(1, e.nrcpts);
	CHECK_STR_EQ("bob@example.net", e.rcpts[0].addr);
	envelope_free(&e);
	free(msg);

	/* Reading back through the spool. */
	int fd = spool_msg_open(sp, saved, NULL);
	CHECK(fd >= 0);
	char buf[64];
	CHECK_EQ((ssize_t)strlen(part1), read(fd, buf, strlen(part1)));
	CHECK_MEM_EQ(part1, buf, strlen(part1));
	close(fd);
	CHECK_EQ(-ENOENT, spool_msg_open(sp, "0000000000000000", NULL));
	CHECK_EQ(-EINVAL, spool_msg_open(sp, "../lock", NULL));
}

static void
test_abort(struct spool *sp)
{
	struct spool_tx *tx;
	/* Abort with a write in flight: no callback, nothing left. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, spool_tx_write(tx, "data\r\n", 6, on_never, NULL));
	spool_tx_abort(tx);
	drain(sp);
	CHECK_EQ(0, count_entries("tmp"));
	/* Abort when idle, before and after the file exists. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, count_entries("tmp"));
	spool_tx_abort(tx);
	CHECK_EQ(0, spool_pending(sp)); /* nothing to clean: freed at once */
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, spool_tx_write(tx, "data\r\n", 6, on_done, &w));
	wait_for(&w);
	CHECK_EQ(1, count_entries("tmp"));
	spool_tx_abort(tx);
	drain(sp);
	CHECK_EQ(0, count_entries("tmp"));
	/* A commit refused synchronously leaves the tx with us. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	struct envelope e;
	envelope_init(&e); /* no sender, no recipient */
	CHECK_EQ(-EINVAL, spool_tx_commit(tx, &e, on_never, NULL));
	spool_tx_abort(tx);
	drain(sp);
	CHECK_EQ(0, count_entries("tmp"));
}

static void
test_lock(const char *dir)
{
	struct spool *sp2 = NULL;
	char err[256];
	char want[64];
	CHECK(spool_open(&loop, dir, &sp2, err, sizeof(err)) < 0);
	CHECK(sp2 == NULL);
	snprintf(want, sizeof(want), "locked by PID %ld ", (long)getpid());
	if (strstr(err, want) == NULL)
		fprintf(stderr, "lock message: %s\n", err);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(err, dir) != NULL);
	/* The lock file holds our PID. */
	size_t n;
	char path[256];
	snprintf(path, sizeof(path), "%s/lock", dir);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	char text[32] = { 0 };
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	CHECK(n > 0);
	CHECK_EQ(getpid(), strtol(text, NULL, 10));
}

static void
test_update_remove(struct spool *sp, const char *id)
{
	struct envelope e;
	struct waiter w = { 0 };
	load_env(id, &e);
	e.rcpts[0].state = RCPT_SENT;
	e.attempts = 1;
	e.next_attempt = 1700000999;
	CHECK_EQ(0, envelope_set_error(&e, 0, "250 2.0.0 ok"));
	CHECK_EQ(0, spool_env_update(sp, &e, on_done, &w));
	envelope_free(&e); /* encoded before return */
	CHECK_EQ(0, w.calls);
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK_EQ(0, count_entries("tmp"));
	load_env(id, &e);
	CHECK_EQ(RCPT_SENT, e.rcpts[0].state);
	CHECK_EQ(1, e.attempts);
	CHECK_EQ(1700000999, e.next_attempt);
	CHECK_STR_EQ("250 2.0.0 ok", e.rcpts[0].last_error);
	/* An envelope that cannot be encoded is refused at once. */
	free(e.rcpts[0].addr);
	e.rcpts[0].addr = strdup("x\ny");
	CHECK_EQ(-EINVAL, spool_env_update(sp, &e, on_never, NULL));
	memcpy(e.id, "bad", 4);
	CHECK_EQ(-EINVAL, spool_env_update(sp, &e, on_never, NULL));
	envelope_free(&e);
}

static void
test_remove(struct spool *sp, const char *id)
{
	struct waiter w = { 0 };
	CHECK(exists("env", id) && exists("msg", id));
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!exists("env", id));
	CHECK(!exists("msg", id));
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(-ENOENT, w.status);
	CHECK_EQ(-EINVAL, spool_remove(sp, "../env/x", on_never, NULL));
}

struct seen {
	int n;
	char ids[8][ID_SIZE];
};

static void
on_each(void *arg, struct envelope *env)
{
	struct seen *s = arg;
	if (s->n < 8)
		memcpy(s->ids[s->n], env->id, ID_SIZE);
	s->n++;
	envelope_free(env);
	free(env);
}

/* Encode an envelope for id with the given message size. */
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
#define ID_UID   "100000000000000C"
#define ID_MFIFO "100000000000000D"

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

	/* A valid envelope for another id under this name. */
	n = encode_for(ID_TRUNC, 100, env, sizeof(env));
	plant("env", ID_OTHER, env, n);
	plant("msg", ID_OTHER, msg, 100);

	path_of(p, sizeof(p), "env", ID_DIR);
	CHECK_EQ(0, mkdir(p, 0700));

	/* Good envelope, but the message is a symlink to a 100-byte file. */
	n = encode_for(ID_MLINK, 100, env, sizeof(env));
	plant("env", ID_MLINK, env, n);
	plant("", "secret", msg, 100);
	path_of(p, sizeof(p), "msg", ID_MLINK);
	snprintf(q, sizeof(q), "%s/secret", root);
	CHECK_EQ(0, symlink(q, p));

	/* Message is a FIFO: must not block. */
	n = encode_for(ID_MFIFO, 0, env, sizeof(env));
	plant("env", ID_MFIFO, env, n);
	path_of(p, sizeof(p), "msg", ID_MFIFO);
	CHECK_EQ(0, mkfifo(p, 0600));

	plant("env", "junk.txt", "hello", 5);
	plant("msg", "README", "hello", 5);
	plant("tmp", "0123456789ABCDEF.msg", "partial", 7);
	plant("tmp", "0123456789ABCDEF.env", "V1:1\n", 5);
}

/* As root we can plant a file owned by someone else. */
static bool
plant_other_uid(void)
{
	char env[1024], p[256];
	char msg[100] = { 0 };
	size_t n = encode_for(ID_UID, 100, env, sizeof(env));
	plant("env", ID_UID, env, n);
	plant("msg", ID_UID, msg, 100);
	path_of(p, sizeof(p), "env", ID_UID);
	if (chown(p, 12345, 12345) == 0)
		return true;
	unlink(p);
	path_of(p, sizeof(p), "msg", ID_UID);
	unlink(p);
	return false;
}

static void
test_recover(const char *dir, const char *good_id)
{
	struct spool *sp;
	char err[256];
	plant_corrupt();
	bool other_uid = plant_other_uid();
	CHECK_EQ(0, spool_open(&loop, dir, &sp, err, sizeof(err)));
	struct seen s = { 0 };
	int n = spool_recover(sp, on_each, &s);
	CHECK_EQ(1, n);
	CHECK_EQ(1, s.n);
	CHECK_STR_EQ(good_id, s.ids[0]);
	/* Only the good entry is left in env/ and msg/; tmp/ is empty. */
	CHECK_EQ(1, count_entries("env"));
	CHECK_EQ(1, count_entries("msg"));
	CHECK(exists("env", good_id) && exists("msg", good_id));
	CHECK_EQ(0, count_entries("tmp"));
	/* Quarantined, both halves where they existed. */
	CHECK(exists("corrupt", ID_TRUNC ".env"));
	CHECK(exists("corrupt", ID_TRUNC ".msg"));
	CHECK(exists("corrupt", ID_NOMSG ".env"));
	CHECK(exists("corrupt", ID_LINK ".env"));
	CHECK(exists("corrupt", ID_LINK ".msg"));
	CHECK(exists("corrupt", ID_FIFO ".env"));
	CHECK(exists("corrupt", ID_EMPTY ".env"));
	CHECK(exists("corrupt", ID_RAND ".env"));
	CHECK(exists("corrupt", ID_SIZEX ".env"));
	CHECK(exists("corrupt", ID_SIZEX ".msg"));
	CHECK(exists("corrupt", ID_OTHER ".env"));
	CHECK(exists("corrupt", ID_DIR ".env"));
	CHECK(exists("corrupt", ID_MLINK ".env"));
	CHECK(exists("corrupt", ID_MLINK ".msg"));
	CHECK(exists("corrupt", ID_MFIFO ".env"));
	CHECK(exists("corrupt", ID_MFIFO ".msg"));
	CHECK(exists("corrupt", "junk.txt.env"));
	CHECK(exists("corrupt", "README.msg"));
	if (other_uid) {
		CHECK(exists("corrupt", ID_UID ".env"));
		CHECK(exists("corrupt", ID_UID ".msg"));
	}
	/* The orphan message was deleted, not quarantined. */
	CHECK(!exists("msg", ID_NOENV));
	CHECK(!exists("corrupt", ID_NOENV ".msg"));
	/* Symlink targets untouched; the quarantined link is still a link. */
	struct stat st;
	char p[256];
	snprintf(p, sizeof(p), "%s/secret", root);
	CHECK_EQ(0, stat(p, &st));
	CHECK_EQ(0, stat("/etc/passwd", &st));
	path_of(p, sizeof(p), "corrupt", ID_LINK ".env");
	CHECK_EQ(0, lstat(p, &st));
	CHECK(S_ISLNK(st.st_mode));
	/* Quarantine never overwrites: the same name again gets a suffix. */
	plant("env", "junk.txt", "again", 5);
	s.n = 0;
	CHECK_EQ(1, spool_recover(sp, on_each, &s));
	CHECK(exists("corrupt", "junk.txt.env.1"));
	/* each may be NULL. */
	CHECK_EQ(1, spool_recover(sp, NULL, NULL));
	/* Explicit quarantine from delivery. */
	char id2[ID_SIZE];
	commit_one(sp, "second\r\n", id2);
	CHECK_EQ(0, spool_quarantine(sp, id2, "message CRC mismatch"));
	CHECK(!exists("env", id2) && !exists("msg", id2));
	char qname[ID_SIZE + 8];
	snprintf(qname, sizeof(qname), "%s.env", id2);
	CHECK(exists("corrupt", qname));
	snprintf(qname, sizeof(qname), "%s.msg", id2);
	CHECK(exists("corrupt", qname));
	CHECK_EQ(-ENOENT, spool_quarantine(sp, id2, "again"));
	drain(sp);
	spool_close(sp);
}

/* Recovery sees the state an update wrote, after a "restart". */
static void
test_restart_sees_update(const char *dir, const char *id)
{
	struct spool *sp;
	char err[256];
	CHECK_EQ(0, spool_open(&loop, dir, &sp, err, sizeof(err)));
	struct seen s = { 0 };
	CHECK_EQ(1, spool_recover(sp, on_each, &s));
	CHECK_STR_EQ(id, s.ids[0]);
	struct envelope e;
	load_env(id, &e);
	CHECK_EQ(RCPT_SENT, e.rcpts[0].state);
	envelope_free(&e);
	spool_close(sp);
}

/* A write that fails (file size limit: EFBIG) leaves nothing behind. */
static void
test_write_failure(struct spool *sp)
{
	struct rlimit old, lim;
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	char big[4000];
	memset(big, 'x', sizeof(big));
	int before_msg = count_entries("msg"), before_env = count_entries("env");
	CHECK_EQ(0, getrlimit(RLIMIT_FSIZE, &old));
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 1024;
	CHECK_EQ(0, setrlimit(RLIMIT_FSIZE, &lim));

	/* The message write fails: reported, sticky, commit fails. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, spool_tx_write(tx, big, sizeof(big), on_done, &w));
	wait_for(&w);
	CHECK_EQ(-EFBIG, w.status);
	CHECK_EQ(-EFBIG, spool_tx_write(tx, "x", 1, on_never, NULL));
	make_env(&e, "bob@example.net");
	w.calls = 0;
	CHECK_EQ(0, spool_tx_commit(tx, &e, on_done, &w));
	wait_for(&w);
	CHECK_EQ(-EFBIG, w.status);
	CHECK_EQ(0, count_entries("tmp"));
	CHECK_EQ(before_msg, count_entries("msg"));
	CHECK_EQ(before_env, count_entries("env"));

	/* The message fits but the envelope does not: the committed message
	 * file is taken back out of msg/. */
	lim.rlim_cur = 120;
	CHECK_EQ(0, setrlimit(RLIMIT_FSIZE, &lim));
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	w.calls = 0;
	CHECK_EQ(0, spool_tx_write(tx, big, 100, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	w.calls = 0;
	CHECK_EQ(0, spool_tx_commit(tx, &e, on_done, &w));
	wait_for(&w);
	CHECK_EQ(-EFBIG, w.status);
	CHECK_EQ(0, count_entries("tmp"));
	CHECK_EQ(before_msg, count_entries("msg"));
	CHECK_EQ(before_env, count_entries("env"));

	/* A failed update keeps the old envelope intact (D6). */
	char id[ID_SIZE];
	CHECK_EQ(0, setrlimit(RLIMIT_FSIZE, &old));
	commit_one(sp, "short\r\n", id);
	size_t n1, n2;
	char *before = slurp("env", id, &n1);
	lim.rlim_cur = 50;
	CHECK_EQ(0, setrlimit(RLIMIT_FSIZE, &lim));
	struct envelope cur;
	load_env(id, &cur);
	cur.attempts = 7;
	w.calls = 0;
	CHECK_EQ(0, spool_env_update(sp, &cur, on_done, &w));
	wait_for(&w);
	CHECK_EQ(-EFBIG, w.status);
	CHECK_EQ(0, setrlimit(RLIMIT_FSIZE, &old));
	char *after = slurp("env", id, &n2);
	CHECK_EQ(n1, n2);
	CHECK_MEM_EQ(before, after, n1);
	CHECK_EQ(0, count_entries("tmp"));
	free(before);
	free(after);
	envelope_free(&cur);
	envelope_free(&e);
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	signal(SIGXFSZ, SIG_DFL);
}

/*
 * spool_tx_hold: chunks kept in memory are the body, written once by the
 * commit straight into msg/ (no tmp/ file ever); past the log's limit
 * hold refuses and the next write puts the held bytes first, in order.
 */
/* Right after a commit call: the sums the caller's envelope takes are
 * the body's; then the commit ends well. */
static void
sums_then_done(struct spool_tx *tx, struct waiter *w, const char *body,
	       size_t len)
{
	uint64_t size;
	uint32_t crc;
	spool_tx_sum(tx, &size, &crc);
	CHECK_EQ(len, size);
	CHECK_EQ(crc32_update(0, body, len), crc);
	wait_for(w);
	CHECK_EQ(0, w->status);
}

/* A body in one piece through spool_tx_commit_last_buf; returns where
 * its held body is (it stays held; id gets its id). */
static const char *
commit_piece(struct spool *sp, struct buf *b, const char *text, size_t len,
	     char *id)
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	CHECK_EQ(0, buf_append(b, text, len));
	make_env(&e, "bob@example.net");
	CHECK_EQ(0, spool_tx_commit_last_buf(tx, b, &e, on_done, &w));
	envelope_free(&e);
	CHECK_EQ(0, b->len);
	sums_then_done(tx, &w, text, len);
	const char *body;
	size_t n;
	struct spool_held *h = spool_held_get(sp, id, &body, &n);
	CHECK(h != NULL);
	CHECK_EQ(len, n);
	CHECK_MEM_EQ(text, body, len);
	spool_held_put(h);
	return body;
}

/*
 * spool_tx_hold_buf and spool_tx_commit_last_buf take a buffer's bytes
 * by moving its storage where they can: the first held chunk and a body
 * committed in one piece are never copied (the held body is the very
 * memory the caller filled). What cannot be taken leaves the buffer as
 * it was.
 */
static void
test_hold_buf(struct spool *sp)
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	struct buf b;
	buf_init(&b, 1024 * 1024);
	char id[ID_SIZE];

	/* Held in two chunks: the first moves, the second is appended to
	 * it; the last bytes are appended at the commit. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	CHECK_EQ(0, buf_append(&b, "Subject: moved\r\n\r\n", 18));
	char *first = b.data;
	CHECK_EQ(0, spool_tx_hold_buf(tx, &b));
	CHECK_EQ(0, b.len);
	CHECK(b.data != first);
	CHECK_EQ(0, buf_append(&b, "one\r\n", 5));
	char *second = b.data;
	CHECK_EQ(0, spool_tx_hold_buf(tx, &b));
	CHECK(b.data == second); /* copied out: b keeps its storage */
	CHECK_EQ(0, b.len);
	CHECK_EQ(0, buf_append(&b, "two\r\n", 5));
	make_env(&e, "bob@example.net");
	CHECK_EQ(0, spool_tx_commit_last_buf(tx, &b, &e, on_done, &w));
	envelope_free(&e);
	CHECK_EQ(0, b.len);
	sums_then_done(tx, &w, "Subject: moved\r\n\r\none\r\ntwo\r\n", 28);
	const char *body;
	size_t n;
	struct spool_held *h = spool_held_get(sp, id, &body, &n);
	CHECK(h != NULL);
	CHECK(body == first);
	CHECK_EQ(28, n);
	CHECK_MEM_EQ("Subject: moved\r\n\r\none\r\ntwo\r\n", body, 28);
	spool_held_put(h);
	char moved[ID_SIZE];
	memcpy(moved, id, ID_SIZE);

	/* A body in one piece: its storage is the held body (b's room,
	 * 64 bytes, takes it without growing). */
	buf_reset(&b);
	char *whole = b.data;
	CHECK(commit_piece(sp, &b, "Subject: whole\r\n\r\nbody\r\n", 24, id) ==
	      whole);
	CHECK(b.data == NULL);

	/* Storage mostly spare room (it once carried a bigger chunk) is
	 * not given to a held body for its life: the bytes are copied. */
	char small_id[ID_SIZE];
	CHECK_EQ(0, buf_reserve(&b, 256 * 1024));
	char *roomy = b.data;
	CHECK(commit_piece(sp, &b, "Subject: small\r\n\r\n", 18, small_id) !=
	      roomy);
	CHECK(b.data == roomy);
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, small_id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	/* Nor does a held first chunk take such storage. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, buf_append(&b, "Subject: x\r\n\r\n", 14));
	CHECK_EQ(0, spool_tx_hold_buf(tx, &b));
	CHECK(b.data == roomy && b.len == 0);
	spool_tx_abort(tx);
	buf_free(&b); /* the failure below is the moving path's */

	/* A synchronous failure (no recipient: the envelope does not
	 * encode) leaves b as it was, and the tx with the caller. */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, buf_append(&b, "kept\r\n", 6));
	char *kept = b.data;
	size_t cap = b.cap;
	envelope_init(&e);
	e.sender = strdup("alice@example.org");
	CHECK(spool_tx_commit_last_buf(tx, &b, &e, on_done, &w) < 0);
	envelope_free(&e);
	CHECK(b.data == kept);
	CHECK_EQ(6, b.len);
	CHECK_EQ(cap, b.cap);
	CHECK_STR_EQ("kept\r\n", b.data);
	/* Nor does a hold refused for its size take anything. */
	char *big = malloc(SPOOL_LOG_BODY_MAX);
	CHECK(big != NULL);
	memset(big, 'x', SPOOL_LOG_BODY_MAX);
	CHECK_EQ(0, buf_append(&b, big, SPOOL_LOG_BODY_MAX - 6));
	CHECK_EQ(0, spool_tx_hold_buf(tx, &b)); /* exactly the limit */
	CHECK_EQ(0, buf_append(&b, "x", 1));
	char *one = b.data;
	CHECK_EQ(-E2BIG, spool_tx_hold_buf(tx, &b));
	CHECK(b.data == one);
	CHECK_EQ(1, b.len);
	free(big);
	spool_tx_abort(tx);
	buf_free(&b);
	/* Gone again, without ever having files (the rest of main counts
	 * the entries and the spares). */
	const char *ids[] = { moved, id };
	for (int i = 0; i < 2; i++) {
		w.calls = 0;
		CHECK_EQ(0, spool_remove(sp, ids[i], on_done, &w));
		wait_for(&w);
		CHECK_EQ(0, w.status);
	}
	drain(sp);
}

static void
test_hold(struct spool *sp)
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	char id[ID_SIZE], first[ID_SIZE];
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	memcpy(first, id, ID_SIZE);
	CHECK_EQ(0, spool_tx_hold(tx, "Subject: held\r\n\r\n", 17));
	CHECK_EQ(0, spool_tx_hold(tx, "one\r\n", 5));
	CHECK_EQ(0, count_entries("tmp"));
	make_env(&e, "bob@example.net");
	CHECK_EQ(0, spool_tx_commit_last(tx, "two\r\n", 5, &e, on_done, &w));
	envelope_free(&e);
	/* the sums the caller's envelope takes, before the callback */
	uint64_t sum_size;
	uint32_t sum_crc;
	spool_tx_sum(tx, &sum_size, &sum_crc);
	CHECK_EQ(27, sum_size);
	CHECK_EQ(crc32_update(0, "Subject: held\r\n\r\none\r\ntwo\r\n", 27),
		 sum_crc);
	wait_for(&w);
	CHECK_EQ(0, w.status);
	/* Committed whole from memory: held, its log record its only copy
	 * on disk; the body is read from memory (test_spool_held.c). */
	CHECK(!exists("msg", id) && !exists("env", id));
	const char *body;
	size_t n;
	struct spool_held *h = spool_held_get(sp, id, &body, &n);
	CHECK(h != NULL);
	CHECK_EQ(27, n);
	CHECK_MEM_EQ("Subject: held\r\n\r\none\r\ntwo\r\n", body, 27);
	spool_held_put(h);
	/* An update writes the message file, then the new envelope. */
	make_env(&e, "carol@example.net");
	memcpy(e.id, id, ID_SIZE);
	e.msg_size = sum_size;
	e.msg_crc = sum_crc;
	w.calls = 0;
	CHECK_EQ(0, spool_env_update(sp, &e, on_done, &w));
	envelope_free(&e);
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(spool_held_get(sp, id, &body, &n) == NULL);
	char *msg = slurp("msg", id, &n);
	CHECK_EQ(27, n);
	CHECK_MEM_EQ("Subject: held\r\n\r\none\r\ntwo\r\n", msg, 27);
	free(msg);
	load_env(id, &e);
	CHECK_EQ(27, e.msg_size);
	CHECK_EQ(crc32_update(0, "Subject: held\r\n\r\none\r\ntwo\r\n", 27),
		 e.msg_crc);
	CHECK_STR_EQ("carol@example.net", e.rcpts[0].addr);
	envelope_free(&e);

	/* Over the limit: refused, and the file gets held bytes first. */
	size_t big = SPOOL_LOG_BODY_MAX;
	char *chunk = malloc(big);
	CHECK(chunk != NULL);
	memset(chunk, 'x', big);
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	CHECK_EQ(0, spool_tx_hold(tx, "head\r\n", 6));
	CHECK_EQ(-E2BIG, spool_tx_hold(tx, chunk, big));
	w.calls = 0;
	CHECK_EQ(0, spool_tx_write(tx, chunk, big, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	/* A file now exists: nothing more is held. */
	CHECK_EQ(-E2BIG, spool_tx_hold(tx, "x", 1));
	make_env(&e, "bob@example.net");
	w.calls = 0;
	CHECK_EQ(0, spool_tx_commit_last(tx, "end\r\n", 5, &e, on_done, &w));
	envelope_free(&e);
	/* streamed: the CRC the pool thread computed as it wrote, and the
	 * last bytes' */
	spool_tx_sum(tx, &sum_size, &sum_crc);
	CHECK_EQ(6 + big + 5, sum_size);
	uint32_t want = crc32_update(0, "head\r\n", 6);
	want = crc32_update(want, chunk, big);
	CHECK_EQ(crc32_update(want, "end\r\n", 5), sum_crc);
	wait_for(&w);
	CHECK_EQ(0, w.status);
	msg = slurp("msg", id, &n);
	CHECK_EQ(6 + big + 5, n);
	CHECK_MEM_EQ("head\r\n", msg, 6);
	CHECK_MEM_EQ(chunk, msg + 6, big);
	CHECK_MEM_EQ("end\r\n", msg + 6 + big, 5);
	free(msg);
	free(chunk);
	/* The later checks count the queue: leave it as it was. */
	const char *both[2] = { first, id };
	for (int i = 0; i < 2; i++) {
		w.calls = 0;
		CHECK_EQ(0, spool_remove(sp, both[i], on_done, &w));
		wait_for(&w);
		CHECK_EQ(0, w.status);
	}
	/* Aborted with bytes held: nothing left, nothing leaked (ASan). */
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	CHECK_EQ(0, spool_tx_hold(tx, "gone\r\n", 6));
	spool_tx_abort(tx);
	drain(sp);
	CHECK_EQ(0, count_entries("tmp"));
}

static ino_t
inode_of(const char *sub, const char *name)
{
	char p[256];
	struct stat st;
	path_of(p, sizeof(p), sub, name);
	CHECK_EQ(0, lstat(p, &st));
	return st.st_ino;
}

/* Every entry of spare/ is an empty regular file; their inodes into ino. */
static int
spare_inodes(ino_t *ino, int max)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/spare", root);
	DIR *d = opendir(p);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		path_of(p, sizeof(p), "spare", de->d_name);
		CHECK_EQ(0, lstat(p, &st));
		CHECK(S_ISREG(st.st_mode));
		CHECK_EQ(0, st.st_size);
		if (n < max)
			ino[n] = st.st_ino;
		n++;
	}
	closedir(d);
	return n;
}

static bool
ino_in(ino_t x, const ino_t *set, int n)
{
	for (int i = 0; i < n; i++)
		if (set[i] == x)
			return true;
	return false;
}

/*
 * Removal recycles: msg/ID and env/ID become two empty files in spare/
 * (same inodes), and the next commit's message and envelope are those
 * inodes again, holding exactly the new bytes (a longer old body leaves
 * nothing behind), with spare/ empty afterwards.
 */
static void
test_spares(struct spool *sp)
{
	char old[ID_SIZE], id[ID_SIZE];
	ino_t was[2], sp_ino[4];
	const char *long_body = "a body longer than the next one, to be cut\r\n";
	commit_one(sp, long_body, old);
	was[0] = inode_of("msg", old);
	was[1] = inode_of("env", old);
	int before = spare_inodes(sp_ino, 4);
	CHECK_EQ(0, before);
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, old, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!exists("msg", old) && !exists("env", old));
	CHECK_EQ(2, spare_inodes(sp_ino, 4));
	CHECK(ino_in(was[0], sp_ino, 2) && ino_in(was[1], sp_ino, 2));
	commit_one(sp, "short\r\n", id);
	CHECK_EQ(0, spare_inodes(sp_ino, 4));
	CHECK(ino_in(inode_of("msg", id), was, 2));
	CHECK(ino_in(inode_of("env", id), was, 2));
	size_t n;
	char *msg = slurp("msg", id, &n);
	CHECK_EQ(7, n);
	CHECK_MEM_EQ("short\r\n", msg, 7);
	free(msg);
	struct envelope e;
	load_env(id, &e);   /* decodes: no bytes of the old envelope after it */
	CHECK_EQ(7, e.msg_size);
	envelope_free(&e);
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK_EQ(2, spare_inodes(sp_ino, 4));
}

int
main(void)
{
	struct spool *sp;
	char err[256];
	char dir[128];
	fixture_start("test_spool", "spool");
	/* The spool directory itself is created by spool_open. */
	snprintf(dir, sizeof(dir), "%s", root);
	CHECK_EQ(0, uv_loop_init(&loop));

	CHECK_EQ(0, spool_open(&loop, dir, &sp, err, sizeof(err)));
	CHECK_STR_EQ(dir, spool_dir(sp));
	CHECK_EQ(0, count_entries("tmp") + count_entries("msg") +
			    count_entries("env") + count_entries("corrupt"));
	CHECK_EQ(0, spool_recover(sp, on_each, NULL));
	test_lock(dir);
	test_commit(sp);
	test_abort(sp);
	test_hold(sp);
	test_hold_buf(sp);
	char good[ID_SIZE], gone[ID_SIZE];
	commit_one(sp, "keep me\r\n", good);
	commit_one(sp, "remove me\r\n", gone);
	test_update_remove(sp, good);
	test_remove(sp, gone);
	test_spares(sp);
	test_write_failure(sp);
	drain(sp);
	spool_close(sp);

	/* Remove every entry except `good`, then plant junk and recover. */
	CHECK(count_entries("spare") > 0);
	CHECK_EQ(0, spool_open(&loop, dir, &sp, err, sizeof(err)));
	struct seen s = { 0 };
	CHECK_EQ(2, spool_recover(sp, on_each, &s));
	/* Start-up empties spare/ (a spare's name may alias a message after
	 * a crash without a journal: never truncate through it). */
	CHECK_EQ(0, count_entries("spare"));
	for (int i = 0; i < s.n && i < 8; i++) {
		if (strcmp(s.ids[i], good) == 0)
			continue;
		struct waiter w = { 0 };
		CHECK_EQ(0, spool_remove(sp, s.ids[i], on_done, &w));
		wait_for(&w);
		CHECK_EQ(0, w.status);
	}
	spool_close(sp);
	test_restart_sees_update(dir, good);
	test_recover(dir, good);

	fixture_finish();
	CHECK_DONE();
}
