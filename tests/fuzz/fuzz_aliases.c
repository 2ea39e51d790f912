/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the /etc/aliases parser and expander (aliases.h).
 *
 *	Input: aliases file bytes (NULs included).
 *
 *	Invariants: never a crash; entries sorted by lower-case name,
 *	unique, each with at least one target and none refused (no |cmd,
 *	/file, :include:); warnings sorted by line and formattable;
 *	expansion of every entry name and of a few fixed names either fails
 *	with -ELOOP / -E2BIG or gives 1..ALIASES_RESULT_MAX addresses
 *	without exact duplicates, none a command, file or include.
 */
#include <ctype.h>
#include <errno.h>
#include <strings.h>

#include "fuzz.h"
#include "outbox/aliases.h"

/*
 * A command, file or include, behind a backslash and/or whole-target
 * quotes ("/x"@host.test is an address with a quoted local part).
 */
static bool
fal_refused(const char *t)
{
	size_t n = strlen(t);
	if (n > 0 && t[0] == '\\') {
		t++;
		n--;
	}
	if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
		t++;
		n -= 2;
	}
	if (n > 0 && t[0] == '\\') {
		t++;
		n--;
	}
	return (n > 0 && (t[0] == '|' || t[0] == '/')) ||
	       (n >= 9 && strncasecmp(t, ":include:", 9) == 0);
}

static void
fal_expand(const struct aliases *a, const char *name)
{
	struct aliases_result r;
	char err[128];
	int rc = aliases_expand(a, name, &r, err, sizeof(err));
	FUZZ_ASSERT(rc == 0 || rc == -ELOOP || rc == -E2BIG);
	if (rc == 0) {
		FUZZ_ASSERT(r.n >= 1 && r.n <= ALIASES_RESULT_MAX);
		for (size_t i = 0; i < r.n; i++) {
			FUZZ_ASSERT(r.addrs[i] != NULL && !fal_refused(r.addrs[i]));
			for (size_t j = 0; j < i && r.n <= 200; j++)
				FUZZ_ASSERT(strcmp(r.addrs[i], r.addrs[j]) != 0);
		}
	} else {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) && err[0]);
	}
	aliases_result_free(&r);
}

static void
fal_check(const struct aliases *a)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct aliases_entry *e = &a->entries[i];
		for (const char *p = e->name; *p; p++)
			FUZZ_ASSERT(!isupper((unsigned char)*p));
		FUZZ_ASSERT(i == 0 || strcmp(a->entries[i - 1].name, e->name) < 0);
		FUZZ_ASSERT(e->ntargets >= 1);
		for (size_t k = 0; k < e->ntargets; k++)
			FUZZ_ASSERT(!fal_refused(e->targets[k]));
		FUZZ_ASSERT(aliases_find(a, e->name) == e);
	}
	struct buf b;
	buf_init(&b, 1 << 16);
	for (size_t i = 0; i < a->nwarnings; i++) {
		FUZZ_ASSERT(i == 0 || a->warnings[i - 1].line <= a->warnings[i].line);
		size_t len = b.len;
		FUZZ_ASSERT(aliases_warning_format(&a->warnings[i], &b) == 0);
		FUZZ_ASSERT(b.len > len);
		buf_reset(&b);
	}
	buf_free(&b);
}

static void
fuzz_aliases(const uint8_t *data, size_t size)
{
	/* A heap copy of exactly the input, so ASan sees any overread. */
	char *file = malloc(size ? size : 1);
	if (file == NULL)
		abort();
	if (size)
		memcpy(file, data, size);
	struct aliases a;
	aliases_init(&a);
	FUZZ_ASSERT(aliases_parse(&a, file, size) == 0);
	fal_check(&a);
	for (size_t i = 0; i < a.n && i < 50; i++)
		fal_expand(&a, a.entries[i].name);
	static const char *const names[] = { "root", "Postmaster", "a",
					     "x@y.test" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		fal_expand(&a, names[i]);
	FUZZ_ASSERT(aliases_validate(&a) >= 0);
	fal_check(&a);
	aliases_free(&a);
	free(file);
}

FUZZ_ENTRY(fuzz_aliases)
