/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_PRIVDROP_H
#define OUTBOX_PRIVDROP_H
/*
 * Dropping root for [daemon] user (daemon/privdrop.c), in three steps
 * around start-up, so that everything outboxd creates in the spool is
 * owned by that user and only the bind of port 25 is done as root:
 *
 *   privdrop_begin()    resolve the user; create the spool dir if it is
 *                       missing (owned by the user); switch the EFFECTIVE
 *                       ids to the user (real and saved stay root);
 *   ... spool_open(), recovery: files are created as the user ...
 *   privdrop_bind()     effective uid back to root, for listener_start();
 *   ... listener_start(): binds port 25 ...
 *   privdrop_finish()   switch real, effective and saved ids for good
 *                       (supplementary groups first, then gid, then uid)
 *                       and verify that root cannot be regained.
 *
 * Not started as root, every step is a no-op: a service manager already
 * chose the user (systemd User=outbox). Then a [daemon] user naming a
 * different user only draws a warning, because it cannot be honoured.
 * A [daemon] user that does not exist is an error in every case; as root
 * it would mean running mail as root.
 * Start-up only (not thread-safe against concurrent credential changes;
 * glibc applies set*id to every thread).
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop {
	bool active;     /* started as root and told to become another user */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* 0, or -1 with err (a full sentence, no "outboxd:" prefix). Warnings
 * (not root, spool owned by someone else) go to the log. */
int privdrop_begin(struct privdrop *p, const char *user, const char *spool_dir,
		   char *err, size_t errlen);
/* 0, or -1 with err. */
int privdrop_bind(struct privdrop *p, char *err, size_t errlen);
/* 0, or -1 with err; logs "running as user NAME (uid U, gid G)". */
int privdrop_finish(struct privdrop *p, char *err, size_t errlen);

#endif
