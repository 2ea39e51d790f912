#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`sendmail` (the `outbox` binary called by that name) end to end, issue 5:
the message goes through <spool>/maildrop into the running (or later
started) outboxd, [rewrite] is applied, and it arrives at the smarthost.

Every CLI run is bounded (15 s); every wait for the smarthost or the log is
bounded. RELIABILITY.md G1, G2, G6, G7, G9 and the issue-5 calls: cronie's
exact command line as root and as nobody, PHP's `-t -i`, daemon stopped at
submission, aliases (chain, loop, admin), -bp, -q.
"""
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import harness
from harness import OutboxTestCase, cli_path, free_port

DOMAIN = "example.test"
REWRITE = {"rewrite": {"domain": DOMAIN}}
IMPORT_RE = (r"(?P<id>%s): from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), "
             r"nrcpt=(?P<nrcpt>\d+) \(uid=(?P<uid>\d+), sendmail\)" % harness.QID)
CRON_BODY = b"To: root\nSubject: cron <root@h> run\n\nline 1\n.\nend\n"


def header_section(data):
    return data.split(b"\r\n\r\n", 1)[0]


def header(hdr, name):
    """The unfolded value of the first field `name`, or None."""
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":(.*(?:\r\n[ \t].*)*)", hdr)
    return m.group(1).replace(b"\r\n", b"").strip() if m else None


class Sendmail(OutboxTestCase):

    def setUp(self):
        super().setUp()
        cli_path()
        self.sendmail = os.path.join(self.tmp, "sendmail")
        os.symlink(cli_path(), self.sendmail)

    # -- helpers
    def run_sendmail(self, d, args, stdin=b"", uid=None, argv0=None):
        """Run `sendmail ARGS` (bounded) with OUTBOX_CONFIG = d's config;
        returns (rc, stdout, stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update({"OUTBOX_CONFIG": d.config_path,
                    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
        kw = {}
        if uid is not None:
            kw.update(user=uid, group=uid, extra_groups=[])
            env["HOME"] = "/"
        res = subprocess.run([argv0 or self.sendmail] + list(args), input=stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             timeout=15, cwd="/", **kw)
        out = res.stdout.decode("utf-8", "replace")
        err = res.stderr.decode("utf-8", "replace")
        self.assertNotRegex(err, harness.SANITIZER_RE)
        return res.returncode, out, err

    def sendmail_ok(self, d, args, stdin, **kw):
        rc, out, err = self.run_sendmail(d, args, stdin, **kw)
        self.assertEqual(rc, 0, "sendmail %s: rc=%s stderr=%r" % (args, rc, err))
        return out, err

    def maildrop(self, d):
        try:
            return sorted(os.listdir(os.path.join(d.spool, "maildrop")))
        except FileNotFoundError:
            return []

    def imports(self, d, since=0):
        return [m.groupdict() for m in re.finditer(IMPORT_RE, d.log_text(since), re.M)]

    def wait_import(self, d, since=0, timeout=10.0):
        return d.wait_log(IMPORT_RE, timeout, since=since).groupdict()

    def daemon(self, sh, settings=None, **kw):
        s = {"rewrite": dict(REWRITE["rewrite"])}
        for sec, kv in (settings or {}).items():
            s.setdefault(sec, {}).update(kv)
        return self.outboxd(relay=[sh.port], settings=s, **kw)

    def assert_cron_message(self, msg, login):
        sender = "%s@%s" % (login, DOMAIN)
        self.assertEqual(msg.mail_from, sender)
        self.assertEqual(msg.rcpt_tos, ["root@" + DOMAIN])
        data = msg.body()
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""), "bare LF upstream")
        self.assertTrue(data.endswith(b"\r\n\r\nline 1\r\n.\r\nend\r\n"), data[-80:])
        hdr = header_section(data)
        self.assertRegex(hdr, rb"(?m)^Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} "
                              rb"\d\d:\d\d:\d\d [+-]\d{4}\r?$")
        self.assertRegex(hdr, rb"(?m)^Message-ID: <[^<>@\s]+@[^<>@\s]+>\r?$")
        frm = header(hdr, "From")
        self.assertIsNotNone(frm, hdr)
        self.assertIn(b"CronDaemon", frm)
        self.assertIn(sender.encode(), frm)
        self.assertEqual(header(hdr, "To"), ("root@" + DOMAIN).encode())
        self.assertEqual(hdr.count(b"\r\nDate:") + hdr.startswith(b"Date:"), 1)

    # -- G6: the exact cronie call, as root
    def test_cron_call_as_root(self):
        if os.geteuid() != 0:
            self.skipTest("runs as root")
        sh = self.smarthost()
        d = self.daemon(sh)
        mark = d.mark()
        self.sendmail_ok(d, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], CRON_BODY)
        imp = self.wait_import(d, mark)
        self.assertEqual(imp["sender"], "root@" + DOMAIN)
        self.assertEqual((imp["nrcpt"], imp["uid"]), ("1", "0"))
        msg = sh.wait_messages(1)[0]
        self.assert_cron_message(msg, "root")
        # the smarthost has the file before the daemon logs its 250
        d.wait_log(r"to=<root@%s>,.*status=sent" % re.escape(DOMAIN), 10, since=mark)
        self.assertEqual(d.deliveries(status="sent", rcpt="root@" + DOMAIN)[0]["id"],
                         imp["id"])

    def open_tmp_to_others(self):
        """mkdtemp made the test dir 0700: nobody must reach the spool and the
        config below it (the daemon makes the spool o+x, maildrop 1733)."""
        path = self.tmp
        for _ in range(10):
            st = os.stat(path)
            os.chmod(path, st.st_mode & 0o7777 | 0o001)
            if os.path.dirname(path) in ("/", "/tmp", path):
                break
            path = os.path.dirname(path)

    def nobody(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to switch to nobody")
        try:
            return pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")

    def public_ca(self):
        """A world-readable copy of the test CA (the shared cache dir is
        0700; in production the CA is under /etc/ssl, readable by all)."""
        path = os.path.join(self.tmp, "ca.pem")
        shutil.copyfile(harness.certs()["ca"], path)
        os.chmod(path, 0o644)
        return path

    # -- G6/G9: the same call by an unprivileged user (cron runs as everyone)
    def test_cron_call_as_nobody(self):
        nobody = self.nobody()
        self.open_tmp_to_others()
        sh = self.smarthost()
        d = self.daemon(sh, ca_file=self.public_ca())
        os.chmod(d.dir, 0o755)
        os.chmod(d.config_path, 0o644)
        mark = d.mark()
        self.sendmail_ok(d, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], CRON_BODY,
                         uid=nobody.pw_uid)
        imp = self.wait_import(d, mark)
        self.assertEqual(imp["sender"], "nobody@" + DOMAIN)
        self.assertEqual(imp["uid"], str(nobody.pw_uid))
        msg = sh.wait_messages(1)[0]
        self.assert_cron_message(msg, "nobody")

    # -- G9: files only the daemon needs (relay ca_file, password_file) in a
    # directory the caller cannot search must not stop an unprivileged
    # sendmail: it only needs [spool] dir and [rewrite] domain. A 78 here
    # loses every non-root cron mail on such a host.
    def test_nobody_daemon_only_files_private(self):
        nobody = self.nobody()
        self.open_tmp_to_others()
        private = os.path.join(self.tmp, "private")
        os.mkdir(private, 0o700)
        ca = os.path.join(private, "ca.pem")
        shutil.copyfile(harness.certs()["ca"], ca)
        sh = self.smarthost()
        d = self.daemon(sh, ca_file=ca)
        os.chmod(d.dir, 0o755)
        os.chmod(d.config_path, 0o644)
        mark = d.mark()
        self.sendmail_ok(d, ["-i", "root"], b"Subject: private ca\n\nb\n", uid=nobody.pw_uid)
        self.assertEqual(self.wait_import(d, mark)["sender"], "nobody@" + DOMAIN)
        self.assertEqual(sh.wait_messages(1)[0].rcpt_tos, ["root@" + DOMAIN])

    # -- G7: PHP's mail(): sendmail -t -i with To, Cc and Bcc
    def test_php_t_i_to_cc_bcc(self):
        sh = self.smarthost()
        d = self.daemon(sh)
        text = (b"To: Alice <alice@dest.test>\n"
                b"Cc: bob@dest.test\n"
                b"Bcc: Hidden <carol@other.test>\n"
                b"Subject: php\n"
                b"X-PHP-Originating-Script: 0:index.php\n"
                b"\n"
                b"hello from php\n.\nstill body\n")
        self.sendmail_ok(d, ["-t", "-i"], text)
        msgs = sh.wait_messages(1)
        harness.wait_for(lambda: sum(len(m.rcpt_tos) for m in sh.messages()) >= 3 or None,
                         10, "three recipients upstream")
        msgs = sh.messages()
        rcpts = sorted(r for m in msgs for r in m.rcpt_tos)
        self.assertEqual(rcpts, ["alice@dest.test", "bob@dest.test", "carol@other.test"])
        for m in msgs:
            data = m.body()
            hdr = header_section(data)
            self.assertIsNone(header(hdr, "Bcc"), hdr)
            self.assertNotIn(b"carol", data)
            self.assertIn(b"alice@dest.test", header(hdr, "To"))
            self.assertEqual(header(hdr, "Cc"), b"bob@dest.test")
            self.assertTrue(data.endswith(b"\r\n\r\nhello from php\r\n.\r\nstill body\r\n"),
                            data[-60:])
            self.assertIsNotNone(header(hdr, "Date"))
            self.assertIsNotNone(header(hdr, "Message-ID"))

    # -- daemon stopped at submission: exit 0, delivered once it starts
    def test_daemon_stopped_then_started(self):
        sh = self.smarthost()
        d = self.daemon(sh)
        d.stop()   # it made the maildrop (1733) and the spool searchable
        self.assertEqual(self.maildrop(d), [])
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d.spool, "maildrop")).st_mode),
                         0o1733)
        self.assertTrue(os.stat(d.spool).st_mode & 0o001, "spool not o+x")
        self.sendmail_ok(d, ["-i", "ops@dest.test"], b"Subject: offline\n\nqueued offline\n")
        names = self.maildrop(d)
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], "^%s$" % harness.QID)
        self.assertEqual(sh.messages(), [])
        mark = d.mark()
        d.start()
        imp = self.wait_import(d, mark)
        self.assertEqual((imp["sender"], imp["nrcpt"]), ("root@" + DOMAIN, "1"))
        msg = sh.wait_messages(1)[0]
        self.assertEqual(msg.rcpt_tos, ["ops@dest.test"])
        self.assertTrue(msg.body().endswith(b"\r\n\r\nqueued offline\r\n"))
        harness.wait_for(lambda: self.maildrop(d) == [] or None, 5, "maildrop emptied")
        time.sleep(0.5)
        self.assertEqual(len(sh.messages()), 1)

    # -- [rewrite] aliases (chain, loop) and admin
    def test_aliases_chain_loop_admin(self):
        sh = self.smarthost()
        aliases = os.path.join(self.tmp, "aliases")
        with open(aliases, "w") as f:
            f.write("# test aliases\n"
                    "root: ops\n"
                    "ops: a@x.test, b@y.test\n"
                    "l1: l2\n"
                    "l2: l1, c@z.test\n")
        d = self.daemon(sh, {"rewrite": {"aliases": aliases,
                                         "admin": "boss@example.test"}})
        mark = d.mark()
        self.sendmail_ok(d, ["-i", "root"], b"Subject: to root\n\nchain\n")
        msg = sh.wait_messages(1)[0]
        self.assertEqual(sorted(msg.rcpt_tos), ["a@x.test", "b@y.test"])

        start = time.monotonic()
        self.sendmail_ok(d, ["-i", "l1"], b"Subject: to l1\n\nloop\n")
        msgs = sh.wait_messages(2, timeout=10)
        self.assertLess(time.monotonic() - start, 10)
        loop = [m for m in msgs if b"Subject: to l1" in m.data]
        self.assertEqual(len(loop), 1)
        got = set(loop[0].rcpt_tos)
        self.assertIn("c@z.test", got)
        # The looping local names may be kept (qualified) or dropped; nothing else.
        self.assertLessEqual(got, {"c@z.test", "l1@" + DOMAIN, "l2@" + DOMAIN,
                                   "boss@example.test"})

        self.sendmail_ok(d, ["-i", "nobodyknows"], b"Subject: to nobodyknows\n\nadmin\n")
        msgs = sh.wait_messages(3, timeout=10)
        adm = [m for m in msgs if b"Subject: to nobodyknows" in m.data]
        self.assertEqual(len(adm), 1)
        self.assertEqual(adm[0].rcpt_tos, ["boss@example.test"])
        self.assertEqual(len(self.imports(d, mark)), 3)
        self.assertTrue(d.alive())

    # -- G1/G2 refused options, G7 no recipients, -bp, -q
    def test_refusals_bp_q(self):
        # A dead smarthost and a slow retry: what is imported stays queued.
        d = self.outboxd(relay=[free_port()],
                         settings={"rewrite": {"domain": DOMAIN},
                                   "spool": {"retry_min": "1h", "retry_max": "2h"}})
        mark = d.mark()
        body = b"Subject: s\n\nb\n"
        for args, stdin, want in [
                (["-C", "/etc/passwd", "root"], body, 64),
                (["--", "-oQ/tmp"], body, 64),
                (["-oQ/tmp", "root"], body, 64),
                (["-X", "/tmp/outbox-sendmail-x.log", "root"], body, 64),
                (["-t"], b"Subject: no recipients\n\nb\n", 65)]:
            rc, _out, err = self.run_sendmail(d, args, stdin)
            self.assertEqual(rc, want, (args, err))
            self.assertTrue(err.startswith("sendmail: "), (args, err))
            self.assertEqual(self.maildrop(d), [], args)
        self.assertFalse(os.path.exists("/tmp/outbox-sendmail-x.log"))
        time.sleep(0.3)
        self.assertEqual(self.imports(d, mark), [])
        self.assertEqual(d.queued(), [])

        self.sendmail_ok(d, ["-i", "someone@dest.test"], body)
        qid = self.wait_import(d, mark)["id"]
        harness.wait_for(lambda: d.deliveries(status="deferred", qid=qid) or None, 15,
                         "first attempt deferred")
        rc, out, err = self.run_sendmail(d, ["-bp"])
        self.assertEqual(rc, 0, err)
        self.assertIn(qid, out)
        self.assertIn("someone@dest.test", out)
        before = len(d.deliveries(status="deferred", qid=qid))
        rc, out, err = self.run_sendmail(d, ["-q"])
        self.assertEqual(rc, 0, err)
        # The flush makes a new attempt at once (retry_min is 1 h).
        harness.wait_for(lambda: len(d.deliveries(status="deferred", qid=qid)) > before
                         or None, 10, "an attempt after -q")

    # -- G8: the D1 kill loop against the sendmail command. SIGKILL at a
    # random moment while it reads, writes or syncs a 1 MB message, daemon
    # stopped; then the daemon starts: every submission that exited 0 is
    # delivered, byte for byte; a killed one is delivered whole or not at
    # all, never in part.
    def test_g8_kill_loop(self):
        import random
        import signal
        import threading
        sh = self.smarthost()
        d = self.daemon(sh)
        d.stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update(OUTBOX_CONFIG=d.config_path, ASAN_OPTIONS="detect_leaks=0")
        rnd = random.Random(8)
        bodies, acked = {}, set()
        deadline = time.monotonic() + 40
        for i in range(20):
            if time.monotonic() > deadline:
                break
            line = b"kill %02d " % i + b"x" * 90 + b"\n"
            body = b"Subject: kill %02d\n\n" % i + line * 10000
            bodies[i] = body.replace(b"\n", b"\r\n")
            proc = subprocess.Popen([self.sendmail, "-i", "ops@dest.test"], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)

            def feed(p=proc, b=body):
                try:
                    p.stdin.write(b)
                    p.stdin.close()
                except (BrokenPipeError, ValueError):
                    pass
            t = threading.Thread(target=feed)
            t.start()
            time.sleep(rnd.uniform(0, 0.08))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            rc = proc.wait(timeout=15)
            t.join(timeout=15)
            if rc == 0:
                acked.add(i)
        self.assertGreater(len(bodies), 5)
        d.start()
        harness.wait_for(lambda: self.maildrop(d) == [] or
                         all(n.startswith("tmp") for n in self.maildrop(d)) or None,
                         30, "maildrop imported")
        if acked:
            harness.wait_for(lambda: {int(m.body().split(b"kill ", 1)[1][:2])
                                      for m in sh.messages()} >= acked or None,
                             30, "every acknowledged submission delivered")
        time.sleep(0.5)
        for m in sh.messages():
            data = m.body()
            i = int(data.split(b"kill ", 1)[1][:2])
            self.assertTrue(data.endswith(bodies[i].split(b"\r\n\r\n", 1)[1]),
                            "message %d delivered in part" % i)
        print("G8: %d submissions, %d acknowledged, %d delivered"
              % (len(bodies), len(acked), len(sh.messages())))

    # -- s-nail (Debian's mail(1)) with mta = our sendmail: `mail -s subject root`
    def test_s_nail_mail_to_root(self):
        snail = shutil.which("s-nail")
        if snail is None:
            self.skipTest("s-nail not installed (scripts/dev installs it)")
        sh = self.smarthost()
        d = self.daemon(sh)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
        env.update(OUTBOX_CONFIG=d.config_path, HOME=self.tmp,
                   ASAN_OPTIONS="detect_leaks=1:halt_on_error=1")
        res = subprocess.run([snail, "-n", "-S", "mta=" + self.sendmail, "-S", "sendwait",
                              "-s", "disk almost full", "root"],
                             input=b"/var is at 91%\n", env=env, timeout=15,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(res.returncode, 0, res.stderr)
        msg = sh.wait_messages(1)[0]
        login = pwd.getpwuid(os.getuid()).pw_name
        self.assertEqual(msg.mail_from, "%s@%s" % (login, DOMAIN))
        self.assertEqual(msg.rcpt_tos, ["root@" + DOMAIN])
        data = msg.body()
        hdr = header_section(data)
        self.assertEqual(header(hdr, "To"), ("root@" + DOMAIN).encode())
        self.assertEqual(header(hdr, "Subject"), b"disk almost full")
        self.assertIsNotNone(header(hdr, "Date"))
        self.assertRegex(header(hdr, "Message-ID"), rb"^<[^<>@\s]+@[^<>@\s]+>$")
        self.assertIn(("%s@%s" % (login, DOMAIN)).encode(), header(hdr, "From"))
        self.assertTrue(data.endswith(b"\r\n\r\n/var is at 91%\r\n"), data[-40:])

    # -- [rewrite] from + from_header = rewrite (strict smarthosts)
    def test_from_header_rewrite(self):
        sh = self.smarthost()
        d = self.daemon(sh, {"rewrite": {"from": "relay@" + DOMAIN,
                                         "from_header": "rewrite"}})
        self.sendmail_ok(d, ["-i", "ops@dest.test"],
                         b"From: Web App <www-data>\nSubject: one\n\nb\n")
        msg = sh.wait_messages(1)[0]
        self.assertEqual(msg.mail_from, "relay@" + DOMAIN)
        hdr = header_section(msg.body())
        self.assertEqual(header(hdr, "From"), ("<relay@%s>" % DOMAIN).encode())
        self.assertEqual(header(hdr, "Reply-To"), ("Web App <www-data@%s>" % DOMAIN).encode())
        self.assertEqual(hdr.count(b"From:"), 1, hdr)
        # A Reply-To of the sender's own is kept, not replaced or doubled.
        self.sendmail_ok(d, ["-i", "ops@dest.test"],
                         b"From: a@x.test\nReply-To: help@x.test\nSubject: two\n\nb\n")
        msgs = sh.wait_messages(2)
        two = [m for m in msgs if b"Subject: two" in m.data][0]
        hdr = header_section(two.body())
        self.assertEqual(header(hdr, "From"), ("<relay@%s>" % DOMAIN).encode())
        self.assertEqual(header(hdr, "Reply-To"), b"help@x.test")
        self.assertEqual(hdr.count(b"Reply-To:"), 1, hdr)

    # -- loopback SMTP is local submission too: header names qualified,
    # missing Date/Message-ID/From added (DESIGN: "Local mail works out of
    # the box for cron").
    def test_smtp_submission_rewritten(self):
        import smtplib
        sh = self.smarthost()
        d = self.daemon(sh)
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            c.sendmail("app", ["root", "x@dest.test"],
                       b"To: root, x@dest.test\r\nCc: Ops <ops>\r\n"
                       b"Subject: smtp\r\n\r\nTo: root stays in the body\r\n")
        msg = sh.wait_messages(1)[0]
        self.assertEqual(msg.mail_from, "app@" + DOMAIN)
        self.assertEqual(sorted(msg.rcpt_tos), ["root@" + DOMAIN, "x@dest.test"])
        data = msg.body()
        hdr = header_section(data)
        self.assertEqual(header(hdr, "To"), ("root@%s, x@dest.test" % DOMAIN).encode())
        self.assertEqual(header(hdr, "Cc"), ("Ops <ops@%s>" % DOMAIN).encode())
        self.assertEqual(header(hdr, "From"), ("app@" + DOMAIN).encode())
        self.assertIsNotNone(header(hdr, "Date"))
        self.assertRegex(header(hdr, "Message-ID"), rb"^<%s@[^>]+>$" % harness.QID.encode())
        self.assertTrue(msg.data.startswith(b"Received: "), msg.data[:40])
        self.assertTrue(data.endswith(b"\r\n\r\nTo: root stays in the body\r\n"))


if __name__ == "__main__":
    harness.main()
