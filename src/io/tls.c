/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The only file that includes wolfSSL. It builds the client context with
 *	the settings Debian's permissive build needs (STYLE.md rule 10,
 *	LIBRARIES.md 3.2): VERIFY_PEER, TLS >= 1.2 and an explicit ECDHE /
 *	TLS 1.3 cipher allowlist, so anonymous and legacy suites can never be
 *	negotiated. Each session runs over two memory buffers through custom
 *	I/O callbacks: cin holds received ciphertext, cout holds ciphertext to
 *	send. The receive callback answers WANT_READ when cin is empty; the
 *	send callback always accepts everything, so wolfSSL never needs a
 *	repeated write and backpressure lives one level up (io/conn.c).
 *
 *	The verify callback records the outcome in the session itself: with
 *	WOLFSSL_ALWAYS_VERIFY_CB it also runs for good certificates, and when
 *	it overrides an error wolfSSL_get_verify_result() can report 0 for a
 *	name mismatch, so the callback is the only reliable witness.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbox/buf.h"
#include "outbox/str.h"
#include "outbox/tls.h"
#include "outbox/tls_conn.h"

/* RFC 8996: nothing below TLS 1.2; only AEAD suites with forward secrecy. */
#define TLS_CIPHERS                                                  \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"           \
	"TLS13-CHACHA20-POLY1305-SHA256:"                            \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* cin is drained after every read callback (at most 64 KiB plus a partial
 * record); cout after every wolfSSL call (one 16 KiB record plus overhead,
 * or a handshake flight). The maxima only stop a runaway peer. */
#define TLS_CIN_MAX (1024 * 1024)
#define TLS_COUT_MAX (1024 * 1024)
#define TLS_TEXT_MAX 256

struct tls_ctx {
	WOLFSSL_CTX *ctx;
	bool verify;
};

struct tls_conn {
	WOLFSSL *ssl;
	struct buf cin;     /* received ciphertext; cin_off bytes consumed */
	size_t cin_off;
	struct buf cout;    /* ciphertext produced, not yet taken */
	bool eof;
	bool verify;        /* fail the handshake on a bad certificate */
	bool done;          /* handshake completed */
	bool shut;          /* close_notify queued */
	bool leaf_seen;     /* the verify callback saw the peer certificate */
	bool verify_failed;
	bool chain_failed;  /* any chain or date error seen (check mode) */
	bool name_failed;   /* a host name or IP mismatch seen */
	bool want_dns_san;  /* a host name is checked: the leaf needs a DNS SAN */
	char chain_text[128];
	struct tls_result cert; /* leaf certificate facts (tls_conn_cert_facts) */
	char ip[INET6_ADDRSTRLEN]; /* IP literal to match against IP SANs */
	char verify_text[TLS_TEXT_MAX];
	char error[TLS_TEXT_MAX];
};

int
tls_global_init(void)
{
	return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

void
tls_global_cleanup(void)
{
	wolfSSL_Cleanup();
}

/* Bounded formatting where cutting a long peer-supplied subject is fine. */
static void __attribute__((format(printf, 3, 4)))
tls_textf(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

/* wolfSSL_X509_verify_cert_error_string() knows few of the codes its own
 * verify callback reports (GetX509Error), so name the usual ones here. */
static const char *
tls_x509_text(int code)
{
	switch (code) {
	case 2:  return "unable to get issuer certificate";
	case 7:  return "certificate signature failure";
	case 9:
	case 13: return "certificate is not yet valid";
	case 10:
	case 14: return "certificate has expired";
	case 18: return "self-signed certificate";
	case 19: return "self-signed certificate in chain";
	case 20: return "unable to get local issuer certificate";
	case 21: return "unable to verify the first certificate";
	case 62: return "host name mismatch";
	case 64: return "IP address mismatch";
	default: return NULL;
	}
}

static void
tls_error_text(int code, char *dst, size_t size)
{
	char tmp[WOLFSSL_MAX_ERROR_SZ];

	/* Positive codes are X509_V_ERR_*; negative ones are wolfSSL's own. */
	if (code > 0) {
		const char *s = tls_x509_text(code);
		if (s != NULL)
			str_copy(dst, size, s);
		else
			tls_textf(dst, size, "X509 verify error %d", code);
		return;
	}
	wolfSSL_ERR_error_string_n((unsigned long)code, tmp, sizeof(tmp));
	str_copy(dst, size, tmp);
}

static void
tls_ctx_error(char *err, size_t errlen, const char *what, const char *arg)
{
	if (err == NULL || errlen == 0)
		return;
	tls_textf(err, errlen, "%s%s%s", what, arg ? ": " : "", arg ? arg : "");
}

static int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store);

static int
tls_ctx_load_trust(struct tls_ctx *t, const char *ca_file, char *err,
		   size_t errlen)
{
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (wolfSSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) !=
		    WOLFSSL_SUCCESS) {
			tls_ctx_error(err, errlen, "cannot load CA file",
				      ca_file);
			return -1;
		}
		return 0;
	}
	/* Opportunistic mode does not depend on the trust store, so a host
	 * without system CAs can still encrypt. */
	if (wolfSSL_CTX_load_system_CA_certs(t->ctx) != WOLFSSL_SUCCESS &&
	    t->verify) {
		tls_ctx_error(err, errlen, "cannot load system CA certificates",
			      NULL);
		return -1;
	}
	return 0;
}

