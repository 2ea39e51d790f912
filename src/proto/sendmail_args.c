/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The sendmail(8) command line, parsed as POSIX getopt would (bundled
 *	flags, glued or separate option arguments, stop at "--" or the first
 *	operand) but without getopt's globals, so it is pure and testable.
 *	Anything that could change a path or load other configuration is
 *	refused rather than ignored (G2): an ignored "-oQ/tmp" would hide a
 *	PHPMailer-style injection (CVE-2016-10033) instead of reporting it.
 *	The option set is sendmail's and Postfix's; see sendmail_args.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "outbox/addr.h"
#include "outbox/sendmail_args.h"
#include "outbox/str.h"

/* Enough of a refused argument to name it in the message. */
#define SM_SHOW_MAX 64

struct sm_state {
	struct sendmail_args *a;
	int argc;
	char *const *argv;
	int i; /* index of the word being parsed */
};

static int
sm_fail(struct sendmail_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
sm_fail(struct sendmail_args *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, ap);
	va_end(ap);
	a->exit_code = EX_USAGE;
	return -1;
}

/* Printable form of user text for an error message. */
static const char *
sm_show(char *dst, size_t size, const char *s)
{
	return str_sanitize(dst, size, s, strlen(s));
}

static bool
sm_has_ctrl(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/* Letters that take no argument and only set a flag or are ignored. */
static bool
sm_flag(struct sendmail_args *a, char c)
{
	switch (c) {
	case 't':
		a->extract_rcpts = true;
		return true;
	case 'i':
		a->ignore_dots = true;
		return true;
	case 'v':
		a->verbose = true;
		return true;
	case 'I':
		a->mode = SENDMAIL_MODE_NEWALIASES;
		return true;
	case 'm': case 'n': case 'U': case 'G': case 'c': case 's':
	case 'x': case '7': case '8':
		return true;
	default:
		return false;
	}
}

/* Letters that take an argument (glued or the next word). */
static bool
sm_takes_arg(char c)
{
	return c != '\0' && strchr("ABbCdeFfhLMNOopRrVX", c) != NULL;
}

static int
sm_sender(struct sendmail_args *a, char c, const char *arg)
{
	char show[SM_SHOW_MAX];
	size_t n = strlen(arg);

	if (sm_has_ctrl(arg))
		return sm_fail(a, "sender address given with -%c contains a "
			       "control character", c);
	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>') {
		arg++;
		n -= 2;
	}
	if (n > SMTP_PATH_MAX)
		return sm_fail(a, "sender address given with -%c is longer "
			       "than %d octets", c, SMTP_PATH_MAX);
	struct addr_path path;
	enum addr_status st = addr_parse_path(arg, n, &path);
	if (st != ADDR_OK)
		return sm_fail(a, "invalid sender address given with -%c: %s "
			       "(%s)", c, sm_show(show, sizeof(show), arg),
			       addr_status_str(st));
	if (str_ncopy(a->sender_buf, sizeof(a->sender_buf), arg, n) < 0)
		return sm_fail(a, "sender address too long");
	a->sender = a->sender_buf;
	a->has_sender = true;
	return 0;
}

static int
sm_full_name(struct sendmail_args *a, const char *arg)
{
	if (sm_has_ctrl(arg))
		return sm_fail(a, "full name given with -F contains a control "
			       "character");
	if (strlen(arg) > SENDMAIL_NAME_MAX)
		return sm_fail(a, "full name given with -F is longer than %d "
			       "octets", SENDMAIL_NAME_MAX);
	a->full_name = arg;
	return 0;
}

static int
sm_body(struct sendmail_args *a, const char *arg)
{
	char show[SM_SHOW_MAX];

	if (strcasecmp(arg, "7BIT") == 0)
		a->body = SENDMAIL_BODY_7BIT;
	else if (strcasecmp(arg, "8BITMIME") == 0)
		a->body = SENDMAIL_BODY_8BITMIME;
	else
		return sm_fail(a, "-B %s: body type must be 7BIT or 8BITMIME",
			       sm_show(show, sizeof(show), arg));
	return 0;
}

static int
sm_mode(struct sendmail_args *a, const char *arg)
{
	char show[SM_SHOW_MAX];

	if (strcmp(arg, "m") == 0)
		a->mode = SENDMAIL_MODE_DELIVER;
	else if (strcmp(arg, "s") == 0)
		a->mode = SENDMAIL_MODE_SMTP;
	else if (strcmp(arg, "p") == 0)
		a->mode = SENDMAIL_MODE_LIST;
	else if (strcmp(arg, "i") == 0)
		a->mode = SENDMAIL_MODE_NEWALIASES;
	else
		return sm_fail(a, "-b%s: mode not supported (use -bm, -bs, "
			       "-bp or -bi)", sm_show(show, sizeof(show), arg));
	return 0;
}

/* -o<letter><value>: the short sendmail options. */
static int
sm_short_option(struct sendmail_args *a, const char *arg)
{
	static const char *const ignored[] = {
		"em", "ee", "ep", "eq", "ew", "di", "db", "dq", "dd", "m",
	};
	char show[SM_SHOW_MAX];

	if (strcmp(arg, "i") == 0) {
		a->ignore_dots = true;
		return 0;
	}
	for (size_t k = 0; k < sizeof(ignored) / sizeof(ignored[0]); k++)
		if (strcmp(arg, ignored[k]) == 0)
			return 0;
	if (arg[0] == 'Q')
		return sm_fail(a, "-o%s: setting the queue directory is not "
			       "allowed", sm_show(show, sizeof(show), arg));
	return sm_fail(a, "-o%s: option not allowed (allowed: -oi -oem -oee "
		       "-oep -oeq -oew -odi -odb -odq -odd -om)",
		       sm_show(show, sizeof(show), arg));
}

