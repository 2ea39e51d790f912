/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_ALIASES_H
#define OUTBOX_ALIASES_H
/*
 * /etc/aliases format ([rewrite] aliases), parsed from memory (the caller
 * reads the file) and expanded. Pure code: nothing is ever executed,
 * included or written.
 *
 * Format (sendmail aliases(5)):
 *   # comment                 a '#' in column 1; comment and blank lines
 *                             end an entry
 *   name: target, target2     name is case-insensitive (stored lowered)
 *     target3                 a line starting with space/tab continues
 *                             the entry above
 *   name: "a b", \name        quoted targets; "\name" is a local name that
 *                             is final (not aliased further), as sendmail
 * Refused targets, each recorded as a warning and skipped: ":include:..."
 * "|command", "/file" (also when quoted), and invalid addresses. An entry
 * left with no usable target is dropped with a warning (its name then has
 * no alias). Duplicate names: warning, the FIRST entry is kept (Postfix
 * postalias/sendmail newaliases warn; first-wins means appending a line
 * can never silently redirect an existing alias).
 * Warnings carry the line number; aliases_warning_format gives
 * "LINE: message" so the caller prints "FILE:LINE: message".
 *
 * Expansion: targets with '@' are final. A local target is looked up again
 * (chains a -> b -> c@d). A name that points back at itself or at a name
 * still being expanded is FINAL, not an error ("root: root, admin@x"
 * keeps root; a -> b -> a gives "a", with loop set so the caller can log
 * it): mail is never lost to a loop. Depth over ALIASES_DEPTH_MAX fails
 * with -ELOOP, more than ALIASES_RESULT_MAX results with -E2BIG. Results
 * are deduplicated (local names case-insensitively, addresses with exact
 * local part and case-insensitive domain), in first-seen order, and local
 * names stay unqualified (the caller qualifies them, or sends names that
 * have no alias to the admin address: see aliases_find).
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/buf.h"

#define ALIASES_DEPTH_MAX 20
#define ALIASES_RESULT_MAX 1000
#define ALIASES_ENTRY_MAX 65536 /* one logical entry, continuations joined */
#define ALIASES_MSG_MAX 200

struct aliases_warning {
	size_t line;                /* 1-based */
	char msg[ALIASES_MSG_MAX];  /* sanitized, no line number */
};

struct aliases_entry {
	char *name;       /* lower case */
	char **targets;   /* mailbox text; "\\name" marks a final local name */
	size_t ntargets;
	size_t line;      /* first line of the entry */
};

struct aliases {
	struct aliases_entry *entries; /* sorted by name */
	size_t n;
	struct aliases_warning *warnings; /* sorted by line */
	size_t nwarnings;
};

struct aliases_result {
	char **addrs;     /* final addresses; local names unqualified */
	size_t n;
	bool loop;        /* a loop was cut (see above) */
};

void aliases_init(struct aliases *a);
/* Parse data[0..len) into a (which must be freshly initialised).
 * 0, or -ENOMEM. Syntax problems are warnings, never a failure. */
int aliases_parse(struct aliases *a, const char *data, size_t len);
void aliases_free(struct aliases *a);

/* The entry for name (case-insensitive), or NULL. */
const struct aliases_entry *aliases_find(const struct aliases *a,
					 const char *name);

/*
 * Expand local_name into out (initialised here; free with
 * aliases_result_free, also after an error). A name without an alias
 * gives itself. A name with '@' is returned as is.
 * 0, -ELOOP (too deep), -E2BIG (too many results), -ENOMEM. On error
 * err (if not NULL) holds a one-line reason.
 */
int aliases_expand(const struct aliases *a, const char *local_name,
		   struct aliases_result *out, char *err, size_t errsize);
void aliases_result_free(struct aliases_result *r);

/*
 * newaliases-style check: expand every entry and add a warning (at the
 * entry's line) for each loop, depth or size failure, then keep warnings
 * sorted by line. Returns a->nwarnings, or -ENOMEM.
 */
int aliases_validate(struct aliases *a);

/* Append "LINE: message" to out. 0 or -ENOBUFS/-ENOMEM. */
int aliases_warning_format(const struct aliases_warning *w, struct buf *out);

#endif
