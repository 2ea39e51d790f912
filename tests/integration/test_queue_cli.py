#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`outbox queue` and `mailq` (DESIGN.md command line): the daemon's control
socket (<spool>/control) and the spool read directly when the daemon is
down.

The smarthost is down at first and retry_min is 1 hour, so after the first
failed attempt a message only moves when the CLI makes it: flush, release.
"""
import json
import os
import re
import shutil
import smtplib
import socket
import stat
import subprocess
import time

import harness
from harness import OutboxTestCase, make_message, free_port, run_cmd, cli_path

SLOW_RETRY = {"spool": {"retry_min": "1h", "retry_max": "2h"}}
UNKNOWN = "0000000000000001"


def token_of(msg):
    m = re.search(rb"X-Test-Token: (\S+)", msg.data)
    return m.group(1).decode() if m else None


def fake_closed(fake):
    """Whether the fake SMTP peer has closed its (first) connection: the
    "closed" line of its transcript, written once the socket is closed."""
    try:
        with open(fake.transcript_path, encoding="utf-8", errors="replace") as f:
            return re.search(r"(?m)^1 closed", f.read()) is not None
    except FileNotFoundError:
        return False


class QueueCli(OutboxTestCase):

    # -- helpers
    def q(self, d, *args, argv0=None, env=None):
        argv = [argv0] if argv0 else [cli_path(), "queue"]
        res = run_cmd(argv + list(args) + ["-c", d.config_path], env=env)
        self.assertNotRegex(res.stderr, harness.SANITIZER_RE)
        return res

    def q_json(self, d, *args):
        res = self.q(d, *args, "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def send(self, d, tok, rcpts=("rcpt@dest.test",), sender="app@local.test"):
        data = make_message("body %s\r\n" % tok, subject="cli-test-%s" % tok,
                            sender=sender, to=rcpts[0],
                            headers=["X-Test-Token: " + tok])
        return d.send_ok(sender, list(rcpts), data)

    def wait_deferred(self, d, qids):
        harness.wait_for(lambda: all(d.deliveries(status="deferred", qid=q) for q in qids),
                         15, "first attempts of %s deferred" % (qids,))

    def delivered_tokens(self, sh):
        return sorted(token_of(m) for m in sh.messages())

    # -- through the daemon
    def test_daemon_list_show_hold_delete_flush_release(self):
        port = free_port()  # the smarthost is down
        d = self.outboxd(relay=[port], settings=SLOW_RETRY)
        sock = os.path.join(d.spool, "control")
        # The daemon binds the socket, then narrows its mode before it
        # listens (nobody can connect meanwhile); the SMTP port can be
        # ready first, so a slow start (valgrind) shows the bind's mode
        # for a moment.
        harness.wait_for(lambda: os.path.exists(sock) and
                         stat.S_IMODE(os.lstat(sock).st_mode) == 0o660, 10,
                         "control socket with mode 0660")
        st = os.lstat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)

        a = self.send(d, "A", rcpts=("r1@dest.test", "r2@dest.test"))
        b = self.send(d, "B")
        c = self.send(d, "C", sender="")
        e = self.send(d, "E")
        self.wait_deferred(d, [a, b, c, e])

        # list --json: every message, in id (arrival) order.
        lst = self.q_json(d, "list")
        self.assertEqual([m["id"] for m in lst], sorted([a, b, c, e]))
        ma = next(m for m in lst if m["id"] == a)
        self.assertEqual(ma["sender"], "app@local.test")
        self.assertEqual([r["address"] for r in ma["recipients"]],
                         ["r1@dest.test", "r2@dest.test"])
        self.assertEqual({r["state"] for r in ma["recipients"]}, {"pending"})
        self.assertGreaterEqual(ma["attempts"], 1)
        self.assertFalse(ma["held"])
        self.assertIsInstance(ma["last_error"], str)
        self.assertGreater(ma["next_attempt"], time.time() + 1800)
        self.assertGreater(ma["size"], 0)
        self.assertLessEqual(abs(ma["arrival"] - time.time()), 60)
        self.assertEqual(next(m for m in lst if m["id"] == c)["sender"], "")

        # list as text, and mailq by argv[0] (a symlink named mailq).
        res = self.q(d, "list")
        self.assertEqual(res.returncode, 0, res.stderr)
        for qid in (a, b, c, e):
            self.assertRegex(res.stdout, r"(?m)^%s[ *!]\s+\d+\s" % qid)
        self.assertRegex(res.stdout, r"(?m)^    pending\s+r2@dest\.test$")
        self.assertIn("-- ", res.stdout)
        self.assertRegex(res.stdout, r"-- \d+ KiB in 4 requests\.\n$")
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        mailq = os.path.join(bindir, "mailq")
        os.symlink(os.path.abspath(cli_path()), mailq)
        mq = self.q(d, argv0=mailq)
        self.assertEqual(mq.returncode, 0, mq.stderr)
        self.assertEqual(mq.stdout, res.stdout)
        mqj = self.q(d, "--json", argv0=mailq)
        self.assertEqual([m["id"] for m in json.loads(mqj.stdout)], sorted([a, b, c, e]))
        self.assertEqual(self.q(d, "list", argv0=mailq).returncode, 64)

        # show: the envelope and the header section.
        sj = self.q_json(d, "show", a)
        self.assertEqual(sj["id"], a)
        self.assertIn("Subject: cli-test-A\r\n", sj["headers"])
        self.assertNotIn("body A", sj["headers"])
        self.assertFalse(sj["headers_truncated"])
        st_ = self.q(d, "show", a)
        self.assertEqual(st_.returncode, 0, st_.stderr)
        self.assertIn("Queue ID:   %s" % a, st_.stdout)
        self.assertIn("    Subject: cli-test-A\n", st_.stdout)
        self.assertIn("r1@dest.test", st_.stdout)

        # Unknown ids, bad ids, bad commands.
        for args in (("show", UNKNOWN), ("hold", UNKNOWN), ("release", UNKNOWN),
                     ("delete", UNKNOWN), ("flush", UNKNOWN)):
            r = self.q(d, *args)
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
            self.assertIn("no such message", r.stderr)
        r = self.q(d, "show", UNKNOWN, "--json")
        self.assertEqual(json.loads(r.stdout)["code"], "ENOENT")
        for args in (("show", "xyz"), ("show", a.lower()), ("frob",), ("show",),
                     ("hold",), ("list", a), ("show", a, a), ("--bogus",)):
            r = self.q(d, *args)
            self.assertEqual(r.returncode, 64, (args, r.stdout, r.stderr))

        # hold B, delete C.
        r = self.q(d, "hold", b)
        self.assertEqual((r.returncode, r.stdout), (0, "%s: held\n" % b), r.stderr)
        self.assertTrue(next(m for m in self.q_json(d, "list") if m["id"] == b)["held"])
        self.assertRegex(self.q(d).stdout, r"(?m)^%s!" % b)
        r = self.q(d, "delete", c, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["ok"])
        # env/ goes first, then msg/ (spool_remove's order): wait for both.
        harness.wait_for(lambda: c not in d.queued() and
                         c not in d.spool_entries("msg"), 5, "C removed from the spool")
        self.assertNotIn(c, [m["id"] for m in self.q_json(d, "list")])
        self.assertEqual(self.q(d, "show", c).returncode, 1)

        # The smarthost comes up; with retry_min = 1h nothing moves by itself.
        sh = self.smarthost(port=port)
        time.sleep(1.5)
        self.assertEqual(sh.messages(), [])

        # flush A (one id): only A goes.
        r = self.q(d, "flush", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        sh.wait_messages(1, 15)
        time.sleep(1.0)
        self.assertEqual(self.delivered_tokens(sh), ["A"])
        self.assertEqual(sorted(sh.messages()[0].rcpt_tos), ["r1@dest.test", "r2@dest.test"])

        # flush everything: E goes, B is held and stays.
        r = self.q(d, "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Queue flushed", r.stdout)
        sh.wait_messages(2, 15)
        time.sleep(1.5)
        self.assertEqual(self.delivered_tokens(sh), ["A", "E"])
        self.assertEqual(d.queued(), [b])
        lst = self.q_json(d, "list")
        self.assertEqual([(m["id"], m["held"]) for m in lst], [(b, True)])

        # release B: it goes at once.
        r = self.q(d, "release", b)
        self.assertEqual((r.returncode, r.stdout), (0, "%s: released\n" % b), r.stderr)
        sh.wait_messages(3, 15)
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        time.sleep(0.5)
        self.assertEqual(self.delivered_tokens(sh), ["A", "B", "E"])  # never C
        r = self.q(d)
        self.assertEqual((r.returncode, r.stdout), (0, "Mail queue is empty\n"))
        self.assertEqual(self.q_json(d, "list"), [])

    def test_busy_message_delete_waits_for_delivery(self):
        # The smarthost greets, reads EHLO and then stalls: the message is
        # held by a delivery (busy) until the connection ends.
        # the stall outlasts the `outbox queue` runs below (scaled: under
        # valgrind the daemon answers slowly, and each run of the command
        # itself takes ~1 s with OUTBOX_TEST_VALGRIND_CLI=1)
        fake = self.fake("sendline 220 fake.test ESMTP\nexpect EHLO\nsleep %d\nclose\n"
                         % harness.scaled(4))
        d = self.outboxd(relay=[fake.port], settings=SLOW_RETRY)
        a = self.send(d, "A")
        harness.wait_for(lambda: b"EHLO" in fake.received(), 10, "EHLO at the fake")
        lst = self.q_json(d, "list")
        self.assertEqual([(m["id"], m["busy"]) for m in lst], [(a, True)])
        self.assertRegex(self.q(d).stdout, r"(?m)^%s\*" % a)
        self.assertIn("being delivered", self.q(d, "show", a).stdout)
        mark = d.mark()
        r = self.q(d, "delete", a, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"ok": True, "id": a, "deferred": True})
        d.wait_log(r"%s: deleted by outbox queue$" % a, 5, since=mark)
        # Gone from the list at once (queued() is the daemon's list too)...
        self.assertEqual(self.q_json(d, "list"), [])
        self.assertEqual(self.q(d, "delete", a).returncode, 1)
        self.assertNotIn(a, d.queued())
        # ...but removed from the spool ("ID: removed", logged when the
        # spool's removal is done) only once the delivery has given the
        # message back, i.e. after the fake closed its connection. Each
        # round reads the daemon's log before the fake's transcript, so a
        # "removed" seen while the transcript has no "closed" yet happened
        # while the connection was still open.
        removed = re.compile(r"^.*: %s: removed$" % a, re.M)
        seen_open = 0
        deadline = time.monotonic() + harness.scaled(20)
        for _ in range(1000):
            was_removed = removed.search(d.log_text(mark)) is not None
            closed = fake_closed(fake)
            self.assertFalse(was_removed and not closed,
                             "%s removed while its delivery still held it" % a)
            if closed:
                break
            seen_open += 1
            self.assertLess(time.monotonic(), deadline, "the fake never closed")
            time.sleep(0.1)
        self.assertGreater(seen_open, 0, "the delivery ended before the delete was checked")
        d.wait_log(r"%s: removed$" % a, 15, since=mark)
        # and in the daemon's own order: the delivery's end (its result for
        # the recipient, here the lost connection) before the removal
        text = d.log_text(mark)
        ended = re.search(r"%s: to=<rcpt@dest\.test>,.*status=" % a, text)
        self.assertIsNotNone(ended, "no delivery result for %s" % a)
        self.assertLess(ended.start(), removed.search(text).start(),
                        "%s removed before its delivery ended" % a)
        self.assertNotIn(b"DATA", fake.received())
        self.assertNotIn(a, d.queued())
        # Nothing of it on disk, not even once a clean stop has written the
        # files of every message still held in memory.
        d.stop()
        for sub in ("env", "msg", "tmp"):
            self.assertEqual(d.spool_entries(sub), [], "%s/ after the stop" % sub)
        self.assertEqual(d.queued(), [])

    def test_list_streams_many_messages(self):
        n = 300  # more than one LIST batch (256) and chunk (64 KiB)
        d = self.outboxd(relay=[free_port()], settings=SLOW_RETRY)
        ids = []
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="c.test", timeout=60) as s:
            s.ehlo()
            for i in range(n):
                data = make_message("m %d\r\n" % i)
                s.mail("app@local.test")
                s.rcpt("r%d@dest.test" % i)
                code, text = s.data(data)
                self.assertEqual(code, 250)
                ids.append(harness.queue_id_of(text.decode()))
        lst = self.q_json(d, "list")
        self.assertEqual([m["id"] for m in lst], sorted(ids))
        self.assertEqual(sorted(m["recipients"][0]["address"] for m in lst),
                         sorted("r%d@dest.test" % i for i in range(n)))
        res = self.q(d)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"-- \d+ KiB in %d requests\.\n$" % n)
        self.assertEqual(len(re.findall(r"(?m)^[0-9A-F]{16}[ *!] ", res.stdout)), n)

    # -- the socket protocol itself
    def raw(self, d, data, shut=True, timeout=10):
        """Send data on the control socket; the whole reply (until close)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(os.path.join(d.spool, "control"))
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        for _ in range(10000):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def test_protocol_bounds(self):
        d = self.outboxd(relay=[free_port()], settings=SLOW_RETRY)
        a = self.send(d, "A")
        err = lambda b: json.loads(b)  # noqa: E731
        self.assertEqual(err(self.raw(d, b"NOPE\n")),
                         {"error": "unknown command", "code": "EINVAL"})
        self.assertEqual(err(self.raw(d, b"SHOW ../../etc/passwd\n"))["code"], "EINVAL")
        self.assertEqual(err(self.raw(d, b"LIST\0\n"))["code"], "EINVAL")
        # Over the line bound, without a line end: refused without waiting.
        self.assertEqual(err(self.raw(d, b"A" * 300, shut=False)),
                         {"error": "request too long", "code": "EINVAL"})
        # Case-insensitive command, CRLF, and a last line without LF.
        self.assertEqual(err(self.raw(d, b"show %s\r\n" % a.encode()))["id"], a)
        lst = self.raw(d, b"LIST")
        self.assertEqual(lst.split(b"\n")[0], b"[")
        self.assertEqual([m["id"] for m in json.loads(lst)], [a])
        self.assertEqual(self.raw(d, b"FLUSH %s\n" % UNKNOWN.encode()),
                         b'{"error":"no such message","code":"ENOENT"}\n')

        # 20 idle connections: past the limit (16) a request is turned
        # away with EAGAIN; the daemon keeps serving.
        idle = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(os.path.join(d.spool, "control"))
            idle.append(s)
        time.sleep(0.3)
        refused = 0
        for s in idle[16:]:
            s.sendall(b"LIST\n")
            data = s.recv(4096)
            self.assertEqual(json.loads(data)["code"], "EAGAIN")
            refused += 1
        self.assertEqual(refused, 4)
        for s in idle[1:]:
            s.close()
        time.sleep(0.3)
        self.assertEqual([m["id"] for m in self.q_json(d, "list")], [a])
        # A client that asks for the list and goes away at once.
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(os.path.join(d.spool, "control"))
            s.sendall(b"LIST\n")
            s.close()
        self.assertEqual([m["id"] for m in self.q_json(d, "list")], [a])
        # One idle connection is still open: SIGTERM must not wait for it
        # (tearDown checks exit 0 within 10 s and no sanitizer report).
        d.stop()
        idle[0].close()

    # -- without the daemon
    def test_daemon_stopped_reads_spool(self):
        port = free_port()
        d = self.outboxd(relay=[port], settings=SLOW_RETRY)
        a = self.send(d, "A")
        b = self.send(d, "B", rcpts=("x@dest.test", "y@dest.test"))
        self.wait_deferred(d, [a, b])
        self.assertEqual(self.q(d, "hold", b).returncode, 0)
        online = self.q_json(d, "list")
        d.stop()
        self.assertFalse(os.path.exists(os.path.join(d.spool, "control")),
                         "control socket left after a clean stop")

        res = self.q(d, "list", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("daemon not running", res.stderr)
        offline = json.loads(res.stdout)
        # The same view as the daemon's (busy is false in both here).
        self.assertEqual(offline, online)
        self.assertTrue(next(m for m in offline if m["id"] == b)["held"])
        res = self.q(d)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"(?m)^%s!" % b)
        self.assertRegex(res.stdout, r"-- \d+ KiB in 2 requests\.\n$")
        res = self.q(d, "show", a)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("    Subject: cli-test-A\n", res.stdout)
        sj = self.q_json(d, "show", a)
        self.assertIn("X-Test-Token: A\r\n", sj["headers"])
        self.assertEqual(self.q(d, "show", UNKNOWN).returncode, 1)
        for args in (("flush",), ("flush", a), ("delete", a), ("hold", a), ("release", b)):
            r = self.q(d, *args)
            self.assertEqual(r.returncode, 75, (args, r.stderr))
            self.assertIn("not running", r.stderr)

        # A bad envelope is skipped with a note, never fatal; a symlink is
        # not followed.
        env = os.path.join(d.spool, "env")
        with open(os.path.join(env, "00000000000000FF"), "wb") as f:
            f.write(b"garbage\n")
        os.symlink(os.path.join(env, a), os.path.join(env, "00000000000000FE"))
        res = self.q(d, "list", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("00000000000000FF: skipped", res.stderr)
        self.assertIn("00000000000000FE: skipped", res.stderr)
        self.assertEqual([m["id"] for m in json.loads(res.stdout)], sorted([a, b]))
        os.unlink(os.path.join(env, "00000000000000FF"))
        os.unlink(os.path.join(env, "00000000000000FE"))

        # A daemon killed with SIGKILL leaves its socket: refused -> offline.
        d.start()
        d.kill()
        self.assertTrue(os.path.exists(os.path.join(d.spool, "control")))
        res = self.q(d, "list")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("daemon not running", res.stderr)
        self.assertEqual(self.q(d, "flush").returncode, 75)
        # And the next daemon replaces the stale socket.
        d.start()
        self.assertEqual([m["id"] for m in self.q_json(d, "list")], sorted([a, b]))

    def test_refused_peers(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to run the CLI as another user")
        # No ca_file: the test CA's directory is private to this user.
        d = self.outboxd(relay=[free_port()], settings=SLOW_RETRY, ca_file="")
        # Let 'nobody' read the config (the password file stays 0600).
        for p in (self.tmp, d.dir):
            os.chmod(p, 0o711)
        os.chmod(d.config_path, 0o644)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     cli_path(), "queue", "list", "-c", d.config_path]
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        res = subprocess.run(as_nobody, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=30, env=env)
        # The spool dir (0750) keeps others away from the socket.
        self.assertEqual(res.returncode, 77, res.stderr)
        # With the file modes opened up, the daemon's SO_PEERCRED check refuses.
        os.chmod(d.spool, 0o755)
        os.chmod(os.path.join(d.spool, "control"), 0o666)
        res = subprocess.run(as_nobody, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=30, env=env)
        self.assertEqual(res.returncode, 77, res.stderr)
        self.assertIn("permission denied", res.stderr)
        d.wait_log(r"control: refused uid 65534", 5)


if __name__ == "__main__":
    harness.main()
