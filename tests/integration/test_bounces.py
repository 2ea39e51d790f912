#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bounces (RFC 3464 DSNs): B18 format, B5 only the failed recipients, B19
never bounce a bounce (null sender; a DSN of ours refused), the per-sender
rate limit, B20 expiry (4.4.7; a null-sender message expires silently).

Every DSN goes back through the same smarthost (relay mode), so the
smarthost's maildir holds the DSNs: a message from <> to the sender. They
are parsed with Python's email package (policy default): multipart/report,
message/delivery-status parsed into its field blocks, text/rfc822-headers."""
import email
import email.policy
import email.utils
import os
import re
import time

import harness
from harness import OutboxTestCase, make_message

REFUSE_DEST = "*@dest.test=550 5.1.1 no such user here"
QID = harness.QID


def dsns(sh, to=None):
    """Messages from <> at the smarthost (optionally only those to `to`)."""
    return [m for m in sh.messages() if m.mail_from == ""
            and (to is None or m.rcpt_tos == [to])]


def norm(value):
    return re.sub(r"\s+", " ", str(value or "")).strip()


class Dsn:
    """A DSN parsed with the email package: the top message, its three
    parts, the per-message field block and the per-recipient blocks."""

    def __init__(self, stored):
        self.stored = stored
        self.raw = stored.data
        self.msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        self.parts = list(self.msg.iter_parts()) if self.msg.is_multipart() else []
        self.types = [p.get_content_type() for p in self.parts]
        self.per_message = None
        self.per_rcpt = []
        self.headers_part = None
        for p in self.parts:
            if p.get_content_type() == "message/delivery-status":
                blocks = p.get_payload()
                if isinstance(blocks, list) and blocks:
                    self.per_message = blocks[0]
                    self.per_rcpt = blocks[1:]
            elif p.get_content_type() == "text/rfc822-headers":
                payload = p.get_payload(decode=True) or b""
                self.headers_part = payload.decode("utf-8", "replace")

    def rcpt_block(self, addr):
        for b in self.per_rcpt:
            if norm(b["Final-Recipient"]).lower() == ("rfc822; %s" % addr).lower():
                return b
        return None

    def final_recipients(self):
        return sorted(norm(b["Final-Recipient"]) for b in self.per_rcpt)


class Bounces(OutboxTestCase):

    # ------------------------------------------------------------ helpers
    def wait_dsns(self, sh, n, to=None, timeout=25.0, settle=2.0):
        """Wait for n DSNs, then `settle` seconds more so that an extra one
        would show up; returns all DSNs (to `to`)."""
        harness.wait_for(lambda: len(dsns(sh, to)) >= n or None, timeout,
                         "%d DSN(s) at the smarthost (have %d)" % (n, len(dsns(sh, to))),
                         interval=0.1)
        time.sleep(settle)
        return dsns(sh, to)

    def mail_null_count(self, sh):
        return sum(1 for _s, _t, line in sh.commands()
                   if re.match(r"(?i)MAIL FROM:<>", line))

    def notification_ids(self, d, qid):
        """DSN queue ids logged for the original message qid."""
        return re.findall(r"%s: sender non-delivery notification: (%s)" % (qid, QID),
                          d.log_text())

    def check_dsn_logged(self, d, qid, sender):
        """The three log lines of a DSN: notification, intake, sent."""
        m = d.wait_log(r"%s: sender non-delivery notification: (%s)" % (qid, QID), 20)
        dsn_id = m.group(1)
        d.wait_log(r"%s: from=<>, size=\d+, nrcpt=1 \(notification for %s\)"
                   % (dsn_id, qid), 10)
        d.wait_log(r"%s: to=<%s>,.*status=sent" % (dsn_id, re.escape(sender)), 20)
        self.assertEqual(self.notification_ids(d, qid), [dsn_id],
                         "more than one notification logged for %s" % qid)
        return dsn_id

    def check_headers(self, dsn, sender):
        msg = dsn.msg
        self.assertEqual(msg.get_content_type(), "multipart/report", dsn.raw[:600])
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertTrue(msg.get_boundary(), "multipart/report without a boundary")
        self.assertRegex(str(msg["From"]), r"(?i)mailer-daemon@",
                         "From is not the mailer daemon")
        self.assertIn("Mail Delivery System", str(msg["From"]))
        self.assertIn(sender, str(msg["To"]))
        self.assertEqual(norm(msg["Subject"]), "Undelivered Mail Returned to Sender")
        self.assertEqual(norm(msg["Auto-Submitted"]).lower(), "auto-replied")
        self.assertIsNotNone(msg["Date"], "DSN without a Date header (RFC 5322 3.6)")
        self.assertIsNotNone(msg["Message-ID"], "DSN without a Message-ID")
        self.assertEqual(dsn.types, ["text/plain", "message/delivery-status",
                                     "text/rfc822-headers"],
                         "parts of the report (RFC 6522, RFC 3464)")
        pm = dsn.per_message
        self.assertIsNotNone(pm, "message/delivery-status has no field blocks")
        self.assertRegex(norm(pm["Reporting-MTA"]), r"(?i)^dns; ?outbox\.test$")
        arrival = pm["Arrival-Date"]
        self.assertIsNotNone(arrival, "no Arrival-Date")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(norm(arrival)),
                             "Arrival-Date is not an RFC 5322 date: %r" % arrival)

    # ------------------------------------------------------------ B18
    def test_b18_two_failed_recipients_one_dsn(self):
        """Two recipients refused 550 in one message: exactly one DSN from
        <> to the sender naming both (Action failed, Status 5.1.1, smtp
        diagnostic with the upstream reply); the original headers are in
        the text/rfc822-headers part, the original body nowhere."""
        sender = "b18@local.test"
        r1, r2 = "r1@dest.test", "r2@dest.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST])
        d = self.outboxd(relay=[sh.port])
        token = os.urandom(4).hex()
        subject = "B18 original subject %s" % token
        body_marker = "B18-BODY-NEVER-IN-DSN-%s" % token
        data = make_message("%s\r\nsecond line\r\n" % body_marker, subject=subject,
                            sender=sender, to=r1)
        qid = d.send_ok(sender, [r1, r2], data)
        for r in (r1, r2):
            d.wait_log(r"%s: to=<%s>,.*dsn=5\.1\.1, status=bounced" % (qid, re.escape(r)), 20)
        got = self.wait_dsns(sh, 1)
        self.assertEqual(len(got), 1, "expected exactly one DSN, got %r" % got)
        self.check_dsn_logged(d, qid, sender)
        stored = got[0]
        self.assertEqual(stored.mail_from, "")
        self.assertEqual(stored.rcpt_tos, [sender])
        self.assertEqual(self.mail_null_count(sh), 1, "MAIL FROM:<> not sent exactly once")
        self.assertEqual([m for m in sh.messages() if m.mail_from == sender], [],
                         "the refused message was delivered")
        dsn = Dsn(stored)
        self.check_headers(dsn, sender)
        self.assertEqual(dsn.final_recipients(), ["rfc822; %s" % r1, "rfc822; %s" % r2])
        for r in (r1, r2):
            b = dsn.rcpt_block(r)
            self.assertEqual(norm(b["Action"]).lower(), "failed", r)
            self.assertEqual(norm(b["Status"]), "5.1.1", r)
            self.assertRegex(norm(b["Diagnostic-Code"]),
                             r"(?i)^smtp; ?550[ -]5\.1\.1 no such user here", r)
        self.assertIsNotNone(dsn.headers_part, "no text/rfc822-headers part")
        self.assertIn("Subject: %s" % subject, dsn.headers_part)
        self.assertNotIn(body_marker.encode(), dsn.raw, "the original body is in the DSN")
        harness.wait_for(lambda: not d.queued(), 15, "queue empty (original and DSN gone)")

    def test_b18_remote_mta_named(self):
        """RELIABILITY B18 lists Remote-MTA per recipient (the server that
        gave the permanent reply): here the smarthost on 127.0.0.1."""
        sender = "b18r@local.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST])
        d = self.outboxd(relay=[sh.port])
        d.send_ok(sender, ["r1@dest.test"], make_message("x\r\n", sender=sender))
        dsn = Dsn(self.wait_dsns(sh, 1, settle=0)[0])
        b = dsn.rcpt_block("r1@dest.test")
        self.assertIsNotNone(b, dsn.raw[:2000])
        self.assertRegex(norm(b["Remote-MTA"]), r"(?i)^dns; ?\S*127\.0\.0\.1",
                         "Remote-MTA missing or not naming the smarthost")

    # ------------------------------------------------------------ B5
    def test_b5_mixed_results_dsn_names_only_failed(self):
        """r1 accepted (250), r2 refused (550): r1 gets the message, the
        sender gets one DSN that names r2 only."""
        sender = "b5@local.test"
        r1, r2 = "ok1@dest.test", "gone2@dest.test"
        sh = self.smarthost(rcpt_reply=["%s=550 5.1.1 user unknown" % r2])
        d = self.outboxd(relay=[sh.port])
        data = make_message("mixed\r\n", sender=sender, to=r1, subject="B5 mixed")
        qid = d.send_ok(sender, [r1, r2], data)
        d.wait_log(r"%s: to=<%s>,.*status=sent" % (qid, re.escape(r1)), 20)
        got = self.wait_dsns(sh, 1)
        self.assertEqual(len(got), 1, got)
        self.check_dsn_logged(d, qid, sender)
        delivered = [m for m in sh.messages() if m.mail_from == sender]
        self.assertEqual(len(delivered), 1)
        self.assertEqual(delivered[0].rcpt_tos, [r1])
        self.assertEqual(delivered[0].body(), data)
        dsn = Dsn(got[0])
        self.check_headers(dsn, sender)
        self.assertEqual(dsn.final_recipients(), ["rfc822; %s" % r2],
                         "the DSN must name the failed recipient only")
        b = dsn.rcpt_block(r2)
        self.assertEqual(norm(b["Action"]).lower(), "failed")
        self.assertEqual(norm(b["Status"]), "5.1.1")
        self.assertNotIn(r1.encode(), b"".join(
            ln for ln in got[0].data.split(b"\r\n")
            if ln.lower().startswith((b"final-recipient", b"original-recipient"))))
        harness.wait_for(lambda: not d.queued(), 15, "queue empty")

    # ------------------------------------------------------------ B19
    def test_b19a_null_sender_no_dsn(self):
        """A message from <> that fails permanently: no DSN, the log says
        why, the message leaves the queue (I4: dropped and logged)."""
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST])
        d = self.outboxd(relay=[sh.port])
        qid = d.send_ok("", ["r1@dest.test"], make_message("bounce of something\r\n",
                                                          sender="MAILER-DAEMON@x.test"))
        d.wait_log(r"%s: to=<r1@dest\.test>,.*status=bounced" % qid, 20)
        d.wait_log(r"%s: .*sender is the null sender <>, notification suppressed" % qid, 10)
        harness.wait_for(lambda: qid not in d.queued(), 10, "message removed")
        time.sleep(2.0)  # a wrong DSN would be queued and sent in this time
        self.assertEqual(dsns(sh), [], "a DSN was sent for a null-sender message")
        self.assertEqual(self.mail_null_count(sh), 1,
                         "MAIL FROM:<> seen more than once (the original attempt only)")
        self.assertEqual(self.notification_ids(d, qid), [])
        self.assertEqual(d.queued(), [])

    def b19b_run(self, sh, sender, qid_expect_text):
        d = self.outboxd(relay=[sh.port])
        qid = d.send_ok(sender, ["r1@dest.test"], make_message("x\r\n", sender=sender))
        d.wait_log(r"%s: to=<r1@dest\.test>,.*status=bounced" % qid, 20)
        m = d.wait_log(r"%s: sender non-delivery notification: (%s)" % (qid, QID), 20)
        dsn_id = m.group(1)
        bounced = d.wait_log(r"%s: to=<%s>,.*status=bounced \((.*)\)"
                             % (dsn_id, re.escape(sender)), 20)
        self.assertIn(qid_expect_text, bounced.group(1))
        d.wait_log(r"undeliverable delivery status notification dropped "
                   r"\(never bounce a bounce\)", 10)
        harness.wait_for(lambda: not d.queued(), 10, "original and DSN removed")
        time.sleep(2.0)  # a DSN about the DSN would be generated in this time
        self.assertEqual(len(re.findall(r"non-delivery notification: ", d.log_text())), 1,
                         "a notification about our own notification")
        self.assertEqual(self.notification_ids(d, dsn_id), [])
        self.assertEqual(dsns(sh), [], "the refused DSN was stored anyway?")
        self.assertEqual(d.queued(), [])
        return d, dsn_id

    def test_b19b_dsn_refused_at_rcpt_dropped(self):
        """Our DSN's recipient (the original sender) is refused 550: the DSN
        is dropped with a log line; no DSN about the DSN; one attempt only."""
        sender = "gone-sender@local.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST,
                                        "%s=550 5.1.1 sender mailbox gone" % sender])
        self.b19b_run(sh, sender, "sender mailbox gone")
        rcpts = [ln for _s, _t, ln in sh.commands()
                 if ln.upper().startswith("RCPT TO:<%s>" % sender.upper())]
        self.assertEqual(len(rcpts), 1, "the DSN was retried after a 550: %r" % rcpts)

    def test_b19b_dsn_refused_at_mail_dropped(self):
        """The smarthost refuses MAIL FROM:<> (550): the DSN fails for its
        only recipient and is dropped; MAIL FROM:<> is tried once."""
        sender = "b19m@local.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST],
                            mail_reply=["<>=550 5.7.1 no bounces accepted here"])
        self.b19b_run(sh, sender, "no bounces accepted here")
        self.assertEqual(self.mail_null_count(sh), 1, "MAIL FROM:<> retried after a 550")

    def test_b19b_dsn_refused_goes_to_admin_once(self):
        """With [rewrite] admin set, our DSN that fails is reported once to
        the admin; if the admin address fails too, that report is dropped:
        three messages at most, never a loop."""
        sender = "gone@local.test"
        admin = "postmaster@admin.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST,
                                        "%s=550 5.1.1 sender mailbox gone" % sender])
        d = self.outboxd(relay=[sh.port], settings={"rewrite": {"admin": admin}})
        qid = d.send_ok(sender, ["r1@dest.test"], make_message("x\r\n", sender=sender))
        d.wait_log(r"%s: to=<r1@dest\.test>,.*status=bounced" % qid, 20)
        d.wait_log(r"undeliverable delivery status notification reported to "
                   r"the admin <%s>" % re.escape(admin), 20)
        got = self.wait_dsns(sh, 1, to=admin, timeout=20, settle=1.0)
        self.assertEqual(len(got), 1)
        self.assertIn(sender, got[0].data.decode("utf-8", "replace"))
        harness.wait_for(lambda: not d.queued(), 10, "queue empty")
        self.assertEqual(dsns(sh, sender), [])

    # ------------------------------------------------------------ rate limit
    def test_dsn_rate_limit_per_sender(self):
        """12 failing messages from one sender within seconds: 10 DSNs, 2
        suppressed with a log line each; every original leaves the queue.
        Another sender is not affected by the first one's limit."""
        sender, other = "flood@local.test", "other@local.test"
        sh = self.smarthost(rcpt_reply=[REFUSE_DEST])
        d = self.outboxd(relay=[sh.port])
        qids = []
        for i in range(12):
            qids.append(d.send_ok(sender, ["r%d@dest.test" % i],
                                  make_message("flood %d\r\n" % i, sender=sender)))
        line = (r"notification to <%s> suppressed: more than 10 in 600 s to that address"
                % re.escape(sender))
        harness.wait_for(lambda: len(re.findall(line, d.log_text())) >= 2, 40,
                         "two suppression log lines")
        got = self.wait_dsns(sh, 10, to=sender, timeout=40, settle=0)
        harness.wait_for(lambda: not d.queued(), 20, "queue empty")
        qid_other = d.send_ok(other, ["x@dest.test"], make_message("y\r\n", sender=other))
        self.wait_dsns(sh, 1, to=other, timeout=20, settle=0)
        time.sleep(2.0)
        got = dsns(sh, sender)
        self.assertEqual(len(got), 10, "DSNs to %s: %d" % (sender, len(got)))
        self.assertEqual(len(re.findall(line, d.log_text())), 2)
        notified = [q for q in qids if self.notification_ids(d, q)]
        self.assertEqual(len(notified), 10, "notifications logged for %r" % notified)
        self.assertEqual(len(dsns(sh, other)), 1)
        self.assertEqual(len(self.notification_ids(d, qid_other)), 1)
        # every DSN is complete and names the right failed recipient
        named = sorted(Dsn(m).final_recipients()[0] for m in got)
        self.assertEqual(len(set(named)), 10, named)
        self.assertEqual(d.queued(), [])

    # ------------------------------------------------------------ B20
    def test_b20_expiry_one_dsn_447_null_sender_silent(self):
        """max_lifetime 4 s, retries every second, the smarthost answers 450
        to the recipients for ever: after >= 4 s and >= 3 attempts both
        messages expire (dsn=4.4.7 logged); the sender gets exactly one DSN
        with Action failed and Status 4.4.7; the null-sender message expires
        without a DSN."""
        sender = "exp@local.test"
        r_exp, r_null = "late@dest.test", "late-null@dest.test"
        sh = self.smarthost(rcpt_reply=["*@dest.test=450 4.2.1 mailbox busy, try later"])
        d = self.outboxd(relay=[sh.port], settings={"spool": {
            "max_lifetime": "4s", "retry_min": "1s", "retry_max": "1s"}})
        t0 = time.time()
        qid = d.send_ok(sender, [r_exp], make_message("expire me\r\n", sender=sender,
                                                      subject="B20 expiring"))
        qid_null = d.send_ok("", [r_null], make_message("null expire\r\n"))
        exp_rx = (r"%s: to=<%s>, relay=none, delay=\d+(?:\.\d+)?, dsn=4\.4\.7, "
                  r"status=bounced \(message expired after (\d+) attempts; "
                  r"last error: (.*)\)")
        m = d.wait_log(exp_rx % (qid, re.escape(r_exp)), 30)
        t_expired = time.time()
        self.assertGreaterEqual(int(m.group(1)), 3, m.group(0))
        self.assertIn("450", m.group(2))
        self.assertGreaterEqual(t_expired - t0, 3.9, "expired before max_lifetime")
        m2 = d.wait_log(exp_rx % (qid_null, re.escape(r_null)), 20)
        self.assertGreaterEqual(int(m2.group(1)), 3)
        d.wait_log(r"%s: .*sender is the null sender <>, notification suppressed"
                   % qid_null, 10)
        got = self.wait_dsns(sh, 1, timeout=20)
        self.assertEqual(len(got), 1, "expected one DSN (none for the null sender): %r"
                         % got)
        self.check_dsn_logged(d, qid, sender)
        self.assertEqual(self.notification_ids(d, qid_null), [])
        stored = got[0]
        self.assertEqual(stored.rcpt_tos, [sender])
        self.assertGreaterEqual(stored.meta["time"] - t0, 3.9, "DSN before max_lifetime")
        attempts = [ln for _s, _t, ln in sh.commands()
                    if ln.upper().startswith("RCPT TO:<%s>" % r_exp.upper())]
        self.assertGreaterEqual(len(attempts), 3, "fewer than 3 attempts before expiry")
        dsn = Dsn(stored)
        self.check_headers(dsn, sender)
        self.assertEqual(dsn.final_recipients(), ["rfc822; %s" % r_exp])
        b = dsn.rcpt_block(r_exp)
        self.assertEqual(norm(b["Action"]).lower(), "failed")
        self.assertEqual(norm(b["Status"]), "4.4.7")
        self.assertIsNotNone(b["Diagnostic-Code"], "no Diagnostic-Code on expiry")
        self.assertRegex(norm(b["Diagnostic-Code"]), r"(?i)^(x-outbox|smtp);")
        self.assertIn("Subject: B20 expiring", dsn.headers_part or "")
        self.assertNotIn(b"expire me", stored.data, "original body in the DSN")
        harness.wait_for(lambda: not d.queued(), 10, "queue empty after expiry")


if __name__ == "__main__":
    harness.main()
