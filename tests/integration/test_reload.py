#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""SIGHUP reload (D15, DESIGN.md signals): an invalid new configuration is
refused with a log line and the old one stays in force; a valid one that
changes the smarthost applies to queued and new mail."""
import os
import signal

import harness
from harness import OutboxTestCase, make_message, free_port


class Reload(OutboxTestCase):

    def test_bad_config_keeps_old(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        good = open(d.config_path).read()
        with open(d.config_path, "a") as f:
            f.write("[listen]\nmax_recipients = lots\n")
        mark = d.mark()
        d.proc.signal(signal.SIGHUP)
        m = d.wait_log(r"reload failed, keeping the old configuration: (.*)", 10,
                       since=mark)
        self.assertRegex(m.group(1), r"outbox\.ini:\d+: .*max_recipients")
        self.assertTrue(d.alive())
        data = make_message("still relayed with the old config\r\n")
        d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        self.assertEqual(sh.wait_messages(1, 10)[0].body(), data)
        with open(d.config_path, "w") as f:
            f.write(good)

    def test_new_smarthost_reaches_queued_mail(self):
        dead = free_port()
        d = self.outboxd(relay=[dead])
        data = make_message("queued while the old smarthost is down\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        d.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred" % qid, 10)
        sh = self.smarthost()
        d.relay = [sh.port]
        d.write_config()
        mark = d.mark()
        d.proc.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 10, since=mark)
        msgs = sh.wait_messages(1, 15)
        self.assertEqual(msgs[0].body(), data)
        m = d.wait_log(r"%s: to=<rcpt@dest\.test>, relay=([^,]*),.*status=sent" % qid,
                       10)
        self.assertIn(":%d" % sh.port, m.group(1))


if __name__ == "__main__":
    harness.main()
