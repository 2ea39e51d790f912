/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The report of `outbox check`: an ordered list of steps, each with a
 *	status, what was seen in plain words, a value for scripts and the
 *	fix. Rendered as text for people and as one JSON object for
 *	scripts. Pure: the glue observes, check_advice.c decides, this file
 *	stores and prints. All peer text is sanitized when it is stored, so
 *	neither rendering can be steered by a server's banner.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/check.h"
#include "outbox/control.h"
#include "outbox/str.h"

#define CHECK_MAX_STEPS 512

static const char *const check_status_names[] = {
	[CHK_OK] = "ok",
	[CHK_INFO] = "info",
	[CHK_WARN] = "warn",
	[CHK_FAIL] = "fail",
};

/* Text-mode tags, all the same width. */
static const char *const check_status_tags[] = {
	[CHK_OK] = "[ ok ]",
	[CHK_INFO] = "[info]",
	[CHK_WARN] = "[warn]",
	[CHK_FAIL] = "[FAIL]",
};

const char *
check_status_name(enum check_status st)
{
	return (unsigned)st <= CHK_FAIL ? check_status_names[st] : "?";
}

void
check_report_init(struct check_report *r, const char *command,
		  const char *target)
{
	memset(r, 0, sizeof(*r));
	str_copy(r->command, sizeof(r->command), command ? command : "");
	str_sanitize(r->target, sizeof(r->target), target ? target : "",
		     target ? strlen(target) : 0);
}

void
check_report_free(struct check_report *r)
{
	free(r->steps);
	r->steps = NULL;
	r->n = r->cap = 0;
}

/* Format, then keep printable ASCII only (peer text goes through here). */
static void
check_vformat(char *dst, size_t size, const char *fmt, va_list ap)
{
	char raw[CHECK_TEXT_MAX * 2];
	vsnprintf(raw, sizeof(raw), fmt, ap);
	str_sanitize(dst, size, raw, strlen(raw));
}

