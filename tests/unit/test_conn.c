/* layer: io */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	io/conn.c and io/tls.c on a real libuv loop over 127.0.0.1. A
 *	throwaway CA and leaf certificates are made with the openssl CLI in a
 *	mkdtemp directory. The peer runs in a thread with blocking sockets
 *	(plain, or a wolfSSL server), one connection per case, with socket
 *	timeouts so nothing can hang; every case also has a loop timer that
 *	fails the test. Each case ends with uv_loop_close() == 0.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "outbox/conn.h"
#include "outbox/str.h"
#include "outbox/tls.h"

static char dir[64];
/* Set by the client once its write queue passed the high-water mark; the
 * slow server waits for it, so backpressure happens whatever the load. */
static _Atomic int client_blocked;

static const char *
path(const char *name)
{
	static char p[8][128];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

/* ---- certificates ------------------------------------------------------ */

static const char gen_script[] =
	"set -e\n"
	"cat > ca.cnf <<'EOF'\n"
	"[ca]\ndefault_ca = d\n"
	"[d]\ndir = .\ndatabase = index.txt\nnew_certs_dir = .\n"
	"serial = serial\ndefault_md = sha256\npolicy = p\n"
	"copy_extensions = copy\nunique_subject = no\n"
	"[p]\ncommonName = supplied\n"
	"EOF\n"
	": > index.txt; echo 01 > serial\n"
	"K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	"openssl req -x509 $K -keyout ca.key -out ca.pem -days 3650 "
	"  -subj /CN=Outbox-Test-CA "
	"  -addext basicConstraints=critical,CA:TRUE "
	"  -addext keyUsage=critical,keyCertSign,cRLSign\n"
	"leaf() {\n"
	"  openssl req $K -keyout $1.key -out $1.csr -subj \"/CN=$2\" "
	"    -addext \"subjectAltName=$3\"\n"
	"  openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key "
	"    -in $1.csr -out $1.pem -startdate $4 -enddate $5 -notext\n"
	"}\n"
	"leaf good localhost DNS:localhost,DNS:mx.test "
	"  20200101000000Z 20991231000000Z\n"
	"leaf wrong wrong.test DNS:wrong.test 20200101000000Z 20991231000000Z\n"
	"leaf expired localhost DNS:localhost 20200101000000Z 20200201000000Z\n"
	"leaf future localhost DNS:localhost 20980101000000Z 20991231000000Z\n"
	"leaf ip ipcert IP:127.0.0.1 20200101000000Z 20991231000000Z\n"
	"openssl req -x509 $K -keyout ca2.key -out ca2.pem -days 3650 "
	"  -subj /CN=Other-CA -addext basicConstraints=critical,CA:TRUE\n"
	"openssl req $K -keyout other.key -out other.csr -subj /CN=localhost\n"
	"openssl x509 -req -in other.csr -CA ca2.pem -CAkey ca2.key "
	"  -CAcreateserial -days 30 -out other.pem "
	"  -extfile /dev/stdin <<'EOF'\n"
	"subjectAltName=DNS:localhost\n"
	"EOF\n"
	"openssl req -x509 $K -keyout self.key -out self.pem -days 30 "
	"  -subj /CN=localhost -addext subjectAltName=DNS:localhost\n"
	/* F6: a wildcard; CN only, no SAN at all */
	"leaf wild '*.relay.test' 'DNS:*.relay.test' "
	"  20200101000000Z 20991231000000Z\n"
	"openssl req $K -keyout cnonly.key -out cnonly.csr -subj /CN=localhost\n"
	"openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key "
	"  -in cnonly.csr -out cnonly.pem -startdate 20200101000000Z "
	"  -enddate 20991231000000Z -notext\n"
	/* F6: a leaf signed by an intermediate CA under ca.pem. "inter" is
	 * the leaf alone (the server omits the intermediate); "chain" is the
	 * same leaf followed by the intermediate, the control. */
	"openssl req $K -keyout int.key -out int.csr -subj /CN=Outbox-Int-CA\n"
	"openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key "
	"  -CAcreateserial -days 30 -out int.pem -extfile /dev/stdin <<'EOF'\n"
	"basicConstraints=critical,CA:TRUE\n"
	"keyUsage=critical,keyCertSign,cRLSign\n"
	"EOF\n"
	"openssl req $K -keyout inter.key -out inter.csr -subj /CN=localhost\n"
	"openssl x509 -req -in inter.csr -CA int.pem -CAkey int.key "
	"  -CAcreateserial -days 30 -out inter.pem -extfile /dev/stdin <<'EOF'\n"
	"subjectAltName=DNS:localhost\n"
	"EOF\n"
	"cat inter.pem int.pem > chain.pem; cp inter.key chain.key\n";

static void
certs_make(void)
{
	str_copy(dir, sizeof(dir), "/tmp/outbox-conn-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	FILE *f = fopen(path("gen.sh"), "w");
	CHECK(f != NULL);
	fputs(gen_script, f);
	fclose(f);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "cd %s && sh gen.sh >gen.log 2>&1", dir);
	CHECK_EQ(0, system(cmd));
}

static void
certs_remove(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(0, system(cmd));
}

/* ---- the peer thread ----------------------------------------------------- */

enum srv_mode {
	SRV_ECHO,       /* plain echo until EOF */
	SRV_TLS_ECHO,   /* TLS accept, then echo */
	SRV_TLS_SLOW,   /* TLS echo with a small receive buffer, late start */
	SRV_STARTTLS,   /* "220 go\r\n" in plaintext, then TLS echo */
	SRV_JUNK,       /* "220 hello\r\n" where a ServerHello belongs */
	SRV_FLOOD,      /* 1 MiB of plaintext, then close */
	SRV_BYE,        /* "221 bye\r\n", then close */
	SRV_SILENT,     /* reads and never answers (handshake stall) */
	SRV_TLS11,      /* TLS 1.1 only */
	SRV_ANON,       /* TLS 1.2 offering only ADH-AES128-SHA */
	SRV_TLS12,      /* TLS 1.2 only, echo */
	SRV_TLS_BYE,    /* TLS "221 bye\r\n", close_notify, close */
};

struct server {
	int lfd;
	int port;
	enum srv_mode mode;
	const char *cert;
	const char *key;
	pthread_t th;
	int accept_ok;        /* wolfSSL_accept succeeded */
	char sni[64];         /* SNI the client sent, "" if none */
	size_t echoed;
};

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
srv_plain(struct server *s, int fd)
{
	static char data[65536];
	char b[4096];
	ssize_t n;

	switch (s->mode) {
	case SRV_ECHO:
		while ((n = recv(fd, b, sizeof(b), 0)) > 0) {
			write_all(fd, b, (size_t)n);
			s->echoed += (size_t)n;
		}
		break;
	case SRV_JUNK:
		write_all(fd, "220 hello\r\n", 11);
		while (recv(fd, b, sizeof(b), 0) > 0)
			;
		break;
	case SRV_FLOOD:
		memset(data, 'x', sizeof(data));
		for (int i = 0; i < 16; i++)
			write_all(fd, data, sizeof(data));
		break;
	case SRV_BYE:
		write_all(fd, "221 bye\r\n", 9);
		break;
	case SRV_SILENT:
		while ((n = recv(fd, b, sizeof(b), 0)) > 0)
			s->echoed += (size_t)n;
		break;
	default:
		break;
	}
}

static WOLFSSL_CTX *
srv_tls_ctx(struct server *s)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(s->mode == SRV_TLS11
						   ? wolfTLSv1_1_server_method()
						   : s->mode == SRV_ANON ||
						     s->mode == SRV_TLS12
						   ? wolfTLSv1_2_server_method()
						   : wolfSSLv23_server_method());
	CHECK(ctx != NULL);
	if (s->mode == SRV_ANON) {
		CHECK_EQ(WOLFSSL_SUCCESS, wolfSSL_CTX_allow_anon_cipher(ctx));
		CHECK_EQ(WOLFSSL_SUCCESS,
			 wolfSSL_CTX_set_cipher_list(ctx, "ADH-AES128-SHA"));
		return ctx;
	}
	/* A chain file sends every certificate in it (chain.pem); a file
	 * with one certificate sends just that one. */
	CHECK_EQ(WOLFSSL_SUCCESS,
		 wolfSSL_CTX_use_certificate_chain_file(ctx, s->cert));
	CHECK_EQ(WOLFSSL_SUCCESS, wolfSSL_CTX_use_PrivateKey_file(
					  ctx, s->key, WOLFSSL_FILETYPE_PEM));
	/* Register SNI only to read back what the client asked for. */
	CHECK_EQ(WOLFSSL_SUCCESS, wolfSSL_CTX_UseSNI(ctx, WOLFSSL_SNI_HOST_NAME,
						     "localhost", 9));
	wolfSSL_CTX_SNI_SetOptions(ctx, WOLFSSL_SNI_HOST_NAME,
				   WOLFSSL_SNI_ANSWER_ON_MISMATCH);
	return ctx;
}

