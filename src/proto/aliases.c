/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	/etc/aliases parser and resolver (see aliases.h for the rules).
 *	Lines are joined into logical entries (continuations), each entry is
 *	split at commas outside quotes, and targets that would run or read
 *	something (:include:, |command, /file) are refused with a warning:
 *	the relay never executes anything on behalf of an alias file.
 *	Entries are sorted once so lookups are a binary search; expansion is
 *	a depth-first walk that marks names on the current path (loop cut)
 *	and names already expanded (shared subtrees are walked once, so the
 *	work is linear in the file even for a: b,b,b / b: c,c,c). Pure code.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "outbox/addr.h"
#include "outbox/aliases.h"
#include "outbox/str.h"

/* Parse state for one logical entry. */
struct aliases_pending {
	struct buf text;
	size_t *seg;      /* offset in text where each physical line starts */
	size_t nseg, segcap;
	size_t line;      /* first line */
	bool active;
};

struct aliases_parser {
	struct aliases *a;
	size_t ecap, wcap;
	int err;
};

void
aliases_init(struct aliases *a)
{
	memset(a, 0, sizeof(*a));
}

static void
aliases_entry_free(struct aliases_entry *e)
{
	for (size_t i = 0; i < e->ntargets; i++)
		free(e->targets[i]);
	free(e->targets);
	free(e->name);
}

void
aliases_free(struct aliases *a)
{
	for (size_t i = 0; i < a->n; i++)
		aliases_entry_free(&a->entries[i]);
	free(a->entries);
	free(a->warnings);
	aliases_init(a);
}

/* Record a formatted warning; on -ENOMEM *err is set and it is lost. */
static void
aliases_warn_to(struct aliases *a, size_t *wcap, int *err, size_t line,
		const char *msg)
{
	if (a->nwarnings == *wcap) {
		size_t ncap = *wcap ? *wcap * 2 : 16;
		void *p = realloc(a->warnings, ncap * sizeof(*a->warnings));
		if (p == NULL) {
			*err = -ENOMEM;
			return;
		}
		a->warnings = p;
		*wcap = ncap;
	}
	struct aliases_warning *w = &a->warnings[a->nwarnings++];
	/* File text goes to logs: keep it printable. */
	str_sanitize(w->msg, sizeof(w->msg), msg, strlen(msg));
	w->line = line;
}

static void __attribute__((format(printf, 3, 4)))
aliases_warn(struct aliases_parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;
	char msg[ALIASES_MSG_MAX];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	aliases_warn_to(p->a, &p->wcap, &p->err, line, msg);
}

/* The physical line of offset off in the pending entry. */
static size_t
aliases_line_at(const struct aliases_pending *pe, size_t off)
{
	size_t i = 0;

	while (i + 1 < pe->nseg && pe->seg[i + 1] <= off)
		i++;
	return pe->line + i;
}

static void
aliases_trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* A local name: 1..SMTP_LOCAL_MAX bytes of dot-atom or quoted string. */
static bool
aliases_name_ok(const char *s, size_t n)
{
	struct addr_path ap;

	return n > 0 && n <= SMTP_LOCAL_MAX &&
	       addr_parse_path(s, n, &ap) == ADDR_OK && !ap.has_domain &&
	       !ap.route;
}

static int
aliases_push_target(struct aliases_entry *e, size_t *cap, const char *s,
		    size_t n)
{
	if (e->ntargets == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		void *p = realloc(e->targets, ncap * sizeof(*e->targets));
		if (p == NULL)
			return -ENOMEM;
		e->targets = p;
		*cap = ncap;
	}
	char *t = str_ndup(s, n);
	if (t == NULL)
		return -ENOMEM;
	e->targets[e->ntargets++] = t;
	return 0;
}

/* Why a target is refused, or NULL when it is usable. */
static const char *
aliases_refuse_reason(const char *s, size_t n)
{
	const char *u = s;
	size_t un = n;
	struct addr_path ap;

	/* Neither the leading backslash of a final name nor quotes (nor
	 * both) turn a command, file or include into a name (fuzz_aliases). */
	if (un > 0 && u[0] == '\\') {
		u++;
		un--;
	}
	if (un >= 2 && u[0] == '"' && u[un - 1] == '"') {
		u++;
		un -= 2;
	}
	if (un > 0 && u[0] == '\\') {
		u++;
		un--;
	}
	if (un > 0 && u[0] == '|')
		return "command target refused";
	if (un > 0 && u[0] == '/')
		return "file target refused";
	if (str_prefix_ci(u, un, ":include:"))
		return ":include: target refused";
	if (s[0] == '\\')
		return aliases_name_ok(s + 1, n - 1) ? NULL : "invalid local name";
	if (memchr(s, '\0', n) != NULL || n > SMTP_PATH_MAX ||
	    addr_parse_path(s, n, &ap) != ADDR_OK || ap.route)
		return "invalid address";
	return NULL;
}