struct tls_ctx *
tls_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		tls_ctx_error(err, errlen, "out of memory", NULL);
		return NULL;
	}
	t->verify = verify;
	t->ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (t->ctx == NULL) {
		tls_ctx_error(err, errlen, "wolfSSL_CTX_new failed", NULL);
		goto fail;
	}
	if (wolfSSL_CTX_SetMinVersion(t->ctx, WOLFSSL_TLSV1_2) !=
	    WOLFSSL_SUCCESS) {
		tls_ctx_error(err, errlen, "cannot set minimum TLS 1.2", NULL);
		goto fail;
	}
	if (wolfSSL_CTX_set_cipher_list(t->ctx, TLS_CIPHERS) !=
	    WOLFSSL_SUCCESS) {
		tls_ctx_error(err, errlen, "cannot set cipher list", NULL);
		goto fail;
	}
	/* VERIFY_PEER in both modes: in opportunistic mode the callback
	 * overrides failures, but the chain and name are still checked so
	 * the result can be logged. */
	wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_PEER, tls_verify_cb);
	if (tls_ctx_load_trust(t, ca_file, err, errlen) < 0)
		goto fail;
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (ctx->ctx != NULL)
		wolfSSL_CTX_free(ctx->ctx);
	free(ctx);
}

static void
tls_conn_record_verify(struct tls_conn *t, int code, int depth,
		       WOLFSSL_X509 *cert, const char *why)
{
	char reason[128], subject[128] = "?", clean[128];

	if (t->verify_failed)
		return; /* keep the first, most specific reason */
	t->verify_failed = true;
	if (why != NULL)
		str_copy(reason, sizeof(reason), why);
	else
		tls_error_text(code, reason, sizeof(reason));
	if (cert != NULL) {
		WOLFSSL_X509_NAME *name = wolfSSL_X509_get_subject_name(cert);
		if (name != NULL &&
		    wolfSSL_X509_NAME_oneline(name, subject, sizeof(subject)))
			subject[sizeof(subject) - 1] = '\0';
	}
	/* The subject is peer-controlled text. */
	str_sanitize(clean, sizeof(clean), subject, strlen(subject));
	tls_textf(t->verify_text, sizeof(t->verify_text),
		 "%s (depth %d, subject %s)", reason, depth, clean);
}

/* Name a verify error as a host name problem or a chain problem, so
 * `outbox check` can say which one to fix. */
static void
tls_conn_classify(struct tls_conn *t, int code)
{
	if (code == DOMAIN_NAME_MISMATCH || code == IPADDR_MISMATCH ||
	    code == 62 || code == 64) {
		t->name_failed = true;
		return;
	}
	if (!t->chain_failed)
		tls_error_text(code, t->chain_text, sizeof(t->chain_text));
	t->chain_failed = true;
}

static void
tls_name_text(WOLFSSL_X509_NAME *name, char *dst, size_t size)
{
	char raw[256];

	dst[0] = '\0';
	if (name == NULL || wolfSSL_X509_NAME_oneline(name, raw, sizeof(raw)) ==
				    NULL)
		return;
	raw[sizeof(raw) - 1] = '\0';
	/* Certificate names are peer-controlled text. */
	str_sanitize(dst, size, raw, strlen(raw));
}