static void
srv_tls(struct server *s, int fd)
{
	char b[16384];
	int n;

	if (s->mode == SRV_STARTTLS)
		write_all(fd, "220 go\r\n", 8);
	WOLFSSL_CTX *ctx = srv_tls_ctx(s);
	WOLFSSL *ssl = wolfSSL_new(ctx);
	CHECK(ssl != NULL);
	wolfSSL_set_fd(ssl, fd);
	s->accept_ok = wolfSSL_accept(ssl) == WOLFSSL_SUCCESS;
	void *req = NULL;
	unsigned short len = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME,
						    &req);
	if (len > 0 && req != NULL)
		str_ncopy(s->sni, sizeof(s->sni), req, len);
	if (s->accept_ok && s->mode == SRV_TLS_BYE) {
		/* Read the client's line first: closing with unread data
		 * would send an RST, which discards what the client has
		 * not read yet. */
		n = wolfSSL_read(ssl, b, sizeof(b));
		wolfSSL_write(ssl, "221 bye\r\n", 9);
		wolfSSL_shutdown(ssl);
		s->accept_ok = 0;
	}
	for (int i = 0; s->mode == SRV_TLS_SLOW && !client_blocked && i < 500;
	     i++)
		usleep(10 * 1000); /* let the client's write queue fill up */
	while (s->accept_ok && (n = wolfSSL_read(ssl, b, sizeof(b))) > 0) {
		if (wolfSSL_write(ssl, b, n) != n)
			break;
		s->echoed += (size_t)n;
	}
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
}

