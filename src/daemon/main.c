/* SPDX-License-Identifier: MIT */
/*
 * outboxd: start-up, signals, reload and shutdown.
 *
 * Start-up is fatal on any error (bad config, spool locked, cannot bind);
 * after it, nothing a peer does stops the daemon. Order: config, TLS
 * context and credentials, spool lock and the first recovery phase
 * (leftovers cleared, the queue listed), listener, then the loop, which
 * loads the listed queue in batches while it already accepts and delivers
 * mail (100,000 queued messages do not delay new mail).
 * SIGTERM/SIGINT: stop accepting, tell sessions 421, abort deliveries
 * (their messages stay queued), wait for in-flight spool work, exit 0.
 * SIGHUP: reload; a bad new config keeps the old one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/privdrop.h"
#include "outbox/resolver.h"
#include "outbox/stats.h"
#include "outbox/str.h"

#define SHUTDOWN_GRACE_MS 10000
#define RETIRED_MAX 16
#define OUTBOXD_POOL_THREADS "4" /* UV_THREADPOOL_SIZE unless set */

static struct daemon daemon_state;
static struct privdrop privdrop; /* [daemon] user */
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t shutdown_timer;
/* While stopping: spool work that ends in the thread pool reports to no
 * one, so the exit condition is polled as well as checked on events. */
static uv_timer_t drain_timer;
static bool handles_closed;
/* Start-up recovery still loading the queue (NULL when done). */
static struct spool_scan *recovery;
/* Contexts and resolvers replaced by a reload; kept until exit because
 * deliveries started before the reload may still use them. */
struct retired {
	struct tls_ctx *tls, *mx_tls;
	struct resolver *resolver;
};
static struct retired retired[RETIRED_MAX];
static size_t nretired;

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: outboxd [-c FILE] [-f|--foreground] [-t|--check-config]"
		" [--local] [-V|--version]\n"
		"  -c FILE   configuration (default $OUTBOX_CONFIG or %s)\n"
		"  -f        stay in the foreground\n"
		"  -t        check the configuration and exit\n"
		"  --local   use the embedded local configuration: listen on "
		"127.0.0.1:2525,\n"
		"            spool in ./spool, log to stderr (no root needed)\n",
		CONFIG_PATH_DEFAULT);
}

static void
daemon_hostname(struct daemon *d)
{
	daemon_fqdn(&d->cfg, d->hostname, sizeof(d->hostname));
}

static int
daemon_load(struct daemon *d, struct config *cfg, char *err, size_t errlen)
{
	int r = d->config_embedded
			? config_load_string(config_local_ini, "(embedded --local config)",
					     cfg, err, errlen)
			: config_load(d->config_path, cfg, err, errlen);
	return r != 0 ? -1 : 0;
}

/* What delivery needs from cfg: TLS contexts, password, resolver. */
struct daemon_route {
	struct tls_ctx *tls, *mx_tls;
	struct resolver *resolver;
	char password[sizeof(((struct daemon *)0)->password)];
};

static void
daemon_route_free(struct daemon_route *rt)
{
	tls_ctx_free(rt->tls);
	tls_ctx_free(rt->mx_tls);
	if (rt->resolver)
		resolver_free(rt->resolver);
	explicit_bzero(rt->password, sizeof(rt->password));
	memset(rt, 0, sizeof(*rt));
}

/*
 * Relay mode: the smarthost's TLS context (verifying, unless verify = no)
 * and password. Direct mode: the MX TLS context (verifying only for
 * tls = required; opportunistic TLS reports instead) and a resolver.
 */
static int
daemon_route_setup(uv_loop_t *loop, const struct config *cfg,
		   struct daemon_route *rt, char *err, size_t errlen)
{
	memset(rt, 0, sizeof(*rt));
	if (cfg->relay.nhost > 0) {
		if (cfg->relay.password_file[0] != '\0' &&
		    config_read_password(cfg, rt->password, sizeof(rt->password),
					 err, errlen) != 0)
			return -1;
		if (cfg->relay.tls == CONFIG_TLS_NONE)
			return 0;
		rt->tls = tls_ctx_new(cfg->relay.ca_file[0] ? cfg->relay.ca_file
							     : NULL,
				      cfg->relay.verify, err, errlen);
		return rt->tls ? 0 : -1;
	}
	if (cfg->mx.tls != CONFIG_MX_TLS_NONE) {
		rt->mx_tls = tls_ctx_new(cfg->mx.ca_file[0] ? cfg->mx.ca_file : NULL,
					 cfg->mx.tls == CONFIG_MX_TLS_REQUIRED,
					 err, errlen);
		if (rt->mx_tls == NULL)
			return -1;
	}
	if (loop != NULL &&
	    resolver_new(loop, cfg->mx.dns_servers, cfg->mx.ndns_servers,
			 &rt->resolver, err, errlen) != 0) {
		daemon_route_free(rt);
		return -1;
	}
	return 0;
}

