#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Smarthost down, retry and failover (B1): a message for a smarthost that
is not listening is deferred and kept; once the smarthost is up it is
delivered on a retry; with a failover list the live host is used at once."""
import time

import harness
from harness import OutboxTestCase, make_message, free_port


class Failover(OutboxTestCase):

    def test_down_then_up(self):
        port = free_port()  # nothing listens here yet
        d = self.outboxd(relay=[port])
        data = make_message("waiting for the smarthost\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred" % qid, 10)
        self.assertEqual(d.queued(), [qid])
        sh = self.smarthost(port=port)
        self.assertEqual(sh.port, port)
        msgs = sh.wait_messages(1, 20)  # retry_min 1s, retry_max 2s
        self.assertEqual(msgs[0].body(), data)
        self.assertEqual(msgs[0].rcpt_tos, ["rcpt@dest.test"])
        d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=sent" % qid, 10)
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        time.sleep(1.0)
        self.assertEqual(len(sh.messages()), 1, "delivered more than once")

    def test_retry_backoff_bounded(self):
        """Deferred mail is retried (several attempts in a few seconds with
        retry_max = 2s), not once and never again, and not in a tight loop."""
        port = free_port()
        d = self.outboxd(relay=[port])
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("x\r\n"))
        harness.wait_for(lambda: len(d.deliveries(status="deferred", qid=qid)) >= 2, 12,
                         "a second deferred attempt")
        time.sleep(3)
        n = len(d.deliveries(status="deferred", qid=qid))
        self.assertLess(n, 20, "retrying in a tight loop: %d attempts in ~6s" % n)

    def test_failover_list(self):
        dead = free_port()
        sh = self.smarthost()
        d = self.outboxd(relay=["127.0.0.1:%d" % dead, "127.0.0.1:%d" % sh.port])
        data = make_message("via the second host\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        msgs = sh.wait_messages(1, 10)
        self.assertEqual(msgs[0].body(), data)
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=([^,]*),.*status=sent" % qid, 10)
        self.assertIn(":%d" % sh.port, m.group(1))
        # same attempt: no deferral logged for it before delivery
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])

    def test_first_host_refuses_greeting(self):
        """B3: a 421 greeting from the first host: go on to the next one."""
        fk = self.fake("sendline 421 4.3.2 busy, try later\nwait-close 5\n", connections=0)
        sh = self.smarthost()
        d = self.outboxd(relay=[fk.port, sh.port])
        data = make_message("skip the busy one\r\n")
        d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        msgs = sh.wait_messages(1, 15)
        self.assertEqual(msgs[0].body(), data)


if __name__ == "__main__":
    harness.main()