static void *
srv_main(void *arg)
{
	struct server *s = arg;
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };

	if (poll(&p, 1, 5000) != 1)
		return NULL;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	switch (s->mode) {
	case SRV_ECHO:
	case SRV_JUNK:
	case SRV_FLOOD:
	case SRV_BYE:
	case SRV_SILENT:
		srv_plain(s, fd);
		break;
	default:
		srv_tls(s, fd);
		break;
	}
	close(fd);
	/* wolfSSL's fixed-point ECC cache is per thread; only the main
	 * thread's is freed by wolfSSL_Cleanup(). */
	wc_ecc_fp_free();
	return NULL;
}

static int
listen_any(int *port, bool do_listen)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	if (do_listen)
		CHECK_EQ(0, listen(fd, 4));
	socklen_t len = sizeof(sa);
	CHECK_EQ(0, getsockname(fd, (struct sockaddr *)&sa, &len));
	*port = ntohs(sa.sin_port);
	return fd;
}

static void
srv_start(struct server *s, enum srv_mode mode, const char *name)
{
	static char cert[8][128], key[8][128];
	static int i;

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	client_blocked = 0;
	if (name != NULL) {
		i = (i + 1) % 8;
		snprintf(cert[i], sizeof(cert[i]), "%s/%s.pem", dir, name);
		snprintf(key[i], sizeof(key[i]), "%s/%s.key", dir, name);
		s->cert = cert[i];
		s->key = key[i];
	}
	s->lfd = listen_any(&s->port, true);
	if (mode == SRV_TLS_SLOW) {
		/* Inherited by the accepted socket: the peer's kernel buffers
		 * stay small, so the client has to queue and wait for drain. */
		int sz = 32 * 1024;
		CHECK_EQ(0, setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &sz,
				       sizeof(sz)));
	}
	CHECK_EQ(0, pthread_create(&s->th, NULL, srv_main, s));
}

static void
srv_join(struct server *s)
{
	CHECK_EQ(0, pthread_join(s->th, NULL));
	close(s->lfd);
}

/* ---- the client side: one case on one loop ------------------------------ */

struct tc {
	uv_loop_t loop;
	uv_timer_t timer;
	struct conn *c;
	bool finished;
	bool in_api;          /* a conn_* call is on the stack: no hooks now */
	/* script */
	struct tls_ctx *ctx;
	const char *host;     /* for conn_start_tls */
	bool tls_on_connect;  /* implicit TLS */
	bool tls_on_line;     /* STARTTLS after the first line */
	bool close_on_data;
	const char *send;     /* sent once the channel is up */
	size_t expect;        /* finish after this many bytes */
	/* large transfer */
	size_t total, sent, got, max_queue;
	bool bad_byte;
	/* observations */
	int connect_status, connect_calls;
	int tls_status, tls_calls;
	struct tls_result res;
	char rx[4096];       /* plaintext received, NUL-terminated */
	size_t rxlen;
	int data_calls;
	int close_status, close_calls;
	int drain_calls;
	int start_tls_ret;
	int write_in_handshake;
};

static void
tc_finish(struct tc *t)
{
	if (t->finished)
		return;
	t->finished = true;
	conn_close(t->c);
	uv_close((uv_handle_t *)&t->timer, NULL);
}

static void
tc_timeout(uv_timer_t *timer)
{
	(void)timer;
	CHECK_FAIL("test case timed out");
}

static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 31u + (i >> 12));
}

