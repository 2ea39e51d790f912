#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Direct-delivery fan-out benchmark: N messages to D domains whose MX
records point at S local sinks (127.0.0.2 ... 127.0.0.(S+1), one lean
asyncio sink process, bench/smtp_sink.py), injected into outboxd by a lean
pipelining asyncio client over a few connections.

  bench/mx_fanout.py [--smoke] [--messages N] [--domains D] [--sinks S]
                     [--clients C] [--size BYTES] [--cpd N] [--json] [--keep]

outboxd is $OUTBOXD or build/outboxd. DNS is dnsmasq on 127.0.0.1 (see
tests/integration/dns.py). Reports: accept rate (messages/s to get every
250), end-to-end rate (first injection to last arrival at a sink), sink
connections vs transactions (session reuse), p50/p90/p99 end-to-end latency
(250 at the injector to arrival at the sink), and lost/duplicated messages.
--smoke: 500 messages, done in well under 30 s. Exit 0 only if every
message arrived exactly once.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import dns as dnsmod  # noqa: E402  (tests/integration/dns.py)

PY = "/usr/bin/python3"


def free_port_all():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def outboxd_path():
    path = os.environ.get("OUTBOXD") or os.path.join(TOP, "build", "outboxd")
    if not os.access(path, os.X_OK):
        sys.exit("mx_fanout: no outboxd at %s (set OUTBOXD or build build/outboxd)" % path)
    return os.path.abspath(path)


# ---------------------------------------------------------------- setup

def make_zone(domains, sinks):
    zone = {}
    for k in range(sinks):
        zone["mx%d.bench.test" % k] = {"A": ["127.0.0.%d" % (2 + k)]}
    for i in range(domains):
        zone["d%d.bench.test" % i] = {"MX": [[10, "mx%d.bench.test" % (i % sinks)]]}
    return zone


def start_sink(workdir, sinks, port):
    stats = os.path.join(workdir, "sink-stats.json")
    ips = ",".join("127.0.0.%d" % (2 + k) for k in range(sinks))
    proc = subprocess.Popen([PY, os.path.join(HERE, "smtp_sink.py"), "--ips", ips,
                             "--port", str(port), "--stats", stats],
                            stdout=subprocess.PIPE, stderr=open(
                                os.path.join(workdir, "sink.err"), "wb"),
                            start_new_session=True)
    line = read_line(proc.stdout, 10)
    m = re.match(rb"READY (\d+)", line or b"")
    if not m:
        proc.kill()
        sys.exit("mx_fanout: sink did not start: %r" % line)
    return proc, stats


def read_line(f, timeout):
    import select
    r, _, _ = select.select([f], [], [], timeout)
    return f.readline() if r else None


