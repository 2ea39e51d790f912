#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""TLS to MX hosts (`[mx] tls`): opportunistic STARTTLS with a verified
certificate, an untrusted one (delivered, logged), a name mismatch
(untrusted), a failed handshake (RELIABILITY.md decision 4: retried in
plaintext at once, logged); `required` defers on an untrusted certificate,
on a missing STARTTLS and on a failed handshake (never plaintext); `none`
never sends STARTTLS.

`[mx] ca_file` is the test CA, so a certificate it signed for the MX host
name is "verified"."""
import re

import harness
from harness import make_message, certs
from mxlib import MxTestCase, mx_cert, field

NAME = "mx.tls.test"


def zone():
    return {"tls.test": {"MX": [[10, NAME]]}, NAME: {"A": ["127.0.0.2"]}}


class MxTls(MxTestCase):

    def start(self, tls, peer_kind="smarthost", cert=None, **peer_kw):
        dns = self.dnsmasq(zone())
        if peer_kind == "smarthost":
            if cert is None:
                peer = self.mx_smarthost("127.0.0.2", mode="plain", **peer_kw)
            else:
                peer = self.mx_smarthost("127.0.0.2", mode="starttls", cert=cert[0],
                                         key=cert[1], **peer_kw)
        else:
            if cert is not None:
                peer_kw.update(cert=cert[0], key=cert[1])
            peer = self.mini("127.0.0.2", **peer_kw)
        d = self.mx_outboxd(dns.port, tls=tls)
        return peer, d

    def ready_lines(self, d):
        rx = re.compile(r"%s\[127\.0\.0\.2\]:%d: session ready, tls=(\w+)" % (
            re.escape(NAME), self.mx_port))
        return [m.group(1) for m in rx.finditer(d.log_text())]

    def send(self, d, body="tls case\r\n"):
        data = make_message(body, to="r@tls.test")
        return d.send_ok("app@local.test", ["r@tls.test"], data), data

    def assert_not_delivered(self, d, qid, peer_mail_cmds):
        self.wait_status(d, qid, "r@tls.test", "deferred", 20)
        self.assertEqual(peer_mail_cmds(), [], "MAIL sent although TLS policy failed")
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.assertIn(qid, d.queued())

    # opportunistic ----------------------------------------------------
    def test_opportunistic_verified(self):
        peer, d = self.start("opportunistic", cert=mx_cert([NAME]))
        qid, data = self.send(d)
        msgs = peer.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        self.assertTrue(msgs[0].meta["tls"], "delivered without TLS")
        self.wait_status(d, qid, "r@tls.test", "sent")
        self.assertEqual(self.ready_lines(d), ["verified"])

    def test_opportunistic_untrusted_logged(self):
        c = certs()
        peer, d = self.start("opportunistic", cert=(c["untrusted"], c["untrusted_key"]))
        qid, data = self.send(d)
        msgs = peer.wait_messages(1, 20)
        self.assertEqual(msgs[0].body(), data)
        self.assertTrue(msgs[0].meta["tls"])
        self.wait_status(d, qid, "r@tls.test", "sent")
        self.assertEqual(self.ready_lines(d), ["untrusted"])

    def test_opportunistic_name_mismatch_is_untrusted(self):
        """Signed by the trusted CA but for another name: not verified."""
        peer, d = self.start("opportunistic", cert=mx_cert(["other.tls.test"]))
        qid, _ = self.send(d)
        peer.wait_messages(1, 20)
        self.wait_status(d, qid, "r@tls.test", "sent")
        self.assertEqual(self.ready_lines(d), ["untrusted"])

    def test_opportunistic_handshake_failure_plaintext_retry(self):
        """Decision 4: STARTTLS accepted, then the handshake fails: logged,
        and the same host is retried at once in plaintext (no STARTTLS in
        that session), in the same delivery attempt."""
        peer, d = self.start("opportunistic", peer_kind="mini", starttls=True,
                             on_starttls="garbage")
        qid, data = self.send(d, "after a broken handshake\r\n")
        harness.wait_for(lambda: peer.messages or None, 20, "the plaintext delivery")
        self.wait_status(d, qid, "r@tls.test", "sent")
        d.wait_log(r"TLS handshake failed", 2)
        self.assertEqual(self.ready_lines(d), ["none"])
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])
        sessions = peer.sessions
        self.assertEqual(len(sessions), 2, [s["cmds"] for s in sessions])
        self.assertIn("STARTTLS", [c.upper() for c in sessions[0]["cmds"]])
        self.assertNotIn("STARTTLS", [c.upper() for c in sessions[1]["cmds"]])
        self.assertFalse(any(c.upper().startswith("MAIL") for c in sessions[0]["cmds"]))
        mail_from, rcpts, got = peer.messages[0]
        self.assertEqual(rcpts, ["<r@tls.test>"])
        self.assertEqual(harness.strip_trace(got), data)
        # the log says which order: handshake failure, then the plaintext session
        text = d.log_text()
        self.assertLess(text.index("TLS handshake failed"), text.index("session ready, tls=none"))

    def test_opportunistic_no_starttls_offered(self):
        peer, d = self.start("opportunistic")
        qid, data = self.send(d)
        msgs = peer.wait_messages(1, 20)
        self.assertFalse(msgs[0].meta["tls"])
        self.wait_status(d, qid, "r@tls.test", "sent")
        self.assertEqual(self.ready_lines(d), ["none"])

    # required ---------------------------------------------------------
    def test_required_verified_delivers(self):
        peer, d = self.start("required", cert=mx_cert([NAME]))
        qid, data = self.send(d)
        msgs = peer.wait_messages(1, 20)
        self.assertTrue(msgs[0].meta["tls"])
        self.assertEqual(msgs[0].body(), data)
        self.wait_status(d, qid, "r@tls.test", "sent")
        self.assertEqual(self.ready_lines(d), ["verified"])

    def test_required_untrusted_defers(self):
        c = certs()
        peer, d = self.start("required", cert=(c["untrusted"], c["untrusted_key"]))
        qid, _ = self.send(d)
        self.assert_not_delivered(d, qid, lambda: [
            ln for _s, _t, ln in peer.commands() if ln.upper().startswith("MAIL")])
        self.assertTrue(any(ln.upper() == "STARTTLS" for _s, _t, ln in peer.commands()))
        self.assertEqual(peer.messages(), [])

    def test_required_name_mismatch_defers(self):
        peer, d = self.start("required", cert=mx_cert(["other.tls.test"]))
        qid, _ = self.send(d)
        self.assert_not_delivered(d, qid, lambda: [
            ln for _s, _t, ln in peer.commands() if ln.upper().startswith("MAIL")])

    def test_required_without_starttls_defers(self):
        peer, d = self.start("required")  # plain peer: no STARTTLS offered
        qid, _ = self.send(d)
        self.assert_not_delivered(d, qid, lambda: [
            ln for _s, _t, ln in peer.commands() if ln.upper().startswith("MAIL")])

    def test_required_handshake_failure_no_plaintext(self):
        peer, d = self.start("required", peer_kind="mini", starttls=True,
                             on_starttls="garbage")
        qid, _ = self.send(d)
        self.assert_not_delivered(d, qid, lambda: [
            c for s in peer.sessions for c in s["cmds"] if c.upper().startswith("MAIL")])
        self.assertEqual(peer.messages, [])
        ln = d.deliveries(status="deferred", qid=qid)[0]["line"]
        self.assertTrue(field(ln, "dsn").startswith("4."), ln)

    # none -------------------------------------------------------------
    def test_none_never_starttls(self):
        peer, d = self.start("none", peer_kind="mini", starttls=True, on_starttls="ok",
                             cert=mx_cert([NAME]))
        qid, _ = self.send(d)
        harness.wait_for(lambda: peer.messages or None, 20, "the delivery")
        self.wait_status(d, qid, "r@tls.test", "sent")
        cmds = [c.upper() for s in peer.sessions for c in s["cmds"]]
        self.assertNotIn("STARTTLS", cmds)
        self.assertEqual(self.ready_lines(d), ["none"])


if __name__ == "__main__":
    harness.main()