static void
tc_pump_large(struct tc *t)
{
	static char chunk[65536];

	while (t->sent < t->total && conn_write_queue(t->c) < 256 * 1024) {
		size_t n = t->total - t->sent;
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)pattern(t->sent + i);
		t->in_api = true;
		CHECK_EQ(0, conn_write(t->c, chunk, n));
		t->in_api = false;
		t->sent += n;
		size_t q = conn_write_queue(t->c);
		if (q > t->max_queue)
			t->max_queue = q;
		if (q >= 256 * 1024)
			client_blocked = 1;
	}
}

static void
tc_send(struct tc *t)
{
	if (t->total > 0) {
		tc_pump_large(t);
		return;
	}
	if (t->send == NULL)
		return;
	t->in_api = true;
	CHECK_EQ(0, conn_write(t->c, t->send, strlen(t->send)));
	t->in_api = false;
}

static void
tc_start_tls(struct tc *t)
{
	t->in_api = true;
	t->start_tls_ret = conn_start_tls(t->c, t->ctx, t->host);
	/* The handshake is not done yet: writing must be refused. */
	t->write_in_handshake = conn_write(t->c, "x", 1);
	t->in_api = false;
	if (t->start_tls_ret != 0)
		tc_finish(t);
}

static void
on_connect(void *arg, int status)
{
	struct tc *t = arg;

	CHECK(!t->in_api);
	t->connect_calls++;
	t->connect_status = status;
	if (status < 0)
		tc_finish(t);
	else if (t->tls_on_connect)
		tc_start_tls(t);
	else if (!t->tls_on_line)
		tc_send(t);
}

static void
on_data(void *arg, const char *data, size_t len)
{
	struct tc *t = arg;

	CHECK(!t->in_api);
	CHECK(!t->finished);
	t->data_calls++;
	if (t->close_on_data) {
		tc_finish(t);
		return;
	}
	if (t->total > 0) {
		for (size_t i = 0; i < len; i++)
			if ((uint8_t)data[i] != pattern(t->got + i))
				t->bad_byte = true;
		t->got += len;
		if (t->got >= t->total)
			tc_finish(t);
		return;
	}
	CHECK(len < sizeof(t->rx) - t->rxlen);
	memcpy(t->rx + t->rxlen, data, len);
	t->rxlen += len;
	t->rx[t->rxlen] = '\0';
	if (t->tls_on_line && !conn_is_tls(t->c) &&
	    memchr(t->rx, '\n', t->rxlen) != NULL) {
		/* STARTTLS rule: the line buffer must be empty at the switch. */
		CHECK_STR_EQ(t->rx, "220 go\r\n");
		t->rxlen = 0;
		t->rx[0] = '\0';
		tc_start_tls(t);
		return;
	}
	if (t->expect > 0 && t->rxlen >= t->expect)
		tc_finish(t);
}

static void
on_tls(void *arg, int status, const struct tls_result *res)
{
	struct tc *t = arg;

	CHECK(!t->in_api);
	CHECK(!t->finished);
	t->tls_calls++;
	t->tls_status = status;
	t->res = *res;
	if (status < 0)
		tc_finish(t);
	else
		tc_send(t);
}

static void
on_drain(void *arg)
{
	struct tc *t = arg;

	CHECK(!t->in_api);
	CHECK(!t->finished);
	t->drain_calls++;
	if (t->total > 0)
		tc_pump_large(t);
}

static void
on_close(void *arg, int status)
{
	struct tc *t = arg;

	CHECK(!t->in_api);
	CHECK(!t->finished);
	t->close_calls++;
	t->close_status = status;
	tc_finish(t);
}

