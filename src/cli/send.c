/* SPDX-License-Identifier: MIT */
/*
 * `outbox send [sendmail options] [RCPT...]`, also run as `sendmail`
 * (issue 5, RELIABILITY.md G): reads a message on stdin and hands it to
 * outboxd through the maildrop (send_drop.c), which works whether the
 * daemon runs or not. Nothing is ever executed and no address reaches a
 * shell.
 *
 * Behaviour (exit codes from sysexits.h):
 * - Options: sendmail_args_parse(); an error is "sendmail: <error>", 64.
 *   -bp lists the queue (as mailq), -q flushes it (as `outbox queue
 *   flush`), -bi checks the aliases file (as newaliases), -bs
 *   runs an SMTP session on stdin/stdout (send_bs.c).
 * - Configuration: $OUTBOX_CONFIG, else /etc/outbox/outbox.ini, with the
 *   OUTBOX_* environment on top. When the default file does not exist the
 *   built-in defaults are used (a host with no config file still queues
 *   cron mail into /var/spool/outbox); a file named by $OUTBOX_CONFIG
 *   must exist. A bad configuration exits 78 (EX_CONFIG).
 * - Sender: -f (already checked; "" is the null sender), else the
 *   caller's login name (getpwuid; "uid<N>" without a passwd entry) +
 *   "@" + the domain: [rewrite] domain if set, else the FQDN less its
 *   first label, else the host name.
 * - Recipients: the operands, plus with -t the To/Cc/Bcc addresses;
 *   duplicates are dropped; each must be an RFC 5321 path without angle
 *   brackets (a bare "root" is fine: outboxd applies aliases and the
 *   domain). A bad operand exits 64, a bad header address 65, none at all
 *   65 ("no recipient addresses found in message header", G7).
 * - Message: normalised by local_msg (CRLF, "From " line, the dot rule
 *   unless -i, Bcc removed with -t); missing Date (now, local offset),
 *   Message-ID (<ID.RANDOM@HOST>) and From (the sender, or the caller's
 *   address for a null sender; display name -F, else the passwd gecos
 *   name when no -f was given) are added. It is held in memory up to
 *   [listen] max_message_size; beyond that, or on a NUL byte, the command
 *   exits 65 and queues nothing. An empty stdin is queued as a message
 *   made of the added header fields (as Postfix does).
 * - The maildrop write exits 0 only once file and directory are synced;
 *   any failure is "sendmail: cannot queue the message: <reason>", 75.
 */
#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "outbox/addr.h"
#include "outbox/config.h"
#include "outbox/crc32.h"
#include "outbox/daemon.h"
#include "outbox/envelope.h"
#include "outbox/local_msg.h"
#include "outbox/sendmail_args.h"
#include "outbox/str.h"

#include "cli.h"
#include "send_priv.h"

#define SEND_READ_CHUNK 65536
#define SEND_RCPTS_MAX (2 * LOCAL_MSG_RCPTS_MAX)

struct send {
	struct sendmail_args args;
	struct config cfg;
	char host[HOSTNAME_MAX + 1];        /* for Message-ID */
	char domain[HOSTNAME_MAX + 1];      /* qualifies the login name */
	char self[SMTP_PATH_MAX + 1];       /* the caller's address */
	char gecos[SENDMAIL_NAME_MAX + 1];  /* "" if none */
	char date[64];
	char msgid[ID_SIZE + 64 + HOSTNAME_MAX];
	struct envelope env;
	bool smtputf8;
	struct buf msg;
	struct local_msg lm;
};

static int
send_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
send_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sendmail: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* ---- configuration and identity ---- */

static int
send_config(struct send *s)
{
	char err[CONFIG_ERR_MAX];
	const char *path = cli_config_path(NULL);
	struct stat st;
	int r;
	/* Only the default path may be absent: a named file is a promise. */
	if (strcmp(path, CONFIG_PATH_DEFAULT) == 0 && stat(path, &st) != 0 &&
	    errno == ENOENT)
		r = config_load_string("", "(built-in defaults)", &s->cfg, err,
				       sizeof(err));
	else
		r = config_load(path, &s->cfg, err, sizeof(err));
	return r == 0 ? 0 : send_fail(EX_CONFIG, "%s", err);
}

/* The FQDN (listen hostname, else the canonical name of gethostname). */
static void
send_host(struct send *s)
{
	daemon_fqdn(&s->cfg, s->host, sizeof(s->host));
}

