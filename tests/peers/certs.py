#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Private test PKI made with the openssl CLI, at test time (never committed).

ensure_certs(dir) makes, once, in dir:
  ca.pem / ca.key            the test CA ("outbox test CA")
  server.pem / server.key    CN=localhost, SAN DNS:localhost, DNS:relay.test, IP:127.0.0.1
  wrong.pem / wrong.key      signed by the CA, SAN DNS:wrong.test only
  expired.pem / expired.key  signed by the CA, right SANs, valid 2020-01-01..2020-02-01
  untrusted.pem / untrusted.key  right SANs, signed by another CA (other-ca.pem)
and returns a dict name -> path. A lock file makes parallel test processes
share one generation; a finished set is marked by the file "done".

Run as a script: certs.py DIR  (prints the paths).
"""
import fcntl
import os
import subprocess
import sys
import tempfile

OPENSSL = "openssl"
GOOD_SAN = "DNS:localhost,DNS:relay.test,IP:127.0.0.1"
MAX_AGE_S = 7 * 86400  # regenerate a cached set older than this


def _run(args, cwd):
    res = subprocess.run([OPENSSL] + args, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=60)
    if res.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(args), res.stderr.decode(errors="replace")))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _make_ca(d, name, cn):
    _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-keyout", name + ".key", "-out", name + ".pem", "-days", "3650",
          "-subj", "/CN=" + cn,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def _ext_file(d, name, san):
    path = os.path.join(d, name + ".ext")
    _write(path, "[v3]\n"
           "basicConstraints = CA:FALSE\n"
           "keyUsage = critical, digitalSignature, keyEncipherment\n"
           "extendedKeyUsage = serverAuth\n"
           "subjectAltName = %s\n" % san)
    return path


def _make_leaf(d, name, cn, san, ca="ca"):
    """A key and a certificate for name, signed by ca, valid one year."""
    _run(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn], d)
    ext = _ext_file(d, name, san)
    _run(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
          "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".pem",
          "-days", "365", "-sha256", "-extfile", ext, "-extensions", "v3"], d)


def _make_expired(d):
    """`openssl ca` takes explicit start and end dates (req/x509 cannot in 3.0)."""
    name = "expired"
    _run(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=localhost"], d)
    cadir = os.path.join(d, "ca-db")
    os.makedirs(cadir, exist_ok=True)
    _write(os.path.join(cadir, "index.txt"), "")
    _write(os.path.join(cadir, "serial"), "1000\n")
    cnf = os.path.join(d, "ca.cnf")
    _write(cnf, "[ca]\ndefault_ca = testca\n"
           "[testca]\n"
           "dir = %s\n"
           "database = $dir/index.txt\n"
           "serial = $dir/serial\n"
           "new_certs_dir = $dir\n"
           "certificate = %s\n"
           "private_key = %s\n"
           "default_md = sha256\n"
           "policy = anything\n"
           "unique_subject = no\n"
           "[anything]\ncommonName = supplied\n"
           "[v3]\n"
           "basicConstraints = CA:FALSE\n"
           "keyUsage = critical, digitalSignature, keyEncipherment\n"
           "extendedKeyUsage = serverAuth\n"
           "subjectAltName = %s\n" % (cadir, os.path.join(d, "ca.pem"),
                                      os.path.join(d, "ca.key"), GOOD_SAN))
    _run(["ca", "-batch", "-config", cnf, "-extensions", "v3",
          "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
          "-in", name + ".csr", "-out", name + ".pem", "-notext"], d)


NAMES = ("ca", "server", "wrong", "expired", "untrusted")


def _paths(d):
    out = {"dir": d, "ca": os.path.join(d, "ca.pem"),
           "other_ca": os.path.join(d, "other-ca.pem")}
    for n in NAMES[1:]:
        out[n] = os.path.join(d, n + ".pem")
        out[n + "_key"] = os.path.join(d, n + ".key")
    return out


def _generate(d):
    _make_ca(d, "ca", "outbox test CA")
    _make_ca(d, "other-ca", "some other CA")
    _make_leaf(d, "server", "localhost", GOOD_SAN)
    _make_leaf(d, "wrong", "wrong.test", "DNS:wrong.test")
    _make_leaf(d, "untrusted", "localhost", GOOD_SAN, ca="other-ca")
    _make_expired(d)
    for n in os.listdir(d):
        if n.endswith(".key"):
            os.chmod(os.path.join(d, n), 0o600)


def _fresh(d):
    done = os.path.join(d, "done")
    try:
        import time
        return time.time() - os.stat(done).st_mtime < MAX_AGE_S
    except OSError:
        return False


def ensure_certs(d=None):
    """Generate the set in d (default: a per-user cache dir in $TMPDIR) once."""
    if d is None:
        d = os.path.join(tempfile.gettempdir(), "outbox-test-certs-%d" % os.getuid())
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, "lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not _fresh(d):
            try:
                os.unlink(os.path.join(d, "done"))
            except FileNotFoundError:
                pass
            _generate(d)
            _write(os.path.join(d, "done"), "ok\n")
    return _paths(d)


def main():
    if len(sys.argv) != 2:
        print("usage: certs.py DIR", file=sys.stderr)
        return 64
    for k, v in sorted(ensure_certs(sys.argv[1]).items()):
        print("%s %s" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
