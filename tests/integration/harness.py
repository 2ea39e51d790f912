# SPDX-License-Identifier: MIT
"""Integration-test harness: the real outboxd against real peers on loopback.

Every test file imports this module, subclasses OutboxTestCase and ends with
`harness.main()`. Everything here is bounded: each wait has a time limit,
each loop a count, and every process is started and stopped by its PID.

Environment:
  OUTBOXD             path of the daemon binary (required)
  OUTBOX_CLI          path of the `outbox` command (needed by CLI tests)
  OUTBOX_TEST_KEEP=1  keep each test's temporary directory
  OUTBOX_TEST_CERTS   directory for the generated test PKI (default: a
                      per-user cache in $TMPDIR)
  OUTBOX_TEST_VALGRIND=DIR  run outboxd (and `outbox`/`outboxd` commands
                      run through run_cmd) under valgrind memcheck, logs in
                      DIR; tearDown fails on any memcheck error or a
                      definite leak (tests/valgrind/run sets it)
  OUTBOX_TEST_VALGRIND_CLI=0  under OUTBOX_TEST_VALGRIND, run the commands
                      of run_cmd natively (only the daemon under memcheck;
                      each memcheck start costs ~0.75 s of CPU)
  OUTBOX_TEST_TIME_SCALE=N  multiply the harness's waits (wait_for, daemon
                      start/stop/kill bounds, peer READY, RawClient reads,
                      run_cmd) by N (default 1; a slow daemon is not a bug)
  OUTBOX_TEST_SKIP    comma-separated test ids (file.Class.test or
                      Class.test) to skip, each with its reason kept by
                      whoever sets it (tests/valgrind/run)
  OUTBOX_TEST_SIZE_SCALE=F  factor (0 < F <= 1) that heavy tests may apply
                      to their message counts via harness.sized(n)
"""
import atexit
import base64
import json
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
PEERS = os.path.join(TESTS, "peers")
PY = "/usr/bin/python3"  # Debian's python, the one with python3-aiosmtpd
sys.path.insert(0, PEERS)
import certs as certs_mod  # noqa: E402

QID = r"[0-9A-F]{16}"
USER = "relayuser"
# A distinctive password per test process: its presence anywhere in a log or
# the spool is a leak (F11), never a coincidence.
PASSWORD = "pw-%s-Zq!7" % os.urandom(6).hex()
SANITIZER_RE = re.compile(r"panic|AddressSanitizer|runtime error|LeakSanitizer|"
                          r"ERROR: \w*Sanitizer")
LOG_TO_RE = re.compile(r"(?P<id>%s): to=<(?P<rcpt>[^>]*)>,(?P<mid>.*?)"
                       r"status=(?P<status>[a-z]+)(?: \((?P<text>.*)\))?\s*$" % QID)
LOG_FROM_RE = re.compile(r"(?P<id>%s): from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), "
                         r"nrcpt=(?P<nrcpt>\d+)" % QID)

_ALL_PROCS = []

# "event loop closed with handles still open": daemon_cleanup() logs it when
# uv_loop_close() fails, i.e. a handle (or request) outlived shutdown.
LOOP_NOT_CLOSED_RE = re.compile(r"event loop closed with handles still open")


class HarnessError(AssertionError):
    """A failure of the environment or the daemon seen by the harness."""


# ---------------------------------------------------------------- basics

def outboxd_path():
    path = os.environ.get("OUTBOXD")
    if not path:
        raise HarnessError("OUTBOXD is not set: export OUTBOXD=/path/to/outboxd "
                           "(ctest sets it; e.g. OUTBOXD=/work/main/build/outboxd)")
    if not os.access(path, os.X_OK):
        raise HarnessError("OUTBOXD=%s is not an executable file" % path)
    return path


def cli_path():
    path = os.environ.get("OUTBOX_CLI")
    if not path:
        raise HarnessError("OUTBOX_CLI is not set: export OUTBOX_CLI=/path/to/outbox")
    if not os.access(path, os.X_OK):
        raise HarnessError("OUTBOX_CLI=%s is not an executable file" % path)
    return path


def time_scale():
    """OUTBOX_TEST_TIME_SCALE (>= 1; default 1)."""
    try:
        v = float(os.environ.get("OUTBOX_TEST_TIME_SCALE") or 1)
    except ValueError:
        raise HarnessError("OUTBOX_TEST_TIME_SCALE must be a number")
    return max(1.0, v)


def scaled(seconds):
    """A time bound stretched by OUTBOX_TEST_TIME_SCALE (for slow runs such
    as valgrind, where the daemon runs 10-50x slower)."""
    return seconds * time_scale()


def size_scale():
    """OUTBOX_TEST_SIZE_SCALE, in (0, 1]; default 1."""
    try:
        v = float(os.environ.get("OUTBOX_TEST_SIZE_SCALE") or 1)
    except ValueError:
        raise HarnessError("OUTBOX_TEST_SIZE_SCALE must be a number")
    return min(1.0, max(0.001, v))


def sized(n, minimum=1):
    """A heavy test's count n scaled by OUTBOX_TEST_SIZE_SCALE (at least
    minimum): e.g. 1,000 queued messages become 100 under valgrind."""
    return max(minimum, int(n * size_scale()))