def write_config(workdir, listen_port, dns_port, mx_port, cpd):
    spool = os.path.join(workdir, "spool")
    text = ("[listen]\naddress = 127.0.0.1:%d\nhostname = bench.test\n"
            "max_connections = 512\n\n"
            "[spool]\ndir = %s\nretry_min = 1s\nretry_max = 2s\n\n"
            "[mx]\ndns_servers = 127.0.0.1:%d\nport = %d\ntls = none\n"
            "connections_per_domain = %d\n\n"
            "[log]\ntarget = stderr\nlevel = info\n" % (listen_port, spool, dns_port,
                                                        mx_port, cpd))
    path = os.path.join(workdir, "outbox.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_outboxd(workdir, config):
    log = os.path.join(workdir, "outboxd.log")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    proc = subprocess.Popen([outboxd_path(), "-f", "-c", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log, "rb") as f:
            if re.search(rb"\bready\b", f.read()):
                return proc, log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(log, "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    sys.exit("mx_fanout: outboxd did not become ready:\n" + tail)


def stop(proc, timeout=15):
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


# ---------------------------------------------------------------- injector

def message(n, domains, size):
    rcpt = "u%d@d%d.bench.test" % (n, n % domains)
    head = ("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: <bench-%d@bench.test>\r\nFrom: <bench@local.test>\r\n"
            "To: <%s>\r\nSubject: bench %d\r\nX-Bench-Id: %d\r\n\r\n" % (n, rcpt, n, n))
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = line * max(1, size // len(line))
    return rcpt, head.encode() + body


async def read_reply(reader):
    code = None
    for _ in range(100):
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        code = int(line[:3])
        if line[3:4] != b"-":
            return code, line
    raise ConnectionError("reply too long")


async def client(port, queue, accepted, domains, size, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await read_reply(reader)
    writer.write(b"EHLO bench.client\r\n")
    await read_reply(reader)
    while True:
        try:
            n = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        rcpt, data = message(n, domains, size)
        # PIPELINING: MAIL, RCPT and DATA in one write (RFC 2920)
        writer.write(b"MAIL FROM:<bench@local.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt.encode())
        c1, _ = await read_reply(reader)
        c2, _ = await read_reply(reader)
        c3, t3 = await read_reply(reader)
        if c3 != 354:
            errors.append((n, c1, c2, t3))
            continue
        writer.write(data + b".\r\n")
        c4, t4 = await read_reply(reader)
        if c4 == 250:
            accepted[n] = time.time()
        else:
            errors.append((n, c4, t4))
    writer.write(b"QUIT\r\n")
    try:
        await read_reply(reader)
    except (ConnectionError, ValueError):
        pass
    writer.close()


async def inject(port, total, clients, domains, size):
    queue = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    accepted, errors = {}, []
    await asyncio.gather(*(client(port, queue, accepted, domains, size, errors)
                           for _ in range(clients)))
    return accepted, errors


# ---------------------------------------------------------------- report

def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def wait_arrivals(stats_path, total, timeout):
    deadline = time.monotonic() + timeout
    last = {}
    while time.monotonic() < deadline:
        try:
            with open(stats_path) as f:
                last = json.load(f)
        except (OSError, ValueError):
            pass
        if last.get("received", 0) >= total:
            return True
        time.sleep(0.1)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="500 messages, < 30 s")
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--domains", type=int, default=100)
    p.add_argument("--sinks", type=int, default=10)
    p.add_argument("--clients", type=int, default=8, help="injecting SMTP connections")
    p.add_argument("--size", type=int, default=2048, help="body bytes per message")
    p.add_argument("--cpd", type=int, default=10, help="[mx] connections_per_domain")
    p.add_argument("--timeout", type=float, default=None, help="drain limit, seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = p.parse_args()
    if opts.smoke:
        opts.messages = min(opts.messages, 500)
    timeout = opts.timeout or (20.0 if opts.smoke else 600.0)

    workdir = tempfile.mkdtemp(prefix="outbox-bench-")
    procs = []
    dns = None
    ok = False
    try:
        dns = dnsmod.Dnsmasq(workdir, make_zone(opts.domains, opts.sinks)).start()
        mx_port = free_port_all()
        sink, stats_path = start_sink(workdir, opts.sinks, mx_port)
        procs.append(sink)
        listen_port = free_port_all()
        config = write_config(workdir, listen_port, dns.port, mx_port, opts.cpd)
        daemon, log = start_outboxd(workdir, config)
        procs.append(daemon)

        t0 = time.time()
        accepted, errors = asyncio.run(inject(listen_port, opts.messages, opts.clients,
                                              opts.domains, opts.size))
        t_accept = time.time() - t0
        drained = wait_arrivals(stats_path, len(accepted), timeout)
        stop(daemon)
        stop(sink)
        with open(stats_path) as f:
            st = json.load(f)
        arrivals = st.get("arrivals", [])
        seen = {}
        for n, t in arrivals:
            seen.setdefault(n, []).append(t)
        dups = sum(len(v) - 1 for v in seen.values())
        missing = [n for n in accepted if n not in seen]
        t_last = max((t for _n, t in arrivals), default=t0)
        lat = sorted(seen[n][0] - accepted[n] for n in accepted if n in seen)
        report = {
            "messages": opts.messages, "domains": opts.domains, "sinks": opts.sinks,
            "clients": opts.clients, "size": opts.size, "connections_per_domain": opts.cpd,
            "accepted": len(accepted), "refused": len(errors),
            "accept_seconds": round(t_accept, 3),
            "accept_rate": round(len(accepted) / t_accept, 1) if t_accept > 0 else None,
            "end_to_end_seconds": round(t_last - t0, 3),
            "end_to_end_rate": round(len(seen) / (t_last - t0), 1) if t_last > t0 else None,
            "delivered": len(seen), "missing": len(missing), "duplicates": dups,
            "sink_connections": st["connections"], "sink_transactions": st["transactions"],
            "transactions_per_connection": round(st["transactions"] / st["connections"], 1)
            if st["connections"] else None,
            "sink_max_concurrent_sessions": st["max_active"],
            "latency_p50_ms": round(1000 * percentile(lat, 50), 1) if lat else None,
            "latency_p90_ms": round(1000 * percentile(lat, 90), 1) if lat else None,
            "latency_p99_ms": round(1000 * percentile(lat, 99), 1) if lat else None,
            "drained": drained, "outboxd": outboxd_path(),
        }
        ok = drained and not missing and not dups and not errors
        if opts.json:
            print(json.dumps(report, indent=1))
        else:
            print_report(report)
        if errors:
            print("first refusals: %r" % errors[:5], file=sys.stderr)
    finally:
        for pr in procs:
            stop(pr)
        if dns is not None:
            dns.stop()
        if opts.keep or not ok:
            print("work directory kept: %s" % workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def print_report(r):
    print("outbox MX fan-out: %d messages -> %d domains on %d sinks, %d injecting "
          "connections, %d-byte bodies, connections_per_domain %d" % (
              r["messages"], r["domains"], r["sinks"], r["clients"], r["size"],
              r["connections_per_domain"]))
    print("  accepted       %6d in %7.2f s  = %8.1f msg/s  (refused %d)" % (
        r["accepted"], r["accept_seconds"], r["accept_rate"] or 0, r["refused"]))
    print("  delivered      %6d in %7.2f s  = %8.1f msg/s end to end  (missing %d, "
          "duplicates %d)" % (r["delivered"], r["end_to_end_seconds"],
                              r["end_to_end_rate"] or 0, r["missing"], r["duplicates"]))
    print("  sink sessions  %6d connections, %d transactions (%.1f per connection), "
          "at most %d at once" % (r["sink_connections"], r["sink_transactions"],
                                  r["transactions_per_connection"] or 0,
                                  r["sink_max_concurrent_sessions"]))
    if r["latency_p50_ms"] is not None:
        print("  latency 250->sink  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms" % (
            r["latency_p50_ms"], r["latency_p90_ms"], r["latency_p99_ms"]))


if __name__ == "__main__":
    sys.exit(main())
