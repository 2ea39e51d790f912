/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_TLS_H
#define OUTBOX_TLS_H
/*
 * TLS client context with the settings Debian's permissive wolfSSL needs
 * (LIBRARIES.md 3.2): TLS >= 1.2, explicit ECDHE/TLS 1.3 cipher allowlist,
 * peer verification with system CAs or a CA file, host name check and
 * SNI per connection. wolfSSL headers are included only in io/tls.c.
 */
#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;

/* verify=false is for opportunistic MX delivery only: the handshake never
 * fails on the certificate, the result is reported instead.
 * ca_file NULL or "": the system trust store. NULL on failure, with a
 * message in err. Needs tls_global_init() first; used on the loop thread
 * only, and must outlive every connection that uses it. */
struct tls_ctx *tls_ctx_new(const char *ca_file, bool verify, char *err,
			    size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* Process-wide init/cleanup (wolfSSL_Init/Cleanup). */
int tls_global_init(void);
void tls_global_cleanup(void);

#endif
