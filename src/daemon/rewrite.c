/* SPDX-License-Identifier: MIT */
/*
 * Envelope rewriting for locally submitted mail ([rewrite]): cron and
 * scripts send to bare `root` from bare login names. Recipients without a
 * domain go through the aliases file (chains followed, loops cut), then
 * to `admin` when no alias names them, then get `@domain`; a bare sender
 * gets `@domain`, and `from` replaces the sender when set. The header
 * stage (rewrite_stage_new) does the same for the header fields and adds
 * the missing Date, Message-ID and From.
 *
 * The aliases file is read at start and on reload (rewrite_load); its
 * warnings (refused |command, /file, :include: targets, bad lines) are
 * logged as FILE:LINE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox/aliases.h"
#include "outbox/daemon.h"
#include "outbox/log.h"
#include "outbox/qualify.h"
#include "outbox/str.h"

#define REWRITE_ALIASES_MAX (4 * 1024 * 1024)

/* [rewrite] domain, or the host's domain: the FQDN less its first label. */
void
rewrite_domain(const struct daemon *d, char *out, size_t size)
{
	if (d->cfg.rewrite.domain[0] != '\0') {
		str_copy(out, size, d->cfg.rewrite.domain);
		return;
	}
	const char *dot = strchr(d->hostname, '.');
	str_copy(out, size, dot && dot[1] ? dot + 1 : d->hostname);
}

static char *
rewrite_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > REWRITE_ALIASES_MAX) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *data = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (data != NULL && n < (size_t)st.st_size) {
		ssize_t r = read(fd, data + n, (size_t)st.st_size - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return data;
}

/* Load [rewrite] aliases into *out (replacing nothing on failure). */
int
rewrite_load(const struct config *cfg, struct aliases **out)
{
	*out = NULL;
	if (cfg->rewrite.aliases[0] == '\0')
		return 0;
	size_t len = 0;
	char *data = rewrite_read_file(cfg->rewrite.aliases, &len);
	struct aliases *a = calloc(1, sizeof(*a));
	if (data == NULL || a == NULL) {
		log_err("cannot read aliases file %s", cfg->rewrite.aliases);
		free(data);
		free(a);
		return -1;
	}
	aliases_init(a);
	int r = aliases_parse(a, data, len);
	free(data);
	if (r == 0)
		aliases_validate(a);
	for (size_t i = 0; r == 0 && i < a->nwarnings; i++)
		log_warn("%s:%zu: %s", cfg->rewrite.aliases,
			 a->warnings[i].line, a->warnings[i].msg);
	if (r != 0) {
		aliases_free(a);
		free(a);
		return -1;
	}
	log_info("aliases: %zu entries from %s", a->n, cfg->rewrite.aliases);
	*out = a;
	return 0;
}

void
rewrite_free(struct aliases *a)
{
	if (a == NULL)
		return;
	aliases_free(a);
	free(a);
}

/* Qualify one address into a new heap string (NULL on failure). */
static char *
rewrite_qualified(const char *addr, const char *domain)
{
	struct buf b;
	buf_init(&b, SMTP_PATH_MAX + 1);
	int r = qualify_addr(addr, strlen(addr), domain, &b);
	char *s = NULL;
	if (r >= 0 && b.len > 0)
		s = str_ndup(b.data, b.len);
	else if (r >= 0)
		s = strdup(addr);
	buf_free(&b);
	return s;
}

static int
rewrite_add(struct envelope *e, const char *addr)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (strcasecmp(e->rcpts[i].addr, addr) == 0)
			return 0; /* already there */
	return envelope_add_rcpt(e, addr);
}

