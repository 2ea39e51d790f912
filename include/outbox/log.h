/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_LOG_H
#define OUTBOX_LOG_H
/*
 * One line per event (OpenSMTPD log.h). Output to stderr (for journald and
 * containers) or syslog. Peer text must be passed through str_sanitize first.
 */
#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG };

void log_init(const char *ident, enum log_target target, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/*
 * [log] format = json: each stderr line becomes one JSON object
 * {"ts":"2024-01-02T03:04:05.678Z","level":"info","ident":"outboxd",
 *  "pid":123,"msg":"..."} (level: error, warning, info, debug; the msg
 * has '"', '\\' and control bytes escaped, and each byte that is not valid
 * UTF-8 as \u00XX). The syslog target is unchanged (the message only).
 */
void log_set_json(bool on);
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

/* Broken internal invariant: log and abort (Postfix msg_panic). */
#define OB_PANIC(...) log_panic(__FILE__, __LINE__, __VA_ARGS__)
void log_panic(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#endif
