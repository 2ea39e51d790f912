/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_FUZZ_H
#define OUTBOX_FUZZ_H
/*
 * Shared helpers of the fuzz harnesses (tests/fuzz/fuzz_*.c). Each
 * harness is one function fuzz_<target>(data, size) that libFuzzer calls
 * through LLVMFuzzerTestOneInput and that tests/unit/test_fuzz_regress.c
 * calls on every saved crash input and seed (it #includes the harness
 * files with FUZZ_REPLAY defined, so everything here is static and every
 * harness prefixes its own static names).
 *
 * A broken invariant aborts with file:line, which libFuzzer reports as a
 * crash and saves the input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond)                                                \
	do {                                                             \
		if (!(cond))                                             \
			fuzz_fail(__FILE__, __LINE__, #cond);            \
	} while (0)

#ifdef FUZZ_REPLAY
#define FUZZ_ENTRY(fn)
#else
/* The libFuzzer entry point of one target. */
#define FUZZ_ENTRY(fn)                                                   \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);    \
	int                                                              \
	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)         \
	{                                                                \
		fn(data, size);                                          \
		return 0;                                                \
	}
#endif

static void fuzz_fail(const char *file, int line, const char *what)
	__attribute__((noreturn, unused));

static void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
	abort();
}

/* A cursor over the input: choices are taken from the front. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline unsigned
fuzz_byte(struct fuzz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

/*
 * The next field up to (not including) the byte sep, which is consumed;
 * the whole rest when there is no sep. Returns a NUL-terminated heap
 * copy (free it) and its length in *len (embedded NULs possible).
 */
static inline char *
fuzz_field(struct fuzz_in *in, uint8_t sep, size_t *len)
{
	const uint8_t *end = memchr(in->p, sep, in->n);
	size_t n = end ? (size_t)(end - in->p) : in->n;
	char *s = malloc(n + 1);
	if (s == NULL)
		abort();
	if (n > 0)
		memcpy(s, in->p, n);
	s[n] = '\0';
	in->p += n;
	in->n -= n;
	if (end != NULL) {
		in->p++;
		in->n--;
	}
	if (len != NULL)
		*len = n;
	return s;
}

/* Deterministic pseudo-random numbers (splitmix64) for split points. */
static inline uint32_t
fuzz_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/*
 * p[0..n) is CRLF lines only: every LF follows a CR and every CR is
 * followed by LF; lines (without CRLF) are at most max octets; the data
 * ends with CRLF unless it is empty. nul_ok allows NUL bytes.
 */
static inline bool
fuzz_crlf_lines(const char *p, size_t n, size_t max, bool nul_ok)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				return false;
			i++;
			col = 0;
			continue;
		}
		if (p[i] == '\n' || (p[i] == '\0' && !nul_ok))
			return false;
		if (++col > max)
			return false;
	}
	return n == 0 || (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n');
}

/* s holds only printable ASCII (and, when nl_ok, LF). */
static inline bool
fuzz_printable(const char *s, size_t n, bool nl_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' && nl_ok)
			continue;
		if (c < 0x20 || c > 0x7e)
			return false;
	}
	return true;
}

/* No C0 control byte or DEL in s[0..n). */
static inline bool
fuzz_no_ctrl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * SMTP replies in p[0..n): CRLF lines of "DDD", "DDD text" or "DDD-text"
 * with a code 200..599, continuation lines keeping the code, the last
 * line final, every line at most max octets without CRLF.
 */
static inline bool
fuzz_smtp_replies(const char *p, size_t n, size_t max)
{
	if (!fuzz_crlf_lines(p, n, max, false))
		return false;
	const char *cont = NULL; /* code of an open multi-line reply */
	for (size_t i = 0; i < n;) {
		const char *eol = memchr(p + i, '\r', n - i);
		size_t len = (size_t)(eol - (p + i));
		const char *l = p + i;
		if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' ||
		    l[1] > '9' || l[2] < '0' || l[2] > '9')
			return false;
		if (len > 3 && l[3] != ' ' && l[3] != '-')
			return false;
		if (cont != NULL && memcmp(cont, l, 3) != 0)
			return false;
		cont = (len > 3 && l[3] == '-') ? l : NULL;
		i += len + 2;
	}
	return cont == NULL;
}

#endif
