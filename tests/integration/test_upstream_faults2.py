#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""More of a hostile or faulty upstream (peers/fake_smtp.py, byte by byte),
and the listener's pipelining: B2 blackhole and slow greeting, B4 EHLO
refused, B6 every recipient refused under PIPELINING, B8 no reply to the
final dot, B15 greylisting at MAIL, B16 several messages on one connection,
F3 capabilities reset after TLS, F5 STARTTLS refused or junk instead of a
ServerHello, F12 handshake stall, A8 a 1,000,000-byte line, A16 pipelining.

Timeouts: OUTBOX_TEST_CLIENT_TIMEOUT caps every outbound SMTP timeout of
the daemon (here 2 s), so each timeout case is bounded and quick."""
import re
import time

import harness
from harness import OutboxTestCase, RawClient, make_message

CLIENT_TIMEOUT = 2.0
TIMEOUT_ENV = {"OUTBOX_TEST_CLIENT_TIMEOUT": "%d" % CLIENT_TIMEOUT}

GREETING = "sendline 220 fake.test ESMTP"
EHLO_STARTTLS = "send 250-fake.test\\r\\n250-STARTTLS\\r\\n250 8BITMIME\\r\\n"
EHLO_AUTH = "send 250-fake.test\\r\\n250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n"
EHLO_AUTH_PIPELINING = ("send 250-fake.test\\r\\n250-PIPELINING\\r\\n"
                        "250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n")


def lines(*steps):
    return "\n".join(steps) + "\n"


def up_to_starttls():
    """Greeting, EHLO offering STARTTLS, STARTTLS read (no reply yet)."""
    return lines(GREETING, "expect EHLO", EHLO_STARTTLS, "expect STARTTLS")


def tls_auth_prefix(ehlo2=EHLO_AUTH):
    """Up to a successful AUTH inside TLS."""
    return up_to_starttls() + lines("sendline 220 2.0.0 go ahead", "starttls",
                                    "expect EHLO", ehlo2, "expect AUTH",
                                    "sendline 235 2.7.0 ok")


def one_transaction(final="250 2.0.0 ok"):
    return lines("expect MAIL FROM:", "sendline 250 2.1.0 ok",
                 "expect RCPT TO:", "sendline 250 2.1.5 ok",
                 "expect DATA", "sendline 354 go ahead",
                 "read-data", "sendline " + final)


def quit_tail():
    return lines("expect QUIT", "sendline 221 2.0.0 bye", "wait-close 5")


class UpstreamFaults2(OutboxTestCase):

    # -- helpers
    def start(self, script, connections=1, tls="starttls", user=harness.USER,
              settings=None):
        fk = self.fake(script, connections=connections)
        d = self.outboxd(relay=[fk.port], tls=tls, user=user, settings=settings,
                         env=dict(TIMEOUT_ENV))
        return fk, d

    def wait_rcpt(self, d, qid, status, rcpt="rcpt@dest.test", timeout=15.0):
        """(dsn, text) of the first log line for rcpt with this status."""
        m = d.wait_log(r"^.*%s: to=<%s>,.* dsn=([0-9.]+), status=%s(?: \((.*)\))?\s*$"
                       % (qid, re.escape(rcpt), status), timeout)
        return m.group(1), m.group(2) or ""

    def wait_fake_done(self, fk, timeout=15.0):
        harness.wait_for(lambda: not fk.proc.alive(), timeout, "%s to finish" % fk.name)

    def assert_still_queued(self, d, qid):
        self.assertIn(qid, d.queued())
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])

    @staticmethod
    def transcript(fk):
        try:
            with open(fk.transcript_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def connects(self, fk):
        return len(re.findall(r"^\d+ connect\s*$", self.transcript(fk), re.M))

    # B2 -------------------------------------------------------------
    def test_b2a_blackhole_greeting_times_out(self):
        fk, d = self.start("wait-close 20\n")
        qid = d.send_ok()
        t0 = time.monotonic()
        dsn, why = self.wait_rcpt(d, qid, "deferred", timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, CLIENT_TIMEOUT * 0.75,
                                "deferred before the greeting timeout")
        self.assertLess(elapsed, CLIENT_TIMEOUT + 3.0, "greeting timeout not applied")
        self.assertTrue(dsn.startswith("4."), dsn)
        self.assertIn("greeting", why)
        m = re.search(r"session failed while (\S+):", d.log_text())
        self.assertIsNotNone(m, "no 'session failed while STATE' log line")
        self.assertEqual(m.group(1), "greeting",
                         "the log names the wrong state: %r" % m.group(0))
        self.assertEqual(fk.received(), b"", "client spoke before the 220")
        self.assert_still_queued(d, qid)

    def test_b2b_slow_greeting_timeout_not_reset_per_byte(self):
        # "220 x\r\n" one byte per second: complete only after ~6 s
        steps = []
        for ch in ["2", "2", "0", "\\x20", "x", "\\r", "\\n"]:
            steps += ["send " + ch, "sleep 1"]
        fk, d = self.start(lines(*steps) + lines("expect EHLO",
                                                 "sendline 421 4.3.2 bye",
                                                 "wait-close 3"))
        qid = d.send_ok()
        t0 = time.monotonic()
        dsn, why = self.wait_rcpt(d, qid, "deferred", timeout=12)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, CLIENT_TIMEOUT + 2.5,
                        "the greeting timeout was reset by each byte (%.1fs)" % elapsed)
        self.assertGreaterEqual(elapsed, CLIENT_TIMEOUT * 0.75)
        self.assertIn("greeting", why)
        self.wait_fake_done(fk)
        self.assertNotIn(b"EHLO", fk.received(), "EHLO sent after the greeting timed out")
        self.assert_still_queued(d, qid)

    # B4 -------------------------------------------------------------
    def test_b4_ehlo_refused_helo_without_extensions(self):
        script = lines(GREETING, "expect EHLO", "sendline 502 5.5.1 EHLO not implemented",
                       "expect HELO", "sendline 250 fake.test") + \
            one_transaction() + quit_tail()
        fk, d = self.start(script, tls="none", user=None)
        qid = d.send_ok(data=make_message("b4 helo body\r\n"))
        self.wait_rcpt(d, qid, "sent")
        self.wait_fake_done(fk)
        rx = fk.received()
        self.assertRegex(rx, rb"^EHLO \S+\r\nHELO \S+\r\nMAIL FROM:")
        # no extension may be used after HELO: no SIZE=, BODY=, SMTPUTF8
        self.assertIn(b"MAIL FROM:<app@local.test>\r\nRCPT TO:<rcpt@dest.test>\r\n", rx)
        self.assertNotIn(b"SIZE=", rx)
        self.assertNotIn(b"BODY=", rx)
        self.assertIn(b"b4 helo body\r\n.\r\n", rx)
        self.assertNotIn(b"STARTTLS", rx)
        harness.wait_for(lambda: qid not in d.queued(), 10, "delivered message removed")

    def test_b4_ehlo_refused_tls_required_defers_474(self):
        script = lines(GREETING, "expect EHLO", "sendline 502 5.5.1 EHLO not implemented",
                       "wait-close 5")
        fk, d = self.start(script)
        qid = d.send_ok()
        dsn, why = self.wait_rcpt(d, qid, "deferred")
        self.assertEqual(dsn, "4.7.4", why)
        self.wait_fake_done(fk)
        rx = fk.received()
        self.assertNotIn(b"MAIL", rx, "MAIL sent without the required TLS")
        self.assertNotIn(b"AUTH", rx, "AUTH sent without TLS")
        self.assert_still_queued(d, qid)

    # B6 -------------------------------------------------------------
    def test_b6_all_recipients_refused_under_pipelining(self):
        script = tls_auth_prefix(EHLO_AUTH_PIPELINING) + lines(
            "expect MAIL FROM:", "expect RCPT TO:", "expect RCPT TO:", "expect DATA",
            "send 250 2.1.0 ok\\r\\n550 5.1.1 no such user r1\\r\\n"
            "550 5.1.1 no such user r2\\r\\n554 5.5.1 No valid recipients\\r\\n",
            "wait-close 5")
        fk, d = self.start(script)
        rcpts = ["r1@dest.test", "r2@dest.test"]
        qid = d.send_ok(rcpts=rcpts, data=make_message("B6-BODY-MARKER\r\n"))
        for r in rcpts:
            dsn, why = self.wait_rcpt(d, qid, "bounced", rcpt=r)
            self.assertEqual(dsn, "5.1.1", why)
            self.assertIn("550", why)
        self.wait_fake_done(fk)
        rx = fk.received()
        self.assertIn(b"RCPT TO:<r1@dest.test>\r\nRCPT TO:<r2@dest.test>\r\nDATA\r\n", rx)
        after = rx.split(b"DATA\r\n", 1)[1]
        self.assertNotIn(b"B6-BODY-MARKER", rx, "body sent without a 354")
        self.assertNotIn(b"\r\n.\r\n", rx, "end-of-data sent without a 354")
        self.assertNotIn(b"Subject:", after)
        self.assertRegex(after, rb"^(RSET|QUIT)\r\n", "no RSET/QUIT after the refusal")
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        harness.wait_for(lambda: qid not in d.queued(), 10, "bounced message removed")

    # B8 -------------------------------------------------------------
    def test_b8_no_reply_to_final_dot(self):
        script = tls_auth_prefix() + lines(
            "expect MAIL FROM:", "sendline 250 2.1.0 ok", "expect RCPT TO:",
            "sendline 250 2.1.5 ok", "expect DATA", "sendline 354 go ahead",
            "read-data", "wait-close 20")
        fk, d = self.start(script)
        data = make_message("B8 body\r\n")
        qid = d.send_ok(data=data)
        harness.wait_for(lambda: b"B8 body\r\n.\r\n" in fk.received(), 10, "the final dot")
        t0 = time.monotonic()
        dsn, why = self.wait_rcpt(d, qid, "deferred", timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, CLIENT_TIMEOUT * 0.75)
        self.assertLess(elapsed, CLIENT_TIMEOUT + 3.0)
        self.assertTrue(dsn.startswith("4."), dsn)
        d.wait_log(r"possible duplicate", 5)
        self.assertEqual(d.deliveries(status="sent", qid=qid), [])
        self.assertIn(qid, d.queued())
        # the next attempt goes to a real smarthost on the same port
        port = fk.port
        self.wait_fake_done(fk)
        fk.stop()
        sh = self.smarthost(port=port)
        msgs = sh.wait_messages(1, 20)
        self.wait_rcpt(d, qid, "sent", timeout=10)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].body(), data)

    # B15 ------------------------------------------------------------
    def test_b15_greylisted_at_mail_backs_off(self):
        script = tls_auth_prefix() + lines("expect MAIL FROM:",
                                           "sendline 451 4.7.1 greylisted, try later") \
            + quit_tail()
        fk, d = self.start(script, connections=0,
                           settings={"spool": {"retry_min": "2s", "retry_max": "4s"}})
        qid = d.send_ok()
        times = []
        window = 5.5
        end = None
        deadline = time.monotonic() + 10 + window
        for _ in range(2000):
            now = time.monotonic()
            n = self.connects(fk)
            while len(times) < n:
                times.append(now)
            if times and end is None:
                end = times[0] + window
            if (end is not None and now >= end) or now >= deadline:
                break
            time.sleep(0.02)
        self.assertTrue(times, "no connection at all")
        in_window = [t for t in times if t <= times[0] + window]
        gaps = [b - a for a, b in zip(in_window, in_window[1:])]
        dsn, why = self.wait_rcpt(d, qid, "deferred")
        self.assertEqual(dsn, "4.7.1", why)
        self.assertGreaterEqual(len(in_window), 2, "no retry within %.1fs" % window)
        self.assertLessEqual(len(in_window), 3,
                             "tight retry loop: %d connections in %.1fs" % (
                                 len(in_window), window))
        self.assertGreaterEqual(min(gaps), 1.6,
                                "retry sooner than retry_min=2s: gaps %r" % gaps)
        self.assertEqual(d.deliveries(status="bounced", qid=qid), [])
        self.assertIn(qid, d.queued())

    # B16 ------------------------------------------------------------
    def test_b16_three_messages_one_session(self):
        port = harness.free_port()
        # queued while the smarthost is down; retry_min 3s gives time to bring it up
        d = self.outboxd(relay=[port], env=dict(TIMEOUT_ENV),
                         settings={"spool": {"retry_min": "3s", "retry_max": "3s"}})
        qids = {}
        for n in (1, 2, 3):
            # null sender: a bounce makes no DSN that would add a transaction
            qids[n] = d.send_ok(mail_from="", data=make_message(
                "B16 message %d\r\n" % n, sender="app@local.test"))
        script = tls_auth_prefix() + one_transaction("250 2.0.0 ok first") + \
            one_transaction("554 5.7.1 second message rejected") + \
            lines("expect RSET", "sendline 250 2.0.0 ok") + \
            one_transaction("250 2.0.0 ok third") + quit_tail()
        fk = self.fake(script, connections=0, port=port)
        for n in (1, 2, 3):
            self.wait_rcpt(d, qids[n], "(?:sent|bounced)", timeout=20)
        time.sleep(0.5)
        rx = fk.received()
        sessions = self.connects(fk)
        order = [int(m) for m in re.findall(rb"B16 message (\d)\r\n\.\r\n", rx)]
        self.assertEqual(sessions, 1, "%d TCP sessions for 3 queued messages "
                         "(transactions in order %r)" % (sessions, order))
        self.assertEqual(rx.count(b"MAIL FROM:"), 3)
        self.assertEqual(sorted(order), [1, 2, 3])
        first, second, third = order
        self.assertEqual(len(d.deliveries(status="sent", qid=qids[first])), 1)
        self.assertEqual(len(d.deliveries(status="sent", qid=qids[third])), 1)
        bounced = d.deliveries(status="bounced", qid=qids[second])
        self.assertEqual(len(bounced), 1)
        self.assertIn("554", bounced[0]["text"])
        self.assertEqual(d.deliveries(status="sent", qid=qids[second]), [])
        harness.wait_for(lambda: not d.queued(), 10, "all three removed from the queue")

    # F3 -------------------------------------------------------------
    F3_EHLO1 = ("send 250-fake.test\\r\\n250-STARTTLS\\r\\n250-SIZE 10\\r\\n"
                "250 AUTH PLAIN LOGIN\\r\\n")
    F3_EHLO2 = "send 250-fake.test\\r\\n250 AUTH XOAUTH2\\r\\n"

    def f3_prefix(self):
        return lines(GREETING, "expect EHLO", self.F3_EHLO1, "expect STARTTLS",
                     "sendline 220 2.0.0 go ahead", "starttls", "expect EHLO",
                     self.F3_EHLO2)

    def test_f3_caps_reset_no_size_limit_after_tls(self):
        script = self.f3_prefix() + one_transaction() + quit_tail()
        fk, d = self.start(script, user=None)
        data = make_message("f" * 5000 + "\r\n")
        qid = d.send_ok(data=data)
        self.wait_rcpt(d, qid, "sent")
        self.wait_fake_done(fk)
        rx = fk.received()
        self.assertEqual(rx.count(b"EHLO"), 2)
        self.assertIn(b"MAIL FROM:<app@local.test>", rx, "SIZE 10 from before TLS applied")
        self.assertNotIn(b"SIZE=", rx, "SIZE= sent though the post-TLS EHLO has no SIZE")
        self.assertNotIn(b"AUTH", rx)

    def test_f3_caps_reset_no_pre_tls_auth_mechanisms(self):
        script = self.f3_prefix() + lines("read-line", "sendline 221 2.0.0 bye",
                                          "wait-close 5")
        fk, d = self.start(script)
        qid = d.send_ok(data=make_message("g" * 5000 + "\r\n"))
        dsn, why = self.wait_rcpt(d, qid, "deferred")
        self.assertTrue(dsn.startswith("4."), dsn)
        self.assertRegex(why, r"(?i)mechanism")
        self.assertNotIn("5.3.4", why)
        self.wait_fake_done(fk)
        rx = fk.received()
        self.assertEqual(rx.count(b"EHLO"), 2, "did not reach the post-TLS EHLO: %r" % rx)
        self.assertNotIn(b"AUTH", rx, "AUTH sent with a mechanism offered only before TLS")
        self.assertNotIn(b"MAIL", rx, "MAIL sent without the required AUTH")
        self.assert_still_queued(d, qid)

    # F5 -------------------------------------------------------------
    def test_f5a_starttls_refused_454(self):
        script = up_to_starttls() + lines("sendline 454 4.7.0 TLS not available",
                                          "wait-close 5")
        fk, d = self.start(script)
        qid = d.send_ok()
        dsn, why = self.wait_rcpt(d, qid, "deferred")
        self.assertEqual(dsn, "4.7.5", why)
        self.assertIn("TLS", why)
        self.wait_fake_done(fk)
        rx = fk.received()
        after = rx.split(b"STARTTLS\r\n", 1)[1]
        self.assertNotIn(b"MAIL", rx, "MAIL in plaintext after a refused STARTTLS")
        self.assertNotIn(b"AUTH", rx, "AUTH in plaintext after a refused STARTTLS")
        self.assertNotIn(b"EHLO", after)
        self.assert_still_queued(d, qid)

    def test_f5b_plaintext_junk_instead_of_server_hello(self):
        script = up_to_starttls() + lines(
            "sendline 220 2.0.0 go ahead",
            "read 5",  # the ClientHello record header: the client is in TLS now
            "send 250 this is not a ServerHello at all\\r\\n" + "J" * 300 + "\\r\\n",
            "wait-close 5")
        fk, d = self.start(script)
        qid = d.send_ok()
        dsn, why = self.wait_rcpt(d, qid, "deferred")
        self.assertEqual(dsn, "4.7.5", why)
        self.assertRegex(why, r"(?i)handshake")
        self.wait_fake_done(fk)
        rx = fk.received()
        after = rx.split(b"STARTTLS\r\n", 1)[1]
        self.assertEqual(after[:1], b"\x16", "no TLS record after the 220: %r" % after[:20])
        for word in (b"EHLO", b"MAIL", b"AUTH", b"QUIT"):
            self.assertNotIn(word, after, "%s in plaintext after a failed handshake" % word)
        self.assert_still_queued(d, qid)
        self.assertTrue(d.alive())
        self.assertEqual(d.send().code, 250, "daemon not taking mail after the failure")

    # F12 ------------------------------------------------------------
    def test_f12_handshake_stall_does_not_block(self):
        script = up_to_starttls() + lines("sendline 220 2.0.0 go ahead", "wait-close 20")
        fk, d = self.start(script)
        qid = d.send_ok()
        # The handshake timer starts before the ClientHello is seen here.
        t_start = time.monotonic()
        harness.wait_for(lambda: b"STARTTLS\r\n\x16" in fk.received(), 10,
                         "the ClientHello")
        t0 = time.monotonic()
        res = d.send(timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(res.code, 250, res)
        self.assertLess(took, 1.5, "the listener stalled with the handshake (%.2fs)" % took)
        self.assertEqual(d.deliveries(qid=qid), [], "first message finished before the stall")
        dsn, why = self.wait_rcpt(d, qid, "deferred", timeout=10)
        t_end = time.monotonic()
        self.assertTrue(dsn.startswith("4."), dsn)
        # Not before the timeout (it began after t_start), and not much after
        # it (it began before t0).
        self.assertGreaterEqual(t_end - t_start, CLIENT_TIMEOUT * 0.75)
        self.assertLess(t_end - t0, CLIENT_TIMEOUT + 3.0)
        self.assertRegex(why, r"(?i)tls|handshake")
        self.assertIn(qid, d.queued())
        self.assertIn(res.queue_id, d.queued())

    # A8 -------------------------------------------------------------
    def test_a8_million_byte_line_folded(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], env=dict(TIMEOUT_ENV))
        filler = b"".join(b"filler line %05d of the message\r\n" % i for i in range(3200))
        long_line = b"".join(b"%08d" % i for i in range(125000))  # 1,000,000 octets
        self.assertEqual(len(long_line), 1000000)
        data = make_message(filler + long_line + b"\r\n" + filler)
        self.assertGreater(len(data), 1150000)
        self.assertNotIn(b"\r\n ", data)
        qid = d.send_ok(data=data)
        msgs = sh.wait_messages(1, 30)
        self.wait_rcpt(d, qid, "sent")
        wire = b"".join(sh.wire_bytes().values())
        self.assertIn(b"00124999", wire)
        longest = max(len(x) + 2 for x in wire.split(b"\r\n"))
        self.assertLessEqual(longest, 1000, "a wire line of %d octets incl. CRLF" % longest)
        self.assertEqual(wire.count(b"\n"), wire.count(b"\r\n"), "bare LF on the wire")
        body = msgs[0].body()
        self.assertGreater(body.count(b"\r\n "), 1000000 // 998 - 1, "long line not folded")
        self.assertTrue(body.replace(b"\r\n ", b"") == data,
                        "unfolded content differs from the original")

    # A16 ------------------------------------------------------------
    def ehlo(self, c):
        self.assertEqual(c.read_reply()[0], 220)
        code, text = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertIn("PIPELINING", text)

    def test_a16a_pipelined_group_in_order(self):
        d = self.outboxd(relay=[harness.free_port()])
        c = RawClient(d.port)
        self.ehlo(c)
        c.send(b"MAIL FROM:<app@local.test>\r\nRCPT TO:<p1@dest.test>\r\n"
               b"RCPT TO:<p2@dest.test>\r\nDATA\r\n")
        codes = [c.read_reply(5)[0] for _ in range(4)]
        self.assertEqual(codes, [250, 250, 250, 354])
        c.send(make_message("pipelined\r\n") + b".\r\n")
        code, text = c.read_reply(10)
        self.assertEqual(code, 250, text)
        qid = harness.queue_id_of("\n".join(text))
        self.assertIsNotNone(qid)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()
        d.wait_log(r"%s: from=<app@local\.test>, size=\d+, nrcpt=2" % qid, 5)

    def test_a16c_quit_inside_pipelined_group(self):
        d = self.outboxd(relay=[harness.free_port()])
        c = RawClient(d.port)
        self.ehlo(c)
        c.send(b"MAIL FROM:<app@local.test>\r\nRCPT TO:<q1@dest.test>\r\nQUIT\r\n"
               b"MAIL FROM:<late@local.test>\r\nRCPT TO:<q2@dest.test>\r\nDATA\r\n"
               + make_message("after quit\r\n") + b".\r\n")
        self.assertEqual(c.read_reply(5)[0], 250)
        self.assertEqual(c.read_reply(5)[0], 250)
        code, text = c.read_reply(5)
        self.assertEqual(code, 221, text)
        self.assertTrue(c.wait_closed(5), "connection not closed after 221")
        self.assertEqual(c.buf, b"", "replies after the 221: %r" % c.buf[:200])
        c.close()
        time.sleep(0.5)
        self.assertEqual(d.queued(), [], "a message was queued from commands after QUIT")
        self.assertNotIn("late@local.test", d.log_text())


if __name__ == "__main__":
    harness.main()
