#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Crash safety (I1, D9): kill -9 right after the client got 250 loses
nothing; a restart with 1,000 queued messages delivers each exactly once."""
import re
import threading
import time

import harness
from harness import OutboxTestCase, make_message, free_port


def token_of(msg):
    m = re.search(rb"X-Test-Token: (\S+)", msg.data)
    return m.group(1).decode() if m else None


class Crash(OutboxTestCase):

    def test_kill9_after_250(self):
        port = free_port()  # smarthost down: the message cannot leave
        d = self.outboxd(relay=[port])
        data = make_message("must survive kill -9\r\n", headers=["X-Test-Token: T1"])
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        d.kill()  # SIGKILL at once, right after the 250
        self.assertIn(qid, d.queued(), "250-acknowledged message not in env/ after kill -9")
        sh = self.smarthost(port=port)
        d.start()
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        time.sleep(1.5)
        self.assertEqual(len(sh.messages()), 1, "delivered more than once")

    def test_kill9_while_held_only_in_log(self):
        """A small message is held: after the 250 its intake-log record is
        its only copy on disk (no msg/ or env/ file), its body in memory.
        The upstream stalls, so nothing writes its files before the kill.
        After kill -9 the offline `outbox queue` finds it in the log, and
        the next start replays it and delivers it byte for byte, once."""
        fake = self.fake("sendline 220 fake.test ESMTP\nexpect EHLO\nsleep %d\nclose\n"
                         % harness.scaled(30))
        d = self.outboxd(relay=[fake.port])
        data = make_message("held at the crash\r\n", headers=["X-Test-Token: H1"])
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        harness.wait_for(lambda: b"EHLO" in fake.received(), 10, "EHLO at the stalled peer")
        self.assertEqual(d.files_queued(), [], "held message has an env/ file already")
        self.assertEqual(d.spool_entries("msg"), [], "held message has a msg/ file already")
        self.assertEqual(d.queued(), [qid], "the daemon's queue")
        d.kill()
        self.assertEqual(d.files_queued(), [])
        # offline: read from the log record
        self.assertEqual(d.queued(), [qid], "offline listing misses the held message")
        res = harness.run_cmd([harness.cli_path(), "queue", "show", qid, "-c",
                               d.config_path])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("X-Test-Token: H1", res.stdout)
        sh = self.smarthost()
        d.relay = [sh.port]
        d.write_config()
        d.start()
        d.wait_log(r"spool: replayed 1 log segment\(s\): 1 message\(s\) still queued", 10)
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        time.sleep(1.0)
        self.assertEqual(len(sh.messages()), 1, "delivered more than once")
        self.assertEqual(d.spool_entries("msg") + d.files_queued(), [])

    def test_restart_with_1000_queued(self):
        # harness.sized(): 1,000 natively, fewer under valgrind
        n_msgs, n_threads = harness.sized(1000, 50), 10
        port = free_port()
        d = self.outboxd(relay=[port])
        errors = []
        accepted = []
        lock = threading.Lock()

        def client(t):
            import smtplib
            try:
                with smtplib.SMTP("127.0.0.1", d.port, local_hostname="c.test",
                                  timeout=60) as s:
                    for i in range(t, n_msgs, n_threads):
                        tok = "M%04d" % i
                        data = make_message("body %s\r\n" % tok,
                                            headers=["X-Test-Token: " + tok])
                        s.sendmail("app@local.test", ["r%d@dest.test" % (i % 7)], data)
                        with lock:
                            accepted.append(tok)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append("thread %d: %r" % (t, e))

        threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        self.assertEqual(errors, [])
        self.assertEqual(len(accepted), n_msgs)
        intake = time.monotonic() - t0
        harness.wait_for(lambda: len(d.queued()) == n_msgs, 20,
                         "%d entries in env/" % n_msgs)
        d.stop()
        self.assertEqual(len(d.queued()), n_msgs, "queued mail lost at SIGTERM")
        sh = self.smarthost(port=port)
        t1 = time.monotonic()
        d.start()
        msgs = sh.wait_messages(n_msgs, 90)
        drain = time.monotonic() - t1
        harness.wait_for(lambda: not d.queued(), 20, "empty queue")
        time.sleep(1.0)
        toks = [token_of(m) for m in sh.messages()]
        self.assertEqual(len(toks), n_msgs, "extra deliveries")
        self.assertEqual(sorted(toks), sorted(accepted), "a message lost or duplicated")
        print("\n  %d messages: intake %.1fs, drain after restart %.1fs" % (n_msgs, intake, drain))
        del msgs


if __name__ == "__main__":
    harness.main()