/* Split the right-hand side at commas outside quotes. */
static int
aliases_targets(struct aliases_parser *p, const struct aliases_pending *pe,
		size_t off, struct aliases_entry *e)
{
	const char *s = pe->text.data;
	size_t len = pe->text.len, cap = 0;

	while (off <= len) {
		size_t start = off;
		bool quoted = false;

		for (; off < len && (quoted || s[off] != ','); off++) {
			if (s[off] == '\\' && off + 1 < len)
				off++;
			else if (s[off] == '"')
				quoted = !quoted;
		}
		const char *t = s + start;
		size_t n = off - start;
		aliases_trim(&t, &n);
		size_t line = aliases_line_at(pe, (size_t)(t - s));
		const char *why = n == 0 ? "empty target" :
			quoted ? "unterminated quote" : aliases_refuse_reason(t, n);
		if (why != NULL)
			aliases_warn(p, line, "%s: %.*s", why, (int)(n > 80 ? 80 : n), t);
		else if (aliases_push_target(e, &cap, t, n) != 0)
			return -ENOMEM;
		off++; /* past the comma (or the end) */
	}
	return 0;
}

static int
aliases_add(struct aliases_parser *p, struct aliases_entry *e)
{
	struct aliases *a = p->a;

	if (a->n == p->ecap) {
		size_t ncap = p->ecap ? p->ecap * 2 : 16;
		void *np = realloc(a->entries, ncap * sizeof(*a->entries));
		if (np == NULL)
			return -ENOMEM;
		a->entries = np;
		p->ecap = ncap;
	}
	a->entries[a->n++] = *e;
	return 0;
}

