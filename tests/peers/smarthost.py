#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real upstream smarthost for the integration tests (aiosmtpd, Debian's).

Run it with /usr/bin/python3 (the python3-aiosmtpd package). It prints
"READY <port>" on stdout once listening (use --port 0 to let the kernel pick).

  --mode starttls|implicit|plain   starttls: STARTTLS offered and required
                                   before MAIL; implicit: TLS from the first
                                   byte (465 style); plain: no TLS at all
  --cert/--key FILE                server certificate for starttls/implicit
  --auth USER:PASSWORD             require AUTH (PLAIN and LOGIN), only ever
                                   offered/accepted inside TLS
  --auth-mechs PLAIN,LOGIN         mechanisms offered (default both)
  --auth-plaintext                 offer/accept AUTH without TLS (to test that
                                   the client refuses to use it)
  --maildir DIR                    each accepted message -> one file: a JSON
                                   line (envelope, tls, user, peer, session),
                                   "\\n", then the exact DATA bytes after
                                   un-dot-stuffing (aiosmtpd original_content).
                                   Written as DIR/tmp/x then renamed into DIR.
  --log FILE                       every line received outside DATA (commands,
                                   AUTH responses) and every reply sent, with
                                   the session number and TLS state
  --wire DIR                       raw plaintext bytes received, one file per
                                   session (DIR/session-N.bin)
  --rcpt-reply [N:]PATTERN=CODE TEXT  reply to RCPT matching fnmatch PATTERN
                                   (case-insensitive) with this reply, the
                                   first N times only if N: is given
  --mail-reply [N:]PATTERN=CODE TEXT  same for MAIL FROM
  --data-reply [N:]CODE TEXT       reply to end-of-data; a 2xx reply stores
  --data-delay S                   sleep before answering end-of-data
  --ehlo-drop KEYWORD              remove an EHLO keyword (e.g. STARTTLS)
  --size-limit N                   SIZE / data limit (default 64 MiB, 0 none)
  --line-limit N                   longest accepted line incl. CRLF (1001)
  --smtputf8                       advertise SMTPUTF8
"""
import argparse
import asyncio
import fnmatch
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

SESSIONS = itertools.count(1)
MESSAGES = itertools.count(1)


def printable(data):
    """Bytes -> one log line, non-printables escaped."""
    out = []
    for b in data:
        if 32 <= b < 127 and b != 0x5C:
            out.append(chr(b))
        elif b == 0x5C:
            out.append("\\\\")
        elif b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


class Rule:
    """[N:]PATTERN=REPLY or, for DATA, [N:]REPLY."""

    def __init__(self, spec, with_pattern=True):
        self.left = None
        head, sep, rest = spec.partition(":")
        if sep and head.isdigit():
            self.left = int(head)
            spec = rest
        if with_pattern:
            self.pattern, _, self.reply = spec.partition("=")
            self.pattern = self.pattern.lower()
        else:
            self.pattern, self.reply = "*", spec
        if not self.reply[:3].isdigit():
            raise ValueError("bad reply in rule %r" % spec)

    def take(self, value):
        """The reply if this rule applies to value (and uses one count)."""
        if self.left == 0 or not fnmatch.fnmatchcase(value.lower(), self.pattern):
            return None
        if self.left is not None:
            self.left -= 1
        return self.reply


def first_reply(rules, value):
    for r in rules:
        reply = r.take(value)
        if reply is not None:
            return reply
    return None


class Handler:
    def __init__(self, opts):
        self.opts = opts
        self.rcpt_rules = [Rule(s) for s in opts.rcpt_reply]
        self.mail_rules = [Rule(s) for s in opts.mail_reply]
        self.data_rules = [Rule(s, with_pattern=False) for s in opts.data_reply]
        if opts.maildir:
            os.makedirs(os.path.join(opts.maildir, "tmp"), exist_ok=True)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        drop = [d.upper() for d in self.opts.ehlo_drop]
        out = []
        for r in responses:
            kw = r[4:].split(" ")[0].upper()
            if kw in drop:
                continue
            out.append(r)
        # the last line must be "250 " after filtering
        out = [("250-" + r[4:]) for r in out[:-1]] + ["250 " + out[-1][4:]]
        return out

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = first_reply(self.mail_rules, address)
        if reply is not None:
            return reply
        # the null reverse-path stays "<>" here (aiosmtpd's RCPT checks that
        # mail_from is set); store() writes it as ""
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = first_reply(self.rcpt_rules, address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.opts.data_delay:
            await asyncio.sleep(self.opts.data_delay)
        reply = first_reply(self.data_rules, "*")
        if reply is not None and not reply.startswith("2"):
            return reply
        n = next(MESSAGES)
        if self.opts.maildir:
            self.store(server, session, envelope, n)
        return reply or "250 2.0.0 Ok: stored as M%d" % n

    def store(self, server, session, envelope, n):
        meta = {
            "mail_from": "" if envelope.mail_from == "<>" else envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "user": session.auth_data if session.authenticated else None,
            "tls": server.is_tls(),
            "peer": list(session.peer) if session.peer else None,
            "session": server.sid,
            "n": n,
            "time": time.time(),
        }
        data = envelope.original_content
        name = "%020d-%d-%06d.eml" % (time.time_ns(), os.getpid(), n)
        tmp = os.path.join(self.opts.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(json.dumps(meta).encode() + b"\n")
            f.write(data)
        os.rename(tmp, os.path.join(self.opts.maildir, name))


class LoggingSMTP(SMTP):
    """aiosmtpd's SMTP with a command/reply log and a raw wire log."""

    opts = None
    logf = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sid = next(SESSIONS)
        self.wiref = None
        self._wrapped = False
        self._tls_on = False

    def is_tls(self):
        return self._tls_on

    def log(self, kind, text):
        if self.logf is not None:
            self.logf.write("%d tls=%d %s %s\n" % (self.sid, int(self.is_tls()), kind, text))
            self.logf.flush()

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            # implicit TLS: the transport is already an SSL transport
            self._tls_on = transport.get_extra_info("ssl_object") is not None
            peer = transport.get_extra_info("peername")
            self.log("*", "connect from %s" % (peer,))
            if self.opts.wire:
                self.wiref = open(os.path.join(self.opts.wire, "session-%d.bin" % self.sid), "wb")
            self.wrap_reader()
        else:
            self._tls_on = True
            self.log("*", "tls established")

    def wrap_reader(self):
        """Log command lines: _handle_client reads them with readuntil() and no
        separator; DATA passes b'\\r\\n' explicitly and is not logged here."""
        if self._wrapped:
            return
        self._wrapped = True
        reader = self._reader
        orig_until = reader.readuntil
        orig_line = reader.readline

        async def readuntil(*args, **kw):
            line = await orig_until(*args, **kw)
            if not args and not kw:
                self.log("C:", printable(line.rstrip(b"\r\n")))
            return line

        async def readline():
            line = await orig_line()
            self.log("C(auth):", printable(line.rstrip(b"\r\n")))
            return line

        reader.readuntil = readuntil
        reader.readline = readline

    def data_received(self, data):
        if self.wiref is not None:
            self.wiref.write(data)
            self.wiref.flush()
        super().data_received(data)

    def connection_lost(self, exc):
        self.log("*", "closed")
        if self.wiref is not None:
            self.wiref.close()
            self.wiref = None
        super().connection_lost(exc)

    async def push(self, status):
        text = status if isinstance(status, str) else status.decode("latin-1")
        self.log("S:", text)
        await super().push(status)


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (auth_data.login == user.encode() and auth_data.password == password.encode())
        server.log("*", "auth %s %s" % (mechanism, "ok" if ok else "failed"))
        if ok:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)
    return authenticator


