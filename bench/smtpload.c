/* SPDX-License-Identifier: MIT */
/*
 * smtpload: a lean SMTP load generator for bench/run (one epoll thread).
 *
 * Send mode (default): -c connections share -m messages of -s bytes; each
 * connection says EHLO once, then sends one transaction after another on
 * the same connection. With PIPELINING (the default; -P turns it off) a
 * transaction costs one write and one read: the end of one message goes out
 * together with the MAIL, RCPT and DATA of the next (RFC 2920 3.1), so the
 * generator, not the round trips, is the smallest part of the time.
 * A message counts as accepted only at the 250 after its final dot.
 *
 * Hold mode (-H): open -c connections (at most 200 opening at once, so the
 * listen queue never overflows), read the banner and the EHLO reply on
 * each, print the count, and keep them open idle until stdin closes.
 *
 * Output: one JSON object on stdout. Times "t_first"/"t_last" are wall
 * clock (seconds since the epoch) so the caller can line them up with the
 * arrivals it sees at the sink; latencies are from the MAIL write to the
 * final 250, per message, on the monotonic clock.
 *
 *   smtpload [-c N] [-m N] [-s BYTES] [-P] [-H] [-t SECONDS] [-L FILE] HOST:PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum kind { K_BANNER, K_EHLO, K_MAIL, K_RCPT, K_DATA, K_DOT, K_QUIT };
enum { WANT_MAX = 16, IN_MAX = 8192, OPENING_MAX = 200 };

struct conn {
	int fd;
	int connecting;
	int ready;              /* EHLO answered */
	int closed;
	unsigned char want[WANT_MAX];
	unsigned whead, wcount;
	char in[IN_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	long cur;               /* message in flight (its index), -1 none */
	double t_mail;          /* monotonic time of its MAIL write */
	int next_claimed;       /* MAIL/RCPT/DATA of the next one already sent */
	double t_next_mail;
	long next;
};

struct opts {
	struct sockaddr_in addr;
	long conns, messages, size, timeout;
	int pipelining, hold;
	const char *latfile;
};

static struct opts o = { .conns = 1, .messages = 100, .size = 1024,
			 .timeout = 300, .pipelining = 1 };
static char *body;
static size_t body_len;
static long claimed, accepted, failed, held, opened, opening;
static double t_first, t_last, *lat;
static long nlat;
static int ep;

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	fprintf(stderr, "smtpload: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* The message: a few headers, then 76-octet lines of 'x' up to o.size
 * octets in all, then the final dot. No line starts with '.'. */
static void
body_make(void)
{
	static const char head[] = "From: <load@bench.test>\r\nTo: <sink@sink.test>\r\n"
				   "Subject: bench\r\n\r\n";
	size_t size = o.size < (long)sizeof(head) + 8 ? sizeof(head) + 8 : (size_t)o.size;
	size_t n = sizeof(head) - 1;

	body = malloc(size + 8);
	if (!body)
		die("malloc");
	memcpy(body, head, n);
	while (n < size) {
		size_t line = size - n >= 78 ? 76 : size - n - 2;

		if (size - n < 3) { /* pad the last short line */
			memset(body + n, 'x', size - n);
			n = size;
			break;
		}
		memset(body + n, 'x', line);
		memcpy(body + n + line, "\r\n", 2);
		n += line + 2;
	}
	if (body[n - 1] != '\n') {
		memcpy(body + n, "\r\n", 2);
		n += 2;
	}
	memcpy(body + n, ".\r\n", 3);
	body_len = n + 3;
}

static void
out_add(struct conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = (c->out_len + n) * 2;
		char *q = realloc(c->out, cap);

		if (!q)
			die("realloc");
		c->out = q;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
want_push(struct conn *c, enum kind k)
{
	c->want[(c->whead + c->wcount) % WANT_MAX] = (unsigned char)k;
	c->wcount++;
}

static void
conn_watch(struct conn *c, int op)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (c->connecting || c->out_off < c->out_len)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(ep, op, c->fd, &ev) < 0)
		die("epoll_ctl");
}

static void
conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->ready)
		held--;
	else
		opening--;
	close(c->fd);
	if (c->cur >= 0)
		failed++;
	if (c->next_claimed)
		failed++;
	c->cur = -1;
	c->next_claimed = 0;
}

static int
claim(long *idx)
{
	if (o.hold || claimed >= o.messages)
		return 0;
	*idx = claimed++;
	return 1;
}

