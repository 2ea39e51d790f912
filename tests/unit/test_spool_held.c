/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * Held messages (spool_held.c) on a real libuv loop in a mkdtemp
 * directory: a message committed whole from memory has only its log
 * record on disk; its files are written when an update needs them, before
 * its log segment is retired (when that has waited), and at spool_close; a removal writes none;
 * a crash (a child that exits without closing) leaves the record, from
 * which the next open rebuilds the files; an update or removal that
 * arrives while the files are being written waits for that write; a
 * removal after a failed update unlinks what it left; a sealed segment's
 * retire waits for its held messages' removal, but not past a tick or
 * SPOOL_RETIRE_WAIT sealed segments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool_fixture.h"
#include "outbox/crc32.h"
#include "outbox/log.h"
#include "outbox/spool_log.h"
#include "../../src/io/spool_priv.h"

struct seen {
	int n;
	char ids[8][ID_SIZE];
	char rcpt[8][64];
};

static void
on_each(void *arg, struct envelope *env)
{
	struct seen *s = arg;
	if (s->n < 8) {
		memcpy(s->ids[s->n], env->id, ID_SIZE);
		snprintf(s->rcpt[s->n], sizeof(s->rcpt[0]), "%s",
			 env->nrcpts > 0 ? env->rcpts[0].addr : "");
	}
	s->n++;
	envelope_free(env);
	free(env);
}

/* Commit body whole from memory (held); its id into id. */
static void
commit_held(struct spool *sp, const char *body, size_t len, char id[ID_SIZE])
{
	struct spool_tx *tx;
	struct waiter w = { 0 };
	struct envelope e;
	CHECK_EQ(0, spool_tx_begin(sp, &tx));
	memcpy(id, spool_tx_id(tx), ID_SIZE);
	make_env(&e, "bob@example.net");
	CHECK_EQ(0, spool_tx_commit_last(tx, body, len, &e, on_done, &w));
	envelope_free(&e);
	wait_for(&w);
	CHECK_EQ(0, w.status);
}

/* The envelope a delivery would write back: to rcpt now. */
static void
update_to(struct spool *sp, const char *id, const char *body,
	  const char *rcpt, struct waiter *w)
{
	struct envelope e;
	make_env(&e, rcpt);
	memcpy(e.id, id, ID_SIZE);
	e.msg_size = strlen(body);
	e.msg_crc = crc32_update(0, body, strlen(body));
	CHECK_EQ(0, spool_env_update(sp, &e, on_done, w));
	envelope_free(&e);
}

static bool
is_held(struct spool *sp, const char *id)
{
	const char *body;
	size_t len;
	struct spool_held *h = spool_held_get(sp, id, &body, &len);
	spool_held_put(h);
	return h != NULL;
}

static void
check_file(const char *sub, const char *id, const char *want)
{
	size_t n;
	char *data = slurp(sub, id, &n);
	CHECK_EQ(strlen(want), n);
	CHECK_MEM_EQ(want, data, n);
	free(data);
}

/* Two ticks with no intake between: the segment seals. A third: its
 * retire has waited a whole tick for the delivery of its held messages,
 * so their files are written, and it is retired. */
static void
retire_now(struct spool *sp)
{
	spool_tick(sp);
	CHECK(spool_tick(sp));
	drain(sp);
	spool_tick(sp);
	drain(sp);
}

/* Held: no files, the body from memory and from spool_msg_open. */
static void
test_held_read(struct spool *sp)
{
	const char *text = "Subject: a\r\n\r\nheld body\r\n";
	char id[ID_SIZE];
	int msgs = count_entries("msg"), envs = count_entries("env");
	commit_held(sp, text, strlen(text), id);
	CHECK_EQ(msgs, count_entries("msg"));
	CHECK_EQ(envs, count_entries("env"));
	CHECK_EQ(0, count_entries("tmp"));
	const char *body;
	size_t len;
	struct spool_held *h = spool_held_get(sp, id, &body, &len);
	CHECK(h != NULL);
	CHECK_EQ(strlen(text), len);
	CHECK_MEM_EQ(text, body, len);
	uint64_t size = 0;
	int fd = spool_msg_open(sp, id, &size);
	CHECK(fd >= 0);
	CHECK_EQ(strlen(text), size);
	char buf[64];
	CHECK_EQ((ssize_t)len, read(fd, buf, sizeof(buf)));
	CHECK_MEM_EQ(text, buf, len);
	close(fd);
	/* The reader's bytes outlive the message's removal. */
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!is_held(sp, id));
	CHECK_MEM_EQ(text, body, len);
	spool_held_put(h);
	CHECK_EQ(-ENOENT, spool_msg_open(sp, id, NULL));
	CHECK(!exists("msg", id) && !exists("env", id));
	CHECK(spool_held_get(sp, "not-an-id", &body, &len) == NULL);
}

/* An update writes msg/ID, then the new envelope; the entry is no
 * longer held. */
