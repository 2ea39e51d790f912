#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""RELIABILITY.md cases over the listener socket: A1 smuggling (both
bare_newline modes), A7c, A12, A19, A22, E1, E3, E6, D7, D10, D11."""
import os
import re
import signal
import time

import harness
from harness import open_transaction
from harness import OutboxTestCase, RawClient, make_message, free_port

SMUGGLE = (b"Subject: t\r\n\r\nhello\n.\nMAIL FROM:<ceo@bank.test>\r\n"
           b"RCPT TO:<victim@dest.test>\r\nDATA\r\nSubject: forged\r\n\r\nx\r\n.\r\n")


class Listener(OutboxTestCase):

    # ------------------------------------------------------------ A1
    def test_a1_smuggling_normalize(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])  # bare_newline = normalize is the default
        c = RawClient(d.port)
        open_transaction(c)
        c.send(SMUGGLE)
        code, text = c.read_reply()
        self.assertEqual(code, 250, text)
        # exactly one 250: QUIT is answered next, nothing else is pending
        code, text = c.cmd("QUIT")
        self.assertEqual(code, 221, "a second reply was pending: %r" % text)
        c.close()
        msgs = sh.wait_messages(1, 15)
        time.sleep(1.5)
        msgs = sh.messages()
        self.assertEqual(len(msgs), 1, "smuggling created a second message")
        m = msgs[0]
        self.assertEqual(m.mail_from, "app@local.test")
        self.assertEqual(m.rcpt_tos, ["rcpt@dest.test"])
        self.assertIn(b"MAIL FROM:<ceo@bank.test>", m.data)
        self.assertIn(b"Subject: forged", m.data)
        self.assertIsNone(re.search(rb"(?<!\r)\n", m.data), "bare LF forwarded upstream")
        self.assertIsNone(re.search(rb"\r(?!\n)", m.data), "bare CR forwarded upstream")
        wire = b"".join(sh.wire_bytes().values())
        self.assertEqual(wire.count(b"\r\n.\r\n"), 1, "end-of-data seen more than once")
        self.assertNotIn(b"MAIL FROM:<ceo@bank.test>\r\nRCPT", wire.split(b"DATA\r\n")[0])
        for _s, _t, line in sh.commands():
            self.assertNotIn("ceo@bank.test", line)

    def test_a1_smuggling_strict(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"bare_newline": "strict"}})
        c = RawClient(d.port)
        open_transaction(c)
        c.send(SMUGGLE)
        code, lines = c.read_reply()
        text = "\n".join(lines)
        self.assertIn(code, (550, 521), text)
        self.assertIn("5.5.2", text)
        # nothing more: the smuggled DATA never got a 250
        code2, text2 = c.cmd("QUIT") if not c.eof else (None, "")
        self.assertIn(code2, (221, None), text2)
        c.close()
        time.sleep(1.5)
        self.assertEqual(d.queued(), [])
        self.assertEqual(sh.messages(), [])

    # ------------------------------------------------------------ A7c
    def test_a7c_100000_byte_line(self):
        d = self.outboxd(relay=[free_port()])
        c = RawClient(d.port)
        self.assertEqual(c.read_reply()[0], 220)
        payload = b"MAIL FROM:<" + b"a" * 99980 + b">"
        reply = None
        sent = 0
        # send in chunks and watch for the reply, so an early close is seen
        for off in range(0, len(payload), 4096):
            try:
                c.send(payload[off:off + 4096])
                sent += 4096
            except OSError:
                break
            c.sock.setblocking(False)
            try:
                chunk = c.sock.recv(65536)
                c.buf += chunk
                if not chunk:
                    c.eof = True
            except BlockingIOError:
                pass
            except OSError:
                c.eof = True
            c.sock.setblocking(True)
            if b"\r\n" in c.buf or c.eof:
                break
        code, text = c.read_reply(5)
        reply = "\n".join(text)
        self.assertIn(code, (500, 421), reply)
        if code == 500:
            self.assertIn("5.5.2", reply)
        self.assertTrue(c.wait_closed(5), "session not ended after an over-long line")
        c.close()
        # the daemon is still fine
        c2 = RawClient(d.port)
        self.assertEqual(c2.read_reply()[0], 220)
        self.assertEqual(c2.cmd("QUIT")[0], 221)
        c2.close()

    # ------------------------------------------------------------ A12
    def test_a12_1001_recipients(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"max_recipients": "1000"}})
        c = RawClient(d.port, timeout=30)
        self.assertEqual(c.read_reply()[0], 220)
        self.assertEqual(c.cmd("EHLO app.test")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<app@local.test>")[0], 250)
        rcpts = ["u%04d@dest.test" % i for i in range(1001)]
        # pipelined in groups of 100 (RFC 2920), replies read in order
        codes = []
        for g in range(0, 1001, 100):
            group = rcpts[g:g + 100]
            c.send("".join("RCPT TO:<%s>\r\n" % r for r in group))
            for _ in group:
                code, lines = c.read_reply(15)
                codes.append((code, lines[-1] if lines else ""))
        self.assertTrue(all(code == 250 for code, _ in codes[:1000]),
                        [x for x in codes[:1000] if x[0] != 250][:3])
        self.assertEqual(codes[1000][0], 452, codes[1000])
        self.assertIn("4.5.3", codes[1000][1])
        code, text = c.cmd("DATA")
        self.assertEqual(code, 354, text)
        c.send(make_message("to 1000\r\n") + b".\r\n")
        code, lines = c.read_reply(30)
        self.assertEqual(code, 250, lines)
        c.cmd("QUIT")
        c.close()
        harness.wait_for(lambda: sum(len(m.rcpt_tos) for m in sh.messages()) >= 1000, 30,
                         "1000 recipients delivered")
        time.sleep(1)
        got = [r for m in sh.messages() for r in m.rcpt_tos]
        self.assertEqual(sorted(got), rcpts[:1000])

    # ------------------------------------------------------------ A19
    def test_a19_error_flood(self):
        d = self.outboxd(relay=[free_port()])
        c = RawClient(d.port)
        self.assertEqual(c.read_reply()[0], 220)
        codes = []
        for _ in range(25):
            if c.eof:
                break
            try:
                code, text = c.cmd("XYZZY")
            except OSError:
                break
            if code is None:
                break
            codes.append((code, text))
            if code == 421:
                break
        self.assertGreaterEqual(len(codes), 2, "session ended on the first unknown command")
        errors = [x for x in codes if x[0] == 500]
        self.assertGreaterEqual(len(errors), 19, codes)
        self.assertLessEqual(len(errors), 20, codes)
        self.assertTrue(all("5.5.1" in t for _, t in errors), errors[:2])
        self.assertEqual(codes[-1][0], 421, codes[-3:])
        self.assertIn("4.7.0", codes[-1][1])
        self.assertTrue(c.wait_closed(5))
        c.close()

    # ------------------------------------------------------------ A22
    def test_a22_client_not_allowed(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"allow": "10.0.0.0/8"}})
        c = RawClient(d.port)
        code, lines = c.read_reply()
        text = "\n".join(lines)
        refused = None
        if code == 554:
            refused = text
        else:
            self.assertEqual(code, 220, text)
            self.assertEqual(c.cmd("EHLO app.test")[0], 250)
            code, text = c.cmd("MAIL FROM:<app@local.test>")
            if code != 250:
                refused = text
            else:
                code, text = c.cmd("RCPT TO:<rcpt@dest.test>")
                refused = text if code != 250 else None
        c.close()
        self.assertIsNotNone(refused, "a client outside allow could relay")
        self.assertRegex(refused, r"^55[04][ -]5\.7\.1")
        time.sleep(1)
        self.assertEqual(d.queued(), [])
        self.assertEqual(sh.messages(), [])

    # ------------------------------------------------------------ E1
    def test_e1_connection_flood(self):
        d = self.outboxd(relay=[free_port()], settings={"listen": {"max_connections": "5"}})
        conns, greetings = [], []
        try:
            for _ in range(20):
                c = RawClient(d.port)
                conns.append(c)
                code, lines = c.read_reply(5)
                greetings.append((code, lines[-1] if lines else ""))
            ok = [g for g in greetings if g[0] == 220]
            busy = [g for g in greetings if g[0] == 421]
            self.assertEqual(len(ok), 5, greetings)
            self.assertEqual(len(busy), 15, greetings)
            self.assertTrue(all("4.7.0" in t for _, t in busy), busy[:2])
            for c, g in zip(conns, greetings):
                if g[0] == 421:
                    self.assertTrue(c.wait_closed(3), "refused connection left open")
            # running sessions still work
            first = [c for c, g in zip(conns, greetings) if g[0] == 220][0]
            self.assertEqual(first.cmd("NOOP")[0], 250)
        finally:
            for c in conns:
                c.close()

        # back to the baseline once the clients left
        def fresh_ok():
            c = RawClient(d.port)
            try:
                return c.read_reply(5)[0] == 220
            finally:
                c.close()
        harness.wait_for(fresh_ok, 5, "a new connection accepted after the flood")

    # ------------------------------------------------------------ E3
    def test_e3_slowloris(self):
        d = self.outboxd(relay=[free_port()], settings={"listen": {"timeout": "2s"}})
        c = RawClient(d.port)
        self.assertEqual(c.read_reply()[0], 220)
        self.assertEqual(c.cmd("EHLO app.test")[0], 250)
        t0 = time.monotonic()
        reply = None
        for b in b"MAIL FROM:<a@b.test>\r\n":
            try:
                c.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.5)  # well under the 2 s timeout per byte
            c.sock.setblocking(False)
            try:
                chunk = c.sock.recv(4096)
                c.buf += chunk
                if not chunk:
                    c.eof = True
            except BlockingIOError:
                pass
            except OSError:
                c.eof = True
            c.sock.setblocking(True)
            if b"\r\n" in c.buf or c.eof:
                break
            if time.monotonic() - t0 > 9:
                break
        elapsed = time.monotonic() - t0
        code, lines = c.read_reply(3)
        reply = "\n".join(lines)
        self.assertEqual(code, 421, "no timeout reply: %r after %.1fs" % (reply, elapsed))
        self.assertIn("4.4.2", reply)
        self.assertLess(elapsed, 6.0, "the deadline was reset by each byte")
        self.assertTrue(c.wait_closed(3))
        c.close()

    # ------------------------------------------------------------ E6
    def test_e6_size(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"max_message_size": "1M"}})
        c = RawClient(d.port)
        self.assertEqual(c.read_reply()[0], 220)
        code, text = c.cmd("EHLO app.test")
        self.assertRegex(text, r"(?m)^250[ -]SIZE 1048576", "SIZE not advertised")
        code, text = c.cmd("MAIL FROM:<a@b.test> SIZE=104857600")
        self.assertEqual(code, 552, text)
        self.assertIn("5.3.4", text)
        # (b) no SIZE, then a 2 MB body: read to the end, then 552
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@dest.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(make_message(b"x" * 70 + b"\r\n") + (b"y" * 998 + b"\r\n") * 2100 + b".\r\n")
        code, lines = c.read_reply(20)
        self.assertEqual(code, 552, lines)
        self.assertIn("5.3.4", lines[-1])
        # still in sync: the session goes on
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.cmd("QUIT")
        c.close()
        time.sleep(1)
        self.assertEqual(d.queued(), [])
        self.assertEqual(sh.messages(), [])

    # ------------------------------------------------------------ D11
    def test_d11_second_daemon_locked(self):
        sh = self.smarthost()
        d1 = self.outboxd(relay=[sh.port])
        d2 = self.outboxd(start=False, relay=[sh.port], spool=d1.spool)
        rc, log = d2.run_to_exit(timeout=10)
        self.assertNotEqual(rc, 0)
        self.assertRegex(log, r"(?i)locked")
        self.assertIn(str(d1.proc.pid), log, "lock message does not name the owner PID")
        # the first one is unaffected
        d1.send_ok("app@local.test", ["rcpt@dest.test"], make_message("still here\r\n"))
        sh.wait_messages(1, 15)

    # ------------------------------------------------------------ D7
    def test_d7_corrupt_entries_quarantined(self):
        port = free_port()
        d = self.outboxd(relay=[port])
        good = make_message("the good one\r\n")
        qid = d.send_ok("app@local.test", ["rcpt@dest.test"], good)
        d.stop()
        env = os.path.join(d.spool, "env")
        msg = os.path.join(d.spool, "msg")
        self.assertEqual(os.listdir(env), [qid])
        with open(os.path.join(env, qid), "rb") as f:
            good_env = f.read()
        secret = os.path.join(self.tmp, "secret.txt")
        with open(secret, "wb") as f:
            f.write(b"TOP-SECRET-CONTENT-7781\r\n")
        planted = {
            "DEADBEEF00000001": os.urandom(300),                 # random bytes
            "DEADBEEF00000002": good_env[:len(good_env) // 2],   # torn envelope
            "DEADBEEF00000003": b"",                             # 0-byte file
            "DEADBEEF00000004": good_env + b"trailing junk\n",  # data after the end
        }
        for pid, content in planted.items():
            with open(os.path.join(env, pid), "wb") as f:
                f.write(content)
            with open(os.path.join(msg, pid), "wb") as f:
                f.write(good)
        os.symlink(secret, os.path.join(env, "DEADBEEF00000005"))
        planted["DEADBEEF00000005"] = None
        sh = self.smarthost(port=port)
        d.start()
        msgs = sh.wait_messages(1, 20)
        time.sleep(1.5)
        msgs = sh.messages()
        self.assertEqual(len(msgs), 1, "only the good message may be delivered: %r" % msgs)
        self.assertEqual(msgs[0].body(), good)
        for m in msgs:
            self.assertNotIn(b"TOP-SECRET", m.data)
        left = set(os.listdir(env))
        for pid in planted:
            self.assertNotIn(pid, left, "corrupt entry %s still in env/" % pid)
        corrupt = " ".join(os.listdir(os.path.join(d.spool, "corrupt")))
        for pid in planted:
            self.assertIn(pid, corrupt, "%s not moved to corrupt/" % pid)
            self.assertRegex(d.log_text(), pid, "no log line for %s" % pid)
        with open(secret, "rb") as f:
            self.assertEqual(f.read(), b"TOP-SECRET-CONTENT-7781\r\n", "symlink target touched")

    # ------------------------------------------------------------ D10
    def test_d10_sigterm_keeps_queue(self):
        port = free_port()
        d = self.outboxd(relay=[port])
        ids = [d.send_ok("app@local.test", ["r%d@dest.test" % i],
                         make_message("keep %d\r\n" % i)) for i in range(3)]
        idle = RawClient(d.port)
        self.assertEqual(idle.read_reply()[0], 220)
        t0 = time.monotonic()
        rc = d.kill(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, "SIGTERM exit status")
        self.assertLess(time.monotonic() - t0, 10)
        code, text = idle.read_reply(2) if not idle.eof else (None, [])
        idle.close()
        self.assertEqual(code, 421, "idle session not told: %r" % (text,))
        self.assertIn("4.3.2", "\n".join(text))
        self.assertEqual(sorted(d.queued()), sorted(ids), "queued mail lost at SIGTERM")
        sh = self.smarthost(port=port)
        d.start()
        sh.wait_messages(3, 20)

    def test_d10_sigterm_during_data(self):
        """SIGTERM while a client is inside DATA: the session is told 421,
        the partial message is not queued, the daemon exits 0 within 10 s."""
        d = self.outboxd(relay=[free_port()])
        c = RawClient(d.port)
        open_transaction(c)
        c.send(make_message("half a message\r\n"))  # no end-of-data
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = d.kill(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, "SIGTERM exit status")
        self.assertLess(time.monotonic() - t0, 10)
        code, lines = c.read_reply(2) if not (c.eof and not c.buf) else (None, [])
        c.close()
        self.assertEqual(code, 421, "session in DATA not told: %r" % (lines,))
        self.assertEqual(d.queued(), [], "a partial message was queued")
        self.assertEqual(d.spool_entries("tmp"), [], "temporary file left behind")


if __name__ == "__main__":
    harness.main()
