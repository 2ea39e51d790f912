# SPDX-License-Identifier: MIT
"""Helpers for the direct-delivery (MX) tests.

Every MX host of a test is a peer on its own loopback address
(127.0.0.2, 127.0.0.3, ...) and the SAME port, because outboxd connects to
every MX host on `[mx] port`. MxTestCase adds to OutboxTestCase:

  self.dnsmasq(zone) / self.fake_dns(zone)  DNS on 127.0.0.1 (see dns.py)
  self.mx_smarthost(ip, ...)   peers/smarthost.py bound to ip:mx_port
  self.mx_fake(ip, script)     peers/fake_smtp.py bound to ip:mx_port
  self.mini(ip, ...)           a small in-process SMTP peer (MiniSMTP) for
                               what the others cannot play: a STARTTLS that
                               breaks the handshake, a 421 greeter that
                               counts connections
  self.mx_outboxd(dns, ...)    outboxd with no [relay] host and [mx] set

mx_cert(names) makes (once, cached next to the test PKI) a certificate
signed by the test CA for the given MX host names, so that outboxd with
`[mx] ca_file = <test CA>` sees it as verified.
"""
import fcntl
import hashlib
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import harness
from harness import HarnessError, OutboxTestCase, Smarthost, FakeSMTP, certs
import dns as dnsmod

# the default client timeout cap for outboxd in these tests (seconds)
CLIENT_TIMEOUT = "3"