static const struct conn_hooks hooks = {
	.on_connect = on_connect,
	.on_data = on_data,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

static void
tc_init(struct tc *t)
{
	memset(t, 0, sizeof(*t));
	CHECK_EQ(0, uv_loop_init(&t->loop));
	CHECK_EQ(0, uv_timer_init(&t->loop, &t->timer));
	CHECK_EQ(0, uv_timer_start(&t->timer, tc_timeout, 10000, 0));
}

/* Connect to 127.0.0.1:port and run the case until every handle closed. */
static void
tc_run(struct tc *t, int port)
{
	struct sockaddr_in sa;

	CHECK_EQ(0, uv_ip4_addr("127.0.0.1", port, &sa));
	t->in_api = true;
	CHECK_EQ(0, conn_connect(&t->loop, (struct sockaddr *)&sa, &hooks, t,
				 &t->c));
	t->in_api = false;
	CHECK_EQ(0, uv_run(&t->loop, UV_RUN_DEFAULT));
	CHECK(t->finished);
	CHECK_EQ(0, uv_loop_close(&t->loop));
}

/* ---- cases ---------------------------------------------------------- */

static struct tls_ctx *ctx_verify, *ctx_may;

static void
test_plain_echo(void)
{
	struct server s;
	struct tc t;

	srv_start(&s, SRV_ECHO, NULL);
	tc_init(&t);
	t.send = "hello\r\n";
	t.expect = 7;
	tc_run(&t, s.port);
	srv_join(&s);
	CHECK_EQ(1, t.connect_calls);
	CHECK_EQ(0, t.connect_status);
	CHECK_EQ(0, t.tls_calls);
	CHECK_EQ(7, s.echoed);
	CHECK_STR_EQ(t.rx, "hello\r\n");
	CHECK_EQ(0, t.close_calls);
}

static void
test_plain_eof_close_in_on_close(void)
{
	struct server s;
	struct tc t;

	srv_start(&s, SRV_BYE, NULL);
	tc_init(&t);
	tc_run(&t, s.port);
	srv_join(&s);
	CHECK_STR_EQ(t.rx, "221 bye\r\n");
	CHECK_EQ(1, t.close_calls);
	CHECK_EQ(UV_EOF, t.close_status);
}

static void
test_refused(void)
{
	struct tc t;
	int port;

	/* Bound but not listening: the kernel answers with RST. */
	int fd = listen_any(&port, false);
	tc_init(&t);
	tc_run(&t, port);
	close(fd);
	CHECK_EQ(1, t.connect_calls);
	CHECK_EQ(UV_ECONNREFUSED, t.connect_status);
	CHECK_EQ(0, t.data_calls + t.close_calls + t.tls_calls);
}

static void
test_close_before_connect(void)
{
	struct tc t;
	struct sockaddr_in sa;
	int port;

	int fd = listen_any(&port, true);
	tc_init(&t);
	CHECK_EQ(0, uv_ip4_addr("127.0.0.1", port, &sa));
	CHECK_EQ(0, conn_connect(&t.loop, (struct sockaddr *)&sa, &hooks, &t,
				 &t.c));
	tc_finish(&t); /* conn_close at once: no hook may run afterwards */
	CHECK_EQ(0, uv_run(&t.loop, UV_RUN_DEFAULT));
	CHECK_EQ(0, uv_loop_close(&t.loop));
	close(fd);
	CHECK_EQ(0, t.connect_calls + t.data_calls + t.close_calls);
}

static void
test_close_in_on_data(void)
{
	struct server s;
	struct tc t;

	srv_start(&s, SRV_FLOOD, NULL);
	tc_init(&t);
	t.close_on_data = true;
	tc_run(&t, s.port);
	srv_join(&s);
	CHECK_EQ(1, t.data_calls);
	CHECK_EQ(0, t.close_calls);
}

/* Implicit TLS against a server with the given certificate. */
static void
tls_case(struct tc *t, struct server *s, enum srv_mode mode,
	 const char *cert, struct tls_ctx *ctx, const char *host)
{
	srv_start(s, mode, cert);
	tc_init(t);
	t->ctx = ctx;
	t->host = host;
	t->tls_on_connect = true;
	t->send = "ping\r\n";
	/* The closing peer ends its case through on_close instead. */
	t->expect = mode == SRV_TLS_BYE ? 0 : 6;
	tc_run(t, s->port);
	srv_join(s);
	CHECK_EQ(0, t->start_tls_ret);
	CHECK_EQ(UV_EAGAIN, t->write_in_handshake);
	CHECK_EQ(1, t->tls_calls);
}

static void
expect_tls_fail(struct tc *t, struct server *s, const char *needle)
{
	CHECK(t->tls_status < 0);
	CHECK(!t->res.verified);
	CHECK(t->res.error[0] != '\0');
	CHECK_EQ(0, t->data_calls);
	CHECK_EQ(0, t->close_calls);
	CHECK(!s->accept_ok || s->echoed == 0);
	if (needle != NULL && strstr(t->res.error, needle) == NULL)
		CHECK_FAIL("error \"%s\" lacks \"%s\"", t->res.error, needle);
	printf("  failure text: %s\n", t->res.error);
}

static void
test_tls_valid(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "good", ctx_verify, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(t.res.version, "TLSv1.3");
	CHECK(t.res.cipher[0] != '\0');
	CHECK_STR_EQ(t.res.error, "");
	CHECK_EQ(6, s.echoed);
	CHECK_STR_EQ(t.rx, "ping\r\n");
	CHECK_STR_EQ(s.sni, "localhost");
	printf("  %s %s\n", t.res.version, t.res.cipher);
}

static void
test_tls12(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS12, "ip", ctx_verify, NULL);
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(t.res.version, "TLSv1.2");
	CHECK(strncmp(t.res.cipher, "ECDHE-ECDSA-", 12) == 0);
	CHECK_STR_EQ(t.rx, "ping\r\n");
	printf("  %s %s\n", t.res.version, t.res.cipher);
	/* The IP SAN check runs under TLS 1.2 as well. */
	tls_case(&t, &s, SRV_TLS12, "good", ctx_verify, NULL);
	expect_tls_fail(&t, &s, "IP address mismatch");
	tls_case(&t, &s, SRV_TLS12, "wrong", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "mismatch");
}

