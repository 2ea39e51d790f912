#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Regenerate the seed corpora in tests/fuzz/corpus/<target>/ from the
golden files the unit tests use (tests/transcripts/, tests/dsn/) and a few
hand-written samples. Each seed is small (a few KB at most); the layout of
a seed is the harness's input format (see the top of tests/fuzz/fuzz_*.c).

    /usr/bin/python3 tests/fuzz/seeds.py          # rewrite every corpus
    /usr/bin/python3 tests/fuzz/seeds.py server   # one target
"""
import glob
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
SEED_MAX = 8192


def unescape(text):
    """The C escapes of the transcript files: \\r \\n \\t \\\\ \\0 \\xHH."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == '\\' and i + 1 < len(text):
            n = text[i + 1]
            if n == 'x' and i + 3 < len(text) + 1:
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out += {'r': b'\r', 'n': b'\n', 't': b'\t', '\\': b'\\',
                    '0': b'\0'}.get(n, n.encode())
            i += 2
            continue
        out += c.encode('latin-1')
        i += 1
    return bytes(out)


def write(target, seeds):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, '*')):
        os.unlink(f)
    for s in seeds:
        s = s[:SEED_MAX]
        name = hashlib.sha1(s).hexdigest()[:16]
        with open(os.path.join(d, name), 'wb') as f:
            f.write(s)
    print('%s: %d seeds' % (target, len(seeds)))


def server_transcripts():
    """(config dict, client bytes) of every server transcript."""
    for path in sorted(glob.glob(os.path.join(TESTS, 'transcripts/server/*.txt'))):
        cfg, data = {}, bytearray()
        for line in open(path, encoding='latin-1').read().split('\n'):
            if line.startswith('@config'):
                for kv in line.split()[1:]:
                    k, _, v = kv.partition('=')
                    cfg[k] = v
            elif line.startswith('@client denied'):
                cfg['denied'] = '1'
            elif line.startswith('C: '):
                data += unescape(line[3:]) + b'\r\n'
            elif line.startswith('C< '):
                data += unescape(line[3:])
            elif line.startswith('C* '):
                n, _, t = line[3:].partition(' ')
                data += unescape(t) * min(int(n), 64)
        yield cfg, bytes(data)


def seeds_server():
    out = []
    for cfg, data in server_transcripts():
        flags = 0
        if cfg.get('bare_newline') == 'strict':
            flags |= 1
        if cfg.get('denied'):
            flags |= 2
        if 'max_message_size' in cfg and int(cfg['max_message_size']) < 5000:
            flags |= 4
        if 'max_recipients' in cfg:
            flags |= 8
        if 'hop_limit' in cfg:
            flags |= 16
        if 'error_limit' in cfg:
            flags |= 32
        head = bytes([flags, 40, 2, int(cfg.get('error_limit', '3')) - 1])
        ctrl = bytes([0] * 12)           # whole feeds, commit ok
        out.append(head + ctrl + data)
        ctrl = bytes([7, 1, 3, 200, 31, 2, 9, 13, 5, 1, 64, 11])
        out.append(head + ctrl + data)   # small splits, mixed answers
    return out


def seeds_data():
    out = []
    for cfg, data in server_transcripts():
        i = data.find(b'DATA\r\n')
        if i < 0:
            continue
        body = data[i + 6:]
        small = 2 if 'max_message_size' in cfg else 0
        out.append(bytes([1 | small, 10, len(out) & 0xff]) + body)
    out.append(bytes([1, 0, 7]) + b'a\r\n.\r\n')
    out.append(bytes([0, 0, 3]) + b'.\r\nx\n.\nx\r\n.\ny\r.\r\n.\r\n')
    out.append(bytes([1, 0, 9]) + b'Received: a\r\nreceived: b\r\n\r\n..x\r\n.\r\n')
    return dedup(out)


def client_transcripts():
    for path in sorted(glob.glob(os.path.join(TESTS, 'transcripts/client/*.txt'))):
        cfg, lines = 0, []
        for line in open(path, encoding='latin-1').read().split('\n'):
            if line.startswith('@cfg'):
                if lines:
                    yield cfg, lines
                kv = dict(w.partition('=')[::2] for w in line.split()[1:])
                cfg = {'none': 0, 'starttls': 1, 'implicit': 2}.get(kv.get('tls'), 0)
                if kv.get('required') == '1':
                    cfg |= 4
                if kv.get('user'):
                    cfg |= 8
                lines = []
            elif line.startswith('S: '):
                lines.append(unescape(line[3:]))
        if lines:
            yield cfg, lines


