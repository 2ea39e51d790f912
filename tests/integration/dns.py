# SPDX-License-Identifier: MIT
"""DNS servers on loopback for the MX tests: Debian's dnsmasq for plain
zones, tests/peers/fake_dns.py (python3-dnslib) for the faults dnsmasq
cannot produce (SERVFAIL, timeout, TC bit, ...).

Both take the same zone description, the JSON that fake_dns.py reads:

    {"a.test":     {"MX": [[10, "mx1.a.test"], [20, "mx2.a.test"]]},
     "mx1.a.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
     "alias.test": {"CNAME": "mx1.a.test"},
     "null.test":  {"MX": [[0, "."]]},
     "bad.test":   {"MX": [[10, "x.test"]], "faults": {"MX": "SERVFAIL"}}}

Unknown names answer NXDOMAIN; a known name without the asked type NODATA.
dnsmasq never sees /etc/resolv.conf or /etc/hosts, never forwards, and
answers REFUSED for names outside .test. Each server is started and stopped
by PID, every wait is bounded, and `queries()` returns what was asked, from
the server's own log, so a test can assert that a lookup did NOT happen.
"""
import json
import os
import re
import socket
import time

import harness
from harness import HarnessError, Proc, PY, PEERS

DNSMASQ = "/usr/sbin/dnsmasq"
FAKE_DNS = os.path.join(PEERS, "fake_dns.py")
SERIAL_NAME = "zone-serial.outbox-test.test"  # marker name, see FakeDns.set_zone


