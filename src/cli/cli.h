/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CLI_H
#define OUTBOX_CLI_H
/*
 * The `outbox` command's subcommands. Each takes the arguments after its
 * own name (argv[0] is the subcommand name) and returns a sysexits.h code.
 */
#include <stdio.h>
#include <sysexits.h>

/* `outbox config check [-c FILE]`: 0 ok, 1 invalid, EX_USAGE. */
int cli_config_main(int argc, char **argv);

/* `outbox queue ...` (queue.c): list, show, flush, delete, hold, release. */
int cli_queue_main(int argc, char **argv);
/* `mailq [--json] [-c FILE]`: argv[0] is "mailq"; = `outbox queue list`. */
int cli_mailq_main(int argc, char **argv);

/*
 * `outbox send [sendmail options] [RCPT...]`, and `sendmail ...` by
 * argv[0] (send.c): the message on stdin goes to the maildrop.
 */
int cli_send_main(int argc, char **argv);

/* `newaliases [-c CONFIG] [FILE]` by argv[0], and `outbox newaliases`
 * (newaliases.c): check the aliases file; 0 clean, 1 problems. */
int cli_newaliases_main(int argc, char **argv);

/*
 * `outbox check mx|smtp|imap|pop3|relay ...` (check.c): diagnostics;
 * 0 when every step is fine, 1 when one failed, else a sysexits code.
 */
int cli_check_main(int argc, char **argv);

/* `outbox status [--json] [--check] [--stuck-after D] [-c FILE]`
 * (status.c): the daemon's health; exit codes in its usage. */
int cli_status_main(int argc, char **argv);

/* A connected socket to the control socket at path, with send and
 * receive timeouts of timeout_s (cli_control.c); or -errno. */
int cli_control_connect(const char *path, int timeout_s);

/* The config path: -c FILE, else $OUTBOX_CONFIG, else the default. */
const char *cli_config_path(const char *opt);

/* Print the usage to f. */
void cli_usage(FILE *f);

#endif