/* The final addresses for one recipient, added to out. */
static int
rewrite_rcpt(const struct daemon *d, const char *addr, const char *domain,
	     struct envelope *out)
{
	if (strchr(addr, '@') != NULL || strchr(addr, '"') != NULL) {
		return rewrite_add(out, addr);
	}
	const struct aliases *a = d->aliases;
	if (a != NULL && aliases_find(a, addr) != NULL) {
		struct aliases_result res = { 0 };
		char err[128];
		int r = aliases_expand(a, addr, &res, err, sizeof(err));
		if (r == 0 && res.loop)
			log_warn("alias %s: %s", addr, err);
		for (size_t i = 0; r == 0 && i < res.n; i++) {
			char *q = rewrite_qualified(res.addrs[i], domain);
			r = q ? rewrite_add(out, q) : -ENOMEM;
			free(q);
		}
		aliases_result_free(&res);
		if (r == 0)
			return 0;
		log_warn("alias %s: cannot expand (%s)", addr, strerror(-r));
	}
	if (d->cfg.rewrite.admin[0] != '\0' && strcasecmp(addr, "postmaster") != 0)
		return rewrite_add(out, d->cfg.rewrite.admin);
	char *q = rewrite_qualified(addr, domain);
	int r = q ? rewrite_add(out, q) : -ENOMEM;
	free(q);
	return r;
}

int
rewrite_envelope(const struct daemon *d, struct envelope *e)
{
	char domain[HOSTNAME_MAX + 1];
	rewrite_domain(d, domain, sizeof(domain));
	struct envelope out;
	envelope_init(&out);
	int r = 0;
	for (size_t i = 0; r == 0 && i < e->nrcpts; i++)
		r = rewrite_rcpt(d, e->rcpts[i].addr, domain, &out);
	char *sender = NULL;
	if (r == 0) {
		const char *from = d->cfg.rewrite.from;
		sender = from[0] ? strdup(from)
		       : e->sender[0] ? rewrite_qualified(e->sender, domain)
				      : strdup("");
		if (sender == NULL)
			r = -ENOMEM;
	}
	if (r != 0) {
		free(sender);
		envelope_free(&out);
		return r;
	}
	/* Swap the new recipients and sender in; the rest stays. */
	free(e->sender);
	e->sender = sender;
	struct env_rcpt *old = e->rcpts;
	size_t nold = e->nrcpts;
	e->rcpts = out.rcpts;
	e->nrcpts = out.nrcpts;
	out.rcpts = old;
	out.nrcpts = nold;
	envelope_free(&out);
	return 0;
}

/* The envelope sender after [rewrite]: from, else qualified. */
static void
rewrite_final_sender(const struct daemon *d, const char *sender,
		     const char *domain, char *out, size_t size)
{
	out[0] = '\0';
	if (d->cfg.rewrite.from[0] != '\0') {
		str_copy(out, size, d->cfg.rewrite.from);
		return;
	}
	if (sender[0] == '\0')
		return;
	char *q = rewrite_qualified(sender, domain);
	if (q != NULL)
		str_copy(out, size, q);
	free(q);
}

struct rewrite_stage *
rewrite_stage_new(const struct daemon *d, const char *id, const char *sender)
{
	struct rewrite_stage *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	rewrite_domain(d, st->domain, sizeof(st->domain));
	daemon_date(st->date, sizeof(st->date));
	snprintf(st->msgid, sizeof(st->msgid), "<%s@%s>", id, d->hostname);
	rewrite_final_sender(d, sender, st->domain, st->from,
			     sizeof(st->from));
	struct header_rewrite_opts o = {
		.domain = st->domain,
		/* st->from is [rewrite] from when that is set */
		.force_from = d->cfg.rewrite.from[0] ? st->from : NULL,
		.from_rewrite = d->cfg.rewrite.from_header_rewrite,
		.fixup = { .date = st->date, .message_id = st->msgid,
			   .from_addr = st->from[0] ? st->from : NULL },
	};
	header_rewrite_init(&st->hr, &o);
	return st;
}

void
rewrite_stage_free(struct rewrite_stage *st)
{
	if (st == NULL)
		return;
	header_rewrite_free(&st->hr);
	free(st);
}
