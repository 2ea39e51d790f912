#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""RELIABILITY.md (E) resource limits at their catalogue scale, and two
bombs: E1 (2,000 connections, max_connections 100), E2 (RLIMIT_NOFILE 64,
200 connections), E4 (slow DATA), E5 (slow reader, 100,000 pipelined NOOPs),
E6 (b) (30 MB body over a 2 MB limit, spool growth sampled), header bombs
(one 5 MB folded field; 1,000,000 tiny fields), reply bombs from upstream
(an endless multi-line EHLO reply; one 10 MB line without CRLF).
test_listener.py keeps the small E1/E3/E6 checks. Every figure measured
(fds, RSS, CPU, spool bytes) is printed on stderr."""
import os
import resource
import selectors
import smtplib
import socket
import sys
import threading
import time

import harness
from harness import open_transaction
from harness import OutboxTestCase, RawClient, make_message, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def note(fmt, *args):
    sys.stderr.write("  [limits] " + (fmt % args) + "\n")
    sys.stderr.flush()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def status_kib(pid, key):
    """A VmXXX field of /proc/PID/status in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def nofile_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def dir_bytes(path):
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    total += e.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    except FileNotFoundError:
        pass
    return total


def served(port, what="other client"):
    """A whole transaction on a fresh connection gets 250."""
    res = harness.smtp_send(port, "app@local.test", ["rcpt@dest.test"],
                            make_message("served meanwhile\r\n"), timeout=15)
    assert res.code == 250, "%s not served: %r" % (what, res)
    return res.queue_id


def flood(port, n, deadline_s, batch=250):
    """Open n connections, read each one's first line and, for a 421, wait
    for the close. Returns (open sockets greeted 220, count 220, list of
    421 lines, count closed after 421, count of other outcomes)."""
    sel = selectors.DefaultSelector()
    state = {}
    opened = 0
    deadline = time.monotonic() + deadline_s
    ok_socks, rejected, closed_after_421, other = [], [], 0, []
    pending = 0
    for _ in range(100000):
        while opened < n and pending < batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_READ)
            state[s] = b""
            opened += 1
            pending += 1
        if pending == 0 or time.monotonic() > deadline:
            break
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            buf = state[s] + chunk
            state[s] = buf
            if buf.startswith(b"220") and b"\r\n" in buf:
                sel.unregister(s)
                ok_socks.append(s)
                pending -= 1
            elif buf.startswith(b"421") and b"\r\n" in buf and not chunk:
                sel.unregister(s)
                rejected.append(buf.split(b"\r\n")[0].decode())
                closed_after_421 += 1
                s.close()
                pending -= 1
            elif not chunk:
                sel.unregister(s)
                other.append(buf[:60])
                s.close()
                pending -= 1
    for key in list(sel.get_map().values()):
        other.append(b"(no answer) " + state[key.fileobj][:60])
        key.fileobj.close()
    sel.close()
    return ok_socks, rejected, closed_after_421, other


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return True
    if hard != resource.RLIM_INFINITY and hard < want:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return False
    return True


