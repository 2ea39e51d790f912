#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A lean SMTP sink for benchmarks: one asyncio process listening on several
loopback addresses with the same port, answering everything with success
(PIPELINING, 8BITMIME, SIZE; no TLS, no AUTH). Much faster than aiosmtpd.

  smtp_sink.py --ips 127.0.0.2,127.0.0.3 [--port 0] --stats FILE

Prints "READY <port>". Every 0.25 s it rewrites FILE (JSON, atomically) with
the counters: connections, transactions, recipients, per-address
connections/transactions, the largest number of concurrent sessions.
On SIGTERM it writes FILE a last time including "arrivals": [[id, unix
time], ...] where id is the value of the message's X-Bench-Id header (-1 if
none), and exits 0.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

EHLO = (b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
        b"250 SIZE 104857600\r\n")
ID_RE = re.compile(rb"\r\nX-Bench-Id: (\d+)\r\n")


class Stats:
    def __init__(self):
        self.connections = 0
        self.transactions = 0
        self.recipients = 0
        self.active = 0
        self.max_active = 0
        self.per_ip = {}
        self.arrivals = []

    def ip(self, ip):
        return self.per_ip.setdefault(ip, {"connections": 0, "transactions": 0})

    def snapshot(self, final=False):
        out = {"connections": self.connections, "transactions": self.transactions,
               "recipients": self.recipients, "max_active": self.max_active,
               "active": self.active, "per_ip": self.per_ip, "received": len(self.arrivals),
               "time": time.time()}
        if final:
            out["arrivals"] = self.arrivals
        return out


class Sink(asyncio.Protocol):
    def __init__(self, stats, ip):
        self.stats = stats
        self.ip = ip
        self.buf = b""
        self.in_data = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        st = self.stats
        st.connections += 1
        st.ip(self.ip)["connections"] += 1
        st.active += 1
        st.max_active = max(st.max_active, st.active)
        transport.write(b"220 sink.bench ESMTP\r\n")

    def connection_lost(self, exc):
        self.stats.active -= 1

    def data_received(self, data):
        self.buf += data
        out = []
        while True:
            if self.in_data:
                i = self.buf.find(b"\r\n.\r\n")
                if i == -1:
                    # keep the tail in case the terminator is split
                    break
                msg, self.buf = self.buf[:i + 2], self.buf[i + 5:]
                self.in_data = False
                m = ID_RE.search(b"\r\n" + msg)
                self.stats.arrivals.append((int(m.group(1)) if m else -1, time.time()))
                self.stats.transactions += 1
                self.stats.ip(self.ip)["transactions"] += 1
                out.append(b"250 2.0.0 ok\r\n")
                continue
            i = self.buf.find(b"\n")
            if i == -1:
                break
            line, self.buf = self.buf[:i], self.buf[i + 1:]
            verb = line[:4].upper()
            if verb in (b"EHLO",):
                out.append(EHLO)
            elif verb == b"HELO":
                out.append(b"250 sink.bench\r\n")
            elif verb == b"MAIL":
                out.append(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                self.stats.recipients += 1
                out.append(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                self.in_data = True
                out.append(b"354 go ahead\r\n")
                # a message may start right here in the same buffer: the
                # loop goes on in data mode
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 bye\r\n")
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            else:  # RSET, NOOP, anything else
                out.append(b"250 2.0.0 ok\r\n")
        if out:
            self.transport.write(b"".join(out))


def write_stats(path, stats, final=False):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats.snapshot(final), f)
    os.replace(tmp, path)


async def serve(opts):
    stats = Stats()
    loop = asyncio.get_running_loop()
    ips = [ip for ip in opts.ips.split(",") if ip]
    port = opts.port
    servers = []
    for ip in ips:
        srv = await loop.create_server(lambda ip=ip: Sink(stats, ip), ip, port,
                                       reuse_address=True, backlog=1024)
        port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    while not stop.done():
        write_stats(opts.stats, stats)
        await asyncio.wait([stop], timeout=0.25)
    for s in servers:
        s.close()
    write_stats(opts.stats, stats, final=True)


def main():
    p = argparse.ArgumentParser(description="lean SMTP sink for benchmarks")
    p.add_argument("--ips", required=True, help="comma-separated addresses")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stats", required=True)
    opts = p.parse_args()
    asyncio.run(serve(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
