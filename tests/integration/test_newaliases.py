#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`newaliases` (argv[0]) and `outbox newaliases`: check the aliases file
outboxd will read ([rewrite] aliases, or the file given), print each
problem as FILE:LINE: message, exit 0 when clean, 1 otherwise; exit 0 with
a note when no aliases file is configured (Debian maintainer scripts call
newaliases blindly)."""
import os

import harness
from harness import OutboxTestCase, run_cmd, cli_path


class NewAliases(OutboxTestCase):

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def config(self, aliases=None):
        text = "[spool]\ndir = %s\n" % os.path.join(self.tmp, "spool")
        if aliases is not None:
            text += "[rewrite]\naliases = %s\n" % aliases
        return self.write("outbox.ini", text)

    def newaliases(self, *args, argv0=False):
        """Run as `outbox newaliases ...`, or through a link named newaliases."""
        if argv0:
            link = os.path.join(self.tmp, "newaliases")
            if not os.path.exists(link):
                os.symlink(cli_path(), link)
            argv = [link] + list(args)
        else:
            argv = [cli_path(), "newaliases"] + list(args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env["OUTBOX_CONFIG"] = os.path.join(self.tmp, "missing.ini")
        return run_cmd(argv, env=env)

    def test_clean_file_from_config(self):
        a = self.write("aliases", "# comment\npostmaster: root\nroot: admin@example.org\n"
                       "team: a@example.org,\n  b@example.org\n")
        r = self.newaliases("-c", self.config(a))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "%s: 3 aliases ok" % a)
        self.assertEqual(r.stderr, "")

    def test_problems_printed_as_file_line(self):
        a = self.write("aliases", "postmaster: root\n"
                       "cmd: |/usr/bin/evil\n"
                       "file: /var/mail/x\n"
                       "inc: :include:/etc/list\n"
                       "root: admin@example.org\n"
                       "root: other@example.org\n")
        r = self.newaliases(a, argv0=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stderr.splitlines()
        for n in (2, 3, 4, 6):
            self.assertTrue(any(l.startswith("%s:%d: " % (a, n)) for l in lines),
                            "no %s:%d: line in %r" % (a, n, lines))
        self.assertFalse(any(l.startswith("%s:1:" % a) or l.startswith("%s:5:" % a)
                             for l in lines), lines)
        self.assertNotIn("ok", r.stdout)

    def test_loop_reported(self):
        a = self.write("aliases", "a: b\nb: c\nc: a\n")
        r = self.newaliases(a)
        # a loop is cut (mail is never lost to it) and reported
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"(?m)^%s:\d+: .*loop" % a)

    def test_no_aliases_configured_is_fine(self):
        r = self.newaliases("-c", self.config(), argv0=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[rewrite] aliases is not set", r.stdout)

    def test_unreadable_or_missing_file(self):
        r = self.newaliases(os.path.join(self.tmp, "nope"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)
        r = self.newaliases(self.tmp)  # a directory
        self.assertEqual(r.returncode, 1)

    def test_bad_config_is_reported(self):
        bad = self.write("bad.ini", "[rewrite]\nno_such_key = 1\n")
        r = self.newaliases("-c", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:2:" % bad, r.stderr)

    def test_usage(self):
        r = self.newaliases("-x")
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: newaliases", r.stderr)
        r = self.newaliases("one", "two")
        self.assertEqual(r.returncode, 64)


if __name__ == "__main__":
    harness.main()