def free_port_all():
    """A TCP port free on every address (bind to 0.0.0.0:0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates

def mx_cert(names):
    """(cert, key) for names (SAN DNS entries), signed by the test CA."""
    c = certs()
    with open(c["ca"], "rb") as f:
        ca_hash = hashlib.sha256(f.read()).hexdigest()[:12]
    tag = hashlib.sha256((ca_hash + "|" + ",".join(sorted(names))).encode()).hexdigest()[:16]
    d = os.path.join(c["dir"], "mx-" + tag)
    os.makedirs(d, mode=0o700, exist_ok=True)
    pem, key = os.path.join(d, "mx.pem"), os.path.join(d, "mx.key")
    with open(os.path.join(d, "lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(d, "done")):
            _make_mx_cert(d, c, names)
            with open(os.path.join(d, "done"), "w") as f:
                f.write("ok\n")
    return pem, key


def _openssl(args, cwd):
    res = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=60)
    if res.returncode != 0:
        raise HarnessError("openssl %s: %s" % (" ".join(args), res.stderr.decode()))


def _make_mx_cert(d, c, names):
    ca_key = os.path.join(c["dir"], "ca.key")
    _openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
              "-keyout", "mx.key", "-out", "mx.csr", "-subj", "/CN=" + names[0]], d)
    with open(os.path.join(d, "mx.ext"), "w") as f:
        f.write("[v3]\nbasicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = %s\n" % ",".join("DNS:" + n for n in names))
    _openssl(["x509", "-req", "-in", "mx.csr", "-CA", c["ca"], "-CAkey", ca_key,
              "-set_serial", "0x" + os.urandom(8).hex(), "-out", "mx.pem", "-days", "365",
              "-sha256", "-extfile", "mx.ext", "-extensions", "v3"], d)
    os.chmod(os.path.join(d, "mx.key"), 0o600)


# ---------------------------------------------------------------- peers

class MxSmarthost(Smarthost):
    """peers/smarthost.py bound to one loopback address, no AUTH (an MX)."""

    def __init__(self, workdir, name, ip, port, mode="plain", cert=None, key=None,
                 extra=(), **kw):
        kw.setdefault("auth", None)
        super().__init__(workdir, name=name, mode="plain", port=port,
                         extra=["--host", ip] + list(extra), **kw)
        self.ip = ip
        if mode != "plain":
            i = self.args.index("--mode")
            self.args[i + 1] = mode
            self.args += ["--cert", cert, "--key", key]

    def session_spans(self):
        """{session: (connect line index, close line index or None)}"""
        spans = {}
        for i, ln in enumerate(self.log_lines()):
            m = re.match(r"(\d+) tls=\d \* (connect from|closed)", ln)
            if not m:
                continue
            sid = int(m.group(1))
            if m.group(2).startswith("connect"):
                spans[sid] = [i, None]
            elif sid in spans:
                spans[sid][1] = i
        return spans

    def max_concurrent(self):
        """The largest number of sessions open at the same time (from the
        order of connect/closed lines in the log)."""
        now = peak = 0
        for ln in self.log_lines():
            m = re.match(r"\d+ tls=\d \* (connect from|closed)", ln)
            if not m:
                continue
            now += 1 if m.group(1).startswith("connect") else -1
            peak = max(peak, now)
        return peak

    def session_count(self):
        return len(self.session_spans())


class MxFake(FakeSMTP):
    """peers/fake_smtp.py bound to one loopback address."""

    def __init__(self, workdir, script, name, ip, port, **kw):
        super().__init__(workdir, script, name=name, port=port, **kw)
        self.args += ["--host", ip]
        self.ip = ip


class MiniSMTP:
    """A small threaded SMTP server (in the test process) with a session
    record: self.sessions = [{"cmds": [...], "tls": bool, "t": start}],
    self.messages = [(mail_from, [rcpts], data)].

    greeting        the first line sent (a 4xx/5xx greeting then closes)
    starttls        advertise STARTTLS
    on_starttls     "garbage": answer 220 then write non-TLS bytes and close
                    (the client's TLS handshake fails); "ok": real TLS with cert
    """

    def __init__(self, ip, port, greeting="220 mini.test ESMTP", starttls=False,
                 on_starttls="garbage", cert=None, key=None):
        self.ip, self.port = ip, port
        self.greeting = greeting
        self.starttls = starttls
        self.on_starttls = on_starttls
        self.cert, self.key = cert, key
        self.sessions = []
        self.messages = []
        self.lock = threading.Lock()
        self.stopping = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.threads = []
        self.conns = []
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self.acceptor.start()

    # -- lifecycle
    def stop(self):
        self.stopping = True
        self.acceptor.join(5)
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(5)

    def _accept_loop(self):
        for _ in range(10 ** 7):
            if self.stopping:
                return
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            sess = {"cmds": [], "tls": False, "t": time.monotonic()}
            with self.lock:
                self.sessions.append(sess)
            t = threading.Thread(target=self._serve, args=(conn, sess), daemon=True)
            self.threads.append(t)
            t.start()

    def connection_times(self):
        with self.lock:
            return [s["t"] for s in self.sessions]

    # -- one session
    def _serve(self, conn, sess):
        conn.settimeout(10)
        f = _LineSock(conn)
        self.conns.append(f)
        try:
            self._dialogue(f, sess)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                f.sock.close()
            except OSError:
                pass

    def _dialogue(self, f, sess):
        f.send(self.greeting + "\r\n")
        if not self.greeting.startswith("2"):
            f.drain(2.0)  # let the client send QUIT or close
            return
        mail, rcpts = None, []
        for _ in range(1000):
            line = f.readline()
            if line is None:
                return
            sess["cmds"].append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = ["mini.test", "PIPELINING", "8BITMIME"]
                if self.starttls and not sess["tls"] and verb == "EHLO":
                    ext.append("STARTTLS")
                f.send("".join("250%s%s\r\n" % ("-" if i < len(ext) - 1 else " ", e)
                               for i, e in enumerate(ext)))
            elif verb == "STARTTLS":
                f.send("220 2.0.0 go ahead\r\n")
                if self.on_starttls == "garbage":
                    # wait for the ClientHello (bytes sent together with the
                    # 220 would be response injection, F2, not this case)
                    if not f.buf:
                        f._fill()
                    f.send("this is not a TLS ServerHello\r\n" * 4)
                    return
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.cert, self.key)
                f.sock = ctx.wrap_socket(f.sock, server_side=True)
                f.buf = b""
                sess["tls"] = True
            elif verb == "MAIL":
                mail, rcpts = line[10:].strip(), []
                f.send("250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                rcpts.append(line[8:].strip())
                f.send("250 2.1.5 ok\r\n")
            elif verb == "DATA":
                f.send("354 go ahead\r\n")
                data = f.read_data()
                if data is None:
                    return
                with self.lock:
                    self.messages.append((mail, rcpts, data))
                f.send("250 2.0.0 stored\r\n")
            elif verb == "RSET" or verb == "NOOP":
                f.send("250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                f.send("221 2.0.0 bye\r\n")
                return
            else:
                f.send("500 5.5.1 what\r\n")


class _LineSock:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def readline(self):
        for _ in range(10000):
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                return line.rstrip(b"\r").decode("utf-8", "replace")
            if not self._fill():
                return None
        return None

    def read_data(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n.\r\n")
            if i != -1:
                data, self.buf = self.buf[:i + 2], self.buf[i + 5:]
                if data.startswith(b"."):
                    data = data[1:]
                return data.replace(b"\r\n..", b"\r\n.")  # un-dot-stuff
            if len(self.buf) > 64 << 20 or not self._fill():
                return None
        return None

    def drain(self, limit):
        self.sock.settimeout(limit)
        try:
            for _ in range(100):
                if not self._fill():
                    return
        except (OSError, socket.timeout):
            return


# ---------------------------------------------------------------- test base

class MxTestCase(OutboxTestCase):
    """OutboxTestCase plus DNS servers and MX peers on 127.0.0.x:mx_port."""

    def setUp(self):
        super().setUp()
        self.mx_port = free_port_all()
        self._minis = []

    def tearDown(self):
        # daemons first (the harness), then the in-process peers
        try:
            super().tearDown()
        finally:
            for m in self._minis:
                m.stop()

    # -- DNS
    def dnsmasq(self, zone, port=None, address="127.0.0.1", start=True):
        d = dnsmod.Dnsmasq(self.tmp, zone, name="dnsmasq%d" % (len(self._peers) + 1),
                           port=port, address=address)
        self._peers.append(d)
        return d.start() if start else d

    def fake_dns(self, zone, port=0, start=True):
        if not dnsmod.fake_dns_available():
            dnsmod.wait_fake_dns(5)
        d = dnsmod.FakeDns(self.tmp, zone, name="fakedns%d" % (len(self._peers) + 1),
                           port=port)
        self._peers.append(d)
        return d.start() if start else d

    # -- MX peers
    def mx_smarthost(self, ip, mode="plain", cert=None, key=None, start=True, **kw):
        sh = MxSmarthost(self.tmp, "mx%d-%s" % (len(self._peers) + 1, ip), ip,
                         self.mx_port, mode=mode, cert=cert, key=key, **kw)
        self._peers.append(sh)
        return sh.start() if start else sh

    def mx_fake(self, ip, script, **kw):
        fk = MxFake(self.tmp, script, "fake%d-%s" % (len(self._peers) + 1, ip), ip,
                    self.mx_port, **kw)
        self._peers.append(fk)
        return fk.start()

    def mini(self, ip, **kw):
        m = MiniSMTP(ip, self.mx_port, **kw)
        self._minis.append(m)
        return m

    # -- the daemon
    def mx_outboxd(self, dns_port, tls="none", connections_per_domain=None,
                   ca_file=None, settings=None, env=None, start=True, **kw):
        mx = {"dns_servers": "127.0.0.1:%d" % dns_port, "port": str(self.mx_port),
              "tls": tls, "ca_file": ca_file or certs()["ca"]}
        if connections_per_domain is not None:
            mx["connections_per_domain"] = str(connections_per_domain)
        sets = {"mx": mx}
        for s, kv in (settings or {}).items():
            sets.setdefault(s, {}).update(kv)
        e = {"OUTBOX_TEST_CLIENT_TIMEOUT": CLIENT_TIMEOUT}
        e.update(env or {})
        return self.outboxd(start=start, relay=(), settings=sets, env=e, **kw)

    # -- log checks
    def wait_status(self, d, qid, rcpt, status, timeout=15.0, since=0):
        """The parsed log line for rcpt of qid reaching status."""
        def find():
            for x in d.deliveries(status=status, qid=qid, rcpt=rcpt, since=since):
                return x
            if d.proc is not None and not d.proc.alive():
                raise HarnessError("%s exited (rc=%s); log tail:\n%s" % (
                    d.name, d.proc.popen.poll(), harness.tail(d.log_path)))
            return None
        try:
            return harness.wait_for(find, timeout, "%s to=<%s> status=%s" % (qid, rcpt, status))
        except HarnessError as e:
            raise HarnessError("%s\nLog tail:\n%s" % (e, harness.tail(d.log_path, 30)))


def field(line, name):
    """A `name=value` field of a log line (value up to the next comma)."""
    m = re.search(r"\b%s=([^,]*)" % re.escape(name), line)
    return m.group(1).strip() if m else None


def send_many(port, items, timeout=60.0):
    """Several transactions over one SMTP session (much faster than one
    session each under ASan). items: [(mail_from, [rcpts], data)].
    Returns the queue ids; any refusal raises."""
    import smtplib
    qids = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout) as s:
        for mail_from, rcpts, data in items:
            s.ehlo_or_helo_if_needed()
            code, text = s.mail(mail_from)
            if code != 250:
                raise HarnessError("MAIL refused: %s %r" % (code, text))
            for r in rcpts:
                code, text = s.rcpt(r)
                if code not in (250, 251):
                    raise HarnessError("RCPT %s refused: %s %r" % (r, code, text))
            code, text = s.data(data)
            if code != 250:
                raise HarnessError("DATA refused: %s %r" % (code, text))
            qids.append(harness.queue_id_of(text.decode("utf-8", "replace")))
        s.quit()
    return qids
