/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: the sendmail command line (sendmail_args.h); any local
 *	user (or a web application) chooses these words.
 *
 *	Input: the argument words separated by NUL bytes (argv[0] is
 *	"sendmail"; at most 64 words).
 *
 *	Invariants: 0 means exit_code 0 and an empty error, -1 means
 *	EX_USAGE with a message; on success every recipient is a non-empty
 *	word from argv that does not start with '-' and has no control
 *	byte, the sender is clean and at most SMTP_PATH_MAX, the full name
 *	has no control byte, and the mode is a known one.
 */
#include "fuzz.h"
#include "outbox/sendmail_args.h"

#define FSA_ARGS 64
#define FSA_EX_USAGE 64

static bool
fsa_from_argv(const char *p, char *const *argv, int argc)
{
	for (int i = 1; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static void
fsa_check(const struct sendmail_args *a, char *const *argv, int argc)
{
	FUZZ_ASSERT(a->exit_code == 0 && a->error[0] == '\0');
	FUZZ_ASSERT(a->mode <= SENDMAIL_MODE_NEWALIASES);
	for (size_t i = 0; i < a->nrcpts; i++) {
		const char *r = a->rcpts[i];
		FUZZ_ASSERT(fsa_from_argv(r, argv, argc));
		FUZZ_ASSERT(r[0] != '\0' && r[0] != '-');
		FUZZ_ASSERT(fuzz_no_ctrl(r, strlen(r)));
	}
	if (a->has_sender) {
		FUZZ_ASSERT(a->sender == a->sender_buf);
		size_t sl = strlen(a->sender);
		FUZZ_ASSERT(sl <= SMTP_PATH_MAX && fuzz_no_ctrl(a->sender, sl));
	}
	if (a->full_name != NULL) {
		size_t fl = strlen(a->full_name);
		FUZZ_ASSERT(fl <= SENDMAIL_NAME_MAX);
		FUZZ_ASSERT(fuzz_no_ctrl(a->full_name, fl));
	}
}

static void
fuzz_sendmail_args(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	char *argv[FSA_ARGS + 2];
	int argc = 0;
	argv[argc++] = strdup("sendmail");
	while (in.n > 0 && argc <= FSA_ARGS)
		argv[argc++] = fuzz_field(&in, 0, NULL);
	argv[argc] = NULL;
	struct sendmail_args *a = malloc(sizeof(*a));
	if (a == NULL || argv[0] == NULL)
		abort();
	memset(a, 0xa5, sizeof(*a));
	if (sendmail_args_parse(a, argc, argv) == 0) {
		fsa_check(a, argv, argc);
	} else {
		FUZZ_ASSERT(a->exit_code == FSA_EX_USAGE);
		FUZZ_ASSERT(memchr(a->error, '\0', sizeof(a->error)) &&
			    a->error[0] != '\0');
	}
	free(a);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
}

FUZZ_ENTRY(fuzz_sendmail_args)
