#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`outbox send` / `sendmail` writing to the maildrop (issue 5, RELIABILITY.md
G1, G2, G5-G8, G10), without a daemon: the file left in <spool>/maildrop is
decoded here independently of the C code (maildrop.h: "OBXMD1 <len>\\n", the
envelope records "<letter><len>:<bytes>\\n" ending with the CRC-32 'X'
record, then the message whose size and CRC-32 the head gives).
"""
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import unittest
import zlib

import harness
from harness import cli_path

ORDER = "VISTNAZCFH"


def decode_records(rec):
    """The envelope records as a list of (type, bytes); checks the X CRC."""
    out, pos = [], 0
    while pos < len(rec):
        t = chr(rec[pos])
        colon = rec.index(b":", pos)
        n = int(rec[pos + 1:colon])
        val = rec[colon + 1:colon + 1 + n]
        assert rec[colon + 1 + n:colon + 2 + n] == b"\n", "record %s not ended" % t
        if t == "X":
            assert int(val, 16) == zlib.crc32(rec[:pos]), "bad X crc"
            assert colon + 2 + n == len(rec), "data after X"
        out.append((t, val))
        pos = colon + 2 + n
    return out


def decode_drop(data):
    m = re.match(rb"OBXMD1 (\d+)\n", data)
    assert m, "bad magic line %r" % data[:20]
    start = m.end()
    n = int(m.group(1))
    recs = decode_records(data[start:start + n])
    types = "".join(t for t, _ in recs)
    assert types.startswith(ORDER) and types.endswith("X"), types
    head = {t: v for t, v in recs[:len(ORDER)]}
    rcpts = [v.decode() for t, v in recs if t == "R"]
    assert [v for t, v in recs if t == "Q"] == [b"P"] * len(rcpts)
    msg = data[start + n:]
    assert int(head["Z"]) == len(msg), "size"
    assert int(head["C"], 16) == zlib.crc32(msg), "message crc"
    return head, rcpts, msg


class SendDrop(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="outbox-send-")
        os.chmod(self.dir, 0o711)
        self.spool = os.path.join(self.dir, "spool")
        self.drop = os.path.join(self.spool, "maildrop")
        os.mkdir(self.spool, 0o711)
        os.chmod(self.spool, 0o711)
        os.mkdir(self.drop)
        os.chmod(self.drop, 0o1733)
        self.config = os.path.join(self.dir, "outbox.ini")
        self.write_config("")
        # `sendmail` is the same binary called by that name.
        self.sendmail = os.path.join(self.dir, "sendmail")
        os.symlink(cli_path(), self.sendmail)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self, extra):
        with open(self.config, "w") as f:
            f.write("[spool]\ndir = %s\n%s" % (self.spool, extra))
        os.chmod(self.config, 0o644)

    def run_send(self, argv, stdin=b"", user=None, check_rc=None):
        env = dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith("OUTBOX_")}
        env.update({"OUTBOX_CONFIG": self.config,
                    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
        kw = {}
        if user is not None:
            kw["user"], kw["group"] = user.pw_uid, user.pw_gid
            kw["extra_groups"] = []
        res = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, timeout=15, **kw)
        err = res.stderr.decode(errors="replace")
        self.assertNotRegex(err, harness.SANITIZER_RE)
        if check_rc is not None:
            self.assertEqual(res.returncode, check_rc, err)
        return res.returncode, err

    def files(self):
        return sorted(os.listdir(self.drop)) if os.path.isdir(self.drop) else []

    def only_drop(self):
        names = self.files()
        self.assertEqual(len(names), 1, names)
        name = names[0]
        self.assertRegex(name, r"^[0-9A-F]{16}$")
        with open(os.path.join(self.drop, name), "rb") as f:
            head, rcpts, msg = decode_drop(f.read())
        self.assertEqual(head["I"].decode(), name)
        self.assertEqual(head["V"], b"1")
        self.assertNotIn(b"\n", msg.replace(b"\r\n", b""))
        self.assertTrue(msg.endswith(b"\r\n"))
        hdr = msg.split(b"\r\n\r\n", 1)[0]
        return name, head, rcpts, msg, hdr

    def assert_added(self, hdr, name):
        self.assertRegex(hdr, rb"(?m)^Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} "
                              rb"\d{4} \d\d:\d\d:\d\d [+-]\d{4}\r?$")
        self.assertRegex(hdr, rb"(?m)^Message-ID: <" + name.encode() + rb"\.[0-9a-f]{16}@[^>]+>\r?$")

    def assert_nothing_queued(self):
        self.assertEqual(self.files(), [])

    # G6 + A24: the cronie call, LF-only body, 8-bit byte, lone dot with -i.
    def test_cron_call(self):
        body = b"Subject: cron <root@h> run\n\nline 1\n.\nend \xc3\xa9"
        self.run_send([self.sendmail, "-FCronDaemon", "-i", "-B8BITMIME",
                       "-oem", "root"], body, check_rc=0)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assertEqual(rcpts, ["root"])      # the daemon qualifies it
        login = pwd.getpwuid(os.getuid()).pw_name
        sender = head["S"].decode()
        self.assertRegex(sender, "^" + re.escape(login) + r"@[^@]+$")
        self.assertEqual(int(head["F"]) & 1, 1)  # ENV_F_8BIT
        self.assertEqual(head["N"], b"0")
        self.assert_added(hdr, name)
        self.assertIn(b"\r\nFrom: \"CronDaemon\" <" + sender.encode() + b">", hdr)
        self.assertTrue(msg.endswith(b"\r\n\r\nline 1\r\n.\r\nend \xc3\xa9\r\n"), msg)

    # G5: without -i the lone dot ends the message.
    def test_dot_ends_without_i(self):
        self.run_send([cli_path(), "send", "-f", "app@x.test", "u@d.test"],
                      b"Subject: s\n\na\n.\nb\n", check_rc=0)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assertEqual(head["S"], b"app@x.test")
        self.assertEqual(rcpts, ["u@d.test"])
        self.assertTrue(msg.endswith(b"\r\n\r\na\r\n"), msg)
        self.assertRegex(hdr, rb"(?m)^From: <?app@x\.test>?\r?$")

    # G5: with -i (or -oi) the lone dot is text, stored as "." (the wire
    # side stuffs it); the message ends only at the end of input.
    def test_dot_kept_with_i(self):
        for flag in ("-i", "-oi"):
            self.run_send([self.sendmail, flag, "u@d.test"], b"Subject: s\n\na\n.\nb\n",
                          check_rc=0)
            name, head, rcpts, msg, hdr = self.only_drop()
            self.assertTrue(msg.endswith(b"\r\n\r\na\r\n.\r\nb\r\n"), (flag, msg))
            os.unlink(os.path.join(self.drop, name))

    # G3: injection through the sender is refused before anything is
    # written; a quoted local part is kept byte for byte; <> and "" are
    # the null sender.
    def test_g3_sender_injection(self):
        for bad in ["a@b.test\r\nRCPT TO:<victim@x.test>", "a@b.test\nx", "a\x01@b.test",
                    "x" * 290 + "@b.test"]:
            rc, err = self.run_send([self.sendmail, "-f", bad, "u@d.test"], b"Subject: s\n\nb\n")
            self.assertIn(rc, (64, 65), (bad, err))
            self.assertTrue(err.startswith("sendmail: "), err)
            self.assertNotIn("\n", err.rstrip("\n"), "the reason is one line")
            self.assert_nothing_queued()
        self.run_send([self.sendmail, "-f", '"x -X/y"@b.test', "u@d.test"],
                      b"Subject: s\n\nb\n", check_rc=0)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assertEqual(head["S"], b'"x -X/y"@b.test')
        self.assertEqual(rcpts, ["u@d.test"])
        os.unlink(os.path.join(self.drop, name))
        for null in ("<>", ""):
            self.run_send([self.sendmail, "-f", null, "u@d.test"], b"Subject: s\n\nb\n",
                          check_rc=0)
            name, head, rcpts, msg, hdr = self.only_drop()
            self.assertEqual(head["S"], b"", null)
            os.unlink(os.path.join(self.drop, name))

    # G9: the command has no set-user or set-group bit; it needs none.
    def test_g9_not_setuid(self):
        mode = os.stat(cli_path()).st_mode
        self.assertFalse(mode & (stat.S_ISUID | stat.S_ISGID), oct(mode))

    # G10: 50 MB on stdin against a 1 MB limit: 65, no file, and the
    # command's memory stays bounded by the limit, not by the input.
    def test_g10_50mb_over_limit_bounded(self):
        self.write_config("[listen]\nmax_message_size = 1M\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update(OUTBOX_CONFIG=self.config, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1")
        proc = subprocess.Popen([self.sendmail, "u@d.test"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        line = b"y" * 1000 + b"\n"
        try:
            for _ in range(50 * 1000):
                proc.stdin.write(line)
        except BrokenPipeError:
            pass   # it stopped reading at the limit: allowed
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        err = proc.stderr.read().decode(errors="replace")
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
        self.assertIn(proc.returncode, (65, 73), err)
        self.assertIn("too large", err)
        self.assert_nothing_queued()
        self.assertEqual([n for n in os.listdir(self.drop) if n.startswith("tmp")], [])
        # ru_maxrss is in KiB; 50 MB held would show (ASan adds its own).
        self.assertLess(usage.ru_maxrss, 45 * 1024, "max RSS %d KiB" % usage.ru_maxrss)

    # G7: -t takes To/Cc/Bcc plus the operands, and removes Bcc.
    def test_extract_rcpts(self):
        msg_in = (b"From: App <app@x.test>\r\nTo: A <a@d.test>,\r\n b@d.test\r\n"
                  b"Cc: undisclosed-recipients:;, c@d.test\r\nBcc: hidden@d.test,\r\n"
                  b"  hidden2@d.test\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n"
                  b"Subject: s\r\n\r\nbody\r\n")
        self.run_send([self.sendmail, "-t", "-i", "-f", "<>", "extra@e.test",
                       "a@d.test"], msg_in, check_rc=0)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assertEqual(head["S"], b"")
        self.assertEqual(sorted(rcpts), sorted(["extra@e.test", "a@d.test", "b@d.test",
                                                "c@d.test", "hidden@d.test",
                                                "hidden2@d.test"]))
        self.assertNotIn(b"hidden", msg)
        self.assertNotIn(b"Bcc", msg)
        self.assertEqual(hdr.count(b"Date:"), 1)   # present: not added again
        self.assertEqual(hdr.count(b"From:"), 1)
        self.assertIn(b"Message-ID: <" + name.encode(), hdr)

    # G1/G2/G7/G10: refused input queues nothing.
    def test_refusals(self):
        cases = [
            ([self.sendmail, "-C", "x", "u@d.test"], b"Subject: s\n\nb\n", 64),
            ([self.sendmail, "-X./x.log", "u@d.test"], b"Subject: s\n\nb\n", 64),
            ([self.sendmail, "--", "-oQ.", "u@d.test"], b"Subject: s\n\nb\n", 64),
            ([self.sendmail, "bad address@d.test"], b"Subject: s\n\nb\n", 64),
            ([self.sendmail, "-t"], b"Subject: none\n\nb\n", 65),
            ([self.sendmail, "-t"], b"To: a@@d.test\n\nb\n", 65),
            ([self.sendmail, "u@d.test"], b"Subject: s\n\nnul\x00\n", 65),
        ]
        for argv, data, want in cases:
            rc, err = self.run_send(argv, data)
            self.assertEqual(rc, want, (argv, err))
            self.assertTrue(err.startswith("sendmail: "), err)
            self.assert_nothing_queued()
        self.assertFalse(os.path.exists("x.log"))
        rc, err = self.run_send([self.sendmail, "-t"], b"Subject: s\n\nb\n")
        self.assertIn("no recipient addresses found in message header", err)

    # G10: over [listen] max_message_size: 65, nothing queued.
    def test_too_large(self):
        self.write_config("[listen]\nmax_message_size = 4K\n")
        rc, err = self.run_send([self.sendmail, "u@d.test"],
                                b"Subject: s\n\n" + b"x" * 100 + b"\n" * 100)
        self.assertEqual(rc, 0, err)
        os.unlink(os.path.join(self.drop, self.files()[0]))
        rc, err = self.run_send([self.sendmail, "u@d.test"],
                                b"Subject: s\n\n" + (b"x" * 70 + b"\n") * 200)
        self.assertEqual(rc, 65, err)
        self.assertIn("too large", err)
        self.assert_nothing_queued()

    # G8: no spool to write to: 75 and a clear message.
    def test_unwritable_is_tempfail(self):
        shutil.rmtree(self.spool)
        rc, err = self.run_send([self.sendmail, "u@d.test"], b"Subject: s\n\nb\n")
        self.assertEqual(rc, 75, err)
        self.assertIn("sendmail: cannot queue the message:", err)
        self.assertIn("maildrop", err)

    # The maildrop missing under an existing spool: created 1733 (as root).
    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_maildrop_created_as_root(self):
        os.rmdir(self.drop)
        self.run_send([self.sendmail, "u@d.test"], b"Subject: s\n\nb\n", check_rc=0)
        self.assertEqual(stat.S_IMODE(os.stat(self.drop).st_mode), 0o1733)
        self.only_drop()

    # G9: an unprivileged caller can drop into a 1733 directory it cannot
    # read (fsync of the directory is replaced by syncfs).
    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch user")
    def test_unprivileged_user(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        os.chmod(self.dir, 0o711)
        rc, err = self.run_send([self.sendmail, "root"], b"Subject: s\n\nb\n", user=nobody)
        if rc == 126 or "Permission denied" in err and not self.files():
            self.skipTest("binary not executable by nobody: " + err)
        self.assertEqual(rc, 0, err)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assertEqual(os.stat(os.path.join(self.drop, name)).st_uid, nobody.pw_uid)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.drop, name)).st_mode), 0o644)
        self.assertTrue(head["S"].decode().startswith("nobody@"))
        self.assertEqual(head["H"], b"uid %d" % nobody.pw_uid)

    # Many recipients on the command line, with duplicates dropped.
    def test_many_recipients(self):
        rcpts = ["r%d@d.test" % i for i in range(10000)]   # G10
        self.run_send([self.sendmail, "-i"] + rcpts + rcpts[:10], b"Subject: s\n\nb\n",
                      check_rc=0)
        name, head, got, msg, hdr = self.only_drop()
        self.assertEqual(got, rcpts)

    def test_empty_stdin_is_queued(self):
        self.run_send([self.sendmail, "u@d.test"], b"", check_rc=0)
        name, head, rcpts, msg, hdr = self.only_drop()
        self.assert_added(hdr, name)


if __name__ == "__main__":
    harness.main()