def seeds_reply():
    out = []
    for _, lines in client_transcripts():
        out.append(b'\x05' + b'\r\n'.join(lines) + b'\r\n')
    out.append(b'\x00250-a\r\n250-2.0.0 b\r\n250 c\r\n')
    out.append(b'\x01550 5.1.1234567890123456 x\n')
    return dedup(out)


def seeds_client():
    out = []
    for cfg, lines in client_transcripts():
        for extra in (0, 0x10):
            out.append(bytes([cfg | extra]) + b'\r\n'.join(lines) + b'\r\n')
    return dedup(out)


def seeds_addr():
    out = []
    for _, data in server_transcripts():
        for line in data.split(b'\r\n'):
            if line[:4].upper() in (b'MAIL', b'RCPT'):
                out.append(b'\x20' + line)
    out.append(b'\x10MAIL FROM:<a@b.test> SIZE=10 BODY=8BITMIME ENVID=a+2Bb RET=HDRS')
    out.append(b'\x10RCPT TO:<"x y"@[IPv6:2001:db8::1]> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b')
    out.append(b'\x00@a.test,@b.test:c@d.test')
    return dedup(out)[:200]


def env_records(rcpts=(('r@d.test', 'P', None),), sender=b'a@b.test',
                flags=b'0', ident=b'0123456789ABCDEF'):
    def rec(t, v):
        return t + str(len(v)).encode() + b':' + v + b'\n'
    b = (rec(b'V', b'1') + rec(b'I', ident) + rec(b'S', sender) +
         rec(b'T', b'1767225600') + rec(b'N', b'0') + rec(b'A', b'2') +
         rec(b'Z', b'1234') + rec(b'C', b'0badf00d') + rec(b'F', flags) +
         rec(b'H', b'192.0.2.1'))
    for a, st, err in rcpts:
        b += rec(b'R', a.encode()) + rec(b'Q', st.encode())
        if err is not None:
            b += rec(b'E', err.encode())
    return b


def with_crc(b):
    return b + b'X8:%08x\n' % (zlib.crc32(b) & 0xffffffff)


def seeds_envelope():
    a = env_records()
    b = env_records(rcpts=(('x@y.test', 'S', '250 ok'),
                           ('z@[192.0.2.9]', 'F', '550 5.1.1 no such user'),
                           ('w@v.test', 'B', '')), sender=b'', flags=b'12')
    out = [b'\x00' + with_crc(a), b'\x00' + with_crc(b), b'\x01' + a, b'\x01' + b,
           b'\x01' + a[:40], b'\x00' + with_crc(a)[:-3]]
    out.append(b'\x02' + bytes(range(16)) + bytes(41) + b'192.0.2.1\0s@x.test\0'
               b'\x04r@d.test\0451 4.3.0 later\0\x01t@d.test\0')
    return out


def seeds_maildrop():
    a = env_records()
    full = with_crc(a)
    out = [b'\x00' + b'OBXMD1 %d\n' % len(full) + full + b'Subject: x\r\n\r\nbody\r\n',
           b'\x01' + a + b'\0Subject: x\r\n\r\nbody\r\n',
           b'\x00OBXMD1 007\n', b'\x00OBXMD1 99999999999\n']
    return out


def seeds_mx():
    def recs(*r):
        return b'\x07' + b''.join(bytes([p >> 8, p & 0xff]) + n + b'\0' for p, n in r)
    return [recs((10, b'mx1.example.test'), (20, b'mx2.example.test.'),
                 (10, b'MX1.Example.Test'), (5, b'192.0.2.1'), (30, b'-bad-.test')),
            recs((0, b'.')), recs((0, b'')), recs(*[(i % 3, b'h%d.test' % i) for i in range(40)]),
            recs((1, b'[192.0.2.1]'), (2, b'a@b.test')), b'\x00']


def dns_name(n):
    if n in (b'', b'.'):
        return b'\0'
    return b''.join(bytes([len(l)]) + l for l in n.rstrip(b'.').split(b'.')) + b'\0'


