/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_TEST_SPOOL_FIXTURE_H
#define OUTBOX_TEST_SPOOL_FIXTURE_H
/*
 * What the spool's tests share: a spool in a mkdtemp directory (root) on
 * a real libuv loop, a callback that records its calls, bounded loop
 * runs, and reading, planting and counting the spool's entries. Each
 * test file includes it once (static inline: a file uses what it needs).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "check.h"
#include "outbox/envelope.h"
#include "outbox/log.h"
#include "outbox/spool.h"

static char root[64];
static uv_loop_t loop;

struct waiter {
	int calls;
	int status;
};

static inline void
on_done(void *arg, int status)
{
	struct waiter *w = arg;
	w->calls++;
	w->status = status;
}

/* Run the loop until w has been called (bounded). */
static inline void
wait_for(struct waiter *w)
{
	for (int i = 0; i < 1000 && w->calls == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ(1, w->calls);
}

/* Run the loop until the spool has nothing in flight (bounded). */
static inline void
drain(struct spool *sp)
{
	for (int i = 0; i < 100000 && spool_pending(sp) > 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ(0, spool_pending(sp));
}

static inline void
path_of(char *out, size_t size, const char *sub, const char *name)
{
	snprintf(out, size, "%s/%s/%s", root, sub, name);
}

static inline int
count_entries(const char *sub)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, sub);
	DIR *d = opendir(p);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Segments in log/: not the recycled files (NAME.free). */
static inline int
count_segments(void)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/log", root);
	DIR *d = opendir(p);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strlen(de->d_name) == 16;
	closedir(d);
	return n;
}

static inline bool
exists(const char *sub, const char *name)
{
	char p[256];
	struct stat st;
	path_of(p, sizeof(p), sub, name);
	return lstat(p, &st) == 0;
}

/* Read a whole file (at most 1 MiB) into a heap buffer the caller frees;
 * *n gets its size. */
static inline char *
slurp(const char *sub, const char *name, size_t *n)
{
	char p[256];
	path_of(p, sizeof(p), sub, name);
	FILE *f = fopen(p, "rb");
	CHECK(f != NULL);
	char *data = malloc(1 << 20);
	CHECK(data != NULL);
	*n = fread(data, 1, 1 << 20, f);
	fclose(f);
	return data;
}

static inline void
plant(const char *sub, const char *name, const void *data, size_t n)
{
	char p[256];
	path_of(p, sizeof(p), sub, name);
	FILE *f = fopen(p, "wb");
	CHECK(f != NULL);
	CHECK_EQ(n, fwrite(data, 1, n, f));
	CHECK_EQ(0, fclose(f));
}

/* An envelope from alice@example.org to rcpt; the caller frees it. */
static inline void
make_env(struct envelope *e, const char *rcpt)
{
	envelope_init(e);
	e->sender = strdup("alice@example.org");
	e->arrival = 1700000000;
	snprintf(e->client, sizeof(e->client), "[127.0.0.1]:1234");
	CHECK_EQ(0, envelope_add_rcpt(e, rcpt));
}

/* A test's start: its log lines on stderr under its name, and root a
 * fresh directory /tmp/outbox-<what>-XXXXXX (the loop is the caller's to
 * initialise: a test may fork first). */
static inline void
fixture_start(const char *name, const char *what)
{
	log_init(name, LOG_TO_STDERR, LOG_LVL_INFO);
	snprintf(root, sizeof(root), "/tmp/outbox-%s-XXXXXX", what);
	CHECK(mkdtemp(root) != NULL);
}

/* nftw callback: remove everything under root at the end. */
static inline int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* A test's end, its spools closed: the loop closes with nothing left on
 * it, and root goes. */
static inline void
fixture_finish(void)
{
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_EQ(0, uv_loop_close(&loop));
	uv_library_shutdown();
	CHECK_EQ(0, nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS));
}

#endif