static void
daemon_route_install(struct daemon *d, struct daemon_route *rt)
{
	d->tls = rt->tls;
	d->mx_tls = rt->mx_tls;
	d->resolver = rt->resolver;
	memcpy(d->password, rt->password, sizeof(d->password));
	explicit_bzero(rt->password, sizeof(rt->password));
}

static void
daemon_close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h)) {
		log_warn("closing a leftover handle of type %s",
			 uv_handle_type_name(h->type));
		uv_close(h, NULL);
	}
}

/* Queued mail from the recovery scan, batch by batch (loop thread). */
static void
daemon_recover_each(void *arg, struct envelope *env)
{
	struct daemon *d = arg;
	queue_add(d->queue, env);
}

static void
daemon_recover_done(void *arg, int found)
{
	struct daemon *d = arg;
	recovery = NULL;
	d->queue_loading = false;
	log_info("spool %s: %d queued message%s loaded", d->cfg.spool.dir,
		 found, found == 1 ? "" : "s");
	control_queue_loaded(d);
}

/* Stop loading: no queue_add after this (the queue may be freed next). */
static void
daemon_recover_cancel(void)
{
	spool_recover_cancel(recovery);
	recovery = NULL;
}

void
daemon_maybe_exit(struct daemon *d)
{
	if (!d->stopping || handles_closed)
		return;
	if (listener_sessions(d->listener) > 0 || queue_busy(d->queue) > 0 ||
	    (d->spool && spool_pending(d->spool) > 0))
		return;
	handles_closed = true;
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&shutdown_timer, NULL);
	uv_close((uv_handle_t *)&drain_timer, NULL);
	queue_free(d->queue);
	d->queue = NULL;
	/* No delivery is left to ask: close c-ares' sockets and timer too. */
	if (d->resolver)
		resolver_free(d->resolver);
	d->resolver = NULL;
	for (size_t i = 0; i < nretired; i++) {
		if (retired[i].resolver)
			resolver_free(retired[i].resolver);
		retired[i].resolver = NULL;
	}
}

static void
shutdown_timeout_cb(uv_timer_t *t)
{
	log_warn("shutdown took longer than %d s; exiting with work in "
		 "flight (nothing acknowledged is lost)",
		 SHUTDOWN_GRACE_MS / 1000);
	_exit(0);
}

static void
drain_timer_cb(uv_timer_t *t)
{
	daemon_maybe_exit(t->data);
}

static void
daemon_stop(struct daemon *d, int signum)
{
	if (d->stopping)
		return;
	log_info("%s received: stopping", strsignal(signum));
	d->stopping = true;
	control_stop(d);
	maildrop_stop(d);
	metrics_stop(d);
	daemon_recover_cancel();
	listener_stop(d->listener);
	queue_stop(d->queue);
	uv_timer_start(&shutdown_timer, shutdown_timeout_cb, SHUTDOWN_GRACE_MS, 0);
	uv_unref((uv_handle_t *)&shutdown_timer);
	uv_timer_start(&drain_timer, drain_timer_cb, 20, 20);
	daemon_maybe_exit(d);
}

static int
daemon_spool_path(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->spool.dir[0] == '/')
		return 0;
	char cwd[PATH_MAX], abs[CONFIG_PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, cfg->spool.dir) >=
		    sizeof(abs)) {
		snprintf(err, errlen, "cannot resolve spool dir %s",
			 cfg->spool.dir);
		return -1;
	}
	str_copy(cfg->spool.dir, sizeof(cfg->spool.dir), abs);
	return 0;
}

