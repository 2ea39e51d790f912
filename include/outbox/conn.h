/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CONN_H
#define OUTBOX_CONN_H
/*
 * An outbound TCP connection with optional TLS, on the libuv loop. It hands
 * the owner plaintext bytes (decrypted after TLS starts) and writes bytes
 * (encrypted after TLS starts). The owner frames lines itself.
 *
 * Lifetime: conn_connect() allocates; conn_close() starts teardown and no
 * hook is called after it returns; the memory is freed in the last libuv
 * close callback. Hooks are never called synchronously from conn_connect,
 * conn_write or conn_start_tls. on_close is called at most once, when the
 * peer closes or an I/O error happens; the owner must call conn_close then.
 * A failed connect (on_connect < 0) or handshake (on_tls < 0) is final too:
 * no other hook follows it, and the owner calls conn_close.
 * Received bytes are handed to on_data as soon as they are read (decrypted),
 * so the conn never holds plaintext; the owner's line buffer is the only
 * place where bytes can wait. Timeouts are the owner's job (own uv_timer_t).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/tls.h"

struct conn;

struct tls_result {
	bool verified;        /* chain and host name verified */
	char version[16];     /* "TLSv1.3" */
	char cipher[64];
	char error[256];      /* why verification or the handshake failed */
	/*
	 * Certificate facts (additive, for `outbox check`), taken from the
	 * peer's leaf certificate when the handshake got that far, whether
	 * or not it verified. Peer text is sanitized. The two checks are
	 * kept apart: a chain can verify for the wrong name, and the right
	 * name can come with an untrusted or expired chain. With a verifying
	 * context the handshake stops at the first failure, so only that one
	 * is known; an opportunistic context (verify=false) sees both.
	 */
	bool cert_seen;       /* the fields below are filled */
	bool chain_ok;        /* trusted chain, dates valid */
	bool name_ok;         /* host name (or IP) matches the certificate */
	char chain_error[128]; /* why the chain failed ("certificate has expired") */
	char subject[256];    /* "/CN=localhost" */
	char issuer[256];
	char sans[512];       /* "DNS:localhost, IP:127.0.0.1" ("" = none) */
	long long not_before; /* seconds since the epoch, 0 = unknown */
	long long not_after;
};

struct conn_hooks {
	void (*on_connect)(void *arg, int status);                 /* 0 or UV_E* */
	void (*on_data)(void *arg, const char *data, size_t len);  /* plaintext */
	void (*on_tls)(void *arg, int status, const struct tls_result *res); /* 0 = up */
	/* Called once all data queued by conn_write has been written. */
	void (*on_drain)(void *arg);                               /* write queue empty */
	void (*on_close)(void *arg, int status);                   /* UV_EOF or UV_E* */
};

int conn_connect(uv_loop_t *loop, const struct sockaddr *addr,
		 const struct conn_hooks *hooks, void *arg, struct conn **out);
/* Copy and queue data for writing (encrypted once TLS is up). 0 or UV_E*:
 * UV_EAGAIN before on_connect or during the TLS handshake, UV_EPIPE after a
 * failure was reported. */
int conn_write(struct conn *c, const char *data, size_t len);
/* Bytes queued and not yet written to the socket. */
size_t conn_write_queue(const struct conn *c);
/*
 * Start a client handshake. host: SNI and the name to verify (NULL for an
 * IP literal: no SNI, the IP is checked against the certificate's IP SANs).
 * Any plaintext received and not yet delivered is discarded (STARTTLS rule):
 * since on_data delivers at once, the OWNER must check that its own line
 * buffer is empty before calling (abort on trailing data). Resumes reading.
 * 0, or UV_E* with no hook called. The tls_ctx must outlive the conn.
 */
int conn_start_tls(struct conn *c, struct tls_ctx *ctx, const char *host);
bool conn_is_tls(const struct conn *c);
/* Stop reading (backpressure) / resume. Bytes already read in the current
 * read callback are still delivered. */
void conn_pause(struct conn *c, bool paused);
void conn_close(struct conn *c);

#endif
