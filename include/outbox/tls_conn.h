/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_TLS_CONN_H
#define OUTBOX_TLS_CONN_H
/*
 * Private to io/: one client TLS session driven through memory buffers
 * (LIBRARIES.md 3.2). The owner (io/conn.c) feeds received ciphertext in
 * with tls_conn_feed(), calls a step function, and then writes out what
 * tls_conn_take_out() hands back. The session never touches a socket, so
 * wolfSSL never blocks and never sees libuv. No wolfSSL types leak here.
 *
 * Ownership: tls_conn_new() borrows the tls_ctx, which must outlive every
 * session made from it; the session owns its buffers and its WOLFSSL.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/conn.h"
#include "outbox/tls.h"

struct tls_conn;

/* Step results: 1 done/ok, 0 need more ciphertext, <0 failure. */
#define TLS_CONN_EOF (-1)   /* tls_conn_read: close_notify or TCP EOF */
#define TLS_CONN_ERR (-2)   /* fatal; see tls_conn_result() for the text */

/*
 * host: SNI and the name to check. An IP literal gets no SNI and is
 * checked against the certificate's IP SANs. NULL on failure, with err.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host,
			      char *err, size_t errlen);
void tls_conn_free(struct tls_conn *t);

/* Append received ciphertext. 0, or -ENOBUFS/-ENOMEM. */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t len);
/* The peer closed the TCP stream: wolfSSL sees CONN_CLOSE once the input
 * buffer is empty. */
void tls_conn_set_eof(struct tls_conn *t);

/* Ciphertext produced and not yet taken. */
size_t tls_conn_out_len(const struct tls_conn *t);
/* Move up to cap bytes of produced ciphertext into dst; returns the count. */
size_t tls_conn_take_out(struct tls_conn *t, char *dst, size_t cap);

/* Drive the client handshake: 1 done, 0 need more input, TLS_CONN_ERR. */
int tls_conn_handshake(struct tls_conn *t);
/* Decrypt into buf: >0 bytes, 0 need more input, TLS_CONN_EOF, TLS_CONN_ERR. */
int tls_conn_read(struct tls_conn *t, char *buf, size_t len);
/* Encrypt all of data into the output buffer: 0 or TLS_CONN_ERR. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t len);
/* Queue close_notify (best effort, does not wait for the peer's). */
void tls_conn_shutdown(struct tls_conn *t);
bool tls_conn_is_done(const struct tls_conn *t);

/* Version, cipher, verification outcome and the last error text. */
void tls_conn_result(const struct tls_conn *t, struct tls_result *res);

#endif