static void
test_tls_peer_close(void)
{
	struct server s;
	struct tc t;

	/* Data, then close_notify and FIN: data first, then on_close. */
	tls_case(&t, &s, SRV_TLS_BYE, "good", ctx_verify, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK_STR_EQ(t.rx, "221 bye\r\n");
	CHECK_EQ(1, t.close_calls);
	CHECK_EQ(UV_EOF, t.close_status);
}

static void
pause_timer_cb(uv_timer_t *timer)
{
	struct tc *t = timer->data;

	CHECK_EQ(0, t->data_calls); /* nothing delivered while paused */
	conn_pause(t->c, false);
	uv_close((uv_handle_t *)timer, NULL);
}

static void
test_pause(void)
{
	struct server s;
	struct tc t;
	uv_timer_t timer;
	struct sockaddr_in sa;

	srv_start(&s, SRV_ECHO, NULL);
	tc_init(&t);
	t.send = "hello\r\n";
	t.expect = 7;
	CHECK_EQ(0, uv_ip4_addr("127.0.0.1", s.port, &sa));
	CHECK_EQ(0, conn_connect(&t.loop, (struct sockaddr *)&sa, &hooks, &t,
				 &t.c));
	conn_pause(t.c, true); /* before the connection is even up */
	CHECK_EQ(0, uv_timer_init(&t.loop, &timer));
	timer.data = &t;
	CHECK_EQ(0, uv_timer_start(&timer, pause_timer_cb, 200, 0));
	CHECK_EQ(0, uv_run(&t.loop, UV_RUN_DEFAULT));
	CHECK_EQ(0, uv_loop_close(&t.loop));
	srv_join(&s);
	CHECK(t.finished);
	CHECK_STR_EQ(t.rx, "hello\r\n");
}

static void
stall_timer_cb(uv_timer_t *timer)
{
	struct tc *t = timer->data;

	/* The owner's handshake timeout (F12) fires: close mid-handshake. */
	CHECK_EQ(0, t->tls_calls);
	uv_close((uv_handle_t *)timer, NULL);
	tc_finish(t);
}

static void
test_tls_stall_close(void)
{
	struct server s;
	struct tc t;
	uv_timer_t timer;
	struct sockaddr_in sa;

	srv_start(&s, SRV_SILENT, NULL);
	tc_init(&t);
	t.ctx = ctx_verify;
	t.host = "localhost";
	t.tls_on_connect = true;
	CHECK_EQ(0, uv_ip4_addr("127.0.0.1", s.port, &sa));
	CHECK_EQ(0, conn_connect(&t.loop, (struct sockaddr *)&sa, &hooks, &t,
				 &t.c));
	CHECK_EQ(0, uv_timer_init(&t.loop, &timer));
	timer.data = &t;
	CHECK_EQ(0, uv_timer_start(&timer, stall_timer_cb, 200, 0));
	CHECK_EQ(0, uv_run(&t.loop, UV_RUN_DEFAULT));
	CHECK_EQ(0, uv_loop_close(&t.loop));
	srv_join(&s);
	CHECK_EQ(0, t.start_tls_ret);
	CHECK_EQ(0, t.tls_calls + t.data_calls + t.close_calls);
	CHECK(s.echoed > 0); /* the ClientHello went out */
}

static void
test_tls_second_name(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "good", ctx_verify, "mx.test");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(s.sni, "mx.test");
}

static void
test_tls_wrong_name(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "wrong", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "mismatch");
	/* Same certificate chain, other requested name. */
	tls_case(&t, &s, SRV_TLS_ECHO, "good", ctx_verify, "other.test");
	expect_tls_fail(&t, &s, "mismatch");
}

static void
test_tls_untrusted(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "self", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "certificate verify failed: self-signed");
	tls_case(&t, &s, SRV_TLS_ECHO, "other", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "certificate verify failed");
}

static void
test_tls_expired(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "expired", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "certificate verify failed: certificate has "
				"expired");
	tls_case(&t, &s, SRV_TLS_ECHO, "future", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "certificate is not yet valid");
}

/*
 * F6: the server omits the intermediate CA; the control sends it. A fresh
 * context each time: wolfSSL keeps an intermediate it has verified in the
 * context's store (AddCA with WOLFSSL_CHAIN_CA), so once any server sent
 * it, a server that omits it verifies too; the last step shows that.
 */