class Bomber(threading.Thread):
    """A one-connection upstream that answers EHLO with a bomb: 'lines'
    (endless "250-" lines) or 'line' (one huge line without CRLF). Sends
    until `limit` bytes or until the client hangs up."""

    def __init__(self, kind, limit=10 * MIB):
        super().__init__(daemon=True)
        self.kind = kind
        self.limit = limit
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(30)
        self.port = self.srv.getsockname()[1]
        self.sent = 0
        self.got_ehlo = False
        self.done = threading.Event()

    def run(self):
        try:
            conn, _ = self.srv.accept()
        except OSError:
            self.done.set()
            return
        try:
            self._serve(conn)
        finally:
            conn.close()
            self.srv.close()
            self.done.set()

    def _serve(self, conn):
        conn.settimeout(20)
        conn.sendall(b"220 bomb.test ESMTP\r\n")
        buf = b""
        for _ in range(100):
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
            if b"\r\n" in buf:
                break
        self.got_ehlo = buf.upper().startswith((b"EHLO", b"HELO"))
        block = (b"250-" + b"x" * 60 + b"\r\n") * 1024 if self.kind == "lines" \
            else b"250 " + b"y" * 65532
        conn.settimeout(10)
        for _ in range(self.limit // len(block) + 1):
            if self.sent >= self.limit:
                break
            try:
                conn.sendall(block)
            except OSError:
                return  # the client hung up: it bounded the reply
            self.sent += len(block)
        # wait for the client to give up (bounded by the timeout)
        try:
            for _ in range(100):
                if not conn.recv(4096):
                    break
        except OSError:
            pass


class Limits(OutboxTestCase):

    # ------------------------------------------------------------ E1
    def assert_rss_growth(self, kib, bound_kib, msg):
        """RSS growth bound, except under valgrind: memcheck's shadow memory,
        freed-block queue and code cache are in the same RSS, so there the
        test still drives the hostile path (memcheck checks it) but the
        bound is not asserted."""
        if harness.valgrind_dir():
            note("RSS bound not asserted under valgrind (+%.1f MiB)", kib / 1024)
            return
        self.assertLess(kib, bound_kib, msg)

    def test_e1_flood_2000_connections_limit_100(self):
        if not raise_nofile(2000 + 256):
            self.skipTest("RLIMIT_NOFILE hard limit %s < 2,256: cannot hold 2,000 "
                          "client sockets" % (resource.getrlimit(resource.RLIMIT_NOFILE),))
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"max_connections": "100"}})
        pid = d.proc.pid
        time.sleep(0.3)
        base = fd_count(pid)
        # five sessions already running, in the middle of a transaction
        running = []
        for i in range(5):
            c = RawClient(d.port, timeout=20)
            self.assertEqual(c.read_reply()[0], 220)
            self.assertEqual(c.cmd("EHLO app.test")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<app@local.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<running%d@dest.test>" % i)[0], 250)
            running.append(c)
        t0 = time.monotonic()
        ok, rejected, closed, other = flood(d.port, 1995, 40)
        took = time.monotonic() - t0
        peak = fd_count(pid)
        note("E1: 1,995 connections in %.1fs: %d x 220, %d x 421 (%d closed), %d other; "
             "daemon fds baseline %d, with 100 sessions %d", took, len(ok), len(rejected),
             closed, len(other), base, peak)
        try:
            self.assertEqual(other, [], "connections neither greeted nor refused")
            self.assertEqual(len(ok), 95, "max_connections 100 with 5 running")
            self.assertEqual(len(rejected), 1900)
            self.assertTrue(all(r.startswith("421 4.7.0") for r in rejected), rejected[:3])
            self.assertLessEqual(peak, base + 100 + 8, "more fds than sessions")
            # the running sessions complete their message
            for i, c in enumerate(running):
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send(make_message("running %d\r\n" % i))
                code, text = c.cmd(".")
                self.assertEqual(code, 250, text)
                self.assertEqual(c.cmd("QUIT")[0], 221)
            # and a flood-greeted session works too
            s = ok[0]
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"NOOP\r\n")
            self.assertTrue(s.recv(100).startswith(b"250"))
        finally:
            for s in ok:
                s.close()
            for c in running:
                c.close()
        sh.wait_messages(5, 20)
        harness.wait_for(lambda: fd_count(pid) <= base or None, 10,
                         "daemon fds back to the baseline %d" % base)
        note("E1: daemon fds after the clients left: %d (baseline %d)", fd_count(pid), base)
        served(d.port, "a new client after the flood")

    # ------------------------------------------------------------ E2
    def test_e2_nofile_64_200_connections(self):
        sh = self.smarthost(start=False, port=free_port())
        d = self.outboxd(start=False, relay=[sh.port])
        # The daemon inherits a soft limit of 64 open files from us.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            d.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        pid = d.proc.pid
        self.assertEqual(nofile_limit(pid), 64)
        # one message queued while the smarthost is down: deferred
        qid = d.send_ok(data=make_message("queued before the fd exhaustion\r\n"))
        d.wait_log(r"%s: to=.*status=deferred" % qid, 15)
        base = fd_count(pid)
        socks = []
        try:
            for _ in range(200):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", d.port))
                socks.append(s)
            time.sleep(1.5)
            held = fd_count(pid)
            c0 = cpu_seconds(pid)
            time.sleep(2.0)
            cpu = cpu_seconds(pid) - c0
            note("E2: limit 64, fds baseline %d, with 200 clients %d; daemon CPU over 2 s: "
                 "%.3f s", base, held, cpu)
            self.assertTrue(d.proc.alive(), "daemon died under fd exhaustion")
            self.assertLess(cpu, 0.5, "busy accept loop while the fds are exhausted")
            self.assertLessEqual(held, 64)
            # the queue runner still opens spool files and a socket upstream
            sh.start()
            t0 = time.monotonic()
            sh.wait_messages(1, 15)
            note("E2: queued message delivered %.1fs after the smarthost came back, "
                 "200 clients still connected", time.monotonic() - t0)
        finally:
            for s in socks:
                s.close()
        # accepting resumes
        harness.wait_for(lambda: fd_count(pid) <= base + 2 or None, 10, "fds released")
        served(d.port, "a client after the fds came back")
        sh.wait_messages(2, 15)
        self.assertTrue(d.proc.alive())

    # ------------------------------------------------------------ E4
    def test_e4_slow_data_ends_session(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"timeout": "2s"}})
        mark = d.mark() if hasattr(d, "mark") else 0
        c = RawClient(d.port)
        open_transaction(c)
        c.send(b"Subject: slow\r\n\r\n")
        t0 = time.monotonic()
        sent = 0
        for b in b"one byte per second for ever\r\n" * 2:
            if time.monotonic() - t0 > 12:
                break
            try:
                c.send(bytes([b]))
            except OSError:
                break
            sent += 1
            c.sock.settimeout(1.0)
            try:
                chunk = c.sock.recv(4096)
                c.buf += chunk
                if not chunk:
                    c.eof = True
            except (socket.timeout, TimeoutError):
                pass
            except OSError:
                c.eof = True
            if b"\r\n" in c.buf or c.eof:
                break
        elapsed = time.monotonic() - t0
        code, lines = c.read_reply(3)
        note("E4: 1 B/s body: %d bytes sent, session ended after %.1fs with %r", sent,
             elapsed, lines)
        self.assertEqual(code, 421, lines)
        self.assertIn("4.4.2", lines[-1])
        self.assertLess(elapsed, 6.0, "DATA deadline reset by each byte")
        self.assertTrue(c.wait_closed(3))
        c.close()
        d.wait_log(r"(?i)timeout after DATA", 5, since=mark)
        # a steady 8 KB/s body still ends: DATA must make progress (64 KiB
        # stored per [listen] timeout), not merely keep the socket busy
        c = RawClient(d.port)
        open_transaction(c)
        t0 = time.monotonic()
        ended = False
        for _ in range(1000):
            if ended or time.monotonic() - t0 > 10:
                break
            try:
                c.send(b"z" * 78 + b"\r\n")  # 80 bytes per 10 ms
            except OSError:
                ended = True
                break
            time.sleep(0.01)
            c.sock.setblocking(False)
            try:
                chunk = c.sock.recv(4096)
                c.buf += chunk
                ended = not chunk or b"421" in c.buf
            except BlockingIOError:
                pass
            except OSError:
                ended = True
            c.sock.setblocking(True)
        elapsed = time.monotonic() - t0
        note("E4: 8 KB/s body ended=%s after %.1fs, reply %r", ended, elapsed, c.buf[:60])
        self.assertTrue(ended, "a body trickling at 8 KB/s was never cut off")
        self.assertLess(elapsed, 6.0)
        c.close()
        time.sleep(0.5)
        self.assertEqual(d.queued(), [])
        self.assertEqual(harness.list_messages(sh.maildir), [])
        self.assertEqual(d.spool_entries("tmp"), [])
        served(d.port)

    # ------------------------------------------------------------ E5
    def _slow_reader(self, noops, cmd=b"NOOP\r\n"):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"listen": {"timeout": "3s"}})
        pid = d.proc.pid
        time.sleep(0.3)
        base_fds = fd_count(pid)
        hwm0 = status_kib(pid, "VmHWM")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.connect(("127.0.0.1", d.port))
        s.setblocking(False)
        data = b"EHLO app.test\r\n" + cmd * noops
        t0 = time.monotonic()
        off = 0
        stalled = False
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_WRITE)
        for _ in range(100000):
            if off >= len(data) or time.monotonic() - t0 > 8:
                break
            if not sel.select(timeout=1.0):
                stalled = True  # the server stopped reading
                break
            try:
                off += s.send(data[off:off + 65536])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
        sel.close()
        note("E5: %d x %r: sent %d of %d bytes in %.1fs without reading; server stopped "
             "reading: %s", noops, cmd, off, len(data), time.monotonic() - t0, stalled)
        served(d.port, "another client while one does not read")
        # the session ends although its client still does not read
        harness.wait_for(lambda: fd_count(pid) <= base_fds or None, 15,
                         "the slow reader's session closed (fds %d, base %d)"
                         % (fd_count(pid), base_fds))
        took = time.monotonic() - t0
        hwm = status_kib(pid, "VmHWM")
        note("E5: session gone after %.1fs; VmHWM %d -> %d KiB (+%.1f MiB)", took, hwm0, hwm,
             (hwm - hwm0) / 1024)
        note("E5: end reason in the log: %s",
             [ln.split(": ", 1)[-1] for ln in d.log_text().splitlines()
              if "from 127.0.0.1" in ln and ("timeout" in ln or "rror" in ln)
              or "too many errors" in ln][:3])
        self.assert_rss_growth(hwm - hwm0, 16 * 1024, "RSS grew by more than 16 MiB")
        s.close()
        self.assertTrue(d.proc.alive())
        return stalled

    # ------------------------------------------------- memory given back
    def test_memory_given_back_after_a_burst(self):
        """A burst of 100 KiB messages over 20 sessions grows the heap (held
        bodies, read and wire buffers, queue entries). glibc keeps freed
        heap that is not at its top, so once the sessions are gone and the
        queue is empty outboxd must give it back itself, within seconds.
        Plain SMTP upstream: after its first handshakes wolfSSL keeps an
        ECC point cache of its own (8 MiB here), which is not this."""
        sh = self.smarthost(mode="plain", auth=None)
        d = self.outboxd(relay=[sh.port], tls="none", user=None)
        pid = d.proc.pid
        time.sleep(0.3)
        idle = status_kib(pid, "VmRSS")
        line = b"x" * 76 + b"\r\n"
        msg = make_message(line * (100 * 1024 // len(line)))
        sent = [0] * 20

        def client(i):
            with smtplib.SMTP("127.0.0.1", d.port, timeout=harness.scaled(60)) as c:
                for _ in range(10):
                    c.sendmail("app@local.test", ["rcpt@dest.test"], msg)
                    sent[i] += 1
        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(harness.scaled(120))
        self.assertEqual(200, sum(sent), "every message accepted")
        sh.wait_messages(200, timeout=harness.scaled(120))
        peak = status_kib(pid, "VmHWM")
        note("burst: RSS idle %d KiB, peak %d KiB", idle, peak)
        with open("/proc/%d/maps" % pid) as f:
            if "libasan" in f.read():
                # ASan's quarantine holds freed memory on purpose
                note("RSS not asserted under ASan")
                return
        if harness.valgrind_dir():
            note("RSS not asserted under valgrind")
            return
        self.assertGreater(peak - idle, 8 * 1024, "the burst grew the heap")
        back = harness.wait_for(
            lambda: status_kib(pid, "VmRSS") <= idle + 6 * 1024 or None, 10,
            "RSS back within 6 MiB of idle (%d KiB idle, now %d KiB)"
            % (idle, status_kib(pid, "VmRSS")))
        self.assertTrue(back)
        note("burst: RSS %d KiB after", status_kib(pid, "VmRSS"))

    def test_e5_slow_reader_100000_noops(self):
        self._slow_reader(100000)

    def test_e5_slow_reader_beyond_socket_buffers(self):
        # 1,000,000 HELOs (not junk commands, so no junk limit ends it):
        # 17 MB of replies, more than the kernel buffers hold, so the
        # daemon's own output queue must stop the reading, and the 421 that
        # cannot be sent must not keep the session open
        self.assertTrue(self._slow_reader(1000000, b"HELO app.test\r\n"),
                        "the server read every command")

    # ------------------------------------------------------------ E6 (b)
    def test_e6b_30mb_body_over_2mb_limit_spool_bounded(self):
        sh = self.smarthost()
        limit = 2 * MIB
        d = self.outboxd(relay=[sh.port],
                         settings={"listen": {"max_message_size": str(limit)}})
        tmpdir = os.path.join(d.spool, "tmp")
        msgdir = os.path.join(d.spool, "msg")
        base = dir_bytes(tmpdir) + dir_bytes(msgdir)
        peak = [0]
        stop = threading.Event()

        def sample():
            for _ in range(100000):
                if stop.is_set():
                    break
                peak[0] = max(peak[0], dir_bytes(tmpdir) + dir_bytes(msgdir) - base)
                time.sleep(0.01)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        c = RawClient(d.port, timeout=60)
        try:
            open_transaction(c)
            line = b"b" * 1022 + b"\r\n"
            chunk = line * 1024                    # 1 MiB
            c.send(make_message(b""))
            t0 = time.monotonic()
            for _ in range(30):
                c.send(chunk)
            c.send(b".\r\n")
            code, lines = c.read_reply(60)
            took = time.monotonic() - t0
        finally:
            stop.set()
            th.join(5)
        note("E6b: 30 MiB body over a 2 MiB limit in %.1fs: %r; peak spool growth %d bytes "
             "(limit %d)", took, lines, peak[0], limit)
        self.assertEqual(code, 552, lines)
        self.assertIn("5.3.4", lines[-1])
        self.assertLessEqual(peak[0], limit + 256 * 1024, "spool grew past the limit")
        self.assertEqual(c.cmd("NOOP")[0], 250, "out of sync after the 552")
        # the next message on the same connection is taken
        self.assertEqual(c.cmd("MAIL FROM:<app@local.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<rcpt@dest.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(make_message("small\r\n"))
        code, text = c.cmd(".")
        self.assertEqual(code, 250, text)
        c.cmd("QUIT")
        c.close()
        msgs = sh.wait_messages(1, 15)
        time.sleep(0.5)
        self.assertEqual(len(harness.list_messages(sh.maildir)), 1)
        self.assertIn(b"small", msgs[0].body())
        self.assertEqual(d.spool_entries("tmp"), [])

    # ------------------------------------------------------------ header bombs
    def _header_bomb(self, name, fields_blob):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        pid = d.proc.pid
        time.sleep(0.3)
        hwm0 = status_kib(pid, "VmHWM")
        data = make_message(b"body after the bomb\r\n", headers=[fields_blob])
        result = {}

        def send():
            try:
                result["res"] = harness.smtp_send(d.port, "app@local.test",
                                                  ["rcpt@dest.test"], data, timeout=60)
            except Exception as e:  # noqa: BLE001 - reported below
                result["err"] = e
        th = threading.Thread(target=send, daemon=True)
        t0 = time.monotonic()
        th.start()
        time.sleep(0.2)
        served(d.port, "a client during the %s" % name)
        th.join(60)
        took = time.monotonic() - t0
        self.assertFalse(th.is_alive(), "the %s send hung" % name)
        self.assertNotIn("err", result, result.get("err"))
        res = result["res"]
        hwm = status_kib(pid, "VmHWM")
        note("%s: %d bytes, %s in %.1fs; VmHWM %d -> %d KiB (+%.1f MiB)", name, len(data),
             res.code, took, hwm0, hwm, (hwm - hwm0) / 1024)
        self.assertIn(res.code, (250, 552, 554), res)
        self.assert_rss_growth(hwm - hwm0, 48 * 1024, "RSS grew by more than 48 MiB")
        if res.code == 250:
            msgs = sh.wait_messages(2, 60)
            big = [m for m in msgs if len(m.data) > len(data) // 2]
            self.assertEqual(len(big), 1, msgs)
            self.assertEqual(big[0].body(), data, "%s not delivered byte for byte" % name)
        self.assertTrue(d.proc.alive())

    def test_header_bomb_one_5mb_folded_field(self):
        fold = b"\r\n\t" + b"f" * 70
        blob = b"X-Bomb: start" + fold * (5 * MIB // len(fold))
        self._header_bomb("5 MB folded header", blob.decode())

    def test_header_bomb_1000000_fields(self):
        blob = "\r\n".join(["X:%d" % (i % 10) for i in range(1000000)])
        self._header_bomb("1,000,000 header fields", blob)

    # ------------------------------------------------------------ reply bombs
    def _reply_bomb(self, kind):
        bomber = Bomber(kind)
        bomber.start()
        port = bomber.port
        d = self.outboxd(relay=[port])
        pid = d.proc.pid
        time.sleep(0.3)
        hwm0 = status_kib(pid, "VmHWM")
        mark = d.mark() if hasattr(d, "mark") else 0
        qid = d.send_ok(data=make_message("after the reply bomb\r\n"))
        d.wait_log(r"%s: to=.*status=deferred" % qid, 30, since=mark)
        self.assertTrue(bomber.done.wait(30))
        hwm = status_kib(pid, "VmHWM")
        deferred = d.deliveries(status="deferred", qid=qid)
        note("reply bomb (%s): upstream sent %d bytes before the client hung up; %s; "
             "VmHWM %d -> %d KiB (+%.1f MiB)", kind, bomber.sent,
             deferred[0]["text"] if deferred else None, hwm0, hwm, (hwm - hwm0) / 1024)
        self.assertTrue(bomber.got_ehlo)
        self.assertLess(bomber.sent, 10 * MIB, "the client read the whole 10 MB bomb")
        self.assertIn(qid, d.queued(), "the message left the queue")
        self.assert_rss_growth(hwm - hwm0, 16 * 1024, "RSS grew by more than 16 MiB")
        self.assertEqual(d.deliveries(status="sent"), [])
        served(d.port, "a client after the reply bomb")
        # the upstream behaves again on the same port: delivered
        sh = self.smarthost(port=port)
        msgs = sh.wait_messages(2, 20)
        self.assertTrue(any(b"after the reply bomb" in m.data for m in msgs), msgs)
        harness.wait_for(lambda: qid not in d.queued() or None, 10, "queue emptied")

    def test_reply_bomb_endless_multiline_ehlo(self):
        self._reply_bomb("lines")

    def test_reply_bomb_10mb_line_without_crlf(self):
        self._reply_bomb("line")


if __name__ == "__main__":
    harness.main()
