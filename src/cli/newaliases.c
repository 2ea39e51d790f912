/* SPDX-License-Identifier: MIT */
/*
 * `newaliases` (by argv[0]) and `outbox newaliases`: check the aliases
 * file the way outboxd will read it, and print each problem as
 * "FILE:LINE: message". There is no database to build: outboxd parses
 * the text file itself at start and on reload (SIGHUP), so this command
 * only validates. Exit 0 when the file is clean (or none is configured),
 * 1 when it has problems or cannot be read, EX_USAGE for bad arguments.
 *
 * The file is the one named on the command line, else [rewrite] aliases
 * from the configuration. outbox never reads /etc/aliases unless the
 * configuration names it; Debian maintainer scripts run `newaliases`
 * after editing /etc/aliases, so with nothing configured this says so
 * and exits 0 rather than failing their installation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/aliases.h"
#include "outbox/buf.h"
#include "outbox/config.h"

#include "cli.h"

/* The same bound as outboxd's reader (daemon/rewrite.c). */
#define NEWALIASES_FILE_MAX (4 * 1024 * 1024)

struct newaliases_opts {
	const char *config; /* -c FILE, or NULL */
	const char *file;   /* aliases file argument, or NULL */
};

static void
newaliases_usage(FILE *f)
{
	fprintf(f, "usage: newaliases [-c CONFIG] [ALIASES_FILE]\n"
		   "       outbox newaliases [-c CONFIG] [ALIASES_FILE]\n"
		   "Checks the aliases file ([rewrite] aliases by default); "
		   "outboxd reads it at start and on reload.\n");
}

/* -c FILE, -cFILE, -v (ignored, as sendmail's), then at most one file. */
static int
newaliases_parse(int argc, char **argv, struct newaliases_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0) {
			if (i + 1 == argc)
				return -1;
			o->config = argv[++i];
		} else if (strncmp(a, "-c", 2) == 0) {
			o->config = a + 2;
		} else if (strcmp(a, "-v") == 0) {
			continue;
		} else if (a[0] == '-' || o->file != NULL) {
			return -1;
		} else {
			o->file = a;
		}
	}
	return 0;
}

/* The whole file into a heap buffer (NUL-terminated), or NULL + errno. */
static char *
newaliases_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	char *data = NULL;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > NEWALIASES_FILE_MAX) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (data != NULL && n < (size_t)st.st_size) {
		ssize_t r = read(fd, data + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (data != NULL) {
		data[n] = '\0';
		*len = n;
	}
out:
	close(fd);
	return data;
}

/* Parse, validate, print problems. 0 clean, 1 problems, -1 no memory. */
static int
newaliases_check(const char *path, const char *data, size_t len)
{
	struct aliases a;
	aliases_init(&a);
	if (aliases_parse(&a, data, len) != 0 || aliases_validate(&a) < 0) {
		aliases_free(&a);
		return -1;
	}
	for (size_t i = 0; i < a.nwarnings; i++) {
		struct buf b;
		buf_init(&b, ALIASES_MSG_MAX + 32);
		if (aliases_warning_format(&a.warnings[i], &b) == 0)
			fprintf(stderr, "%s:%.*s\n", path, (int)b.len, b.data);
		buf_free(&b);
	}
	int rc = a.nwarnings > 0 ? 1 : 0;
	if (rc == 0)
		printf("%s: %zu alias%s ok\n", path, a.n, a.n == 1 ? "" : "es");
	aliases_free(&a);
	return rc;
}

/* The aliases file to check: the argument, else [rewrite] aliases. */
static int
newaliases_target(const struct newaliases_opts *o, char *path, size_t size)
{
	if (o->file != NULL)
		return snprintf(path, size, "%s", o->file) < (int)size ? 0 : -1;
	char err[CONFIG_ERR_MAX];
	struct config *cfg = malloc(sizeof(*cfg));
	if (cfg == NULL)
		return -1;
	int r = config_load(cli_config_path(o->config), cfg, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "%s\n", err);
	else
		snprintf(path, size, "%s", cfg->rewrite.aliases);
	free(cfg);
	return r != 0 ? -1 : 0;
}

int
cli_newaliases_main(int argc, char **argv)
{
	struct newaliases_opts o = { 0 };
	char path[CONFIG_PATH_MAX];
	if (newaliases_parse(argc, argv, &o) != 0) {
		newaliases_usage(stderr);
		return EX_USAGE;
	}
	if (newaliases_target(&o, path, sizeof(path)) != 0)
		return 1;
	if (path[0] == '\0') {
		printf("newaliases: no aliases file: [rewrite] aliases is not "
		       "set (outbox reads /etc/aliases only when it is named "
		       "there)\n");
		return 0;
	}
	size_t len = 0;
	char *data = newaliases_read(path, &len);
	if (data == NULL) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		return 1;
	}
	int rc = newaliases_check(path, data, len);
	free(data);
	if (rc < 0) {
		fprintf(stderr, "newaliases: out of memory\n");
		return 1;
	}
	return rc;
}