static void
tx_commands(struct conn *c, int all)
{
	static const char mail[] = "MAIL FROM:<load@bench.test>\r\n";
	static const char rcpt[] = "RCPT TO:<sink@sink.test>\r\n";
	static const char data[] = "DATA\r\n";

	out_add(c, mail, sizeof(mail) - 1);
	want_push(c, K_MAIL);
	if (!all)
		return;
	out_add(c, rcpt, sizeof(rcpt) - 1);
	want_push(c, K_RCPT);
	out_add(c, data, sizeof(data) - 1);
	want_push(c, K_DATA);
}

/* Start the next transaction on c, or say QUIT when none is left. */
static void
tx_begin(struct conn *c)
{
	long idx;

	if (!claim(&idx)) {
		out_add(c, "QUIT\r\n", 6);
		want_push(c, K_QUIT);
		return;
	}
	c->cur = idx;
	c->t_mail = now_mono();
	if (t_first == 0)
		t_first = now_wall();
	tx_commands(c, o.pipelining);
}

static void
on_accepted(struct conn *c)
{
	double t = now_mono();

	if (nlat < o.messages)
		lat[nlat++] = t - c->t_mail;
	accepted++;
	t_last = now_wall();
	c->cur = -1;
	if (c->next_claimed) {
		c->next_claimed = 0;
		c->cur = c->next;
		c->t_mail = c->t_next_mail;
	} else if (!o.pipelining) {
		tx_begin(c);
	}
}

static int
reply_ok(enum kind k, int code)
{
	switch (k) {
	case K_BANNER:
		return code == 220;
	case K_DATA:
		return code == 354;
	case K_QUIT:
		return code == 221;
	default:
		return code == 250;
	}
}

/* One complete reply of code `code` for the oldest command. Returns -1 to
 * close the connection. */
static int
on_reply(struct conn *c, int code)
{
	enum kind k;

	if (c->wcount == 0)
		return -1;
	k = (enum kind)c->want[c->whead];
	c->whead = (c->whead + 1) % WANT_MAX;
	c->wcount--;
	if (!reply_ok(k, code)) {
		if (k != K_QUIT)
			fprintf(stderr, "smtpload: unexpected reply %d (step %d)\n", code, (int)k);
		return -1;
	}
	switch (k) {
	case K_BANNER:
		out_add(c, "EHLO load.bench.test\r\n", 22);
		want_push(c, K_EHLO);
		break;
	case K_EHLO:
		c->ready = 1;
		held++;
		opening--;
		if (!o.hold)
			tx_begin(c);
		break;
	case K_MAIL:
		if (!o.pipelining) {
			out_add(c, "RCPT TO:<sink@sink.test>\r\n", 26);
			want_push(c, K_RCPT);
		}
		break;
	case K_RCPT:
		if (!o.pipelining) {
			out_add(c, "DATA\r\n", 6);
			want_push(c, K_DATA);
		}
		break;
	case K_DATA:
		out_add(c, body, body_len);
		want_push(c, K_DOT);
		if (o.pipelining) {
			long idx;

			if (claim(&idx)) {
				c->next = idx;
				c->next_claimed = 1;
				c->t_next_mail = now_mono();
				tx_commands(c, 1);
			} else {
				out_add(c, "QUIT\r\n", 6);
				want_push(c, K_QUIT);
			}
		}
		break;
	case K_DOT:
		on_accepted(c);
		break;
	case K_QUIT:
		return -1;
	}
	return 0;
}

/* Parse complete reply lines; a line whose 4th octet is not '-' ends one. */
static int
conn_parse(struct conn *c)
{
	size_t start = 0;

	for (size_t i = 0; i < c->in_len; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i - start >= 3) {
			const char *l = c->in + start;
			int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');

			if (i - start < 4 || l[3] != '-') {
				if (on_reply(c, code) < 0)
					return -1;
			}
		}
		start = i + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->in_len == IN_MAX)
		return -1;
	return 0;
}

static int
conn_read(struct conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len, IN_MAX - c->in_len);

		if (n > 0) {
			c->in_len += (size_t)n;
			if (conn_parse(c) < 0)
				return -1;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int
conn_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return -1;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static int
conn_open(struct conn *c)
{
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->cur = -1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) < 0 &&
	    errno != EINPROGRESS) {
		close(c->fd);
		return -1;
	}
	c->connecting = 1;
	want_push(c, K_BANNER);
	conn_watch(c, EPOLL_CTL_ADD);
	opened++;
	opening++;
	return 0;
}

