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
};

struct conn_hooks {
	void (*on_connect)(void *arg, int status);                 /* 0 or UV_E* */
	void (*on_data)(void *arg, const char *data, size_t len);  /* plaintext */
	void (*on_tls)(void *arg, int status, const struct tls_result *res); /* 0 = up */
	void (*on_drain)(void *arg);                               /* write queue empty */
	void (*on_close)(void *arg, int status);                   /* UV_EOF or UV_E* */
};

int conn_connect(uv_loop_t *loop, const struct sockaddr *addr,
		 const struct conn_hooks *hooks, void *arg, struct conn **out);
/* Copy and queue data for writing. 0 or UV_E*. */
int conn_write(struct conn *c, const char *data, size_t len);
/* Bytes queued and not yet written to the socket. */
size_t conn_write_queue(const struct conn *c);
/*
 * Start a client handshake. host: SNI and the name to verify (NULL for an
 * IP literal: no SNI, the IP is checked against the certificate's IP SANs).
 * Any plaintext received and not yet delivered is discarded (STARTTLS rule).
 */
int conn_start_tls(struct conn *c, struct tls_ctx *ctx, const char *host);
bool conn_is_tls(const struct conn *c);
/* Stop reading (backpressure) / resume. */
void conn_pause(struct conn *c, bool paused);
void conn_close(struct conn *c);

#endif
