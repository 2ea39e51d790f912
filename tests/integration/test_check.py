#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`outbox check mx|smtp|imap|pop3|relay` against real servers on loopback:
aiosmtpd (tests/peers/smarthost.py) with STARTTLS+AUTH and with implicit
TLS, with the test CA's good, expired, wrong-name and untrusted
certificates; Debian's Dovecot (tests/peers/dovecot.py) for IMAP and POP3;
tests/peers/fake_dns.py for MX, implicit MX, null MX and NXDOMAIN; a
closed port and a listener that never speaks. The --json output is parsed
and checked; every network step runs with --timeout 1 or 2."""
import json
import os
import shutil
import socket
import sys
import tempfile
import unittest

import harness
from harness import Smarthost, cli_path, free_port, run_cmd, USER, PASSWORD
import dns as dnsmod

sys.path.insert(0, harness.PEERS)
import dovecot as dovecot_mod  # noqa: E402

ZONE = {
    "a.test": {"MX": [[20, "mx2.a.test"], [10, "mx1.a.test"]]},
    "mx1.a.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
    "mx2.a.test": {"A": ["127.0.0.3"]},
    "implicit.test": {"A": ["127.0.0.4"]},
    "null.test": {"MX": [[0, "."]]},
}


class CheckTest(unittest.TestCase):
    tmp = None
    peers = []

    @classmethod
    def setUpClass(cls):
        harness.outboxd_path()
        cls.tmp = tempfile.mkdtemp(prefix="outbox-it-check-")
        cls.certs = harness.certs()
        cls.peers = []

        def sh(name, mode, cert="server", auth=(USER, PASSWORD), **kw):
            s = Smarthost(cls.tmp, name=name, mode=mode, cert=cert, auth=auth, **kw)
            cls.peers.append(s)
            return s.start()
        cls.starttls = sh("starttls", "starttls")
        cls.implicit = sh("implicit", "implicit")
        cls.expired = sh("expired", "implicit", cert="expired")
        cls.wrong = sh("wrong", "implicit", cert="wrong")
        cls.untrusted = sh("untrusted", "implicit", cert="untrusted")
        cls.dns = dnsmod.FakeDns(cls.tmp, ZONE).start()
        cls.peers.append(cls.dns)
        # A listener that accepts (the kernel does) but never speaks.
        cls.silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.silent.bind(("127.0.0.1", 0))
        cls.silent.listen(16)
        cls.dovecot = None
        if dovecot_mod.available():
            cls.dovecot = dovecot_mod.Dovecot(cls.tmp, cls.certs["server"],
                                              cls.certs["server_key"]).start()

    @classmethod
    def tearDownClass(cls):
        for p in cls.peers:
            p.stop()
        if cls.dovecot is not None:
            cls.dovecot.stop()
        cls.silent.close()
        if cls.tmp and not os.environ.get("OUTBOX_TEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers
    def write(self, name, text, mode=0o644):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def config(self, text=""):
        return self.write("c-%s.ini" % self._testMethodName, text)

    def run_check(self, *args, config=None, timeout=2, env=None):
        # stretched under valgrind (OUTBOX_TEST_TIME_SCALE): a TLS handshake or
        # a DNS lookup under memcheck can take longer than 2 s
        argv = [cli_path(), "check"] + list(args) + [
            "--timeout", str(int(harness.scaled(timeout)))]
        if config is None:
            config = self.config("[relay]\nca_file = %s\n" % self.certs["ca"])
        argv += ["-c", config]
        full_env = {"OUTBOX_CONFIG": ""}
        full_env.update(env or {})
        res = run_cmd(argv, env=full_env, timeout=60)
        self.assertNotRegex(res.stderr, harness.SANITIZER_RE, res.stderr)
        return res

    def run_json(self, *args, **kw):
        res = self.run_check(*(list(args) + ["--json"]), **kw)
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            self.fail("not JSON: %r (stderr %r)" % (res.stdout, res.stderr))
        self.assertEqual(doc["ok"], res.returncode == 0, res.stdout)
        self.assertEqual(doc["problems"],
                         sum(1 for s in doc["steps"] if s["status"] == "fail"))
        return res.returncode, doc

    def steps(self, doc, name):
        return [s for s in doc["steps"] if s["step"] == name]

    def step(self, doc, name):
        found = self.steps(doc, name)
        self.assertTrue(found, "no step %r in %s" % (name, json.dumps(doc, indent=1)))
        return found[0]

    # -- smtp
    def test_smtp_starttls_happy(self):
        before = len(self.starttls.commands())
        rc, doc = self.run_json("smtp", "localhost:%d" % self.starttls.port)
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(doc["command"], "smtp")
        self.assertEqual(self.step(doc, "connect")["value"], "127.0.0.1")
        self.assertTrue(self.step(doc, "banner")["text"].startswith("220 "))
        self.assertEqual(self.step(doc, "starttls")["status"], "ok")
        self.assertRegex(self.step(doc, "tls")["value"], r"^TLSv1\.[23] ")
        self.assertEqual(self.step(doc, "chain")["value"], "verified")
        self.assertEqual(self.step(doc, "hostname")["value"], "matched")
        self.assertIn("DNS:localhost", self.step(doc, "names")["value"])
        self.assertIn("outbox test CA", self.step(doc, "certificate")["text"])
        self.assertIn("PLAIN", self.step(doc, "auth")["value"])
        self.assertEqual(self.step(doc, "size")["value"], str(64 << 20))
        # AUTH is only offered inside TLS by this server.
        self.assertNotIn("AUTH", self.step(doc, "ehlo")["value"])
        # Nothing was sent as mail.
        self.assertEqual(self.starttls.messages(), [])
        cmds = [c for _s, _t, c in self.starttls.commands()[before:]]
        self.assertIn("QUIT", cmds)
        self.assertFalse([c for c in cmds if c.upper().startswith(("MAIL", "AUTH"))], cmds)

    def test_smtp_text_output(self):
        res = self.run_check("smtp", "localhost:%d" % self.starttls.port)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("[ ok ] starttls: STARTTLS is offered", res.stdout)
        self.assertIn("result: everything checked is fine", res.stdout)

    def test_smtp_implicit_happy(self):
        rc, doc = self.run_json("smtp", "127.0.0.1:%d" % self.implicit.port,
                                "--tls", "implicit")
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(self.step(doc, "tls")["status"], "ok")
        self.assertEqual(self.step(doc, "hostname")["status"], "ok")  # IP SAN
        self.assertEqual(self.steps(doc, "starttls"), [])

    def test_smtp_closed_port(self):
        port = free_port()
        rc, doc = self.run_json("smtp", "127.0.0.1:%d" % port)
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "connect")["value"], "refused")
        self.assertEqual(len(doc["steps"]), 1)

    def test_smtp_silent_listener_times_out(self):
        port = self.silent.getsockname()[1]
        rc, doc = self.run_json("smtp", "127.0.0.1:%d" % port, timeout=1)
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "connect")["status"], "ok")
        banner = self.step(doc, "banner")
        self.assertEqual(banner["status"], "fail")
        self.assertIn("nothing within the timeout", banner["text"])
        self.assertEqual(self.steps(doc, "mismatch"), [])

    def test_tls_spoken_on_starttls_port(self):
        rc, doc = self.run_json("smtp", "localhost:%d" % self.starttls.port,
                                "--tls", "implicit")
        self.assertEqual(rc, 1)
        m = self.step(doc, "mismatch")
        self.assertEqual(m["value"], "tls-on-plain-port")
        self.assertIn("tls = starttls", m["fix"])
        self.assertEqual(self.step(doc, "starttls")["status"], "ok")

    def test_plaintext_on_implicit_port(self):
        rc, doc = self.run_json("smtp", "localhost:%d" % self.implicit.port,
                                "--tls", "starttls", timeout=1)
        self.assertEqual(rc, 1)
        m = self.step(doc, "mismatch")
        self.assertEqual(m["value"], "plain-on-tls-port")
        self.assertIn("tls = implicit", m["fix"])
        self.assertEqual(self.step(doc, "tls")["status"], "ok")

    def test_expired_certificate(self):
        rc, doc = self.run_json("smtp", "localhost:%d" % self.expired.port,
                                "--tls", "implicit")
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "expiry")["status"], "fail")
        self.assertIn("2020-02-01", self.step(doc, "expiry")["text"])
        self.assertEqual(self.step(doc, "chain")["status"], "fail")

    def test_wrong_name_certificate(self):
        rc, doc = self.run_json("smtp", "localhost:%d" % self.wrong.port,
                                "--tls", "implicit")
        self.assertEqual(rc, 1)
        h = self.step(doc, "hostname")
        self.assertEqual(h["value"], "mismatch")
        self.assertIn("DNS:wrong.test", h["text"])
        self.assertEqual(self.step(doc, "chain")["status"], "ok")

    def test_untrusted_certificate(self):
        rc, doc = self.run_json("smtp", "localhost:%d" % self.untrusted.port,
                                "--tls", "implicit")
        self.assertEqual(rc, 1)
        chain = self.step(doc, "chain")
        self.assertEqual(chain["status"], "fail")
        self.assertIn("ca_file", chain["fix"])
        self.assertEqual(self.step(doc, "hostname")["status"], "ok")
        # --ca-file overrides the configuration: the other CA makes it good.
        rc, doc = self.run_json("smtp", "localhost:%d" % self.untrusted.port,
                                "--tls", "implicit", "--ca-file",
                                self.certs["other_ca"])
        self.assertEqual(self.step(doc, "chain")["status"], "ok", json.dumps(doc))

    # -- relay doctor
    def relay_config(self, port, password=PASSWORD, tls="auto", user=USER):
        pw = self.write("pw-%s" % self._testMethodName, password + "\n", 0o600)
        return self.config("[relay]\nhost = localhost:%d\ntls = %s\nuser = %s\n"
                           "password_file = %s\nca_file = %s\n"
                           % (port, tls, user, pw, self.certs["ca"]))

    def test_relay_doctor_good(self):
        cfg = self.relay_config(self.starttls.port)
        res = self.run_check("relay", config=cfg)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("[ ok ] login: the server accepted", res.stdout)
        self.assertNotIn(PASSWORD, res.stdout + res.stderr)
        self.assertEqual(self.starttls.messages(), [])
        cmds = [c for _s, _t, c in self.starttls.commands()]
        self.assertFalse([c for c in cmds if c.upper().startswith("MAIL")], cmds)

    def test_relay_doctor_wrong_password(self):
        cfg = self.relay_config(self.starttls.port, password="not-the-password")
        rc, doc = self.run_json("relay", config=cfg)
        self.assertEqual(rc, 1)
        login = self.step(doc, "login")
        self.assertEqual(login["status"], "fail")
        self.assertIn("535", login["text"])
        self.assertIn("password_file", login["fix"])
        self.assertEqual(self.step(doc, "config")["status"], "ok")

    def test_relay_doctor_tls_setting_wrong(self):
        cfg = self.relay_config(self.starttls.port, tls="implicit")
        rc, doc = self.run_json("relay", config=cfg)
        self.assertEqual(rc, 1)
        m = self.step(doc, "mismatch")
        self.assertIn("[relay] tls = starttls", m["fix"])
        # No password on a probe we did not plan (the second look).
        self.assertEqual(self.step(doc, "login")["status"], "fail")

    def test_relay_doctor_untrusted_never_sends_password(self):
        cfg = self.relay_config(self.untrusted.port, tls="implicit")
        rc, doc = self.run_json("relay", config=cfg)
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "chain")["status"], "fail")
        self.assertIn("not tried", self.step(doc, "login")["text"])
        cmds = [c for _s, _t, c in self.untrusted.commands()]
        self.assertFalse([c for c in cmds if c.upper().startswith("AUTH")], cmds)

    def test_relay_doctor_bad_config(self):
        cfg = self.config("[relay]\nhost = localhost:1\ntls = sometimes\n")
        rc, doc = self.run_json("relay", config=cfg)
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "config")["status"], "fail")
        self.assertRegex(self.step(doc, "config")["text"], r":3: ")

    # -- mx
    def test_mx(self):
        rc, doc = self.run_json("mx", "a.test", "--dns", "127.0.0.1:%d" % self.dns.port)
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(self.step(doc, "mx")["value"], "10 mx1.a.test, 20 mx2.a.test")
        addrs = self.steps(doc, "addresses")
        self.assertEqual([a["group"] for a in addrs], ["MX 10 mx1.a.test", "MX 20 mx2.a.test"])
        self.assertEqual(sorted(addrs[0]["value"].split()), ["127.0.0.2", "::1"])
        self.assertIn("127.0.0.1:%d" % self.dns.port, self.step(doc, "dns")["value"])
        self.assertIn("mx1.a.test, then mx2.a.test", self.step(doc, "route")["text"])

    def test_mx_from_config_dns_servers(self):
        cfg = self.config("[mx]\ndns_servers = 127.0.0.1:%d\n" % self.dns.port)
        rc, doc = self.run_json("mx", "implicit.test", config=cfg)
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(self.step(doc, "mx")["value"], "implicit")
        self.assertEqual(self.step(doc, "addresses")["value"], "127.0.0.4")

    def test_mx_null(self):
        rc, doc = self.run_json("mx", "null.test", "--dns", "127.0.0.1:%d" % self.dns.port)
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "mx")["value"], "null")
        self.assertIn("5.1.10", self.step(doc, "route")["text"])

    def test_mx_nxdomain(self):
        res = self.run_check("mx", "nosuch.test", "--dns", "127.0.0.1:%d" % self.dns.port)
        self.assertEqual(res.returncode, 1)
        self.assertIn("does not exist (NXDOMAIN)", res.stdout)
        self.assertIn("bounces mail for nosuch.test at once", res.stdout)

    # -- imap / pop3
    def need_dovecot(self):
        if self.dovecot is None:
            self.skipTest("dovecot-imapd / dovecot-pop3d not installed")
        return self.dovecot.ports

    def test_imap_implicit_and_starttls(self):
        ports = self.need_dovecot()
        rc, doc = self.run_json("imap", "localhost:%d" % ports["imaps"], "--tls", "implicit")
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertIn("Dovecot", self.step(doc, "greeting")["text"])
        self.assertIn("IMAP4rev1", self.step(doc, "capabilities")["value"])
        self.assertEqual(self.step(doc, "chain")["value"], "verified")
        rc, doc = self.run_json("imap", "localhost:%d" % ports["imap"])
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(self.step(doc, "starttls")["status"], "ok")
        self.assertIn("STARTTLS", self.step(doc, "capabilities")["value"])
        self.assertNotIn("STARTTLS", self.step(doc, "capabilities-tls")["value"])
        self.assertEqual(self.step(doc, "tls")["status"], "ok")

    def test_pop3_implicit_and_stls(self):
        ports = self.need_dovecot()
        rc, doc = self.run_json("pop3", "localhost:%d" % ports["pop3s"], "--tls", "implicit")
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertTrue(self.step(doc, "greeting")["text"].startswith("+OK"))
        self.assertEqual(self.step(doc, "hostname")["status"], "ok")
        rc, doc = self.run_json("pop3", "localhost:%d" % ports["pop3"])
        self.assertEqual(rc, 0, json.dumps(doc, indent=1))
        self.assertEqual(self.step(doc, "starttls")["text"], "STLS is offered")
        self.assertIn("STLS", self.step(doc, "capabilities")["value"])

    def test_imap_tls_on_plain_port(self):
        ports = self.need_dovecot()
        rc, doc = self.run_json("imap", "localhost:%d" % ports["imap"], "--tls", "implicit")
        self.assertEqual(rc, 1)
        self.assertEqual(self.step(doc, "mismatch")["value"], "tls-on-plain-port")

    def test_usage(self):
        res = run_cmd([cli_path(), "check", "smtp"], timeout=10)
        self.assertEqual(res.returncode, 64)
        res = run_cmd([cli_path(), "check", "smtp", "h", "--timeout", "0"], timeout=10)
        self.assertEqual(res.returncode, 64)


if __name__ == "__main__":
    harness.main(file_timeout=120)
