/* SPDX-License-Identifier: MIT */
/*
 * smtpsink: a lean SMTP sink for bench/run (one epoll thread).
 *
 * Why it exists: Postfix's smtp-sink takes DATA one octet at a time
 * through its VSTREAM; on the bench machine that is about 0.3 ms of CPU
 * per 100 KiB message, so at 100 KiB the sink, not the relay in front of
 * it, sets the end-to-end rate of a two-core machine. This one reads up to
 * IN_SIZE octets at a time and finds the final dot with memmem.
 *
 * It says yes to everything: a 220 banner; EHLO with PIPELINING, SIZE,
 * 8BITMIME, SMTPUTF8 and ENHANCEDSTATUSCODES; 250 to MAIL, RCPT, RSET,
 * NOOP and HELO; 354 to DATA and 250 after the final dot; 221 to QUIT,
 * then close; 502 to anything else. The replies to every command of one
 * read go out in one write (RFC 2920). Nothing is stored.
 *
 * Output: like `smtp-sink -c`, "sess=N quit=N mesg=N\r" on stdout, once
 * per loop turn in which a message ended (bench/run follows mesg=).
 *
 *   smtpsink HOST:PORT [BACKLOG]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { IN_SIZE = 256 * 1024, OUT_MAX = 16 * 1024, EVENTS = 256 };

/* One client. in[0..len) is input not yet taken; out holds replies the
 * socket did not take yet (while any wait, no input is read). */
struct conn {
	int fd;
	int data;       /* inside DATA */
	int bol;        /* DATA: the octets so far end a line (or none yet) */
	int quit;       /* close once out is written */
	size_t len, out_len;
	char out[OUT_MAX];
	char in[IN_SIZE];
};

static long sessions, quits, messages;
static int ep;

