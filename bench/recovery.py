#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Start-up recovery benchmark: plant N queued messages directly into a
spool, start outboxd (relay mode, to one bench/smtp_sink.py on loopback)
and measure, from the exec of outboxd:

  * the first 250 for a NEW message: a client tries to connect every 10 ms
    and, once in, sends one message (the listener must not wait for the
    whole queue to be loaded);
  * the first delivery of a queued message at the sink;
  * the whole queue delivered (skipped with --no-drain), and its rate.

  bench/recovery.py [--smoke] [--messages N] [--size BYTES] [--no-drain]
                    [--timeout S] [--json] [--keep]

outboxd is $OUTBOXD or build/outboxd (use a release build for figures).
The envelopes are written here in the record format of
src/proto/envelope.c ("<type><len>:<value>\\n" records in a fixed order,
ending in an 'X' record holding the CRC-32 of everything before it), so
a daemon that loads them all is also a check of this writer: any envelope
it cannot decode is quarantined and reported as missing.
--smoke: 5,000 messages. Exit 0 only if every planted message and the
probe arrived exactly once (or, with --no-drain, the probe got 250 and
delivery started).
"""
import argparse
import calendar
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PY = "/usr/bin/python3"
PROBE_TAG = 999999999


def outboxd_path():
    path = os.environ.get("OUTBOXD") or os.path.join(TOP, "build", "outboxd")
    if not os.access(path, os.X_OK):
        sys.exit("recovery: no outboxd at %s (set OUTBOXD or build build/outboxd)" % path)
    return os.path.abspath(path)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- planting

def record(kind, value):
    if isinstance(value, str):
        value = value.encode()
    return b"%c%d:%s\n" % (ord(kind), len(value), value)


def envelope(qid, sender, rcpt, arrival, size, crc):
    """The envelope file for one pending recipient (envelope_encode order)."""
    body = b"".join([
        record("V", "1"), record("I", qid), record("S", sender),
        record("T", str(arrival)), record("N", "0"), record("A", "0"),
        record("Z", str(size)), record("C", "%08x" % crc), record("F", "0"),
        record("H", "[127.0.0.1]:1"), record("R", rcpt), record("Q", "P"),
    ])
    return body + record("X", "%08x" % (zlib.crc32(body) & 0xFFFFFFFF))


def message(n, size):
    head = ("From: bench@bench.test\r\nTo: sink@sink.test\r\nSubject: queued %d\r\n"
            "X-Bench-Id: %d\r\n\r\n" % (n, n)).encode()
    line = b"x" * 70 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def plant(spool, total, size):
    """Queue ids as src/base/id.c makes them: 40 bits of microseconds, 12
    bits of counter, 12 random bits; one microsecond apart, oldest first."""
    for sub in ("tmp", "msg", "env", "corrupt"):
        os.makedirs(os.path.join(spool, sub), mode=0o700, exist_ok=True)
    envdir, msgdir = os.path.join(spool, "env"), os.path.join(spool, "msg")
    now = time.time()
    us0 = int(now * 1e6) - total - 1000
    # Arrival times spread over the last hour, in id order.
    hour = 3600
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for n in range(total):
        v = ((us0 + n) & 0xFFFFFFFFFF) << 24 | (n & 0xFFF) << 12 | random.getrandbits(12)
        qid = "%016X" % v
        msg = message(n, size)
        fd = os.open(os.path.join(msgdir, qid), flags, 0o600)
        os.write(fd, msg)
        os.close(fd)
        arrival = int(now) - hour + n * hour // total
        env = envelope(qid, "bench@bench.test", "sink%d@sink.test" % n, arrival,
                       len(msg), zlib.crc32(msg) & 0xFFFFFFFF)
        fd = os.open(os.path.join(envdir, qid), flags, 0o600)
        os.write(fd, env)
        os.close(fd)


# ---------------------------------------------------------------- processes

def start_sink(workdir):
    stats = os.path.join(workdir, "sink.json")
    proc = subprocess.Popen([PY, os.path.join(HERE, "smtp_sink.py"), "--ips", "127.0.0.1",
                             "--port", "0", "--stats", stats], stdout=subprocess.PIPE,
                            start_new_session=True)
    line = proc.stdout.readline().decode()
    m = re.match(r"READY (\d+)", line)
    if not m:
        proc.kill()
        sys.exit("recovery: sink did not start: %r" % line)
    return proc, int(m.group(1)), stats


def write_config(workdir, listen_port, sink_port):
    spool = os.path.join(workdir, "spool")
    text = ("[listen]\naddress = 127.0.0.1:%d\nhostname = bench.test\n\n"
            "[spool]\ndir = %s\nretry_min = 1s\nretry_max = 2s\n\n"
            "[relay]\nhost = 127.0.0.1:%d\ntls = none\n\n"
            "[log]\ntarget = stderr\nlevel = info\n" % (listen_port, spool, sink_port))
    path = os.path.join(workdir, "outbox.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


def stop(proc, timeout=30):
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


# ---------------------------------------------------------------- probe

def smtp_reply(f):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return int(line[:3]), line


def probe(port, deadline):
    """Connect every 10 ms until the listener answers, then send one message.
    Returns (time of the first successful connect, time of the 250)."""
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, socket.timeout):
            s.close()
            time.sleep(0.01)
            continue
        connected = time.time()
        f = s.makefile("rb")
        try:
            steps = [None, b"EHLO probe.test\r\n", b"MAIL FROM:<probe@bench.test>\r\n",
                     b"RCPT TO:<probe@sink.test>\r\n", b"DATA\r\n",
                     message(PROBE_TAG, 300) + b".\r\n"]
            for i, cmd in enumerate(steps):
                if cmd is not None:
                    s.sendall(cmd)
                code, line = smtp_reply(f)
                want = 354 if i == 4 else 220 if i == 0 else 250
                if code != want:
                    raise ConnectionError("probe got %r" % line)
            accepted = time.time()
            s.sendall(b"QUIT\r\n")
            return connected, accepted
        finally:
            f.close()
            s.close()
    raise TimeoutError("no 250 for the probe message")


# ---------------------------------------------------------------- measure

def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def wait_received(stats, want, deadline, daemon):
    while time.time() < deadline and daemon.poll() is None:
        if read_stats(stats).get("received", 0) >= want:
            return True
        time.sleep(0.1)
    return False


def log_time(log, pattern):
    """Wall time of the first daemon log line matching pattern (or None)."""
    with open(log, "rb") as f:
        for line in f:
            if re.search(pattern, line):
                m = re.match(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
                if m:
                    t = time.strptime(m.group(1)[:19].decode(), "%Y-%m-%dT%H:%M:%S")
                    return calendar.timegm(t) + float(b"0" + m.group(1)[19:])
    return None


def run(opts):
    workdir = tempfile.mkdtemp(prefix="outbox-recovery-")
    procs = []
    try:
        t = time.time()
        plant(os.path.join(workdir, "spool"), opts.messages, opts.size)
        plant_s = time.time() - t
        sink, sink_port, stats = start_sink(workdir)
        procs.append(sink)
        listen = free_port()
        config = write_config(workdir, listen, sink_port)
        log = os.path.join(workdir, "outboxd.log")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        t_exec = time.time()
        daemon = subprocess.Popen([outboxd_path(), "-f", "-c", config],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(log, "wb"), env=env, start_new_session=True)
        procs.append(daemon)
        t_conn, t_250 = probe(listen, t_exec + opts.timeout)
        total = opts.messages + 1
        drained = None
        if opts.no_drain:
            wait_received(stats, 1, t_exec + opts.timeout, daemon)
        else:
            drained = wait_received(stats, total, t_exec + opts.timeout, daemon)
        t_stop = time.time()
        rc = stop(daemon)
        procs.remove(daemon)
        stop(sink)
        procs.remove(sink)
        st = read_stats(stats)
        arrivals = st.get("arrivals", [])
        times = sorted(a[1] for a in arrivals if a[0] != PROBE_TAG)
        probe_arrival = [a[1] for a in arrivals if a[0] == PROBE_TAG]
        seen = {}
        for n, _ in arrivals:
            seen[n] = seen.get(n, 0) + 1
        dups = sum(c - 1 for c in seen.values() if c > 1)
        got = sum(1 for n in seen if 0 <= n < opts.messages)
        corrupt = len(os.listdir(os.path.join(workdir, "spool", "corrupt")))
        # Old daemon: "N queued messages" once loaded, before listening;
        # two-phase: "N queued messages to load", later "... loaded".
        t_loaded = log_time(log, rb"queued messages?( loaded)?\s*$")
        r = {
            "messages": opts.messages, "size": opts.size, "outboxd": outboxd_path(),
            "plant_seconds": round(plant_s, 2),
            "first_connect_s": round(t_conn - t_exec, 3),
            "first_250_s": round(t_250 - t_exec, 3),
            "queue_loaded_log_s": round(t_loaded - t_exec, 3) if t_loaded else None,
            "first_delivery_s": round(times[0] - t_exec, 3) if times else None,
            "delivered": got, "duplicates": dups, "quarantined": corrupt,
            "drained": drained,
            "all_delivered_s": round(times[-1] - t_exec, 3) if drained and times else None,
            "probe_delivered_s": round(probe_arrival[0] - t_exec, 3) if probe_arrival else None,
            "window_s": round(t_stop - t_exec, 3),
            "daemon_exit": rc,
        }
        if drained and len(times) > 1:
            r["rate_msg_s"] = round(len(times) / (times[-1] - t_exec), 1)
        elif times:
            r["rate_msg_s"] = round(len(times) / (t_stop - t_exec), 1)
        else:
            r["rate_msg_s"] = None
        ok = (dups == 0 and corrupt == 0 and bool(times)
              and (opts.no_drain or (drained and got == opts.messages and probe_arrival)))
        return r, ok
    finally:
        for p in procs:
            stop(p)
        if opts.keep:
            print("work directory kept: %s" % workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def fmt(v, unit="s"):
    return "%9.3f %s" % (v, unit) if v is not None else "%9s  " % "-"


def print_report(r):
    print("outbox recovery: %d queued messages (%d-byte bodies), planted in %.1f s"
          % (r["messages"], r["size"], r["plant_seconds"]))
    print("  (times after exec of %s)" % r["outboxd"])
    print("  listener accepts a connection     %s" % fmt(r["first_connect_s"]))
    print("  250 for a new message             %s" % fmt(r["first_250_s"]))
    print("  queue loaded (daemon log)         %s" % fmt(r["queue_loaded_log_s"]))
    print("  first queued message at the sink  %s" % fmt(r["first_delivery_s"]))
    if r["drained"] is not None:
        print("  whole queue delivered             %s  (%s)" % (
            fmt(r["all_delivered_s"]), "complete" if r["drained"] else "NOT complete"))
    print("  probe message at the sink         %s" % fmt(r["probe_delivered_s"]))
    print("  delivered %d of %d, duplicates %d, quarantined %d, rate %s msg/s"
          % (r["delivered"], r["messages"], r["duplicates"], r["quarantined"],
             r["rate_msg_s"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=100000)
    p.add_argument("--smoke", action="store_true", help="5,000 messages")
    p.add_argument("--size", type=int, default=1024, help="message bytes")
    p.add_argument("--no-drain", action="store_true",
                   help="stop after the first delivery (skip the full drain)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for the whole run (default 60 smoke, 1200)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = p.parse_args()
    if opts.smoke:
        opts.messages = 5000
    if opts.timeout is None:
        opts.timeout = 60 if opts.smoke else 1200
    r, ok = run(opts)
    if opts.json:
        print(json.dumps(r, indent=1))
    else:
        print_report(r)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