static struct check_step *
check_report_grow(struct check_report *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct check_step *s;
		if (cap > CHECK_MAX_STEPS ||
		    (s = realloc(r->steps, cap * sizeof(*s))) == NULL) {
			r->oom = true;
			return NULL;
		}
		r->steps = s;
		r->cap = cap;
	}
	struct check_step *s = &r->steps[r->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

struct check_step *
check_report_add(struct check_report *r, const char *group, const char *name,
		 enum check_status st, const char *fmt, ...)
{
	struct check_step *s = check_report_grow(r);
	if (s == NULL)
		return NULL;
	str_sanitize(s->group, sizeof(s->group), group ? group : "",
		     group ? strlen(group) : 0);
	str_copy(s->name, sizeof(s->name), name ? name : "");
	s->status = st;
	va_list ap;
	va_start(ap, fmt);
	check_vformat(s->text, sizeof(s->text), fmt, ap);
	va_end(ap);
	return s;
}

void
check_step_fix(struct check_step *s, const char *fmt, ...)
{
	if (s == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	check_vformat(s->fix, sizeof(s->fix), fmt, ap);
	va_end(ap);
}

void
check_step_value(struct check_step *s, const char *fmt, ...)
{
	if (s == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	check_vformat(s->value, sizeof(s->value), fmt, ap);
	va_end(ap);
}

size_t
check_report_count(const struct check_report *r, enum check_status st)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->steps[i].status == st;
	return n;
}

bool
check_report_ok(const struct check_report *r)
{
	return !r->oom && check_report_count(r, CHK_FAIL) == 0;
}

/* ---- text ------------------------------------------------------------- */

static int
check_text_step(const struct check_step *s, struct buf *out)
{
	int rc = buf_printf(out, "  %s %s: %s\n", check_status_tags[s->status],
			    s->name, s->text);
	if (rc == 0 && s->fix[0] != '\0')
		rc = buf_printf(out, "         fix: %s\n", s->fix);
	return rc;
}

static int
check_text_summary(const struct check_report *r, struct buf *out)
{
	size_t fails = check_report_count(r, CHK_FAIL);
	size_t warns = check_report_count(r, CHK_WARN);
	if (r->oom)
		return buf_puts(out, "result: out of memory, the report is "
				     "incomplete\n");
	if (fails == 0 && warns == 0)
		return buf_puts(out, "result: everything checked is fine\n");
	return buf_printf(out, "result: %zu problem%s, %zu warning%s\n",
			  fails, fails == 1 ? "" : "s", warns,
			  warns == 1 ? "" : "s");
}

int
check_report_text(const struct check_report *r, struct buf *out)
{
	int rc = buf_printf(out, "outbox check %s %s\n", r->command, r->target);
	const char *group = NULL;
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		const struct check_step *s = &r->steps[i];
		if (group == NULL || strcmp(group, s->group) != 0) {
			group = s->group;
			if (group[0] != '\0')
				rc = buf_printf(out, "%s:\n", group);
		}
		if (rc == 0)
			rc = check_text_step(s, out);
	}
	if (rc == 0)
		rc = check_text_summary(r, out);
	return rc;
}

/* ---- JSON ------------------------------------------------------------- */

static int
check_json_field(struct buf *out, const char *key, const char *val,
		 bool comma)
{
	int rc = buf_printf(out, "%s\"%s\":", comma ? "," : "", key);
	if (rc == 0)
		rc = control_json_str(out, val);
	return rc;
}

static int
check_json_step(const struct check_step *s, struct buf *out, bool comma)
{
	int rc = buf_puts(out, comma ? ",{" : "{");
	if (rc == 0)
		rc = check_json_field(out, "group", s->group, false);
	if (rc == 0)
		rc = check_json_field(out, "step", s->name, true);
	if (rc == 0)
		rc = check_json_field(out, "status",
				      check_status_name(s->status), true);
	if (rc == 0)
		rc = check_json_field(out, "value", s->value, true);
	if (rc == 0)
		rc = check_json_field(out, "text", s->text, true);
	if (rc == 0)
		rc = check_json_field(out, "fix", s->fix, true);
	if (rc == 0)
		rc = buf_puts(out, "}");
	return rc;
}

int
check_report_json(const struct check_report *r, struct buf *out)
{
	int rc = buf_puts(out, "{");
	if (rc == 0)
		rc = check_json_field(out, "command", r->command, false);
	if (rc == 0)
		rc = check_json_field(out, "target", r->target, true);
	if (rc == 0)
		rc = buf_printf(out, ",\"ok\":%s,\"problems\":%zu,"
				     "\"warnings\":%zu,\"complete\":%s,"
				     "\"steps\":[",
				check_report_ok(r) ? "true" : "false",
				check_report_count(r, CHK_FAIL),
				check_report_count(r, CHK_WARN),
				r->oom ? "false" : "true");
	for (size_t i = 0; rc == 0 && i < r->n; i++)
		rc = check_json_step(&r->steps[i], out, i > 0);
	if (rc == 0)
		rc = buf_puts(out, "]}\n");
	return rc;
}

/* ---- EHLO / CAPABILITY keyword lists ----------------------------------- */

int
check_caps_add(char *caps, size_t size, const char *line, size_t len)
{
	char clean[CHECK_TEXT_MAX];
	str_sanitize(clean, sizeof(clean), line, len);
	size_t used = strlen(caps), n = strlen(clean);
	if (n == 0)
		return 0;
	if (used + n + 2 > size)
		return -1;
	if (used > 0)
		caps[used++] = '\n';
	memcpy(caps + used, clean, n + 1);
	return 0;
}

/* Does the line start with keyword kw, followed by ' ', '=' or its end? */
static bool
check_caps_line_is(const char *p, size_t n, const char *kw, size_t *argoff)
{
	size_t k = strlen(kw);
	if (n < k || !str_prefix_ci(p, n, kw))
		return false;
	if (n > k && p[k] != ' ' && p[k] != '=')
		return false;
	*argoff = n > k ? k + 1 : k;
	return true;
}

const char *
check_caps_find(const char *caps, const char *kw, char *arg, size_t size)
{
	const char *p = caps;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p), off;
		if (check_caps_line_is(p, n, kw, &off)) {
			str_ncopy(arg, size, p + off, n - off);
			return arg;
		}
		p += n + (nl != NULL);
	}
	return NULL;
}