def free_udp_tcp_port():
    """A port free right now for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise HarnessError("no free UDP+TCP port found")


def query(port, name, qtype="A", timeout=1.0, tcp=False, ip="127.0.0.1"):
    """One query to ip:port with dnslib: (rcode name, [rdata str]),
    or (None, []) on timeout."""
    import dnslib
    q = dnslib.DNSRecord.question(name, qtype)
    try:
        if tcp:
            with socket.create_connection((ip, port), timeout=timeout) as s:
                pkt = q.pack()
                s.sendall(len(pkt).to_bytes(2, "big") + pkt)
                data = b""
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big"):
                        break
                data = data[2:]
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(q.pack(), (ip, port))
                data, _ = s.recvfrom(65535)
    except (socket.timeout, TimeoutError, OSError):
        return None, []
    r = dnslib.DNSRecord.parse(data)
    return dnslib.RCODE[r.header.rcode], [str(rr.rdata) for rr in r.rr]


# ---------------------------------------------------------------- dnsmasq

def dnsmasq_args(zone):
    """The dnsmasq options that serve zone (faults are not supported)."""
    args = []
    for name, recs in zone.items():
        for kind, val in recs.items():
            if kind == "MX":
                for pref, host in val:
                    if host in (".", ""):
                        # RFC 7505 null MX: preference 0, root target
                        args.append("--dns-rr=%s,15,%04x00" % (name, int(pref)))
                    else:
                        args.append("--mx-host=%s,%s,%d" % (name, host, int(pref)))
            elif kind in ("A", "AAAA"):
                for ip in val:
                    args.append("--host-record=%s,%s" % (name, ip))
            elif kind == "CNAME":
                args.append("--cname=%s,%s" % (name, val))
            elif kind == "faults":
                raise HarnessError("dnsmasq cannot play faults (%s %r): use FakeDns" % (
                    name, val))
            else:
                raise HarnessError("dnsmasq zone: unsupported type %s for %s" % (kind, name))
    return args


class Dnsmasq:
    """dnsmasq on <address, default 127.0.0.1>:<port>, authoritative-ish for .test only.

    --conf-file=/dev/null and --no-resolv/--no-hosts/--no-poll keep it away
    from every system file; --local=/test/ makes unknown .test names NXDOMAIN
    (never forwarded: there is no upstream at all); --user=root keeps it from
    changing user (we are root in CI; as non-root the option is ignored with
    a warning, harmless). The query log goes to a file we parse."""

    def __init__(self, workdir, zone, name="dnsmasq", port=None, address="127.0.0.1"):
        self.address = address
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.zone = zone
        self.fixed_port = port
        self.port = port
        self.log_path = os.path.join(self.dir, "queries.log")
        self.proc = None

    def argv(self):
        return [DNSMASQ, "--keep-in-foreground", "--port=%d" % self.port,
                "--listen-address=" + self.address, "--bind-interfaces", "--no-resolv",
                "--no-hosts", "--no-poll", "--pid-file=", "--conf-file=/dev/null",
                "--user=root", "--group=root", "--local=/test/", "--local-ttl=0",
                "--cache-size=0", "--log-queries=extra", "--log-facility=" + self.log_path
                ] + dnsmasq_args(self.zone)

    def start(self, timeout=10.0):
        for attempt in range(3):
            if self.fixed_port is None:
                self.port = free_udp_tcp_port()
            self.proc = Proc(self.argv(), self.name, self.dir)
            if self._wait_answering(timeout):
                return self
            err = harness.tail(self.proc.stderr_path)
            self.proc.stop(2)
            self.proc = None
            if self.fixed_port is None and attempt < 2 and "in use" in err:
                continue
            raise HarnessError("dnsmasq did not answer on port %d: %s" % (self.port, err))
        return self

    def _wait_answering(self, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 2):
            if not self.proc.alive():
                return False
            rcode, _ = query(self.port, "probe.outbox-test.test", "A", timeout=0.3,
                             ip=self.address)
            if rcode is not None:
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5)
            self.proc = None

    def restart(self, zone=None):
        """Stop, optionally change the zone, start again on the same port."""
        self.stop()
        if zone is not None:
            self.zone = zone
        self.fixed_port = self.port
        return self.start()

    def queries(self, name=None, qtype=None):
        """[(name, type)] asked so far (our own probes left out)."""
        out = []
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return out
        for m in re.finditer(r"query\[(\w+)\] (\S+) from", text):
            qn, qt = m.group(2).rstrip(".").lower(), m.group(1).upper()
            if qn.endswith("outbox-test.test"):
                continue
            if name and qn != name.lower():
                continue
            if qtype and qt != qtype.upper():
                continue
            out.append((qn, qt))
        return out


# ---------------------------------------------------------------- fake_dns.py

class FakeDns:
    """tests/peers/fake_dns.py (python3-dnslib): the zone is a JSON file the
    server re-reads when it changes; `faults` entries ({TYPE or "*": FAULT}) play SERVFAIL, REFUSED,
    NXDOMAIN, TIMEOUT (no answer) or TRUNCATE (TC bit over UDP, the real
    answer over TCP)."""

    def __init__(self, workdir, zone, name="fakedns", port=0):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.zone_path = os.path.join(self.dir, "zone.json")
        self.log_path = os.path.join(self.dir, "queries.log")
        self.port = port
        self.serial = 0
        self.proc = None
        self._write(zone)

    def _write(self, zone):
        self.serial += 1
        full = dict(zone)
        # a marker name whose A record carries the zone version: set_zone()
        # waits until the server answers with the new one
        full[SERIAL_NAME] = {"A": ["127.%d.%d.%d" % ((self.serial >> 16) & 255,
                                                      (self.serial >> 8) & 255,
                                                      self.serial & 255)]}
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(full, f, indent=1)
        os.replace(tmp, self.zone_path)
        return full[SERIAL_NAME]["A"][0]

    def start(self):
        if not os.path.exists(FAKE_DNS):
            raise HarnessError("%s does not exist (yet)" % FAKE_DNS)
        argv = [PY, FAKE_DNS, "--port", str(self.port), "--zone", self.zone_path,
                "--log", self.log_path]
        self.proc = Proc(argv, self.name, self.dir, pipe_stdout=True)
        self.port = self.proc.read_ready()
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5)
            self.proc = None

    def set_zone(self, zone, timeout=10.0):
        """Replace the zone and wait (bounded) until the server serves it."""
        want = self._write(zone)
        if self.proc is None:
            return
        # mtime granularity: touch again a little later if the first write
        # landed in the same timestamp as the previous one
        deadline = time.monotonic() + timeout
        for i in range(int(timeout / 0.1) + 2):
            _, answers = query(self.port, SERIAL_NAME, "A", timeout=0.5)
            if want in answers:
                return
            if time.monotonic() > deadline:
                break
            if i % 5 == 4:
                os.utime(self.zone_path)
            time.sleep(0.1)
        raise HarnessError("fake_dns did not pick up the new zone within %.0fs" % timeout)

    def queries(self, name=None, qtype=None, transport=None):
        """[(name, type, transport)] asked so far (marker queries left out)."""
        out = []
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return out
        for ln in lines:
            parts = ln.split()
            if len(parts) < 2:
                continue
            qn, qt = parts[0].rstrip(".").lower(), parts[1].upper()
            tr = parts[2].lower() if len(parts) > 2 else ""
            if qn in (SERIAL_NAME, "probe.outbox-test.test"):
                continue
            if name and qn != name.lower():
                continue
            if qtype and qt != qtype.upper():
                continue
            if transport and tr != transport.lower():
                continue
            out.append((qn, qt, tr))
        return out


def fake_dns_available():
    return os.path.exists(FAKE_DNS)


def wait_fake_dns(timeout):
    """Wait (bounded) for tests/peers/fake_dns.py to appear."""
    return harness.wait_for(fake_dns_available, timeout, "tests/peers/fake_dns.py",
                            interval=1.0)
