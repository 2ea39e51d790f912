#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""[daemon] user: outboxd started as root binds, then becomes that user for
good (real, effective, saved and file-system ids; supplementary groups; no
capabilities), and still accepts, delivers and answers the control socket.
Everything it creates in the spool belongs to the user. A user that does
not exist is refused as root with a clear error; a spool the user cannot
write fails at start with a hint. Needs root: skipped otherwise."""
import grp
import os
import pwd
import re
import stat
import subprocess
import unittest

import harness
from harness import OutboxTestCase, make_message

USER = "nobody"  # present on every Debian system, owns nothing of ours


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@unittest.skipUnless(os.geteuid() == 0, "needs root: outboxd drops from root to [daemon] user")
class PrivDrop(OutboxTestCase):

    def setUp(self):
        super().setUp()
        # The daemon, once dropped, must be able to walk to its spool.
        os.chmod(self.tmp, 0o755)
        self.pw = pwd.getpwnam(USER)

    def daemon(self, user=USER, start=True, **kw):
        settings = kw.pop("settings", {})
        settings.setdefault("daemon", {})["user"] = user
        return self.outboxd(start=start, settings=settings, **kw)

    def test_drops_to_user_and_still_delivers(self):
        sh = self.smarthost()
        d = self.daemon(relay=[sh.port])
        d.wait_log(r"running as user %s \(uid %d, gid %d\)" % (USER, self.pw.pw_uid,
                                                              self.pw.pw_gid), 10)
        st = proc_status(d.proc.pid)
        uid, gid = str(self.pw.pw_uid), str(self.pw.pw_gid)
        # real, effective, saved, file system: all the user's, root is gone
        self.assertEqual(st["Uid"].split(), [uid] * 4, st["Uid"])
        self.assertEqual(st["Gid"].split(), [gid] * 4, st["Gid"])
        groups = sorted(int(g) for g in st["Groups"].split())
        expected = sorted({self.pw.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                              if USER in g.gr_mem})
        self.assertEqual(groups, expected, "supplementary groups not the user's")
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            self.assertEqual(int(st[cap], 16), 0, "%s still set: %s" % (cap, st[cap]))

        # it still accepts and delivers
        data = make_message("sent after the privilege drop\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(msgs[0].rcpt_tos, ["rcpt@dest.test"])
        self.assertEqual(msgs[0].body(), data)
        d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=sent" % qid, 10)

        # everything the daemon made in the spool is the user's
        made = [d.spool] + [os.path.join(d.spool, n) for n in os.listdir(d.spool)]
        self.assertIn(os.path.join(d.spool, "lock"), made)
        self.assertIn(os.path.join(d.spool, "control"), made)
        for p in made:
            self.assertEqual(os.lstat(p).st_uid, self.pw.pw_uid, "%s is not %s's" % (p, USER))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d.spool, "maildrop")).st_mode),
                         0o1733)

        # root may still use the control socket (uid 0 is allowed)
        r = harness.run_cmd([harness.cli_path(), "queue", "list", "-c", d.config_path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(d.stop(), 0)

    def test_sendmail_as_another_user_reaches_dropped_daemon(self):
        """The maildrop (1733) made by the dropped daemon takes mail from a
        third user, and the daemon (not root any more) can read it."""
        sh = self.smarthost()
        d = self.daemon(relay=[sh.port])
        d.wait_log(r"running as user %s" % USER, 10)
        os.chmod(d.config_path, 0o644)
        env = dict(os.environ, OUTBOX_CONFIG=d.config_path)
        p = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups",
                            harness.cli_path(), "send", "-i", "dropped@dest.test"],
                           input=b"Subject: maildrop\n\nvia the maildrop\n", env=env,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(msgs[0].rcpt_tos, ["dropped@dest.test"])
        self.assertIn(b"via the maildrop", msgs[0].body())

    def test_missing_user_refused_as_root(self):
        d = self.daemon(user="no-such-user-ob42", start=False)
        rc, log = d.run_to_exit()
        self.assertEqual(rc, 1, log)
        self.assertIn("[daemon] user = no-such-user-ob42: no such user; refusing to run "
                      "as root", log)
        self.assertNotIn("ready", log)
        self.assertFalse(os.path.exists(d.spool), "spool created for a refused start")

    def test_spool_owned_by_root_fails_with_hint(self):
        # This start fails while only the effective uid is switched (real
        # uid still 0): LeakSanitizer cannot attach to such a process
        # ("fatal error ... ptrace"), so leak checking is off for it alone.
        d = self.daemon(start=False, env={
            "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0"})
        os.makedirs(d.spool, mode=0o700)
        rc, log = d.run_to_exit()
        self.assertEqual(rc, 1, log)
        self.assertIn("chown -R %s: %s" % (USER, d.spool), log)
        self.assertRegex(log, r"(?i)permission denied")
        self.assertNotIn("ready", log)

    def test_empty_user_keeps_root(self):
        d = self.daemon(user="")
        st = proc_status(d.proc.pid)
        self.assertEqual(st["Uid"].split(), ["0"] * 4)
        self.assertIsNone(re.search(r"running as user", d.log_text()))


if __name__ == "__main__":
    harness.main()
