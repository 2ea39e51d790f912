#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A hostile or faulty upstream, played byte by byte by peers/fake_smtp.py:
B7 drop in DATA, B9 final reply classes, B10 malformed replies, B13 SIZE,
F2 STARTTLS response injection, F7a plaintext on an implicit-TLS port,
F10a AUTH refused."""
import re
import time

import harness
from harness import OutboxTestCase, make_message

EHLO1 = "send 250-fake.test\\r\\n250-STARTTLS\\r\\n250 8BITMIME\\r\\n"
EHLO2 = "send 250-fake.test\\r\\n250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n"


def tls_auth_prefix(ehlo2=EHLO2):
    """Greeting, EHLO, STARTTLS, EHLO, AUTH accepted."""
    return "\n".join([
        "sendline 220 fake.test ESMTP",
        "expect EHLO",
        EHLO1,
        "expect STARTTLS",
        "sendline 220 2.0.0 go ahead",
        "starttls",
        "expect EHLO",
        ehlo2,
        "expect AUTH",
        "sendline 235 2.7.0 ok",
    ]) + "\n"


def to_data():
    return "\n".join([
        "expect MAIL FROM:",
        "sendline 250 2.1.0 ok",
        "expect RCPT TO:",
        "sendline 250 2.1.5 ok",
        "expect DATA",
        "sendline 354 go ahead",
    ]) + "\n"


class UpstreamFaults(OutboxTestCase):

    def run_case(self, script, tls="starttls", data=None, connections=0):
        fk = self.fake(script, connections=connections, tls=False)
        d = self.outboxd(relay=[fk.port], tls=tls)
        data = data or make_message("fault case\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        return fk, d, qid

    def wait_status(self, d, qid, status, timeout=15):
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=%s(?: \((.*)\))?" % (qid, status),
                       timeout)
        return m.group(1) or ""

    def assert_still_queued(self, d, qid):
        time.sleep(1.0)
        self.assertIn(qid, d.queued())
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])

    # B9 -------------------------------------------------------------
    def test_b9_451_at_end_of_data_defers(self):
        script = tls_auth_prefix() + to_data() + (
            "read-data\nsendline 451 4.3.0 local problem, try later\nwait-close 5\n")
        fk, d, qid = self.run_case(script)
        why = self.wait_status(d, qid, "deferred")
        self.assertIn("451", why)
        self.assertIn(b"fault case\r\n.\r\n", fk.received(), "body not sent")
        self.assert_still_queued(d, qid)

    def test_b9_554_at_end_of_data_bounces(self):
        script = tls_auth_prefix() + to_data() + (
            "read-data\nsendline 554 5.7.1 rejected by policy\nwait-close 5\n")
        fk, d, qid = self.run_case(script)
        why = self.wait_status(d, qid, "bounced")
        self.assertIn("554", why)
        self.assertIn(b"fault case\r\n.\r\n", fk.received(), "body not sent")
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        harness.wait_for(lambda: qid not in d.queued(), 10, "bounced message removed")

    # B7 -------------------------------------------------------------
    def test_b7_drop_in_data_then_whole_message(self):
        big = make_message(b"".join(b"line %06d of a big body\r\n" % i for i in range(40000)))
        script = tls_auth_prefix() + to_data() + "read 100000\nclose\n"
        fk, d, qid = self.run_case(script, data=big, connections=1)
        self.wait_status(d, qid, "deferred")
        self.assertIn(qid, d.queued())
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        # the next attempt goes to a real server on the same port and sends it all
        port = fk.port
        harness.wait_for(lambda: not fk.proc.alive(), 10, "fake server to finish")
        fk.stop()
        sh = self.smarthost(port=port)
        msgs = sh.wait_messages(1, 20)
        self.assertTrue(msgs[0].body() == big, "retry did not send the whole message")

    # B10 ------------------------------------------------------------
    def test_b10_malformed_replies_defer(self):
        cases = {
            "25O": "expect MAIL FROM:\nsendline 25O ok\nwait-close 5\n",
            "2500": "expect MAIL FROM:\nsendline 2500 ok\nwait-close 5\n",
            "mixed-multiline": ("expect MAIL FROM:\nsendline 250 ok\nexpect RCPT\n"
                                "send 250-ok\\r\\n550 no\\r\\n\nwait-close 5\n"),
            "bare-LF": "expect MAIL FROM:\nsend 250 ok\\n\nwait-close 5\n",
            "escape-bytes": "expect MAIL FROM:\nsend 451 \\x1b[2Jok\\x00x\\r\\n\nwait-close 5\n",
        }
        for name, tail_script in cases.items():
            with self.subTest(reply=name):
                fk, d, qid = self.run_case(tls_auth_prefix() + tail_script)
                why = self.wait_status(d, qid, "deferred")
                self.assertIn(b"MAIL FROM:<app@local.test>", fk.received(),
                              "the malformed reply was never reached")
                self.assertIsNone(re.search(r"[\x00-\x1f\x7f]", why),
                                  "control bytes logged: %r" % why)
                self.assert_still_queued(d, qid)
                d.stop()

    # B13 ------------------------------------------------------------
    def test_b13_size_limit_honoured(self):
        ehlo2 = "send 250-fake.test\\r\\n250-AUTH PLAIN\\r\\n250 SIZE 1000\\r\\n"
        script = tls_auth_prefix(ehlo2) + "read-line\nsendline 221 bye\nwait-close 5\n"
        fk, d, qid = self.run_case(script, data=make_message("z" * 5000 + "\r\n"),
                                   connections=1)
        why = self.wait_status(d, qid, "bounced")
        self.assertIn("5.3.4", why)
        rx = fk.received()
        self.assertEqual(rx.count(b"EHLO"), 2, "did not get to the post-TLS EHLO: %r" % rx)
        self.assertNotIn(b"MAIL FROM", rx, "MAIL sent despite SIZE 1000")

    # F2 -------------------------------------------------------------
    def test_f2_starttls_response_injection(self):
        script = "\n".join([
            "sendline 220 fake.test ESMTP",
            "expect EHLO",
            EHLO1,
            "expect STARTTLS",
            # one write: the 220 plus an injected post-TLS EHLO reply offering AUTH
            "send 220 2.0.0 go ahead\\r\\n250-mx.test\\r\\n250 AUTH PLAIN\\r\\n",
            "starttls",
            "expect EHLO",
            "send 250-fake.test\\r\\n250 8BITMIME\\r\\n",  # no AUTH after TLS
            "read-line",
            "sendline 530 5.7.0 authentication required",
            "wait-close 5",
        ]) + "\n"
        fk, d, qid = self.run_case(script, connections=1)
        self.wait_status(d, qid, "deferred")
        rx = fk.received()
        self.assertIn(b"STARTTLS", rx)
        self.assertNotIn(b"AUTH", rx, "AUTH sent on the strength of an injected reply")
        self.assertNotIn(b"MAIL", rx)
        self.assertIn(qid, d.queued())

    # F7a ------------------------------------------------------------
    def test_f7a_plaintext_on_implicit_tls_port(self):
        script = "sendline 220 plain.test ESMTP\nwait-close 5\n"
        fk, d, qid = self.run_case(script, tls="implicit", connections=1)
        self.wait_status(d, qid, "deferred")
        rx = fk.received()
        self.assertNotIn(b"EHLO", rx, "SMTP spoken in plaintext on an implicit-TLS port")
        self.assertTrue(rx[:1] in (b"\x16", b""), "first bytes are not a TLS record: %r" % rx[:20])
        self.assertIn(qid, d.queued())

    # F10a -----------------------------------------------------------
    def test_f10a_auth_refused_defers(self):
        script = "\n".join([
            "sendline 220 fake.test ESMTP", "expect EHLO", EHLO1, "expect STARTTLS",
            "sendline 220 2.0.0 go ahead", "starttls", "expect EHLO", EHLO2,
            "expect AUTH", "sendline 535 5.7.8 authentication credentials invalid",
            "wait-close 5",
        ]) + "\n"
        fk, d, qid = self.run_case(script)
        why = self.wait_status(d, qid, "deferred")
        self.assertIn("535", why)
        self.assertIn(b"AUTH ", fk.received())
        self.assert_still_queued(d, qid)


if __name__ == "__main__":
    harness.main()