static void
conn_event(struct conn *c, uint32_t ev)
{
	if (c->closed)
		return;
	if (c->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		c->connecting = 0;
		if (err) {
			conn_close(c);
			return;
		}
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(c) < 0) {
		conn_close(c);
		return;
	}
	if (conn_write(c) < 0) {
		conn_close(c);
		return;
	}
	conn_watch(c, EPOLL_CTL_MOD);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	long i;

	if (nlat == 0)
		return 0;
	i = (long)(p * (double)(nlat - 1) + 0.5);
	return lat[i];
}

static void
report(double secs)
{
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_double);
	printf("{\"mode\":\"%s\",\"connections\":%ld,\"opened\":%ld,\"held\":%ld,"
	       "\"messages\":%ld,\"accepted\":%ld,\"failed\":%ld,\"size\":%zu,"
	       "\"seconds\":%.6f,\"t_first\":%.6f,\"t_last\":%.6f,"
	       "\"lat_p50\":%.6f,\"lat_p90\":%.6f,\"lat_p99\":%.6f,\"lat_max\":%.6f}\n",
	       o.hold ? "hold" : "send", o.conns, opened, held, o.hold ? 0 : o.messages,
	       accepted, failed, body_len - 3, secs, t_first, t_last, pct(0.50), pct(0.90),
	       pct(0.99), nlat ? lat[nlat - 1] : 0.0);
	fflush(stdout);
	if (o.latfile) {
		FILE *f = fopen(o.latfile, "w");

		if (!f)
			die(o.latfile);
		for (long i = 0; i < nlat; i++)
			fprintf(f, "%.6f\n", lat[i]);
		fclose(f);
	}
}

static int
parse_addr(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	size_t n;
	char *end;
	long port;

	if (!colon || (n = (size_t)(colon - s)) >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	o.addr.sin_family = AF_INET;
	o.addr.sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &o.addr.sin_addr) == 1 ? 0 : -1;
}

static long
num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v < 0) {
		fprintf(stderr, "smtpload: bad number %s\n", s);
		exit(64);
	}
	return v;
}

static void
parse_args(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:m:s:PHt:L:")) != -1) {
		switch (ch) {
		case 'c': o.conns = num(optarg); break;
		case 'm': o.messages = num(optarg); break;
		case 's': o.size = num(optarg); break;
		case 'P': o.pipelining = 0; break;
		case 'H': o.hold = 1; break;
		case 't': o.timeout = num(optarg); break;
		case 'L': o.latfile = optarg; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || parse_addr(argv[optind]) < 0 || o.conns < 1)
		goto usage;
	return;
usage:
	fprintf(stderr, "usage: smtpload [-c N] [-m N] [-s BYTES] [-P] [-H] [-t SEC] "
			"[-L FILE] IPV4:PORT\n");
	exit(64);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Send mode is done when every message is answered or no connection is
 * left; hold mode when every connection is ready or dead. */
static int
done(const struct conn *cs, long n)
{
	long live = 0;

	if (o.hold)
		return opening == 0;
	if (accepted + failed >= o.messages)
		return 1;
	for (long i = 0; i < n; i++)
		live += !cs[i].closed;
	return live == 0;
}

static void
hold_wait(void)
{
	char buf[256];

	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct conn *cs;
	long next_open = 0;
	double start, deadline;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	body_make();
	lat = calloc((size_t)o.messages + 1, sizeof(*lat));
	cs = calloc((size_t)o.conns, sizeof(*cs));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!lat || !cs || ep < 0)
		die("setup");
	start = now_mono();
	deadline = start + (double)o.timeout;
	while (now_mono() < deadline) {
		int n;

		/* Keep at most OPENING_MAX connections between connect and EHLO. */
		while (next_open < o.conns && opening < OPENING_MAX) {
			if (conn_open(&cs[next_open]) < 0) {
				cs[next_open].closed = 1;
				cs[next_open].cur = -1;
			}
			next_open++;
		}
		if (next_open == o.conns && done(cs, o.conns))
			break;
		n = epoll_wait(ep, evs, 256, 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
	}
	report(now_mono() - start);
	if (o.hold)
		hold_wait();
	return (!o.hold && accepted < o.messages) ? 1 : 0;
}
