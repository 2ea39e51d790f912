#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A byte-exact scripted SMTP server for fault cases (stdlib asyncio + ssl),
in the spirit of Exim's test-suite bin/server.

  fake_smtp.py [--port N] [--cert F --key F] [--implicit-tls]
               [--connections N] [--log FILE] [--transcript FILE]
               (--script FILE | --steps 'STEP;;STEP;;...')

Prints "READY <port>" on stdout once listening. Each accepted connection
plays the script from the top; after --connections connections (default 1,
0 = no limit) the server stops listening and exits when the last one ends.

Steps, one per line (blank lines and lines starting with # are ignored):
  send TEXT        write TEXT exactly; escapes \\r \\n \\t \\\\ \\xHH; nothing added
  sendline TEXT    the same, then \\r\\n
  expect PREFIX    read one line (up to \\n, at most 1 MiB); it must start with
                   PREFIX (case-insensitive, escapes allowed) or the connection
                   is closed and the run marked failed
  read-line        read one line, whatever it is
  read-data        read up to and including \\r\\n.\\r\\n
  read N           read exactly N bytes
  sleep S          pause S seconds (float)
  starttls         TLS handshake as server with --cert/--key
  wait-close [S]   read and log until the peer closes (at most S s, default 10)
  close            close the connection now
  exit             close the connection and stop the whole server

--log FILE gets every byte received (after TLS: the plaintext), all
connections in order, with nothing added. --transcript FILE gets a readable
line per event: "<conn> <event> <escaped bytes>". Exit status 0 if every
expect matched, 1 otherwise.
"""
import argparse
import asyncio
import signal
import ssl
import sys

MAX_LINE = 1 << 20


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out += c.encode("utf-8")
            i += 1
            continue
        n = text[i + 1]
        if n == "r":
            out += b"\r"
        elif n == "n":
            out += b"\n"
        elif n == "t":
            out += b"\t"
        elif n == "\\":
            out += b"\\"
        elif n == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 2
        else:
            out += ("\\" + n).encode()
        i += 2
    return bytes(out)


def escape(data):
    out = []
    for b in data:
        if b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        elif b == 0x5C:
            out.append("\\\\")
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def parse_script(text):
    steps = []
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cmd, _, arg = line.lstrip().partition(" ")
        cmd = cmd.lower()
        if cmd not in ("send", "sendline", "expect", "read-line", "read-data", "read",
                       "sleep", "starttls", "wait-close", "close", "exit"):
            raise ValueError("unknown step %r" % line)
        steps.append((cmd, arg))
    return steps


class Server:
    def __init__(self, opts, steps):
        self.opts = opts
        self.steps = steps
        self.conn_no = 0
        self.active = 0
        self.failed = False
        self.logf = open(opts.log, "ab") if opts.log else None
        self.tr = open(opts.transcript, "a", buffering=1) if opts.transcript else None
        self.done = None
        self.server = None
        self.listening = True
        self.tls_ctx = None
        if opts.cert:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(opts.cert, opts.key)

    def note(self, conn, event, data=b""):
        if self.tr:
            self.tr.write("%d %s %s\n" % (conn, event, escape(data)))

    def got(self, conn, data):
        if self.logf and data:
            self.logf.write(data)
            self.logf.flush()
        self.note(conn, "C:", data)

    async def handle(self, reader, writer):
        self.conn_no += 1
        conn = self.conn_no
        self.active += 1
        if self.opts.connections and conn >= self.opts.connections:
            self.server.close()
            self.listening = False
        self.note(conn, "connect")
        try:
            await self.play(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as e:
            self.note(conn, "error", str(e).encode())
        finally:
            try:
                writer.close()
            except Exception:
                pass
            self.note(conn, "closed")
            self.active -= 1
            if not self.listening and self.active == 0:
                self.finish()

    def finish(self):
        if not self.done.done():
            self.done.set_result(None)

    async def play(self, conn, reader, writer):
        for cmd, arg in self.steps:
            if cmd in ("send", "sendline"):
                data = unescape(arg) + (b"\r\n" if cmd == "sendline" else b"")
                writer.write(data)
                await writer.drain()
                self.note(conn, "S:", data)
            elif cmd == "expect":
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    line = e.partial
                self.got(conn, line)
                if not line.lower().startswith(unescape(arg).lower()):
                    self.note(conn, "EXPECT-FAILED wanted", unescape(arg))
                    self.failed = True
                    return
            elif cmd == "read-line":
                line = await reader.readuntil(b"\n")
                self.got(conn, line)
            elif cmd == "read-data":
                data = await reader.readuntil(b"\r\n.\r\n")
                self.got(conn, data)
            elif cmd == "read":
                data = await reader.readexactly(int(arg))
                self.got(conn, data)
            elif cmd == "sleep":
                await asyncio.sleep(float(arg))
            elif cmd == "starttls":
                await writer.start_tls(self.tls_ctx)
                self.note(conn, "tls established")
            elif cmd == "wait-close":
                await self.wait_close(conn, reader, float(arg or 10))
                return
            elif cmd == "close":
                return
            elif cmd == "exit":
                self.server.close()
                self.listening = False
                self.finish()
                return

    async def wait_close(self, conn, reader, limit):
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        while loop.time() < end:
            try:
                data = await asyncio.wait_for(reader.read(65536), end - loop.time())
            except asyncio.TimeoutError:
                self.note(conn, "wait-close timeout")
                return
            if not data:
                return
            self.got(conn, data)


async def serve(opts, steps):
    srv = Server(opts, steps)
    loop = asyncio.get_running_loop()
    srv.done = loop.create_future()
    ssl_ctx = srv.tls_ctx if opts.implicit_tls else None
    srv.server = await asyncio.start_server(srv.handle, opts.host, opts.port, ssl=ssl_ctx,
                                            limit=64 * 1024 * 1024, reuse_address=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, srv.finish)
    port = srv.server.sockets[0].getsockname()[1]
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    await srv.done
    srv.server.close()
    return 1 if srv.failed else 0


def main():
    p = argparse.ArgumentParser(description="scripted fake SMTP server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--log")
    p.add_argument("--transcript")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--script")
    g.add_argument("--steps", help="steps separated by ';;'")
    opts = p.parse_args()
    if opts.script:
        with open(opts.script) as f:
            text = f.read()
    else:
        text = "\n".join(opts.steps.split(";;"))
    steps = parse_script(text)
    if any(c == "starttls" for c, _ in steps) or opts.implicit_tls:
        if not (opts.cert and opts.key):
            p.error("starttls/implicit TLS needs --cert and --key")
    return asyncio.run(serve(opts, steps))


if __name__ == "__main__":
    sys.exit(main())
