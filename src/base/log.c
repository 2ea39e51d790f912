/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr or syslog, one line per call. A line is formatted into
 * a bounded stack buffer and written with one write(2), so lines from one
 * process never interleave mid-line. With log_set_json(true) each stderr
 * line is one JSON object instead (the escaping is done here: the base
 * layer cannot use proto's JSON writer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "outbox/log.h"
#include "outbox/str.h"

static enum log_target log_target = LOG_TO_STDERR;
static enum log_level log_level = LOG_LVL_INFO;
static const char *log_ident = "outbox";
static bool log_json;
/* getpid() once, not per line (nothing in outbox forks after logging
 * starts; log_init asks again). */
static long log_pid;

static long
log_getpid(void)
{
	if (log_pid == 0)
		log_pid = (long)getpid();
	return log_pid;
}

void
log_init(const char *ident, enum log_target target, enum log_level level)
{
	log_pid = 0;
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
log_set_json(bool on)
{
	log_json = on;
}

/* "2024-01-02T03:04:05.678Z" (UTC, milliseconds) into ts[32]. */
static void
log_timestamp(char ts[32])
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
}

static void
log_write(const char *out, int m, size_t size)
{
	if (m < 0)
		return;
	if ((size_t)m >= size)
		m = (int)size - 1;
	ssize_t w = write(STDERR_FILENO, out, (size_t)m);
	(void)w;
}

/*
 * s as the inside of a JSON string into out[size] (NUL-terminated):
 * '"', '\\' and control bytes escaped, valid UTF-8 kept, any other byte
 * as \u00XX (read as Latin-1), so the line is valid UTF-8 JSON whatever
 * the message holds. Stops at a whole character when out is full.
 */
static void
log_json_escape(char *out, size_t size, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, i = 0;
	while (i < n) {
		char esc[8];
		const char *put = esc;
		size_t k = u[i] >= 0x80 ? str_utf8_len(u + i, n - i) : 0;
		if (k > 0) {
			put = s + i;
		} else if (u[i] == '"' || u[i] == '\\') {
			esc[0] = '\\', esc[1] = s[i], k = 2;
		} else if (u[i] == '\n') {
			esc[0] = '\\', esc[1] = 'n', k = 2;
		} else if (u[i] < 0x20 || u[i] >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
			k = 6;
		} else {
			put = s + i, k = 1;
		}
		if (o + k >= size)
			break;
		memcpy(out + o, put, k);
		o += k;
		i += put == s + i ? k : 1;
	}
	out[o] = '\0';
}

static void
log_line_json(enum log_level lvl, const char *ts, const char *line)
{
	char msg[4096 + 512], ident[128];
	log_json_escape(msg, sizeof(msg), line);
	log_json_escape(ident, sizeof(ident), log_ident);
	char out[sizeof(msg) + 256];
	int m = snprintf(out, sizeof(out),
			 "{\"ts\":\"%s\",\"level\":\"%s\",\"ident\":\"%s\","
			 "\"pid\":%ld,\"msg\":\"%s\"}\n",
			 ts, level_names[lvl], ident, log_getpid(), msg);
	log_write(out, m, sizeof(out));
}

static void
log_line_text(enum log_level lvl, const char *ts, const char *line)
{
	char out[4200];
	int m = snprintf(out, sizeof(out), "%s %s[%ld]: %s%s%s\n", ts,
			 log_ident, log_getpid(),
			 lvl <= LOG_LVL_WARN ? level_names[lvl] : "",
			 lvl <= LOG_LVL_WARN ? ": " : "", line);
	log_write(out, m, sizeof(out));
}

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	if (lvl > log_level)
		return;
	char line[4096];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if (log_target == LOG_TO_SYSLOG) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
					    LOG_DEBUG };
		syslog(prio[lvl], "%s", line);
		return;
	}
	char ts[32];
	log_timestamp(ts);
	if (log_json)
		log_line_json(lvl, ts, line);
	else
		log_line_text(lvl, ts, line);
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
