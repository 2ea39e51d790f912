#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Process faults, part 2 (RELIABILITY.md D10 with outbound deliveries in
flight, D14 out of memory in one session, D15 a delivery in flight
during a reload). Part 1 is test_process_faults.py.

D14 needs a real address-space limit (RLIMIT_AS, set with prlimit on the
running daemon). A sanitizer build reserves terabytes of shadow memory,
so there the test runs OUTBOX_TEST_PLAIN_OUTBOXD (a build without
-DOUTBOX_SANITIZE) when it is set, and is skipped with the reason when it
is not.
"""
import os
import re
import signal
import subprocess
import time

import harness
from harness import OutboxTestCase, Outboxd, RawClient, make_message


def data_commands(sh):
    return sum(1 for _s, _t, ln in sh.commands() if ln.upper().startswith("DATA"))


def marker_message(marker, size=0):
    filler = "".join("%s %05d %s\r\n" % (marker, i, "q" * 60) for i in range(size // 80))
    return make_message("body of %s\r\n%s" % (marker, filler),
                        headers=["X-Marker: " + marker])


def with_marker(sh, marker):
    return [m for m in sh.messages() if ("X-Marker: %s\r\n" % marker).encode() in m.data]


def asan_instrumented(path):
    """Whether the binary carries AddressSanitizer's runtime."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class ProcessFaults2(OutboxTestCase):

    # ------------------------------------------------------------ D10
    def test_d10_sigterm_with_deliveries_in_flight(self):
        """The catalogue's scale: 16 messages handed to a smarthost that
        answers the end of data after 30 s (the relay ramp opens sessions
        while the backlog is more than twice the open ones: at least 5
        messages inside DATA) and 20 idle inbound sessions; SIGTERM: each
        inbound session gets 421 4.3.2, the daemon exits 0 within 10 s,
        every message is still in env/ and none is logged status=sent; a
        restart against a fast smarthost delivers each once, byte for byte."""
        n_msgs, n_idle = 16, 20
        slow = self.smarthost(extra=["--data-delay", "30"])
        d = self.outboxd(relay=[slow.port])
        sent = {}
        for i in range(n_msgs):
            data = marker_message("D10-%02d" % i)
            sent[d.send_ok("app@local.test", ["rcpt%d@dest.test" % i], data)] = data
        harness.wait_for(lambda: data_commands(slow) >= 5 or None, 15,
                         "5 deliveries inside DATA at the slow host")
        in_flight = data_commands(slow)
        sessions = len(slow.sessions())
        idle = []
        for _ in range(n_idle):
            c = RawClient(d.port)
            self.assertEqual(c.read_reply()[0], 220)
            self.assertEqual(c.cmd("EHLO idle.test")[0], 250)
            idle.append(c)
        self.assertEqual(sorted(d.queued()), sorted(sent))
        t0 = time.monotonic()
        rc = d.kill(signal.SIGTERM, timeout=12)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code after SIGTERM")
        self.assertLess(took, 10.0, "exit took %.1fs" % took)
        for c in idle:
            code, lines = c.read_reply(timeout=2)
            self.assertEqual(code, 421, lines)
            self.assertIn("4.3.2", lines[0])
            c.close()
        self.assertEqual(sorted(d.queued()), sorted(sent), "queue after SIGTERM")
        self.assertEqual(d.deliveries(status="sent"), [], "marked sent without a 250")
        self.assertEqual(d.spool_entries("tmp"), [])
        fast = self.smarthost()
        d.relay = [fast.port]
        d.start()
        msgs = fast.wait_messages(n_msgs, 30)
        harness.wait_for(lambda: not d.queued(), 10, "queue empty after the restart")
        by_marker = {re.search(rb"X-Marker: (D10-\d+)", v).group(1): v
                     for v in sent.values()}
        got = {}
        for m in msgs:
            mk = re.search(rb"X-Marker: (D10-\d+)", m.data).group(1)
            got[mk] = got.get(mk, 0) + 1
            self.assertEqual(m.body(), by_marker[mk], mk)
        self.assertEqual(sorted(got), sorted(by_marker))
        self.assertEqual(set(got.values()), {1}, "copies per message at the fast host")
        print("\n  D10: %d DATA in flight over %d session(s), %d idle inbound; exit 0 in %.2fs;"
              " %d/%d kept and delivered after restart"
              % (in_flight, sessions, n_idle, took, n_msgs, n_msgs))

    # ------------------------------------------------------------ D15
    def test_d15_in_flight_delivery_keeps_old_route(self):
        """A delivery in flight to smarthost A (end-of-data reply after 3 s)
        while SIGHUP switches [relay] host to B: that message completes on
        A (logged sent via A, never at B); a message submitted after the
        reload goes to B only."""
        a = self.smarthost(extra=["--data-delay", "3"])
        b = self.smarthost()
        d = self.outboxd(relay=[a.port])
        m1 = marker_message("D15-OLD")
        q1 = d.send_ok("app@local.test", ["rcpt@dest.test"], m1)
        harness.wait_for(lambda: data_commands(a) >= 1 or None, 15, "DATA at A")
        d.relay = [b.port]
        d.write_config()
        mark = d.mark()
        t_hup = time.monotonic()
        d.proc.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 10, since=mark)
        m2 = marker_message("D15-NEW")
        q2 = d.send_ok("app@local.test", ["rcpt@dest.test"], m2)
        l2 = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=([^,]*),.*status=sent" % q2, 15)
        t_new = time.monotonic() - t_hup
        l1 = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=([^,]*),.*status=sent" % q1, 15)
        done = time.monotonic() - t_hup
        self.assertLess(l2.start(), l1.start(),
                        "the new message waited for the old route's delivery")
        self.assertIn(":%d" % a.port, l1.group(1), "in-flight message moved off A")
        self.assertIn(":%d" % b.port, l2.group(1), "post-reload message not sent to B")
        self.assertEqual([m.body() for m in with_marker(a, "D15-OLD")], [m1])
        self.assertEqual([m.body() for m in with_marker(b, "D15-NEW")], [m2])
        time.sleep(0.5)
        self.assertEqual(with_marker(b, "D15-OLD"), [], "the in-flight message resent to B")
        self.assertEqual(with_marker(a, "D15-NEW"), [], "a new message went to the old host")
        self.assertEqual(len(d.deliveries(status="sent")), 2)
        print("\n  D15: new message sent via B %.1fs after SIGHUP; the in-flight one "
              "finished on A after %.1fs" % (t_new, done))

    def test_d15_parked_session_not_reused_after_reload(self):
        """A session to A parked idle for the next job (connection reuse)
        when SIGHUP switches to B: the next message goes to B, not over
        the parked session to A."""
        a = self.smarthost()
        b = self.smarthost()
        d = self.outboxd(relay=[a.port])
        q0 = d.send_ok("app@local.test", ["rcpt@dest.test"], marker_message("D15P-A"))
        d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=sent" % q0, 15)
        d.relay = [b.port]
        d.write_config()
        mark = d.mark()
        d.proc.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 10, since=mark)
        m1 = marker_message("D15P-B")
        q1 = d.send_ok("app@local.test", ["rcpt@dest.test"], m1)
        l1 = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=([^,]*),.*status=sent" % q1, 15)
        self.assertIn(":%d" % b.port, l1.group(1), "sent over the session parked at A")
        self.assertEqual([m.body() for m in with_marker(b, "D15P-B")], [m1])
        self.assertEqual(with_marker(a, "D15P-B"), [])
        self.assertEqual(len(a.sessions()), 1, "sessions at A")


    # ------------------------------------------------------------ D14
    def plain_outboxd(self):
        """The daemon binary to run under RLIMIT_AS, or skip."""
        path = harness.outboxd_path()
        if not asan_instrumented(path):
            return path
        plain = os.environ.get("OUTBOX_TEST_PLAIN_OUTBOXD")
        if plain and os.access(plain, os.X_OK) and not asan_instrumented(plain):
            return plain
        self.skipTest("OUTBOXD is built with AddressSanitizer, which reserves terabytes "
                      "of address space, so RLIMIT_AS cannot be applied; set "
                      "OUTBOX_TEST_PLAIN_OUTBOXD to a build without OUTBOX_SANITIZE")
        return None

    def test_d14_out_of_memory_in_sessions(self):
        """RLIMIT_AS set on the running daemon to its size + 24 MiB; 48
        sessions each hold ~200 KB of header in DATA at once, which needs
        more than that: the sessions whose allocation fails get 451/452/421,
        never 5xx or silence; the others get 250 and are delivered; the
        daemon stays up and, once they are gone, a new session gets 250
        and its message is delivered."""
        import threading
        binary = self.plain_outboxd()
        sh = self.smarthost()
        d = Outboxd(self.tmp, name="outboxd1", relay=[sh.port],
                    settings={"log": {"level": "info"}})
        self._daemons.append(d)
        old = os.environ.get("OUTBOXD")
        os.environ["OUTBOXD"] = binary
        try:
            d.start()
        finally:
            os.environ["OUTBOXD"] = old
        warm = marker_message("D14-WARM")
        d.send_ok("app@local.test", ["rcpt@dest.test"], warm)
        sh.wait_messages(1, 15)
        vm = vm_size(d.proc.pid)
        cap = vm + (24 << 20)
        r = subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--as=%d:%d" % (cap, cap)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        self.assertEqual(r.returncode, 0, r.stdout)
        n = 48
        header = "".join("X-Fill-%05d: %s\r\n" % (i, "h" * 60) for i in range(2700))
        barrier = threading.Barrier(n + 1, timeout=30)
        results = [None] * n

        def one(i):
            results[i] = oom_session(d.port, i, header, barrier)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(60)
        self.assertTrue(d.alive(), "daemon died under RLIMIT_AS")
        codes = {}
        for res in results:
            codes[res[0]] = codes.get(res[0], 0) + 1
        print("\n  D14: VmSize %.1f MiB, cap %.1f MiB; %d sessions -> %r"
              % (vm / 1048576.0, cap / 1048576.0, n, codes))
        silent = [res for res in results if res[0] is None]
        self.assertEqual(silent, [], "sessions closed without a reply")
        bad = [res for res in results if res[0] not in (250, 421, 451, 452)]
        self.assertEqual(bad, [], "a reply other than 250 or a temporary refusal")
        failed = [res for res in results if res[0] != 250]
        self.assertTrue(failed, "the limit never bit: every session got 250 (%r)" % codes)
        ok = [res for res in results if res[0] == 250]
        self.assertTrue(ok, "no session got through while others ran out of memory")
        # the daemon recovers: memory is back once those sessions are gone
        after = marker_message("D14-AFTER")
        qid = None
        for _ in range(10):
            res = d.send("app@local.test", ["rcpt@dest.test"], after)
            if res.code == 250:
                qid = res.queue_id
                break
            time.sleep(0.5)
        self.assertIsNotNone(qid, "no 250 after the memory hogs left: %r" % (res,))
        msgs = sh.wait_messages(2 + len(ok), 30)
        self.assertEqual([m.body() for m in with_marker(sh, "D14-AFTER")], [after])
        for res in ok:
            self.assertEqual(len(with_marker(sh, "D14-%d" % res[2])), 1,
                             "a 250 not delivered: %r" % (res,))
        self.assertTrue(d.alive())
        del msgs


def vm_size(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmSize:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) * 1024


def oom_session(port, i, header, barrier):
    """MAIL, RCPT, DATA and ~200 KB of header; wait for every session to
    hold as much; then the end of data. (code or None, text, i)."""
    c = None
    try:
        c = RawClient(port, timeout=30)
        if c.read_reply()[0] != 220:
            return None, "no greeting", i
        for line in ("EHLO oom%d.test" % i, "MAIL FROM:<app@local.test>",
                     "RCPT TO:<rcpt@dest.test>", "DATA"):
            code, text = c.cmd(line)
            if code not in (250, 354):
                return code, text, i
        c.send("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nFrom: <app@local.test>\r\n"
               "Message-ID: <d14-%d@outbox.test>\r\nX-Marker: D14-%d\r\n%s" % (i, i, header))
        try:
            barrier.wait()
        except Exception:  # a broken barrier: go on
            pass
        c.send("\r\nbody %d\r\n.\r\n" % i)
        code, lines = c.read_reply()
        return code, "\n".join(lines), i
    except (OSError, harness.HarnessError) as e:
        return None, repr(e), i
    finally:
        if c is not None:
            c.close()


if __name__ == "__main__":
    harness.main()
