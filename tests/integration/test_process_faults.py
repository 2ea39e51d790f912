#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Process and storage faults not covered elsewhere (RELIABILITY.md D2 and
G8 for the sendmail command, D6, D12's log rate): see
test_process_faults2.py for D10, D14 and D15.

The strace helpers (attach with -p, parse with -y paths) and the tmpfs /
read-only bind mount daemons come from test_faults.py and test_storage.py.
Injection into the running daemon is narrowed with strace's -P: only the
calls that touch the named paths are traced, and strace counts and
injects only traced calls, so `when=1` is the first call on that file or
directory whatever else the pool thread does (eventfd writes, reads of
other queue files).
"""
import os
import re
import signal
import subprocess
import time
import zlib

import harness
from harness import OutboxTestCase, cli_path, make_message
from test_faults import (STRACE, Strace, marker_message, parse_trace, raw_send,
                         require_strace, tasks, tracer_of, with_marker)
from test_storage import RoOutboxd, can_bind_remount, try_send

ENV_1POOL = {"UV_THREADPOOL_SIZE": "1"}
ENV_ORDER = "VISTNAZCFH"


def decode_envelope(data):
    """The records of a spool envelope (envelope.c): [(type, bytes)], after
    checking the order, the X CRC-32 and that nothing follows it. Raises
    AssertionError on anything the daemon could not read back."""
    out, pos = [], 0
    while pos < len(data):
        t = chr(data[pos])
        colon = data.index(b":", pos)
        n = int(data[pos + 1:colon])
        val = data[colon + 1:colon + 1 + n]
        assert data[colon + 1 + n:colon + 2 + n] == b"\n", "record %s not ended" % t
        if t == "X":
            assert int(val, 16) == zlib.crc32(data[:pos]), "bad X crc"
            assert colon + 2 + n == len(data), "data after X"
        out.append((t, val))
        pos = colon + 2 + n
    types = "".join(t for t, _ in out)
    assert types.startswith(ENV_ORDER) and types.endswith("X"), types
    return out


def envelope_rcpts(data):
    """{address: state letter} of an envelope (P pending, S sent, ...)."""
    recs = decode_envelope(data)
    rcpts, last = {}, None
    for t, v in recs:
        if t == "R":
            last = v.decode()
        elif t == "Q":
            rcpts[last] = v.decode()
    return rcpts


def envelope_body_sum(data):
    """(Z, C) of an envelope: the body's size and CRC-32 it describes."""
    fields = dict(decode_envelope(data))
    return int(fields["Z"]), int(fields["C"], 16)