/* Turn a finished logical entry into an aliases_entry. */
static int
aliases_finish(struct aliases_parser *p, struct aliases_pending *pe)
{
	const char *s = pe->text.data ? pe->text.data : "";
	const char *colon = memchr(s, ':', pe->text.len);
	struct aliases_entry e = { NULL, NULL, 0, pe->line };

	pe->active = false;
	if (colon == NULL) {
		aliases_warn(p, pe->line, "missing ':' after the alias name");
		return 0;
	}
	const char *name = s;
	size_t nlen = (size_t)(colon - s);
	aliases_trim(&name, &nlen);
	if (!aliases_name_ok(name, nlen)) {
		aliases_warn(p, pe->line, "invalid alias name: %.*s",
			     (int)(nlen > 80 ? 80 : nlen), name);
		return 0;
	}
	e.name = str_ndup(name, nlen);
	if (e.name == NULL)
		return -ENOMEM;
	for (char *c = e.name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (aliases_targets(p, pe, (size_t)(colon - s) + 1, &e) != 0) {
		aliases_entry_free(&e);
		return -ENOMEM;
	}
	if (e.ntargets == 0) {
		aliases_warn(p, pe->line, "alias %s has no usable target", e.name);
		aliases_entry_free(&e);
		return 0;
	}
	if (aliases_add(p, &e) != 0) {
		aliases_entry_free(&e);
		return -ENOMEM;
	}
	return 0;
}

/* Append one physical line's text to the pending entry. */
static int
aliases_pending_add(struct aliases_pending *pe, const char *s, size_t n)
{
	if (pe->nseg == pe->segcap) {
		size_t ncap = pe->segcap ? pe->segcap * 2 : 8;
		void *np = realloc(pe->seg, ncap * sizeof(*pe->seg));
		if (np == NULL)
			return -ENOMEM;
		pe->seg = np;
		pe->segcap = ncap;
	}
	if (pe->text.len > 0 && buf_append(&pe->text, " ", 1) != 0)
		return -ENOBUFS;
	pe->seg[pe->nseg++] = pe->text.len;
	return buf_append(&pe->text, s, n);
}

/* Handle one physical line (without its line end). */
static int
aliases_line(struct aliases_parser *p, struct aliases_pending *pe,
	     const char *s, size_t n, size_t lineno)
{
	int rc = 0;

	if (memchr(s, '\0', n) != NULL) {
		aliases_warn(p, lineno, "NUL byte, line ignored");
		return 0;
	}
	bool cont = n > 0 && (s[0] == ' ' || s[0] == '\t');
	if (cont) {
		const char *t = s;
		size_t tn = n;
		aliases_trim(&t, &tn);
		if (tn == 0)
			return 0;
		if (!pe->active) {
			aliases_warn(p, lineno, "continuation line outside an entry");
			return 0;
		}
		rc = aliases_pending_add(pe, t, tn);
	} else {
		if (pe->active)
			rc = aliases_finish(p, pe);
		if (rc != 0 || n == 0 || s[0] == '#')
			return rc;
		buf_reset(&pe->text);
		pe->nseg = 0;
		pe->line = lineno;
		pe->active = true;
		rc = aliases_pending_add(pe, s, n);
	}
	if (rc == -ENOBUFS) {
		aliases_warn(p, pe->line, "entry longer than %d bytes, ignored",
			     ALIASES_ENTRY_MAX);
		pe->active = false;
		rc = 0;
	}
	return rc;
}

static int
aliases_cmp_entry(const void *x, const void *y)
{
	const struct aliases_entry *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int
aliases_cmp_warning(const void *x, const void *y)
{
	const struct aliases_warning *a = x, *b = y;

	return a->line < b->line ? -1 : a->line > b->line;
}

/* Sort, then keep the first of each duplicate name. */
static void
aliases_dedupe(struct aliases_parser *p)
{
	struct aliases *a = p->a;
	size_t keep = 0;

	if (a->n > 1)
		qsort(a->entries, a->n, sizeof(*a->entries), aliases_cmp_entry);
	for (size_t i = 0; i < a->n; i++) {
		if (keep > 0 &&
		    strcmp(a->entries[keep - 1].name, a->entries[i].name) == 0) {
			aliases_warn(p, a->entries[i].line,
				     "duplicate alias %s ignored (first at line %zu kept)",
				     a->entries[i].name, a->entries[keep - 1].line);
			aliases_entry_free(&a->entries[i]);
			continue;
		}
		a->entries[keep++] = a->entries[i];
	}
	a->n = keep;
}

static void
aliases_sort_warnings(struct aliases *a)
{
	/* qsort is not stable; warnings on one line keep their order only
	 * loosely, which is fine for messages. */
	if (a->nwarnings > 1)
		qsort(a->warnings, a->nwarnings, sizeof(*a->warnings),
		      aliases_cmp_warning);
}

int
aliases_parse(struct aliases *a, const char *data, size_t len)
{
	struct aliases_parser p = { a, 0, a->nwarnings, 0 };
	struct aliases_pending pe;
	size_t pos = 0, lineno = 0;
	int rc = 0;

	memset(&pe, 0, sizeof(pe));
	buf_init(&pe.text, ALIASES_ENTRY_MAX);
	while (rc == 0 && p.err == 0 && pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		size_t n = end - pos;

		if (n > 0 && data[pos + n - 1] == '\r')
			n--;
		rc = aliases_line(&p, &pe, data + pos, n, ++lineno);
		pos = end + 1;
	}
	if (rc == 0 && p.err == 0 && pe.active)
		rc = aliases_finish(&p, &pe);
	buf_free(&pe.text);
	free(pe.seg);
	if (rc == 0 && p.err == 0)
		aliases_dedupe(&p);
	aliases_sort_warnings(a);
	return rc != 0 ? rc : p.err;
}

static long
aliases_index(const struct aliases *a, const char *name)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcasecmp(name, a->entries[mid].name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

const struct aliases_entry *
aliases_find(const struct aliases *a, const char *name)
{
	long i = aliases_index(a, name);

	return i < 0 ? NULL : &a->entries[i];
}

/* ---- expansion ---- */

enum { MARK_NONE, MARK_PATH, MARK_DONE };

struct aliases_walk {
	const struct aliases *a;
	unsigned char *mark; /* per entry */
	struct aliases_result *out;
	size_t cap;
	char *err;
	size_t errsize;
};

static void __attribute__((format(printf, 2, 3)))
aliases_err(struct aliases_walk *w, const char *fmt, ...)
{
	va_list ap;
	char raw[ALIASES_MSG_MAX];

	if (w->err == NULL || w->errsize == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	str_sanitize(w->err, w->errsize, raw, strlen(raw));
}

/* Same final address? Local names ignore case; full addresses ignore
 * the case of the domain only. */
static bool
aliases_same(const char *x, const char *y)
{
	const char *ax = strrchr(x, '@'), *ay = strrchr(y, '@');

	if (ax == NULL || ay == NULL)
		return ax == ay && strcasecmp(x, y) == 0;
	return ax - x == ay - y && memcmp(x, y, (size_t)(ax - x)) == 0 &&
	       strcasecmp(ax, ay) == 0;
}

static int
aliases_emit(struct aliases_walk *w, const char *addr)
{
	struct aliases_result *r = w->out;

	for (size_t i = 0; i < r->n; i++)
		if (aliases_same(r->addrs[i], addr))
			return 0;
	if (r->n >= ALIASES_RESULT_MAX) {
		aliases_err(w, "more than %d addresses", ALIASES_RESULT_MAX);
		return -E2BIG;
	}
	if (r->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 8;
		void *p = realloc(r->addrs, ncap * sizeof(*r->addrs));
		if (p == NULL)
			return -ENOMEM;
		r->addrs = p;
		w->cap = ncap;
	}
	char *c = str_ndup(addr, strlen(addr));
	if (c == NULL)
		return -ENOMEM;
	r->addrs[r->n++] = c;
	return 0;
}

/* Has an '@' outside a quoted string: a final address. */
static bool
aliases_has_domain(const char *s)
{
	bool quoted = false;

	for (; *s; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (*s == '@' && !quoted)
			return true;
	}
	return false;
}

static int
aliases_walk_name(struct aliases_walk *w, const char *name, size_t depth)
{
	long i = aliases_index(w->a, name);

	if (i < 0)
		return aliases_emit(w, name);
	if (w->mark[i] == MARK_DONE)
		return 0; /* expanded already; its results are in */
	if (depth >= ALIASES_DEPTH_MAX) {
		aliases_err(w, "aliases nested deeper than %d at %s",
			    ALIASES_DEPTH_MAX, name);
		return -ELOOP;
	}
	const struct aliases_entry *e = &w->a->entries[i];
	w->mark[i] = MARK_PATH;
	for (size_t t = 0; t < e->ntargets; t++) {
		const char *tg = e->targets[t];
		long j;
		int rc;

		if (tg[0] == '\\')
			rc = aliases_emit(w, tg + 1);
		else if (aliases_has_domain(tg))
			rc = aliases_emit(w, tg);
		else if ((j = aliases_index(w->a, tg)) >= 0 &&
			 w->mark[j] == MARK_PATH) {
			/* Back at a name being expanded: it is final. */
			if (j != i)
				w->out->loop = true;
			rc = aliases_emit(w, tg);
		} else {
			rc = aliases_walk_name(w, tg, depth + 1);
		}
		if (rc != 0)
			return rc;
	}
	w->mark[i] = MARK_DONE;
	return 0;
}

int
aliases_expand(const struct aliases *a, const char *local_name,
	       struct aliases_result *out, char *err, size_t errsize)
{
	struct aliases_walk w = { a, NULL, out, 0, err, errsize };
	int rc;

	memset(out, 0, sizeof(*out));
	if (err != NULL && errsize > 0)
		err[0] = '\0';
	if (local_name[0] == '\\')
		return aliases_emit(&w, local_name + 1);
	if (aliases_has_domain(local_name) || a->n == 0)
		return aliases_emit(&w, local_name);
	w.mark = calloc(a->n, 1);
	if (w.mark == NULL)
		return -ENOMEM;
	rc = aliases_walk_name(&w, local_name, 0);
	free(w.mark);
	if (rc == 0 && out->loop)
		aliases_err(&w, "alias loop from %s cut (the looping name is kept as final)", local_name);
	return rc;
}

void
aliases_result_free(struct aliases_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->addrs[i]);
	free(r->addrs);
	memset(r, 0, sizeof(*r));
}

int
aliases_validate(struct aliases *a)
{
	size_t wcap = a->nwarnings;
	int err = 0;

	for (size_t i = 0; i < a->n && err == 0; i++) {
		struct aliases_result r;
		char why[ALIASES_MSG_MAX];
		int rc = aliases_expand(a, a->entries[i].name, &r, why, sizeof(why));

		if (rc == -ENOMEM)
			err = -ENOMEM;
		else if (rc != 0 || r.loop)
			aliases_warn_to(a, &wcap, &err, a->entries[i].line, why);
		aliases_result_free(&r);
	}
	aliases_sort_warnings(a);
	return err != 0 ? err : (int)a->nwarnings;
}

int
aliases_warning_format(const struct aliases_warning *w, struct buf *out)
{
	return buf_printf(out, "%zu: %s", w->line, w->msg);
}
