#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The container entry point (docker/entrypoint.sh), run directly: no Docker
engine here. Environment -> configuration -> `outbox config check` -> exec:
OUTBOX_<SECTION>_<KEY>__FILE secrets (two underscores), real keys ending in
_FILE kept as paths, a world-readable password file replaced by a private
copy, bad settings stopping the container with exit 78, and a full run:
outboxd started by the entry point relays through an AUTH smarthost with
the user name and password taken from secret files."""
import os
import stat

import harness
from harness import OutboxTestCase, USER, PASSWORD, make_message

ENTRYPOINT = os.path.join(os.path.dirname(harness.TESTS), "docker", "entrypoint.sh")
EX_CONFIG = 78


class Entrypoint(OutboxTestCase):

    def setUp(self):
        super().setUp()
        self.config = self.file("outbox.ini", "; empty: defaults only\n")
        self.secrets = os.path.join(self.tmp, "private")

    def file(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def env(self, **kw):
        """A clean environment: nothing OUTBOX_* leaks in from the caller."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update({"OUTBOX_CONFIG": self.config, "OUTBOX_CLI": harness.cli_path(),
                    "OUTBOXD": harness.outboxd_path(), "OUTBOX_SECRETS_DIR": self.secrets,
                    "OUTBOX_SPOOL_DIR": os.path.join(self.tmp, "spool")})
        env.update(kw)
        return env

    def relay(self, **kw):
        """A valid relay setting for user tests (user needs password_file)."""
        kw.setdefault("OUTBOX_RELAY_HOST", "127.0.0.1:2587")
        kw.setdefault("OUTBOX_RELAY_PASSWORD_FILE", self.file("pw", "x\n", 0o600))
        return kw

    def run_ep(self, args=("env",), **kw):
        """Run the entry point with a clean env; returns (rc, stdout, stderr)."""
        import subprocess
        p = subprocess.run(["/bin/sh", ENTRYPOINT] + list(args), env=self.env(**kw),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    def env_after(self, **kw):
        """The environment the entry point hands to its command."""
        rc, out, err = self.run_ep(("env",), **kw)
        self.assertEqual(rc, 0, "entry point failed: %s" % err)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    # -- *__FILE secrets

    def test_file_secret_becomes_the_key(self):
        user = self.file("user", "alice@example.org\n")
        env = self.env_after(**self.relay(OUTBOX_RELAY_USER__FILE=user))
        self.assertEqual(env.get("OUTBOX_RELAY_USER"), "alice@example.org")
        self.assertNotIn("OUTBOX_RELAY_USER__FILE", env)

    def test_file_secret_crlf_and_no_final_newline(self):
        a = self.file("a", "crlf-user\r\n")
        b = self.file("b", "example.net")
        env = self.env_after(**self.relay(OUTBOX_RELAY_USER__FILE=a,
                                          OUTBOX_REWRITE_DOMAIN__FILE=b))
        self.assertEqual(env.get("OUTBOX_RELAY_USER"), "crlf-user")
        self.assertEqual(env.get("OUTBOX_REWRITE_DOMAIN"), "example.net")

    def test_file_secret_multiline_refused(self):
        f = self.file("two", "line one\nline two\n")
        rc, out, err = self.run_ep(OUTBOX_RELAY_USER__FILE=f)
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("OUTBOX_RELAY_USER__FILE", err)
        self.assertIn("one line", err)
        self.assertEqual(out, "", "the command ran after an error")

    def test_file_secret_and_value_both_set_refused(self):
        f = self.file("u", "bob\n")
        rc, out, err = self.run_ep(OUTBOX_RELAY_USER="alice", OUTBOX_RELAY_USER__FILE=f)
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("both OUTBOX_RELAY_USER and OUTBOX_RELAY_USER__FILE", err)

    def test_file_secret_missing_file_refused(self):
        rc, _out, err = self.run_ep(OUTBOX_RELAY_USER__FILE=os.path.join(self.tmp, "nope"))
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("is not a file", err)

    def test_file_secret_for_unknown_key_fails_config_check(self):
        f = self.file("x", "1\n")
        rc, out, err = self.run_ep(OUTBOX_RELAY_NOSUCHKEY__FILE=f)
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("OUTBOX_RELAY_NOSUCHKEY", err)
        self.assertIn("configuration error", err)

    # -- real keys ending in _FILE are paths

    def test_real_file_keys_are_paths_not_secrets(self):
        ca = harness.certs()["ca"]
        pw = self.file("password", "s3cret\n", 0o600)
        env = self.env_after(OUTBOX_RELAY_HOST="127.0.0.1:2587", OUTBOX_RELAY_USER="u",
                             OUTBOX_RELAY_PASSWORD_FILE=pw, OUTBOX_RELAY_CA_FILE=ca)
        self.assertEqual(env.get("OUTBOX_RELAY_PASSWORD_FILE"), pw, "a private file was moved")
        self.assertEqual(env.get("OUTBOX_RELAY_CA_FILE"), ca)
        self.assertNotIn("OUTBOX_RELAY_PASSWORD", env)
        self.assertNotIn("OUTBOX_RELAY_CA", env)
        self.assertFalse(os.path.exists(self.secrets), "copied a file that was fine")

    def test_world_readable_password_file_gets_private_copy(self):
        pw = self.file("mounted-secret", "s3cret\n", 0o444)  # Docker's default
        rc, out, err = self.run_ep(("env",), OUTBOX_RELAY_HOST="127.0.0.1:2587",
                                   OUTBOX_RELAY_USER="u", OUTBOX_RELAY_PASSWORD_FILE=pw)
        self.assertEqual(rc, 0, err)
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        copy = env["OUTBOX_RELAY_PASSWORD_FILE"]
        self.assertNotEqual(copy, pw)
        self.assertTrue(copy.startswith(self.secrets + "/"), copy)
        st = os.stat(copy)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertEqual(stat.S_IMODE(os.stat(self.secrets).st_mode), 0o700)
        with open(copy) as f:
            self.assertEqual(f.read(), "s3cret\n")
        self.assertEqual(stat.S_IMODE(os.stat(pw).st_mode), 0o444, "original changed")
        self.assertIn("mode 444", err)
        self.assertNotIn("s3cret", out + err, "the password was printed")

    def test_group_readable_password_file_used_as_is(self):
        pw = self.file("pw640", "s3cret\n", 0o640)
        env = self.env_after(OUTBOX_RELAY_HOST="127.0.0.1:2587", OUTBOX_RELAY_USER="u",
                             OUTBOX_RELAY_PASSWORD_FILE=pw)
        self.assertEqual(env["OUTBOX_RELAY_PASSWORD_FILE"], pw)

    # -- configuration check and command

    def test_bad_setting_stops_with_its_name(self):
        rc, out, err = self.run_ep(OUTBOX_LISTEN_MAX_RECIPIENTS="lots")
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("environment OUTBOX_LISTEN_MAX_RECIPIENTS", err)
        self.assertEqual(out, "")

    def test_bad_config_file_stops_with_file_line(self):
        self.config = self.file("bad.ini", "[listen]\nmax_connections = -3\n")
        rc, _out, err = self.run_ep()
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("%s:2:" % self.config, err)

    def test_dash_arguments_go_to_outboxd(self):
        rc, out, err = self.run_ep(("-t",), OUTBOX_LISTEN_MAX_RECIPIENTS="200")
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration ok", out)

    def test_default_command_is_outboxd_foreground(self):
        stub = self.file("outboxd-stub", "#!/bin/sh\n"
                         "echo \"args=$*\"\n"
                         "echo \"user=$OUTBOX_RELAY_USER\"\n"
                         "echo \"file=${OUTBOX_RELAY_USER__FILE-unset}\"\n", 0o755)
        user = self.file("user", "carol\n")
        rc, out, err = self.run_ep((), **self.relay(OUTBOXD=stub,
                                                    OUTBOX_RELAY_USER__FILE=user))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), ["args=-f", "user=carol", "file=unset"])

    # -- end to end: the daemon started by the entry point, secrets from files

    def test_daemon_relays_with_secrets_from_files(self):
        sh = self.smarthost(auth_mechs="PLAIN")
        port = harness.free_port()
        user = self.file("user-secret", USER + "\n", 0o444)
        pw = self.file("password-secret", PASSWORD + "\n", 0o444)
        env = self.env(OUTBOX_LISTEN_ADDRESS="127.0.0.1:%d" % port,
                       OUTBOX_RELAY_HOST="127.0.0.1:%d" % sh.port,
                       OUTBOX_RELAY_CA_FILE=harness.certs()["ca"],
                       OUTBOX_RELAY_USER__FILE=user,
                       OUTBOX_RELAY_PASSWORD_FILE=pw,
                       OUTBOX_SPOOL_RETRY_MIN="1s", OUTBOX_LOG_LEVEL="debug")
        proc = harness.Proc(["/bin/sh", ENTRYPOINT], "entrypoint", self.tmp, env=env)
        try:
            harness.wait_for(lambda: "ready" in harness.tail(proc.stderr_path)
                             or not proc.alive(), 15, "outboxd ready")
            self.assertTrue(proc.alive(), harness.tail(proc.stderr_path))
            data = make_message("via the container entry point\r\n")
            res = harness.smtp_send(port, "app@local.test", ["rcpt@dest.test"], data)
            self.assertEqual(res.code, 250, res)
            msgs = sh.wait_messages(1, 20)
            self.assertEqual(msgs[0].meta["user"], USER, "AUTH user not from the secret file")
            self.assertTrue(msgs[0].meta["tls"])
            self.assertEqual(msgs[0].rcpt_tos, ["rcpt@dest.test"])
        finally:
            rc, killed = proc.stop(10)
        self.assertFalse(killed, "outboxd did not stop on SIGTERM")
        self.assertEqual(rc, 0, harness.tail(proc.stderr_path))
        log = harness.tail(proc.stderr_path, 400)
        self.assertNotIn(PASSWORD, log, "password in the log")
        self.assertIsNone(harness.SANITIZER_RE.search(log), log)


if __name__ == "__main__":
    harness.main()
