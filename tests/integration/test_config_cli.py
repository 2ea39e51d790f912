#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Configuration as users meet it: `outbox config check`, `outboxd -t`,
FILE:LINE errors, the password-file mode check (F11), environment
overrides, and direct MX delivery as the default when no smarthost is
set (an empty configuration is valid)."""
import os

import harness
from harness import OutboxTestCase, make_message, free_port, run_cmd, cli_path, outboxd_path

GOOD = """\
[listen]
address = 127.0.0.1:{port}
max_recipients = 100
timeout = 30s

[spool]
dir = {spool}
retry_min = 1s

[relay]
host = 127.0.0.1:2587
tls = starttls
"""

# (text, the line numbers the error may name)
BAD = [
    ("[listen]\naddress = 127.0.0.1:2525\nno_such_key = 1\n", (3,)),
    ("[listen]\n\nmax_recipients = abc\n", (3,)),
    ("[spool]\nretry_min = 5x\n", (2,)),
    ("[nosuchsection]\nkey = 1\n", (1, 2)),  # the header or its first key
    ("[relay]\nhost = 127.0.0.1:2587\ntls = sometimes\n", (3,)),
    ("[listen]\nmax_message_size = 10Q\n", (2,)),
]


class ConfigCli(OutboxTestCase):

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def good_config(self):
        return self.write("good.ini", GOOD.format(port=free_port(),
                                                  spool=os.path.join(self.tmp, "spool")))

    def test_config_check_ok(self):
        path = self.good_config()
        res = run_cmd([cli_path(), "config", "check", "-c", path])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertNotRegex(res.stderr, harness.SANITIZER_RE)

    def test_config_check_errors_name_file_and_line(self):
        for i, (text, lines) in enumerate(BAD):
            with self.subTest(case=i):
                path = self.write("bad%d.ini" % i, text)
                res = run_cmd([cli_path(), "config", "check", "-c", path])
                out = res.stdout + res.stderr
                self.assertEqual(res.returncode, 1, out)
                self.assertTrue(any("%s:%d:" % (path, n) in out for n in lines),
                                "no %s:%s: in %r" % (path, lines, out))
                self.assertNotRegex(out, harness.SANITIZER_RE)

    def test_config_check_missing_file(self):
        path = os.path.join(self.tmp, "absent.ini")
        res = run_cmd([cli_path(), "config", "check", "-c", path])
        self.assertEqual(res.returncode, 1)
        self.assertIn(path, res.stdout + res.stderr)

    def test_outboxd_check_config(self):
        path = self.good_config()
        res = run_cmd([outboxd_path(), "-t", "-c", path])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        bad = self.write("bad.ini", BAD[0][0])
        res = run_cmd([outboxd_path(), "-t", "-c", bad])
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("%s:3:" % bad, res.stdout + res.stderr)
        # -t does not start anything
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "spool", "lock")))

    def test_password_file_world_readable_refused(self):
        sh = self.smarthost()
        d = self.outboxd(start=False, relay=[sh.port])
        d.write_config()
        os.chmod(d.password_path, 0o644)
        # keep the mode: spawn() rewrites the file with 0600, so run by hand
        proc = harness.Proc([outboxd_path(), "-f", "-c", d.config_path], "d-0644", d.dir,
                            env=d.proc_env())
        rc = proc.wait(10)
        if rc is None:
            proc.stop(5)
            self.fail("outboxd started with a world-readable password file")
        log = harness.tail(proc.stderr_path, 50)
        self.assertNotEqual(rc, 0)
        self.assertIn(d.password_path, log)
        self.assertRegex(log, r"(?i)mode|permission|readable|0644|0600")
        self.assertNotIn(harness.PASSWORD, log)
        res = run_cmd([cli_path(), "config", "check", "-c", d.config_path])
        self.assertEqual(res.returncode, 1, "config check accepts a 0644 password file")

    def test_env_override_relay_host(self):
        sh = self.smarthost()
        dead = free_port()
        d = self.outboxd(relay=[dead], env={"OUTBOX_RELAY_HOST": "127.0.0.1:%d" % sh.port})
        data = make_message("routed by OUTBOX_RELAY_HOST\r\n")
        d.send_ok("app@local.test", ["rcpt@dest.test"], data)
        msgs = sh.wait_messages(1, 15)
        self.assertEqual(msgs[0].body(), data)

    def test_env_override_bad_value_named(self):
        path = self.good_config()
        res = run_cmd([cli_path(), "config", "check", "-c", path],
                      env={"OUTBOX_LISTEN_MAX_RECIPIENTS": "lots"})
        self.assertEqual(res.returncode, 1)
        self.assertIn("OUTBOX_LISTEN_MAX_RECIPIENTS", res.stdout + res.stderr)

    def test_no_relay_host_means_direct_mx(self):
        d = self.outboxd(relay=[], settings={"mx": {"dns_servers": "127.0.0.1:%d" % free_port()}})
        d.wait_log(r"delivery: direct to MX hosts", 5)
        d.send_ok("app@local.test", ["rcpt@dest.test"], make_message("queued\r\n"))
        # the DNS server is not there: the message is kept and deferred
        d.wait_log(r"to=<rcpt@dest\.test>, relay=none, .*dsn=4\.4\.3, status=deferred", 30)
        self.assertEqual(len(d.queued()), 1)


if __name__ == "__main__":
    harness.main()
