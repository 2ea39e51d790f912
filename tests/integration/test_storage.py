#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Storage and load: D12 the spool turns read-only while the daemon runs
(and back), E8 a burst of 2,000 messages with nothing lost.

D12 runs the daemon in a private mount namespace (unshare -m) where the
spool is a bind mount of itself, so that `mount -o remount,ro,bind` (run
with nsenter in that namespace) makes it read-only for the daemon alone;
as root a chmod would be ignored. The lock file the daemon holds open for
writing is a separate file bind mount: a writer on the spool mount would
make the read-only remount fail with EBUSY. Skipped (with the reason) only
where mount namespaces are not permitted.

E8: RELIABILITY.md E8 uses `smtp-source -m 10000 -s 20` against smtp-sink;
here 2,000 messages (the sanitizer build on 2 cores), concurrency 20, from
a lean asyncio pipelining client into outboxd relaying to bench/smtp_sink.py
(no TLS). bench/mx_fanout.py covers the full size and the timings."""
import asyncio
import json
import os
import smtplib
import subprocess
import time

import harness
from harness import Outboxd, OutboxTestCase, free_port, make_message, outboxd_path

BENCH = os.path.join(os.path.dirname(harness.TESTS), "bench")


# ---------------------------------------------------------------- D12 helpers

class RoOutboxd(Outboxd):
    """outboxd in a private mount namespace whose spool is a bind mount
    (remountable read-only), with spool/lock bind-mounted from outside the
    spool mount. The spool is the same directory seen from outside."""

    def spawn(self, args=None):
        if self.port is None:
            self.port = free_port()
        self.write_config()
        os.makedirs(self.spool, exist_ok=True)
        lock_store = os.path.join(self.dir, "lock-store")
        for path in (lock_store, os.path.join(self.spool, "lock")):
            with open(path, "ab"):
                pass
        # under OUTBOX_TEST_VALGRIND the exec'd program is memcheck (same pid)
        daemon = harness.valgrind_argv(
            [outboxd_path(), "-f", "-c", self.config_path] + list(args or []),
            self.name)
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$1" "$1" && mount --bind "$2" "$1/lock" && shift 2 '
                '&& exec "$@"', "sh", self.spool, lock_store] + daemon
        with open(self.log_path, "ab") as f:
            f.write(("---- %s start: %s\n" % (time.strftime("%H:%M:%S"),
                                              " ".join(argv))).encode())
        self.log_offset = self.log_size()
        self.proc = harness.Proc(argv, self.name, self.dir, env=self.proc_env())
        return self.proc

    def remount(self, mode, tries=20):
        """remount,ro|rw,bind the spool inside the daemon's namespace;
        retried briefly on EBUSY (a file open for writing right then).
        Before going read-only, wait until spool/log/ has no segment: the intake
        log's current segment is open for writing (EBUSY) until the idle
        seal retires it, about 1-2 s after the last commit or removal."""
        if mode == "ro":
            harness.wait_for(lambda: not self.log_segments(), 10,
                             "no segment in spool/log/ before the read-only remount: %r"
                             % self.log_segments())
        last = None
        for _ in range(tries):
            last = subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "mount", "-o",
                                   "remount,%s,bind" % mode, self.spool],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=10)
            if last.returncode == 0:
                return
            time.sleep(0.1)
        raise harness.HarnessError("remount %s failed: %s" % (
            mode, last.stdout.decode(errors="replace")))


def can_bind_remount(workdir):
    d = os.path.join(workdir, "probe-bind")
    os.makedirs(d, exist_ok=True)
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" '
                            '&& ! touch "$0/x" 2>/dev/null', d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        have = subprocess.run(["which", "nsenter"], stdout=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, repr(e)
    if have.returncode != 0:
        return False, "no nsenter"
    return r.returncode == 0, r.stdout.decode(errors="replace").strip() or "probe failed"


def try_send(port, marker, timeout=20):
    """One transaction; (code, text) of the first refusal or of the
    end-of-data reply; (None, why) if the connection broke."""
    data = make_message("body of %s\r\n" % marker, headers=["X-Marker: " + marker])
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                          timeout=timeout) as s:
            s.ehlo()
            for step in (lambda: s.mail("app@local.test"),
                         lambda: s.rcpt("rcpt@dest.test")):
                code, text = step()
                if code != 250:
                    return code, text.decode(errors="replace")
            try:
                code, text = s.data(data)
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode(errors="replace")
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
            return code, text.decode(errors="replace")
    except (smtplib.SMTPException, OSError) as e:
        return None, repr(e)


def with_marker(sh, marker):
    return [m for m in sh.messages() if ("X-Marker: %s\r\n" % marker).encode() in m.data]


# ---------------------------------------------------------------- E8 helpers

def bench_message(n):
    head = ("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: <e8-%d@outbox.test>\r\nFrom: <burst@local.test>\r\n"
            "To: <u%d@dest.test>\r\nSubject: burst %d\r\nX-Bench-Id: %d\r\n\r\n"
            % (n, n, n, n))
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    return head.encode() + line * 28  # ~2 KB, as smtp-source -l 2048


async def read_reply(reader):
    for _ in range(100):
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return int(line[:3]), line.decode("utf-8", "replace").strip()
    raise ConnectionError("reply too long")


async def inject_client(port, queue, accepted, refused, silent):
    """One connection: MAIL, RCPT and DATA pipelined in one write (RFC
    2920), then the body; accepted[n] = seconds to the 250."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 10)
        await asyncio.wait_for(read_reply(reader), 10)
        writer.write(b"EHLO burst.client\r\n")
        await asyncio.wait_for(read_reply(reader), 10)
    except (OSError, ConnectionError, asyncio.TimeoutError) as e:
        silent.append(("connect", repr(e)))
        return
    n = None
    try:
        for _ in range(100000):
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            t0 = time.monotonic()
            writer.write(b"MAIL FROM:<burst@local.test>\r\nRCPT TO:<u%d@dest.test>\r\n"
                         b"DATA\r\n" % n)
            c1, t1 = await asyncio.wait_for(read_reply(reader), 30)
            c2, t2 = await asyncio.wait_for(read_reply(reader), 30)
            c3, t3 = await asyncio.wait_for(read_reply(reader), 30)
            if c3 != 354:
                refused.append((n, c1, c2, c3, t3))
                if c3 != 503 and c3 // 100 != 4:
                    silent.append((n, "refusal not 4xx: %s" % t3))
                continue
            writer.write(bench_message(n) + b".\r\n")
            c4, t4 = await asyncio.wait_for(read_reply(reader), 30)
            if c4 == 250:
                accepted[n] = time.monotonic() - t0
            else:
                refused.append((n, c4, t4))
                if c4 // 100 != 4:
                    silent.append((n, "end-of-data refusal not 4xx: %s" % t4))
            n = None
        writer.write(b"QUIT\r\n")
        await asyncio.wait_for(read_reply(reader), 10)
    except (OSError, ConnectionError, ValueError, asyncio.TimeoutError) as e:
        silent.append((n, "no reply: %r" % e))
    writer.close()