static void
send_domain(struct send *s)
{
	if (s->cfg.rewrite.domain[0] != '\0') {
		str_copy(s->domain, sizeof(s->domain), s->cfg.rewrite.domain);
		return;
	}
	/* As the daemon's rewrite_domain(): the FQDN less its first label. */
	const char *dot = strchr(s->host, '.');
	str_copy(s->domain, sizeof(s->domain),
		 dot != NULL && dot[1] != '\0' ? dot + 1 : s->host);
}

/* Is a[0..n) an acceptable envelope path? Fills p. */
static bool
send_path_ok(const char *a, size_t n, struct addr_path *p)
{
	return addr_parse_path(a, n, p) == ADDR_OK && p->mailbox[0] != '\0';
}

/* The caller: login name qualified with the domain, and the gecos name. */
static void
send_identity(struct send *s)
{
	char login[SMTP_PATH_MAX + 1];
	struct passwd *pw = getpwuid(getuid());
	struct addr_path p;
	if (pw == NULL || pw->pw_name == NULL ||
	    str_copy(login, sizeof(login), pw->pw_name) != 0 ||
	    !send_path_ok(login, strlen(login), &p) || p.has_domain)
		snprintf(login, sizeof(login), "uid%u", (unsigned)getuid());
	if (snprintf(s->self, sizeof(s->self), "%s@%s", login, s->domain) >=
		    (int)sizeof(s->self) ||
	    !send_path_ok(s->self, strlen(s->self), &p))
		str_copy(s->self, sizeof(s->self), login); /* daemon qualifies */
	s->gecos[0] = '\0';
	if (pw != NULL && pw->pw_gecos != NULL) {
		size_t n = strcspn(pw->pw_gecos, ",");
		bool ok = n < sizeof(s->gecos);
		for (size_t i = 0; ok && i < n; i++)
			ok = (unsigned char)pw->pw_gecos[i] >= 0x20 &&
			     pw->pw_gecos[i] != 0x7f;
		if (ok)
			str_ncopy(s->gecos, sizeof(s->gecos), pw->pw_gecos, n);
	}
}

/* ---- recipients ---- */

static bool
send_have_rcpt(const struct send *s, const char *addr)
{
	for (size_t i = 0; i < s->env.nrcpts; i++)
		if (strcmp(s->env.rcpts[i].addr, addr) == 0)
			return true;
	return false;
}

/* Add one recipient; code is the exit status for a bad address. */
static int
send_add_rcpt(struct send *s, const char *a, size_t n, int code)
{
	struct addr_path p;
	char shown[SMTP_PATH_MAX + 1];
	if (!send_path_ok(a, n, &p))
		return send_fail(code, "invalid recipient address '%s'",
				 str_sanitize(shown, sizeof(shown), a, n));
	if (send_have_rcpt(s, p.mailbox))
		return 0;
	if (s->env.nrcpts >= SEND_RCPTS_MAX)
		return send_fail(EX_DATAERR, "too many recipients");
	if (envelope_add_rcpt(&s->env, p.mailbox) != 0)
		return send_fail(EX_OSERR, "out of memory");
	s->smtputf8 |= p.eightbit;
	return 0;
}

static int
send_rcpts(struct send *s)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < s->args.nrcpts; i++)
		r = send_add_rcpt(s, s->args.rcpts[i], strlen(s->args.rcpts[i]),
				  EX_USAGE);
	for (const char *a = local_msg_rcpt_next(&s->lm, NULL);
	     r == 0 && a != NULL; a = local_msg_rcpt_next(&s->lm, a))
		r = send_add_rcpt(s, a, strlen(a), EX_DATAERR);
	if (r == 0 && s->env.nrcpts == 0)
		r = send_fail(EX_DATAERR, "no recipient addresses found in "
					  "message header");
	return r;
}

/* ---- the message ---- */

static void
send_fixup(struct send *s, struct local_msg_opts *o)
{
	unsigned long long rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned long long)time(NULL) ^ (unsigned long long)getpid();
	id_new(s->env.id);
	daemon_date(s->date, sizeof(s->date));
	snprintf(s->msgid, sizeof(s->msgid), "<%s.%016llx@%s>", s->env.id,
		 rnd, s->host);
	o->fixup.date = s->date;
	o->fixup.message_id = s->msgid;
	o->fixup.from_addr = s->env.sender[0] != '\0' ? s->env.sender : s->self;
	o->fixup.full_name = s->args.full_name;
	if (o->fixup.full_name == NULL && !s->args.has_sender &&
	    s->gecos[0] != '\0')
		o->fixup.full_name = s->gecos;
}