def sendmail_env(config):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    # LeakSanitizer cannot run under ptrace (strace): leaks are checked by
    # every untraced sendmail test.
    env.update({"OUTBOX_CONFIG": config, "ASAN_OPTIONS": "detect_leaks=0",
                "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    return env


class ProcessFaults(OutboxTestCase):

    def setUp(self):
        super().setUp()
        self.sendmail = os.path.join(self.tmp, "sendmail")
        os.symlink(cli_path(), self.sendmail)

    def spool_config(self, spool):
        path = os.path.join(self.tmp, "sendmail.ini")
        with open(path, "w") as f:
            f.write("[spool]\ndir = %s\n[rewrite]\ndomain = example.test\n" % spool)
        return path

    # ------------------------------------------------------------ D2 / G8
    def test_d2_sendmail_commit_order_before_exit(self):
        """sendmail with the daemon stopped, under strace -f: last content
        write -> fsync(file) -> rename (or link) into maildrop/ ->
        fsync(maildrop/) -> exit_group(0); each step succeeded and the
        bytes written are the file left in the maildrop."""
        require_strace(self)
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        d.stop()  # it made <spool>/maildrop (1733)
        drop = os.path.realpath(os.path.join(d.spool, "maildrop"))
        out = os.path.join(self.tmp, "d2-sendmail.trace")
        body = b"Subject: d2\n\n" + b"".join(b"line %05d %s\n" % (i, b"y" * 70)
                                            for i in range(3000))  # ~240 KB
        argv = [STRACE, "-f", "-qq", "-y", "-tt", "-s", "120", "-o", out, "-e",
                "trace=write,fsync,fdatasync,rename,renameat,renameat2,linkat,syncfs,"
                "exit_group", self.sendmail, "-i", "ops@dest.test"]
        res = subprocess.run(argv, input=body, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=sendmail_env(d.config_path),
                             timeout=60)
        err = res.stderr.decode(errors="replace")
        self.assertEqual(res.returncode, 0, err)
        self.assertNotRegex(err, harness.SANITIZER_RE)
        names = sorted(os.listdir(drop))
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], "^%s$" % harness.QID)
        final = os.path.join(drop, names[0])
        calls = parse_trace(out)
        tmp_re = re.compile(r"^%s/tmp\.[0-9a-f]{16}$" % re.escape(drop))
        content = [c for c in calls if c.name == "write" and tmp_re.match(c.fd_path() or "")]
        self.assertTrue(content, "no write to maildrop/tmp.* in %s" % out)
        tmp_path = content[-1].fd_path()
        self.assertEqual(len({c.fd_path() for c in content}), 1, "several temp files")
        self.assertEqual(sum(int(c.ret) for c in content), os.path.getsize(final),
                         "bytes written != size of the maildrop file")
        f_file = [c for c in calls if c.name in ("fsync", "fdatasync")
                  and c.fd_path() == tmp_path]
        self.assertEqual(len(f_file), 1, "fsync of the temp file: %r" % f_file)
        tmp_name = os.path.basename(tmp_path)
        moved = [c for c in calls if c.name in ("rename", "renameat", "renameat2", "linkat")
                 and ('"%s"' % tmp_name) in c.args and ('"%s"' % names[0]) in c.args]
        self.assertEqual(len(moved), 1, "rename/link into maildrop/: %r" % moved)
        f_dir = [c for c in calls if c.name in ("fsync", "syncfs") and c.start > moved[0].end
                 and (c.fd_path() == drop or c.name == "syncfs")]
        self.assertTrue(f_dir, "no fsync of maildrop/ (or syncfs) after the rename")
        leave = [c for c in calls if c.name == "exit_group"]
        self.assertEqual(len(leave), 1, leave)
        self.assertEqual(leave[0].args, "0")
        steps = [("last content write", content[-1]), ("fsync(file)", f_file[0]),
                 ("%s into maildrop/" % moved[0].name, moved[0]),
                 ("%s(maildrop/)" % f_dir[0].name, f_dir[0]), ("exit_group(0)", leave[0])]
        for name, c in steps[:-1]:
            self.assertTrue(c.ret is not None and not c.ret.startswith("-1"),
                            "%s failed: %r" % (name, c))
        for (n1, c1), (n2, c2) in zip(steps, steps[1:]):
            self.assertLess(c1.end, c2.start, "%s must finish before %s:\n  %r\n  %r"
                            % (n1, n2, c1, c2))
        print("\n  D2 sendmail: %d content writes (%d bytes) -> fsync -> %s -> %s(maildrop/)"
              " -> exit_group(0)" % (len(content), os.path.getsize(final), moved[0].name,
                                     f_dir[0].name))

    def test_g8_full_spool_tempfail(self):
        """sendmail into a maildrop on a 64 KiB tmpfs (private mount
        namespace) with a 300 KB message: exit 75 and one `sendmail:` line
        naming the cause; nothing left in maildrop/ (no temp file either);
        a small message then still gets exit 0 on the same tmpfs."""
        from test_faults import can_mount_tmpfs
        ok, why = can_mount_tmpfs(self.tmp)
        if not ok:
            self.skipTest("cannot mount a tmpfs in a private mount namespace: %s" % why)
        spool = os.path.join(self.tmp, "spool")
        os.makedirs(spool)
        config = self.spool_config(spool)
        big = os.path.join(self.tmp, "big.eml")
        with open(big, "wb") as f:
            f.write(b"Subject: big\n\n" + b"z" * 76 + b"\n" * 1)
            f.write((b"x" * 99 + b"\n") * 3000)
        small = os.path.join(self.tmp, "small.eml")
        with open(small, "wb") as f:
            f.write(b"Subject: small\n\nfits\n")
        errs = [os.path.join(self.tmp, "big.err"), os.path.join(self.tmp, "small.err")]
        # One namespace: mount, big submission, listing, small one, listing.
        script = ('mount -t tmpfs -o size=64k,mode=0755 tmpfs "$1" || exit 90; '
                  'mkdir -m 1733 "$1/maildrop" || exit 91; chmod 1733 "$1/maildrop"; '
                  '"$2" -i ops@dest.test < "$3" 2> "$4"; echo "RC1=$?"; '
                  'echo "LS1=$(ls -A "$1/maildrop" | tr "\\n" " ")"; '
                  '"$2" -i ops@dest.test < "$5" 2> "$6"; echo "RC2=$?"; '
                  'echo "LS2=$(ls -A "$1/maildrop" | tr "\\n" " ")"')
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update({"OUTBOX_CONFIG": config, "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1"})
        res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                              "sh", spool, self.sendmail, big, errs[0], small, errs[1]],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             timeout=60)
        out = res.stdout.decode(errors="replace")
        self.assertEqual(res.returncode, 0, out)
        vals = dict(re.findall(r"^(RC1|LS1|RC2|LS2)=(.*)$", out, re.M))
        with open(errs[0], encoding="utf-8", errors="replace") as f:
            err = f.read()
        self.assertNotRegex(err, harness.SANITIZER_RE)
        self.assertEqual(vals.get("RC1"), "75", "full spool: %r stderr=%r" % (out, err))
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr: %r" % err)
        self.assertTrue(lines[0].startswith("sendmail: "), lines[0])
        self.assertRegex(lines[0], r"(?i)no space left on device")
        self.assertEqual(vals.get("LS1", "?").strip(), "",
                         "files left in the full maildrop: %r" % vals.get("LS1"))
        self.assertEqual(vals.get("RC2"), "0", "small message after ENOSPC: %r" % out)
        self.assertRegex(vals.get("LS2", ""), r"^%s\s*$" % harness.QID)
        print("\n  G8 full spool: exit %s, %r" % (vals.get("RC1"), lines[0]))

    # ------------------------------------------------------------ D6
    def d6_daemon(self, sh, retry):
        return self.outboxd(relay=[sh.port], env=dict(ENV_1POOL),
                            settings={"spool": {"retry_min": retry, "retry_max": retry}})

    def d6_submit(self, d, marker):
        data = marker_message(marker)
        qid = d.send_ok("app@local.test", ["r1@dest.test", "r2@dest.test"], data)
        return qid, data

    def pool_threads(self, d):
        pool = [t for t in tasks(d.proc.pid) if t != d.proc.pid]
        self.assertTrue(pool, "no libuv pool thread")
        return pool

    def assert_env_intact(self, d, qid, want):
        """After a failed update the message's state on disk is complete and
        the old one. A message committed through the intake log may still
        be held (its log record the only copy on disk; an update first
        writes msg/ID, so msg/ID may be there without env/ID), or have its
        files already (a segment retire wrote them). So: its 'A' record in
        log/, while the segment is there, and env/ID, when it exists, each
        decode (order, CRC, end) with want's states and describe the same
        body; at least one of them is there; env/ID never stands without
        msg/ID. Returns "held" (no env/ID) or "files"."""
        # log/ first: a retire writes env/ID before it unlinks the segment,
        # so a record gone from log/ means env/ID is there when read next.
        recs = [r for r in harness.spool_log_records(d.spool) if r[1] == qid]
        self.assertTrue(all(r[0] == "A" for r in recs), "records of %s: %r" % (qid, recs))
        self.assertLessEqual(len(recs), 1, "two 'A' records for %s" % qid)
        for _t, _id, env, body, _seg in recs:
            try:
                states = envelope_rcpts(env)
            except (AssertionError, ValueError) as e:
                self.fail("the log record of %s does not decode: %s" % (qid, e))
            self.assertEqual(states, want, "the log record's states")
            self.assertEqual(envelope_body_sum(env), (len(body), zlib.crc32(body)),
                             "the log record's Z/C do not describe its body")
        path = os.path.join(d.spool, "env", qid)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        self.assertTrue(recs or data is not None,
                        "%s: neither a log record nor env/%s after the failed update" % (qid, qid))
        if data is None:
            return "held"
        try:
            states = envelope_rcpts(data)
        except (AssertionError, ValueError) as e:
            self.fail("env/%s unreadable after the failed update: %s" % (qid, e))
        self.assertEqual(states, want, "envelope states after the failed update")
        self.assertTrue(os.path.exists(os.path.join(d.spool, "msg", qid)), "msg/ lost")
        if recs:
            self.assertEqual(envelope_body_sum(data), envelope_body_sum(recs[0][2]),
                             "env/%s and the log record describe different bodies" % qid)
        return "files"

    def test_d6_enospc_marking_r1_delivered(self):
        """r1 250, r2 450; ENOSPC at the write of the envelope update
        (strace -P on tmp/ID.u*): the daemon logs it, stays up; the state
        on disk is the old complete envelope (both pending): env/ID, or the
        message's log record while it is still held (assert_env_intact;
        with the 2 s DATA delay the segment's retire has mostly written
        the files before the update); after a restart r2 is
        delivered and r1 is sent again at worst (once or twice), never lost;
        nothing is left in the spool."""
        require_strace(self)
        sh = self.smarthost(rcpt_reply=["1:r2@dest.test=450 4.2.1 busy"],
                            extra=["--data-delay", "2"])
        # Long retry: the old state on disk is what a restart finds.
        d = self.d6_daemon(sh, "60s")
        qid, data = self.d6_submit(d, "D6-ENOSPC")
        spool = os.path.realpath(d.spool)
        paths = ["%s/tmp/%s.u%d" % (spool, qid, n) for n in range(4)]
        sh_wait_data(sh, 1)
        exprs = ["trace=write", "inject=write:error=ENOSPC:when=1"]
        # -f only for the "TID time call" line shape parse_trace reads
        st = Strace(self.tmp, self.pool_threads(d), exprs, paths=paths, follow=True,
                    out=os.path.join(self.tmp, "d6a.trace"))
        m = d.wait_log(r"%s: cannot update the queue file: (.*)" % qid, 15)
        st.detach()
        self.assertRegex(m.group(1), r"(?i)no space left on device")
        d.wait_log(r"%s: to=<r1@dest\.test>,.*status=sent" % qid, 5)
        d.wait_log(r"%s: to=<r2@dest\.test>,.*status=deferred" % qid, 5)
        calls = [c for c in parse_trace(os.path.join(self.tmp, "d6a.trace"))
                 if c.name == "write"]
        self.assertTrue(calls and "ENOSPC" in (calls[0].ret or ""),
                        "the injected write: %r" % calls)
        time.sleep(0.3)
        self.assertTrue(d.alive(), "daemon died on ENOSPC at the update")
        how = self.assert_env_intact(d, qid, {"r1@dest.test": "P", "r2@dest.test": "P"})
        self.assertEqual([n for n in d.spool_entries("tmp")], [], "temp file left")
        n_before = len(sh.messages())
        d.restart()
        harness.wait_for(lambda: not d.queued(), 20, "queue empty after restart")
        msgs = sh.messages()
        r1 = sum(m.rcpt_tos.count("r1@dest.test") for m in msgs if b"D6-ENOSPC" in m.data)
        r2 = sum(m.rcpt_tos.count("r2@dest.test") for m in msgs if b"D6-ENOSPC" in m.data)
        self.assertEqual(r2, 1, "r2 after the restart: %r" % msgs)
        self.assertIn(r1, (1, 2), "r1 copies: %r" % msgs)
        for m in msgs:
            self.assertEqual(m.body(), data)
        self.assertEqual(d.spool_entries("msg"), [])
        self.assertEqual(d.spool_entries("corrupt"), [])
        print("\n  D6 ENOSPC: after it the message was %s; %d messages before restart, "
              "r1 sent %d time(s), r2 %d" % (how, n_before, r1, r2))

    def test_d6_eio_on_envelope_rename_next_retry(self):
        """r1 250, r2 450; EIO at the rename of the updated envelope into
        env/ (the write of the next-retry time) of a message still held
        (committed through the intake log only: this first update writes
        msg/ID, then tmp/ID.uN, and renames it): logged, daemon up, the
        message's state on disk still the complete old one (its log
        record, and env/ID if a retire wrote it since); the retry (from
        memory) sends r2 only: r1 is not sent twice, and the entry is
        removed at the end with no file left in msg/, env/ or tmp/.

        strace is attached before the submission: a held message's commit
        renames nothing into env/, and its update comes within
        milliseconds, long before the idle seal retires the segment (1-2
        s), whose write of the held message's files renames tmp/ID.env
        into env/ and would otherwise take the injection."""
        require_strace(self)
        sh = self.smarthost(rcpt_reply=["1:r2@dest.test=450 4.2.1 busy"])
        d = self.d6_daemon(sh, "3s")
        spool = os.path.realpath(d.spool)
        pool = harness.wait_for(lambda: [t for t in tasks(d.proc.pid) if t != d.proc.pid],
                                10, "the libuv pool thread")
        out = os.path.join(self.tmp, "d6b.trace")
        st = Strace(self.tmp, pool,
                    ["trace=renameat,renameat2", "inject=renameat:error=EIO:when=1"],
                    paths=[spool + "/env"], follow=True, out=out)
        try:
            qid, data = self.d6_submit(d, "D6-EIO")
            m = d.wait_log(r"%s: cannot update the queue file: (.*)" % qid, 15)
        finally:
            st.detach()
        self.assertRegex(m.group(1), r"(?i)i/o error")
        d.wait_log(r"%s: spool update failed at rename envelope" % qid, 5)
        self.assertTrue(d.deliveries(status="sent", rcpt="r1@dest.test", qid=qid))
        self.assertTrue(d.deliveries(status="deferred", rcpt="r2@dest.test", qid=qid))
        calls = [c for c in parse_trace(out) if c.name.startswith("rename")]
        # the update's own temporary (tmp/ID.uN), not a retire's tmp/ID.env
        self.assertTrue(calls and "EIO" in (calls[0].ret or "")
                        and '"%s.u' % qid in calls[0].args,
                        "the injected rename: %r" % calls)
        self.assertTrue(d.alive())
        how = self.assert_env_intact(d, qid, {"r1@dest.test": "P", "r2@dest.test": "P"})
        d.wait_log(r"%s: to=<r2@dest\.test>,.*status=sent" % qid, 15)
        d.wait_log(r"%s: removed" % qid, 10)
        harness.wait_for(lambda: not d.queued(), 10, "entry removed")
        msgs = [m for m in sh.messages() if b"D6-EIO" in m.data]
        self.assertEqual([m.rcpt_tos for m in msgs], [["r1@dest.test"], ["r2@dest.test"]])
        for m in msgs:
            self.assertEqual(m.body(), data)
        left = lambda: {s: d.spool_entries(s) for s in ("msg", "env", "tmp")  # noqa: E731
                        if d.spool_entries(s)}
        try:
            harness.wait_for(lambda: not left(), 5, "msg/ env/ tmp/ empty")
        except harness.HarnessError:
            self.fail("files left in the spool after the removal: %r" % left())
        print("\n  D6 EIO at rename: right after it the message was %s; %d upstream "
              "transactions %r" % (how, len(msgs), [m.rcpt_tos for m in msgs]))

    # ------------------------------------------------------------ D12
    def test_d12_error_logged_once_per_interval(self):
        """Read-only spool (bind remount in the daemon's namespace): 6
        submissions within the 10 s interval all get 451/452, but the cause
        is logged once ("cannot create a queue file"), with no per-message
        error line; after the interval the next failure is logged again."""
        ok, why = can_bind_remount(self.tmp)
        if not ok:
            self.skipTest("cannot remount a bind mount read-only in a private mount "
                          "namespace: %s" % why)
        sh = self.smarthost()
        d = RoOutboxd(self.tmp, name="outboxd1", relay=[sh.port])
        self._daemons.append(d)
        d.start()
        code, text = try_send(d.port, "D12R-WARM")
        self.assertEqual(code, 250, text)
        harness.wait_for(lambda: with_marker(sh, "D12R-WARM"), 20, "warm-up delivered")
        harness.wait_for(lambda: not d.queued(), 10, "queue empty")
        # waits for spool/log/ empty first: the intake log's open segment
        # would make the read-only remount fail with EBUSY
        d.remount("ro")
        mark = d.mark()
        t0 = time.monotonic()
        codes = []
        for i in range(6):
            code, text = try_send(d.port, "D12R-%d" % i)
            codes.append(code)
            self.assertIn(code, (451, 452), "%r %r" % (code, text))
        burst = time.monotonic() - t0
        self.assertLess(burst, 9, "the burst outlasted the log interval")
        log = d.log_text(mark)
        cause = [ln for ln in log.splitlines() if "cannot create a queue file" in ln]
        other = [ln for ln in log.splitlines()
                 if re.search(r"(?i)read-only file system|queue file write error|"
                              r"spool \w+ failed", ln) and ln not in cause]
        self.assertEqual(len(cause), 1, "cause lines for 6 failures:\n" + "\n".join(cause))
        self.assertRegex(cause[0], r"(?i)read-only file system")
        self.assertEqual(other, [], "per-message error lines")
        # the next interval: logged again (at most once)
        left = 10.2 - (time.monotonic() - t0)
        time.sleep(max(0.0, left))
        mark2 = d.mark()
        for i in range(2):
            code, _ = try_send(d.port, "D12R-LATE-%d" % i)
            self.assertIn(code, (451, 452))
        late = [ln for ln in d.log_text(mark2).splitlines()
                if "cannot create a queue file" in ln]
        self.assertEqual(len(late), 1, "next interval: %r" % late)
        d.remount("rw")
        code, text = try_send(d.port, "D12R-AFTER")
        self.assertEqual(code, 250, text)
        harness.wait_for(lambda: with_marker(sh, "D12R-AFTER"), 20, "delivered after rw")
        self.assertEqual([m for m in sh.messages() if b"X-Marker: D12R-" in m.data
                          and b"WARM" not in m.data and b"AFTER" not in m.data], [])
        print("\n  D12: 6 refusals %r in %.1fs -> %d log line; next interval %d line"
              % (codes, burst, len(cause), len(late)))


# ---------------------------------------------------------------- helpers

def sh_wait_data(sh, n, timeout=15):
    """Wait until the smarthost saw n DATA commands (a delivery in flight)."""
    harness.wait_for(lambda: sum(1 for _s, _t, ln in sh.commands()
                                 if ln.upper().startswith("DATA")) >= n or None,
                     timeout, "%d DATA command(s) at the smarthost" % n)


if __name__ == "__main__":
    harness.main()
