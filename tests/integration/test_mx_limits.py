#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Direct delivery to MX hosts that cannot take the message (RELIABILITY.md
B13 and A23, third row): every MX host of the domain advertises `SIZE 1000`
for a larger message, or none advertises SMTPUTF8 for a message that needs
it. The client must try each MX host, send no MAIL to any of them, and
bounce the message with one DSN (5.3.4, 5.6.7; decision 5 for SMTPUTF8).

Both MX hosts are peers/smarthost.py on 127.0.0.2 and 127.0.0.3; the
sender's domain has its own MX on 127.0.0.4, which receives the DSN."""
import re
import time

import harness
from harness import make_message
from mxlib import MxTestCase

QID = harness.QID
SENDER = "app@sender.test"


def zone():
    return {"a.test": {"MX": [[10, "mx1.a.test"], [20, "mx2.a.test"]]},
            "mx1.a.test": {"A": ["127.0.0.2"]}, "mx2.a.test": {"A": ["127.0.0.3"]},
            "sender.test": {"MX": [[10, "mx.sender.test"]]},
            "mx.sender.test": {"A": ["127.0.0.4"]}}


class MxLimits(MxTestCase):

    def start(self, extra=()):
        dns = self.dnsmasq(zone())
        mx1 = self.mx_smarthost("127.0.0.2", extra=list(extra))
        mx2 = self.mx_smarthost("127.0.0.3", extra=list(extra))
        back = self.mx_smarthost("127.0.0.4", extra=["--smtputf8"])
        d = self.mx_outboxd(dns.port)
        return mx1, mx2, back, d

    def cmds(self, peer, verb):
        return [ln for _s, _t, ln in peer.commands() if ln.upper().startswith(verb)]

    def check_next_mx_logged(self, d, qid, why):
        """The first MX's refusal is logged as a reason to go on."""
        d.wait_log(r"mx1\.a\.test\[127\.0\.0\.2\]:%d: %s: %s; trying the next MX host"
                   % (self.mx_port, qid, why), 5)
        self.assertEqual(d.deliveries(status="deferred", qid=qid), [])

    def check_both_tried_no_mail(self, mx1, mx2):
        for peer in (mx1, mx2):
            self.assertGreaterEqual(len(self.cmds(peer, "EHLO")), 1,
                                    "%s (%s) was never tried" % (peer.name, peer.ip))
            self.assertEqual(self.cmds(peer, "MAIL"), [],
                             "MAIL sent to %s despite its limits" % peer.ip)
            self.assertEqual(peer.messages(), [])

    def check_one_dsn(self, d, back, qid, rcpt_rx, status):
        """Exactly one DSN at the sender's MX, its Final-Recipient matching
        rcpt_rx, with status; one notification logged for qid."""
        harness.wait_for(lambda: back.messages() or None, 20, "the DSN at the sender's MX")
        time.sleep(2.0)  # a second DSN would arrive in this time
        got = [m for m in back.messages() if m.mail_from == ""]
        self.assertEqual(len(got), 1, "DSNs at the sender's MX: %d" % len(got))
        self.assertEqual(got[0].rcpt_tos, [SENDER])
        text = got[0].data.decode("utf-8", "replace")
        self.assertRegex(text, r"(?im)^Status: %s\s*$" % re.escape(status))
        self.assertEqual(len(re.findall(r"(?im)^Final-Recipient: rfc822; ?%s\s*$" % rcpt_rx,
                                        text)), 1, text)
        notes = re.findall(r"%s: sender non-delivery notification: %s" % (qid, QID),
                           d.log_text())
        self.assertEqual(len(notes), 1, "notifications logged: %r" % notes)
        for s in harness.secret_forms():   # F11 (no AUTH in MX mode; cheap)
            self.assertNotIn(s.encode(), got[0].data)

    def test_b13_every_mx_size_1000_one_dsn_534(self):
        mx1, mx2, back, d = self.start(extra=["--size-limit", "1000"])
        rcpt = "r@a.test"
        data = make_message("z" * 5000 + "\r\n", sender=SENDER, to=rcpt)
        qid = d.send_ok(SENDER, [rcpt], data)
        ln = self.wait_status(d, qid, rcpt, "bounced", timeout=20)["line"]
        self.assertIn("dsn=5.3.4", ln)
        self.assertIn("relay=mx2.a.test[127.0.0.3]", ln, "bounced before the last MX")
        self.check_next_mx_logged(d, qid, "message size exceeds server limit")
        self.check_both_tried_no_mail(mx1, mx2)
        # each host said SIZE 1000 in its EHLO reply (the peer's own limit)
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.check_one_dsn(d, back, qid, re.escape(rcpt), "5.3.4")
        harness.wait_for(lambda: not d.queued(), 10, "queue empty")

    def test_a23_no_smtputf8_at_any_mx_one_dsn_567(self):
        mx1, mx2, back, d = self.start()
        rcpt = "jöran@a.test"
        data = make_message("utf8 local part\r\n", sender=SENDER, to="r@a.test")
        res = d.send(SENDER, [rcpt], data, mail_options=["SMTPUTF8"])
        self.assertEqual(res.code, 250, res)
        qid = res.queue_id
        ln = self.wait_status(d, qid, rcpt, "bounced", timeout=20)["line"]
        self.assertIn("dsn=5.6.7", ln)
        self.assertIn("relay=mx2.a.test[127.0.0.3]", ln, "bounced before the last MX")
        self.check_next_mx_logged(d, qid, "SMTPUTF8 is required, but was not offered by host")
        self.check_both_tried_no_mail(mx1, mx2)
        for peer in (mx1, mx2):
            self.assertEqual(self.cmds(peer, "RCPT"), [])
        # the DSN writes the UTF-8 local part as "j??ran" (ASCII only)
        self.check_one_dsn(d, back, qid, r"j\S{1,4}ran@a\.test", "5.6.7")
        harness.wait_for(lambda: not d.queued(), 10, "queue empty")


if __name__ == "__main__":
    harness.main()
