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
  records parse (header, CRC-32) and carry each message byte for byte, and
  whatever queue files the kill left agree with them; the restart replays
  it ("spool: replayed") and every 250'd message is delivered exactly once,
  byte-identical;
* held messages: a message committed through the log is held (its record
  and the daemon's memory are all there is; msg/ID and env/ID are written
  only when needed: a deferral, the segment's retire, a clean stop). With
  deliveries stalled, a kill -9 leaves most messages without any queue
  file, and the few deferred ones with an msg/ID nobody fsynced, which a
  power loss may take away or cut short: the replay writes them all from
  the records, and every 250'd message is delivered exactly once.

The strace parsing (-y paths, line order as causal order) comes from
test_faults.py.
"""
import os
import re
import signal
import smtplib
import threading
import time
import zlib

import harness
from harness import OutboxTestCase, SEG_RE, free_port, parse_segment
from test_faults import (Strace, fsyncs_of, log_records, marker_message, parse_trace,
                         replies_250, require_strace, wait_log_empty, with_marker)

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
            recs, used = parse_segment(data, int(name, 16))
            out[name] = (recs, used, len(data), not data[used:].strip(b"\0"))
    return out


# Every connection of the fake relay: the first MAIL is refused with 451
# (that message is deferred: its update writes msg/ID, without fsync, and
# env/ID), then the session stalls at the next transaction's RSET, so every
# message behind it stays held, its files never written.
STALL_AFTER_ONE = ("sendline 220 fake.test ESMTP\nexpect EHLO\nsendline 250 fake.test\n"
                   "expect MAIL\nsendline 451 4.3.0 try again later\nexpect RSET\n"
                   "sleep 60\nclose\n")


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
        sent, acked, segs = self.burst_and_kill(d, total, sessions, tag)
        self.assertEqual(with_marker(sh, tag), [], "delivered before the kill")
        return d, sent, acked, segs

    def burst_and_kill(self, d, total, sessions, tag):
        """total messages over concurrent sessions to d, SIGKILL right after
        the last 250. Returns ({marker: data}, {marker: qid}, segments)."""
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
        segs = read_segments(d.spool)
        return {m: sent[m] for m in acked}, acked, segs

    def check_segments(self, d, segs, acked):
        """The segments left hold one valid 'A' record per 250'd message, no
        'D', then only zeros, and each record describes its body (I, Z,
        C). Returns {qid: record}."""
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
            fields = dict(env_records(env))
            self.assertEqual(fields.get("I"), qid.encode())
            self.assertEqual(int(fields.get("Z", b"-1")), len(body), "%s: Z" % qid)
            self.assertEqual(int(fields.get("C", b"x"), 16), zlib.crc32(body), "%s: C" % qid)
        return by_id

    def queue_files(self, d, by_id):
        """What the kill left of each message's queue files, checked against
        its record; {qid: state}:
          "files": env/ID and msg/ID; msg/ID is the record's body and env/ID
                   the record's message (a deferral may have rewritten
                   attempts and states): env/ID is only ever renamed into
                   place after msg/ID was written whole;
          "msg":   msg/ID alone, a prefix of the body (a write of the files
                   that the kill stopped before the envelope);
          "none":  held: its files never written."""
        states = {}
        for qid, (_t, _id, env, body) in by_id.items():
            msg = read_or_none(os.path.join(d.spool, "msg", qid))
            envf = read_or_none(os.path.join(d.spool, "env", qid))
            if envf is not None:
                self.assertEqual(msg, body, "%s: env/%s there, msg/%s is not the record's body"
                                 % (qid, qid, qid))
                self.assertEqual(env_identity(envf), env_identity(env),
                                 "%s: env/%s is not the record's message" % (qid, qid))
                states[qid] = "files"
            elif msg is not None:
                self.assertEqual(msg, body[:len(msg)], "%s: msg/%s (%d bytes, no env/) is not "
                                 "a prefix of the record's body" % (qid, qid, len(msg)))
                states[qid] = "msg"
            else:
                states[qid] = "none"
        return states

    def expected_rebuilds(self, d, by_id):
        """The files the replay must write (spool_log_replay.c): msg/ID
        missing or not the record's body; env/ID missing (one that is there
        was checked by queue_files and is kept)."""
        n = 0
        for qid, (_t, _id, _env, body) in by_id.items():
            n += read_or_none(os.path.join(d.spool, "msg", qid)) != body
            n += not os.path.exists(os.path.join(d.spool, "env", qid))
        return n

    def restart_and_deliver(self, d, sh, sent, acked, segs, by_id=None):
        """Restart with a working relay; every 250'd message delivered
        exactly once, byte-identical. With by_id, right after the replay
        every record's message has its files whole (msg/ID its body, env/ID
        there) unless it was delivered already. Returns the replay log
        match."""
        mark = d.log_size()
        d.relay = [sh.port]
        d.start()
        m = d.wait_log(REPLAYED_RE, 10, since=mark)
        for qid, (_t, _id, _env, body) in sorted((by_id or {}).items()):
            # files first: a removal only follows the delivery's log line
            whole = (read_or_none(os.path.join(d.spool, "msg", qid)) == body
                     and os.path.exists(os.path.join(d.spool, "env", qid)))
            self.assertTrue(whole or d.deliveries(status="sent", qid=qid, since=mark),
                            "%s: files not restored by the replay, and not delivered" % qid)
        self.assertEqual(set(d.log_segments()) & set(segs), set(),
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
        record per message, and the queue files the kill left (written by
        the deferrals; the last messages may still have been held, without
        files) agree with them; the restart logs "spool: replayed" with 50
        still queued and exactly the missing or short files rebuilt, and
        each message is delivered exactly once, byte-identical."""
        sh = self.smarthost()
        d, sent, acked, segs = self.kill_after_250s(sh, 50, 10, "GCK")
        by_id = self.check_segments(d, segs, acked)
        states = self.queue_files(d, by_id)
        rebuilds = self.expected_rebuilds(d, by_id)
        m = self.restart_and_deliver(d, sh, sent, acked, segs, by_id)
        self.assertEqual(int(m.group(1)), len(segs), m.group(0))
        self.assertEqual(int(m.group(2)), 50, m.group(0))
        self.assertEqual(int(m.group(3)), rebuilds, m.group(0))
        self.assertEqual(int(m.group(4)), 0, m.group(0))
        print("\n  kill -9: %d segment(s) left (%s bytes); queue files at the kill %s; %s"
              % (len(segs), [s[2] for s in segs.values()], count_states(states), m.group(0)))

    def test_unflushed_queue_files_rebuilt_from_log(self):
        """Held messages after a kill -9, and a power loss on top. The fake
        relay refuses the first MAIL of each connection (451: that message
        is deferred, its msg/ID written without fsync and its env/ID) and
        then stalls, so the messages behind it stay held. The first message
        goes alone and is waited for until deferred; 20 more follow over 5
        sessions and the daemon is killed right after the last 250: the
        segment holds a valid record per 250'd message; the held ones have
        no queue file at all, the deferred ones files that agree with their
        records. As a power loss may, the msg/ID of the deferred ones (never
        fsynced) are then removed or cut short (their env/ID was fsynced by
        the update). At the next start the replay ("spool: replayed")
        writes every missing or short file from the records (rebuilt =
        exactly those), right after it each message's files are in place
        or it is delivered, and every 250'd message is delivered exactly
        once, byte-identical."""
        fake = self.fake(STALL_AFTER_ONE, connections=0)
        d = self.outboxd(relay=[fake.port], tls="none", user=None,
                         settings={"log": {"level": "info"}})
        first = marker_message("GCP-first", 400)
        got = run_sessions(d.port, [[("GCP-first", first)]])
        self.assertEqual(got[0][1], 250, got)
        qid0 = harness.queue_id_of(got[0][2])
        # its update renames env/ID into place after writing msg/ID
        harness.wait_for(lambda: os.path.exists(os.path.join(d.spool, "env", qid0)), 10,
                         "GCP-first deferred (env/%s written)" % qid0)
        sent, acked, segs = self.burst_and_kill(d, 20, 5, "GCP")
        sent["GCP-first"], acked["GCP-first"] = first, qid0
        by_id = self.check_segments(d, segs, acked)
        states = self.queue_files(d, by_id)
        self.assertEqual(states[qid0], "files", "the first message, deferred: %r" % states)
        self.assertGreater(count_states(states).get("none", 0), 0,
                           "no held message without files at the kill: %r" % states)
        # Deliveries stalled: nothing was delivered, nothing removed.
        self.assertNotIn(b"DATA", fake.received())
        fake.stop()
        damage = {}
        for i, qid in enumerate(sorted(q for q, st in states.items() if st == "files")):
            msg = os.path.join(d.spool, "msg", qid)
            if i % 2 == 0:
                os.unlink(msg)
                damage[qid] = "msg-gone"
            else:
                os.truncate(msg, os.path.getsize(msg) // 2)
                damage[qid] = "msg-cut"
        rebuilds = self.expected_rebuilds(d, by_id)
        # both files of each held message, each damaged msg/ID, and the
        # env/ID (and msg/ID if short) of a write the kill cut
        cut = sum(1 + (read_or_none(os.path.join(d.spool, "msg", q)) != by_id[q][3])
                  for q, st in states.items() if st == "msg")
        self.assertEqual(rebuilds, 2 * count_states(states).get("none", 0) + len(damage) + cut)
        sh = self.smarthost(mode="plain", auth=None)
        m = self.restart_and_deliver(d, sh, sent, acked, segs, by_id)
        self.assertEqual(int(m.group(2)), 21, m.group(0))
        self.assertEqual(int(m.group(3)), rebuilds, "rebuilt files: " + m.group(0))
        self.assertEqual(int(m.group(4)), 0, m.group(0))
        self.assertEqual(d.spool_entries("env"), [])
        print("\n  queue files at the kill %s; damaged %s; %s"
              % (count_states(states), sorted(damage.values()), m.group(0)))


def read_or_none(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def count_states(states):
    out = {}
    for st in states.values():
        out[st] = out.get(st, 0) + 1
    return out


if __name__ == "__main__":
    harness.main()