static long long
tls_asn1_time(const WOLFSSL_ASN1_TIME *at)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (at == NULL || wolfSSL_ASN1_TIME_to_tm(at, &tm) != WOLFSSL_SUCCESS)
		return 0;
	return (long long)timegm(&tm);
}

/* Append "DNS:name" or "IP:addr" for one subjectAltName entry. */
static void
tls_san_append(WOLFSSL_GENERAL_NAME *gn, char *dst, size_t size)
{
	char one[300], clean[280];
	WOLFSSL_ASN1_STRING *s = NULL;
	const char *kind = NULL;

	if (gn->type == 2) {         /* GEN_DNS */
		s = gn->d.dNSName;
		kind = "DNS";
	} else if (gn->type == 7) {  /* GEN_IPADD */
		s = gn->d.iPAddress;
		kind = "IP";
	}
	if (s == NULL)
		return;
	const unsigned char *p = wolfSSL_ASN1_STRING_get0_data(s);
	int len = wolfSSL_ASN1_STRING_length(s);
	if (p == NULL || len <= 0)
		return;
	if (kind[0] == 'I') {
		int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
		if (af == 0 || inet_ntop(af, p, clean, sizeof(clean)) == NULL)
			return;
	} else {
		str_sanitize(clean, sizeof(clean), (const char *)p, (size_t)len);
	}
	tls_textf(one, sizeof(one), "%s%s:%s", dst[0] ? ", " : "", kind, clean);
	size_t used = strlen(dst);
	if (used + strlen(one) < size)
		memcpy(dst + used, one, strlen(one) + 1);
}

static void
tls_cert_sans(WOLFSSL_X509 *cert, char *dst, size_t size)
{
	/* 131 is NID_subject_alt_name (wolfcrypt/asn.h, not in ssl.h). */
	WOLFSSL_GENERAL_NAMES *names =
		wolfSSL_X509_get_ext_d2i(cert, 131, NULL, NULL);

	dst[0] = '\0';
	if (names == NULL)
		return;
	int n = wolfSSL_sk_GENERAL_NAME_num(names);
	for (int i = 0; i < n && i < 64; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
		if (gn != NULL)
			tls_san_append(gn, dst, size);
	}
	wolfSSL_GENERAL_NAMES_free(names);
}

/*
 * Whether the certificate names any host in a DNS subjectAltName.
 * wolfSSL_check_domain_name() falls back to the subject CN when there is
 * none; RFC 9525 (which obsoletes RFC 6125 and drops its CN-ID
 * fallback) and RELIABILITY F6: a CN-only certificate names no server.
 */
static bool
tls_cert_has_dns_san(WOLFSSL_X509 *cert)
{
	WOLFSSL_GENERAL_NAMES *names =
		wolfSSL_X509_get_ext_d2i(cert, 131, NULL, NULL);
	bool found = false;

	if (names == NULL)
		return false;
	int n = wolfSSL_sk_GENERAL_NAME_num(names);
	for (int i = 0; i < n && !found; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
		found = gn != NULL && gn->type == 2; /* GEN_DNS */
	}
	wolfSSL_GENERAL_NAMES_free(names);
	return found;
}

/* The leaf certificate's facts, for `outbox check`. */
static void
tls_cert_facts(WOLFSSL_X509 *cert, struct tls_result *out)
{
	out->cert_seen = true;
	tls_name_text(wolfSSL_X509_get_subject_name(cert), out->subject,
		      sizeof(out->subject));
	tls_name_text(wolfSSL_X509_get_issuer_name(cert), out->issuer,
		      sizeof(out->issuer));
	tls_cert_sans(cert, out->sans, sizeof(out->sans));
	out->not_before = tls_asn1_time(wolfSSL_X509_get_notBefore(cert));
	out->not_after = tls_asn1_time(wolfSSL_X509_get_notAfter(cert));
}