def make_tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description="test smarthost (aiosmtpd)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=("starttls", "implicit", "plain"), default="starttls")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--auth-mechs", default="PLAIN,LOGIN")
    p.add_argument("--auth-plaintext", action="store_true")
    p.add_argument("--maildir")
    p.add_argument("--log")
    p.add_argument("--wire")
    p.add_argument("--rcpt-reply", action="append", default=[])
    p.add_argument("--mail-reply", action="append", default=[])
    p.add_argument("--data-reply", action="append", default=[])
    p.add_argument("--data-delay", type=float, default=0.0)
    p.add_argument("--ehlo-drop", action="append", default=[])
    p.add_argument("--size-limit", type=int, default=64 * 1024 * 1024)
    p.add_argument("--line-limit", type=int, default=1001)
    p.add_argument("--smtputf8", action="store_true")
    p.add_argument("--hostname", default="smarthost.test")
    p.add_argument("--timeout", type=float, default=300.0)
    opts = p.parse_args(argv)
    if opts.mode != "plain" and not (opts.cert and opts.key):
        p.error("--mode %s needs --cert and --key" % opts.mode)
    return opts


def server_factory(opts, handler, tls_ctx):
    mechs = [m.strip().upper() for m in opts.auth_mechs.split(",") if m.strip()]
    kw = dict(
        data_size_limit=opts.size_limit or None,
        enable_SMTPUTF8=opts.smtputf8,
        decode_data=False,
        hostname=opts.hostname,
        ident="outbox-test-smarthost",
        timeout=opts.timeout,
        auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in mechs],
    )
    if opts.mode == "starttls":
        kw.update(tls_context=tls_ctx, require_starttls=True)
    # implicit: the whole connection is TLS, so AUTH may be offered at once
    kw["auth_require_tls"] = not (opts.mode == "implicit" or opts.auth_plaintext)
    if opts.auth:
        user, _, password = opts.auth.partition(":")
        kw.update(auth_required=True, authenticator=make_authenticator(user, password))
    cls = type("SMTPServer", (LoggingSMTP,), {"line_length_limit": opts.line_limit})
    return lambda: cls(handler, **kw)


async def serve(opts):
    LoggingSMTP.opts = opts
    if opts.log:
        LoggingSMTP.logf = open(opts.log, "a", buffering=1)
    if opts.wire:
        os.makedirs(opts.wire, exist_ok=True)
    handler = Handler(opts)
    tls_ctx = make_tls_context(opts) if opts.mode != "plain" else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        server_factory(opts, handler, tls_ctx), opts.host, opts.port,
        ssl=tls_ctx if opts.mode == "implicit" else None, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    await stop
    server.close()


def main(argv=None):
    # aiosmtpd's own warnings (AUTH without TLS in implicit mode, deprecations)
    # are noise here: everything that matters goes to --log
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
