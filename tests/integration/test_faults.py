#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Storage faults (RELIABILITY.md D1, D2, D3, D4), with strace 6.1 fault
injection and a real full tmpfs.

strace is attached with -p to the running daemon just before the
transaction instead of starting the daemon under it: the start-up
syscalls (the loader, ASan, config) then neither pollute the trace nor
advance the injection counters. strace counts `when=N` per thread and per
syscall, so the daemon runs with UV_THREADPOOL_SIZE=1: the spool's disk
work then happens in one pool thread whose calls are numbered the same
way in every run.

Held messages: a message whose body is whole in memory at its commit (up
to SPOOL_LOG_BODY_MAX, 512 KiB) is stored by one intake-log record alone
(pwritev to log/NNNN, fsync of it, and of log/ for a new segment); its
msg/ID and env/ID are written only when needed (an update, the retire of
its segment, shutdown) or by the replay after a crash, and it is delivered
from memory. So the kill points, the order and the faults of a small
message are those of the log; a larger one (test_d2_syscall_order,
test_d3_fsync_eio_every_commit_fsync) still takes the per-file commit.
Tests that count calls first wait until the log is retired and the
smarthost session parked after the last delivery is gone (settle), so
that each transaction creates a segment and connects afresh.
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time

import harness
from harness import (HarnessError, OutboxTestCase, Outboxd, make_message, outboxd_path,
                     free_port, tail)