static int
tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(
		store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *t = ssl ? wolfSSL_get_app_data(ssl) : NULL;
	if (t == NULL)
		return 0; /* cannot record the outcome: fail closed */
	int depth = wolfSSL_X509_STORE_CTX_get_error_depth(store);
	WOLFSSL_X509 *cert = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	int ok = preverify;

	if (depth == 0) {
		t->leaf_seen = true;
		if (!t->cert.cert_seen && cert != NULL)
			tls_cert_facts(cert, &t->cert);
	}
	if (!ok) {
		int code = wolfSSL_X509_STORE_CTX_get_error(store);
		tls_conn_classify(t, code);
		tls_conn_record_verify(t, code, depth, cert, NULL);
	}
	if (depth == 0 && t->want_dns_san &&
	    (cert == NULL || !tls_cert_has_dns_san(cert))) {
		t->name_failed = true;
		if (ok)
			tls_conn_record_verify(t, 0, depth, cert,
					       "no DNS subjectAltName (the "
					       "CN is not used)");
		ok = 0;
	}
	if (depth == 0 && t->ip[0] != '\0' &&
	    (cert == NULL || wolfSSL_X509_check_ip_asc(cert, t->ip, 0) != 1)) {
		/* wolfSSL_check_domain_name() does not look at IP SANs. */
		t->name_failed = true;
		if (ok)
			tls_conn_record_verify(t, 0, depth, cert,
					       "IP address mismatch");
		ok = 0;
	}
	return t->verify ? ok : 1;
}

static int
tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *t = arg;
	size_t avail = t->cin.len - t->cin_off;

	(void)ssl;
	if (avail == 0)
		return t->eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE
			      : WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = sz > 0 && (size_t)sz < avail ? (size_t)sz : avail;
	memcpy(buf, t->cin.data + t->cin_off, n);
	t->cin_off += n;
	if (t->cin_off == t->cin.len) {
		buf_reset(&t->cin);
		t->cin_off = 0;
	}
	return (int)n;
}

static int
tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct tls_conn *t = arg;

	(void)ssl;
	/* Never WANT_WRITE: wolfSSL would then need the same call repeated. */
	if (sz < 0 || buf_append(&t->cout, buf, (size_t)sz) < 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

static bool
tls_is_ip_literal(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, addr) == 1 ||
	       inet_pton(AF_INET6, host, addr) == 1;
}

static int
tls_conn_set_peer(struct tls_conn *t, const char *host)
{
	if (host == NULL || host[0] == '\0')
		return -1;
	if (tls_is_ip_literal(host)) {
		/* RFC 6066 3: no SNI for IP literals. */
		return str_copy(t->ip, sizeof(t->ip), host);
	}
	if (wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, host,
			   (unsigned short)strlen(host)) != WOLFSSL_SUCCESS)
		return -1;
	/* Chain verification alone does not check the name (RELIABILITY F6). */
	if (wolfSSL_check_domain_name(t->ssl, host) != WOLFSSL_SUCCESS)
		return -1;
	t->want_dns_san = true;
	return 0;
}

struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, const char *host, char *err, size_t errlen)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		tls_ctx_error(err, errlen, "out of memory", NULL);
		return NULL;
	}
	buf_init(&t->cin, TLS_CIN_MAX);
	buf_init(&t->cout, TLS_COUT_MAX);
	t->verify = ctx->verify;
	t->ssl = wolfSSL_new(ctx->ctx);
	if (t->ssl == NULL) {
		tls_ctx_error(err, errlen, "wolfSSL_new failed", NULL);
		goto fail;
	}
	wolfSSL_SSLSetIORecv(t->ssl, tls_recv_cb);
	wolfSSL_SSLSetIOSend(t->ssl, tls_send_cb);
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	wolfSSL_set_app_data(t->ssl, t);
	if (tls_conn_set_peer(t, host) < 0) {
		tls_ctx_error(err, errlen, "cannot set TLS peer name", NULL);
		goto fail;
	}
	return t;
fail:
	tls_conn_free(t);
	return NULL;
}

void
tls_conn_free(struct tls_conn *t)
{
	if (t == NULL)
		return;
	if (t->ssl != NULL)
		wolfSSL_free(t->ssl);
	buf_free(&t->cin);
	buf_free(&t->cout);
	free(t);
}

int
tls_conn_feed(struct tls_conn *t, const char *data, size_t len)
{
	if (t->cin_off > 0) {
		buf_consume(&t->cin, t->cin_off);
		t->cin_off = 0;
	}
	return buf_append(&t->cin, data, len);
}

void
tls_conn_set_eof(struct tls_conn *t)
{
	t->eof = true;
}

size_t
tls_conn_out_len(const struct tls_conn *t)
{
	return t->cout.len;
}

size_t
tls_conn_take_out(struct tls_conn *t, char *dst, size_t cap)
{
	size_t n = cap < t->cout.len ? cap : t->cout.len;

	if (n > 0) {
		memcpy(dst, t->cout.data, n);
		buf_consume(&t->cout, n);
	}
	return n;
}

