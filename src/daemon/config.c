/* SPDX-License-Identifier: MIT */
/*
 * config: read the INI file with inih, apply OUTBOX_<SECTION>_<KEY>
 * environment overrides, validate with the pure config_check(), then check
 * the files the configuration names (password_file, ca_file in [relay]
 * and [mx], and [rewrite] aliases).
 *
 * inih's handler is not told the line number (Debian builds it without
 * INI_HANDLER_LINENO; defining it here would break the ABI, LIBRARIES.md
 * 3.4), so we feed inih through our own reader, which counts lines: inih
 * calls the handler only after the reader has delivered the whole line, so
 * the reader's count is the handler's line. The reader also rejects lines
 * longer than CONFIG_LINE_MAX (inih would cut them silently) and unknown
 * section headers (inih never reports an empty section).
 *
 * The whole file is read into memory first (bounded by CONFIG_FILE_MAX).
 * Duplicate keys: the later one wins, as in inih.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/config.h"
#include "outbox/str.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_ENV_MAX 256
#define CONFIG_PASSWORD_READ_MAX 4096

extern char **environ;

struct config_load {
	const char *name;      /* file name, for sources */
	const char *text;      /* the whole INI text */
	size_t len, pos;
	unsigned line;         /* line being parsed, 1-based */
	bool at_line_start;
	bool failed;           /* err holds the first error */
	struct config_raw raw;
	struct config scratch; /* values so far; validates each key as read */
	char err[CONFIG_ERR_MAX];
};

/* Messages are cut to the caller's buffer; that is intended. */
static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int __attribute__((format(printf, 3, 4)))
load_fail(struct config_load *c, unsigned line, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	errf(c->err, sizeof c->err, "%s:%u: %s", c->name, line, msg);
	c->failed = true;
	return -1;
}

