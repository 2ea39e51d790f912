/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CLI_CHECK_PRIV_H
#define OUTBOX_CLI_CHECK_PRIV_H
/*
 * Internals of `outbox check` (src/cli/check*.c). The glue observes the
 * network with the relay's own code (io/conn.c, io/tls.c, io/resolver.c,
 * proto/smtp_client.c) and fills the observation structs of
 * include/outbox/check.h; the pure rules turn them into report steps.
 * Every probe runs the loop to completion before the next one starts, and
 * every network step is bounded by ctx->timeout_ms.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "outbox/check.h"
#include "outbox/config.h"
#include "outbox/conn.h"
#include "outbox/tls.h"

#define CHECK_MAX_ADDRS 8

struct check_ctx {
	uv_loop_t *loop;
	struct config cfg;           /* loaded, or the defaults */
	char cfg_path[CONFIG_PATH_MAX];
	char cfg_error[CONFIG_ERR_MAX]; /* "" = loaded fine */
	bool cfg_explicit;           /* -c or OUTBOX_CONFIG named a file */
	bool json;
	const char *tls_opt;         /* --tls, or NULL */
	uint64_t timeout_ms;
	char ca_file[CONFIG_PATH_MAX];  /* --ca-file, else [relay] ca_file */
	struct config_hostport dns[CONFIG_MAX_DNS]; /* --dns, else [mx] */
	size_t ndns;
	char helo[HOSTNAME_MAX + 1];
	struct tls_ctx *tls;         /* opportunistic: sees every cert fact */
	char tls_error[256];         /* why tls is NULL */
};

/* The addresses to try for host:port, in order. 0, or -1 with err. */
int check_resolve(struct check_ctx *ctx, const char *host, unsigned port,
		  struct sockaddr_storage *out, size_t max, size_t *n,
		  char *err, size_t errlen);

/* Credentials for the relay doctor (NULL user: no AUTH). */
struct check_login {
	const char *user;
	const char *password;
};

/*
 * Probe one SMTP port of host: resolve, connect (each address in turn
 * until one answers), talk as mode says, and on a failure that looks like
 * the wrong kind of port, look again the other way (obs->mismatch).
 * login: AUTH after TLS (relay doctor), never sent unless the certificate
 * verified when verify is set. obs is filled (host/port/mode set here).
 */
void check_smtp_port(struct check_ctx *ctx, const char *host, unsigned port,
		     enum check_tls_mode mode, const struct check_login *login,
		     bool verify, struct check_smtp_obs *obs);
void check_mbox_port(struct check_ctx *ctx, const char *host, unsigned port,
		     enum check_mbox_proto proto, enum check_tls_mode mode,
		     struct check_mbox_obs *obs);

/* `outbox check mx DOMAIN` into r. */
void check_mx_run(struct check_ctx *ctx, const char *domain,
		  struct check_report *r);
/* `outbox check relay` into r. */
void check_relay_run(struct check_ctx *ctx, struct check_report *r);

/* Copy io's TLS result into the pure observation. */
void check_tls_copy(struct check_tls *dst, int status,
		    const struct tls_result *res);

#endif