static void
test_update(struct spool *sp, char kept[ID_SIZE])
{
	const char *text = "updated\r\n";
	commit_held(sp, text, strlen(text), kept);
	struct waiter w = { 0 };
	update_to(sp, kept, text, "dave@example.net", &w);
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!is_held(sp, kept));
	check_file("msg", kept, text);
	CHECK(exists("env", kept));
}

/* An update that fails after writing msg/ID leaves the message held;
 * its removal then unlinks what the failed write left (else a retire
 * would fsync it and the next start deliver it again). The update's
 * temporary names are taken by directories, so its envelope cannot be
 * created. */
static void
test_failed_update(struct spool *sp)
{
	char id[ID_SIZE], p[256];
	commit_held(sp, "fails\r\n", 7, id);
	enum { NAMES = 2000 };
	for (int i = 0; i < NAMES; i++) {
		snprintf(p, sizeof(p), "%s/tmp/%s.u%d", root, id, i);
		CHECK_EQ(0, mkdir(p, 0700));
	}
	struct waiter w = { 0 };
	update_to(sp, id, "fails\r\n", "frank@example.net", &w);
	wait_for(&w);
	CHECK(w.status != 0);
	CHECK(is_held(sp, id));
	CHECK(exists("msg", id) && !exists("env", id));
	for (int i = 0; i < NAMES; i++) {
		snprintf(p, sizeof(p), "%s/tmp/%s.u%d", root, id, i);
		CHECK_EQ(0, rmdir(p));
	}
	w.calls = 0;
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!is_held(sp, id));
	CHECK(!exists("msg", id) && !exists("env", id));
	retire_now(sp); /* its first tick lets retiring go on after the failure */
	CHECK(!exists("msg", id) && !exists("env", id));
}

/* A sealed segment's retire waits for its held messages' removal (no
 * file ever written), or past a tick writes their files first. */
static void
test_retire(struct spool *sp)
{
	char id[ID_SIZE];
	commit_held(sp, "delivered\r\n", 11, id);
	spool_tick(sp);
	CHECK(spool_tick(sp));
	drain(sp);
	CHECK(is_held(sp, id));
	CHECK_EQ(1, count_segments());
	struct waiter d = { 0 };
	CHECK_EQ(0, spool_remove(sp, id, on_done, &d));
	wait_for(&d);
	CHECK_EQ(0, d.status);
	drain(sp);
	/* the sealed one retired; its 'D' record opened the other */
	CHECK_EQ(1, count_segments());
	CHECK(!exists("msg", id) && !exists("env", id));
	spool_tick(sp);
	CHECK(spool_tick(sp));
	drain(sp);
	CHECK_EQ(0, count_segments());

	commit_held(sp, "retire me\r\n", 11, id);
	CHECK(is_held(sp, id));
	retire_now(sp);
	CHECK(!is_held(sp, id));
	check_file("msg", id, "retire me\r\n");
	CHECK(exists("env", id));
	CHECK_EQ(0, count_segments());
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	CHECK_EQ(0, w.status);
	CHECK(!exists("msg", id) && !exists("env", id));
}

/* An update or removal that comes while the files are being written (a
 * retire's spill) waits for that write: the last word is theirs. */
static void
test_ops_wait_for_spill(struct spool *sp)
{
	char a[ID_SIZE], b[ID_SIZE];
	commit_held(sp, "a\r\n", 3, a);
	commit_held(sp, "b\r\n", 3, b);
	spool_tick(sp);
	CHECK(spool_tick(sp)); /* sealed; its retire waits */
	spool_tick(sp);        /* a whole tick: the spill of a and b queued */
	CHECK(spool_pending(sp) > 0);
	struct waiter wa = { 0 }, wb = { 0 };
	update_to(sp, a, "a\r\n", "erin@example.net", &wa);
	CHECK_EQ(0, spool_remove(sp, b, on_done, &wb));
	drain(sp);
	CHECK_EQ(1, wa.calls);
	CHECK_EQ(0, wa.status);
	CHECK_EQ(1, wb.calls);
	CHECK_EQ(0, wb.status);
	check_file("msg", a, "a\r\n");
	size_t n;
	char err[128];
	struct envelope e;
	char *env = slurp("env", a, &n);
	CHECK_EQ(0, envelope_decode(env, n, &e, err, sizeof(err)));
	CHECK_STR_EQ("erin@example.net", e.rcpts[0].addr);
	envelope_free(&e);
	free(env);
	CHECK(!exists("msg", b) && !exists("env", b));
	CHECK_EQ(0, count_entries("tmp"));
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, a, on_done, &w));
	wait_for(&w);
}

/*
 * Segments seal at SPOOL_LOG_SEG_MAX while mail keeps coming and none is
 * delivered: a retire waits for held messages only while no more than
 * SPOOL_RETIRE_WAIT segments are sealed; past that the oldest one's held
 * messages get their files and it goes. The log stays that size, and
 * every message is held or has its files. 100 x 511 KiB: more than
 * SPOOL_RETIRE_WAIT + 1 segments, and more than the held budget (32
 * MiB), past which a commit writes its files itself.
 */
