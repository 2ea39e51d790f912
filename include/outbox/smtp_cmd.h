/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_CMD_H
#define OUTBOX_SMTP_CMD_H
/*
 * Command line tokenizing for the listener (RFC 5321 4.1.1, 4.1.2): the
 * verb, the "FROM:<path>" / "TO:<path>" argument with its ESMTP
 * parameters, and xtext (RFC 3461 4). Every function works on explicit
 * lengths and returns pointers into the caller's line; nothing is copied
 * or allocated. Pure code.
 */
#include <stdbool.h>
#include <stddef.h>

#define SMTP_CMD_MAX_PARAMS 16

struct smtp_param {
	const char *key;   /* keyword: ALPHA/DIGIT then ALPHA/DIGIT/'-' */
	size_t klen;
	const char *val;   /* NULL when there is no '=' */
	size_t vlen;       /* may be 0 for "KEY=" */
};

struct smtp_cmd_path {
	const char *path;  /* between the brackets */
	size_t plen;
	struct smtp_param params[SMTP_CMD_MAX_PARAMS];
	size_t nparams;
};

enum smtp_cmd_status {
	CMD_OK = 0,
	CMD_E_SYNTAX,      /* not "<prefix><path> [params]" */
	CMD_E_PARAM,       /* a malformed parameter */
	CMD_E_TOO_MANY,    /* more than SMTP_CMD_MAX_PARAMS parameters */
};

/*
 * Split a line (without its CRLF) into verb and argument. The verb ends
 * at the first space; the argument starts after the following spaces and
 * has trailing spaces removed (alen may be 0).
 */
void smtp_cmd_split(const char *line, size_t n, const char **verb,
		    size_t *vlen, const char **arg, size_t *alen);

/* Case-insensitive equality of p[0..n) and the NUL-terminated word. */
bool smtp_cmd_is(const char *p, size_t n, const char *word);

/*
 * Parse "FROM:<path> params" (prefix "FROM:") or "TO:<path> params".
 * Spaces after the colon are tolerated (common client behaviour); a path
 * without angle brackets is CMD_E_SYNTAX. The closing '>' is found with
 * quoted strings in mind, so '>' inside "..." does not end the path.
 */
enum smtp_cmd_status smtp_cmd_parse_path(const char *arg, size_t n,
					 const char *prefix,
					 struct smtp_cmd_path *out);

/*
 * Decode xtext ("+XX" uppercase hex, printable ASCII otherwise) into
 * out[size]; NUL-terminated. -1 for bad syntax, a decoded control byte,
 * or no room.
 */
int smtp_cmd_xtext_decode(const char *in, size_t n, char *out, size_t size);

#endif
