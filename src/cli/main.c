/* SPDX-License-Identifier: MIT */
/*
 * outbox: the command-line tool. Run as `sendmail` or `mailq` (by argv[0])
 * it is the sendmail interface; otherwise the first argument names a
 * subcommand from cli_commands. Exit codes follow sysexits.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv); /* NULL: not built yet */
};

static const struct cli_command cli_commands[] = {
	{ "config", cli_config_main },
	{ "send", cli_send_main },
	{ "queue", cli_queue_main },
	{ "status", cli_status_main },
	{ "newaliases", cli_newaliases_main },
	{ "check", cli_check_main },
};

void
cli_usage(FILE *f)
{
	fprintf(f,
		"usage: outbox config check [-c FILE]\n"
		"       outbox queue [list | show ID | flush [ID] | delete ID | "
		"hold ID | release ID]\n"
		"                    [--json] [-c FILE]\n"
		"       outbox send [sendmail options] [RCPT...]   (reads the "
		"message on stdin)\n"
		"       outbox status [--json] [--check] [--stuck-after "
		"DURATION] [-c FILE]\n"
		"                    (--check exit: 0 ok, 1 queue stuck, 69 "
		"outboxd not running)\n"
		"       outbox newaliases [-c FILE] [ALIASES_FILE]\n"
		"       outbox check mx DOMAIN | smtp HOST[:PORT] | imap "
		"HOST[:PORT] |\n"
		"                    pop3 HOST[:PORT] | relay\n"
		"                    [--json] [--timeout S] [-c FILE] "
		"[--ca-file FILE] [--dns IP[:PORT],...]\n"
		"       outbox --version | help\n"
		"The config file is -c FILE, else $OUTBOX_CONFIG, else "
		"/etc/outbox/outbox.ini.\n"
		"Run as sendmail, mailq or newaliases for the sendmail "
		"interface.\n");
}

static const char *
cli_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

static int
cli_unavailable(const char *what)
{
	fprintf(stderr, "outbox: %s is not built yet\n", what);
	return EX_UNAVAILABLE;
}

static int
cli_dispatch(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0];
	     i++) {
		const struct cli_command *c = &cli_commands[i];
		if (strcmp(argv[0], c->name) != 0)
			continue;
		if (c->run == NULL) {
			char what[64];
			snprintf(what, sizeof what, "'outbox %s'", c->name);
			return cli_unavailable(what);
		}
		return c->run(argc, argv);
	}
	fprintf(stderr, "outbox: unknown command '%s'\n", argv[0]);
	cli_usage(stderr);
	return EX_USAGE;
}

int
main(int argc, char **argv)
{
	const char *self = argc > 0 ? cli_basename(argv[0]) : "outbox";
	if (strcmp(self, "mailq") == 0)
		return cli_mailq_main(argc, argv);
	if (strcmp(self, "sendmail") == 0)
		return cli_send_main(argc, argv);
	if (strcmp(self, "newaliases") == 0)
		return cli_newaliases_main(argc, argv);
	if (argc < 2) {
		cli_usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		printf("outbox %s\n", OUTBOX_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		cli_usage(stdout);
		return 0;
	}
	return cli_dispatch(argc - 1, argv + 1);
}