# ---------------------------------------------------------------- valgrind

# --num-callers=12 (valgrind's default): a stack is recorded at every
# malloc and free, and wolfSSL's handshakes make many; --vgdb=no: no
# gdbserver FIFOs and polling (nobody attaches a debugger in CI).
VALGRIND_ARGS = ["--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                 "--track-fds=no", "--num-callers=12", "--vgdb=no"]
VALGRIND_SUPP_DIR = os.path.join(TESTS, "valgrind")
# A memcheck error report's first line; matched as well as the summary
# because a process killed by a test (SIGKILL) never prints the summary.
VALGRIND_ERROR_RE = re.compile(
    r"^==\d+== (Invalid (read|write|free)|Conditional jump or move depends|"
    r"Use of uninitialised value|Syscall param .* (uninitialised|unaddressable)|"
    r"Mismatched free|Source and destination overlap|Argument '.*' of function|"
    r"\d[\d,]* bytes in [\d,]+ blocks are definitely lost)", re.M)
VALGRIND_SUMMARY_RE = re.compile(r"ERROR SUMMARY: ([\d,]+) errors")
VALGRIND_LOST_RE = re.compile(r"definitely lost: ([\d,]+) bytes")
_VALGRIND_TAG = ["run"]   # the current test's log prefix (set by setUp)


def valgrind_dir():
    """OUTBOX_TEST_VALGRIND (a log directory), or None."""
    return os.environ.get("OUTBOX_TEST_VALGRIND") or None


def valgrind_argv(argv, name="proc"):
    """argv under valgrind memcheck when OUTBOX_TEST_VALGRIND is set (else
    argv unchanged). The log goes to DIR/<test>.<name>.<pid>.log, which the
    tearDown of the test that started it checks."""
    vdir = valgrind_dir()
    if not vdir:
        return list(argv)
    os.makedirs(vdir, exist_ok=True)
    log = os.path.join(vdir, "%s.%s.%%p.log" % (_VALGRIND_TAG[0], name))
    supp = []
    if os.path.isdir(VALGRIND_SUPP_DIR):
        supp = ["--suppressions=" + os.path.join(VALGRIND_SUPP_DIR, n)
                for n in sorted(os.listdir(VALGRIND_SUPP_DIR)) if n.endswith(".supp")]
    prog = argv[0]
    if "/" in prog:
        # the child may start in another directory (Proc's cwd)
        prog = os.path.abspath(prog)
    return (["valgrind"] + VALGRIND_ARGS + supp + ["--log-file=" + log, prog]
            + list(argv[1:]))


def valgrind_log_problems(path):
    """(errors, definitely_lost_bytes, excerpt) of one memcheck log."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return 0, 0, ""
    errors = sum(int(m.group(1).replace(",", "")) for m in VALGRIND_SUMMARY_RE.finditer(text))
    lost = sum(int(m.group(1).replace(",", "")) for m in VALGRIND_LOST_RE.finditer(text))
    if not VALGRIND_SUMMARY_RE.search(text):
        # killed before its summary: count the error reports themselves
        errors = len(VALGRIND_ERROR_RE.findall(text))
    if errors == 0 and lost == 0:
        return 0, 0, ""
    return errors, lost, "\n".join(text.splitlines()[:150])


def valgrind_check(tag):
    """Problems in the memcheck logs of one test (tag = its log prefix)."""
    vdir = valgrind_dir()
    if not vdir or not os.path.isdir(vdir):
        return []
    problems = []
    for n in sorted(os.listdir(vdir)):
        if not (n.startswith(tag + ".") and n.endswith(".log")):
            continue
        errors, lost, excerpt = valgrind_log_problems(os.path.join(vdir, n))
        if errors or lost:
            problems.append("valgrind %s: %d error(s), %d bytes definitely lost:\n%s"
                            % (os.path.join(vdir, n), errors, lost, excerpt))
    return problems


def _note_duration(test):
    """Under valgrind, append "seconds test" to DIR/durations.txt: the run
    script prints the slowest tests (where the CI minutes go)."""
    vdir = valgrind_dir()
    started = getattr(test, "_started", None)
    if not vdir or started is None:
        return
    try:
        with open(os.path.join(vdir, "durations.txt"), "a") as f:
            f.write("%.1f %s\n" % (time.monotonic() - started, test_ident(test)))
    except OSError:
        pass


def _is_our_binary(path):
    """Whether path is (a link to) outboxd or the outbox command."""
    real = os.path.realpath(path)
    for var in ("OUTBOXD", "OUTBOX_CLI"):
        p = os.environ.get(var)
        if p and os.path.realpath(p) == real:
            return True
    return False


def test_ident(test):
    """file.Class.method of a TestCase (the file without .py), even when the
    file runs as __main__."""
    mod = sys.modules.get(type(test).__module__)
    fname = getattr(mod, "__file__", None) or type(test).__module__
    return "%s.%s.%s" % (os.path.splitext(os.path.basename(fname))[0],
                         type(test).__name__, test._testMethodName)


def skip_listed(test):
    """The OUTBOX_TEST_SKIP entry naming test (a TestCase), or None."""
    ident = test_ident(test)
    ids = {ident, ident.split(".", 1)[1]}
    for item in (os.environ.get("OUTBOX_TEST_SKIP") or "").split(","):
        if item.strip() and item.strip() in ids:
            return item.strip()
    return None


def free_port():
    """A port free right now on 127.0.0.1 (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what="condition", interval=0.05):
    """Poll pred() until it returns a true value; bounded in time and count.
    The timeout is stretched by OUTBOX_TEST_TIME_SCALE."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise HarnessError("timed out after %.1fs waiting for %s" % (timeout, what))


_CERTS = None


def certs():
    """The test PKI (made once per run; see tests/peers/certs.py)."""
    global _CERTS
    if _CERTS is None:
        _CERTS = certs_mod.ensure_certs(os.environ.get("OUTBOX_TEST_CERTS"))
    return _CERTS


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def secret_forms(user=USER, password=PASSWORD):
    """The password and its base64 forms (RELIABILITY.md F11)."""
    return [password, b64(password), b64("\0%s\0%s" % (user, password)),
            b64("%s\0%s\0%s" % (user, user, password)), b64(user)]


# ---------------------------------------------------------------- processes

class Proc:
    """A child process with its output in files, stopped by PID."""

    def __init__(self, argv, name, workdir, env=None, pipe_stdout=False):
        self.argv = list(argv)
        self.name = name
        self.stdout_path = os.path.join(workdir, name + ".out")
        self.stderr_path = os.path.join(workdir, name + ".err")
        out = subprocess.PIPE if pipe_stdout else open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=err, env=full_env, cwd=workdir,
                                      start_new_session=True)
        if not pipe_stdout:
            out.close()
        err.close()
        self.pid = self.popen.pid
        self.rc = None
        _ALL_PROCS.append(self)

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        """Exit code, or None if still running after timeout seconds."""
        try:
            self.rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns (rc, was_killed)."""
        if not self.alive():
            return self.popen.wait(), False
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is not None:
            return rc, False
        self.signal(signal.SIGKILL)
        return self.wait(5.0), True

    def read_ready(self, timeout=15.0):
        """Read stdout lines until "READY <port>"; returns the port."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.popen.stdout.fileno()
        for _ in range(1000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            m = re.search(rb"READY (\d+)\n", buf)
            if m:
                return int(m.group(1))
        self.stop(2)
        raise HarnessError("%s did not print READY within %.0fs; stdout=%r stderr:\n%s" % (
            self.name, timeout, buf, tail(self.stderr_path)))


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no %s)" % path
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _kill_leftovers():
    for p in _ALL_PROCS:
        if p.alive():
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(2)
            except OSError:
                pass


atexit.register(_kill_leftovers)


# ---------------------------------------------------------------- peers

class Message:
    """One message received by the smarthost."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            raw = f.read()
        head, _, self.data = raw.partition(b"\n")
        self.meta = json.loads(head)
        self.mail_from = self.meta["mail_from"]
        self.rcpt_tos = self.meta["rcpt_tos"]

    def body(self):
        """The data with the trace headers outbox prepends removed."""
        return strip_trace(self.data)

    def __repr__(self):
        return "<Message from=%r to=%r %d bytes>" % (self.mail_from, self.rcpt_tos,
                                                     len(self.data))


def list_messages(maildir):
    try:
        names = sorted(n for n in os.listdir(maildir) if n.endswith(".eml"))
    except FileNotFoundError:
        return []
    return [Message(os.path.join(maildir, n)) for n in names]


def wait_delivered(maildir, n, timeout=15.0):
    """Wait until maildir holds at least n messages; returns them all."""
    got = wait_for(lambda: len(list_messages(maildir)) >= n or None, timeout,
                   "%d message(s) in %s (have %d)" % (n, maildir, len(list_messages(maildir))),
                   interval=0.1)
    del got
    return list_messages(maildir)


class Smarthost:
    """tests/peers/smarthost.py (aiosmtpd) as a subprocess."""

    def __init__(self, workdir, name="smarthost", mode="starttls", cert="server",
                 auth=(USER, PASSWORD), auth_mechs=None, port=0, rcpt_reply=(),
                 mail_reply=(), data_reply=(), ehlo_drop=(), extra=()):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.maildir = os.path.join(self.dir, "maildir")
        self.log_path = os.path.join(self.dir, "commands.log")
        self.wire = os.path.join(self.dir, "wire")
        self.name = name
        self.port = port
        args = ["--mode", mode, "--maildir", self.maildir, "--log", self.log_path,
                "--wire", self.wire]
        if mode != "plain":
            c = certs()
            args += ["--cert", c[cert], "--key", c[cert + "_key"]]
        if auth:
            args += ["--auth", "%s:%s" % auth]
        if auth_mechs:
            args += ["--auth-mechs", auth_mechs]
        for r in rcpt_reply:
            args += ["--rcpt-reply", r]
        for r in mail_reply:
            args += ["--mail-reply", r]
        for r in data_reply:
            args += ["--data-reply", r]
        for k in ehlo_drop:
            args += ["--ehlo-drop", k]
        self.args = args + list(extra)
        self.proc = None

    def start(self):
        argv = [PY, os.path.join(PEERS, "smarthost.py"), "--port", str(self.port)] + self.args
        self.proc = Proc(argv, self.name, self.dir, pipe_stdout=True)
        self.port = self.proc.read_ready()
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5)
            self.proc = None

    def messages(self):
        return list_messages(self.maildir)

    def wait_messages(self, n, timeout=15.0):
        return wait_delivered(self.maildir, n, timeout)

    def log_lines(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def commands(self):
        """[(session, tls, line)] for every command line the client sent."""
        out = []
        for ln in self.log_lines():
            m = re.match(r"(\d+) tls=(\d) (C:|C\(auth\):) ?(.*)$", ln)
            if m:
                out.append((int(m.group(1)), m.group(2) == "1", m.group(4)))
        return out

    def sessions(self):
        """{session: [command lines]}"""
        out = {}
        for sid, _tls, line in self.commands():
            out.setdefault(sid, []).append(line)
        return out

    def wire_bytes(self):
        """{session: raw bytes received}"""
        out = {}
        try:
            names = os.listdir(self.wire)
        except FileNotFoundError:
            return out
        for n in names:
            m = re.match(r"session-(\d+)\.bin$", n)
            if m:
                with open(os.path.join(self.wire, n), "rb") as f:
                    out[int(m.group(1))] = f.read()
        return out


class FakeSMTP:
    """tests/peers/fake_smtp.py (scripted, byte-exact) as a subprocess."""

    def __init__(self, workdir, script, name="fake", connections=1, tls=False, port=0):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.script_path = os.path.join(self.dir, "script.txt")
        with open(self.script_path, "w") as f:
            f.write(script)
        self.rx_path = os.path.join(self.dir, "received.bin")
        self.transcript_path = os.path.join(self.dir, "transcript.log")
        self.name = name
        self.port = port
        self.args = ["--script", self.script_path, "--connections", str(connections),
                     "--log", self.rx_path, "--transcript", self.transcript_path]
        if tls or "starttls" in script:
            c = certs()
            self.args += ["--cert", c["server"], "--key", c["server_key"]]
        self.proc = None

    def start(self):
        argv = [PY, os.path.join(PEERS, "fake_smtp.py"), "--port", str(self.port)] + self.args
        self.proc = Proc(argv, self.name, self.dir, pipe_stdout=True)
        self.port = self.proc.read_ready()
        return self

    def received(self):
        try:
            with open(self.rx_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def stop(self):
        if self.proc is not None:
            rc, _ = self.proc.stop(5)
            self.proc = None
            return rc
        return None


# ---------------------------------------------------------------- messages

def open_transaction(c, rcpt="rcpt@dest.test"):
    """On a fresh RawClient: greeting, EHLO, MAIL, RCPT, DATA, each answered
    as a healthy transaction must be (354 last)."""
    code, text = c.read_reply()
    assert code == 220, text
    for line, want in (("EHLO app.test", 250), ("MAIL FROM:<app@local.test>", 250),
                       ("RCPT TO:<%s>" % rcpt, 250), ("DATA", 354)):
        code, text = c.cmd(line)
        assert code == want, "%s -> %r %s" % (line, code, text)


def make_message(body, subject="test", sender="app@local.test", to="rcpt@dest.test",
                 msgid=None, headers=()):
    """A complete RFC 5322 message (Date, Message-ID and From present, so
    the daemon has nothing to add but its trace header)."""
    if isinstance(body, str):
        body = body.encode()
    msgid = msgid or "<%s@outbox.test>" % os.urandom(8).hex()
    head = ("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: %s\r\nFrom: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\n"
            % (msgid, sender, to, subject, "".join(h + "\r\n" for h in headers))).encode()
    return head + body


def strip_trace(data):
    """Remove the leading Received: header lines (with continuations)."""
    pos = 0
    for _ in range(1000):
        if not data[pos:pos + 9].lower() == b"received:":
            break
        end = data.find(b"\r\n", pos)
        while end != -1 and data[end + 2:end + 3] in (b" ", b"\t"):
            end = data.find(b"\r\n", end + 2)
        if end == -1:
            break
        pos = end + 2
    return data[pos:]


# ---------------------------------------------------------------- SMTP clients

class SendResult:
    def __init__(self):
        self.code = None
        self.text = ""
        self.queue_id = None
        self.rcpt = {}      # rcpt -> (code, text)
        self.mail = None    # (code, text)

    def __repr__(self):
        return "<SendResult %s %r id=%s rcpt=%r>" % (self.code, self.text, self.queue_id,
                                                      self.rcpt)


def queue_id_of(text):
    m = re.search(r"queued as (%s)" % QID, text)
    return m.group(1) if m else None


def smtp_send(port, mail_from, rcpts, data, mail_options=(), timeout=60.0, ehlo="client.test"):
    """One transaction with smtplib; never raises on SMTP replies."""
    res = SendResult()
    with smtplib.SMTP("127.0.0.1", port, local_hostname=ehlo, timeout=timeout) as s:
        s.ehlo()
        code, text = s.mail(mail_from, list(mail_options))
        res.mail = (code, text.decode("utf-8", "replace"))
        if code != 250:
            res.code, res.text = res.mail
            return res
        for r in rcpts:
            code, text = s.rcpt(r)
            res.rcpt[r] = (code, text.decode("utf-8", "replace"))
        if not any(c == 250 or c == 251 for c, _ in res.rcpt.values()):
            s.rset()
            return res
        try:
            code, text = s.data(data)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        res.code, res.text = code, text.decode("utf-8", "replace")
        res.queue_id = queue_id_of(res.text)
        s.quit()
    return res


def swaks_send(port, mail_from, rcpts, data_path, workdir, extra=(), timeout=60.0):
    """One transaction with swaks; returns (rc, output, queue_id)."""
    argv = ["swaks", "--server", "127.0.0.1:%d" % port, "--from", mail_from,
            "--to", ",".join(rcpts), "--data", "@" + data_path, "--helo", "swaks.test",
            "--timeout", "%d" % timeout] + list(extra)
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=timeout + 10, cwd=workdir)
    out = res.stdout.decode("utf-8", "replace")
    return res.returncode, out, queue_id_of(out)


class RawClient:
    """A byte-level SMTP client for hostile input."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise HarnessError("no complete reply in time; buffered %r" % self.buf[:200])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise HarnessError("no complete reply in time; buffered %r" % self.buf[:200])
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk

    def read_reply(self, timeout=None):
        """(code, [lines]) of one (multi-line) reply; (None, []) on EOF."""
        deadline = time.monotonic() + scaled(timeout or self.timeout)
        lines = []
        for _ in range(100000):
            while b"\r\n" not in self.buf and not self.eof:
                self._fill(deadline)
            if b"\r\n" not in self.buf:
                return None, lines
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                code = int(text[:3]) if text[:3].isdigit() else -1
                return code, lines
        raise HarnessError("reply with too many lines")

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        code, lines = self.read_reply(timeout)
        return code, "\n".join(lines)

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout."""
        deadline = time.monotonic() + scaled(timeout)
        for _ in range(10000):
            if self.eof:
                return True
            try:
                self._fill(deadline)
            except HarnessError:
                return False
            except OSError:
                return True
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the daemon

class Outboxd:
    """One outboxd instance: its config, spool and log (stderr to a file)."""
    spool_visible = True   # False: the spool is only mounted inside the daemon

    def __init__(self, workdir, name="outboxd", relay=(), tls="starttls", verify=True,
                 ca_file=None, user=USER, password=PASSWORD, settings=None,
                 env=None, spool=None, listen_port=None, extra_ini=""):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.config_path = os.path.join(self.dir, "outbox.ini")
        self.password_path = os.path.join(self.dir, "password")
        self.spool = spool or os.path.join(self.dir, "spool")
        self.relay = list(relay)
        self.tls = tls
        self.verify = verify
        self.ca_file = ca_file if ca_file is not None else certs()["ca"]
        self.user = user
        self.password = password
        self.settings = settings or {}
        self.env = env or {}
        self.fixed_port = listen_port
        self.port = listen_port
        self.extra_ini = extra_ini
        self.proc = None
        self.exited = []     # exit codes seen by stop()/kill()
        self.log_offset = 0  # log size when the current run started

    # -- configuration
    def relay_hosts(self):
        return " ".join(h if isinstance(h, str) else "127.0.0.1:%d" % h for h in self.relay)

    def sections(self):
        sec = {
            "listen": {"address": "127.0.0.1:%d" % self.port, "hostname": "outbox.test"},
            "spool": {"dir": self.spool, "retry_min": "1s", "retry_max": "2s"},
            "relay": {},
            "log": {"target": "stderr", "level": "debug"},
        }
        if self.relay:
            sec["relay"]["host"] = self.relay_hosts()
            sec["relay"]["tls"] = self.tls
            sec["relay"]["verify"] = "yes" if self.verify else "no"
            if self.ca_file:
                sec["relay"]["ca_file"] = self.ca_file
            if self.user:
                sec["relay"]["user"] = self.user
                sec["relay"]["password_file"] = self.password_path
        for s, kv in self.settings.items():
            for k, v in kv.items():
                if v is None:
                    sec.setdefault(s, {}).pop(k, None)
                else:
                    sec.setdefault(s, {})[k] = v
        return sec

    def write_config(self):
        if self.port is None:
            self.port = free_port()
        if self.user and self.password is not None:
            fd = os.open(self.password_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            os.chmod(self.password_path, 0o600)
        lines = ["; written by tests/integration/harness.py"]
        for s, kv in self.sections().items():
            if not kv:
                continue
            lines.append("[%s]" % s)
            lines += ["%s = %s" % (k, v) for k, v in kv.items()]
            lines.append("")
        text = "\n".join(lines) + "\n" + self.extra_ini
        with open(self.config_path, "w") as f:
            f.write(text)
        return self.config_path

    # -- lifecycle
    def proc_env(self):
        env = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        env.update(self.env)
        return env

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def spawn(self, args=None):
        """Start the process without waiting for it (writes the config)."""
        if self.port is None:
            self.port = free_port()
        self.write_config()
        self.log_offset = self.log_size()
        argv = [outboxd_path(), "-f", "-c", self.config_path] + list(args or [])
        with open(self.log_path, "ab") as f:
            f.write(("---- %s start: %s\n" % (time.strftime("%H:%M:%S"),
                                              " ".join(argv))).encode())
        self.log_offset = self.log_size()
        self.proc = Proc(valgrind_argv(argv, self.name), self.name, self.dir,
                         env=self.proc_env())
        # stderr is the log: Proc writes NAME.err; keep one name for both
        return self.proc

    def start(self, timeout=10.0):
        """Start and wait for the "ready" log line. Retries once on a port race."""
        for attempt in range(2):
            self.spawn()
            try:
                self.wait_log(r"ready", timeout, since=self.log_offset)
                # The control socket is bound just after the "ready" line
                # (unless the spool lives in a private mount namespace).
                sock = os.path.join(self.spool, "control")
                if self.spool_visible:
                    wait_for(lambda: os.path.exists(sock) or not self.proc.alive() or None,
                             timeout, "control socket %s" % sock)
                return self
            except HarnessError:
                if (attempt == 0 and self.fixed_port is None and not self.proc.alive()
                        and re.search(r"(?i)address already in use|EADDRINUSE",
                                      self.log_text(self.log_offset))):
                    self.port = free_port()
                    continue
                raise
        return self

    def run_to_exit(self, args=None, timeout=10.0):
        """Start and expect the process to exit by itself: (rc, output)."""
        self.spawn(args)
        rc = self.proc.wait(scaled(timeout))
        if rc is None:
            self.proc.stop(5)
            self.proc = None
            raise HarnessError("%s kept running; expected it to exit. Log:\n%s" % (
                self.name, self.log_text(self.log_offset)))
        self.proc = None
        return rc, self.log_text(self.log_offset)

    def kill(self, sig=signal.SIGKILL, timeout=10.0):
        """Send sig; for SIGKILL/SIGTERM/SIGINT wait for the exit. Returns rc."""
        if self.proc is None or not self.proc.alive():
            raise HarnessError("%s is not running" % self.name)
        self.proc.signal(sig)
        if sig not in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            return None
        rc = self.proc.wait(scaled(timeout))
        if rc is None:
            self.proc.signal(signal.SIGKILL)
            self.proc.wait(5)
            self.proc = None
            raise HarnessError("%s did not exit within %.0fs of signal %d" % (
                self.name, timeout, sig))
        self.exited.append(rc)
        self.proc = None
        return rc

    def stop(self, timeout=10.0, expect_rc=0):
        """SIGTERM, wait <= timeout, else SIGKILL and fail. Checks the exit code."""
        if self.proc is None:
            return None
        rc, killed = self.proc.stop(scaled(timeout))
        self.proc = None
        self.exited.append(rc)
        if killed:
            raise HarnessError("%s did not stop within %.0fs of SIGTERM (killed)" % (
                self.name, scaled(timeout)))
        if expect_rc is not None and rc != expect_rc:
            raise HarnessError("%s exited with %s after SIGTERM, expected %s. Log tail:\n%s"
                               % (self.name, rc, expect_rc, tail(self.log_path)))
        return rc

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    # -- the log
    @property
    def log_path(self):
        """The log is the daemon's stderr (log target = stderr)."""
        return os.path.join(self.dir, self.name + ".err")

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def mark(self):
        """Log position, for wait_log(since=...)."""
        return self.log_size()

    def wait_log(self, regex, timeout=10.0, since=0, flags=0):
        """Wait for a log line matching regex; returns the match object."""
        rx = re.compile(regex, flags | re.M)
        found = [None]

        def check():
            m = rx.search(self.log_text(since))
            if m:
                found[0] = m
                return True
            if self.proc is not None and not self.proc.alive():
                raise HarnessError("%s exited (rc=%s) while waiting for /%s/. Log tail:\n%s" % (
                    self.name, self.proc.popen.poll(), regex, tail(self.log_path)))
            return False
        try:
            wait_for(check, timeout, "log line /%s/ from %s" % (regex, self.name))
        except HarnessError as e:
            if "exited" in str(e):
                raise
            raise HarnessError("%s\nLog tail:\n%s" % (e, tail(self.log_path)))
        return found[0]

    def deliveries(self, status=None, rcpt=None, qid=None, since=0):
        """Parsed per-recipient log lines: [dict(id, rcpt, status, text, line)]."""
        out = []
        for line in self.log_text(since).splitlines():
            m = LOG_TO_RE.search(line)
            if not m:
                continue
            d = m.groupdict()
            d["line"] = line
            if status and d["status"] != status:
                continue
            if rcpt and d["rcpt"] != rcpt:
                continue
            if qid and d["id"] != qid:
                continue
            out.append(d)
        return out

    # -- the spool
    def spool_entries(self, sub="env"):
        try:
            return sorted(os.listdir(os.path.join(self.spool, sub)))
        except FileNotFoundError:
            return []

    def log_segments(self):
        """The intake log's segments in spool/log/ (not the recycled files,
        NAME.free, which hold nothing)."""
        return [n for n in self.spool_entries("log") if SEG_RE.match(n)]

    def files_queued(self):
        """Ids with an envelope file in env/. A message committed through
        the intake log may have none yet (held: its log record and the
        daemon's memory hold it until its files are needed), so this is
        the spool's files, not the queue."""
        return [n for n in self.spool_entries("env") if re.fullmatch(QID, n)]

    def queued(self):
        """The queue's ids, sorted: the daemon's LIST over its control
        socket (the protocol of `outbox queue`, include/outbox/control.h;
        spoken here, not through the command, since tests poll this and
        a command per poll costs most under ASan), or, when the daemon is
        not running, `outbox queue list --json`, which reads the spool and
        its intake log (after a kill -9 too)."""
        ids = self._control_list() if self.alive() and self.spool_visible else None
        if ids is not None:
            return ids
        res = run_cmd([cli_path(), "queue", "list", "--json", "-c", self.config_path],
                      timeout=30.0)
        if res.returncode != 0:
            raise HarnessError("outbox queue list failed (%d): %s"
                               % (res.returncode, res.stderr.strip()))
        return sorted(m["id"] for m in json.loads(res.stdout))

    def _control_list(self, timeout=10.0):
        """LIST through spool/control: sorted ids, or None if the socket
        is not there (the daemon is starting or stopping)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(timeout))
        try:
            try:
                s.connect(os.path.join(self.spool, "control"))
            except (FileNotFoundError, ConnectionRefusedError):
                return None
            s.sendall(b"LIST\n")
            chunks = []
            for _ in range(1 << 20):
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            s.close()
        return sorted(m["id"] for m in json.loads(b"".join(chunks)))

    # -- clients
    def send(self, mail_from="app@local.test", rcpts=("rcpt@dest.test",), data=None,
             **kw):
        if data is None:
            data = make_message("hello\r\n", sender=mail_from, to=rcpts[0])
        return smtp_send(self.port, mail_from, rcpts, data, **kw)

    def send_ok(self, *a, **kw):
        res = self.send(*a, **kw)
        if res.code != 250 or not res.queue_id:
            raise HarnessError("expected '250 ... queued as ID', got %r" % (res,))
        return res.queue_id

    def swaks(self, mail_from, rcpts, data, extra=()):
        path = os.path.join(self.dir, "swaks-%s.eml" % os.urandom(4).hex())
        with open(path, "wb") as f:
            f.write(data)
        return swaks_send(self.port, mail_from, rcpts, path, self.dir, extra)

    # -- end-of-test checks
    def scan(self, secrets=None):
        """Problems found in the log and the spool: sanitizer/panic lines and
        secrets (F11). Returns a list of strings (empty = clean)."""
        problems = []
        text = self.log_text(0)
        for line in text.splitlines():
            if SANITIZER_RE.search(line):
                problems.append("log: %s" % line.strip())
                if len(problems) > 10:
                    break
        for s in secrets or secret_forms(self.user or USER, self.password or PASSWORD):
            if s and s in text:
                problems.append("secret %r found in the daemon log" % s)
        problems += scan_tree_for(self.spool, secrets or secret_forms(
            self.user or USER, self.password or PASSWORD))
        return problems

    def shutdown_problems(self):
        """Lines saying the event loop did not close cleanly at exit
        (uv_loop_close() != 0: a handle or request outlived shutdown)."""
        return ["log: %s" % ln.strip() for ln in self.log_text(0).splitlines()
                if LOOP_NOT_CLOSED_RE.search(ln)][:5]


# ---------------------------------------------------------------- the intake log

SEG_RE = re.compile(r"^[0-9a-f]{16}$")  # a segment's name in spool/log/


def parse_segment(data, seq):
    """([(type, id, env, body)], bytes parsed) of the valid records of
    segment number seq at the start of its data (spool_record.h); stops at
    the first invalid one, or at a record of an older segment (a recycled
    file's past)."""
    out, pos = [], 0
    while pos + 64 <= len(data):
        h = data[pos:pos + 64]
        if h[:4] != b"OBL2" or h[4:5] not in (b"A", b"D"):
            break
        env_len, seg = struct.unpack_from("<II", h, 8)
        body_len, = struct.unpack_from("<Q", h, 16)
        qid = h[24:56].rstrip(b"\0").decode("ascii", "replace")
        crc, = struct.unpack_from("<I", h, 56)
        end = pos + 64 + env_len + body_len
        if seg != seq & 0xffffffff or end > len(data):
            break
        env, body = data[pos + 64:pos + 64 + env_len], data[pos + 64 + env_len:end]
        if zlib.crc32(env + body + h[:56]) != crc:
            break
        out.append((h[4:5].decode(), qid, env, body))
        pos = end
    return out, pos


def spool_log_records(spool):
    """[(type, id, env, body, segment name)] of the valid records of every
    segment in spool/log/, in order (a segment retired while it is read
    is skipped)."""
    out = []
    logdir = os.path.join(spool, "log")
    try:
        names = sorted(os.listdir(logdir))
    except FileNotFoundError:
        return out
    for name in names:
        if not SEG_RE.match(name):
            continue
        try:
            with open(os.path.join(logdir, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        out += [r + (name,) for r in parse_segment(data, int(name, 16))[0]]
    return out


def scan_tree_for(root, needles, max_files=20000):
    found = []
    bneedles = [n.encode() for n in needles if n]
    count = 0
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            count += 1
            if count > max_files:
                return found
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    continue
                with open(p, "rb") as f:
                    data = f.read(64 << 20)
            except OSError:
                continue
            for b in bneedles:
                if b in data:
                    found.append("secret %r found in spool file %s" % (b.decode(), p))
    return found


def run_cmd(argv, env=None, timeout=30.0, cwd=None):
    """Run a command to completion (bounded); returns CompletedProcess with
    text stdout/stderr."""
    full_env = dict(os.environ)
    full_env.update({"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1",
                     "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    full_env.update(env or {})
    if (valgrind_dir() and argv and _is_our_binary(argv[0])
            and os.environ.get("OUTBOX_TEST_VALGRIND_CLI") != "0"):
        argv = valgrind_argv(argv, os.path.basename(argv[0]))
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=full_env, timeout=scaled(timeout),
                          cwd=cwd, text=True, errors="replace")


# ---------------------------------------------------------------- test base

class OutboxTestCase(unittest.TestCase):
    """Base class: a temp dir per test, peers and daemons stopped at the end,
    and the end-of-test log scan (sanitizers, panics, secrets)."""

    def setUp(self):
        outboxd_path()  # fail at once with a clear message if not set
        listed = skip_listed(self)
        if listed:
            self.skipTest("listed in OUTBOX_TEST_SKIP (%s)" % listed)
        # memcheck logs of this test are named after it (valgrind_check)
        self._valgrind_tag = "%s-%s" % (test_ident(self), os.urandom(3).hex())
        _VALGRIND_TAG[0] = self._valgrind_tag
        self._started = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="outbox-it-%s-" % self._testMethodName)
        self._daemons = []
        self._peers = []

    def smarthost(self, start=True, **kw):
        sh = Smarthost(self.tmp, name="smarthost%d" % (len(self._peers) + 1), **kw)
        self._peers.append(sh)
        return sh.start() if start else sh

    def fake(self, script, **kw):
        fk = FakeSMTP(self.tmp, script, name="fake%d" % (len(self._peers) + 1), **kw)
        self._peers.append(fk)
        return fk.start()

    def outboxd(self, start=True, **kw):
        d = Outboxd(self.tmp, name="outboxd%d" % (len(self._daemons) + 1), **kw)
        self._daemons.append(d)
        return d.start() if start else d

    def _test_failed(self):
        """Whether the test method already failed (3.11 reports failures to
        the result at once; outcome.success is reset for tearDown)."""
        result = getattr(self._outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    def _peer_secret_problems(self):
        """F11 at the far end: no form of a daemon's relay password in what a
        smarthost stored (the maildir: envelope JSON + DATA). The smarthost's
        wire/ dir is not scanned: it holds the AUTH exchange legitimately."""
        needles = set()
        for d in self._daemons:
            needles.update(n for n in secret_forms(d.user or USER, d.password or PASSWORD) if n)
        problems = []
        for p in self._peers:
            if isinstance(p, Smarthost):
                problems += ["%s: %s" % (p.name, x.replace("spool file", "peer message"))
                             for x in scan_tree_for(p.maildir, sorted(needles))]
        return problems

    def tearDown(self):
        problems = []
        for d in self._daemons:
            if d.proc is not None and not d.proc.alive():
                problems.append("%s exited unexpectedly with %s" % (d.name, d.proc.popen.poll()))
                d.proc = None
            try:
                d.stop()
            except HarnessError as e:
                problems.append(str(e))
            problems += ["%s: %s" % (d.name, p) for p in d.scan()]
            problems += ["%s: %s" % (d.name, p) for p in d.shutdown_problems()]
        for p in self._peers:
            p.stop()
        problems += self._peer_secret_problems()
        problems += valgrind_check(getattr(self, "_valgrind_tag", "-"))
        _note_duration(self)
        ok = not problems and not self._test_failed()
        if not ok:
            for d in self._daemons:
                sys.stderr.write("\n---- %s log tail (%s)\n%s\n" % (d.name, d.log_path,
                                                                  tail(d.log_path, 60)))
            sys.stderr.write("---- kept %s\n" % self.tmp)
        elif not os.environ.get("OUTBOX_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("end-of-test checks:\n  " + "\n  ".join(problems))


def main(file_timeout=None):
    """unittest main for one test file: prints 'N passed, N failed', exits 0/1."""
    if not os.environ.get("OUTBOXD"):
        print("OUTBOXD is not set: export OUTBOXD=/path/to/outboxd (and OUTBOX_CLI)",
              file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(2)
    limit = int(os.environ.get("OUTBOX_TEST_FILE_TIMEOUT") or scaled(file_timeout or 280))

    def on_alarm(_sig, _frame):
        _kill_leftovers()
        sys.stderr.write("test file exceeded %ds: killed\n" % limit)
        print("0 passed, 1 failed (timeout)")
        os._exit(1)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    main_mod = sys.modules["__main__"]
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    suite = (loader.loadTestsFromNames(names, main_mod) if names
             else loader.loadTestsFromModule(main_mod))
    res = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    _kill_leftovers()
    sys.exit(0 if failed == 0 and res.testsRun > 0 else 1)