static void
test_tls_missing_intermediate(void)
{
	struct server s;
	struct tc t;
	char err[128];

	struct tls_ctx *ctx = tls_ctx_new(path("ca.pem"), true, err, sizeof(err));
	CHECK(ctx != NULL);
	tls_case(&t, &s, SRV_TLS_ECHO, "inter", ctx, "localhost");
	expect_tls_fail(&t, &s, "certificate verify failed");
	tls_case(&t, &s, SRV_TLS_ECHO, "chain", ctx, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(t.rx, "ping\r\n");
	tls_case(&t, &s, SRV_TLS_ECHO, "inter", ctx, "localhost");
	printf("  leaf alone after the chain was seen: %s\n",
	       t.tls_status == 0 && t.res.verified ? "verified (cached)"
						  : t.res.error);
	tls_ctx_free(ctx);
}

/* F6: `*.relay.test` covers exactly one label (RFC 6125 6.4.3). */
static void
test_tls_wildcard(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "wild", ctx_verify, "mx.relay.test");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(s.sni, "mx.relay.test");
	CHECK_STR_EQ(t.rx, "ping\r\n");
	tls_case(&t, &s, SRV_TLS_ECHO, "wild", ctx_verify, "a.b.relay.test");
	expect_tls_fail(&t, &s, "mismatch");
	tls_case(&t, &s, SRV_TLS_ECHO, "wild", ctx_verify, "relay.test");
	expect_tls_fail(&t, &s, "mismatch");
}

/* F6: a certificate with the right CN and no subjectAltName is refused:
 * the name is only ever taken from DNS SANs (RFC 9525 dropped RFC 6125's
 * CN-ID fallback; wolfSSL_check_domain_name() alone would accept it). */
static void
test_tls_cn_only(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "cnonly", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, "no DNS subjectAltName");
	/* Opportunistic mode still connects, but never calls it verified. */
	tls_case(&t, &s, SRV_TLS_ECHO, "cnonly", ctx_may, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(!t.res.verified);
	CHECK_STR_EQ(t.rx, "ping\r\n");
}

