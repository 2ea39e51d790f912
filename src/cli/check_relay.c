/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	`outbox check relay`, the doctor: read and validate the
 *	configuration, read the password file, then for each [relay] host
 *	resolve it, connect, negotiate TLS as configured, verify the
 *	certificate and try AUTH with the configured credentials, without
 *	ever sending MAIL. Each step is reported passed or failed with the
 *	fix. The password is never printed; AUTH is only tried inside TLS
 *	with a certificate that verified (when [relay] verify is on), so a
 *	check cannot leak it to a server the daemon would refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbox/str.h"

#include "check_priv.h"

#define RELAY_GROUP "configuration"

static enum check_tls_mode
relay_mode(const struct config *cfg, unsigned port)
{
	switch (cfg->relay.tls) {
	case CONFIG_TLS_STARTTLS:
		return CHECK_TLS_STARTTLS;
	case CONFIG_TLS_IMPLICIT:
		return CHECK_TLS_IMPLICIT;
	case CONFIG_TLS_NONE:
		return CHECK_TLS_NONE;
	case CONFIG_TLS_AUTO:
		break;
	}
	return port == 465 ? CHECK_TLS_IMPLICIT : CHECK_TLS_STARTTLS;
}

static bool
relay_config(struct check_ctx *ctx, struct check_report *r)
{
	struct check_step *s;
	if (ctx->cfg_error[0] != '\0') {
		s = check_report_add(r, RELAY_GROUP, "config", CHK_FAIL, "%s",
				     ctx->cfg_error);
		check_step_fix(s, "correct the line named above; `outbox "
				  "config check` checks the file alone");
		return false;
	}
	s = check_report_add(r, RELAY_GROUP, "config", CHK_OK,
			     "%s is valid", ctx->cfg_path);
	check_step_value(s, "%s", ctx->cfg_path);
	if (ctx->cfg.relay.nhost == 0) {
		s = check_report_add(r, RELAY_GROUP, "relay", CHK_INFO,
				     "no [relay] host: outbox delivers "
				     "straight to each domain's MX hosts on "
				     "port %u", ctx->cfg.mx.port);
		check_step_fix(s, "use `outbox check mx DOMAIN` to see a "
				  "route; set [relay] host to use a smarthost");
		return false;
	}
	if (ctx->tls == NULL) {
		s = check_report_add(r, RELAY_GROUP, "trust", CHK_FAIL,
				     "cannot set up TLS: %s", ctx->tls_error);
		check_step_fix(s, "check [relay] ca_file (or --ca-file): it "
				  "must be a readable PEM file");
		return false;
	}
	s = check_report_add(r, RELAY_GROUP, "trust", CHK_OK,
			     "trusting %s", ctx->ca_file[0] ? ctx->ca_file
						    : "the system CA store");
	check_step_value(s, "%s", ctx->ca_file);
	return true;
}

/* The password, or -1 (reported). user "" means no AUTH: 0. */
static int
relay_password(struct check_ctx *ctx, char *pw, size_t size,
	       struct check_report *r)
{
	char err[CONFIG_ERR_MAX];
	struct check_step *s;
	pw[0] = '\0';
	if (ctx->cfg.relay.user[0] == '\0') {
		check_report_add(r, RELAY_GROUP, "credentials", CHK_INFO,
				 "no [relay] user: outbox will not log in");
		return 0;
	}
	if (config_read_password(&ctx->cfg, pw, size, err, sizeof(err)) < 0) {
		s = check_report_add(r, RELAY_GROUP, "credentials", CHK_FAIL,
				     "%s", err);
		check_step_fix(s, "set [relay] password_file to a file of "
				  "mode 0600 whose first line is the password");
		return -1;
	}
	s = check_report_add(r, RELAY_GROUP, "credentials", CHK_OK,
			     "user %s, password read from %s",
			     ctx->cfg.relay.user, ctx->cfg.relay.password_file);
	check_step_value(s, "%s", ctx->cfg.relay.user);
	return 0;
}

static void
relay_resolve(struct check_ctx *ctx, const struct config_hostport *hp,
	      const char *group, struct check_report *r)
{
	struct sockaddr_storage addrs[CHECK_MAX_ADDRS];
	char err[160], list[CHECK_TEXT_MAX] = "";
	size_t n = 0;
	if (check_resolve(ctx, hp->host, hp->port, addrs, CHECK_MAX_ADDRS, &n,
			  err, sizeof(err)) < 0)
		return; /* the connect step says why */
	for (size_t i = 0; i < n; i++) {
		char ip[64] = "?";
		if (addrs[i].ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&addrs[i], ip,
				    sizeof(ip));
		else
			uv_ip4_name((struct sockaddr_in *)&addrs[i], ip,
				    sizeof(ip));
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s", i ? " " : "",
			 ip);
	}
	struct check_step *s = check_report_add(r, group, "resolve", CHK_OK,
						"%s is %s", hp->host, list);
	check_step_value(s, "%s", list);
}

static void
relay_host(struct check_ctx *ctx, const struct config_hostport *hp,
	   const char *password, struct check_report *r)
{
	struct check_smtp_obs *o = calloc(1, sizeof(*o));
	char group[96];
	if (o == NULL) {
		r->oom = true;
		return;
	}
	struct check_login login = {
		.user = ctx->cfg.relay.user[0] ? ctx->cfg.relay.user : NULL,
		.password = password,
	};
	bool v6 = strchr(hp->host, ':') != NULL;
	snprintf(group, sizeof(group), "%s%s%s:%u", v6 ? "[" : "", hp->host,
		 v6 ? "]" : "", hp->port);
	o->group = group;
	relay_resolve(ctx, hp, group, r);
	o->tls_key = "[relay] tls";
	check_smtp_port(ctx, hp->host, hp->port, relay_mode(&ctx->cfg, hp->port),
			&login, ctx->cfg.relay.verify, o);
	check_smtp_report(o, (long long)time(NULL), r);
	if (login.user != NULL && !o->auth_tried && o->conn == CHECK_CONN_OK) {
		struct check_step *s = check_report_add(
			r, group, "login", CHK_FAIL,
			"AUTH was not tried: an earlier step failed, and "
			"outbox sends the password only over verified TLS");
		check_step_fix(s, "fix the failures above first");
	}
	explicit_bzero(o, sizeof(*o));
	free(o);
}

void
check_relay_run(struct check_ctx *ctx, struct check_report *r)
{
	char pw[1024];
	if (!relay_config(ctx, r))
		return;
	if (relay_password(ctx, pw, sizeof(pw), r) < 0)
		return;
	for (size_t i = 0; i < ctx->cfg.relay.nhost; i++)
		relay_host(ctx, &ctx->cfg.relay.host[i], pw, r);
	explicit_bzero(pw, sizeof(pw));
}
