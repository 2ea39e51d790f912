#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Group commit of the spool's intake log (issue 7, include/outbox/spool_log.h).

A small message is acknowledged once its 'A' record in log/<segment> is
durable: an fsync of the segment that began after the record's pwritev
ended. Concurrent commits share one such fsync. These tests check that
promise from the outside:

* with strace -f on the running daemon, for every 250 of 20 concurrent
  sessions: the record's pwritev, then an fsync of that same segment that
  started after it and ended before the 250 was written; and fewer
  segment fsyncs than messages (batching happened);
* kill -9 right after the last 250 of 50 messages (the relay unreachable,
  so nothing is delivered or removed): the segment is still there, its
  records parse (header, CRC-32) and carry each message byte for byte; the
  restart replays it ("spool: replayed") and every 250'd message is
  delivered exactly once, byte-identical;
* the same, with the queue files the kernel had not flushed taken away
  (a power loss models: msg/ID or env/ID missing or cut short): the
  replay rebuilds them from the records.

The strace parsing (-y paths, line order as causal order) comes from
test_faults.py.
"""
import os
import re
import signal
import smtplib
import struct
import threading
import time
import zlib

import harness
from harness import OutboxTestCase, free_port
from test_faults import (Strace, fsyncs_of, log_records, marker_message, parse_trace,
                         replies_250, require_strace, wait_log_empty, with_marker)

SEG_RE = re.compile(r"^[0-9a-f]{16}$")
REPLAYED_RE = (r"spool: replayed (\d+) log segment\(s\): (\d+) message\(s\) still queued, "
               r"(\d+) rebuilt file\(s\), (\d+) removal\(s\)")


# ---------------------------------------------------------------- clients

def session(port, items, barrier=None, timeout=30):
    """One SMTP session sending items [(marker, data)] one after another;
    with a barrier, every session waits there after RCPT so that their
    ends of data arrive together. Returns [(marker, code, text)]."""
    out = []
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                          timeout=timeout) as s:
            s.ehlo()
            for marker, data in items:
                code, text = s.mail("app@local.test")
                if code == 250:
                    code, text = s.rcpt("rcpt@dest.test")
                if code != 250:
                    out.append((marker, code, text.decode(errors="replace")))
                    continue
                if barrier is not None:
                    barrier.wait(timeout)
                try:
                    code, text = s.data(data)
                except smtplib.SMTPDataError as e:
                    code, text = e.smtp_code, e.smtp_error
                out.append((marker, code, text.decode(errors="replace")))
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
    except (smtplib.SMTPException, OSError, threading.BrokenBarrierError) as e:
        if barrier is not None:
            barrier.abort()
        out.append((None, None, repr(e)))
    return out


def run_sessions(port, plans, barrier=None, timeout=60):
    """Each plan in its own thread (bounded: joined within timeout);
    returns every (marker, code, text)."""
    results = [None] * len(plans)

    def run(i):
        results[i] = session(port, plans[i], barrier)
    threads = [threading.Thread(target=run, args=(i,), daemon=True)
               for i in range(len(plans))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + harness.scaled(timeout)
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise harness.HarnessError("client sessions still running after %ds" % timeout)
    return [r for res in results for r in res]


# ---------------------------------------------------------------- the log format

def parse_segment(data):
    """[(type, id, env, body)] of the valid records at the start of a
    segment (spool_record.h); stops at the first invalid one."""
    out, pos = [], 0
    while pos + 64 <= len(data):
        h = data[pos:pos + 64]
        if h[:4] != b"OBL1" or h[4:5] not in (b"A", b"D"):
            break
        env_len, = struct.unpack_from("<I", h, 8)
        body_len, = struct.unpack_from("<Q", h, 16)
        qid = h[24:56].rstrip(b"\0").decode("ascii", "replace")
        crc, = struct.unpack_from("<I", h, 56)
        end = pos + 64 + env_len + body_len
        if end > len(data):
            break
        env, body = data[pos + 64:pos + 64 + env_len], data[pos + 64 + env_len:end]
        if zlib.crc32(h[:56] + env + body) != crc:
            break
        out.append((h[4:5].decode(), qid, env, body))
        pos = end
    return out, pos


def env_records(data):
    """[(type, value)] of an encoded envelope (envelope.c: T<len>:<value>\\n)."""
    out, pos = [], 0
    for _ in range(100000):
        if pos >= len(data):
            break
        colon = data.index(b":", pos)
        n = int(data[pos + 1:colon])
        out.append((chr(data[pos]), data[colon + 1:colon + 1 + n]))
        pos = colon + 2 + n
    return out


# what delivery attempts rewrite in an envelope (next attempt, attempts,
# per-recipient state and last error, the CRC): the rest is the message's
ENV_MUTABLE = "NAQEX"


def env_identity(data):
    return [(t, v) for t, v in env_records(data) if t not in ENV_MUTABLE]


def read_segments(spool):
    """{segment name: (records, bytes parsed, file size, the rest all zero)}"""
    out = {}
    logdir = os.path.join(spool, "log")
    for name in sorted(os.listdir(logdir)):
        if SEG_RE.match(name):
            with open(os.path.join(logdir, name), "rb") as f:
                data = f.read()
            recs, used = parse_segment(data)
            out[name] = (recs, used, len(data), not data[used:].strip(b"\0"))
    return out


# ---------------------------------------------------------------- the tests

class GroupCommit(OutboxTestCase):

    def warm_up(self, d, sh, tag):
        data = marker_message(tag)
        got = run_sessions(d.port, [[(tag, data)]])
        self.assertEqual(got[0][1], 250, got)
        harness.wait_for(lambda: with_marker(sh, tag), 20, "%s delivered" % tag)

    # ------------------------------------------------------------ batching
    def test_concurrent_sessions_each_acked_after_their_batch_fsync(self):
        """20 sessions end their DATA together: every 250 is written after an
        fsync of the segment holding its 'A' record that began after the
        record's pwritev ended; fewer segment fsyncs than messages (up to 3
        rounds until one batches); every message delivered exactly once,
        byte-identical."""
        require_strace(self)
        sh = self.smarthost()
        d = self.outboxd(relay=[sh.port])
        self.warm_up(d, sh, "GC-WARM")
        rounds = []
        for attempt in range(3):
            rounds.append(self.batch_round(d, sh, attempt, 20))
            if rounds[-1]["syncs"] < rounds[-1]["n"]:
                break
        print("\n  group commit: " + "; ".join(
            "round %d: %d messages, %d segment fsync(s), messages per fsync %r"
            % (i + 1, r["n"], r["syncs"], r["batches"]) for i, r in enumerate(rounds)))
        self.assertLess(rounds[-1]["syncs"], rounds[-1]["n"],
                        "no batching in %d rounds: %r" % (len(rounds), rounds))

    def batch_round(self, d, sh, attempt, n):
        wait_log_empty(d)
        spool = os.path.realpath(d.spool)
        out = os.path.join(self.tmp, "gc-%d.trace" % attempt)
        st = Strace(self.tmp, [d.proc.pid], [
            "trace=pwritev,pwritev2,fsync,fdatasync,write,writev,sendto,sendmsg"],
            out=out, follow=True)
        sent = {"GC-%d-%02d" % (attempt, i): marker_message("GC-%d-%02d" % (attempt, i), 1500)
                for i in range(n)}
        barrier = threading.Barrier(n)
        try:
            got = run_sessions(d.port, [[(m, data)] for m, data in sorted(sent.items())],
                               barrier)
        finally:
            try:
                harness.wait_for(lambda: all(with_marker(sh, m) for m in sent), 30,
                                 "round %d delivered" % attempt)
                harness.wait_for(lambda: not d.queued(), 10, "queue empty")
            finally:
                st.detach()
        self.assertEqual(sorted(m for m, code, _ in got if code == 250), sorted(sent),
                         "not every session got 250: %r" % got)
        calls = parse_trace(out)
        seg_re = re.compile(re.escape(spool) + r"/log/[0-9a-f]{16}$")
        seg_syncs = [c for c in calls if c.name in ("fsync", "fdatasync")
                     and seg_re.match(c.fd_path() or "")]
        per_sync = {}
        for marker, _code, text in got:
            qid = harness.queue_id_of(text)
            self.assertIsNotNone(qid, text)
            recs = log_records(calls, spool, "A", qid)
            self.assertEqual(len(recs), 1, "%s: 'A' records %r" % (qid, recs))
            rec = recs[0]
            self.assertTrue(rec.ret is not None and not rec.ret.startswith("-"), rec)
            ok = replies_250(calls, qid)
            self.assertEqual(len(ok), 1, "%s: 250 replies %r" % (qid, ok))
            covering = [f for f in fsyncs_of(calls, rec.fd_path())
                        if f.start > rec.end and f.end < ok[0].start and f.ret == "0"]
            self.assertTrue(covering, "%s (%s): no fsync of %s between the record's pwritev "
                            "(ended at line %d) and the 250 (line %d); fsyncs of it: %r"
                            % (marker, qid, rec.fd_path(), rec.end, ok[0].start,
                               fsyncs_of(calls, rec.fd_path())))
            per_sync[covering[0].start] = per_sync.get(covering[0].start, 0) + 1
            copies = with_marker(sh, marker)
            self.assertEqual(len(copies), 1, "%s delivered %d times" % (marker, len(copies)))
            self.assertEqual(copies[0].body(), sent[marker])
        return {"n": n, "syncs": len(seg_syncs),
                "batches": sorted(per_sync.values(), reverse=True)}

    # ------------------------------------------------------------ kill -9
    def kill_after_250s(self, sh, total, sessions, tag):
        """outboxd relaying to a port where nothing listens (every delivery
        deferred, nothing removed) takes total messages over concurrent
        sessions; SIGKILL right after the last 250. Returns (d, {marker:
        data} of the 250'd ones, {marker: qid}, segments left)."""
        d = self.outboxd(relay=[free_port()], settings={"log": {"level": "info"}})
        per = total // sessions
        plans = [[("%s-%02d-%02d" % (tag, s, k),
                   marker_message("%s-%02d-%02d" % (tag, s, k), 400 + 700 * k))
                  for k in range(per)] for s in range(sessions)]
        sent = dict(item for plan in plans for item in plan)
        got = run_sessions(d.port, plans)
        d.kill(signal.SIGKILL)
        acked = {m: harness.queue_id_of(t) for m, code, t in got if code == 250}
        self.assertEqual(len(acked), total, "not all 250: %r"
                         % [g for g in got if g[1] != 250][:5])
        self.assertTrue(all(acked.values()), acked)
        self.assertEqual(with_marker(sh, tag), [], "delivered before the kill")
        segs = read_segments(d.spool)
        return d, {m: sent[m] for m in acked}, acked, segs

    def check_segments(self, d, segs, acked):
        """The segments left hold one valid 'A' record per 250'd message, no
        'D', then only zeros, and each record's body is the queue file's
        content."""
        self.assertTrue(segs, "no segment left in log/ right after the kill")
        recs = [r for name in segs for r in segs[name][0]]
        for name, (_r, used, size, zeros) in segs.items():
            # after the records only the zeros the log writes ahead of them
            self.assertTrue(zeros, "log/%s: %d of %d bytes are valid records, the rest "
                            "not all zero" % (name, used, size))
        self.assertEqual([r for r in recs if r[0] == "D"], [])
        by_id = {r[1]: r for r in recs if r[0] == "A"}
        self.assertEqual(sorted(by_id), sorted(acked.values()),
                         "'A' records != the 250'd queue ids")
        for qid, (_t, _id, env, body) in by_id.items():
            with open(os.path.join(d.spool, "msg", qid), "rb") as f:
                self.assertEqual(f.read(), body, "%s: record body != msg/%s" % (qid, qid))
            fields = dict(env_records(env))
            self.assertEqual(fields.get("I"), qid.encode())
            self.assertEqual(int(fields.get("Z", b"-1")), len(body), "%s: Z" % qid)
            self.assertEqual(int(fields.get("C", b"x"), 16), zlib.crc32(body), "%s: C" % qid)
            # a deferral since may have rewritten env/ID (attempts, state)
            with open(os.path.join(d.spool, "env", qid), "rb") as f:
                self.assertEqual(env_identity(f.read()), env_identity(env),
                                 "%s: env/%s is not the record's message" % (qid, qid))
        return by_id

    def restart_and_deliver(self, d, sh, sent, acked, segs):
        """Restart with a working relay; every 250'd message delivered
        exactly once, byte-identical. Returns the replay log match."""
        mark = d.log_size()
        d.relay = [sh.port]
        d.start()
        m = d.wait_log(REPLAYED_RE, 10, since=mark)
        self.assertEqual(set(d.spool_entries("log")) & set(segs), set(),
                         "replayed segments still in log/")
        harness.wait_for(lambda: len({msg.data for msg in sh.messages()}) >= len(sent), 60,
                         "%d messages delivered (have %d)" % (len(sent), len(sh.messages())))
        harness.wait_for(lambda: not d.queued(), 20, "queue empty")
        time.sleep(1.5)  # retry_min 1s: a second copy would show now
        for marker, data in sent.items():
            copies = with_marker(sh, marker)
            self.assertEqual(len(copies), 1, "%s (%s) delivered %d times"
                             % (marker, acked[marker], len(copies)))
            self.assertEqual(copies[0].body(), data, "%s differs" % marker)
        self.assertEqual(len(sh.messages()), len(sent))
        wait_log_empty(d)  # the removals' segment retired in turn
        for sub in ("tmp", "msg", "corrupt"):
            self.assertEqual(d.spool_entries(sub), [], "%s/ not empty" % sub)
        return m

    def test_kill9_after_last_250_replayed_delivered_once(self):
        """50 messages over 10 concurrent sessions, SIGKILL right after the
        last 250 (nothing delivered): the segment left holds a valid 'A'
        record per message, equal to its queue files; the restart logs
        "spool: replayed" with 50 still queued, 0 rebuilt, and each
        message is delivered exactly once, byte-identical."""
        sh = self.smarthost()
        d, sent, acked, segs = self.kill_after_250s(sh, 50, 10, "GCK")
        self.check_segments(d, segs, acked)
        m = self.restart_and_deliver(d, sh, sent, acked, segs)
        self.assertEqual(int(m.group(1)), len(segs), m.group(0))
        self.assertEqual(int(m.group(2)), 50, m.group(0))
        self.assertEqual(int(m.group(3)), 0, m.group(0))
        print("\n  kill -9: %d segment(s) left (%s bytes); %s"
              % (len(segs), [s[2] for s in segs.values()], m.group(0)))

    def test_unflushed_queue_files_rebuilt_from_log(self):
        """As after a power loss, the queue files nobody fsynced are gone or
        cut short (the records were fsynced): msg/ID removed, msg/ID
        truncated, env/ID removed, env/ID truncated, both removed. The
        replay rebuilds them from the records (rebuilt > 0) and every
        250'd message is delivered exactly once, byte-identical."""
        sh = self.smarthost()
        d, sent, acked, segs = self.kill_after_250s(sh, 20, 5, "GCP")
        self.check_segments(d, segs, acked)
        ids = sorted(acked.values())
        damage = {}
        for i, qid in enumerate(ids[:10]):
            how = ("msg-gone", "msg-cut", "env-gone", "env-cut", "both-gone")[i % 5]
            msg, env = (os.path.join(d.spool, s, qid) for s in ("msg", "env"))
            if how in ("msg-gone", "both-gone"):
                os.unlink(msg)
            if how in ("env-gone", "both-gone"):
                os.unlink(env)
            for kind, path in (("msg", msg), ("env", env)):
                if how == kind + "-cut":
                    os.truncate(path, os.path.getsize(path) // 2)
            damage[qid] = how
        m = self.restart_and_deliver(d, sh, sent, acked, segs)
        self.assertEqual(int(m.group(2)), 20, m.group(0))
        lost = sum(2 if how == "both-gone" else 1 for how in damage.values())
        self.assertEqual(int(m.group(3)), lost, "rebuilt files: " + m.group(0))
        self.assertEqual(d.spool_entries("env"), [])
        print("\n  lost files: %s; %s" % (sorted(set(damage.values())), m.group(0)))


if __name__ == "__main__":
    harness.main()
