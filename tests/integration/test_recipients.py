#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Per-recipient state (B5, I3): r1 -> 250, r2 -> 450, r3 -> 550 in one
transaction. r1 is delivered and never sent again, r2 is retried alone,
r3 is logged bounced and gets one DSN to the sender."""
import re
import time
import unittest

import harness
from harness import OutboxTestCase, make_message

R1, R2, R3 = "r1@dest.test", "r2@dest.test", "r3@dest.test"
SENDER = "app@local.test"


class Recipients(OutboxTestCase):

    def setUp(self):
        super().setUp()
        # r2 is refused once (then accepted), r3 always
        self.sh = self.smarthost(rcpt_reply=["1:%s=450 4.2.1 mailbox busy, try later" % R2,
                                             "%s=550 5.1.1 no such user" % R3])
        self.d = self.outboxd(relay=[self.sh.port])
        self.data = make_message("three recipients\r\n", to=R1)
        self.qid = self.d.send_ok(SENDER, [R1, R2, R3], self.data)

    def rcpt_lines(self, who):
        return [(sid, line) for sid, _t, line in self.sh.commands()
                if line.upper().startswith("RCPT TO:<%s>" % who.upper())]

    def test_mixed_results(self):
        d, sh, qid = self.d, self.sh, self.qid
        d.wait_log(r"%s: to=<%s>,.*status=sent" % (qid, re.escape(R1)), 15)
        d.wait_log(r"%s: to=<%s>,.*status=deferred" % (qid, re.escape(R2)), 15)
        m = d.wait_log(r"%s: to=<%s>,.*status=bounced \((.*)\)" % (qid, re.escape(R3)), 15)
        self.assertIn("550", m.group(1))
        # the second attempt carries r2 alone and delivers it
        d.wait_log(r"%s: to=<%s>,.*status=sent" % (qid, re.escape(R2)), 15)
        # the retry delivered r2 (a DSN, if any, is from <> and not counted)
        harness.wait_for(lambda: len(self.msgs_to_rcpts()) >= 2, 15, "second delivery")
        harness.wait_for(lambda: qid not in d.queued(), 10, "message removed from the queue")
        time.sleep(1.5)  # a wrong extra retry would show up here
        r1 = self.rcpt_lines(R1)
        r2 = self.rcpt_lines(R2)
        r3 = self.rcpt_lines(R3)
        self.assertEqual(len(r1), 1, "r1 sent again: %r" % r1)
        self.assertEqual(len(r3), 1, "r3 (550) retried: %r" % r3)
        self.assertEqual(len(r2), 2, "r2 not retried exactly once: %r" % r2)
        # the retry transaction holds only r2 (it may reuse the first
        # session: outbox keeps a ready session open briefly for more mail)
        retry_sid = r2[1][0]
        lines = [line.upper() for sid, _t, line in self.sh.commands()
                 if sid == retry_sid]
        last_mail = max(i for i, l in enumerate(lines) if l.startswith("MAIL FROM"))
        rcpts_in_retry = [l for l in lines[last_mail:] if l.startswith("RCPT")]
        self.assertEqual(len(rcpts_in_retry), 1, rcpts_in_retry)
        delivered = self.msgs_to_rcpts()
        self.assertEqual(delivered[0], [R1])
        self.assertEqual(delivered[1], [R2])
        for m in sh.messages():
            if m.mail_from == SENDER:
                self.assertEqual(m.body(), self.data)

    def msgs_to_rcpts(self):
        return [m.rcpt_tos for m in self.sh.messages() if m.mail_from == SENDER]

    def test_bounce_dsn_for_550(self):
        """B5/B18: one DSN from <> to the sender, naming r3 with 5.1.1."""
        sh = self.sh

        def dsns():
            return [m for m in sh.messages() if m.mail_from == ""]
        got = harness.wait_for(lambda: dsns() or None, 20, "a DSN at the smarthost")
        time.sleep(3)  # r2's retry must not produce a second DSN
        got = dsns()
        self.assertEqual(len(got), 1, "expected exactly one DSN, got %d" % len(got))
        dsn = got[0]
        self.assertEqual(dsn.rcpt_tos, [SENDER])
        body = dsn.data.decode("utf-8", "replace")
        self.assertRegex(body, r"(?i)content-type: multipart/report;\s*report-type=\"?delivery-status")
        self.assertRegex(body, r"(?i)final-recipient: rfc822;\s*%s" % re.escape(R3))
        self.assertRegex(body, r"(?i)action: failed")
        self.assertRegex(body, r"(?i)status: 5\.1\.1")
        self.assertNotRegex(body, r"(?i)final-recipient: rfc822;\s*%s" % re.escape(R1))
        self.assertNotRegex(body, r"(?i)final-recipient: rfc822;\s*%s" % re.escape(R2))


if __name__ == "__main__":
    harness.main()
