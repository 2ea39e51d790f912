/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr or syslog, one line per call. A line is formatted into
 * a bounded stack buffer and written with one write(2), so lines from one
 * process never interleave mid-line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "outbox/log.h"

static enum log_target log_target = LOG_TO_STDERR;
static enum log_level log_level = LOG_LVL_INFO;
static const char *log_ident = "outbox";

void
log_init(const char *ident, enum log_target target, enum log_level level)
{
	log_ident = ident;
	log_target = target;
	log_level = level;
	if (target == LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

static const char *const level_names[] = { "error", "warning", "info",
					   "debug" };

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	if (lvl > log_level)
		return;
	char line[4096];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (log_target == LOG_TO_SYSLOG) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
					    LOG_DEBUG };
		syslog(prio[lvl], "%s", line);
		return;
	}
	char out[4200];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int m = snprintf(out, sizeof(out),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s%s%s\n",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			 log_ident, (long)getpid(),
			 lvl <= LOG_LVL_WARN ? level_names[lvl] : "",
			 lvl <= LOG_LVL_WARN ? ": " : "", line);
	if (m < 0)
		return;
	if ((size_t)m >= sizeof(out))
		m = sizeof(out) - 1;
	ssize_t w = write(STDERR_FILENO, out, (size_t)m);
	(void)w;
}

#define LOG_FN(name, lvl)                          \
	void name(const char *fmt, ...)            \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_vmsg(lvl, fmt, ap);            \
		va_end(ap);                        \
	}
LOG_FN(log_err, LOG_LVL_ERR)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
log_panic(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("panic: %s:%d: %s", file, line, msg);
	abort();
}
