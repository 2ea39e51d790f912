/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CLI_QUEUE_PRIV_H
#define OUTBOX_CLI_QUEUE_PRIV_H
/*
 * `outbox queue` / `mailq`, shared by queue.c (arguments, the control
 * socket), queue_text.c (human output) and queue_spool.c (reading the
 * spool directly when outboxd is not running).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "outbox/control.h"
#include "outbox/id.h"

/* Running totals of a listing, for the last line. */
struct qcli_list {
	bool json;
	size_t count;           /* messages shown */
	uint64_t bytes;         /* their sizes */
};

/* Text: one message block of the list. */
void qcli_text_msg(FILE *f, struct qcli_list *l, const struct envelope *e,
		   bool busy);
/* Text: "-- N KiB in M requests." or "Mail queue is empty". */
void qcli_text_summary(FILE *f, const struct qcli_list *l);
/* Text: `show` of one message (headers may be NULL). */
void qcli_text_show(FILE *f, const struct control_msg *m);
/* Print s with control bytes but TAB (and C1 controls) as '?'. */
void qcli_print_safe(FILE *f, const char *s);

/* Messages in the intake log (queue_log.c): 'A' records no 'D' removed,
 * sorted by id; each owns a copy of its encoded envelope and, when
 * loaded for one id (only), of the start of its body. */
struct qcli_logged {
	char id[ID_SIZE];
	char *env;
	size_t env_len;
	char *head;             /* NULL unless loaded with only */
	size_t head_len;        /* at most CONTROL_HEADERS_MAX */
};
struct qcli_log {
	struct qcli_logged *v;
	size_t n, cap;
};
/* Read <spool>/log (logfd): 0 or -errno. only: that id alone, or NULL. */
int qcli_log_load(int logfd, const char *only, struct qcli_log *out);
const struct qcli_logged *qcli_log_find(const struct qcli_log *l,
					const char *id);
void qcli_log_free(struct qcli_log *l);

/* Offline `list` and `show` from <dir>: exit codes. */
int qcli_spool_list(const char *dir, bool json);
int qcli_spool_show(const char *dir, const char *id, bool json);

#endif
