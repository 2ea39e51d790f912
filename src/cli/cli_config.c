/* SPDX-License-Identifier: MIT */
/*
 * `outbox config check`: load the configuration exactly as outboxd does
 * (file, then OUTBOX_* environment, then the password and CA files) and
 * print "FILE: ok" or the first error as "FILE:LINE: message".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/config.h"

#include "cli.h"

const char *
cli_config_path(const char *opt)
{
	const char *env = getenv("OUTBOX_CONFIG");
	if (opt != NULL)
		return opt;
	return env != NULL && env[0] != '\0' ? env : CONFIG_PATH_DEFAULT;
}

/* Parse "-c FILE", "-cFILE", "--config FILE", "--config=FILE". */
static int
cli_config_opts(int argc, char **argv, const char **path)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 == argc)
				return -1;
			*path = argv[++i];
		} else if (strncmp(a, "-c", 2) == 0) {
			*path = a + 2;
		} else if (strncmp(a, "--config=", 9) == 0) {
			*path = a + 9;
		} else {
			return -1;
		}
	}
	return 0;
}

static int
cli_config_check(int argc, char **argv)
{
	const char *opt = NULL;
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	if (cli_config_opts(argc, argv, &opt) < 0) {
		cli_usage(stderr);
		return EX_USAGE;
	}
	const char *path = cli_config_path(opt);
	if (config_load(path, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: ok\n", path);
	return 0;
}

int
cli_config_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cli_config_check(argc - 2, argv + 2);
	cli_usage(stderr);
	return EX_USAGE;
}
