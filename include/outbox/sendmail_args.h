/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SENDMAIL_ARGS_H
#define OUTBOX_SENDMAIL_ARGS_H
/*
 * The sendmail(8) command line (issue 5, RELIABILITY.md G1-G3). Pure code:
 * no getopt globals, no I/O; the result points into argv.
 *
 * Parsing follows POSIX getopt as sendmail and Postfix do: bundled flags
 * ("-ti"), an option argument glued or in the next word ("-fa@b", "-f a@b",
 * "-oi" is -o with "i"), and parsing stops at "--" or at the first operand
 * (no GNU permutation), so "-X..." after an address is a recipient.
 *
 * Accepted: -t -i -oi -f/-r ADDR -F NAME -B 7BIT|8BITMIME -v; modes -bm
 * (default), -bs, -bp, -bi/-I, -q and -q<time> (flush once; the interval
 * is recorded, no queue-runner daemon is started).
 * Ignored (with their argument): -m -n -U -G -c -s -x -7 -8, -Am -Ac,
 * -N ARG, -R ARG, -V ARG, -L ARG, -h ARG, -p ARG, -e ARG, and the -o/-O
 * allow-list below.
 * -o allow-list: i (ignore dots), em ee ep eq ew (error mode),
 *   di db dq dd (delivery mode), m (metoo). -O allow-list, key
 *   case-insensitive: IgnoreDots[=bool], ErrorMode=, DeliveryMode=, MeToo.
 * Refused with EX_USAGE (G2): -C -X -d -M, -oQ (queue directory), every
 *   other -o/-O (a setting may name a path), -q with a letter (-qR -qS
 *   -qI -qG ...), -b modes other than m s p i, -A other than m/c, unknown
 *   option letters.
 * Refused sender (G3): control bytes, not RFC 5321 path syntax, longer
 *   than SMTP_PATH_MAX. "<>" and "" give the null sender "". One pair of
 *   angle brackets around the address is removed.
 * Refused full name: control bytes, longer than SENDMAIL_NAME_MAX.
 * Refused recipients (G1): any operand starting with '-', including after
 *   "--" (unlike real sendmail, where it would be a literal local part:
 *   an option hidden in a recipient is always refused), and operands with
 *   control bytes or that are empty.
 */
#include <stdbool.h>
#include <stddef.h>

#include "outbox/limits.h"

#define SENDMAIL_NAME_MAX 256
#define SENDMAIL_ERROR_MAX 256

enum sendmail_mode {
	SENDMAIL_MODE_DELIVER = 0, /* -bm: read a message on stdin */
	SENDMAIL_MODE_SMTP,        /* -bs: SMTP session on stdin/stdout */
	SENDMAIL_MODE_LIST,        /* -bp: mailq */
	SENDMAIL_MODE_FLUSH,       /* -q, -q<time> */
	SENDMAIL_MODE_NEWALIASES,  /* -bi, -I */
};

enum sendmail_body {
	SENDMAIL_BODY_UNSET = 0,
	SENDMAIL_BODY_7BIT,
	SENDMAIL_BODY_8BITMIME,
};

struct sendmail_args {
	enum sendmail_mode mode;
	bool extract_rcpts;            /* -t */
	bool ignore_dots;              /* -i, -oi, -O IgnoreDots */
	bool verbose;                  /* -v */
	bool has_sender;               /* -f or -r given */
	const char *sender;            /* NULL, or sender_buf ("" = null sender) */
	const char *full_name;         /* -F, into argv; NULL if absent */
	enum sendmail_body body;       /* -B */
	const char *flush_interval;    /* -q<time>, into argv; NULL if absent */
	char *const *rcpts;            /* operands, into argv */
	size_t nrcpts;
	int exit_code;                 /* 0, or EX_USAGE on error */
	char error[SENDMAIL_ERROR_MAX]; /* "" or a message naming the option */
	char sender_buf[SMTP_PATH_MAX + 1];
};

/*
 * Parse argv[1..argc); argv[0] is the program name and is skipped (for
 * `outbox send ...` pass the words from "send" on). Returns 0, or -1 with
 * a->exit_code = EX_USAGE and a->error set. argv must outlive a.
 */
int sendmail_args_parse(struct sendmail_args *a, int argc, char *const argv[]);

#endif