static void
tls_conn_fail(struct tls_conn *t, int code)
{
	char text[128];

	if (t->error[0] != '\0')
		return;
	if (t->verify && t->verify_failed) {
		tls_textf(t->error, sizeof(t->error),
			 "certificate verify failed: %s", t->verify_text);
		return;
	}
	tls_error_text(code, text, sizeof(text));
	/* "received alert fatal error" alone does not say why. */
	WOLFSSL_ALERT_HISTORY h;
	const char *alert = NULL;
	if (wolfSSL_get_alert_history(t->ssl, &h) == WOLFSSL_SUCCESS &&
	    h.last_rx.level == alert_fatal)
		alert = wolfSSL_alert_desc_string_long(h.last_rx.code);
	tls_textf(t->error, sizeof(t->error), "%s%s (%d)%s%s",
		  t->eof ? "connection closed by peer: " : "", text, code,
		  alert ? ": " : "", alert ? alert : "");
}

static bool
tls_conn_would_block(int e)
{
	return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

int
tls_conn_handshake(struct tls_conn *t)
{
	if (t->done)
		return 1;
	int r = wolfSSL_connect(t->ssl);
	if (r == WOLFSSL_SUCCESS) {
		t->done = true;
		return 1;
	}
	int e = wolfSSL_get_error(t->ssl, r);
	if (tls_conn_would_block(e))
		return 0;
	tls_conn_fail(t, e);
	return TLS_CONN_ERR;
}

int
tls_conn_read(struct tls_conn *t, char *buf, size_t len)
{
	int want = len > INT_MAX ? INT_MAX : (int)len;
	int n = wolfSSL_read(t->ssl, buf, want);
	if (n > 0)
		return n;
	int e = wolfSSL_get_error(t->ssl, n);
	if (tls_conn_would_block(e))
		return 0;
	/* A TCP EOF without close_notify is a truncation; SMTP has its own
	 * framing, so the owner treats both as the end of the stream. */
	if (e == WOLFSSL_ERROR_ZERO_RETURN || t->eof)
		return TLS_CONN_EOF;
	tls_conn_fail(t, e);
	return TLS_CONN_ERR;
}

int
tls_conn_write(struct tls_conn *t, const char *data, size_t len)
{
	while (len > 0) {
		int chunk = len > 16384 ? 16384 : (int)len;
		int n = wolfSSL_write(t->ssl, data, chunk);
		if (n <= 0) {
			tls_conn_fail(t, wolfSSL_get_error(t->ssl, n));
			return TLS_CONN_ERR;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

void
tls_conn_shutdown(struct tls_conn *t)
{
	if (!t->done || t->shut)
		return;
	t->shut = true;
	(void)wolfSSL_shutdown(t->ssl);
}

bool
tls_conn_is_done(const struct tls_conn *t)
{
	return t->done;
}

void
tls_conn_result(const struct tls_conn *t, struct tls_result *res)
{
	memset(res, 0, sizeof(*res));
	if (t->cert.cert_seen) {
		res->cert_seen = true;
		memcpy(res->subject, t->cert.subject, sizeof(res->subject));
		memcpy(res->issuer, t->cert.issuer, sizeof(res->issuer));
		memcpy(res->sans, t->cert.sans, sizeof(res->sans));
		res->not_before = t->cert.not_before;
		res->not_after = t->cert.not_after;
		res->chain_ok = !t->chain_failed;
		res->name_ok = !t->name_failed;
		str_copy(res->chain_error, sizeof(res->chain_error),
			 t->chain_text);
	}
	res->verified = t->done && t->leaf_seen && !t->verify_failed;
	if (t->done) {
		const char *v = wolfSSL_get_version(t->ssl);
		const char *c = wolfSSL_get_cipher_name(t->ssl);
		str_copy(res->version, sizeof(res->version), v ? v : "");
		str_copy(res->cipher, sizeof(res->cipher), c ? c : "");
	}
	if (t->error[0] != '\0')
		str_copy(res->error, sizeof(res->error), t->error);
	else if (t->verify_failed)
		tls_textf(res->error, sizeof(res->error),
			 "certificate not verified: %s", t->verify_text);
	else if (t->done && !t->leaf_seen)
		str_copy(res->error, sizeof(res->error),
			 "no peer certificate was verified");
}