static void
test_tls_may_wrong_name(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_TLS_ECHO, "wrong", ctx_may, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(!t.res.verified);
	CHECK(strstr(t.res.error, "mismatch") != NULL);
	CHECK_EQ(6, s.echoed);
	CHECK_STR_EQ(t.rx, "ping\r\n");
	printf("  may/wrong name: %s\n", t.res.error);

	tls_case(&t, &s, SRV_TLS_ECHO, "self", ctx_may, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(!t.res.verified);
	CHECK(t.res.error[0] != '\0');
	CHECK_EQ(6, s.echoed);
	printf("  may/untrusted: %s\n", t.res.error);

	tls_case(&t, &s, SRV_TLS_ECHO, "good", ctx_may, "localhost");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(t.res.error, "");
}

static void
test_tls_ip_literal(void)
{
	struct server s;
	struct tc t;

	/* NULL host: the peer address is checked against the IP SANs. */
	tls_case(&t, &s, SRV_TLS_ECHO, "ip", ctx_verify, NULL);
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(s.sni, ""); /* no SNI for an IP literal (RFC 6066 3) */
	CHECK_EQ(6, s.echoed);

	tls_case(&t, &s, SRV_TLS_ECHO, "ip", ctx_verify, "127.0.0.1");
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_STR_EQ(s.sni, "");

	/* A valid certificate without that IP SAN. */
	tls_case(&t, &s, SRV_TLS_ECHO, "good", ctx_verify, NULL);
	expect_tls_fail(&t, &s, "IP address mismatch");
	/* An IP-only certificate does not match a host name. */
	tls_case(&t, &s, SRV_TLS_ECHO, "ip", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, NULL);
}

/*
 * Debian's default client, as a control: it proves the peer really offers
 * a handshake, so the failures below come from outbox's settings.
 */
static bool
control_connect(enum srv_mode mode)
{
	struct server s;
	struct sockaddr_in sa;

	srv_start(&s, mode, "good");
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	CHECK(ctx != NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK_EQ(0, uv_ip4_addr("127.0.0.1", s.port, &sa));
	CHECK_EQ(0, connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	WOLFSSL *ssl = wolfSSL_new(ctx);
	CHECK(ssl != NULL);
	wolfSSL_set_fd(ssl, fd);
	bool ok = wolfSSL_connect(ssl) == WOLFSSL_SUCCESS;
	if (ok)
		printf("  control (Debian defaults): %s %s\n",
		       wolfSSL_get_version(ssl), wolfSSL_get_cipher_name(ssl));
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	shutdown(fd, SHUT_RDWR);
	srv_join(&s);
	close(fd);
	return ok && s.accept_ok;
}

static void
test_tls_old_protocol(void)
{
	struct server s;
	struct tc t;

	CHECK(control_connect(SRV_TLS11));

	tls_case(&t, &s, SRV_TLS11, "good", ctx_verify, "localhost");
	expect_tls_fail(&t, &s, NULL);
	CHECK(!s.accept_ok);
	tls_case(&t, &s, SRV_TLS11, "good", ctx_may, "localhost");
	expect_tls_fail(&t, &s, NULL);
	CHECK(!s.accept_ok);
}

static void
test_tls_anon(void)
{
	struct server s;
	struct tc t;

	/* Debian's default client accepts this (LIBRARIES.md 3.2). */
	CHECK(control_connect(SRV_ANON));
	tls_case(&t, &s, SRV_ANON, NULL, ctx_may, "localhost");
	expect_tls_fail(&t, &s, NULL);
	CHECK(!s.accept_ok);
}

static void
test_tls_plaintext_peer(void)
{
	struct server s;
	struct tc t;

	tls_case(&t, &s, SRV_JUNK, NULL, ctx_verify, "localhost");
	expect_tls_fail(&t, &s, NULL);
}

static void
test_starttls(void)
{
	struct server s;
	struct tc t;

	srv_start(&s, SRV_STARTTLS, "good");
	tc_init(&t);
	t.ctx = ctx_verify;
	t.host = "mx.test";
	t.tls_on_line = true;
	t.send = "EHLO client.test\r\n";
	t.expect = strlen(t.send);
	tc_run(&t, s.port);
	srv_join(&s);
	CHECK_EQ(0, t.start_tls_ret);
	CHECK_EQ(UV_EAGAIN, t.write_in_handshake);
	CHECK_EQ(1, t.tls_calls);
	CHECK_EQ(0, t.tls_status);
	CHECK(t.res.verified);
	CHECK_EQ(strlen("EHLO client.test\r\n"), s.echoed);
	CHECK_STR_EQ(t.rx, "EHLO client.test\r\n");
	CHECK_STR_EQ(s.sni, "mx.test");
}

static void
test_tls_large(void)
{
	struct server s;
	struct tc t;

	srv_start(&s, SRV_TLS_SLOW, "good");
	tc_init(&t);
	t.ctx = ctx_verify;
	t.host = "localhost";
	t.tls_on_connect = true;
	t.total = 5u * 1024 * 1024;
	tc_run(&t, s.port);
	srv_join(&s);
	CHECK_EQ(0, t.tls_status);
	CHECK_EQ(t.total, t.sent);
	CHECK_EQ(t.total, t.got);
	CHECK(!t.bad_byte);
	CHECK_EQ(t.total, s.echoed);
	CHECK(t.drain_calls >= 1);
	CHECK(t.max_queue >= 256 * 1024);
	/* Writes stop at the 256 KiB mark plus one chunk and its TLS framing. */
	CHECK(t.max_queue < 256 * 1024 + 65536 + 4096);
	printf("  5 MiB echoed, %d drains, max queue %zu\n", t.drain_calls,
	       t.max_queue);
}

static void
test_ctx_errors(void)
{
	char err[128] = "";

	CHECK(tls_ctx_new(path("missing.pem"), true, err, sizeof(err)) ==
	      NULL);
	CHECK(strstr(err, "cannot load CA file") != NULL);
}

int
main(void)
{
	char err[128];

	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(0, tls_global_init());
	certs_make();
	ctx_verify = tls_ctx_new(path("ca.pem"), true, err, sizeof(err));
	CHECK(ctx_verify != NULL);
	ctx_may = tls_ctx_new(path("ca.pem"), false, err, sizeof(err));
	CHECK(ctx_may != NULL);

	test_ctx_errors();
	test_plain_echo();
	test_plain_eof_close_in_on_close();
	test_refused();
	test_close_before_connect();
	test_close_in_on_data();
	test_tls_valid();
	test_tls_second_name();
	test_tls12();
	test_tls_peer_close();
	test_pause();
	test_tls_stall_close();
	test_tls_wrong_name();
	test_tls_untrusted();
	test_tls_expired();
	test_tls_missing_intermediate();
	test_tls_wildcard();
	test_tls_cn_only();
	test_tls_may_wrong_name();
	test_tls_ip_literal();
	test_tls_old_protocol();
	test_tls_anon();
	test_tls_plaintext_peer();
	test_starttls();
	test_tls_large();

	tls_ctx_free(ctx_verify);
	tls_ctx_free(ctx_may);
	certs_remove();
	tls_global_cleanup();
	uv_library_shutdown();
	CHECK_DONE();
}
