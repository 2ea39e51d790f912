/* SPDX-License-Identifier: MIT */
/*
 * privdrop: outboxd started as root becomes [daemon] user (see
 * include/outbox/privdrop.h for the three steps and their order).
 *
 * Why effective ids first: the spool is opened, locked and recovered
 * before the listener binds, and whatever that creates (lock, tmp/,
 * msg/, env/, corrupt/) must belong to the user the daemon runs as
 * afterwards, without the daemon ever chown()ing files it did not make
 * (fixing an existing spool's ownership is the package's postinst's
 * job). Working as the user from the start also means a spool the user
 * cannot write fails at start-up, not at the first message.
 *
 * The final switch follows the usual order: supplementary groups
 * (initgroups, done in privdrop_begin while still root), then the gid,
 * then the uid (after setuid the process could no longer change its
 * gid). setresuid/setresgid set real, effective and saved ids at once,
 * and the result is verified: every id is the user's and setuid(0) fails.
 */
#define _GNU_SOURCE /* getresuid, setresuid and friends */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/log.h"
#include "outbox/privdrop.h"
#include "outbox/str.h"

/* getpwnam_r's buffer; sysconf(_SC_GETPW_R_SIZE_MAX) is 1024 on glibc. */
#define PRIVDROP_PWBUF 16384

static int
privdrop_lookup(struct privdrop *p, const char *user, char *err,
		size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[PRIVDROP_PWBUF];
	int r = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (res == NULL) {
		snprintf(err, errlen, "[daemon] user = %s: %s%s", user,
			 r != 0 ? strerror(r) : "no such user",
			 geteuid() == 0 ? "; refusing to run as root" : "");
		return -1;
	}
	p->uid = pw.pw_uid;
	p->gid = pw.pw_gid;
	if (str_copy(p->name, sizeof(p->name), user) != 0) {
		snprintf(err, errlen, "[daemon] user = %s: name too long", user);
		return -1;
	}
	return 0;
}

/*
 * A missing spool dir is created here, as root (its parent, such as
 * /var/spool, is root's), and given to the user: a path the daemon makes
 * is owned correctly. An existing one is left alone, with a warning if
 * it belongs to someone else.
 */
static int
privdrop_spool(const struct privdrop *p, const char *dir, char *err,
	       size_t errlen)
{
	struct stat st;
	if (mkdir(dir, 0750) == 0) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					   O_CLOEXEC);
		int r = fd >= 0 && fchown(fd, p->uid, p->gid) == 0 ? 0 : -1;
		if (r != 0)
			snprintf(err, errlen, "cannot give the new spool %s to "
				 "user %s: %s", dir, p->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	/* Other errors are reported by spool_open, which tries again. */
	if (errno == EEXIST && stat(dir, &st) == 0 && st.st_uid != p->uid)
		log_warn("spool %s belongs to uid %u, not to [daemon] user %s "
			 "(uid %u); if start-up fails, run: chown -R %s: %s",
			 dir, (unsigned)st.st_uid, p->name, (unsigned)p->uid,
			 p->name, dir);
	return 0;
}

int
privdrop_begin(struct privdrop *p, const char *user, const char *spool_dir,
	       char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (user == NULL || user[0] == '\0')
		return 0;
	if (privdrop_lookup(p, user, err, errlen) != 0)
		return -1;
	if (geteuid() != 0) {
		if (p->uid != geteuid())
			log_warn("[daemon] user = %s ignored: not started as "
				 "root (running as uid %u)", user,
				 (unsigned)geteuid());
		return 0;
	}
	if (p->uid == 0)
		return 0; /* user = root: nothing to drop */
	if (privdrop_spool(p, spool_dir, err, errlen) != 0)
		return -1;
	if (initgroups(p->name, p->gid) != 0 || setegid(p->gid) != 0 ||
	    seteuid(p->uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", p->name,
			 strerror(errno));
		return -1;
	}
	p->active = true;
	return 0;
}

int
privdrop_bind(struct privdrop *p, char *err, size_t errlen)
{
	if (!p->active || geteuid() == 0)
		return 0;
	if (seteuid(0) != 0) {
		snprintf(err, errlen, "cannot take back root to bind: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* True if every uid and gid is the user's and root is out of reach. */
static bool
privdrop_verified(const struct privdrop *p)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
		return false;
	if (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid ||
	    eg != p->gid || sg != p->gid)
		return false;
	/* These must fail now; if one works, we still hold root. */
	if (setuid(0) == 0 || seteuid(0) == 0)
		return false;
	if (p->gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		return false;
	return true;
}

int
privdrop_finish(struct privdrop *p, char *err, size_t errlen)
{
	if (!p->active)
		return 0;
	if (privdrop_bind(p, err, errlen) != 0)
		return -1;
	if (setresgid(p->gid, p->gid, p->gid) != 0 ||
	    setresuid(p->uid, p->uid, p->uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", p->name,
			 strerror(errno));
		return -1;
	}
	if (!privdrop_verified(p)) {
		snprintf(err, errlen, "switched to user %s, but root could be "
			 "regained; refusing to run", p->name);
		return -1;
	}
	p->active = false;
	log_info("running as user %s (uid %u, gid %u)", p->name,
		 (unsigned)p->uid, (unsigned)p->gid);
	return 0;
}