static void
daemon_reload(struct daemon *d)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];
	struct daemon_route rt;
	if (daemon_load(d, &cfg, err, sizeof(err)) != 0 ||
	    daemon_spool_path(&cfg, err, sizeof(err)) != 0 ||
	    daemon_route_setup(d->loop, &cfg, &rt, err, sizeof(err)) != 0) {
		log_err("reload failed, keeping the old configuration: %s", err);
		return;
	}
	if (cfg.listen.naddress != d->cfg.listen.naddress ||
	    memcmp(cfg.listen.address, d->cfg.listen.address,
		   sizeof(cfg.listen.address)) != 0)
		log_warn("reload: [listen] address changes need a restart");
	if (strcmp(cfg.spool.dir, d->cfg.spool.dir) != 0)
		log_warn("reload: [spool] dir changes need a restart");
	memcpy(cfg.listen.address, d->cfg.listen.address,
	       sizeof(cfg.listen.address));
	cfg.listen.naddress = d->cfg.listen.naddress;
	str_copy(cfg.spool.dir, sizeof(cfg.spool.dir), d->cfg.spool.dir);
	if (nretired == RETIRED_MAX) {
		tls_ctx_free(retired[0].tls);
		tls_ctx_free(retired[0].mx_tls);
		if (retired[0].resolver)
			resolver_free(retired[0].resolver);
		memmove(retired, retired + 1, sizeof(retired[0]) * (RETIRED_MAX - 1));
		nretired--;
	}
	retired[nretired++] = (struct retired){ d->tls, d->mx_tls, d->resolver };
	daemon_route_install(d, &rt);
	struct aliases *aliases;
	if (rewrite_load(&cfg, &aliases) == 0) {
		rewrite_free(d->aliases);
		d->aliases = aliases;
	} else {
		log_warn("reload: keeping the old aliases");
	}
	d->cfg = cfg;
	daemon_hostname(d);
	log_set_level(cfg.log.level);
	log_set_json(cfg.log.json);
	/* Deliveries in flight finish on their old route; none takes a
	 * new job, so new deliveries follow the new configuration (D15). */
	d->route_gen++;
	log_info("configuration reloaded");
	/* The route may have changed: the old one's backoff says nothing. */
	queue_reset_backoff(d->queue);
	queue_kick(d->queue);
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	if (signum == SIGHUP)
		daemon_reload(d);
	else
		daemon_stop(d, signum);
}

static int
daemon_detach(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return chdir("/");
}

struct options {
	const char *config;
	bool foreground, check, local;
};

static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "local", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:ftVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 't':
			o->check = true;
			break;
		case 'L':
			o->local = true;
			o->foreground = true;
			break;
		case 'V':
			printf("outboxd %s\n", OUTBOX_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(64);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(64);
	}
	return 0;
}

