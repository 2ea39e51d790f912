#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Smarthost failover and DSN counting (RELIABILITY.md B1, B6, F10, F11):
B1 every relay address refuses the connection (dsn=4.4.1, one log line per
address, retried after backoff); B6 every recipient refused under
PIPELINING yields exactly one DSN; F10 a 535 to AUTH moves on to the next
smarthost address in the same attempt. F11: every DSN that reaches a peer
is searched for the relay password and its base64 forms.

The relay list puts a scripted peers/fake_smtp.py (or a dead port) first
and a real aiosmtpd smarthost second, so the second host also receives
the DSNs once the first one is gone."""
import json
import os
import re
import time

import harness
from harness import OutboxTestCase, make_message

CLIENT_TIMEOUT = 2.0
# the daemon's SMTP client timeout; stretched under valgrind, where a TLS
# handshake and AUTH with the smarthost can take longer than 2 s
TIMEOUT_ENV = {"OUTBOX_TEST_CLIENT_TIMEOUT": "%d" % harness.scaled(CLIENT_TIMEOUT)}
QID = harness.QID

EHLO_STARTTLS = "send 250-fake.test\\r\\n250-STARTTLS\\r\\n250 8BITMIME\\r\\n"
EHLO_AUTH = "send 250-fake.test\\r\\n250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n"
EHLO_AUTH_PIPELINING = ("send 250-fake.test\\r\\n250-PIPELINING\\r\\n"
                        "250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n")


def lines(*steps):
    return "\n".join(steps) + "\n"


def up_to_auth(ehlo2=EHLO_AUTH):
    """Greeting, EHLO, STARTTLS, TLS, EHLO again, AUTH read (no reply)."""
    return lines("sendline 220 fake.test ESMTP", "expect EHLO", EHLO_STARTTLS,
                 "expect STARTTLS", "sendline 220 2.0.0 go ahead", "starttls",
                 "expect EHLO", ehlo2, "expect AUTH")


def dead_port():
    """A loopback port with nothing listening (bound, read, closed)."""
    return harness.free_port()


def assert_no_secrets(test, stored_msgs, what):
    """F11: no DSN (or other message) at a peer carries the relay password
    or one of its base64 forms."""
    for m in stored_msgs:
        for s in harness.secret_forms():
            test.assertNotIn(s.encode(), m.data, "%s: secret %r in a message stored at "
                             "the peer" % (what, s))


class UpstreamFaults3(OutboxTestCase):

    def notification_ids(self, d, qid):
        return re.findall(r"%s: sender non-delivery notification: (%s)" % (qid, QID),
                          d.log_text())

    @staticmethod
    def dsns(sh, to):
        return [m for m in sh.messages() if m.mail_from == "" and m.rcpt_tos == [to]]

    # B1 -------------------------------------------------------------
    def test_b1_every_relay_refuses_defers_441(self):
        """Two relay addresses, nothing listening on either: the attempt
        ends deferred with dsn=4.4.1; the log names each address tried
        (one line each per attempt); the message stays queued and is tried
        again after the backoff (retry_min 1 s), not in a tight loop."""
        p1, p2 = dead_port(), dead_port()
        while p2 == p1:
            p2 = dead_port()
        d = self.outboxd(relay=[p1, p2], env=dict(TIMEOUT_ENV))
        qid = d.send_ok(data=make_message("b1 all down\r\n"))
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=(\S+), .*dsn=([0-9.]+), "
                       r"status=deferred \((.*)\)" % qid, 15)
        t_first = time.monotonic()
        self.assertEqual(m.group(2), "4.4.1", m.group(0))
        self.assertEqual(m.group(1), "none", "no session was ever made: %s" % m.group(0))
        self.assertIn(":%d" % p2, m.group(3), "the deferral names the last address tried")
        first = d.log_text()[:m.end()]
        for p in (p1, p2):
            hits = re.findall(r"\]: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                              r"(?i:connection refused)" % p, first)
            self.assertEqual(len(hits), 1, "log lines for address :%d in the first "
                             "attempt: %r" % (p, hits))
        # the order of the failover list is kept
        self.assertLess(first.find("]:%d:" % p1), first.find("]:%d:" % p2))
        # retried later: a second deferral, not before the backoff
        d.wait_log(r"(?s)%s: to=<rcpt@dest\.test>,.*status=deferred.*"
                   r"%s: to=<rcpt@dest\.test>,.*status=deferred" % (qid, qid), 15)
        gap = time.monotonic() - t_first
        self.assertGreaterEqual(gap, 0.5, "retried without backoff (%.2fs)" % gap)
        text = d.log_text()
        for p in (p1, p2):
            self.assertGreaterEqual(len(re.findall(r"\]: connect to \S+\]:%d: "
                                                   r"(?i:connection refused)" % p,
                                                   text)), 2, "address :%d not retried" % p)
        time.sleep(2.0)
        attempts = len(re.findall(r"%s: to=<rcpt@dest\.test>,.*status=deferred" % qid,
                                  d.log_text()))
        self.assertLessEqual(attempts, 6, "tight retry loop: %d attempts" % attempts)
        self.assertIn(qid, d.queued())
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])

    # B6 -------------------------------------------------------------
    def test_b6_all_refused_pipelined_exactly_one_dsn(self):
        """B6 with its DSN counted: the fake smarthost refuses both
        recipients and DATA in one pipelined group; then (after the fake
        has gone) the DSN goes through the second relay. Exactly one DSN
        arrives, naming both recipients, and one notification is logged."""
        sender = "b6@local.test"
        script = up_to_auth(EHLO_AUTH_PIPELINING) + lines(
            "sendline 235 2.7.0 ok",
            "expect MAIL FROM:", "expect RCPT TO:", "expect RCPT TO:", "expect DATA",
            "send 250 2.1.0 ok\\r\\n550 5.1.1 no such user r1\\r\\n"
            "550 5.1.1 no such user r2\\r\\n554 5.5.1 No valid recipients\\r\\n",
            # whatever comes next (QUIT, or RSET before the DSN): go away
            "read-line", "sendline 421 4.3.2 closing", "close")
        fk = self.fake(script, connections=1)
        sh = self.smarthost()
        d = self.outboxd(relay=[fk.port, sh.port], env=dict(TIMEOUT_ENV))
        rcpts = ["r1@dest.test", "r2@dest.test"]
        qid = d.send_ok(sender, rcpts, make_message("B6-BODY\r\n", sender=sender))
        for r in rcpts:
            d.wait_log(r"%s: to=<%s>,.*dsn=5\.1\.1, status=bounced" % (qid, re.escape(r)),
                       15)
        harness.wait_for(lambda: len(self.dsns(sh, sender)) >= 1 or None, 20,
                         "the DSN at the second smarthost")
        d.wait_log(r"to=<%s>,.*status=sent" % re.escape(sender), 10)
        time.sleep(2.5)  # a second DSN would arrive in this time
        got = self.dsns(sh, sender)
        self.assertEqual(len(got), 1, "DSNs to the sender: %d" % len(got))
        ids = self.notification_ids(d, qid)
        self.assertEqual(len(ids), 1, "notifications logged for %s" % qid)
        # If the DSN rode the fake's session (RSET, then the 421), that one
        # failure is logged once, not once per code path. Only the lines of
        # the fake's session count: a later attempt may defer the DSN again
        # at the second smarthost (a timeout in a slow run is another session).
        on_fake = [x["line"] for x in d.deliveries(status="deferred", qid=ids[0])
                   if re.search(r"relay=[^,]*:%d," % fk.port, x["line"])]
        self.assertLessEqual(len(on_fake), 1,
                             "one session failure logged twice for the DSN: %r" % on_fake)
        self.assertEqual(len(d.deliveries(status="sent", qid=ids[0])), 1)
        text = got[0].data.decode("utf-8", "replace")
        for r in rcpts:
            self.assertRegex(text, r"(?i)Final-Recipient: rfc822; ?%s" % re.escape(r))
        self.assertEqual(len(re.findall(r"(?im)^Status: 5\.1\.1", text)), 2)
        self.assertNotIn("B6-BODY", text, "the original body is in the DSN")
        rx = fk.received()
        self.assertNotIn(b"B6-BODY", rx, "body sent without a 354")
        self.assertEqual([m for m in sh.messages() if m.mail_from == sender], [],
                         "the refused message went to the second smarthost")
        assert_no_secrets(self, sh.messages(), "B6 DSN")
        harness.wait_for(lambda: not d.queued(), 10, "original and DSN gone")

    # F10 ------------------------------------------------------------
    def test_f10_535_then_next_smarthost_same_attempt(self):
        """F10 (a): the first smarthost answers 535 5.7.8 to AUTH; the
        second (good credentials) gets the message in the same attempt:
        no deferral is logged, the delivery names the second address, the
        auth_failures counter counted the 535. F11: the DSN-free run leaves
        no secret at either peer's store."""
        script = up_to_auth() + lines(
            "sendline 535 5.7.8 authentication credentials invalid",
            "read-line", "sendline 221 2.0.0 bye", "wait-close 5")
        fk = self.fake(script, connections=1)
        sh = self.smarthost()
        d = self.outboxd(relay=[fk.port, sh.port], env=dict(TIMEOUT_ENV))
        data = make_message("f10 next smarthost\r\n")
        t0 = time.monotonic()
        qid = d.send_ok(data=data)
        msgs = sh.wait_messages(1, 15)
        elapsed = time.monotonic() - t0
        self.assertEqual(msgs[0].body(), data)
        ln = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=(\S+),.*status=sent" % qid, 10)
        self.assertEqual(ln.group(1), "127.0.0.1[127.0.0.1]:%d" % sh.port)
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [],
                         "deferred instead of trying the next smarthost")
        # same attempt: well before the 1 s retry_min would allow a second one
        self.assertLess(elapsed, 8.0)
        self.assertRegex(d.log_text(), r"\]:%d: session failed while auth: .*5\.7\.8" % fk.port,
                         "the 535 was not logged")
        rx = fk.received()
        self.assertIn(b"AUTH ", rx, "the first smarthost never saw AUTH")
        self.assertNotIn(b"MAIL FROM", rx, "MAIL after a 535")
        auth_cmds = [(s, tls) for s, tls, line in sh.commands()
                     if line.upper().startswith("AUTH")]
        self.assertTrue(auth_cmds and all(tls for _s, tls in auth_cmds),
                        "AUTH at the second smarthost missing or not under TLS")
        counters = self.status_counters(d)
        if counters is not None:
            self.assertGreaterEqual(counters["auth_failures"], 1, "auth_failures did not rise")
            self.assertEqual(counters["deferred"], 0, counters)
        assert_no_secrets(self, sh.messages(), "F10 stored message")

    def status_counters(self, d):
        """`outbox status --json` counters, or None without OUTBOX_CLI."""
        if not os.environ.get("OUTBOX_CLI"):
            return None
        res = harness.run_cmd([harness.cli_path(), "status", "--json", "-c",
                               d.config_path], timeout=20)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)["counters"]

if __name__ == "__main__":
    harness.main()