static bool
sm_bool_true(const char *v)
{
	return v[0] == '\0' || v[0] == 't' || v[0] == 'T' || v[0] == 'y' ||
	       v[0] == 'Y' || v[0] == '1';
}

/* -O Key=value: the long sendmail options. */
static int
sm_long_option(struct sendmail_args *a, const char *arg)
{
	char show[SM_SHOW_MAX];
	const char *eq = strchr(arg, '=');
	size_t klen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	const char *val = eq != NULL ? eq + 1 : "";

	if (klen == 10 && strncasecmp(arg, "IgnoreDots", klen) == 0) {
		a->ignore_dots = sm_bool_true(val);
		return 0;
	}
	if ((klen == 9 && strncasecmp(arg, "ErrorMode", klen) == 0) ||
	    (klen == 12 && strncasecmp(arg, "DeliveryMode", klen) == 0) ||
	    (klen == 5 && strncasecmp(arg, "MeToo", klen) == 0))
		return 0;
	return sm_fail(a, "-O %s: option not allowed (allowed: IgnoreDots, "
		       "ErrorMode, DeliveryMode, MeToo)",
		       sm_show(show, sizeof(show), arg));
}

/* Letters with an argument; arg is never NULL here. */
static int
sm_with_arg(struct sendmail_args *a, char c, const char *arg)
{
	char show[SM_SHOW_MAX];

	switch (c) {
	case 'f': case 'r':
		return sm_sender(a, c, arg);
	case 'F':
		return sm_full_name(a, arg);
	case 'B':
		return sm_body(a, arg);
	case 'b':
		return sm_mode(a, arg);
	case 'o':
		return sm_short_option(a, arg);
	case 'O':
		return sm_long_option(a, arg);
	case 'A':
		if (strcmp(arg, "m") == 0 || strcmp(arg, "c") == 0)
			return 0;
		return sm_fail(a, "-A%s: only -Am and -Ac are accepted",
			       sm_show(show, sizeof(show), arg));
	case 'N': case 'R': case 'V': case 'L': case 'h': case 'p': case 'e':
		return 0; /* DSN, envid, syslog label, hops: no effect here */
	case 'C':
		return sm_fail(a, "-C: another configuration file cannot be "
			       "given on the command line");
	case 'X':
		return sm_fail(a, "-X: traffic logging is not supported");
	case 'd':
		return sm_fail(a, "-d: debug mode is not supported");
	default: /* 'M' */
		return sm_fail(a, "-%c: option not supported", c);
	}
}

/* -q, -q<time> (digits with s/m/h/d/w units); -qR, -qS... refused. */
static int
sm_flush(struct sendmail_args *a, const char *rest)
{
	char show[SM_SHOW_MAX];

	a->mode = SENDMAIL_MODE_FLUSH;
	if (rest[0] == '\0')
		return 0;
	if (rest[0] < '0' || rest[0] > '9')
		return sm_fail(a, "-q%s: only -q and -q<time> are supported",
			       sm_show(show, sizeof(show), rest));
	for (const char *p = rest; *p != '\0'; p++)
		if ((*p < '0' || *p > '9') && strchr("smhdw", *p) == NULL)
			return sm_fail(a, "-q%s: bad queue interval",
				       sm_show(show, sizeof(show), rest));
	a->flush_interval = rest;
	return 0;
}

/* One word starting with '-' (not "--"); may advance s->i for an argument. */
static int
sm_word(struct sm_state *s)
{
	const char *w = s->argv[s->i];

	for (size_t j = 1; w[j] != '\0'; j++) {
		char c = w[j];
		if (c == 'q')
			return sm_flush(s->a, w + j + 1);
		if (sm_flag(s->a, c))
			continue;
		if (!sm_takes_arg(c)) {
			char show[SM_SHOW_MAX];
			return sm_fail(s->a, "-%s: unknown option",
				       sm_show(show, sizeof(show), w + j));
		}
		if (w[j + 1] != '\0')
			return sm_with_arg(s->a, c, w + j + 1);
		if (s->i + 1 >= s->argc)
			return sm_fail(s->a, "-%c: option requires an argument",
				       c);
		s->i++;
		return sm_with_arg(s->a, c, s->argv[s->i]);
	}
	return 0;
}

/* G1: an operand may never look like an option or carry control bytes. */
static int
sm_check_rcpt(struct sendmail_args *a, const char *r)
{
	char show[SM_SHOW_MAX];

	if (r[0] == '-')
		return sm_fail(a, "recipient %s looks like an option; options "
			       "in recipient arguments are refused",
			       sm_show(show, sizeof(show), r));
	if (r[0] == '\0')
		return sm_fail(a, "empty recipient argument");
	if (sm_has_ctrl(r))
		return sm_fail(a, "recipient %s contains a control character",
			       sm_show(show, sizeof(show), r));
	return 0;
}

int
sendmail_args_parse(struct sendmail_args *a, int argc, char *const argv[])
{
	struct sm_state s = { .a = a, .argc = argc, .argv = argv, .i = 1 };

	memset(a, 0, sizeof(*a));
	for (; s.i < argc; s.i++) {
		const char *w = argv[s.i];
		if (w[0] != '-' || w[1] == '\0')
			break; /* first operand: no permutation (G1) */
		if (strcmp(w, "--") == 0) {
			s.i++;
			break;
		}
		if (sm_word(&s) < 0)
			return -1;
	}
	if (s.i > argc)
		s.i = argc;
	a->rcpts = argv + s.i;
	a->nrcpts = (size_t)(argc - s.i);
	for (size_t k = 0; k < a->nrcpts; k++)
		if (sm_check_rcpt(a, a->rcpts[k]) < 0)
			return -1;
	return 0;
}