static int
daemon_setup(struct daemon *d, const struct options *o)
{
	char err[CONFIG_ERR_MAX];
	if (daemon_load(d, &d->cfg, err, sizeof(err)) != 0 ||
	    daemon_spool_path(&d->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "outboxd: %s\n", err);
		return 1;
	}
	if (o->check) {
		printf("%s: configuration ok\n",
		       d->config_embedded ? "(embedded --local config)"
					  : d->config_path);
		return 0;
	}
	log_init("outboxd", o->foreground ? d->cfg.log.target : LOG_TO_SYSLOG,
		 d->cfg.log.level);
	log_set_json(d->cfg.log.json);
	daemon_hostname(d);
	struct daemon_route rt;
	if (tls_global_init() != 0 ||
	    daemon_route_setup(NULL, &d->cfg, &rt, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	daemon_route_install(d, &rt);
	if (rewrite_load(&d->cfg, &d->aliases) != 0)
		return 1;
	const char *t = getenv("OUTBOX_TEST_CLIENT_TIMEOUT");
	uint64_t secs;
	if (t && str_to_u64(t, 1, 3600, &secs) == 0)
		d->test_timeout_ms = secs * 1000;
	return -1; /* go on */
}

static int
daemon_run(struct daemon *d)
{
	char err[CONFIG_ERR_MAX];
	d->loop = uv_default_loop();
	if (d->cfg.relay.nhost == 0 &&
	    resolver_new(d->loop, d->cfg.mx.dns_servers, d->cfg.mx.ndns_servers,
			 &d->resolver, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	log_info("delivery: %s", d->cfg.relay.nhost ? "through the smarthost"
						     : "direct to MX hosts");
	/* [daemon] user: spool files are created as that user from here on;
	 * root is taken back only to bind, then dropped for good. */
	if (privdrop_begin(&privdrop, d->cfg.daemon.user, d->cfg.spool.dir,
			   err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	if (spool_open(d->loop, d->cfg.spool.dir, &d->spool, err,
		       sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	if (queue_new(d, &d->queue) != 0)
		return 1;
	/* Phase 1 before the listener opens (it deletes msg/ files without
	 * an envelope, which is only safe while nothing can commit). */
	int n = spool_recover_begin(d->spool, &recovery);
	if (n < 0) {
		log_err("spool recovery failed: %s", strerror(-n));
		return 1;
	}
	log_info("spool %s: %zu queued message%s to load", d->cfg.spool.dir,
		 spool_scan_left(recovery),
		 spool_scan_left(recovery) == 1 ? "" : "s");
	uv_signal_init(d->loop, &sig_term);
	uv_signal_init(d->loop, &sig_int);
	uv_signal_init(d->loop, &sig_hup);
	uv_timer_init(d->loop, &shutdown_timer);
	uv_timer_init(d->loop, &drain_timer);
	drain_timer.data = d;
	sig_term.data = sig_int.data = sig_hup.data = d;
	uv_signal_start(&sig_term, signal_cb, SIGTERM);
	uv_signal_start(&sig_int, signal_cb, SIGINT);
	uv_signal_start(&sig_hup, signal_cb, SIGHUP);
	err[0] = '\0'; /* listener_start logs its own errors */
	if (privdrop_bind(&privdrop, err, sizeof(err)) != 0 ||
	    listener_start(d) != 0 ||
	    privdrop_finish(&privdrop, err, sizeof(err)) != 0) {
		if (err[0] != '\0')
			log_err("%s", err);
		return 1;
	}
	if (control_start(d) != 0 ||
	    maildrop_start(d) != 0)
		return 1;
	/* Phase 2 loads on the thread pool, so it starts only now that the
	 * ids are final: its checks compare file owners with geteuid(). */
	d->queue_loading = true;
	n = spool_recover_run(recovery, 500, daemon_recover_each,
			      daemon_recover_done, d);
	if (n < 0) {
		log_err("spool recovery failed: %s", strerror(-n));
		daemon_recover_cancel();
		return 1;
	}
	metrics_start(d);
	queue_kick(d->queue);
	uv_run(d->loop, UV_RUN_DEFAULT);
	return 0;
}

static void
daemon_cleanup(struct daemon *d)
{
	if (d->resolver)
		resolver_free(d->resolver);
	for (size_t i = 0; i < nretired; i++)
		if (retired[i].resolver)
			resolver_free(retired[i].resolver);
	if (d->loop != NULL) {
		if (!handles_closed) {
			control_stop(d);
			maildrop_stop(d);
			daemon_recover_cancel();
			if (d->queue)
				queue_free(d->queue);
			uv_walk(d->loop, daemon_close_walk, NULL);
		}
		uv_run(d->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(d->loop) != 0)
			log_warn("event loop closed with handles still open");
	}
	listener_free(d->listener);
	if (d->spool)
		spool_close(d->spool);
	rewrite_free(d->aliases);
	tls_ctx_free(d->tls);
	tls_ctx_free(d->mx_tls);
	for (size_t i = 0; i < nretired; i++) {
		tls_ctx_free(retired[i].tls);
		tls_ctx_free(retired[i].mx_tls);
	}
	tls_global_cleanup();
	explicit_bzero(d->password, sizeof(d->password));
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);
	struct daemon *d = &daemon_state;
	signal(SIGPIPE, SIG_IGN);
	/* Commits up to 512 KiB share one pool thread per batch, so libuv's
	 * 4 threads are enough; each thread more costs about 56 KiB of RSS
	 * even idle. Stated here so a different libuv default does not
	 * change us. Read by libuv at the first uv_queue_work. */
	setenv("UV_THREADPOOL_SIZE", OUTBOXD_POOL_THREADS, 0);
	/* A fixed mmap threshold: glibc's sliding one rises after the first
	 * large free and then carves every held body (up to 512 KiB) from
	 * the heap, which stays at its peak: 73 MiB of RSS after a 100 KiB
	 * load, 7 MiB with this and the trim once activity stops
	 * (listener_trim_soon). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	/* Fixing the threshold also fixes the trim threshold at 128 KiB:
	 * the heap then shrinks and grows again (brk, fresh zero pages, a
	 * TLB flush on every CPU) between messages of a 100 KiB load, a
	 * tenth of the CPU each costs. listener_trim_soon returns what a
	 * burst leaves once activity stops. */
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	d->config_embedded = o.local && o.config == NULL;
	const char *path = o.config ? o.config : getenv("OUTBOX_CONFIG");
	str_copy(d->config_path, sizeof(d->config_path),
		 path && *path ? path : CONFIG_PATH_DEFAULT);
	int rc = daemon_setup(d, &o);
	if (rc >= 0) {
		daemon_cleanup(d);
		return rc;
	}
	if (!o.foreground && daemon_detach() != 0) {
		log_err("cannot detach: %s", strerror(errno));
		return 1;
	}
	rc = daemon_run(d);
	daemon_cleanup(d);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
