#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Direct delivery routing (RFC 5321 5.1): MX preference order, fallback to
the next MX when the first is down, equal preferences randomised (C6),
implicit MX (C4), unusable MX targets skipped (C7), dual stack (C12), and
one transaction per destination domain.

Each MX host is a peer on its own loopback address with the shared
`[mx] port`; DNS is dnsmasq (or fake_dns.py where dnsmasq cannot serve the
records) on 127.0.0.1."""
import socket
import time

import harness
from harness import make_message
from mxlib import MxTestCase, field


def mx(*pairs):
    return {"MX": [[p, h] for p, h in pairs]}


def a(*ips):
    return {"A": list(ips)}


class MxRouting(MxTestCase):

    def test_preference_order(self):
        """Both MX hosts up: everything goes to the lower preference."""
        zone = {"a.test": mx((20, "mx2.a.test"), (10, "mx1.a.test")),
                "mx1.a.test": a("127.0.0.2"), "mx2.a.test": a("127.0.0.3")}
        dns = self.dnsmasq(zone)
        mx1 = self.mx_smarthost("127.0.0.2")
        mx2 = self.mx_smarthost("127.0.0.3")
        d = self.mx_outboxd(dns.port)
        data = make_message("to the best MX\r\n", to="r@a.test")
        qids = [d.send_ok("app@local.test", ["r%d@a.test" % i], data) for i in range(3)]
        msgs = mx1.wait_messages(3, 20)
        self.assertEqual(sorted(m.rcpt_tos[0] for m in msgs),
                         ["r0@a.test", "r1@a.test", "r2@a.test"])
        self.assertEqual(msgs[0].body(), data)
        for i, qid in enumerate(qids):
            ln = self.wait_status(d, qid, "r%d@a.test" % i, "sent")["line"]
            self.assertEqual(field(ln, "relay"), "mx1.a.test[127.0.0.2]:%d" % self.mx_port)
            self.assertEqual(field(ln, "dsn"), "2.0.0")
        time.sleep(0.5)
        self.assertEqual(mx2.messages(), [])
        self.assertEqual(mx2.session_count(), 0, "the preference-20 MX was contacted")
        # the domain was looked up as MX first, never as A (it has MX records)
        self.assertIn(("a.test", "MX"), dns.queries())
        self.assertNotIn(("a.test", "A"), dns.queries())

    def test_fallback_to_second_mx(self):
        """The first MX refuses connections: the second one gets the message
        in the same attempt (no deferral logged)."""
        zone = {"a.test": mx((10, "mx1.a.test"), (20, "mx2.a.test")),
                "mx1.a.test": a("127.0.0.2"), "mx2.a.test": a("127.0.0.3")}
        dns = self.dnsmasq(zone)
        mx2 = self.mx_smarthost("127.0.0.3")   # nothing listens on 127.0.0.2
        d = self.mx_outboxd(dns.port)
        data = make_message("first MX is down\r\n", to="r@a.test")
        qid = d.send_ok("app@local.test", ["r@a.test"], data)
        msgs = mx2.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        self.assertEqual(msgs[0].rcpt_tos, ["r@a.test"])
        ln = self.wait_status(d, qid, "r@a.test", "sent")["line"]
        self.assertEqual(field(ln, "relay"), "mx2.a.test[127.0.0.3]:%d" % self.mx_port)
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])
        harness.wait_for(lambda: qid not in d.queued(), 10, "message removed from the queue")

    def test_fallback_after_421_greeting(self):
        """B3 for MX: the first MX answers 421 at the greeting: go on to the
        second in the same attempt."""
        zone = {"a.test": mx((10, "mx1.a.test"), (20, "mx2.a.test")),
                "mx1.a.test": a("127.0.0.2"), "mx2.a.test": a("127.0.0.3")}
        dns = self.dnsmasq(zone)
        busy = self.mini("127.0.0.2", greeting="421 4.3.2 busy, try later")
        mx2 = self.mx_smarthost("127.0.0.3")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@a.test"], make_message("x\r\n"))
        mx2.wait_messages(1, 20)
        self.wait_status(d, qid, "r@a.test", "sent")
        self.assertGreaterEqual(len(busy.sessions), 1, "the first MX was never tried")
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])

    def test_c6_equal_preferences_randomised(self):
        """C6: `10 a, 10 b, 20 c` for 80 domains (one message with one
        recipient in each: 80 destinations, so 80 separate sessions; the
        catalogue's 200 deliveries cut to 80 for time). a and b each get
        30-70 % (3.6 sigma either side); c none. Then with a and b down,
        c takes the mail."""
        n = 80
        zone = {"mxa.c6.test": a("127.0.0.2"), "mxb.c6.test": a("127.0.0.3"),
                "mxc.c6.test": a("127.0.0.4")}
        for i in range(n):
            zone["d%d.c6.test" % i] = mx((10, "mxa.c6.test"), (10, "mxb.c6.test"),
                                         (20, "mxc.c6.test"))
        dns = self.dnsmasq(zone)
        pa = self.mx_smarthost("127.0.0.2")
        pb = self.mx_smarthost("127.0.0.3")
        pc = self.mx_smarthost("127.0.0.4")
        d = self.mx_outboxd(dns.port)
        rcpts = ["r@d%d.c6.test" % i for i in range(n)]
        d.send_ok("app@local.test", rcpts, make_message("spread\r\n"))
        harness.wait_for(lambda: len(pa.messages()) + len(pb.messages()) >= n, 60,
                         "%d deliveries to a and b" % n, interval=0.2)
        na, nb = len(pa.messages()), len(pb.messages())
        got = sorted(r for p in (pa, pb) for m in p.messages() for r in m.rcpt_tos)
        self.assertEqual(got, sorted(rcpts), "each domain exactly once")
        self.assertEqual(pc.messages(), [], "preference 20 used while 10s were up")
        self.assertTrue(0.30 * n <= na <= 0.70 * n,
                        "not randomised: a got %d, b got %d of %d" % (na, nb, n))
        # both preference-10 hosts down: c takes it
        pa.stop()
        pb.stop()
        qid = d.send_ok("app@local.test", ["last@d0.c6.test"], make_message("to c\r\n"))
        msgs = pc.wait_messages(1, 20)
        self.assertEqual(msgs[0].rcpt_tos, ["last@d0.c6.test"])
        ln = self.wait_status(d, qid, "last@d0.c6.test", "sent")["line"]
        self.assertIn("127.0.0.4", field(ln, "relay"))

    def test_implicit_mx(self):
        """C4 (first row): no MX records but an A record: deliver there
        (preference 0, on [mx] port)."""
        zone = {"imp.test": a("127.0.0.5"), "other.test": mx((10, "mx.other.test")),
                "mx.other.test": a("127.0.0.6")}
        dns = self.dnsmasq(zone)
        peer = self.mx_smarthost("127.0.0.5")
        d = self.mx_outboxd(dns.port)
        data = make_message("implicit MX\r\n", to="r@imp.test")
        qid = d.send_ok("app@local.test", ["r@imp.test"], data)
        msgs = peer.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        ln = self.wait_status(d, qid, "r@imp.test", "sent")["line"]
        self.assertIn("[127.0.0.5]:%d" % self.mx_port, field(ln, "relay"))
        qs = dns.queries(name="imp.test")
        self.assertIn(("imp.test", "MX"), qs)
        self.assertLess(qs.index(("imp.test", "MX")), qs.index(("imp.test", "A")),
                        "A asked before MX: %r" % qs)

    def test_c7_unusable_targets_skipped(self):
        """C7: MX targets with no address, an IP literal as a name, names
        that are not host names (one with CR LF in a label) are skipped; a CNAME target is followed. The
        literal is 127.0.0.7 and the bad name resolves to 127.0.0.8, both
        with a counting peer that must never be contacted (nothing leaves
        loopback even if the daemon gets it wrong)."""
        zone = {"c7.test": mx((10, "noaddr.c7.test"), (20, "127.0.0.7"),
                              (25, "evil\r\ninjected: x.c7.test"),
                              (30, "mx_bad!.c7.test"), (40, "alias.c7.test")),
                "noaddr.c7.test": {},
                "127.0.0.7": a("127.0.0.7"),
                "mx_bad!.c7.test": a("127.0.0.8"),
                "alias.c7.test": {"CNAME": "real.c7.test"},
                "real.c7.test": a("127.0.0.9")}
        dns = self.fake_dns(zone)
        lit = self.mini("127.0.0.7")
        bad = self.mini("127.0.0.8")
        real = self.mx_smarthost("127.0.0.9")
        d = self.mx_outboxd(dns.port)
        data = make_message("via the CNAME\r\n", to="r@c7.test")
        qid = d.send_ok("app@local.test", ["r@c7.test"], data)
        msgs = real.wait_messages(1, 25)
        self.assertEqual(msgs[0].body(), data)
        self.wait_status(d, qid, "r@c7.test", "sent")
        self.assertEqual(lit.sessions, [], "an IP literal MX target was used as an address")
        self.assertEqual(bad.sessions, [], "an invalid MX host name was used")
        self.assertEqual(dns.queries(name="mx_bad!.c7.test"), [],
                         "an invalid host name was looked up")
        # CR LF inside a DNS label never splits a log line
        self.assertNotRegex(d.log_text(), r"(?m)^injected")
        self.assertNotIn("\r", d.log_text())

    def test_c7_no_usable_target_bounces(self):
        """C7: MX records present but none usable (all invalid names):
        a permanent failure, no connection."""
        zone = {"c7b.test": mx((10, "mx_bad!.c7b.test"), (20, "also bad.c7b.test")),
                "mx_bad!.c7b.test": a("127.0.0.7")}
        dns = self.fake_dns(zone)
        bad = self.mini("127.0.0.7")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@c7b.test"], make_message("x\r\n"))
        ln = self.wait_status(d, qid, "r@c7b.test", "bounced", 20)["line"]
        self.assertTrue(field(ln, "dsn").startswith("5."), ln)
        self.assertEqual(bad.sessions, [])

    def test_c12_dual_stack(self):
        """C12: the MX host has AAAA ::1 (nothing listening there) and A
        127.0.0.5 (listening): delivered over IPv4 in the same attempt,
        within the connect timeout bound."""
        port = self.mx_port
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            self.assertNotEqual(s.connect_ex(("::1", port)), 0, "something listens on ::1")
        zone = {"dual.test": mx((10, "mx.dual.test")),
                "mx.dual.test": {"A": ["127.0.0.5"], "AAAA": ["::1"]}}
        dns = self.dnsmasq(zone)
        peer = self.mx_smarthost("127.0.0.5")
        d = self.mx_outboxd(dns.port)
        t0 = time.monotonic()
        qid = d.send_ok("app@local.test", ["r@dual.test"], make_message("v4\r\n"))
        peer.wait_messages(1, 20)
        elapsed = time.monotonic() - t0
        ln = self.wait_status(d, qid, "r@dual.test", "sent")["line"]
        self.assertEqual(field(ln, "relay"), "mx.dual.test[127.0.0.5]:%d" % port)
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])
        self.assertLess(elapsed, 10, "IPv6 failure delayed delivery by %.1fs" % elapsed)
        self.assertIn(("mx.dual.test", "AAAA"), dns.queries())

    def test_address_literal(self):
        """user@[127.0.0.5] goes to that address on [mx] port, without DNS."""
        dns = self.dnsmasq({"unused.test": a("127.0.0.9")})
        peer = self.mx_smarthost("127.0.0.5")
        d = self.mx_outboxd(dns.port)
        data = make_message("to a literal\r\n", to="r@[127.0.0.5]")
        qid = d.send_ok("app@local.test", ["r@[127.0.0.5]"], data)
        msgs = peer.wait_messages(1, 20)
        self.assertEqual(msgs[0].rcpt_tos, ["r@[127.0.0.5]"])
        self.assertEqual(msgs[0].body(), data)
        ln = self.wait_status(d, qid, "r@[127.0.0.5]", "sent")["line"]
        self.assertIn("127.0.0.5", field(ln, "relay"))
        self.assertEqual(dns.queries(), [], "DNS asked for an address literal")

    def test_at_most_five_addresses_per_attempt(self):
        """README: at most 5 addresses per attempt. Seven MX hosts, each a
        peer answering 421 at the greeting; retries are pushed out to 60 s
        so that only the first attempt is seen."""
        hosts = ["127.0.0.%d" % (2 + i) for i in range(7)]
        zone = {"many.test": mx(*[(10 + i, "mx%d.many.test" % i) for i in range(7)])}
        for i, ip in enumerate(hosts):
            zone["mx%d.many.test" % i] = a(ip)
        dns = self.dnsmasq(zone)
        peers = [self.mini(ip, greeting="421 4.3.2 not now") for ip in hosts]
        d = self.mx_outboxd(dns.port, settings={"spool": {"retry_min": "60s",
                                                          "retry_max": "60s"}})
        qid = d.send_ok("app@local.test", ["r@many.test"], make_message("x\r\n"))
        self.wait_status(d, qid, "r@many.test", "deferred", 20)
        time.sleep(1.0)
        tried = [len(p.sessions) for p in peers]
        self.assertLessEqual(sum(tried), 5, "addresses tried in one attempt: %r" % tried)
        self.assertGreaterEqual(sum(tried), 2, "no fallback at all: %r" % tried)
        # in preference order: the ones tried are the first ones
        self.assertEqual(tried[:sum(1 for t in tried if t)], [1] * sum(1 for t in tried if t),
                         "not tried in preference order: %r" % tried)

    def test_one_transaction_per_domain(self):
        """A message to two domains is split per destination; each domain's
        recipients go in one transaction to its own MX, byte-identical."""
        zone = {"a.test": mx((10, "mx.a.test")), "mx.a.test": a("127.0.0.2"),
                "b.test": mx((10, "mx.b.test")), "mx.b.test": a("127.0.0.3")}
        dns = self.dnsmasq(zone)
        pa = self.mx_smarthost("127.0.0.2")
        pb = self.mx_smarthost("127.0.0.3")
        d = self.mx_outboxd(dns.port)
        data = make_message("two domains\r\n.dot line\r\n", to="r1@a.test")
        qid = d.send_ok("app@local.test", ["r1@a.test", "r1@b.test", "r2@a.test"], data)
        ma = pa.wait_messages(1, 20)
        mb = pb.wait_messages(1, 20)
        for r in ("r1@a.test", "r2@a.test", "r1@b.test"):
            self.wait_status(d, qid, r, "sent")
        time.sleep(0.5)
        ma, mb = pa.messages(), pb.messages()
        self.assertEqual(len(ma), 1, "a.test recipients split over transactions")
        self.assertEqual(sorted(ma[0].rcpt_tos), ["r1@a.test", "r2@a.test"])
        self.assertEqual([m.rcpt_tos for m in mb], [["r1@b.test"]])
        self.assertEqual(ma[0].body(), data)
        self.assertEqual(mb[0].body(), data)
        self.assertEqual(ma[0].mail_from, "app@local.test")
        rcpt_cmds = [ln for _s, _t, ln in pa.commands() if ln.upper().startswith("RCPT")]
        self.assertEqual(len(rcpt_cmds), 2, "b.test recipient sent to a.test's MX?")


if __name__ == "__main__":
    harness.main()