def dns_mx_answer(qname, mx, rcode=0):
    hdr = struct.pack('>HHHHHH', 0x1234, 0x8180 | rcode, 1, len(mx), 0, 0)
    q = dns_name(qname) + struct.pack('>HH', 15, 1)
    ans = b''
    for pref, host in mx:
        rdata = struct.pack('>H', pref) + dns_name(host)
        ans += b'\xc0\x0c' + struct.pack('>HHIH', 15, 1, 300, len(rdata)) + rdata
    return hdr + q + ans


def seeds_dns():
    return [dns_mx_answer(b'example.test', [(10, b'mx1.example.test'), (20, b'mx2.example.test')]),
            dns_mx_answer(b'example.test', [(0, b'.')]),
            dns_mx_answer(b'example.test', []),
            dns_mx_answer(b'example.test', [(5, b'192.0.2.1'), (5, b'MX.Example.Test')]),
            dns_mx_answer(b'nx.test', [], rcode=3)]


def seeds_config():
    out = []
    ini = open(os.path.join(os.path.dirname(TESTS), 'etc/outbox.ini'), 'rb').read()
    out.append(b'\x00' + ini[:SEED_MAX - 1])
    out.append(b'\x00[listen]\naddress = 127.0.0.1:2525, [::1]:25\nallow = 10.0.0.0/8 ::1\n'
               b'max_message_size = 35M\n[spool]\ndir = ./spool\nretry_min = 5m\n'
               b'[relay]\nhost = smtp.example.test:587\ntls = starttls\n'
               b'[mx]\ndns_servers = 127.0.0.1:5353\n[rewrite]\ndomain = example.test\n'
               b'[log]\nlevel = debug\nformat = json\n')
    out.append(b'\x01listen\0address\0127.0.0.1:25\0spool\0min_free\070M\0'
               b'relay\0host\0a.test:465\0mx\0tls\0required\0bogus\0k\0v\0')
    for v in (b'35M', b'5m', b'yes', b'[::1]:25', b'10.0.0.0/8', b'host.example', b'1.2.3.4'):
        out.append(b'\x02' + v)
    return out


def seeds_aliases():
    return [b'# comment\nroot: admin@example.test, \\root\npostmaster: root\n'
            b'a: b\nb: c, "quoted name"@x.test\nc: a\n'
            b'bad: |/bin/sh, /etc/passwd, :include:/x\ncont: x@y.test,\n  z@y.test\n'
            b'Dup: one\ndup: two\n',
            b'loop: loop\nself: self, other@x.test\n']


def seeds_dsn():
    hdrs = b''
    for path in sorted(glob.glob(os.path.join(TESTS, 'dsn/*.eml')))[:1]:
        hdrs = open(path, 'rb').read()[:1500]
    return [b'\x03\x01sender@example.test\0b\0mx.test\0r1@dest.test\0005.1.1\0'
            b'mx.dest.test\0550 5.1.1 no such user\0r2@dest.test\0004.4.7\0\0\0'
            b'Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n',
            b'\x25\x00s@x.test\0\0\0r@y.test\0005.0.0\0h.test\0diag\r\nBcc: evil\0' + hdrs,
            b'\x08\x00s@x.test\0=_outbox_fuzz_0\0\0r@y\0005.1.1\0\0\0'
            b'X-B: --=_outbox_fuzz_0\r\n\r\n']


def seeds_local_msg():
    m = (b'From root Thu Jan  1 00:00:00 2026\nTo: a@b.test, "C D" <c@d.test>\n'
         b'Cc: group: e@f.test, g@h.test;\nBcc: secret@x.test,\n hidden@y.test\n'
         b'Subject: test\n\nbody\n.line\n.\nafter\n')
    return [b'\x00\x05' + m, b'\x0a\x07' + m, b'\x0b\x03' + m, b'\xda\x01' + m,
            b'\x02\x00Bcc: only@x.test\n', b'\x08\x00no header line\r\nx\r']


def seeds_sendmail_args():
    return [b'-t\0-i', b'-f\0root@host.test\0-F\0Cron Daemon\0a@b.test\0c@d.test',
            b'-oi\0-oem\0-B\x008BITMIME\0--\0x@y.test', b'-bp', b'-q30m', b'-C/etc/x\0a',
            b'-ti\0-fa@b\0-N\0never\0-O\0IgnoreDots=yes\0r@s.test', b'a@b.test\0-X/tmp/log']