/* The current line's bytes, without its line end. */
static size_t
load_line_len(const struct config_load *c, size_t *with_end)
{
	const char *p = c->text + c->pos;
	const char *nl = memchr(p, '\n', c->len - c->pos);
	size_t n = nl != NULL ? (size_t)(nl - p) : c->len - c->pos;
	*with_end = nl != NULL ? n + 1 : n;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

/* A section header's name must be known, even if no key follows it. */
static int
load_check_header(struct config_load *c, const char *p, size_t n)
{
	char section[64], msg[CONFIG_ERR_MAX];
	if (c->line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
		p += 3;
		n -= 3;
	}
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	if (n == 0 || *p != '[')
		return 0;
	const char *close = memchr(p, ']', n);
	if (close == NULL)
		return 0; /* inih reports the syntax error */
	str_sanitize(section, sizeof section, p + 1, (size_t)(close - p) - 1);
	if (config_check_section(section, msg, sizeof msg) < 0)
		return load_fail(c, c->line, "%s", msg);
	return 0;
}

static int
load_check_line(struct config_load *c)
{
	size_t with_end, n = load_line_len(c, &with_end);
	const char *p = c->text + c->pos;
	if (n > CONFIG_LINE_MAX)
		return load_fail(c, c->line, "line too long (over %d bytes)",
				 CONFIG_LINE_MAX);
	if (memchr(p, '\0', with_end) != NULL)
		return load_fail(c, c->line, "NUL byte in line");
	return load_check_header(c, p, n);
}

/* inih's fgets-like reader: may be called several times for one line. */
static char *
load_reader(char *str, int num, void *stream)
{
	struct config_load *c = stream;
	if (c->failed || c->pos >= c->len || num < 2)
		return NULL;
	if (c->at_line_start) {
		c->line++;
		if (load_check_line(c) < 0)
			return NULL;
	}
	size_t k = 0, room = (size_t)num - 1;
	while (k < room && c->pos < c->len) {
		char ch = c->text[c->pos++];
		str[k++] = ch;
		if (ch == '\n')
			break;
	}
	str[k] = '\0';
	c->at_line_start = str[k - 1] == '\n';
	return str;
}

static int
load_handler(void *user, const char *section, const char *name,
	     const char *value)
{
	struct config_load *c = user;
	char source[CONFIG_PATH_MAX + 32], shown[80];
	errf(source, sizeof source, "%s:%u", c->name, c->line);
	if (config_raw_set(&c->raw, section, name, value, source) < 0) {
		if (strlen(name) >= sizeof c->raw.entries[0].key)
			load_fail(c, c->line, "unknown key '%s' in [%s]",
				  str_sanitize(shown, sizeof shown, name,
					       strlen(name)), section);
		else
			load_fail(c, c->line, "too many keys");
		return 0;
	}
	const struct config_entry *e = config_raw_find(&c->raw, section, name);
	if (config_check_entry(e, &c->scratch, c->err, sizeof c->err) < 0) {
		c->failed = true;
		return 0;
	}
	return 1;
}

/* Describe a line inih rejected without calling the handler. */
static void
load_syntax_error(struct config_load *c, int line)
{
	const char *p = c->text;
	for (int i = 1; i < line && p != NULL; i++) {
		p = memchr(p, '\n', c->len - (size_t)(p - c->text));
		p = p != NULL ? p + 1 : NULL;
	}
	p = p != NULL ? p + strspn(p, " \t") : "";
	load_fail(c, (unsigned)line, "%s", *p == '[' ?
		  "syntax error: expected '[section]'" :
		  "syntax error: expected 'key = value'");
}

static void
load_parse(struct config_load *c)
{
	/* Debian's inih has its build options as run-time globals. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_stop_on_first_error = true;
	ini_allow_multiline = false; /* an indented key is not a continuation */
	ini_allow_inline_comments = true;
	ini_allow_no_value = false;
	c->at_line_start = true;
	int ret = ini_parse_stream(load_reader, c, load_handler, c);
	if (c->failed)
		return;
	if (ret == -2)
		load_fail(c, c->line, "out of memory");
	else if (ret > 0)
		load_syntax_error(c, ret);
}

/* Section of an OUTBOX_* variable name, or NULL if it is not an override. */
static const char *
env_section(const char *name, size_t *skip)
{
	static const struct {
		const char *prefix, *section;
	} map[] = {
		{ "OUTBOX_LISTEN_", "listen" }, { "OUTBOX_SPOOL_", "spool" },
		{ "OUTBOX_RELAY_", "relay" },   { "OUTBOX_LOG_", "log" },
		{ "OUTBOX_MX_", "mx" },         { "OUTBOX_REWRITE_", "rewrite" },
		{ "OUTBOX_DAEMON_", "daemon" }, { "OUTBOX_METRICS_", "metrics" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		size_t n = strlen(map[i].prefix);
		if (strncmp(name, map[i].prefix, n) == 0) {
			*skip = n;
			return map[i].section;
		}
	}
	return NULL;
}

static int
env_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
env_apply_one(struct config_load *c, const char *var)
{
	char key[64], source[128], shown[64];
	size_t skip = 0;
	const char *section = env_section(var, &skip);
	const char *eq = strchr(var, '=');
	size_t namelen = (size_t)(eq - var), klen = namelen - skip;
	str_sanitize(shown, sizeof shown, var, namelen);
	errf(source, sizeof source, "environment %s", shown);
	if (klen >= sizeof key) {
		errf(c->err, sizeof c->err, "%s: unknown key in [%s]",
			 source, section);
		return -1;
	}
	for (size_t i = 0; i < klen; i++) {
		char ch = var[skip + i];
		key[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	key[klen] = '\0';
	if (config_raw_set(&c->raw, section, key, eq + 1, source) < 0) {
		errf(c->err, sizeof c->err, "%s: value too long", source);
		return -1;
	}
	return config_check_entry(config_raw_find(&c->raw, section, key),
				  &c->scratch, c->err, sizeof c->err);
}

/*
 * Apply the overrides in name order, so that the first error reported
 * does not depend on the order of the environment. Only the six section
 * prefixes count: OUTBOX_CONFIG and test variables are not overrides.
 * OUTBOX_MX_* and OUTBOX_REWRITE_* reach [mx] and [rewrite] like any
 * other.
 */
static int
load_env(struct config_load *c)
{
	const char *vars[CONFIG_ENV_MAX];
	size_t n = 0, skip = 0;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (env_section(*e, &skip) == NULL || strchr(*e, '=') == NULL)
			continue;
		if (n == CONFIG_ENV_MAX) {
			errf(c->err, sizeof c->err, "environment: too "
				 "many OUTBOX_* variables");
			return -1;
		}
		vars[n++] = *e;
	}
	qsort(vars, n, sizeof vars[0], env_cmp);
	for (size_t i = 0; i < n; i++)
		if (env_apply_one(c, vars[i]) < 0)
			return -1;
	return 0;
}

/* A file the config names must exist; secrets must not be open to others. */
static int
load_check_file(const struct config_raw *raw, const char *section,
		const char *key, const char *path, bool secret, char *err,
		size_t errlen)
{
	const struct config_entry *e = config_raw_find(raw, section, key);
	const char *src = e != NULL ? e->source : "defaults";
	struct stat st;
	if (path[0] == '\0')
		return 0;
	if (stat(path, &st) < 0) {
		/* An unprivileged reader (sendmail, outbox queue) may not see
		 * the daemon's private files and does not need them; the
		 * daemon itself fails clearly when it opens them. */
		if (errno == EACCES && geteuid() != 0)
			return 0;
		errf(err, errlen, "%s: %s %s: %s", src, key, path,
			 strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "%s: %s %s is not a regular file", src,
			 key, path);
		return -1;
	}
	if (secret && (st.st_mode & 0007) != 0) {
		errf(err, errlen, "%s: %s %s is %s by others (mode %04o); "
			 "chmod 600 it", src, key, path,
			 (st.st_mode & 0004) ? "readable" : "accessible",
			 (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* The files the configuration names, in section order. The aliases file
 * is only checked here; rewrite_load() reads it at start and on reload. */
static int
load_check_files(const struct config_raw *raw, const struct config *cfg,
		 char *err, size_t errlen)
{
	if (load_check_file(raw, "relay", "password_file",
			    cfg->relay.password_file, true, err, errlen) < 0 ||
	    load_check_file(raw, "relay", "ca_file", cfg->relay.ca_file, false,
			    err, errlen) < 0 ||
	    load_check_file(raw, "mx", "ca_file", cfg->mx.ca_file, false, err,
			    errlen) < 0 ||
	    load_check_file(raw, "rewrite", "aliases", cfg->rewrite.aliases,
			    false, err, errlen) < 0)
		return -1;
	return 0;
}

static int
load_finish(struct config_load *c, struct config *out, char *err,
	    size_t errlen)
{
	struct config cfg;
	int rc = -1;
	if (c->failed || load_env(c) < 0 ||
	    config_check(&c->raw, &cfg, c->err, sizeof c->err) < 0 ||
	    load_check_files(&c->raw, &cfg, c->err, sizeof c->err) < 0)
		goto out;
	*out = cfg;
	rc = 0;
out:
	if (rc < 0 && err != NULL && errlen > 0)
		str_copy(err, errlen, c->err);
	config_raw_free(&c->raw);
	return rc;
}

static int
load_text(const char *text, size_t len, const char *name,
	  struct config *out, char *err, size_t errlen)
{
	struct config_load *c = calloc(1, sizeof *c);
	if (c == NULL) {
		errf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	c->name = name;
	c->text = text;
	c->len = len;
	config_defaults(&c->scratch);
	load_parse(c);
	int rc = load_finish(c, out, err, errlen);
	free(c);
	return rc;
}

int
config_load_string(const char *text, const char *name, struct config *out,
		   char *err, size_t errlen)
{
	return load_text(text, strlen(text), name, out, err, errlen);
}

/* Read the whole file, bounded; the caller frees *text. */
static int
load_read_file(const char *path, char **text, size_t *len, char *err,
	       size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (buf == NULL)
		goto fail;
	for (;;) {
		ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CONFIG_FILE_MAX) {
			errf(err, errlen, "%s: file too large (over %d "
				 "bytes)", path, CONFIG_FILE_MAX);
			goto out;
		}
	}
	close(fd);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
fail:
	errf(err, errlen, "%s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return -1;
}

int
config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	char *text;
	size_t len;
	if (load_read_file(path, &text, &len, err, errlen) < 0)
		return -1;
	int rc = load_text(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

const char config_local_ini[] =
	"; outboxd --local: a relay for one developer, no root needed.\n"
	"; Mail goes to the smarthost in OUTBOX_RELAY_HOST if it is set,\n"
	"; else straight to each recipient domain's MX hosts ([mx]\n"
	"; defaults; OUTBOX_MX_* overrides them).\n"
	"[listen]\n"
	"address = 127.0.0.1:2525\n"
	"[spool]\n"
	"dir = ./spool\n"
	"[log]\n"
	"target = stderr\n"
	"level = info\n";

/* Copy the first line of buf[0..n) into out; 0 or -1 with err. */
static int
password_first_line(const char *path, const char *buf, size_t n,
		    char *out, size_t size, char *err, size_t errlen)
{
	const char *nl = memchr(buf, '\n', n);
	size_t len = nl != NULL ? (size_t)(nl - buf) : n;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0) {
		errf(err, errlen, "password_file %s: the first line is "
			 "empty", path);
		return -1;
	}
	if (memchr(buf, '\0', len) != NULL || (nl == NULL && n ==
	    CONFIG_PASSWORD_READ_MAX) || str_ncopy(out, size, buf, len) < 0) {
		errf(err, errlen, "password_file %s: the password is too "
			 "long or not text", path);
		return -1;
	}
	return 0;
}

int
config_read_password(const struct config *cfg, char *out, size_t size,
		     char *err, size_t errlen)
{
	const char *path = cfg->relay.password_file;
	char buf[CONFIG_PASSWORD_READ_MAX];
	struct stat st;
	ssize_t r = -1;
	int rc = -1;
	if (path[0] == '\0') {
		errf(err, errlen, "no password_file in [relay]");
		return -1;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	/* Check the mode on the open file, so a swap after config_load()
	 * cannot slip a world-readable secret in. */
	if (fd < 0 || fstat(fd, &st) < 0) {
		errf(err, errlen, "password_file %s: %s", path,
			 strerror(errno));
	} else if (!S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
		errf(err, errlen, "password_file %s: not a regular file, "
			 "or open to others (mode %04o); chmod 600 it", path,
			 (unsigned)(st.st_mode & 07777));
	} else {
		do
			r = read(fd, buf, sizeof buf);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			errf(err, errlen, "password_file %s: %s", path,
				 strerror(errno));
		else
			rc = password_first_line(path, buf, (size_t)r, out,
						 size, err, errlen);
	}
	explicit_bzero(buf, sizeof buf);
	if (fd >= 0)
		close(fd);
	return rc;
}