static void
die(const char *what)
{
	fprintf(stderr, "smtpsink: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
reply(struct conn *c, const char *text)
{
	size_t n = strlen(text);

	/* A client that pipelines more than OUT_MAX of replies unread is
	 * not one bench/run drives: drop it rather than grow. */
	if (c->out_len + n > sizeof(c->out)) {
		c->quit = 1;
		return;
	}
	memcpy(c->out + c->out_len, text, n);
	c->out_len += n;
}

static void
command(struct conn *c, const char *line, size_t n)
{
	static const char ehlo[] = "250-sink.bench.test\r\n250-PIPELINING\r\n"
				   "250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
				   "250 ENHANCEDSTATUSCODES\r\n";

	if (n < 4) {
		reply(c, "502 5.5.2 Error: command not recognized\r\n");
	} else if (!strncasecmp(line, "EHLO", 4)) {
		reply(c, ehlo);
	} else if (!strncasecmp(line, "HELO", 4)) {
		reply(c, "250 sink.bench.test\r\n");
	} else if (!strncasecmp(line, "MAIL", 4)) {
		reply(c, "250 2.1.0 Ok\r\n");
	} else if (!strncasecmp(line, "RCPT", 4)) {
		reply(c, "250 2.1.5 Ok\r\n");
	} else if (!strncasecmp(line, "DATA", 4)) {
		reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
		c->data = 1;
		c->bol = 1;
	} else if (!strncasecmp(line, "RSET", 4) || !strncasecmp(line, "NOOP", 4)) {
		reply(c, "250 2.0.0 Ok\r\n");
	} else if (!strncasecmp(line, "QUIT", 4)) {
		reply(c, "221 2.0.0 Bye\r\n");
		quits++;
		c->quit = 1;
	} else {
		reply(c, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/* DATA octets at p[0..n): how many end with the final dot, or 0 if it
 * is not there yet (*keep: how many of the last octets to keep, so that
 * a dot split across reads is still found). */
static size_t
data_end(struct conn *c, const char *p, size_t n, size_t *keep)
{
	const char *hit;

	*keep = 0;
	if (c->bol) {
		if (n >= 3 && !memcmp(p, ".\r\n", 3))
			return 3;
		if (n < 3 && !memcmp(p, ".\r\n", n)) {
			*keep = n;
			return 0;
		}
	}
	hit = memmem(p, n, "\r\n.\r\n", 5);
	if (hit)
		return (size_t)(hit - p) + 5;
	/* Only a whole CRLF.CRLF can end the message from here on: keep
	 * the last 4 octets, where one may have begun. (If they are all
	 * there is, the test at the start of a line above has just failed
	 * on them already.) */
	*keep = n < 4 ? n : 4;
	c->bol = 0;
	return 0;
}

/* Take what in[] holds; leave only the octets that need more input. */
static void
consume(struct conn *c)
{
	size_t off = 0;

	while (off < c->len && !c->quit) {
		const char *p = c->in + off;
		size_t n = c->len - off, keep, end;

		if (c->data) {
			end = data_end(c, p, n, &keep);
			if (end == 0) {
				off = c->len - keep;
				break;
			}
			c->data = 0;
			messages++;
			reply(c, "250 2.0.0 Ok: queued\r\n");
			off += end;
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		if (!nl)
			break;
		size_t line = (size_t)(nl - p) + 1;
		command(c, p, line);
		off += line;
	}
	if (off == 0 && c->len == sizeof(c->in) && !c->data)
		c->quit = 1; /* a command line longer than the buffer */
	memmove(c->in, c->in + off, c->len - off);
	c->len -= off;
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void
conn_watch(struct conn *c)
{
	struct epoll_event ev = { .events = c->out_len ? EPOLLOUT : EPOLLIN,
				  .data.ptr = c };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

/* Write what waits; 0 if all of it went, 1 if some waits, -1 to close. */
static int
flush_out(struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t w = write(c->fd, c->out, c->out_len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 1;
		if (w <= 0)
			return -1;
		memmove(c->out, c->out + w, c->out_len - (size_t)w);
		c->out_len -= (size_t)w;
	}
	return c->quit ? -1 : 0;
}

static void
conn_event(struct conn *c, unsigned events)
{
	size_t had = c->out_len;

	if (c->out_len == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);

		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->len += (size_t)r;
		consume(c);
	}
	int st = flush_out(c);
	if (st < 0) {
		conn_close(c);
		return;
	}
	if ((had > 0) != (c->out_len > 0))
		conn_watch(c);
}

static void
accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE)
				return;
			die("accept");
		}
		struct conn *c = malloc(sizeof(*c));
		if (!c)
			die("malloc");
		c->fd = fd;
		c->data = c->bol = c->quit = 0;
		c->len = c->out_len = 0;
		sessions++;
		reply(c, "220 sink.bench.test ESMTP smtpsink\r\n");
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
		if (flush_out(c) < 0)
			conn_close(c);
		else if (c->out_len)
			conn_watch(c);
	}
}

static int
listen_on(const char *spec, int backlog)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64];
	const char *colon = strrchr(spec, ':');
	int one = 1, fd;

	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "smtpsink: want HOST:PORT, not %s\n", spec);
		exit(2);
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	sa.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "smtpsink: not an IPv4 address: %s\n", host);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(fd, backlog) < 0)
		die("listen");
	return fd;
}

int
main(int argc, char **argv)
{
	static int lfd_tag;
	struct epoll_event evs[EVENTS];
	struct rlimit rl;
	long shown = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: smtpsink HOST:PORT [BACKLOG]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int lfd = listen_on(argv[1], argc == 3 ? atoi(argv[2]) : 1024);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &lfd_tag };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
		die("epoll_ctl");
	for (;;) {
		int n = epoll_wait(ep, evs, EVENTS, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lfd_tag)
				accept_all(lfd);
			else
				conn_event(evs[i].data.ptr, evs[i].events);
		}
		if (messages != shown) {
			char line[96];
			int len = snprintf(line, sizeof(line), "sess=%ld quit=%ld mesg=%ld\r",
					   sessions, quits, messages);
			if (write(1, line, (size_t)len) < 0 && errno != EINTR)
				die("write stdout");
			shown = messages;
		}
	}
}
