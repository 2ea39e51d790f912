#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A programmable DNS server on 127.0.0.1 for tests (UDP and TCP on the same
port), in the spirit of Exim's test-suite fakens. Uses Debian's python3-dnslib.

  fake_dns.py --zone FILE [--port N] [--log FILE]

Prints "READY <port>" on stdout once both sockets listen (--port 0, the
default, picks a free port). The zone is a JSON object, re-read whenever the
file changes (write a temporary file and rename it over the zone for an
atomic switch):

  {
    "mx.test":   {"MX": [[10, "a.mx.test"], [20, "b.mx.test"]]},
    "a.mx.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "null.test": {"MX": [[0, "."]]},
    "alias.test": {"CNAME": "mx.test"},
    "bad.test":  {"faults": {"MX": "SERVFAIL", "*": "TIMEOUT"}},
    "big.test":  {"MX": [[10, "a.mx.test"]], "ttl": 60}
  }

Names are case-insensitive, a trailing dot optional. Record types: MX
([pref, host] pairs; host "." is the null MX), A, AAAA (address lists),
CNAME (one target, followed inside the zone as a real server does), TXT
(strings). Faults, per name and query type ("*" for any type):
  SERVFAIL, REFUSED, NXDOMAIN   that rcode, no records
  TIMEOUT                       never answer (UDP and TCP)
  TRUNCATE                      over UDP: TC bit and no records; TCP answers
An unknown name is NXDOMAIN; a known name without the type is NODATA
(NOERROR, empty answer). A UDP answer over 512 octets is sent truncated (TC)
as a real server without EDNS would, so big answers go over TCP.

--log FILE gets one line per query, flushed: "<name> <TYPE> <udp|tcp>", the
name lower-cased without the trailing dot.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading

from dnslib import AAAA, A, CNAME, MX, QTYPE, RCODE, RR, TXT, DNSLabel, DNSRecord

UDP_MAX = 512
CNAME_DEPTH = 8


class Zone:
    """The JSON zone, reloaded when the file's identity or mtime changes."""

    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.data = {}
        self.lock = threading.Lock()

    def get(self):
        with self.lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                return self.data
            if stamp != self.stamp:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        raw = json.load(f)
                    self.data = {norm(k): v for k, v in raw.items()}
                    self.stamp = stamp
                except (OSError, ValueError) as e:
                    # A half-written file: keep the old zone, try again next time.
                    print(f"fake_dns: zone: {e}", file=sys.stderr, flush=True)
            return self.data


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None
        self.lock = threading.Lock()

    def write(self, name, qtype, transport):
        if not self.f:
            return
        with self.lock:
            self.f.write(f"{name} {qtype} {transport}\n")
            self.f.flush()


def norm(name):
    name = str(name).lower()
    return name[:-1] if name.endswith(".") else name


def fault_of(entry, qtype):
    faults = entry.get("faults", {}) if entry else {}
    return faults.get(qtype) or faults.get("*")


def make_rr(name, qtype, value, ttl):
    if qtype == "MX":
        pref, host = value
        host = "" if host in (".", "") else host
        return RR(name, QTYPE.MX, ttl=ttl, rdata=MX(DNSLabel(host), int(pref)))
    if qtype == "A":
        return RR(name, QTYPE.A, ttl=ttl, rdata=A(value))
    if qtype == "AAAA":
        return RR(name, QTYPE.AAAA, ttl=ttl, rdata=AAAA(value))
    if qtype == "TXT":
        return RR(name, QTYPE.TXT, ttl=ttl, rdata=TXT(value))
    return None


def answer(zone, request, transport):
    """The reply record, or None to stay silent."""
    q = request.q
    qname = norm(q.qname)
    qtype = QTYPE.get(q.qtype, str(q.qtype))
    reply = request.reply()
    reply.header.aa = 1
    data = zone.get()
    name = qname
    for _ in range(CNAME_DEPTH):
        entry = data.get(name)
        fault = fault_of(entry, qtype)
        if fault == "TIMEOUT":
            return None
        if fault == "TRUNCATE" and transport == "udp":
            reply.header.tc = 1
            return reply
        if fault in ("SERVFAIL", "REFUSED", "NXDOMAIN"):
            reply.header.rcode = getattr(RCODE, fault)
            return reply
        if entry is None:
            if name == qname:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        ttl = int(entry.get("ttl", 60))
        if "CNAME" in entry and qtype != "CNAME":
            target = norm(entry["CNAME"])
            reply.add_answer(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target)))
            name = target
            continue
        if qtype == "CNAME" and "CNAME" in entry:
            reply.add_answer(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(norm(entry["CNAME"]))))
            return reply
        for value in entry.get(qtype, []):
            rr = make_rr(name, qtype, value, ttl)
            if rr is not None:
                reply.add_answer(rr)
        return reply
    return reply


def handle(zone, log, data, transport):
    try:
        request = DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 - garbage in, no answer out
        return None
    if not request.questions:
        return None
    q = request.q
    log.write(norm(q.qname), QTYPE.get(q.qtype, str(q.qtype)), transport)
    reply = answer(zone, request, transport)
    if reply is None:
        return None
    packed = reply.pack()
    if transport == "udp" and len(packed) > UDP_MAX:
        short = request.reply()
        short.header.aa = 1
        short.header.tc = 1
        packed = short.pack()
    return packed


def serve_udp(sock, zone, log):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        out = handle(zone, log, data, "udp")
        if out is not None:
            try:
                sock.sendto(out, peer)
            except OSError:
                pass


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_conn(conn, zone, log):
    with conn:
        try:
            while True:
                head = recv_exact(conn, 2)
                if head is None:
                    return
                data = recv_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                out = handle(zone, log, data, "tcp")
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return


def serve_tcp(sock, zone, log):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_conn, args=(conn, zone, log), daemon=True).start()


def bind_pair(port):
    """UDP and TCP on one port; with port 0, retry until both fit."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))
        real = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", real))
        except OSError:
            udp.close()
            tcp.close()
            if port != 0:
                raise
            continue
        tcp.listen(64)
        return udp, tcp, real
    raise OSError("no free port for UDP and TCP")


def main():
    ap = argparse.ArgumentParser(description="programmable fake DNS server")
    ap.add_argument("--zone", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    args = ap.parse_args()
    zone = Zone(args.zone)
    zone.get()
    log = Log(args.log)
    udp, tcp, port = bind_pair(args.port)
    threading.Thread(target=serve_tcp, args=(tcp, zone, log), daemon=True).start()
    print(f"READY {port}", flush=True)
    serve_udp(udp, zone, log)


if __name__ == "__main__":
    main()
