/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus textfile ([metrics] textfile) for node_exporter's
 * textfile collector: no HTTP server of our own.
 *
 * Every [metrics] interval (and once at start) a snapshot is rendered
 * (proto/metrics_text.c) and written to <textfile>.tmp.<pid>, then
 * renamed over <textfile>: the collector reads either the old file or
 * the new one, never a half-written one (it ignores names not ending in
 * .prom, so the temporary name is never scraped). The file is small
 * (a few KiB) and written without fsync -- a crash loses nothing worth
 * keeping, the next write replaces it -- so the loop thread does it
 * directly instead of handing it to the thread pool. At stop the file
 * is written once more with outbox_up 0, so a stopped daemon is seen as
 * down rather than as frozen numbers.
 *
 * A failing write is logged once, then again only when it recovers (a
 * missing directory must not flood the log every 15 seconds).
 *
 * The timer is file-local (one daemon per process) and closed by
 * metrics_stop(); the interval and the path are read from d->cfg each
 * time, so a reload applies them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/stats.h"

#define METRICS_TEXT_MAX (1024 * 1024)
#define METRICS_MIN_MS 1000

static uv_timer_t metrics_timer;
static bool metrics_running;
static bool metrics_failing;

/* Write all of data[0..n) to a new file path (mode 0644). 0 or -errno. */
static int
metrics_write_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				    O_NOFOLLOW,
		      0644);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	int r = 0;
	while (off < n) {
		ssize_t w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Render and install the textfile. 0 or -errno. */
static int
metrics_install(struct daemon *d, const char *path, bool up)
{
	char tmp[CONFIG_PATH_MAX + 32];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	struct status *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	stats_snapshot(d, st);
	struct buf b;
	buf_init(&b, METRICS_TEXT_MAX);
	int r = metrics_text(&b, st, up) == 0 ? 0 : -ENOBUFS;
	free(st);
	if (r == 0)
		r = metrics_write_file(tmp, b.data, b.len);
	buf_free(&b);
	if (r == 0 && rename(tmp, path) != 0)
		r = -errno;
	if (r != 0)
		unlink(tmp);
	return r;
}

static void
metrics_write(struct daemon *d, bool up)
{
	const char *path = d->cfg.metrics.textfile;
	if (path[0] == '\0')
		return;
	int r = metrics_install(d, path, up);
	if (r != 0 && !metrics_failing)
		log_warn("metrics: cannot write %s: %s", path, strerror(-r));
	else if (r == 0 && metrics_failing)
		log_info("metrics: writing %s again", path);
	metrics_failing = r != 0;
}

static uint64_t
metrics_interval_ms(const struct daemon *d)
{
	uint64_t s = d->cfg.metrics.interval_s;
	if (s > UINT64_MAX / 1000)
		return UINT64_MAX;
	return s * 1000 < METRICS_MIN_MS ? METRICS_MIN_MS : s * 1000;
}

static void
metrics_timer_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	metrics_write(d, true);
	uv_timer_start(&metrics_timer, metrics_timer_cb, metrics_interval_ms(d),
		       0);
}

void
metrics_start(struct daemon *d)
{
	stats_start();
	uv_timer_init(d->loop, &metrics_timer);
	metrics_timer.data = d;
	metrics_running = true;
	/* The first file as soon as the loop runs: a scrape right after
	 * start-up already sees outbox_up 1. */
	uv_timer_start(&metrics_timer, metrics_timer_cb, 0, 0);
	if (d->cfg.metrics.textfile[0] != '\0')
		log_info("metrics: writing %s every %llu s",
			 d->cfg.metrics.textfile,
			 (unsigned long long)(metrics_interval_ms(d) / 1000));
}

void
metrics_stop(struct daemon *d)
{
	if (!metrics_running)
		return;
	metrics_running = false;
	uv_close((uv_handle_t *)&metrics_timer, NULL);
	metrics_write(d, false);
}
