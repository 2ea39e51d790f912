#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The listener binds every [listen] address, IPv4 and IPv6 (DESIGN.md:
127.0.0.1 and ::1 by default), and the allow list applies to both
families: ::1 is allowed by default, and removing it refuses IPv6 clients."""
import smtplib
import socket
import unittest

import harness
from harness import OutboxTestCase, make_message, free_port


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def send_v6(port, data):
    with smtplib.SMTP("::1", port, local_hostname="client.test", timeout=20) as s:
        s.ehlo()
        s.mail("app@local.test")
        code, _ = s.rcpt("rcpt@dest.test")
        if code != 250:
            return code
        code, text = s.data(data)
        s.quit()
        return code


@unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback on this machine")
class ListenV6(OutboxTestCase):

    def test_both_families(self):
        sh = self.smarthost()
        port = free_port()
        d = self.outboxd(relay=[sh.port], listen_port=port, settings={
            "listen": {"address": "127.0.0.1:%d [::1]:%d" % (port, port)}})
        m = d.wait_log(r"ready: listening on (.*)", 5)
        self.assertEqual(m.group(1).split(), ["127.0.0.1:%d" % port, "[::1]:%d" % port])
        data = make_message("over IPv6\r\n")
        self.assertEqual(send_v6(port, data), 250)
        d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("over IPv4\r\n"))
        msgs = sh.wait_messages(2, 15)
        self.assertIn(data, [x.body() for x in msgs])
        d.wait_log(r"from=<app@local\.test>, .*\(client=::1\)", 5)

    def test_allow_applies_to_ipv6(self):
        sh = self.smarthost()
        port = free_port()
        d = self.outboxd(relay=[sh.port], listen_port=port, settings={
            "listen": {"address": "[::1]:%d" % port, "allow": "127.0.0.0/8"}})
        with socket.create_connection(("::1", port), timeout=10) as s:
            greeting = s.recv(512)
        self.assertTrue(greeting.startswith(b"554 5.7.1"), greeting)
        self.assertEqual(d.queued(), [])


if __name__ == "__main__":
    harness.main()
