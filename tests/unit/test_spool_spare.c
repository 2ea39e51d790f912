/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * Recycled queue files (spool_spare.c) on real directories in a mkdtemp
 * folder: a removal becomes an empty spare with the same inode, and a
 * creation takes it back; the names behave as unlinkat and O_CREAT|O_EXCL
 * would (-ENOENT, -EEXIST, the target never touched); at most
 * SPOOL_SPARE_MAX spares, the rest unlinked; a spare gone from spare/ is
 * skipped; start-up empties spare/.
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

#include "check.h"
#include "../../src/io/spool_priv.h"

static char root[64];
static int dirfd_ = -1;   /* the "msg/" stand-in */
static struct spool *sp;

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

static int
count(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	DIR *d = fdopendir(fd);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void
put(const char *name, const char *text)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);
	CHECK(fd >= 0);
	CHECK_EQ((ssize_t)strlen(text), write(fd, text, strlen(text)));
	CHECK_EQ(0, close(fd));
}

static struct stat
stat_of(int dfd, const char *name)
{
	struct stat st;
	CHECK_EQ(0, fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW));
	return st;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

/* Removal and creation: same inode, emptied, names as the syscalls. */
static void
test_round_trip(void)
{
	put("a", "the first message, longer than the next\r\n");
	ino_t ino = stat_of(dirfd_, "a").st_ino;
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "a"));
	CHECK_EQ(-1, faccessat(dirfd_, "a", F_OK, AT_SYMLINK_NOFOLLOW));
	CHECK_EQ(1, count(sp->sub[SPOOL_SPARE]));
	CHECK_EQ(-ENOENT, spool_spare_recycle(sp, dirfd_, "a"));
	CHECK_EQ(1, count(sp->sub[SPOOL_SPARE]));

	int fd = spool_spare_create(sp, dirfd_, "b");
	CHECK(fd >= 0);
	struct stat st;
	CHECK_EQ(0, fstat(fd, &st));
	CHECK_EQ(ino, st.st_ino);
	CHECK_EQ(0, st.st_size);
	CHECK_EQ(0600, st.st_mode & 07777);
	CHECK_EQ(3, write(fd, "new", 3));
	CHECK_EQ(0, close(fd));
	CHECK_EQ(3, stat_of(dirfd_, "b").st_size);
	CHECK_EQ(0, count(sp->sub[SPOOL_SPARE]));

	/* no spare left: a new file */
	fd = spool_spare_create(sp, dirfd_, "c");
	CHECK(fd >= 0);
	CHECK_EQ(0, close(fd));
	CHECK(stat_of(dirfd_, "c").st_ino != ino);
}

/* An existing target is -EEXIST with or without a spare, untouched. */
static void
test_exists(void)
{
	put("d", "keep me");
	CHECK_EQ(-EEXIST, spool_spare_create(sp, dirfd_, "d"));
	put("e", "to recycle");
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "e"));
	CHECK_EQ(-EEXIST, spool_spare_create(sp, dirfd_, "d"));
	CHECK_EQ(7, stat_of(dirfd_, "d").st_size);
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "d"));
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "b"));
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "c"));
}

/* A spare someone removed from spare/ is skipped, not an error. */
static void
test_vanished(void)
{
	spool_spares_clear(sp);   /* the list still names them */
	CHECK_EQ(0, count(sp->sub[SPOOL_SPARE]));
	int fd = spool_spare_create(sp, dirfd_, "f");
	CHECK(fd >= 0);
	CHECK_EQ(0, close(fd));
	CHECK_EQ(0, sp->spares.n);
	CHECK_EQ(0, sp->spares.held);
	CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, "f"));
	CHECK_EQ(1, count(sp->sub[SPOOL_SPARE]));
	spool_spares_clear(sp);
	CHECK_EQ(0, count(sp->sub[SPOOL_SPARE]));
	spool_spares_destroy(&sp->spares);
	CHECK_EQ(0, spool_spares_init(&sp->spares));
}

/* At most SPOOL_SPARE_MAX spares; removals beyond unlink. */
static void
test_limit(void)
{
	char name[32];
	int extra = 5;
	for (int i = 0; i < SPOOL_SPARE_MAX + extra; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		put(name, "x");
	}
	for (int i = 0; i < SPOOL_SPARE_MAX + extra; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		CHECK_EQ(0, spool_spare_recycle(sp, dirfd_, name));
	}
	CHECK_EQ(0, count(dirfd_));
	CHECK_EQ(SPOOL_SPARE_MAX, count(sp->sub[SPOOL_SPARE]));
	for (int i = 0; i < SPOOL_SPARE_MAX + 1; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		int fd = spool_spare_create(sp, dirfd_, name);
		CHECK(fd >= 0);
		CHECK_EQ(0, close(fd));
	}
	CHECK_EQ(0, count(sp->sub[SPOOL_SPARE]));
	CHECK_EQ(SPOOL_SPARE_MAX + 1, count(dirfd_));
}

int
main(void)
{
	snprintf(root, sizeof(root), "/tmp/outbox-spare-XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	sp = calloc(1, sizeof(*sp));
	CHECK(sp != NULL);
	dirfd_ = open_sub("msg");
	sp->sub[SPOOL_SPARE] = open_sub("spare");
	CHECK_EQ(0, spool_spares_init(&sp->spares));

	test_round_trip();
	test_exists();
	test_vanished();
	test_limit();

	spool_spares_destroy(&sp->spares);
	close(sp->sub[SPOOL_SPARE]);
	close(dirfd_);
	free(sp);
	CHECK_EQ(0, nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS));
	CHECK_DONE();
}
