#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""DNS faults in direct delivery (RELIABILITY.md group C): SERVFAIL (C1)
and timeout (C2) defer 4.4.3 and deliver once DNS answers; NXDOMAIN (C3)
and null MX (C5) bounce at once with no A fallback and no connection;
NODATA (C4); truncated UDP answers retried over TCP (C9); DNS down at
start-up (C13); a smarthost name that does not resolve defers and never
falls back to MX (C14).

Faults dnsmasq cannot play come from tests/peers/fake_dns.py; every
"no lookup / no connection" claim is checked at the DNS server's query log
or at a counting peer on the address a wrong fallback would use."""
import os
import shlex
import time
import unittest

import harness
from harness import make_message
import dns as dnsmod
from mxlib import MxTestCase, field


def mx(*pairs):
    return [[p, h] for p, h in pairs]


class MxDnsFaults(MxTestCase):

    def assert_dns_failure(self, d, qid, rcpt, status, dsn, timeout=20.0):
        got = self.wait_status(d, qid, rcpt, status, timeout)
        ln = got["line"]
        self.assertEqual(field(ln, "dsn"), dsn, ln)
        self.assertEqual(field(ln, "relay"), "none", ln)
        return got

    # C1 -------------------------------------------------------------
    def test_c1_servfail_defers_then_delivers(self):
        """SERVFAIL for MX: deferred 4.4.3, no A/AAAA fallback (the domain
        has an A record with a counting peer behind it); delivered once the
        server answers."""
        zone = {"sf.test": {"MX": mx((10, "mx.sf.test")), "A": ["127.0.0.3"],
                            "faults": {"MX": "SERVFAIL"}},
                "mx.sf.test": {"A": ["127.0.0.2"]}}
        dns = self.fake_dns(zone)
        fallback = self.mini("127.0.0.3")
        peer = self.mx_smarthost("127.0.0.2")
        d = self.mx_outboxd(dns.port)
        data = make_message("after the SERVFAIL\r\n", to="r@sf.test")
        qid = d.send_ok("app@local.test", ["r@sf.test"], data)
        self.assert_dns_failure(d, qid, "r@sf.test", "deferred", "4.4.3")
        self.assertIn(qid, d.queued())
        self.assertEqual(dns.queries(name="sf.test", qtype="A"), [], "A fallback after SERVFAIL")
        self.assertEqual(dns.queries(name="sf.test", qtype="AAAA"), [])
        self.assertEqual(fallback.sessions, [])
        del zone["sf.test"]["faults"]
        dns.set_zone(zone)
        msgs = peer.wait_messages(1, 25)
        self.assertEqual(msgs[0].body(), data)
        self.wait_status(d, qid, "r@sf.test", "sent")
        harness.wait_for(lambda: qid not in d.queued(), 10, "message removed")
        self.assertEqual(fallback.sessions, [])

    # C2 -------------------------------------------------------------
    def test_c2_dns_timeout_defers_bounded_others_flow(self):
        """The DNS server drops every query for one domain: that message is
        deferred 4.4.3 within a bounded budget (15 s here), while a message
        for another domain, sent after it, is delivered at once (the loop is
        not blocked). When DNS answers again, it is delivered."""
        zone = {"slowdns.test": {"MX": mx((10, "mx.slowdns.test")),
                                 "faults": {"*": "TIMEOUT"}},
                "mx.slowdns.test": {"A": ["127.0.0.2"]},
                "ok.test": {"MX": mx((10, "mx.ok.test"))},
                "mx.ok.test": {"A": ["127.0.0.4"]}}
        dns = self.fake_dns(zone)
        peer = self.mx_smarthost("127.0.0.2")
        ok = self.mx_smarthost("127.0.0.4")
        d = self.mx_outboxd(dns.port)
        t0 = time.monotonic()
        qid = d.send_ok("app@local.test", ["r@slowdns.test"], make_message("late\r\n"))
        qok = d.send_ok("app@local.test", ["r@ok.test"], make_message("on time\r\n"))
        ok.wait_messages(1, 6)
        self.wait_status(d, qok, "r@ok.test", "sent", 2)
        self.assertEqual(d.deliveries(qid=qid), [],
                         "the timing-out lookup finished before the other delivery")
        self.assert_dns_failure(d, qid, "r@slowdns.test", "deferred", "4.4.3", timeout=20)
        took = time.monotonic() - t0
        self.assertLess(took, 16, "DNS budget not bounded: deferred after %.1fs" % took)
        self.assertGreaterEqual(len(dns.queries(name="slowdns.test", qtype="MX")), 1)
        del zone["slowdns.test"]["faults"]
        dns.set_zone(zone)
        peer.wait_messages(1, 25)
        self.wait_status(d, qid, "r@slowdns.test", "sent")

    # C3 -------------------------------------------------------------
    def test_c3_nxdomain_bounces_at_once(self):
        zone = {"exists.test": {"MX": mx((10, "mx.exists.test"))},
                "mx.exists.test": {"A": ["127.0.0.2"]}}
        dns = self.dnsmasq(zone)
        d = self.mx_outboxd(dns.port)
        t0 = time.monotonic()
        qid = d.send_ok("app@local.test", ["r@nx.test"], make_message("nowhere\r\n"))
        self.assert_dns_failure(d, qid, "r@nx.test", "bounced", "5.1.2", timeout=10)
        self.assertLess(time.monotonic() - t0, 10)
        harness.wait_for(lambda: qid not in d.queued(), 10, "bounced message removed")
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])
        # no implicit-MX lookup after NXDOMAIN
        self.assertEqual(dns.queries(name="nx.test", qtype="A"), [])
        self.assertEqual(dns.queries(name="nx.test", qtype="AAAA"), [])

    def test_c3_nxdomain_one_dsn(self):
        """C3: exactly one DSN to the sender (whose domain has an MX here)."""
        zone = {"sender.test": {"MX": mx((10, "mx.sender.test"))},
                "mx.sender.test": {"A": ["127.0.0.6"]}}
        dns = self.dnsmasq(zone)
        sink = self.mx_smarthost("127.0.0.6")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@sender.test", ["r@nx.test"], make_message("x\r\n"))
        self.assert_dns_failure(d, qid, "r@nx.test", "bounced", "5.1.2")
        got = sink.wait_messages(1, 20)
        time.sleep(2)
        got = sink.messages()
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].mail_from, "")
        self.assertEqual(got[0].rcpt_tos, ["app@sender.test"])
        self.assertRegex(got[0].data.decode("utf-8", "replace"), r"(?i)status: 5\.1\.2")

    # C4 -------------------------------------------------------------
    def test_c4_nodata_everywhere_bounces(self):
        """NODATA for MX and for A/AAAA (the name exists: TXT only): bounce."""
        zone = {"nodata.test": {"TXT": ["exists, no address"]}}
        dns = self.fake_dns(zone)
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@nodata.test"], make_message("x\r\n"))
        ln = self.wait_status(d, qid, "r@nodata.test", "bounced", 15)["line"]
        self.assertTrue(field(ln, "dsn").startswith("5."), ln)
        self.assertEqual(field(ln, "relay"), "none", ln)
        qs = dns.queries(name="nodata.test")
        self.assertIn(("nodata.test", "MX", "udp"), qs)
        self.assertTrue(any(t in ("A", "AAAA") for _n, t, _tr in qs), qs)

    def test_c4_nodata_mx_servfail_a_defers(self):
        """NODATA for MX, SERVFAIL for A: deferred (not bounced); once A
        answers, delivered to the implicit MX."""
        zone = {"half.test": {"TXT": ["x"], "faults": {"A": "SERVFAIL"}}}
        dns = self.fake_dns(zone)
        peer = self.mx_smarthost("127.0.0.5")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@half.test"], make_message("x\r\n"))
        ln = self.wait_status(d, qid, "r@half.test", "deferred", 15)["line"]
        self.assertTrue(field(ln, "dsn").startswith("4."), ln)
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])
        self.assertIn(qid, d.queued())
        dns.set_zone({"half.test": {"A": ["127.0.0.5"]}})
        peer.wait_messages(1, 25)
        self.wait_status(d, qid, "r@half.test", "sent")

    # C5 -------------------------------------------------------------
    def test_c5_null_mx_bounces_without_fallback(self):
        """`MX 0 .`: bounced 5.1.10 at once; no A/AAAA lookup of the domain
        and no connection to its A record (a counting peer listens there)."""
        zone = {"null.test": {"MX": mx((0, ".")), "A": ["127.0.0.7"]}}
        dns = self.dnsmasq(zone)
        peer = self.mini("127.0.0.7")
        d = self.mx_outboxd(dns.port)
        t0 = time.monotonic()
        qid = d.send_ok("app@local.test", ["r@null.test"], make_message("x\r\n"))
        self.assert_dns_failure(d, qid, "r@null.test", "bounced", "5.1.10", timeout=10)
        self.assertLess(time.monotonic() - t0, 10)
        harness.wait_for(lambda: qid not in d.queued(), 10, "bounced message removed")
        time.sleep(0.5)
        self.assertEqual(dns.queries(name="null.test", qtype="A"), [])
        self.assertEqual(dns.queries(name="null.test", qtype="AAAA"), [])
        self.assertEqual(peer.sessions, [], "connected to a null-MX domain")
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])

    def test_c5_null_mx_next_to_other_mx_wins(self):
        """C5 "also test": `MX 0 .` next to `MX 10 mx.mixed.test`. The
        README's choice (as Postfix): the null MX wins, bounce 5.1.10, and
        the other MX is never contacted."""
        zone = {"mixed.test": {"MX": mx((10, "mx.mixed.test"), (0, "."))},
                "mx.mixed.test": {"A": ["127.0.0.2"]}}
        dns = self.fake_dns(zone)
        other = self.mini("127.0.0.2")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@mixed.test"], make_message("x\r\n"))
        self.assert_dns_failure(d, qid, "r@mixed.test", "bounced", "5.1.10", timeout=10)
        time.sleep(0.5)
        self.assertEqual(other.sessions, [], "delivered past a null MX")
        self.assertEqual(dns.queries(name="mx.mixed.test"), [])

    # C9 -------------------------------------------------------------
    def test_c9_truncated_udp_retried_over_tcp(self):
        zone = {"tc.test": {"MX": mx((10, "mx.tc.test")), "faults": {"MX": "TRUNCATE"}},
                "mx.tc.test": {"A": ["127.0.0.2"]}}
        dns = self.fake_dns(zone)
        peer = self.mx_smarthost("127.0.0.2")
        d = self.mx_outboxd(dns.port)
        data = make_message("over TCP\r\n", to="r@tc.test")
        qid = d.send_ok("app@local.test", ["r@tc.test"], data)
        msgs = peer.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        self.wait_status(d, qid, "r@tc.test", "sent")
        self.assertIn(("tc.test", "MX", "udp"), dns.queries(name="tc.test"))
        self.assertIn(("tc.test", "MX", "tcp"), dns.queries(name="tc.test"))
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])

    def test_c9_big_answer_over_tcp(self):
        """Forty MX records do not fit a 512-octet UDP answer: the server
        sends TC, the answer comes over TCP and the best MX is used."""
        recs = [[20 + i, "mx%02d.big.test" % i] for i in range(40)] + [[5, "best.big.test"]]
        zone = {"big.test": {"MX": recs}, "best.big.test": {"A": ["127.0.0.2"]}}
        for i in range(40):
            zone["mx%02d.big.test" % i] = {"A": ["127.0.0.3"]}
        dns = self.fake_dns(zone)
        best = self.mx_smarthost("127.0.0.2")
        other = self.mini("127.0.0.3")
        d = self.mx_outboxd(dns.port)
        qid = d.send_ok("app@local.test", ["r@big.test"], make_message("x\r\n"))
        best.wait_messages(1, 20)
        self.wait_status(d, qid, "r@big.test", "sent")
        self.assertIn(("big.test", "MX", "tcp"), dns.queries(name="big.test"))
        self.assertEqual(other.sessions, [])

    # C13 ------------------------------------------------------------
    def test_c13_dns_down_at_start_then_up(self):
        """No DNS server at start: the daemon starts, keeps answering 250,
        deliveries defer 4.4.3; once DNS is up the queue drains, same PID."""
        port = dnsmod.free_udp_tcp_port()
        zone = {"later.test": {"MX": mx((10, "mx.later.test"))},
                "mx.later.test": {"A": ["127.0.0.2"]}}
        peer = self.mx_smarthost("127.0.0.2")
        d = self.mx_outboxd(port)
        pid = d.proc.pid
        qids = [d.send_ok("app@local.test", ["r%d@later.test" % i], make_message("x\r\n"))
                for i in range(3)]
        self.assert_dns_failure(d, qids[0], "r0@later.test", "deferred", "4.4.3")
        qids.append(d.send_ok("app@local.test", ["r3@later.test"], make_message("x\r\n")))
        self.dnsmasq(zone, port=port)
        peer.wait_messages(4, 30)
        for i, qid in enumerate(qids):
            self.wait_status(d, qid, "r%d@later.test" % i, "sent")
        self.assertEqual(d.proc.pid, pid)
        self.assertEqual(len(d.exited), 0, "restarted")

    # C14 ------------------------------------------------------------
    def test_c14_smarthost_name_unresolvable_defers(self):
        """The smarthost name does not resolve (NXDOMAIN from the system
        resolver): deferred 4.4.3, and never delivered direct to MX even
        though the recipient's MX works. The daemon runs in a private mount
        namespace whose /etc/resolv.conf points at a dnsmasq on
        127.53.x.y:53, so no query leaves loopback."""
        ns_ip = "127.53.%d.%d" % (os.getpid() % 250 + 1, int(time.time()) % 250 + 1)
        zone = {"c14.test": {"MX": mx((10, "mx.c14.test"))},
                "mx.c14.test": {"A": ["127.0.0.2"]}}
        try:
            sysdns = self.dnsmasq(zone, port=53, address=ns_ip)
        except harness.HarnessError as e:
            self.skipTest("cannot run a DNS server on %s:53: %s" % (ns_ip, e))
        wrapper = self.namespace_wrapper(ns_ip)
        mxdns = self.dnsmasq(zone)
        peer = self.mx_smarthost("127.0.0.2")
        d = self.mx_outboxd(mxdns.port, start=False)
        d.relay = ["smarthost.c14.test:%d" % self.mx_port]
        real = os.environ["OUTBOXD"]
        os.environ["OUTBOXD"] = wrapper
        try:
            d.start()
        finally:
            os.environ["OUTBOXD"] = real
        qid = d.send_ok("app@local.test", ["r@c14.test"], make_message("x\r\n"))
        ln = self.wait_status(d, qid, "r@c14.test", "deferred", 20)["line"]
        self.assertEqual(field(ln, "dsn"), "4.4.3", ln)
        time.sleep(2.5)  # a retry or two
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.assertEqual(peer.session_count(), 0, "fell back to direct MX delivery")
        self.assertEqual(mxdns.queries(name="c14.test"), [], "looked up the recipient's MX")
        self.assertTrue(sysdns.queries(name="smarthost.c14.test"),
                        "the smarthost name was not asked (resolver not the test one?)")
        self.assertIn(qid, d.queued())

    def namespace_wrapper(self, ns_ip):
        """A script that runs the real outboxd in a private mount namespace
        with /etc/resolv.conf bind-mounted to 'nameserver ns_ip'."""
        rc = os.path.join(self.tmp, "resolv.conf")
        with open(rc, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:1\n" % ns_ip)
        probe = harness.run_cmd(["unshare", "--mount", "--", "sh", "-c",
                                 "mount --bind %s /etc/resolv.conf && cat /etc/resolv.conf"
                                 % shlex.quote(rc)], timeout=10)
        if probe.returncode != 0 or ns_ip not in probe.stdout:
            self.skipTest("no private mount namespace here: %s" % probe.stderr.strip())
        path = os.path.join(self.tmp, "outboxd-ns.sh")
        inner = "mount --bind %s /etc/resolv.conf && exec %s \"$@\"" % (
            shlex.quote(rc), shlex.quote(harness.outboxd_path()))
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec unshare --mount -- /bin/sh -c %s outboxd \"$@\"\n"
                    % shlex.quote(inner))
        os.chmod(path, 0o755)
        return path


if __name__ == "__main__":
    harness.main()
