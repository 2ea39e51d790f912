#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Relay through a real smarthost: STARTTLS + AUTH PLAIN, implicit TLS,
AUTH LOGIN, byte-exact content (A5 dot lines, 8-bit, 20 MB), exact
envelopes, several recipients, and the Postfix-style log lines."""
import re

import harness
from harness import OutboxTestCase, make_message, QID, USER


class RelayBasic(OutboxTestCase):

    def relay(self, **sh_kw):
        sh = self.smarthost(**sh_kw)
        mode = sh_kw.get("mode", "starttls")
        d = self.outboxd(relay=[sh.port], tls="implicit" if mode == "implicit" else "starttls")
        return sh, d

    def check_one(self, sh, d, sender, rcpts, data, qid):
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(len(msgs), 1, msgs)
        m = msgs[0]
        self.assertEqual(m.mail_from, sender)
        self.assertEqual(sorted(m.rcpt_tos), sorted(rcpts))
        self.assertTrue(m.meta["tls"], "delivered without TLS")
        self.assertEqual(m.meta["user"], USER, "not authenticated as the configured user")
        self.assertEqual(m.body(), data, "content changed in transit")
        for r in rcpts:
            d.wait_log(r"%s: to=<%s>,.*status=sent" % (qid, re.escape(r)), 10)
        harness.wait_for(lambda: not d.queued(), 10, "spool env/ to empty")
        return m

    def test_starttls_auth_plain_smtplib(self):
        sh, d = self.relay(auth_mechs="PLAIN")
        data = make_message("hello over starttls\r\n")
        res = d.send("app@local.test", ["rcpt@dest.test"], data)
        self.assertEqual(res.code, 250, res)
        self.assertRegex(res.text, r"2\.0\.0 Ok: queued as %s" % QID)
        m = d.wait_log(r"(%s): from=<app@local\.test>, size=\d+, nrcpt=1" % QID, 5)
        self.assertEqual(m.group(1), res.queue_id)
        self.check_one(sh, d, "app@local.test", ["rcpt@dest.test"], data, res.queue_id)
        d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=[^,]*\[127\.0\.0\.1\]:%d, delay=[0-9.]+, "
                   r"dsn=2\.\d+\.\d+, status=sent \(250 " % (res.queue_id, sh.port), 5)
        # the AUTH exchange happened inside TLS, with PLAIN
        auth = [(tls, line) for _s, tls, line in sh.commands() if line.upper().startswith("AUTH")]
        self.assertTrue(auth, "no AUTH sent")
        self.assertTrue(all(tls for tls, _ in auth), auth)
        self.assertTrue(auth[0][1].upper().startswith("AUTH PLAIN"), auth)

    def test_starttls_auth_swaks(self):
        sh, d = self.relay()
        data = make_message("sent by swaks\r\nline two\r\n")
        rc, out, qid = d.swaks("swaks@local.test", ["one@dest.test"], data)
        self.assertEqual(rc, 0, out)
        self.assertIsNotNone(qid, out)
        msgs = sh.wait_messages(1, 20)
        self.assertEqual(msgs[0].mail_from, "swaks@local.test")
        self.assertEqual(msgs[0].rcpt_tos, ["one@dest.test"])
        self.assertIn(b"sent by swaks\r\nline two\r\n", msgs[0].body())
        d.wait_log(r"%s: to=<one@dest\.test>,.*status=sent" % qid, 10)

    def test_implicit_tls(self):
        sh, d = self.relay(mode="implicit")
        data = make_message("hello over implicit TLS\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        self.check_one(sh, d, "app@local.test", ["rcpt@dest.test"], data, qid)
        cmds = [line.upper() for _s, _t, line in sh.commands()]
        self.assertNotIn("STARTTLS", cmds, "STARTTLS sent on an implicit TLS connection")

    def test_auth_login_only(self):
        sh, d = self.relay(auth_mechs="LOGIN")
        data = make_message("hello via AUTH LOGIN\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        self.check_one(sh, d, "app@local.test", ["rcpt@dest.test"], data, qid)
        auth = [line.upper() for _s, _t, line in sh.commands() if line.upper().startswith("AUTH")]
        self.assertTrue(auth and auth[0].startswith("AUTH LOGIN"), auth)

    def test_dot_lines_and_8bit_byte_exact(self):
        sh, d = self.relay()
        body = (b"..lead\r\n.\r\n. \r\n...\r\n.x\r\nplain\r\n"
                b"8bit: \xc3\xa9t\xc3\xa9 \xe2\x82\xac \x80\x81\xfe\xff\r\n"
                b"tab\there\r\n.\r\n")
        data = make_message(body, subject="dots")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data,
                        mail_options=["BODY=8BITMIME"])
        m = self.check_one(sh, d, "app@local.test", ["rcpt@dest.test"], data, qid)
        # on the wire: each dot-led line stuffed, one terminator
        wire = b"".join(sh.wire_bytes().values())
        self.assertIn(b"\r\n...lead\r\n..\r\n.. \r\n....\r\n..x\r\n", wire)
        self.assertEqual(wire.count(b"\r\n.\r\n"), 1)
        self.assertTrue(m.data.endswith(b"tab\there\r\n.\r\n"))

    def test_20mb_message(self):
        sh, d = self.relay()
        line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-\r\n"
        size = harness.sized(20 * 1024 * 1024)  # 20 MB natively
        body = line * (size // len(line)) + b".starts with a dot\r\n"
        data = make_message(body, subject="big")
        self.assertGreater(len(data), size)
        res = d.send("app@local.test", ["rcpt@dest.test"], data, timeout=120)
        self.assertEqual(res.code, 250, res)
        msgs = sh.wait_messages(1, 60)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(len(msgs[0].body()), len(data))
        self.assertTrue(msgs[0].body() == data, "%d-byte message not byte-identical" % len(data))

    def test_several_recipients_one_copy(self):
        sh, d = self.relay()
        rcpts = ["a@dest.test", "b@dest.test", "c@other.test", '"quoted name"@dest.test']
        data = make_message("to many\r\n")
        res = d.send("sender@local.test", rcpts, data)
        self.assertEqual(res.code, 250, res)
        for r in rcpts:
            self.assertEqual(res.rcpt[r][0], 250, res.rcpt)
        d.wait_log(r"%s: from=<sender@local\.test>, size=\d+, nrcpt=4" % res.queue_id, 5)
        msgs = sh.wait_messages(1, 20)
        harness.wait_for(lambda: len(d.deliveries(status="sent", qid=res.queue_id)) == 4,
                         10, "4 status=sent lines")
        got = [r for m in sh.messages() for r in m.rcpt_tos]
        self.assertEqual(sorted(got), sorted(rcpts), "each recipient exactly once")
        for m in msgs:
            self.assertEqual(m.mail_from, "sender@local.test")
            self.assertEqual(m.body(), data)
        # a relay sends one copy per server (RFC 5321 4.5.4.1)
        self.assertEqual(len(sh.messages()), 1, "message split per recipient")

    def test_null_sender_and_exact_envelope(self):
        sh, d = self.relay()
        data = make_message("a notification\r\n", sender="")
        qid = d.send_ok("", ["Mixed.Case+tag@Dest.Test"], data)
        m = self.check_one(sh, d, "", ["Mixed.Case+tag@Dest.Test"], data, qid)
        self.assertEqual(m.mail_from, "")

    def test_nothing_left_in_spool(self):
        sh, d = self.relay()
        for i in range(5):
            d.send_ok("app@local.test", ["r%d@dest.test" % i], make_message("n%d\r\n" % i))
        sh.wait_messages(5, 20)
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        harness.wait_for(lambda: not d.spool_entries("msg"), 10, "empty msg/")
        self.assertEqual(len(sh.messages()), 5)
        self.assertEqual(d.spool_entries("corrupt"), [])


if __name__ == "__main__":
    harness.main()
