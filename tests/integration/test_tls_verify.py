#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Smarthost certificate verification (F6) and AUTH only inside TLS (F4, F9,
F11): a bad certificate defers with a clear log line, nothing is delivered,
the message stays queued, and no MAIL or AUTH ever reaches the server."""
import time

import harness
from harness import OutboxTestCase, make_message


class TlsVerify(OutboxTestCase):

    def bad_cert_case(self, cert):
        sh = self.smarthost(cert=cert)
        d = self.outboxd(relay=[sh.port], tls="starttls", verify=True)
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("x\r\n"))
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred \((.*)\)" % qid, 15)
        self.assertRegex(m.group(1), r"(?i)certificat",
                         "deferral reason does not mention the certificate")
        # give a retry (retry_min = 1s) the chance to misbehave too
        time.sleep(2.5)
        self.assertEqual(sh.messages(), [], "delivered despite a bad certificate")
        self.assertEqual(d.queued(), [qid], "message not kept in the queue")
        cmds = [line.upper() for _s, _t, line in sh.commands()]
        for c in cmds:
            self.assertFalse(c.startswith("MAIL") or c.startswith("AUTH") or
                             c.startswith("RCPT"), "sent %r to an unverified server" % c)
        self.assertIn("STARTTLS", cmds)
        # "one clear log line each": the reason is logged, not a stream of noise
        reasons = d.deliveries(status="deferred", qid=qid)
        self.assertGreaterEqual(len(reasons), 1)
        return d

    def test_wrong_name(self):
        self.bad_cert_case("wrong")

    def test_expired(self):
        self.bad_cert_case("expired")

    def test_untrusted_ca(self):
        self.bad_cert_case("untrusted")

    def test_good_cert_then_auth_only_after_tls(self):
        sh = self.smarthost(cert="server")
        d = self.outboxd(relay=[sh.port], tls="starttls", verify=True)
        d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("ok\r\n"))
        sh.wait_messages(1, 15)
        cmds = sh.commands()
        self.assertTrue(cmds)
        seen_tls = False
        for _sid, tls, line in cmds:
            up = line.upper()
            if tls:
                seen_tls = True
            if up.startswith("AUTH") or up.startswith("MAIL"):
                self.assertTrue(tls, "%r sent before TLS" % line)
        self.assertTrue(seen_tls)
        # the first command of the session is EHLO, then STARTTLS (no pre-TLS AUTH)
        first = [line.upper().split()[0] for sid, _t, line in cmds if sid == cmds[0][0]]
        self.assertEqual(first[:2], ["EHLO", "STARTTLS"], first)

    def test_starttls_stripped(self):
        """F4: the server does not offer STARTTLS: defer, no MAIL, no AUTH."""
        sh = self.smarthost(ehlo_drop=["STARTTLS"])
        d = self.outboxd(relay=[sh.port], tls="starttls", verify=True)
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("x\r\n"))
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred \((.*)\)" % qid, 15)
        self.assertRegex(m.group(1), r"(?i)tls|starttls")
        time.sleep(1.5)
        self.assertEqual(sh.messages(), [])
        self.assertEqual(d.queued(), [qid])
        for _s, _t, line in sh.commands():
            self.assertFalse(line.upper().startswith(("MAIL", "AUTH", "RCPT")), line)

    def test_no_auth_over_plaintext(self):
        """F9: tls = none with credentials: AUTH is never sent in clear. The
        daemon may refuse the configuration outright, or defer."""
        sh = self.smarthost(mode="plain", extra=["--auth-plaintext"])
        d = self.outboxd(start=False, relay=[sh.port], tls="none", verify=True)
        d.spawn()
        started = False
        try:
            d.wait_log(r"ready", 10, since=d.log_offset)
            started = True
        except harness.HarnessError:
            pass
        if not started:
            rc = d.proc.wait(5)
            d.proc = None
            self.assertNotEqual(rc, 0)
            self.assertRegex(d.log_text(d.log_offset), r"(?i)tls|encrypt|auth")
            return
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("x\r\n"))
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred \((.*)\)" % qid, 15)
        self.assertRegex(m.group(1), r"(?i)unencrypted|tls|encrypt|authenticat")
        time.sleep(1.5)
        for _s, _t, line in sh.commands():
            self.assertFalse(line.upper().startswith("AUTH"), "AUTH sent in plaintext")
        self.assertEqual(sh.messages(), [])
        raw = b"".join(sh.wire_bytes().values())
        for s in harness.secret_forms():
            self.assertNotIn(s.encode(), raw, "a credential crossed the wire in clear")


if __name__ == "__main__":
    harness.main()