def seeds_qualify():
    return [b'\x10example.test\0root', b'\x10example.test\0<root>',
            b'\x10example.test\0"a b"', b'\x40example.test\0Root User <root>, b@x, "x, y" <z>',
            b'\x40example.test\0group: a, b;', b'\x40example.test\0undisclosed-recipients:;',
            b'\x01example.test\0root (Cron Daemon)', b'\x10bad..domain\0root']


def seeds_control():
    msg = (b'{"id":"00000000000000A1","sender":"app@local.test","recipients":['
           b'{"address":"r1@dest.test","state":"sent","last_error":"250 ok"},'
           b'{"address":"r\\"2\\"@dest.test","state":"pending","last_error":"451 4.3.0 try later"},'
           b'{"address":"r3@dest.test","state":"bounced","last_error":null}],'
           b'"size":1234,"arrival":1767225600,"attempts":2,"next_attempt":1767225660,'
           b'"held":true,"busy":false,"last_error":"451 4.3.0 try later",'
           b'"headers":"Subject: x\\r\\n\\u00e9","headers_truncated":false}')
    return [b'\x00LIST', b'\x00show 00000000000000A1\r', b'\x00FLUSH', b'\x00HOLD 0000000000000000',
            b'\x01' + msg, b'\x01 ' + msg + b',',
            b'\x02{"ok":true,"id":"00000000000000A1","count":3,"deferred":true}',
            b'\x02{"error":"no such message","code":"ENOENT"}',
            b'\x02Subject: x\r\nFrom: y\r\n\r\nbody \xc3\xa9 \xff \x7f']


def dedup(seeds):
    seen, out = set(), []
    for s in seeds:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def seeds_spool_record():
    """Intake-log segments (spool_record.h): mode byte, then records. The
    harness reads them as segment 0xa1b2c3d4 (plus (mode >> 4) << 32)."""
    seg = 0xa1b2c3d4

    def rec(t, ident, env=b'', body=b'', s=seg, v1=False):
        h = ((b'OBL1' if v1 else b'OBL2') + t + bytes(3) + struct.pack('<I', len(env)) +
             struct.pack('<I', 0 if v1 else s & 0xffffffff) +
             struct.pack('<Q', len(body)) + ident.ljust(32, b'\0'))
        if v1:
            crc = zlib.crc32(body, zlib.crc32(env, zlib.crc32(h)))
        else:
            crc = zlib.crc32(h, zlib.crc32(body, zlib.crc32(env)))
        return h + struct.pack('<I', crc & 0xffffffff) + bytes(4) + env + body
    i1, i2 = b'0123456789ABCDEF', b'00C0FFEE00000001'
    env = with_crc(env_records(ident=i1))
    body = b'Subject: x\r\n\r\nhello\r\n'
    a = rec(b'A', i1, env, body)
    d = rec(b'D', i1)
    b = rec(b'A', i2, b'E', b'')
    stale = rec(b'A', i2, b'E', b'', s=seg - 1)
    out = [b'\x00' + a, b'\x00' + d, b'\x00' + a + d + b, b'\x00' + a + b[:-1],
           b'\x00' + a + b[:40], b'\x00' + a + bytes(64) + d,
           b'\x00' + d[:60] + b'\x01' + bytes(3),
           b'\x00' + a + stale + d,                 # a recycled file's past
           b'\x10' + a + d,                         # the same, seg + 2^32
           b'\x00' + rec(b'A', i1, env, body, v1=True) + rec(b'D', i1, v1=True),
           b'\x01' + a[:56] + bytes(8) + env + body + d[:56] + bytes(8),
           b'\x03' + (d[:12] + bytes(4) + d[16:56] + bytes(8)) * 8]
    return out


TARGETS = {
    'addr': seeds_addr,
    'aliases': seeds_aliases,
    'client': seeds_client,
    'config': seeds_config,
    'control': seeds_control,
    'data': seeds_data,
    'dns': seeds_dns,
    'dsn': seeds_dsn,
    'envelope': seeds_envelope,
    'local_msg': seeds_local_msg,
    'maildrop': seeds_maildrop,
    'mx': seeds_mx,
    'qualify': seeds_qualify,
    'reply': seeds_reply,
    'sendmail_args': seeds_sendmail_args,
    'server': seeds_server,
    'spool_record': seeds_spool_record,
}


def main():
    names = sys.argv[1:] or sorted(TARGETS)
    for t in names:
        write(t, TARGETS[t]())


if __name__ == '__main__':
    main()
