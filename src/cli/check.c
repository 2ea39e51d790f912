/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	`outbox check mx|smtp|imap|pop3|relay`: diagnostics in plain words
 *	(text) or for scripts (--json). Each subcommand reads the
 *	configuration as the daemon does (-c FILE, OUTBOX_CONFIG, OUTBOX_*)
 *	and honours its TLS trust ([relay] ca_file) and DNS servers ([mx]
 *	dns_servers), so it sees what the daemon would see; --ca-file and
 *	--dns override them. Every network step is bounded by --timeout
 *	(default 10 s). Exit 0 only when no step failed; 1 when one did;
 *	EX_USAGE / EX_CONFIG / EX_SOFTWARE otherwise.
 *
 *	This file parses options and prints; check_probe.c talks to servers,
 *	check_mx.c asks DNS, check_relay.c is the doctor, and the words come
 *	from the pure rules in proto/check_advice.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outbox/daemon.h"
#include "outbox/str.h"

#include "check_priv.h"
#include "cli.h"

#define CHECK_TIMEOUT_DEFAULT_S 10
#define CHECK_TIMEOUT_MAX_S 600
#define CHECK_OUT_MAX (1u << 20)

struct check_opts {
	const char *sub;
	const char *target;
	const char *config;
	const char *ca_file;
	const char *dns;
	const char *tls;     /* --tls: how to talk to the port */
	bool json;
	uint64_t timeout_s;
};

static void
check_usage(FILE *f)
{
	fprintf(f,
		"usage: outbox check mx DOMAIN\n"
		"       outbox check smtp HOST[:PORT]   (no port: 587, 465 and 25)\n"
		"       outbox check imap HOST[:PORT]   (no port: 993 and 143)\n"
		"       outbox check pop3 HOST[:PORT]   (no port: 995 and 110)\n"
		"       outbox check relay              (the configured smarthost)\n"
		"options: --json  --timeout SECONDS (10)  -c FILE  --ca-file FILE\n"
		"         --dns IP[:PORT][,IP[:PORT]...]\n"
		"         --tls starttls|implicit|none  (smtp, imap, pop3: how to "
		"talk to\n"
		"         the port; default by port: 465, 993, 995 implicit)\n");
}

static int
check_opt_value(int argc, char **argv, int *i, const char **out)
{
	const char *a = argv[*i];
	const char *eq = strchr(a, '=');
	if (a[1] == '-' && eq != NULL) {
		*out = eq + 1;
		return 0;
	}
	if (*i + 1 >= argc)
		return -1;
	*out = argv[++*i];
	return 0;
}

static bool
check_opt_is(const char *a, const char *name)
{
	size_t n = strlen(name);
	return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

static int
check_parse_opt(int argc, char **argv, int *i, struct check_opts *o)
{
	const char *a = argv[*i], *v = NULL;
	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return 0;
	}
	if (strcmp(a, "-c") == 0 || check_opt_is(a, "--config")) {
		return check_opt_value(argc, argv, i, &o->config);
	}
	if (strncmp(a, "-c", 2) == 0 && a[1] == 'c') {
		o->config = a + 2;
		return 0;
	}
	if (check_opt_is(a, "--ca-file"))
		return check_opt_value(argc, argv, i, &o->ca_file);
	if (check_opt_is(a, "--dns"))
		return check_opt_value(argc, argv, i, &o->dns);
	if (check_opt_is(a, "--tls")) {
		if (check_opt_value(argc, argv, i, &o->tls) < 0)
			return -1;
		return strcmp(o->tls, "starttls") == 0 ||
				       strcmp(o->tls, "implicit") == 0 ||
				       strcmp(o->tls, "none") == 0
			       ? 0
			       : -1;
	}
	if (check_opt_is(a, "--timeout")) {
		if (check_opt_value(argc, argv, i, &v) < 0 ||
		    str_to_u64(v, 1, CHECK_TIMEOUT_MAX_S, &o->timeout_s) < 0)
			return -1;
		return 0;
	}
	return -1;
}

static int
check_parse(int argc, char **argv, struct check_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_s = CHECK_TIMEOUT_DEFAULT_S;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '-' && a[1] != '\0') {
			if (check_parse_opt(argc, argv, &i, o) < 0)
				return -1;
		} else if (o->sub == NULL) {
			o->sub = a;
		} else if (o->target == NULL) {
			o->target = a;
		} else {
			return -1;
		}
	}
	if (o->sub == NULL)
		return -1;
	bool needs_target = strcmp(o->sub, "relay") != 0;
	return needs_target == (o->target != NULL) ? 0 : -1;
}

/* ---- configuration ------------------------------------------------------- */