/* stdin to EOF (or the lone dot) through local_msg into s->msg. */
static int
send_read(struct send *s)
{
	static char chunk[SEND_READ_CHUNK];
	enum local_msg_status st = LOCAL_MSG_OK;
	while (st == LOCAL_MSG_OK && !s->lm.done) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return send_fail(EX_IOERR, "cannot read the message: %s",
					 strerror(errno));
		if (n == 0)
			break;
		st = local_msg_feed(&s->lm, chunk, (size_t)n, &s->msg);
	}
	if (st == LOCAL_MSG_OK)
		st = local_msg_finish(&s->lm, &s->msg);
	if (st != LOCAL_MSG_OK)
		return send_fail(local_msg_status_exit(st), "%s",
				 local_msg_status_str(st));
	return 0;
}

static int
send_sender(struct send *s)
{
	const char *from = s->args.has_sender ? s->args.sender : s->self;
	s->env.sender = strdup(from);
	if (s->env.sender == NULL)
		return send_fail(EX_OSERR, "out of memory");
	struct addr_path p;
	if (from[0] != '\0' && addr_parse_path(from, strlen(from), &p) == ADDR_OK)
		s->smtputf8 |= p.eightbit;
	return 0;
}

static int
send_queue(struct send *s)
{
	char why[SEND_WHY_MAX];
	s->env.arrival = (int64_t)time(NULL);
	s->env.msg_size = s->msg.len;
	s->env.msg_crc = crc32_update(0, s->msg.data, s->msg.len);
	s->env.flags = (s->lm.eightbit ? ENV_F_8BIT : 0) |
		       (s->smtputf8 ? ENV_F_SMTPUTF8 : 0);
	snprintf(s->env.client, sizeof(s->env.client), "uid %u",
		 (unsigned)getuid());
	int r = send_drop_write(s->cfg.spool.dir, &s->env,
				s->msg.data != NULL ? s->msg.data : "",
				s->msg.len, why, sizeof(why));
	if (r != 0)
		return send_fail(r, "cannot queue the message: %s", why);
	if (s->args.verbose)
		fprintf(stderr, "sendmail: queued as %s (%zu recipients)\n",
			s->env.id, s->env.nrcpts);
	return 0;
}

/* The default mode: message on stdin into the maildrop. */
static int
send_message(struct send *s)
{
	int r = send_config(s);
	if (r != 0)
		return r;
	send_host(s);
	send_domain(s);
	send_identity(s);
	r = send_sender(s);
	if (r != 0)
		return r;
	struct local_msg_opts o = {
		.ignore_dots = s->args.ignore_dots,
		.extract_rcpts = s->args.extract_rcpts,
	};
	send_fixup(s, &o);
	buf_init(&s->msg, (size_t)s->cfg.listen.max_message_size);
	local_msg_init(&s->lm, &o);
	r = send_read(s);
	if (r == 0)
		r = send_rcpts(s);
	if (r == 0)
		r = send_queue(s);
	local_msg_free(&s->lm);
	buf_free(&s->msg);
	return r;
}

static int
send_mode(struct send *s)
{
	switch (s->args.mode) {
	case SENDMAIL_MODE_LIST: {
		char *argv[] = { "mailq", NULL };
		return cli_mailq_main(1, argv);
	}
	case SENDMAIL_MODE_FLUSH: {
		char *argv[] = { "queue", "flush", NULL };
		return cli_queue_main(2, argv);
	}
	case SENDMAIL_MODE_NEWALIASES: {
		/* outboxd reads the file itself; -bi checks it (newaliases). */
		char *argv[] = { "newaliases", NULL };
		return cli_newaliases_main(1, argv);
	}
	case SENDMAIL_MODE_SMTP: {
		int r = send_config(s);
		if (r != 0)
			return r;
		send_host(s);
		return send_bs(&s->cfg, s->host);
	}
	case SENDMAIL_MODE_DELIVER:
		break;
	}
	return send_message(s);
}

int
cli_send_main(int argc, char **argv)
{
	struct send *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return send_fail(EX_OSERR, "out of memory");
	envelope_init(&s->env);
	int r;
	if (sendmail_args_parse(&s->args, argc, argv) != 0)
		r = send_fail(s->args.exit_code, "%s", s->args.error);
	else
		r = send_mode(s);
	envelope_free(&s->env);
	free(s);
	if (fflush(stdout) != 0 && r == 0)
		r = EX_IOERR;
	return r;
}
