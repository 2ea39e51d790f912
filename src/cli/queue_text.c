/* SPDX-License-Identifier: MIT */
/*
 * `outbox queue` human output, in the spirit of Postfix's mailq: one
 * block per message,
 *
 *     0123456789ABCDEF!     1234  2026-01-01 12:00:00  sender@example.org
 *         attempts 3, next 2026-01-01 12:05:00, held
 *         pending  rcpt@example.com
 *                  (451 4.3.0 try again later)
 *
 * then "-- N KiB in M requests." (or "Mail queue is empty"). The mark
 * after the id is '*' while a delivery holds the message, '!' when it is
 * held, else a space. Times are local. Every string came from outside,
 * so control bytes other than TAB are printed as '?'.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "queue_priv.h"

void
qcli_print_safe(FILE *f, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; u[i] != '\0'; i++) {
		if ((u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f) {
			fputc('?', f);
		} else if (u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
			fputc('?', f); /* a C1 control in UTF-8 */
			i++;
		} else {
			fputc(u[i], f);
		}
	}
}

static const char *
qcli_time(int64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, size, "@%" PRId64, t);
	return out;
}

static void
qcli_text_status(FILE *f, const struct envelope *e, bool busy)
{
	bool held = e->flags & ENV_F_HELD;
	if (e->attempts == 0 && !held && !busy)
		return;
	char when[64];
	fprintf(f, "    attempts %" PRIu32, e->attempts);
	if (!held && !busy)
		fprintf(f, ", next %s",
			e->next_attempt > 0
				? qcli_time(e->next_attempt, when, sizeof(when))
				: "now");
	if (held)
		fputs(", held", f);
	if (busy)
		fputs(", being delivered", f);
	fputc('\n', f);
}

static void
qcli_text_rcpts(FILE *f, const struct envelope *e, const char *indent)
{
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		fprintf(f, "%s%-8s ", indent, control_state_name(r->state));
		qcli_print_safe(f, r->addr);
		fputc('\n', f);
		if (r->last_error != NULL && r->state != RCPT_SENT) {
			fprintf(f, "%s%-8s (", indent, "");
			qcli_print_safe(f, r->last_error);
			fputs(")\n", f);
		}
	}
}

void
qcli_text_msg(FILE *f, struct qcli_list *l, const struct envelope *e,
	      bool busy)
{
	char when[64];
	char mark = busy ? '*' : (e->flags & ENV_F_HELD) ? '!' : ' ';
	if (l->count > 0)
		fputc('\n', f);
	fprintf(f, "%s%c %8" PRIu64 "  %s  ", e->id, mark, e->msg_size,
		qcli_time(e->arrival, when, sizeof(when)));
	if (e->sender == NULL || e->sender[0] == '\0')
		fputs("<>", f);
	else
		qcli_print_safe(f, e->sender);
	fputc('\n', f);
	qcli_text_status(f, e, busy);
	qcli_text_rcpts(f, e, "    ");
	l->count++;
	l->bytes += e->msg_size;
}

void
qcli_text_summary(FILE *f, const struct qcli_list *l)
{
	if (l->count == 0) {
		fputs("Mail queue is empty\n", f);
		return;
	}
	fprintf(f, "\n-- %" PRIu64 " KiB in %zu request%s.\n",
		(l->bytes + 1023) / 1024, l->count, l->count == 1 ? "" : "s");
}

static void
qcli_text_headers(FILE *f, const char *h, bool truncated)
{
	fputs("Headers:\n", f);
	while (*h != '\0') {
		const char *nl = strchr(h, '\n');
		size_t n = nl ? (size_t)(nl - h) : strlen(h);
		size_t k = n > 0 && h[n - 1] == '\r' ? n - 1 : n;
		char line[1024];
		/* Long header lines are cut for the terminal, not folded. */
		size_t c = k < sizeof(line) - 1 ? k : sizeof(line) - 1;
		memcpy(line, h, c);
		line[c] = '\0';
		fputs("    ", f);
		qcli_print_safe(f, line);
		fputs(c < k ? " [...]\n" : "\n", f);
		h += nl ? n + 1 : n;
	}
	if (truncated)
		fprintf(f, "    [header section longer than %d KiB: cut]\n",
			CONTROL_HEADERS_MAX / 1024);
}

void
qcli_text_show(FILE *f, const struct control_msg *m)
{
	const struct envelope *e = &m->env;
	char when[64];
	fprintf(f, "Queue ID:   %s\n", e->id);
	fputs("Sender:     ", f);
	if (e->sender == NULL || e->sender[0] == '\0')
		fputs("<>", f);
	else
		qcli_print_safe(f, e->sender);
	fprintf(f, "\nSize:       %" PRIu64 " bytes\n", e->msg_size);
	fprintf(f, "Arrival:    %s\n", qcli_time(e->arrival, when, sizeof(when)));
	fprintf(f, "Attempts:   %" PRIu32 "\n", e->attempts);
	if (m->busy)
		fputs("Status:     being delivered\n", f);
	else if (e->flags & ENV_F_HELD)
		fputs("Status:     held (released with: outbox queue release)\n",
		      f);
	else
		fprintf(f, "Status:     queued, next attempt %s\n",
			e->next_attempt > 0
				? qcli_time(e->next_attempt, when, sizeof(when))
				: "now");
	fputs("Recipients:\n", f);
	qcli_text_rcpts(f, e, "    ");
	if (m->headers != NULL)
		qcli_text_headers(f, m->headers, m->headers_truncated);
	else
		fputs("Headers:    (message file not readable)\n", f);
}