static int
check_load_config(struct check_ctx *ctx, const char *opt)
{
	const char *env = getenv("OUTBOX_CONFIG");
	char err[CONFIG_ERR_MAX];
	ctx->cfg_explicit = opt != NULL || (env != NULL && env[0] != '\0');
	const char *path = cli_config_path(opt);
	str_copy(ctx->cfg_path, sizeof(ctx->cfg_path), path);
	if (!ctx->cfg_explicit && access(path, F_OK) != 0) {
		/* No file: the defaults plus OUTBOX_* (as outboxd would). */
		str_copy(ctx->cfg_path, sizeof(ctx->cfg_path), "(defaults)");
		if (config_load_string("", "(defaults)", &ctx->cfg, err,
				       sizeof(err)) == 0)
			return 0;
	} else if (config_load(path, &ctx->cfg, err, sizeof(err)) == 0) {
		return 0;
	}
	str_copy(ctx->cfg_error, sizeof(ctx->cfg_error), err);
	config_defaults(&ctx->cfg);
	return -1;
}

static int
check_parse_dns(struct check_ctx *ctx, const char *list, char *err,
		size_t errlen)
{
	const char *p = list;
	ctx->ndns = 0;
	while (*p != '\0') {
		size_t n = strcspn(p, ", ");
		if (n > 0) {
			struct config_hostport hp;
			if (ctx->ndns == CONFIG_MAX_DNS ||
			    config_value_hostport(p, n, 53, false, &hp, err,
						  errlen) < 0 ||
			    !config_value_is_ip(hp.host)) {
				snprintf(err, errlen, "--dns: want IP[:PORT] "
					 "entries, got '%.*s'", (int)n, p);
				return -1;
			}
			ctx->dns[ctx->ndns++] = hp;
		}
		p += n;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

static int
check_setup(struct check_ctx *ctx, const struct check_opts *o)
{
	char err[CONFIG_ERR_MAX];
	ctx->json = o->json;
	ctx->tls_opt = o->tls;
	ctx->timeout_ms = o->timeout_s * 1000;
	if (check_load_config(ctx, o->config) < 0 &&
	    strcmp(o->sub, "relay") != 0) {
		fprintf(stderr, "outbox: %s\n", ctx->cfg_error);
		return EX_CONFIG;
	}
	str_copy(ctx->ca_file, sizeof(ctx->ca_file),
		 o->ca_file ? o->ca_file : ctx->cfg.relay.ca_file);
	memcpy(ctx->dns, ctx->cfg.mx.dns_servers, sizeof(ctx->dns));
	ctx->ndns = ctx->cfg.mx.ndns_servers;
	if (o->dns != NULL && check_parse_dns(ctx, o->dns, err, sizeof(err)) < 0) {
		fprintf(stderr, "outbox: %s\n", err);
		return EX_USAGE;
	}
	daemon_fqdn(&ctx->cfg, ctx->helo, sizeof(ctx->helo));
	if (tls_global_init() < 0) {
		fprintf(stderr, "outbox: cannot initialise TLS\n");
		return EX_SOFTWARE;
	}
	/* Opportunistic, so the handshake completes and every certificate
	 * fact is seen; the rules decide what is a failure, and the probe
	 * refuses to AUTH unless the certificate verified. */
	ctx->tls = tls_ctx_new(ctx->ca_file, false, ctx->tls_error,
			       sizeof(ctx->tls_error));
	return 0;
}

/* ---- subcommands ------------------------------------------------------- */

static int
check_split_target(const char *target, unsigned defport,
		   struct config_hostport *hp)
{
	char msg[160];
	if (config_value_hostport(target, strlen(target), (uint16_t)defport,
				  true, hp, msg, sizeof(msg)) < 0 ||
	    hp->host[0] == '\0') {
		fprintf(stderr, "outbox: bad HOST[:PORT] '%s': %s\n", target,
			msg);
		return -1;
	}
	return 0;
}

/* --tls, else what the port number says. */
static enum check_tls_mode
check_mode(const char *tls, bool implicit_port)
{
	if (tls != NULL && strcmp(tls, "implicit") == 0)
		return CHECK_TLS_IMPLICIT;
	if (tls != NULL && strcmp(tls, "starttls") == 0)
		return CHECK_TLS_STARTTLS;
	if (tls != NULL && strcmp(tls, "none") == 0)
		return CHECK_TLS_NONE;
	return implicit_port ? CHECK_TLS_IMPLICIT : CHECK_TLS_STARTTLS;
}

static void
check_smtp_one(struct check_ctx *ctx, const char *host, unsigned port,
	       bool auto_port, struct check_report *r)
{
	struct check_smtp_obs *o = calloc(1, sizeof(*o));
	if (o == NULL) {
		r->oom = true;
		return;
	}
	o->auto_port = auto_port;
	o->tls_key = "[relay] tls";
	/* Port 25 is MX delivery: opportunistic TLS, as the daemon does. */
	check_smtp_port(ctx, host, port, check_mode(ctx->tls_opt, port == 465),
			NULL, port != 25, o);
	check_smtp_report(o, (long long)time(NULL), r);
	free(o);
}

static int
check_smtp_main(struct check_ctx *ctx, const char *target,
		struct check_report *r)
{
	static const unsigned ports[] = { 587, 465, 25 };
	struct config_hostport hp;
	if (check_split_target(target, 0, &hp) < 0)
		return EX_USAGE;
	if (hp.port != 0) {
		check_smtp_one(ctx, hp.host, hp.port, false, r);
		return 0;
	}
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		check_smtp_one(ctx, hp.host, ports[i], true, r);
	return 0;
}

static void
check_mbox_one(struct check_ctx *ctx, const char *host, unsigned port,
	       enum check_mbox_proto proto, struct check_report *r)
{
	struct check_mbox_obs *o = calloc(1, sizeof(*o));
	if (o == NULL) {
		r->oom = true;
		return;
	}
	bool tls_port = port == 993 || port == 995;
	check_mbox_port(ctx, host, port, proto,
			check_mode(ctx->tls_opt, tls_port), o);
	check_mbox_report(o, (long long)time(NULL), r);
	free(o);
}

static int
check_mbox_main(struct check_ctx *ctx, const char *target,
		enum check_mbox_proto proto, struct check_report *r)
{
	struct config_hostport hp;
	if (check_split_target(target, 0, &hp) < 0)
		return EX_USAGE;
	if (hp.port != 0) {
		check_mbox_one(ctx, hp.host, hp.port, proto, r);
		return 0;
	}
	check_mbox_one(ctx, hp.host, proto == CHECK_IMAP ? 993 : 995, proto, r);
	check_mbox_one(ctx, hp.host, proto == CHECK_IMAP ? 143 : 110, proto, r);
	return 0;
}

static int
check_dispatch(struct check_ctx *ctx, const struct check_opts *o,
	       struct check_report *r)
{
	if (strcmp(o->sub, "smtp") == 0)
		return check_smtp_main(ctx, o->target, r);
	if (strcmp(o->sub, "imap") == 0)
		return check_mbox_main(ctx, o->target, CHECK_IMAP, r);
	if (strcmp(o->sub, "pop3") == 0)
		return check_mbox_main(ctx, o->target, CHECK_POP3, r);
	if (strcmp(o->sub, "mx") == 0) {
		check_mx_run(ctx, o->target, r);
		return 0;
	}
	check_relay_run(ctx, r);
	return 0;
}

static int
check_print(const struct check_ctx *ctx, const struct check_report *r)
{
	struct buf out;
	buf_init(&out, CHECK_OUT_MAX);
	int rc = ctx->json ? check_report_json(r, &out)
			   : check_report_text(r, &out);
	if (rc == 0 && out.len > 0)
		fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	fflush(stdout);
	if (rc < 0) {
		fprintf(stderr, "outbox: the report is too long\n");
		return EX_SOFTWARE;
	}
	return check_report_ok(r) ? 0 : 1;
}

static bool
check_known_sub(const char *sub)
{
	static const char *const subs[] = { "mx", "smtp", "imap", "pop3",
					    "relay" };
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(sub, subs[i]) == 0)
			return true;
	return false;
}

static void
check_name_handle(uv_handle_t *h, void *arg)
{
	FILE *f = arg;
	fprintf(f, " %s%s", uv_handle_type_name(uv_handle_get_type(h)),
		uv_is_closing(h) ? "(closing)" : "");
}

/* Every probe closes what it opened before its callback chain ends, so
 * the last uv_run leaves nothing: a loop that will not close is a bug
 * in a probe (a handle or request left behind), said out loud rather
 * than ignored. Returns rc, or EX_SOFTWARE in place of a success. */
static int
check_teardown(struct check_ctx *ctx, int rc)
{
	tls_ctx_free(ctx->tls);
	ctx->tls = NULL;
	uv_run(ctx->loop, UV_RUN_DEFAULT);
	int e = uv_loop_close(ctx->loop);
	if (e != 0) {
		fprintf(stderr, "outbox: internal error: event loop closed with "
				"handles still open (%s):",
			uv_strerror(e));
		uv_walk(ctx->loop, check_name_handle, stderr);
		fputc('\n', stderr);
		if (rc == 0)
			rc = EX_SOFTWARE;
	}
	tls_global_cleanup();
	return rc;
}

int
cli_check_main(int argc, char **argv)
{
	struct check_opts o;
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		check_usage(stdout);
		return 0;
	}
	if (check_parse(argc, argv, &o) < 0 || !check_known_sub(o.sub)) {
		check_usage(stderr);
		return EX_USAGE;
	}
	struct check_ctx *ctx = calloc(1, sizeof(*ctx));
	uv_loop_t loop;
	if (ctx == NULL || uv_loop_init(&loop) != 0) {
		free(ctx);
		return EX_OSERR;
	}
	ctx->loop = &loop;
	int rc = check_setup(ctx, &o);
	if (rc != 0) {
		rc = check_teardown(ctx, rc);
		free(ctx);
		return rc;
	}
	struct check_report r;
	check_report_init(&r, o.sub, o.target ? o.target : ctx->cfg_path);
	rc = check_dispatch(ctx, &o, &r);
	if (rc == 0)
		rc = check_print(ctx, &r);
	check_report_free(&r);
	rc = check_teardown(ctx, rc);
	free(ctx);
	return rc;
}
