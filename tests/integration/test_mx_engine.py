#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The delivery engine in direct-MX mode: a message to three domains with
one dead (the live ones at once, the dead one retried); per-destination
fairness and concurrency (E9); a dead destination is backed off as a whole,
not probed once per message (E10)."""
import sys
import time

import harness
from harness import make_message
from mxlib import MxTestCase, field, send_many


def mx_zone(pairs):
    """{domain: ip} -> zone with mx.<domain> -> ip."""
    z = {}
    for dom, ip in pairs.items():
        z[dom] = {"MX": [[10, "mx." + dom]]}
        z["mx." + dom] = {"A": [ip]}
    return z


class MxEngine(MxTestCase):

    def test_three_domains_one_dead(self):
        """One message to a.test, b.test and dead.test (its MX refuses
        connections): a and b delivered at once, dead deferred and kept;
        once its MX is up it gets the message, and a and b never again."""
        zone = mx_zone({"a.test": "127.0.0.2", "b.test": "127.0.0.3",
                        "dead.test": "127.0.0.4"})
        dns = self.dnsmasq(zone)
        pa = self.mx_smarthost("127.0.0.2")
        pb = self.mx_smarthost("127.0.0.3")
        pdead = self.mx_smarthost("127.0.0.4", start=False)
        d = self.mx_outboxd(dns.port)
        data = make_message("three domains\r\n", to="x@a.test")
        t0 = time.monotonic()
        qid = d.send_ok("app@local.test", ["x@a.test", "y@dead.test", "z@b.test"], data)
        pa.wait_messages(1, 10)
        pb.wait_messages(1, 10)
        self.assertLess(time.monotonic() - t0, 10)
        self.wait_status(d, qid, "x@a.test", "sent")
        self.wait_status(d, qid, "z@b.test", "sent")
        ln = self.wait_status(d, qid, "y@dead.test", "deferred")["line"]
        self.assertTrue(field(ln, "dsn").startswith("4."), ln)
        self.assertIn(qid, d.queued())
        pdead.start()
        msgs = pdead.wait_messages(1, 30)
        self.assertEqual(msgs[0].rcpt_tos, ["y@dead.test"])
        self.assertEqual(msgs[0].body(), data)
        self.wait_status(d, qid, "y@dead.test", "sent")
        harness.wait_for(lambda: qid not in d.queued(), 10, "message removed")
        time.sleep(1.0)
        self.assertEqual(len(pa.messages()), 1, "a.test delivered twice")
        self.assertEqual(len(pb.messages()), 1, "b.test delivered twice")
        self.assertEqual([m.rcpt_tos for m in pa.messages()], [["x@a.test"]])

    def test_session_reused_then_closed(self):
        """README: a ready session is kept 2 s for the next message. Three
        messages 0.5 s apart share one session; the idle session is then
        closed with QUIT (within the 2 s keep time plus slack)."""
        zone = mx_zone({"reuse.test": "127.0.0.2"})
        dns = self.dnsmasq(zone)
        peer = self.mx_smarthost("127.0.0.2")
        d = self.mx_outboxd(dns.port)
        for i in range(3):
            d.send_ok("app@local.test", ["r%d@reuse.test" % i], make_message("x\r\n"))
            peer.wait_messages(i + 1, 10)
            time.sleep(0.5)
        self.assertEqual(peer.session_count(), 1, "no session reuse: %r" % peer.sessions())
        harness.wait_for(lambda: any(s[1] is not None for s in peer.session_spans().values()),
                         6, "the idle session to be closed")
        cmds = peer.sessions()[1]
        self.assertEqual(cmds[-1].upper(), "QUIT", cmds)
        self.assertEqual(sum(1 for c in cmds if c.upper().startswith("MAIL")), 3)

    def test_e9_fairness_slow_destination(self):
        """E9 (counts cut for time: 1,000 slow messages, not 5,000; 10 fast,
        not 100; the slow MX sleeps 1 s per message): with
        connections_per_domain = 2, the fast destination's 10 messages,
        queued after the slow backlog, are delivered within 20 s, the slow
        destination still progresses, and the slow MX never sees more than
        2 sessions at once."""
        n_slow, n_fast = harness.sized(1000, 60), 10
        zone = mx_zone({"slow.test": "127.0.0.2", "fast.test": "127.0.0.3"})
        dns = self.dnsmasq(zone)
        slow = self.mx_smarthost("127.0.0.2", extra=["--data-delay", "1.0"])
        fast = self.mx_smarthost("127.0.0.3")
        d = self.mx_outboxd(dns.port, connections_per_domain=2)
        body = make_message("slow one\r\n", to="s@slow.test")
        t0 = time.monotonic()
        send_many(d.port, [("app@local.test", ["s%d@slow.test" % i], body)
                           for i in range(n_slow)], timeout=120)
        t_injected = time.monotonic() - t0
        t1 = time.monotonic()
        fbody = make_message("fast one\r\n", to="f@fast.test")
        send_many(d.port, [("app@local.test", ["f%d@fast.test" % i], fbody)
                           for i in range(n_fast)])
        fast.wait_messages(n_fast, 20)
        took = time.monotonic() - t1
        # The slow MX takes 1 s per message and injection can take less than
        # that, so the fast batch may land before the first slow one: wait
        # (bounded) for the slow destination's first delivery rather than
        # demand it has already happened.
        slow.wait_messages(1, 10)
        delivered_slow = len(slow.messages())
        self.assertLess(delivered_slow, n_slow, "slow backlog already done: test proves nothing")
        self.assertLessEqual(slow.max_concurrent(), 2,
                             "slow.test had more sessions than connections_per_domain")
        time.sleep(3)
        self.assertLessEqual(slow.max_concurrent(), 2)
        self.assertEqual(sorted(r for m in fast.messages() for r in m.rcpt_tos),
                         sorted("f%d@fast.test" % i for i in range(n_fast)))
        sys.stderr.write("(injected %d in %.1fs; fast done in %.1fs; slow delivered %d) " % (
            n_slow, t_injected, took, delivered_slow))

    def test_e10_dead_destination_backed_off(self):
        """E10 (200 queued messages, not 1,000): the only MX of dead.test
        answers every connection with a 421 greeting (a counting peer).
        The destination is backed off as a whole: a few connections per
        backoff interval, not one per message; alive.test is unaffected;
        nothing bounces."""
        n = 200
        zone = mx_zone({"dead.test": "127.0.0.2", "alive.test": "127.0.0.3"})
        dns = self.dnsmasq(zone)
        dead = self.mini("127.0.0.2", greeting="421 4.3.2 not now")
        alive = self.mx_smarthost("127.0.0.3")
        d = self.mx_outboxd(dns.port, connections_per_domain=4)
        body = make_message("for a dead host\r\n", to="x@dead.test")
        qids = send_many(d.port, [("app@local.test", ["x%d@dead.test" % i], body)
                                  for i in range(n)], timeout=120)
        t0 = time.monotonic()
        abody = make_message("alive\r\n", to="y@alive.test")
        send_many(d.port, [("app@local.test", ["y%d@alive.test" % i], abody)
                           for i in range(5)])
        alive.wait_messages(5, 10)
        d.wait_log(r"dead\.test: .*backing off", 10)
        time.sleep(max(0.0, 10 - (time.monotonic() - t0)))
        times = dead.connection_times()
        window = time.monotonic() - t0
        # bound: at most one probe per second (retry_min 1s, backoff up to
        # 2s) plus a first burst of up to connections_per_domain (4); one
        # connection per message would be >= 200
        self.assertLessEqual(len(times), 4 + int(window) + 2,
                             "%d connections to a dead MX in %.0fs for %d messages" % (
                                 len(times), window, n))
        self.assertGreaterEqual(len(times), 2, "the dead destination is never probed again")
        self.assertEqual(d.deliveries(status="bounced"), [])
        self.assertEqual(len(set(d.queued()) & set(qids)), n, "messages lost or dropped")


if __name__ == "__main__":
    harness.main()