STRACE = shutil.which("strace")
ENV_1POOL = {"UV_THREADPOOL_SIZE": "1"}
# "TID HH:MM:SS.us call": the TID only with -f (0 without)
LINE_RE = re.compile(r"^(?:(\d+)\s+)?(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
CALL_RE = re.compile(r"^(\w+)\((.*?)(?:\) += (.*)| <unfinished \.\.\.>)$")
RESUMED_RE = re.compile(r"^<\.\.\. (\w+) resumed>(.*?)\) += (.*)$")
FD_RE = re.compile(r"(\d+)<([^>]*)>")
# The classes D1 kills in: RELIABILITY's list (openat, write, fsync,
# rename, close; linkat and sendto are not used), plus what the held path
# uses: pwritev (every intake-log append), unlinkat (a segment's retire),
# and connect (the delivery's, the one step between a 250 and the upstream
# copy of a message that is only in the log and in memory).
SPOOL_CLASSES = ("openat", "write", "pwritev", "fsync", "fdatasync", "renameat", "renameat2",
                 "close", "unlinkat", "connect")


# ---------------------------------------------------------------- strace

class Call:
    """One syscall in an strace -f -y log."""

    def __init__(self, tid, name, args, start):
        self.tid, self.name, self.args = tid, name, args
        self.start = self.end = start
        self.ret = None

    def fd_path(self, i=0):
        """Path strace -y printed for the i-th fd argument."""
        found = FD_RE.findall(self.args)
        return found[i][1] if len(found) > i else None

    def __repr__(self):
        return "<%s %s(%s) = %s @%d-%d>" % (self.tid, self.name, self.args[:90], self.ret,
                                             self.start, self.end)


def parse_trace(path):
    """[Call] in order of entry; start/end are line numbers (strace prints
    lines in the order it sees the stops, so a cause precedes its effect)."""
    calls, pending = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        m = LINE_RE.match(line)
        if not m:
            continue
        tid, rest = int(m.group(1) or 0), m.group(3)
        r = RESUMED_RE.match(rest)
        if r:
            c = pending.pop(tid, None)
            if c is not None:
                c.args += r.group(2)
                c.ret, c.end = r.group(3), i
            continue
        c = CALL_RE.match(rest)
        if not c:
            continue
        call = Call(tid, c.group(1), c.group(2), i)
        if c.group(3) is None:
            pending[tid] = call
        else:
            call.ret = c.group(3)
        calls.append(call)
    return calls


def tasks(pid):
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except FileNotFoundError:
        return []


def tracer_of(tid):
    try:
        with open("/proc/%d/status" % tid) as f:
            m = re.search(r"^TracerPid:\s+(\d+)", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


class Strace:
    """strace attached to running threads (-p TID ...); stopped by PID.
    paths narrows tracing to calls on those paths (-P PATH ...): strace
    only counts, and injects at, the calls it traces."""

    def __init__(self, workdir, tids, exprs, out=os.devnull, follow=False, paths=()):
        argv = [STRACE, "-qq", "-y", "-tt", "-s", "160", "-o", out]
        if follow:
            argv.append("-f")
        for e in exprs:
            argv += ["-e", e]
        for p in paths:
            argv += ["-P", p]
        for t in tids:
            argv += ["-p", str(t)]
        self.err_path = os.path.join(workdir, "strace-%d.err" % time.monotonic_ns())
        self.tids = list(tids)
        with open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err,
                                          start_new_session=True)
        harness.wait_for(lambda: all(tracer_of(t) == self.popen.pid for t in self.tids)
                         or self.popen.poll() is not None, 10, "strace to attach")
        if self.popen.poll() is not None:
            raise HarnessError("strace exited (%s): %s" % (self.popen.returncode,
                                                          tail(self.err_path)))

    def detach(self, timeout=10):
        """SIGINT makes strace detach and leave the daemon running."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise HarnessError("strace did not detach within %ds" % timeout)


def require_strace(test):
    if STRACE is None:
        test.fail("strace is not installed (Debian package strace is a test dependency)")
    probe = subprocess.run([STRACE, "-qq", "-o", os.devnull, "-e", "trace=getpid",
                            "-e", "inject=getpid:error=EPERM", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
    if probe.returncode != 0:
        test.skipTest("strace cannot trace here (ptrace not permitted?): %s"
                      % probe.stderr.decode(errors="replace").strip()[:200])


def raw_send(port, data, rcpt="rcpt@dest.test", timeout=20):
    """One transaction; (code, text) of the end-of-data reply, or
    (None, why) when the connection broke before it."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                          timeout=timeout) as s:
            s.ehlo()
            code, text = s.mail("app@local.test")
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = s.rcpt(rcpt)
            if code != 250:
                return code, text.decode(errors="replace")
            code, text = s.data(data)
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
            return code, text.decode(errors="replace")
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    except (smtplib.SMTPException, OSError) as e:
        return None, repr(e)


SEG_NAME = r"[0-9a-f]{16}"


def writes_to(calls, path):
    return [c for c in calls if c.name in ("write", "writev", "pwrite64", "pwritev", "pwritev2")
            and c.fd_path() == path]


def fsyncs_of(calls, path):
    return [c for c in calls if c.name in ("fsync", "fdatasync") and c.fd_path() == path]


def renames(calls, tmp_dir, src, dst_dir, dst):
    return [c for c in calls if c.name.startswith("rename")
            and ('"%s"' % src) in c.args and ('"%s"' % dst) in c.args
            and c.fd_path(0) == tmp_dir and c.fd_path(1) == dst_dir]


def replies_250(calls, qid):
    """Writes of the 250 naming qid to a client socket."""
    return [c for c in calls if c.name in ("write", "writev", "sendto", "sendmsg")
            and (c.fd_path() or "").startswith("socket:")
            and "250 2.0.0" in c.args and qid in c.args]


def log_records(calls, spool, kind, qid=None):
    """Appends of intake-log records of kind 'A' or 'D' (for qid) to a
    segment log/<16 hex digits>; the header (magic, type, queue id) is
    within strace's -s 160."""
    seg = re.compile(re.escape(spool) + "/log/" + SEG_NAME + "$")
    return [c for c in calls if c.name in ("pwritev", "pwritev2", "pwrite64", "write", "writev")
            and seg.match(c.fd_path() or "") and ('"OBL2' + kind) in c.args
            and (qid is None or qid in c.args)]


def wait_log_empty(d, timeout=10):
    """The idle seal retires the current segment about 1-2 s after the
    last append: after this, the next commit creates a new segment and no
    retire runs concurrently with it."""
    harness.wait_for(lambda: not d.log_segments(), timeout,
                     "no segment in spool/log/ (idle segment retired): %r" % d.log_segments())


def upstream_sessions(port):
    """TCP connections to 127.0.0.1:port in state ESTABLISHED (from
    /proc/net/tcp: a daemon's session to the smarthost on that port)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) > 3 and f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def marker_message(marker, size=0):
    filler = ("".join("%s line %05d %s\r\n" % (marker, i, "x" * 60)
                      for i in range(size // 80 + 1))) if size else ""
    return make_message("body of %s\r\n%s" % (marker, filler),
                        headers=["X-Marker: " + marker])


def with_marker(sh, marker):
    return [m for m in sh.messages() if ("X-Marker: %s\r\n" % marker).encode() in m.data]


# ---------------------------------------------------------------- tmpfs daemon

class NsOutboxd(Outboxd):
    """outboxd in a private mount namespace, its spool a small tmpfs:
    unshare -m, mount, exec. The daemon's view of the spool is read
    through /proc/PID/root."""

    spool_visible = False   # mounted in the daemon's own namespace

    def __init__(self, *a, tmpfs_size="256k", **kw):
        super().__init__(*a, **kw)
        self.tmpfs_size = tmpfs_size

    def spawn(self, args=None):
        if self.port is None:
            self.port = free_port()
        self.write_config()
        os.makedirs(self.spool, exist_ok=True)
        # under OUTBOX_TEST_VALGRIND the exec'd program is memcheck (same pid)
        daemon = harness.valgrind_argv(
            [outboxd_path(), "-f", "-c", self.config_path] + list(args or []),
            self.name)
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o size="$1",mode=0700 tmpfs "$2" && shift 2 && exec "$@"',
                "sh", self.tmpfs_size, self.spool] + daemon
        with open(self.log_path, "ab") as f:
            f.write(("---- %s start: %s\n" % (time.strftime("%H:%M:%S"),
                                              " ".join(argv))).encode())
        self.log_offset = self.log_size()
        self.proc = harness.Proc(argv, self.name, self.dir, env=self.proc_env())
        return self.proc

    def ns_entries(self, sub):
        path = "/proc/%d/root%s/%s" % (self.proc.pid, self.spool, sub)
        return sorted(os.listdir(path))


def can_mount_tmpfs(workdir):
    mnt = os.path.join(workdir, "probe-mnt")
    os.makedirs(mnt, exist_ok=True)
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount -t tmpfs -o size=64k tmpfs "$0" && touch "$0/x"', mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, repr(e)
    return r.returncode == 0, r.stdout.decode(errors="replace").strip()


# ---------------------------------------------------------------- the tests

class Faults(OutboxTestCase):

    def daemon(self, sh, **kw):
        env = dict(ENV_1POOL)
        env.update(kw.pop("env", {}))
        return self.outboxd(relay=[sh.port], env=env, **kw)

    def quiet(self, d, timeout=10):
        """Wait until the queue is empty and the pool thread exists (a
        delivery has run), so that an attach sees only the next transaction."""
        harness.wait_for(lambda: not d.queued() and not d.spool_entries("msg")
                         and not d.spool_entries("tmp"), timeout, "idle spool")
        time.sleep(0.3)

    def settle(self, d, sh, timeout=15):
        """quiet(), after the intake log's segment is retired (so the next
        commit creates log/NNNN and fsyncs log/) and the smarthost session
        parked after the last delivery (DELIVERY_IDLE_MS, 2 s) has ended
        (so the next delivery connects): the next transaction then makes
        the same syscalls in every run."""
        wait_log_empty(d, timeout)
        harness.wait_for(lambda: not upstream_sessions(sh.port), timeout,
                         "the parked session to the smarthost (port %d) closed" % sh.port)
        self.quiet(d)

    def warm_up(self, d, sh, tag):
        """One delivered message: creates the libuv pool thread."""
        data = marker_message(tag)
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, "warm-up message: %s" % text)
        harness.wait_for(lambda: with_marker(sh, tag), 20, "warm-up %s delivered" % tag)
        self.quiet(d)

    # ------------------------------------------------------------ D2
    def test_d2_syscall_order(self):
        """A message over SPOOL_LOG_BODY_MAX (512 KiB) takes the per-file
        commit: message writes -> fsync(file) -> rename into msg/ ->
        fsync(msg/) -> envelope write -> fsync -> rename into env/ ->
        fsync(env/) -> 250."""
        require_strace(self)
        sh = self.smarthost()
        d = self.daemon(sh)
        self.warm_up(d, sh, "D2-WARM")
        wait_log_empty(d)  # no retire of the warm-up's segment in the trace
        out = os.path.join(self.tmp, "d2.trace")
        st = Strace(self.tmp, [d.proc.pid], [
            "trace=write,writev,pwrite64,pwritev,pwritev2,fsync,fdatasync,rename,renameat,"
            "renameat2,linkat,sendto,sendmsg,openat,close"], out=out, follow=True)
        data = marker_message("D2-ORDER", size=600000)  # > 512 KiB, several writes
        self.assertGreater(len(data), 512 * 1024)
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, text)
        qid = harness.queue_id_of(text)
        self.assertIsNotNone(qid, text)
        msgs = sh.wait_messages(2, 20)
        self.quiet(d)
        st.detach()
        calls = parse_trace(out)
        spool = os.path.realpath(d.spool)
        tmp_msg = "%s/tmp/%s.msg" % (spool, qid)
        tmp_env = "%s/tmp/%s.env" % (spool, qid)
        msg_dir, env_dir, tmp_dir = spool + "/msg", spool + "/env", spool + "/tmp"

        content = writes_to(calls, tmp_msg)
        self.assertTrue(content, "no write to %s in the trace (%s)" % (tmp_msg, out))
        written = sum(int(c.ret) for c in content)
        delivered = [m for m in msgs if b"X-Marker: D2-ORDER\r\n" in m.data][0]
        self.assertEqual(written, len(delivered.data),
                         "bytes written to the queue file != bytes delivered")
        self.assertEqual(delivered.body(), data)
        self.assertEqual(log_records(calls, spool, "A", qid), [],
                         "a message over 512 KiB went through the intake log")
        f_msg = fsyncs_of(calls, tmp_msg)
        self.assertEqual(len(f_msg), 1, "fsync of the message file: %r" % f_msg)
        r_msg = renames(calls, tmp_dir, "%s.msg" % qid, msg_dir, qid)
        self.assertEqual(len(r_msg), 1, "rename tmp/ID.msg -> msg/ID: %r" % r_msg)
        f_msgdir = [c for c in fsyncs_of(calls, msg_dir) if c.start > r_msg[0].end]
        self.assertTrue(f_msgdir, "no fsync of msg/ after the rename")
        env_w = writes_to(calls, tmp_env)
        self.assertTrue(env_w, "no envelope write")
        f_env = fsyncs_of(calls, tmp_env)
        self.assertEqual(len(f_env), 1, "fsync of the envelope: %r" % f_env)
        r_env = renames(calls, tmp_dir, "%s.env" % qid, env_dir, qid)
        self.assertEqual(len(r_env), 1, "rename tmp/ID.env -> env/ID: %r" % r_env)
        f_envdir = [c for c in fsyncs_of(calls, env_dir) if c.start > r_env[0].end]
        self.assertTrue(f_envdir, "no fsync of env/ after the rename")
        ok = replies_250(calls, qid)
        self.assertEqual(len(ok), 1, "the 250 reply to the client: %r" % ok)
        steps = [("last message write", content[-1]), ("fsync(message)", f_msg[0]),
                 ("rename into msg/", r_msg[0]), ("fsync(msg/)", f_msgdir[0]),
                 ("envelope write", env_w[-1]), ("fsync(envelope)", f_env[0]),
                 ("rename into env/", r_env[0]), ("fsync(env/)", f_envdir[0]),
                 ("250 to the client", ok[0])]
        self.assertTrue(all(c.ret is not None and not c.ret.startswith("-1")
                            for _, c in steps[:-1]), "a step failed: %r" % steps)
        self.assertLess(content[0].start, f_msg[0].start)
        for (n1, c1), (n2, c2) in zip(steps, steps[1:]):
            self.assertLess(c1.end, c2.start, "%s must finish before %s starts:\n  %r\n  %r"
                            % (n1, n2, c1, c2))
        self.assertLess(env_w[0].start, f_env[0].start)
        self.assertGreater(env_w[0].start, f_msgdir[0].end,
                           "envelope written before msg/ was synced")

    def test_d2_syscall_order_logged(self):
        """A message up to 512 KiB whose body is whole in memory at the
        commit (a 2.5 KB one, and a 150 KB one that arrives in several
        chunks) is held: its intake-log record is its only copy on disk,
        and the 250 follows its fsync. In the trace: segment made (openat
        O_CREAT|O_EXCL, or a retired segment's NNNN.free renamed to it)
        -> fsync(log/) -> ONE pwritev of the
        record, 64 + envelope + message bytes -> fsync(segment) started
        after it ended -> 250. Nothing else is flushed before the 250, no
        queue file (tmp/, msg/, env/) of the id is touched before it, and
        none at all when its 'D' record lands in the same segment (it was
        delivered from memory; nothing needed its files). The delivered
        message is what was sent and what the record holds."""
        require_strace(self)
        sh = self.smarthost()
        d = self.daemon(sh)
        self.warm_up(d, sh, "D2L-WARM")
        # The first in a recycled segment (the warm-up's), the second in a
        # new one: its NNNN.free files removed under the daemon, whose
        # rename of one then fails, and it creates the segment.
        figures = [self.d2_logged_one(d, sh, tag, size, fresh)
                   for tag, size, fresh in (("D2L-SMALL", 2500, False),
                                            ("D2L-STREAM", 150000, True))]
        print("\n  D2 logged: " + "; ".join(
            "%s: %d message bytes in a %d-byte record in %s, fsyncs before the 250 %r, "
            "queue files of the id %r" % f for f in figures))

    def d2_logged_one(self, d, sh, tag, size, fresh):
        self.settle(d, sh)  # the commit makes a new segment; nothing retires
        log_dir = os.path.join(os.path.realpath(d.spool), "log")
        frees = [n for n in os.listdir(log_dir) if n.endswith(".free")]
        self.assertTrue(frees, "no recycled segment after the warm-up: %r" % frees)
        if fresh:
            for n in frees:
                os.unlink(os.path.join(log_dir, n))
        out = os.path.join(self.tmp, "d2-%s.trace" % tag)
        st = Strace(self.tmp, [d.proc.pid], [
            "trace=write,writev,pwrite64,pwritev,pwritev2,fsync,fdatasync,rename,renameat,"
            "renameat2,linkat,unlinkat,sendto,sendmsg,openat,close"], out=out, follow=True)
        data = marker_message(tag, size=size)
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, text)
        qid = harness.queue_id_of(text)
        self.assertIsNotNone(qid, text)
        harness.wait_for(lambda: with_marker(sh, tag), 20, "%s delivered" % tag)
        self.quiet(d)  # its removal ('D' record) is in the trace
        st.detach()
        calls = parse_trace(out)
        spool = os.path.realpath(d.spool)
        log_dir = spool + "/log"

        copies = with_marker(sh, tag)
        self.assertEqual(len(copies), 1, "%s delivered %d times" % (tag, len(copies)))
        self.assertEqual(copies[0].body(), data)
        ok = replies_250(calls, qid)
        self.assertEqual(len(ok), 1, "the 250 reply to the client: %r" % ok)
        recs = log_records(calls, spool, "A", qid)
        self.assertEqual(len(recs), 1, "'A' record appends for %s: %r (%s)" % (qid, recs, out))
        rec = recs[0]
        self.assertEqual(rec.name, "pwritev", rec)
        seg = rec.fd_path()
        parts = [int(n) for n in re.findall(r"iov_len=(\d+)", rec.args)]
        self.assertEqual(len(parts), 3, "the record's parts (header, envelope, body): %r" % rec)
        self.assertEqual(parts[0], 64, rec)
        self.assertEqual(parts[2], len(copies[0].data),
                         "body bytes in the record != bytes delivered: %r" % rec)
        self.assertEqual(int(rec.ret), sum(parts), "short record write: %r" % rec)
        # made new, or a retired one recycled (renamed from NNNN.free)
        created = [c for c in calls if c.fd_path(0) == log_dir
                   and not (c.ret or "-1").startswith("-1") and (
            (c.name == "openat" and '"%s"' % os.path.basename(seg) in c.args
             and "O_CREAT" in c.args and "O_EXCL" in c.args) or
            (c.name == "renameat" and '.free"' in c.args
             and c.args.rstrip(" )").endswith('"%s"' % os.path.basename(seg))))]
        self.assertEqual(len(created), 1, "creation of %s: %r" % (seg, created))
        self.assertEqual(created[0].name, "openat" if fresh else "renameat", created[0])
        f_logdir = [c for c in fsyncs_of(calls, log_dir) if c.start > created[0].end]
        self.assertTrue(f_logdir, "no fsync of log/ after creating %s" % seg)
        f_seg = [c for c in fsyncs_of(calls, seg) if c.start > rec.end]
        self.assertTrue(f_seg, "no fsync of %s after the record's pwritev" % seg)
        steps = [("segment create", created[0]), ("fsync(log/)", f_logdir[0]),
                 ("record pwritev", rec), ("fsync(segment)", f_seg[0]),
                 ("250 to the client", ok[0])]
        self.assertTrue(all(c.ret is not None and not c.ret.startswith("-1")
                            for _, c in steps[:-1]), "a step failed: %r" % steps)
        for (n1, c1), (n2, c2) in zip(steps, steps[1:]):
            self.assertLess(c1.end, c2.start, "%s must finish before %s starts:\n  %r\n  %r"
                            % (n1, n2, c1, c2))
        before_250 = [c for c in calls if c.name in ("fsync", "fdatasync")
                      and created[0].start < c.start < ok[0].start]
        self.assertEqual([c.fd_path() for c in before_250], [log_dir, seg],
                         "the only flushes of a held commit: %r" % before_250)
        # Held: no queue file of the id is created, written or renamed
        # into place (a spare recycled as msg/ID is a renameat2).
        qfiles = [c for c in calls if qid in (c.fd_path() or "") or (
            c.name in ("rename", "renameat", "renameat2", "linkat") and qid in c.args) or (
            c.name == "openat" and "O_CREAT" in c.args and qid in c.args)]
        early = [c for c in qfiles if c.start < ok[0].end]
        self.assertEqual(early, [], "queue files of a held message before its 250")
        done = log_records(calls, spool, "D", qid)
        self.assertEqual(len(done), 1, "'D' record for %s: %r" % (qid, done))
        self.assertGreater(done[0].start, ok[0].end)
        if done[0].fd_path() == seg:
            # Its segment was never sealed while it was held: nothing
            # could have needed its files (no retire, no update).
            self.assertEqual(qfiles, [], "queue files of a message delivered from memory")
        return (tag, parts[2], int(rec.ret), os.path.relpath(seg, spool),
                [os.path.relpath(c.fd_path(), spool) for c in before_250],
                sorted({os.path.relpath(c.fd_path() or "?", spool) for c in qfiles}))

    # ------------------------------------------------------------ D3
    def test_d3_fsync_eio_every_commit_fsync(self):
        """EIO from each of the 4 fsyncs of a per-file commit (a message over
        512 KiB: message, msg/, envelope, env/): 451 4.3.0, nothing left, no
        retried fsync; the daemon serves on."""
        require_strace(self)
        sh = self.smarthost()
        d = self.daemon(sh)
        self.warm_up(d, sh, "D3-WARM")
        spool = os.path.realpath(d.spool)
        for n in range(1, 5):
            wait_log_empty(d)  # no segment retire shifts the fsync count
            out = os.path.join(self.tmp, "d3-%d.trace" % n)
            st = Strace(self.tmp, [d.proc.pid], [
                "trace=fsync,fdatasync,write,renameat,renameat2,unlinkat",
                "inject=fsync:error=EIO:when=%d" % n], out=out, follow=True)
            code, text = raw_send(d.port, marker_message("D3-FAIL-%d" % n, size=600000))
            time.sleep(0.3)
            st.detach()
            self.assertTrue(d.alive(), "daemon died after fsync EIO #%d" % n)
            self.assertEqual(code, 451, "fsync #%d failed: reply %r %r" % (n, code, text))
            self.assertTrue(text.startswith("4.3.0"), text)
            calls = parse_trace(out)
            bad = [c for c in calls if c.name == "fsync" and "EIO" in (c.ret or "")]
            self.assertEqual(len(bad), 1, "injected fsync failures seen: %r" % bad)
            path = bad[0].fd_path() or ""
            want = {1: r"/tmp/%s\.msg$" % harness.QID, 2: r"/msg$",
                    3: r"/tmp/%s\.env$" % harness.QID, 4: r"/env$"}[n]
            self.assertTrue(path.startswith(spool) and re.search(want, path),
                            "fsync #%d hit %r, expected %s" % (n, path, want))
            again = [c for c in calls if c.name in ("fsync", "fdatasync")
                     and c.start > bad[0].end and c.fd_path() == path]
            self.assertEqual(again, [], "fsync retried after EIO (fsyncgate): %r" % again)
            self.assertFalse([c for c in calls if "250 2.0.0" in c.args],
                             "250 written after fsync EIO #%d" % n)
            harness.wait_for(lambda: not d.spool_entries("tmp"), 3, "tmp/ empty")
            self.assertEqual(d.spool_entries("env"), [], "fsync #%d: env/ not empty" % n)
            self.assertEqual(d.spool_entries("msg"), [], "fsync #%d: msg/ not empty" % n)
        d.wait_log(r"queue file write error", 5)
        data = marker_message("D3-AFTER")
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, "after the faults: %s" % text)
        harness.wait_for(lambda: with_marker(sh, "D3-AFTER"), 20, "D3-AFTER delivered")
        self.assertEqual(with_marker(sh, "D3-AFTER")[0].body(), data)
        time.sleep(0.5)
        self.assertFalse([m for m in sh.messages() if b"X-Marker: D3-FAIL" in m.data],
                         "a message answered 451 was delivered")

    def test_d3_fsync_eio_logged_commit(self):
        """EIO from the fsync of the intake-log segment (a small, held
        message: the record is the only thing its commit writes): 451
        4.3.0, no 250, no queue file of the id ever created, the id not in
        the queue, env/ msg/ tmp/ empty, the segment never fsynced again
        (fsyncgate), a 'D' record for the id in another segment; the
        daemon serves on. The retire of the failed segment is made to
        fail too (EIO on its fsync of msg/) so that the segment is still
        there at the restart: the replay honours the 'D' record and the
        451'd message is never delivered."""
        require_strace(self)
        sh = self.smarthost()
        d = self.daemon(sh)
        self.warm_up(d, sh, "D3L-WARM")
        spool = os.path.realpath(d.spool)
        self.settle(d, sh)  # the warm-up's segment retired, its last fsync done
        # The one pool thread's fsyncs: #1 log/ (segment created), #2 the
        # segment (EIO), #3 log/ (a new segment for the 'D'), #4 msg/ in
        # the retire of the failed segment (EIO), ...
        out = os.path.join(self.tmp, "d3l.trace")
        st = Strace(self.tmp, [d.proc.pid], [
            "trace=fsync,fdatasync,write,writev,pwritev,pwritev2,openat,renameat,renameat2,"
            "unlinkat", "inject=fsync:error=EIO:when=2+2"], out=out, follow=True)
        mark = d.mark()
        code, text = raw_send(d.port, marker_message("D3L-FAIL"))
        d.wait_log(r"spool: cannot retire log/%s" % SEG_NAME, 10, since=mark)
        st.detach()
        self.assertTrue(d.alive(), "daemon died after the segment's fsync EIO")
        self.assertEqual(code, 451, "segment fsync failed: reply %r %r" % (code, text))
        self.assertTrue(text.startswith("4.3.0"), text)
        calls = parse_trace(out)
        bad = [c for c in calls if c.name == "fsync" and "EIO" in (c.ret or "")]
        self.assertTrue(bad, "no injected fsync failure in %s" % out)
        seg = bad[0].fd_path() or ""
        self.assertRegex(seg, "^" + re.escape(spool) + "/log/" + SEG_NAME + "$",
                         "the first failed fsync is not the segment's")
        recs = log_records(calls, spool, "A")
        self.assertEqual(len(recs), 1, "'A' records: %r" % recs)
        self.assertEqual(recs[0].fd_path(), seg)
        self.assertLess(recs[0].end, bad[0].start)
        # the id in the header is NUL padded: the 16 digits before a "\0"
        # (a NUL before a digit prints as "\000", so not the first 16)
        qid = re.search(r"(%s)(?=\\)" % harness.QID,
                        recs[0].args[recs[0].args.index("OBL2A"):]).group(1)
        # A small message is held: the record was its commit's only write
        # (no queue file of the id created, written or renamed; the
        # retire's lookup of msg/ID, env/ID finds nothing).
        qfiles = [c for c in calls if qid in (c.fd_path() or "") or (
            c.name.startswith("rename") and qid in c.args) or (
            c.name == "openat" and qid in c.args and "O_CREAT" in c.args)]
        self.assertEqual(qfiles, [], "queue files of a held message")
        self.assertNotIn(qid, d.queued(), "a message answered 451 is in the queue")
        again = [c for c in calls if c.name in ("fsync", "fdatasync")
                 and c.start > bad[0].end and c.fd_path() == seg]
        self.assertEqual(again, [], "segment fsynced again after EIO (fsyncgate): %r" % again)
        self.assertEqual(replies_250(calls, qid), [])
        self.assertFalse([c for c in calls if "250 2.0.0" in c.args
                          and (c.fd_path() or "").startswith("socket:")], "250 after the EIO")
        done = [c for c in log_records(calls, spool, "D", qid) if c.start > bad[0].end]
        self.assertEqual(len(done), 1, "'D' record for %s: %r" % (qid, done))
        self.assertNotEqual(done[0].fd_path(), seg, "'D' appended to the failed segment")
        harness.wait_for(lambda: not d.spool_entries("tmp"), 3, "tmp/ empty")
        self.assertEqual(d.spool_entries("env"), [])
        self.assertEqual(d.spool_entries("msg"), [])
        left = d.log_segments()
        self.assertIn(os.path.basename(seg), left, "the failed segment was removed")
        self.assertIn(os.path.basename(done[0].fd_path()), left)
        d.wait_log(r"%s: spool commit failed at intake log" % qid, 5)
        data = marker_message("D3L-AFTER")
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, "after the fault: %s" % text)
        harness.wait_for(lambda: with_marker(sh, "D3L-AFTER"), 20, "D3L-AFTER delivered")
        self.assertEqual(with_marker(sh, "D3L-AFTER")[0].body(), data)
        # the replay of the segments left must not bring it back
        mark = d.mark()
        d.restart()
        m = d.wait_log(r"spool: replayed (\d+) log segment\(s\): (\d+) message\(s\) still "
                       r"queued, (\d+) rebuilt file\(s\), (\d+) removal\(s\)", 10, since=mark)
        self.assertGreaterEqual(int(m.group(1)), 2, m.group(0))
        self.assertEqual(int(m.group(2)), 0, m.group(0))
        self.assertGreaterEqual(int(m.group(4)), 1, m.group(0))
        self.assertEqual(d.log_segments(), [], "segments left after the replay")
        time.sleep(2.5)  # retry_min 1s: a resurrected message would go out now
        self.assertEqual(d.queued(), [])
        self.assertEqual(d.spool_entries("msg"), [])
        self.assertEqual(with_marker(sh, "D3L-FAIL"), [], "a message answered 451 was delivered")
        self.assertEqual(len(with_marker(sh, "D3L-AFTER")), 1)
        print("\n  D3 logged: EIO on %s -> 451; 'D' in %s; after restart: %s"
              % (os.path.relpath(seg, spool), os.path.relpath(done[0].fd_path(), spool),
                 m.group(0)))

    # ------------------------------------------------------------ D4
    def test_d4_disk_full_tmpfs(self):
        """A real full file system: a 256 KiB tmpfs spool and a 400 KB message:
        452 4.3.1 (or 451 4.3.0), nothing partial left, daemon alive; then a
        small message gets 250 and is delivered; the big one fails again."""
        ok, why = can_mount_tmpfs(self.tmp)
        if not ok:
            self.skipTest("cannot mount a tmpfs in a private mount namespace: %s" % why)
        sh = self.smarthost()
        # min_free = 0: let the message start, so the disk fills during DATA
        # (test_d5_low_space_refused_at_mail covers the check at MAIL).
        d = NsOutboxd(self.tmp, name="outboxd1", relay=[sh.port], tmpfs_size="256k",
                      settings={"spool": {"min_free": "0"}})
        self._daemons.append(d)
        d.start()
        self.assertEqual(d.ns_entries("tmp"), [])
        big = marker_message("D4-BIG", size=400000)
        for attempt in (1, 2):
            code, text = raw_send(d.port, big)
            self.assertIn(code, (452, 451), "attempt %d: %r %r" % (attempt, code, text))
            self.assertTrue(text.startswith("4.3.1" if code == 452 else "4.3.0"), text)
            self.assertTrue(d.alive(), "daemon died on ENOSPC")
            harness.wait_for(lambda: not d.ns_entries("tmp"), 3, "tmp/ empty on the tmpfs")
            self.assertEqual(d.ns_entries("env"), [])
            self.assertEqual(d.ns_entries("msg"), [])
            small = marker_message("D4-SMALL-%d" % attempt)
            code, text = raw_send(d.port, small)
            self.assertEqual(code, 250, "small message after ENOSPC: %s" % text)
            harness.wait_for(lambda: with_marker(sh, "D4-SMALL-%d" % attempt), 20,
                             "small message delivered")
            self.assertEqual(with_marker(sh, "D4-SMALL-%d" % attempt)[0].body(), small)
        self.assertEqual(with_marker(sh, "D4-BIG"), [], "the refused message was delivered")
        d.wait_log(r"(?i)no space left on device", 5)

    def test_d5_low_space_refused_at_mail(self):
        """D5: the spool (a 256 KiB tmpfs) has less free space than min_free:
        MAIL gets 452 4.3.1 before any DATA, nothing is written; with
        min_free lowered by a reload, the same message is accepted."""
        ok, why = can_mount_tmpfs(self.tmp)
        if not ok:
            self.skipTest("cannot mount a tmpfs in a private mount namespace: %s" % why)
        sh = self.smarthost()
        d = NsOutboxd(self.tmp, name="outboxd1", relay=[sh.port], tmpfs_size="256k",
                      settings={"spool": {"min_free": "1M"}})
        self._daemons.append(d)
        d.start()
        time.sleep(1.2)  # the free space is measured once a second
        c = harness.RawClient(d.port)
        self.assertEqual(c.read_reply()[0], 220)
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        code, text = c.cmd("MAIL FROM:<app@local.test>")
        self.assertEqual(code, 452, text)
        self.assertIn("4.3.1", text)
        c.close()
        self.assertEqual(d.ns_entries("tmp"), [])
        d.settings = {"spool": {"min_free": "100k"}}
        d.write_config()
        mark = d.mark()
        d.proc.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 10, since=mark)
        msg = marker_message("D5-OK")
        code, text = raw_send(d.port, msg)
        self.assertEqual(code, 250, text)
        harness.wait_for(lambda: with_marker(sh, "D5-OK"), 20, "delivered")

    def test_d4_enospc_injected_on_log_append(self):
        """D4 by injection: ENOSPC on the one write that stores a 200 KB
        message. Up to 512 KiB a body is held in memory during DATA and
        the commit writes it once, as the pwritev of its intake-log record
        (no queue file): that pwritev fails. 452 4.3.1, no 250; nothing
        partial left (the segment cut back to where the record began, no
        queue file of the id, the id not queued, tmp/ msg/ env/ empty, and
        the log retires cleanly afterwards); the daemon keeps serving; the
        same message sent again gets 250 and is delivered once, intact."""
        require_strace(self)
        sh = self.smarthost()
        d = self.daemon(sh)
        self.warm_up(d, sh, "D4L-WARM")
        spool = os.path.realpath(d.spool)
        self.settle(d, sh)  # the commit creates a fresh segment
        pool = [t for t in tasks(d.proc.pid) if t != d.proc.pid]
        self.assertTrue(pool, "no libuv pool thread after a delivery")
        # The pool thread's pwritevs into a fresh segment: #1 the zeros
        # written ahead (best effort: a failure there is ignored), #2 the
        # record.
        out = os.path.join(self.tmp, "d4l.trace")
        st = Strace(self.tmp, pool, ["trace=pwritev,ftruncate,openat,renameat,renameat2,write",
                                     "inject=pwritev:error=ENOSPC:when=2"], out=out)
        data = marker_message("D4L", size=210000)
        self.assertGreaterEqual(len(data), 200000)  # RELIABILITY D4: 200 KB
        mark = d.mark()
        code, text = raw_send(d.port, data)
        time.sleep(0.3)
        st.detach()
        self.assertTrue(d.alive(), "daemon died on ENOSPC")
        self.assertEqual(code, 452, "ENOSPC on the record: reply %r %r" % (code, text))
        self.assertTrue(text.startswith("4.3.1"), text)
        calls = parse_trace(out)
        bad = [c for c in calls if c.name == "pwritev" and "ENOSPC" in (c.ret or "")]
        self.assertEqual(len(bad), 1, "injected failures: %r (%s)" % (bad, out))
        seg = bad[0].fd_path() or ""
        self.assertRegex(seg, "^" + re.escape(spool) + "/log/" + SEG_NAME + "$")
        self.assertIn('"OBL2A', bad[0].args, "the failed pwritev is not a record: %r" % bad[0])
        qid = re.search(r"(%s)(?=\\)" % harness.QID,
                        bad[0].args[bad[0].args.index("OBL2A"):]).group(1)
        parts = [int(n) for n in re.findall(r"iov_len=(\d+)", bad[0].args)]
        self.assertEqual(len(parts), 3, bad[0])
        self.assertGreater(parts[2], len(data), "the record does not carry the whole body")
        # Cut back to where the record began (a real ENOSPC can leave part
        # of it): nothing torn sits in the segment.
        zeros = [c for c in calls if c.name == "pwritev" and c.fd_path() == seg
                 and c.end < bad[0].start and '"OBL2' not in c.args]
        cut = [c for c in calls if c.name == "ftruncate" and c.fd_path() == seg
               and c.start > bad[0].end]
        self.assertEqual(len(cut), 1, "truncation of %s after the failed append: %r" % (seg, cut))
        self.assertRegex(cut[0].args, r", 0$", "a fresh segment cut back to 0 bytes: %r" % cut[0])
        self.assertTrue(zeros, "no zeros written ahead in the fresh segment (is #2 the record?)")
        qfiles = [c for c in calls if qid in (c.fd_path() or "") or (
            c.name.startswith("rename") and qid in c.args) or (
            c.name == "openat" and qid in c.args and "O_CREAT" in c.args)]
        self.assertEqual(qfiles, [], "queue files of the refused message")
        d.wait_log(r"%s: spool commit failed at intake log: No space left on device" % qid, 5,
                   since=mark)
        self.assertNotIn(qid, d.queued(), "a message answered 452 is in the queue")
        harness.wait_for(lambda: not d.spool_entries("tmp"), 3, "tmp/ empty")
        self.assertEqual(d.spool_entries("msg"), [])
        self.assertEqual(d.spool_entries("env"), [])
        # Space back (strace gone): the client's retry is stored.
        code, text = raw_send(d.port, data)
        self.assertEqual(code, 250, "the retry: %s" % text)
        harness.wait_for(lambda: with_marker(sh, "D4L"), 20, "the retry delivered")
        wait_log_empty(d)  # the failed segment and the retry's retire
        time.sleep(0.5)
        copies = with_marker(sh, "D4L")
        self.assertEqual(len(copies), 1, "copies of D4L (refused once, then stored once)")
        self.assertEqual(copies[0].body(), data)
        self.assertEqual(d.queued(), [])
        for sub in ("tmp", "msg", "env", "corrupt"):
            self.assertEqual(d.spool_entries(sub), [], "%s/ after the retry" % sub)

    # ------------------------------------------------------------ D1
    def test_d1_kill9_at_every_step(self):
        """SIGKILL just before each syscall of one acceptance, its delivery
        and the retire of its log segment: every openat/write/pwritev/fsync/
        rename/close/unlinkat of the pool thread, and the main thread's
        354 and 250 writes, spool openat and its connect to the smarthost
        (after the 250, before the upstream has a copy: the message is then
        only in its log record and in memory). After each kill the daemon
        is restarted (the replay of the log brings back what it holds):
        250 => delivered at least once (at most twice), byte-identical;
        no 250 => 0 or 1 complete copies; tmp/ msg/ env/ corrupt/ empty
        once the queue has drained; never a partial message."""
        require_strace(self)
        t_start = time.monotonic()
        budget = harness.scaled(120)
        sh = self.smarthost()
        d = self.daemon(sh, settings={"log": {"level": "info"}})
        self.warm_up(d, sh, "D1-WARM")
        plan = self.d1_calibrate(d, sh)
        names = "\n".join("  %-4s %-8s #%-2d %s" % p for p in plan)
        # A held message's acceptance is short: no queue file is created,
        # written, closed, renamed or synced before its 250 any more, only
        # the log record. Its segment is the warm-up's, recycled. Up to the
        # 250 the kill points are: 354, the rename of log/NNNN.free to the
        # new segment, its open, fsync(log/), the record, fsync(segment),
        # the pool's wake-up of the loop, 250 -- 8, where the per-file path
        # had about 16. After it: the connect, the 'D' record and wake-up,
        # and the retire of the segment (the survivor lookups in msg/ and
        # env/, their fsyncs, its rename to NNNN.free, fsync(log/)).
        first_250 = next((i for i, p in enumerate(plan) if p[3] == "write 250 to client"), None)
        self.assertIsNotNone(first_250, "no 250 in the calibration:\n" + names)
        self.assertGreaterEqual(first_250 + 1, 8, "kill points up to the 250:\n" + names)
        self.assertGreaterEqual(len(plan), 14, "too few kill points found:\n" + names)
        for want in (r"pool renameat +#\d+ +log/%s\.free -> log/%s$" % (SEG_NAME, SEG_NAME),
                     r"pool fsync +#\d+ +log/$",
                     r"pool pwritev +#\d+ +'A' record to log/%s$" % SEG_NAME,
                     r"pool fsync +#\d+ +log/%s$" % SEG_NAME,
                     r"main write +#\d+ +write 250 to client$",
                     r"main connect +#1 +connect to the smarthost$",
                     r"pool pwritev +#\d+ +'D' record to log/%s$" % SEG_NAME,
                     r"pool renameat +#\d+ +log/(%s) -> log/\1\.free$" % SEG_NAME):
            self.assertRegex(names, "(?m)^ *" + want, "kill point missing from the plan")
        results = []
        for i, (role, cls, n, what) in enumerate(plan):
            if time.monotonic() - t_start > budget:
                break
            results.append(self.d1_one_kill(d, sh, i, role, cls, n, what))
        killed = [r for r in results if r["killed"]]
        summary = "\n".join("  %-4s %-8s #%-2d %-36s killed=%-5s 250=%-5s copies=%d%s" % (
            r["role"], r["cls"], r["n"], r["what"][:36], r["killed"], r["got250"],
            r["copies"], "  (" + r["replay"] + ")" if r["replay"] else "") for r in results)
        print("\n  D1 kill points (%d runs, %.0fs):\n%s" % (
            len(results), time.monotonic() - t_start, summary))
        problems = [p for r in results for p in r["problems"]]
        self.assertEqual(problems, [], "\n" + summary)
        self.assertEqual(len(results), len(plan), "time budget (%ds) ran out:\n%s"
                         % (budget, summary))
        self.assertEqual(len(killed), len(plan), "kills that hit the transaction:\n" + summary)
        self.assertTrue(any(not r["got250"] and r["copies"] == 0 for r in killed),
                        "no kill before the record was written:\n" + summary)
        self.assertTrue(any(not r["got250"] and r["copies"] == 1 for r in killed),
                        "no kill inside the record-to-250 window:\n" + summary)
        # The held message's own case: 250 given, killed before any copy
        # left, so only the log record had it: the replay delivered it.
        held = [r for r in killed if r["got250"] and r["before"] == 0]
        self.assertTrue(held, "no kill between the 250 and the delivery:\n" + summary)
        for r in held:
            self.assertRegex(r["replay"], r"[1-9]\d* still queued",
                             "%s: a 250'd message not delivered before the kill did not come "
                             "back from the log:\n%s" % (r["what"], summary))

    def d1_calibrate(self, d, sh):
        """Trace one acceptance, its delivery and its segment's retire; the
        kill plan is every traced call of the pool thread and the main
        thread's spool openat, 354/250 replies and connect to the
        smarthost, numbered per thread and syscall as strace counts."""
        out = os.path.join(self.tmp, "d1-calibrate.trace")
        self.settle(d, sh)
        st = Strace(self.tmp, [d.proc.pid], ["trace=" + ",".join(SPOOL_CLASSES)],
                    out=out, follow=True)
        code, text = raw_send(d.port, marker_message("D1-CAL"))
        self.assertEqual(code, 250, text)
        harness.wait_for(lambda: with_marker(sh, "D1-CAL"), 20, "calibration delivered")
        wait_log_empty(d)  # the retire of the segment is in the trace
        time.sleep(0.3)
        st.detach()
        spool = os.path.realpath(d.spool)
        seen, plan = {}, []
        upstream = "sin_port=htons(%d)" % sh.port
        for c in parse_trace(out):
            role = "main" if c.tid == d.proc.pid else "pool"
            key = (role, c.name)
            seen[key] = seen.get(key, 0) + 1
            path = c.fd_path() or ""
            interesting = (role == "pool" or
                           (c.name == "openat" and path.startswith(spool)) or
                           (c.name == "connect" and upstream in c.args) or
                           (c.name == "write" and path.startswith("socket:")
                            and ('"354 ' in c.args or '"250 2.0.0' in c.args)))
            if not interesting or len(plan) >= 28:
                continue
            rel = path.replace(spool + "/", "").replace(spool, "spool") or "?"
            names = re.findall(r'"([^"]*)"', c.args)
            if '"250 2.0.0' in c.args:
                desc = "write 250 to client"
            elif '"354 ' in c.args:
                desc = "write 354 to client"
            elif c.name == "connect":
                desc = "connect to the smarthost"
            elif c.name == "openat" and names and "O_CREAT" in c.args:
                desc = "create %s/%s" % (rel, names[0])
            elif c.name in ("openat", "unlinkat") and names:
                desc = "%s/%s" % (rel, names[0])
            elif c.name.startswith("rename") and len(names) > 1:
                desc = "%s/%s -> %s/%s" % (rel, names[0],
                                           (c.fd_path(1) or "?").replace(spool + "/", ""),
                                           names[1])
            elif c.name == "pwritev" and '"OBL2' in c.args:
                desc = "'%s' record to %s" % (c.args[c.args.index('"OBL2') + 5], rel)
            elif c.name == "pwritev":
                desc = "zeros ahead in %s" % rel
            elif rel.startswith("anon_inode:[eventfd]"):
                desc = "wake the loop (eventfd)"
            elif c.name in ("fsync", "fdatasync") and not rel.startswith("log/"):
                desc = rel + "/"
            else:
                desc = rel
            plan.append((role, c.name, seen[key], desc))
        return plan

    def d1_one_kill(self, d, sh, i, role, cls, n, what):
        res = {"role": role, "cls": cls, "n": n, "what": what, "killed": False,
               "got250": False, "copies": 0, "before": 0, "replay": "", "problems": []}
        if len(tasks(d.proc.pid)) < 2:
            self.warm_up(d, sh, "D1-WARM-%d" % i)
        self.settle(d, sh)
        pid = d.proc.pid
        tids = [pid] if role == "main" else [t for t in tasks(pid) if t != pid]
        st = Strace(self.tmp, tids, ["trace=" + cls,
                                     "inject=%s:signal=SIGKILL:when=%d" % (cls, n)])
        marker = "D1-%02d-%s-%s-%d" % (i, role, cls, n)
        data = marker_message(marker)
        code, text = raw_send(d.port, data, timeout=10)
        res["got250"] = code == 250
        # the retire runs 1-2 s after the last append
        rc = d.proc.wait(6 if res["got250"] else 3)
        res["killed"] = rc is not None
        if rc is None:
            st.detach()
            res["problems"].append("%s: kill point never reached (%s #%d, %s)"
                                   % (marker, cls, n, what))
            harness.wait_for(lambda: not d.queued(), 20, "queue drained")
        else:
            st.detach()
            res["before"] = len(with_marker(sh, marker))
            d.exited.append(rc)
            d.proc = None
            if rc != -signal.SIGKILL:
                res["problems"].append("%s: daemon exit %r, not SIGKILL" % (marker, rc))
            mark = d.mark()
            d.start()
            m = re.search(r"spool: replayed (\d+) log segment\(s\): (\d+) message\(s\) still "
                          r"queued, (\d+) rebuilt file\(s\), (\d+) removal\(s\)",
                          d.log_text(since=mark))
            if m:
                res["replay"] = "replay: %s segment(s), %s still queued, %s file(s)" % (
                    m.group(1), m.group(2), m.group(3))
            try:
                harness.wait_for(lambda: not d.queued(), 20, "queue drained after restart")
            except HarnessError as e:
                res["problems"].append("%s: %s" % (marker, e))
        time.sleep(0.3)
        copies = with_marker(sh, marker)
        res["copies"] = len(copies)
        for m in copies:
            if m.body() != data:
                res["problems"].append("%s: delivered copy differs (%d vs %d bytes)"
                                       % (marker, len(m.body()), len(data)))
        if res["got250"] and not copies:
            res["problems"].append("%s: got 250, never delivered (lost)" % marker)
        if not res["got250"] and len(copies) > 1:
            res["problems"].append("%s: no 250 but %d copies" % (marker, len(copies)))
        if res["got250"] and len(copies) > 2:
            res["problems"].append("%s: %d copies" % (marker, len(copies)))
        for sub in ("tmp", "msg", "env", "corrupt"):
            if d.spool_entries(sub):
                res["problems"].append("%s: %s/ not empty after restart: %r" % (
                    marker, sub, d.spool_entries(sub)))
        return res


if __name__ == "__main__":
    harness.main()
