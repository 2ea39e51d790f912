/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Tokenizer for listener command lines. It only finds the pieces (verb,
 *	path, parameters) and checks their shape; what a parameter means and
 *	whether an address is valid is decided by the server and addr.c.
 *	Results point into the caller's line, so a token never outlives it.
 */
#include <string.h>

#include "outbox/smtp_cmd.h"
#include "outbox/str.h"

static bool
cmd_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

void
smtp_cmd_split(const char *line, size_t n, const char **verb, size_t *vlen,
	       const char **arg, size_t *alen)
{
	size_t i = 0;
	while (i < n && line[i] != ' ')
		i++;
	*verb = line;
	*vlen = i;
	while (i < n && line[i] == ' ')
		i++;
	size_t end = n;
	while (end > i && line[end - 1] == ' ')
		end--;
	*arg = line + i;
	*alen = end - i;
}

bool
smtp_cmd_is(const char *p, size_t n, const char *word)
{
	return n == strlen(word) && str_prefix_ci(p, n, word);
}

/* Index just past the '>' closing the path that starts at p[0] == '<'. */
static size_t
cmd_path_end(const char *p, size_t n)
{
	bool quoted = false;
	for (size_t i = 1; i < n; i++) {
		if (quoted && p[i] == '\\') {
			i++; /* quoted-pair: skip the escaped byte */
			continue;
		}
		if (p[i] == '"')
			quoted = !quoted;
		else if (p[i] == '>' && !quoted)
			return i + 1;
	}
	return 0;
}

/* esmtp-value: 1*(%d33-60 / %d62-126), UTF-8 allowed (RFC 6531 3.3). */
static bool
cmd_value_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '=' || c < 33 || c == 0x7f)
			return false;
	}
	return true;
}

static enum smtp_cmd_status
cmd_parse_param(const char *p, size_t n, struct smtp_param *prm)
{
	const char *eq = memchr(p, '=', n);
	size_t klen = eq ? (size_t)(eq - p) : n;
	if (klen == 0 || !cmd_is_alnum((unsigned char)p[0]))
		return CMD_E_PARAM;
	for (size_t i = 1; i < klen; i++)
		if (!cmd_is_alnum((unsigned char)p[i]) && p[i] != '-')
			return CMD_E_PARAM;
	prm->key = p;
	prm->klen = klen;
	prm->val = NULL;
	prm->vlen = 0;
	if (eq != NULL) {
		prm->val = eq + 1;
		prm->vlen = n - klen - 1;
		if (!cmd_value_ok(prm->val, prm->vlen))
			return CMD_E_PARAM;
	}
	return CMD_OK;
}

static enum smtp_cmd_status
cmd_parse_params(const char *p, size_t n, struct smtp_cmd_path *out)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		if (i == n)
			break;
		size_t j = i;
		while (j < n && p[j] != ' ')
			j++;
		if (out->nparams == SMTP_CMD_MAX_PARAMS)
			return CMD_E_TOO_MANY;
		enum smtp_cmd_status st =
			cmd_parse_param(p + i, j - i, &out->params[out->nparams]);
		if (st != CMD_OK)
			return st;
		out->nparams++;
		i = j;
	}
	return CMD_OK;
}

enum smtp_cmd_status
smtp_cmd_parse_path(const char *arg, size_t n, const char *prefix,
		    struct smtp_cmd_path *out)
{
	memset(out, 0, sizeof(*out));
	size_t k = strlen(prefix);
	if (!str_prefix_ci(arg, n, prefix))
		return CMD_E_SYNTAX;
	size_t i = k;
	while (i < n && arg[i] == ' ')
		i++;
	if (i >= n || arg[i] != '<')
		return CMD_E_SYNTAX;
	size_t end = cmd_path_end(arg + i, n - i);
	if (end == 0)
		return CMD_E_SYNTAX;
	out->path = arg + i + 1;
	out->plen = end - 2;
	i += end;
	if (i < n && arg[i] != ' ')
		return CMD_E_SYNTAX; /* "<a@b>junk" */
	return cmd_parse_params(arg + i, n - i, out);
}

static int
cmd_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461: hexchar is uppercase only */
}

int
smtp_cmd_xtext_decode(const char *in, size_t n, char *out, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (n - i < 3)
				return -1;
			int hi = cmd_hexval(in[i + 1]), lo = cmd_hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c < 0x20 || c == 0x7f)
				return -1;
		} else if (c < 0x21 || c > 0x7e || c == '=') {
			return -1;
		}
		if (k + 1 >= size)
			return -1;
		out[k++] = (char)c;
	}
	if (size == 0)
		return -1;
	out[k] = '\0';
	return 0;
}
