#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Health and metrics (issue #8 part 4): `outbox status [--json] [--check]`
over the control socket (healthy, daemon down, queue stuck), the Prometheus
textfile ([metrics] textfile, written atomically; counters move after a
delivery; outbox_up 0 after stop), and [log] format = json."""
import json
import os
import re
import signal
import socket
import time

import harness
from harness import OutboxTestCase, make_message, free_port, run_cmd, cli_path

EX_UNAVAILABLE = 69
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*='
                       r'"(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')


def parse_prom(text):
    """A strict reader for the text exposition format: {name: [(labels, value)]}.
    Every family has one HELP and one TYPE line before its samples."""
    samples, typed, helped = {}, {}, set()
    assert text.endswith("\n"), "no final newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, "second HELP for " + name
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            assert name not in typed, "second TYPE for " + name
            assert name not in samples, "TYPE after samples for " + name
            typed[name] = kind
            continue
        assert not line.startswith("#"), line
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        name = m.group(1)
        assert name in typed, "sample before its TYPE: " + name
        if typed[name] == "counter":
            assert name.endswith("_total"), name
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                 m.group(2) or ""))
        samples.setdefault(name, []).append((labels, float(m.group(3))))
    return samples


def metric(samples, name, **labels):
    for lab, v in samples.get(name, []):
        if lab == labels:
            return v
    return None


class Status(OutboxTestCase):

    # -- helpers
    def status(self, d, *args, config=None):
        res = run_cmd([cli_path(), "status"] + list(args) +
                      ["-c", config or d.config_path])
        self.assertNotRegex(res.stderr, harness.SANITIZER_RE)
        return res

    def status_json(self, d, *args):
        res = self.status(d, "--json", *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.count("\n"), 1, res.stdout)
        return json.loads(res.stdout)

    def read_prom(self, path):
        with open(path) as f:
            return parse_prom(f.read())

    def wait_prom(self, path, pred, what, timeout=15):
        got = [None]

        def check():
            try:
                got[0] = self.read_prom(path)
            except FileNotFoundError:
                return False
            return pred(got[0])
        harness.wait_for(check, timeout, what)
        return got[0]

    def send(self, d, tok, rcpts=("rcpt@dest.test",)):
        data = make_message("body %s\r\n" % tok, subject="status-%s" % tok,
                            to=rcpts[0])
        return d.send_ok("app@local.test", list(rcpts), data)

    # -- tests
    def test_healthy_json_text_and_metrics(self):
        sh = self.smarthost()
        prom = os.path.join(self.tmp, "textfile", "outbox.prom")
        os.makedirs(os.path.dirname(prom))
        d = self.outboxd(relay=[sh.port], settings={
            "metrics": {"textfile": prom, "interval": "1s"}})

        res = self.status(d, "--check")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"^outbox: ok: 0 messages queued")
        self.assertEqual(res.stderr, "")

        st = self.status_json(d)
        self.assertEqual(st["pid"], d.proc.popen.pid)
        self.assertEqual(st["queue"], {"messages": 0, "recipients_pending": 0, "held": 0,
                                       "oldest_age": None, "oldest_deferred_age": None})
        self.assertIs(st["stuck"], False)
        self.assertEqual(st["stuck_after"], 3600)
        self.assertEqual(st["destinations"], [])
        for k in ("received", "delivered", "deferred", "bounced", "dsn_sent",
                  "connections", "rejected", "tls_failures", "auth_failures"):
            self.assertEqual(st["counters"][k], 0, k)
        self.assertGreaterEqual(st["uptime"], 0)

        # The textfile: strict Prometheus text, no temporary file left.
        s = self.wait_prom(prom, lambda s: metric(s, "outbox_up") == 1, "textfile")
        self.assertEqual(metric(s, "outbox_received_total"), 0)
        self.assertEqual(metric(s, "outbox_queue_messages"), 0)
        self.assertEqual(metric(s, "outbox_queue_stuck"), 0)

        # One delivery moves the counters, in status and in the textfile.
        self.send(d, "A")
        self.assertEqual(len(sh.wait_messages(1, 20)), 1)
        harness.wait_for(lambda: not d.queued(), 10, "spool empty")
        st = self.status_json(d)
        self.assertEqual(st["counters"]["received"], 1)
        self.assertEqual(st["counters"]["delivered"], 1)
        self.assertGreaterEqual(st["counters"]["connections"], 1)
        self.assertEqual(st["queue"]["messages"], 0)
        s = self.wait_prom(prom, lambda s: metric(s, "outbox_delivered_total") == 1,
                           "delivered counter in the textfile")
        self.assertEqual(metric(s, "outbox_received_total"), 1)
        self.assertEqual([n for n in os.listdir(os.path.dirname(prom))], ["outbox.prom"])

        text = self.status(d)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"^outboxd \S+ \(pid %d\), up " % d.proc.popen.pid)
        self.assertIn("Queue: 0 messages, 0 recipients pending, 0 held", text.stdout)
        self.assertRegex(text.stdout, r"received 1 delivered 1 ")

        # Stopped: the textfile says so, and --check says down.
        d.stop()
        s = self.read_prom(prom)
        self.assertEqual(metric(s, "outbox_up"), 0)
        self.assertEqual(metric(s, "outbox_delivered_total"), 1)
        res = self.status(d, "--check")
        self.assertEqual(res.returncode, EX_UNAVAILABLE, res)
        self.assertEqual(res.stdout, "")
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertIn("outboxd is not running", res.stderr)

    def test_daemon_down(self):
        d = self.outboxd(start=False)
        d.write_config()
        # No spool at all, then a socket nobody listens on (a dead daemon's).
        for setup in ("none", "stale"):
            if setup == "stale":
                os.makedirs(d.spool, exist_ok=True)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind(os.path.join(d.spool, "control"))
                s.close()
            for args in (["--check"], ["--check", "--json"], []):
                res = self.status(d, *args)
                self.assertEqual(res.returncode, EX_UNAVAILABLE, (setup, args, res))
                self.assertEqual(res.stdout, "", (setup, args))
                self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
                self.assertIn("outboxd is not running", res.stderr)
        # Usage errors are told apart from "down".
        self.assertEqual(self.status(d, "--stuck-after", "soon").returncode, 64)
        self.assertEqual(self.status(d, "--bogus").returncode, 64)

    def test_queue_stuck(self):
        port = free_port()  # the smarthost is down: every attempt defers
        prom = os.path.join(self.tmp, "stuck.prom")
        d = self.outboxd(relay=[port], settings={
            "metrics": {"textfile": prom, "interval": "1s", "stuck_after": "2s"}})
        qid = self.send(d, "S")
        harness.wait_for(lambda: d.deliveries(status="deferred", qid=qid), 15,
                         "first attempt deferred")

        def stuck_now():
            return self.status(d, "--check").returncode == 1
        harness.wait_for(stuck_now, 20, "status --check to report the queue stuck")
        res = self.status(d, "--check")
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "")
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertRegex(res.stderr, r"^outbox: queue stuck: the oldest deferred message is "
                                     r"\d+s old \(stuck after 2s\); relay: .+")

        st = self.status_json(d)
        self.assertIs(st["stuck"], True)
        self.assertEqual(st["stuck_after"], 2)
        self.assertEqual(st["queue"]["messages"], 1)
        self.assertEqual(st["queue"]["recipients_pending"], 1)
        self.assertGreater(st["queue"]["oldest_deferred_age"], 2)
        self.assertGreaterEqual(st["queue"]["oldest_age"], st["queue"]["oldest_deferred_age"])
        self.assertGreaterEqual(st["counters"]["deferred"], 1)
        self.assertEqual(st["counters"]["delivered"], 0)
        self.assertEqual(len(st["destinations"]), 1)
        dest = st["destinations"][0]
        self.assertEqual(dest["name"], "relay")
        self.assertEqual(dest["queued"], 1)
        self.assertTrue(dest["last_error"], dest)
        self.assertGreater(dest["last_error_at"], 0)
        self.assertGreater(dest["next_attempt"], 0)

        # --stuck-after overrides [metrics] stuck_after, in --json too.
        res = self.status(d, "--check", "--stuck-after", "1h")
        self.assertEqual(res.returncode, 0, res.stderr)
        st2 = self.status_json(d, "--stuck-after", "1h")
        self.assertIs(st2["stuck"], False)
        self.assertEqual(st2["stuck_after"], 3600)

        text = self.status(d)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("stuck: YES (after 2s)", text.stdout)
        self.assertRegex(text.stdout, r"relay: 1 queued")
        self.assertIn("last error (", text.stdout)

        s = self.wait_prom(prom, lambda s: metric(s, "outbox_queue_stuck") == 1,
                           "outbox_queue_stuck 1")
        self.assertEqual(metric(s, "outbox_destination_queued", destination="relay"), 1)
        self.assertGreater(metric(s, "outbox_destination_last_error_timestamp_seconds",
                                  destination="relay"), 0)
        self.assertGreaterEqual(metric(s, "outbox_deferred_total"), 1)

        # A held message is the operator's choice, not a stuck queue.
        res = run_cmd([cli_path(), "queue", "hold", qid, "-c", d.config_path])
        self.assertEqual(res.returncode, 0, res.stderr)
        res = self.status(d, "--check")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.status_json(d)["queue"]["held"], 1)

    def test_tls_and_auth_failure_counters(self):
        # A certificate for the wrong name: the handshake fails (verify = yes).
        bad = self.smarthost(cert="wrong")
        d1 = self.outboxd(relay=[bad.port], tls="starttls", verify=True)
        q1 = self.send(d1, "T")
        d1.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred" % q1, 15)
        c1 = self.status_json(d1)["counters"]
        self.assertGreaterEqual(c1["tls_failures"], 1)
        self.assertEqual(c1["auth_failures"], 0)
        # The right certificate, the wrong password: AUTH fails.
        sh = self.smarthost()
        d2 = self.outboxd(relay=[sh.port], password="not-the-password")
        q2 = self.send(d2, "U")
        d2.wait_log(r"%s: to=<rcpt@dest\.test>,.*status=deferred" % q2, 15)
        c2 = self.status_json(d2)["counters"]
        self.assertGreaterEqual(c2["auth_failures"], 1)
        self.assertEqual(c2["tls_failures"], 0)
        self.assertEqual(c2["delivered"], 0)
        self.assertGreaterEqual(c2["deferred"], 1)

    def test_json_log_lines(self):
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port], settings={"log": {"format": "json"}})
        qid = self.send(d, "J")
        sh.wait_messages(1, 20)
        d.wait_log(r'"msg":"%s: to=<rcpt@dest\.test>, .*status=sent' % qid, 10)
        lines = [l for l in d.log_text(d.log_offset).splitlines() if l]
        self.assertGreater(len(lines), 5)
        levels = set()
        for line in lines:
            obj = json.loads(line)
            self.assertEqual(sorted(obj), ["ident", "level", "msg", "pid", "ts"], line)
            self.assertEqual(obj["ident"], "outboxd")
            self.assertEqual(obj["pid"], d.proc.popen.pid)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            levels.add(obj["level"])
        self.assertTrue(levels <= {"error", "warning", "info", "debug"}, levels)
        self.assertIn("info", levels)
        # A reload applies [log] format: back to text lines. The message's
        # last line ("removed") comes just after status=sent; wait for it so
        # that nothing JSON is still on its way after the mark.
        d.wait_log(r'"msg":"%s: removed' % qid, 10)
        mark = d.log_size()
        d.settings["log"]["format"] = "text"
        d.write_config()
        d.kill(signal.SIGHUP)
        d.wait_log(r"^\S+Z outboxd\[%d\]: configuration reloaded$" % d.proc.popen.pid,
                   10, since=mark)
        self.assertNotIn('"msg":', d.log_text(mark))


if __name__ == "__main__":
    harness.main()