static void
test_sealed_by_size(struct spool *sp)
{
	size_t big = SPOOL_LOG_BODY_MAX - 1024;
	char *body = malloc(big);
	CHECK(body != NULL);
	memset(body, 'y', big);
	enum { N = 100 };
	static char ids[N][ID_SIZE];
	int most = 0;
	for (int i = 0; i < N; i++) {
		commit_held(sp, body, big, ids[i]);
		drain(sp);
		if (count_segments() > most)
			most = count_segments();
	}
	int held = 0;
	for (int i = 0; i < N; i++)
		if (is_held(sp, ids[i]))
			held++;
		else
			CHECK(exists("msg", ids[i]) && exists("env", ids[i]));
	CHECK(held > 0);
	CHECK(!is_held(sp, ids[0]));
	CHECK(is_held(sp, ids[N - 1]));
	/* the sealed ones the retire waits behind, the one it spills, the
	 * current one */
	CHECK(most <= (int)SPOOL_RETIRE_WAIT + 2);
	CHECK(most >= (int)SPOOL_RETIRE_WAIT);
	for (int i = 0; i < N; i++) {
		struct waiter w = { 0 };
		CHECK_EQ(0, spool_remove(sp, ids[i], on_done, &w));
		wait_for(&w);
		CHECK_EQ(0, w.status);
	}
	drain(sp);
	free(body);
}

/* A child commits and dies without closing (a crash): the next open
 * rebuilds the held message's files from its log record. */
static void
test_crash(const char *dir)
{
	int pfd[2];
	CHECK_EQ(0, pipe(pfd));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct spool *sp;
		char err[256];
		close(pfd[0]);
		/* The parent's loop is initialised only after this child
		 * exits: nothing of it is shared. */
		if (uv_loop_init(&loop) != 0 ||
		    spool_open(&loop, dir, &sp, err, sizeof(err)) != 0)
			_exit(2);
		spool_recover(sp, NULL, NULL);
		char id[ID_SIZE];
		commit_held(sp, "crash\r\n", 7, id);
		if (write(pfd[1], id, ID_SIZE) != ID_SIZE || !is_held(sp, id))
			_exit(3);
		_exit(0); /* no spool_close: the files are never written */
	}
	close(pfd[1]);
	char id[ID_SIZE] = "";
	CHECK_EQ(ID_SIZE, read(pfd[0], id, ID_SIZE));
	close(pfd[0]);
	int status;
	CHECK_EQ(pid, waitpid(pid, &status, 0));
	CHECK_EQ(0, uv_loop_init(&loop));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(!exists("msg", id) && !exists("env", id));
	CHECK(count_entries("log") > 0);
	struct spool *sp;
	char err[256];
	CHECK_EQ(0, spool_open(&loop, dir, &sp, err, sizeof(err)));
	struct seen s = { 0 };
	CHECK_EQ(1, spool_recover(sp, on_each, &s));
	check_file("msg", id, "crash\r\n");
	CHECK_STR_EQ(id, s.ids[0]);
	CHECK_STR_EQ("bob@example.net", s.rcpt[0]);
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, id, on_done, &w));
	wait_for(&w);
	drain(sp);
	spool_close(sp);
}

int
main(void)
{
	struct spool *sp;
	char err[256];
	fixture_start("test_spool_held", "held");
	test_crash(root);

	CHECK_EQ(0, spool_open(&loop, root, &sp, err, sizeof(err)));
	CHECK_EQ(0, spool_recover(sp, NULL, NULL));
	test_held_read(sp);
	char kept[ID_SIZE];
	test_update(sp, kept);
	test_retire(sp);
	test_failed_update(sp);
	test_ops_wait_for_spill(sp);
	test_sealed_by_size(sp);
	/* spool_close writes what is still held, so the spool on disk is
	 * whole for the offline `outbox queue`; a removal ('D') stays out. */
	char open_id[ID_SIZE], gone[ID_SIZE];
	commit_held(sp, "at close\r\n", 10, open_id);
	commit_held(sp, "removed\r\n", 9, gone);
	struct waiter w = { 0 };
	CHECK_EQ(0, spool_remove(sp, gone, on_done, &w));
	wait_for(&w);
	CHECK(is_held(sp, open_id) && !is_held(sp, gone));
	drain(sp);
	spool_close(sp);
	check_file("msg", open_id, "at close\r\n");
	CHECK(exists("env", open_id));
	CHECK(!exists("msg", gone) && !exists("env", gone));

	/* And the next open finds exactly those two, with nothing from the
	 * log brought back. */
	CHECK_EQ(0, spool_open(&loop, root, &sp, err, sizeof(err)));
	struct seen s = { 0 };
	CHECK_EQ(2, spool_recover(sp, on_each, &s));
	bool saw_kept = false, saw_open = false;
	for (int i = 0; i < s.n && i < 8; i++) {
		saw_kept |= strcmp(s.ids[i], kept) == 0;
		saw_open |= strcmp(s.ids[i], open_id) == 0;
	}
	CHECK(saw_kept && saw_open);
	CHECK(!exists("msg", gone) && !exists("env", gone));
	drain(sp);
	spool_close(sp);

	fixture_finish();
	CHECK_DONE();
}
