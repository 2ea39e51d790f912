#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Clients that go away and a daemon killed in mixed states
(RELIABILITY.md A20, D9)."""
import fcntl
import re
import smtplib
import socket
import struct
import termios
import threading
import time

import harness
from harness import open_transaction
from harness import OutboxTestCase, RawClient, make_message
from test_faults import Strace, require_strace


def marker_of(msg):
    m = re.search(rb"X-Marker: (\S+)\r\n", msg.data)
    return m.group(1).decode() if m else None


def by_marker(*smarthosts):
    out = {}
    for sh in smarthosts:
        for m in sh.messages():
            out.setdefault(marker_of(m), []).append(m)
    return out


def unsent(sock):
    """Bytes not yet acknowledged by the peer's kernel (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                          struct.pack("i", 0)))[0]


def big_body(marker, size):
    line = ("%s " % marker + "y" * 70 + "\r\n").encode()
    return line * (size // len(line) + 1)


class Disconnects(OutboxTestCase):

    # ------------------------------------------------------------ A20 (a)
    def test_a20a_close_5mb_into_data(self):
        """The client closes TCP 5 MB into DATA: nothing queued, the
        temporary file is gone within a second, the log says so, and the
        daemon keeps serving."""
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        c = RawClient(d.port, timeout=30)
        open_transaction(c)
        c.send(make_message(big_body("A20A-PARTIAL", 5 << 20),
                            headers=["X-Marker: A20A-PARTIAL"]))
        harness.wait_for(lambda: d.spool_entries("tmp"), 5, "the queue file in tmp/")
        mark = d.mark()
        c.sock.shutdown(socket.SHUT_WR)
        c.close()
        t0 = time.monotonic()
        harness.wait_for(lambda: not d.spool_entries("tmp"), 3, "tmp/ empty after the close")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, harness.scaled(1.0),
                        "temporary file unlinked after %.2fs" % elapsed)
        d.wait_log(r"lost connection after (?i:data) from 127\.0\.0\.1", 5, since=mark)
        self.assertEqual(d.queued(), [], "a partial message was queued")
        self.assertEqual(d.spool_entries("msg"), [])
        data = make_message("after the drop\r\n", headers=["X-Marker: A20A-AFTER"])
        d.send_ok(data=data)
        msgs = sh.wait_messages(1, 20)
        time.sleep(0.5)
        self.assertEqual([marker_of(m) for m in sh.messages()], ["A20A-AFTER"])
        self.assertEqual(msgs[0].body(), data)
        self.assertFalse(re.search(r"A20A-PARTIAL.*from=|from=.*A20A-PARTIAL",
                                   d.log_text()), "partial message logged as queued")

    # ------------------------------------------------------------ A20 (b)
    def test_a20b_reset_right_after_end_of_data(self):
        """The client sends the whole message and "\\r\\n.\\r\\n", then resets
        the connection (SO_LINGER 0) without reading the reply: exactly one
        copy is queued and delivered. Small and large (multi-write) bodies."""
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        cases = {}
        for i, size in enumerate((200, 64 << 10, 600 << 10, 200, 2 << 20)):
            marker = "A20B-%d" % i
            data = make_message(big_body(marker, size), headers=["X-Marker: " + marker])
            cases[marker] = data
            c = RawClient(d.port, timeout=20)
            open_transaction(c)
            c.send(data + b".\r\n")  # data ends in CRLF: this is "\r\n.\r\n"
            # A reset throws away what is still in our send queue; wait
            # until the daemon's kernel has every byte (not the daemon).
            harness.wait_for(lambda: unsent(c.sock) == 0, 10, "send queue empty")
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST, reply never read
        harness.wait_for(lambda: all(by_marker(sh).get(m) for m in cases), 30,
                         "every reset message delivered")
        harness.wait_for(lambda: not d.queued(), 10, "empty queue")
        time.sleep(1.0)
        got = by_marker(sh)
        for marker, data in cases.items():
            self.assertEqual(len(got.get(marker, [])), 1, "%s: copies" % marker)
            self.assertEqual(got[marker][0].body(), data, "%s: content" % marker)
        self.assertEqual(sorted(k for k in got), sorted(cases), "unexpected messages")
        self.assertEqual(d.spool_entries("tmp"), [])

    # ------------------------------------------------------------ A20 (c)
    def test_a20c_end_of_input_during_the_commit(self):
        """The session reads on while a commit is in flight (up to one
        read's worth): a client that sends the final dot, maybe QUIT, and
        then shuts its side down has that end of input read during the
        commit. It must still get the 250 (and the 221), and the message
        is queued once. Every fsync is slowed by 300 ms (strace), so the
        FIN is in before the commit ends."""
        require_strace(self)
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        st = Strace(self.tmp, [d.proc.pid], ["trace=fsync,fdatasync",
                                             "inject=fsync,fdatasync:delay_exit=300000"],
                    follow=True)
        try:
            cases = {}
            for marker, tail in (("A20C-QUIT", b"QUIT\r\n"), ("A20C-EOF", b"")):
                data = make_message("one line\r\n", headers=["X-Marker: " + marker])
                cases[marker] = data
                c = RawClient(d.port, timeout=20)
                open_transaction(c)
                mark = d.mark()
                c.send(data + b".\r\n" + tail)
                c.sock.shutdown(socket.SHUT_WR)
                code, text = c.read_reply()
                self.assertEqual(code, 250, "%s: end of data got %r %s" % (marker, code, text))
                code, text = c.read_reply()
                if tail:
                    self.assertEqual(code, 221, "%s: QUIT got %r %s" % (marker, code, text))
                    code, text = c.read_reply()
                self.assertIsNone(code, "%s: more after the end: %r %s" % (marker, code, text))
                if not tail:
                    d.wait_log(r"lost connection after \S+ from 127\.0\.0\.1", 5, since=mark)
                c.close()
        finally:
            st.detach()
        harness.wait_for(lambda: all(by_marker(sh).get(m) for m in cases), 30,
                         "both messages delivered")
        time.sleep(0.5)
        got = by_marker(sh)
        for marker, data in cases.items():
            self.assertEqual(len(got[marker]), 1, "%s: copies" % marker)
            self.assertEqual(got[marker][0].body(), data, "%s: content" % marker)

    # ------------------------------------------------------------ D9
    def test_d9_kill9_in_mixed_states(self):
        """SIGKILL with messages queued, in flight to a slow upstream (2 s
        before its reply to end-of-data), deferred (450 to RCPT) and one
        still being received; restart against a healthy upstream: every
        250-acknowledged message is delivered at least once, complete; the
        partial one never; nothing stuck; tmp/ empty."""
        n_msgs, n_threads = harness.sized(200, 40), 4
        sh1 = self.smarthost(extra=["--data-delay", "2"],
                             rcpt_reply=["defer*@dest.test=450 4.2.1 try again later"])
        d = self.outboxd(relay=[sh1.port])
        accepted, errors, lock = {}, [], threading.Lock()

        def client(t):
            try:
                with smtplib.SMTP("127.0.0.1", d.port, local_hostname="c.test",
                                  timeout=60) as s:
                    for i in range(t, n_msgs, n_threads):
                        marker = "D9-%03d" % i
                        rcpt = ("defer%d@dest.test" if i % 5 == 0 else "r%d@dest.test") % i
                        data = make_message("body %s\r\n" % marker, to=rcpt,
                                            headers=["X-Marker: " + marker])
                        s.sendmail("app@local.test", [rcpt], data)
                        with lock:
                            accepted[marker] = (rcpt, data)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append("thread %d: %r" % (t, e))

        threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        self.assertEqual(errors, [])
        self.assertEqual(len(accepted), n_msgs)
        harness.wait_for(lambda: d.deliveries(status="deferred"), 20, "a deferred message")
        harness.wait_for(lambda: d.deliveries(status="sent"), 20, "a delivered message")
        # One session inside DATA at the moment of the kill.
        c = RawClient(d.port, timeout=20)
        open_transaction(c)
        c.send(make_message(big_body("D9-PARTIAL", 300 << 10),
                            headers=["X-Marker: D9-PARTIAL"]))
        time.sleep(0.3)
        queued_at_kill = len(d.queued())
        self.assertGreater(queued_at_kill, n_msgs // 4,
                           "too few messages still queued at the kill")
        d.kill()
        sent_logged = len(d.deliveries(status="sent"))
        deferred_logged = len({x["id"] for x in d.deliveries(status="deferred")})
        upstream_data = sum(1 for _s, _t, line in sh1.commands() if line.upper() == "DATA")
        # A duplicate needs an upstream DATA whose message was not yet
        # removed from the spool (its 'D' record written, then "ID:
        # removed" logged): a 250 the daemon never saw, or one it saw and
        # logged as sent just before the kill, its removal still queued.
        removed_logged = len(set(re.findall(r"(?m)\b(%s): removed$" % harness.QID,
                                            d.log_text(0))))
        in_flight = upstream_data - removed_logged
        c.close()
        sh1.stop()
        sh2 = self.smarthost()
        d.relay = [sh2.port]
        t0 = time.monotonic()
        d.start()
        harness.wait_for(lambda: set(accepted) <= set(by_marker(sh1, sh2)), 60,
                         "every accepted message delivered")
        harness.wait_for(lambda: not d.queued() and not d.spool_entries("msg"), 20,
                         "empty queue")
        drain = time.monotonic() - t0
        time.sleep(0.5)
        got = by_marker(sh1, sh2)
        self.assertNotIn("D9-PARTIAL", got, "the partial message was delivered")
        self.assertEqual(set(got), set(accepted), "unexpected messages")
        for marker, (rcpt, data) in accepted.items():
            for m in got[marker]:
                self.assertEqual(m.body(), data, "%s: content" % marker)
                self.assertEqual(m.rcpt_tos, [rcpt], "%s: recipients" % marker)
        first, second = by_marker(sh1), by_marker(sh2)
        for marker in accepted:
            self.assertLessEqual(len(first.get(marker, [])), 1, marker)
            self.assertLessEqual(len(second.get(marker, [])), 1, marker)
        dups = sum(len(v) - 1 for v in got.values())
        self.assertLessEqual(dups, in_flight, "duplicates beyond the in-flight window")
        # Each message is logged sent once for its last copy; a duplicate
        # adds a line only if the daemon saw the first copy's 250 before the
        # kill (a DATA in flight at the kill was delivered but never logged).
        sent_lines = len(d.deliveries(status="sent"))
        self.assertGreaterEqual(sent_lines, n_msgs, "a delivery not logged as sent")
        self.assertLessEqual(sent_lines, n_msgs + dups, "sent logged without a delivery")
        self.assertEqual(d.spool_entries("tmp"), [], "orphans in tmp/")
        self.assertEqual(d.spool_entries("corrupt"), [], "entries quarantined")
        print("\n  D9: %d queued at kill (%d deferred), %d delivered, %d DATA upstream not yet removed, "
              "%d duplicates, drain %.1fs" % (queued_at_kill, deferred_logged, sent_logged,
                                              in_flight, dups, drain))


if __name__ == "__main__":
    harness.main()