async def inject(port, total, concurrency):
    queue = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    accepted, refused, silent = {}, [], []
    await asyncio.gather(*(inject_client(port, queue, accepted, refused, silent)
                           for _ in range(concurrency)))
    return accepted, refused, silent


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def percentile(vals, p):
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(round(p / 100.0 * (len(vals) - 1))))] if vals else 0


# ---------------------------------------------------------------- tests

class Storage(OutboxTestCase):

    # ------------------------------------------------------------ D12
    def test_d12_spool_read_only_while_running(self):
        """Spool remounted read-only under the running daemon: new mail gets
        451 4.3.0 (or 452 4.3.1), never 250; a message already queued is
        still delivered; the daemon stays up; after remount rw new mail
        gets 250 again without a restart, the delivered one leaves the
        queue and is not sent twice."""
        ok, why = can_bind_remount(self.tmp)
        if not ok:
            self.skipTest("cannot remount a bind mount read-only in a private mount "
                          "namespace: %s" % why)
        sh = self.smarthost(rcpt_reply=["1:held@dest.test=450 4.2.1 try again later"])
        d = RoOutboxd(self.tmp, name="outboxd1", relay=[sh.port],
                      settings={"spool": {"retry_min": "3s", "retry_max": "3s"}})
        self._daemons.append(d)
        d.start()
        code, text = try_send(d.port, "D12-WARM")
        self.assertEqual(code, 250, text)
        harness.wait_for(lambda: with_marker(sh, "D12-WARM"), 20, "warm-up delivered")
        # One message deferred (450 once), retried 3 s later.
        held = make_message("body of D12-HELD\r\n", to="held@dest.test",
                            headers=["X-Marker: D12-HELD"])
        qid = d.send_ok("app@local.test", ["held@dest.test"], held)
        d.wait_log(r"%s: to=<held@dest\.test>,.*status=deferred" % qid, 15)
        time.sleep(0.5)  # the deferral is recorded in its envelope
        harness.wait_for(lambda: not d.spool_entries("tmp"), 5, "tmp/ empty")
        d.remount("ro")
        mark = d.mark()
        for i in range(3):
            code, text = try_send(d.port, "D12-RO-%d" % i)
            self.assertIn(code, (451, 452), "new mail on a read-only spool: %r %r"
                          % (code, text))
            self.assertTrue(text.startswith("4.3.0" if code == 451 else "4.3.1"), text)
            self.assertTrue(d.alive(), "daemon died on a read-only spool")
        # the queued message still goes out
        harness.wait_for(lambda: with_marker(sh, "D12-HELD"), 20,
                         "the already-queued message delivered while read-only")
        self.assertEqual(with_marker(sh, "D12-HELD")[0].body(), held)
        ro_log = d.log_text(mark)
        self.assertRegex(ro_log, r"(?i)read-only file system", "the cause is not logged")
        n_err = len([ln for ln in ro_log.splitlines() if "ead-only file system" in ln])
        time.sleep(1.0)
        self.assertTrue(d.alive(), "daemon died on a read-only spool")
        d.remount("rw")
        t_rw = time.monotonic()
        result = None
        for i in range(10):  # bounded: at most ~10 s to notice the fix
            result = try_send(d.port, "D12-AFTER-%d" % i)
            if result[0] == 250:
                break
            self.assertIn(result[0], (451, 452), result)
            time.sleep(1.0)
        self.assertEqual(result[0], 250, "no 250 after the spool became writable: %r"
                         % (result,))
        recovered = time.monotonic() - t_rw
        harness.wait_for(lambda: with_marker(sh, "D12-AFTER-%d" % i), 20,
                         "mail after the fix delivered")
        try:
            harness.wait_for(lambda: not d.queued() and not d.spool_entries("msg"), 20,
                             "queue empty after the fix")
        except harness.HarnessError:
            self.fail("env/%s and msg/%s still there 20 s after the spool became "
                      "writable: the message delivered while read-only was never "
                      "removed (a restart would send it again, I3); queued: %r"
                      % (qid, qid, d.queued()))
        time.sleep(3.5)  # one retry interval: a resend of D12-HELD would show
        self.assertEqual(len(with_marker(sh, "D12-HELD")), 1,
                         "the message delivered while read-only was sent again")
        for i in range(3):
            self.assertEqual(with_marker(sh, "D12-RO-%d" % i), [],
                             "a message refused while read-only was delivered")
        self.assertEqual(d.spool_entries("tmp"), [])
        self.assertEqual(d.spool_entries("corrupt"), [])
        print("\n  D12: %d read-only error lines logged, 250 again %.1fs after rw"
              % (n_err, recovered))

    # ------------------------------------------------------------ E8
    def test_e8_burst_2000_nothing_lost(self):
        """2,000 messages, 20 pipelining connections, relayed to the lean
        sink: every 250 is delivered exactly once, every refusal is a 4xx
        (never silence); reports the acceptance rate and p50/p99 to 250."""
        total, concurrency = harness.sized(2000, 100), 20
        sink_dir = os.path.join(self.tmp, "sink")
        os.makedirs(sink_dir)
        stats = os.path.join(sink_dir, "stats.json")
        sink = harness.Proc([harness.PY, os.path.join(BENCH, "smtp_sink.py"),
                             "--ips", "127.0.0.1", "--port", "0", "--stats", stats],
                            "sink", sink_dir, pipe_stdout=True)
        sink_port = sink.read_ready()
        try:
            d = self.outboxd(relay=[sink_port], tls="none", user=None,
                             settings={"log": {"level": "info"}})
            t0 = time.monotonic()
            accepted, refused, silent = asyncio.run(inject(d.port, total, concurrency))
            t_accept = time.monotonic() - t0
            self.assertEqual(silent, [], "messages neither accepted nor refused with 4xx")
            self.assertGreater(len(accepted), total * 0.9, "too many refusals: %r"
                               % refused[:5])
            harness.wait_for(lambda: read_json(stats).get("received", 0) >= len(accepted),
                             120, "%d messages at the sink" % len(accepted), interval=0.25)
            harness.wait_for(lambda: not d.queued() and not d.spool_entries("msg"), 30,
                             "empty queue")
            t_drain = time.monotonic() - t0
            time.sleep(1.0)
        finally:
            rc, _ = sink.stop(10)
        self.assertEqual(rc, 0, "sink did not exit cleanly")
        final = read_json(stats)
        ids = [n for n, _t in final.get("arrivals", [])]
        counts = {}
        for n in ids:
            counts[n] = counts.get(n, 0) + 1
        self.assertNotIn(-1, counts, "a message without its X-Bench-Id at the sink")
        missing = sorted(set(accepted) - set(counts))
        dups = sorted(n for n, c in counts.items() if c > 1)
        unknown = sorted(set(counts) - set(accepted))
        lat = list(accepted.values())
        print("\n  E8: %d accepted / %d refused (4xx) in %.1fs = %.0f msg/s; drained in "
              "%.1fs; 250 latency p50 %.1f ms p99 %.1f ms; missing %d, duplicates %d"
              % (len(accepted), len(refused), t_accept, len(accepted) / t_accept, t_drain,
                 1000 * percentile(lat, 50), 1000 * percentile(lat, 99), len(missing),
                 len(dups)))
        self.assertEqual(missing, [], "acknowledged messages lost")
        self.assertEqual(dups, [], "messages delivered twice without a crash")
        self.assertEqual(unknown, [], "messages at the sink that never got 250")
        self.assertEqual(len(ids), len(accepted))
        self.assertEqual(d.spool_entries("tmp"), [])


if __name__ == "__main__":
    harness.main()
