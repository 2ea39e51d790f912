/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_SMTP_SERVER_INT_H
#define OUTBOX_SMTP_SERVER_INT_H
/*
 * Private to smtp_server.c (session, input, events) and smtp_server_cmd.c
 * (the command table). Not a contract for anyone else.
 */
#include "outbox/addr.h"
#include "outbox/smtp_cmd.h"
#include "outbox/smtp_data.h"
#include "outbox/smtp_server.h"

/* Reply bytes beyond which no new command is read (slow reader, A16/E5). */
#define SRV_OUT_HIGH (64 * 1024)
#define SRV_OUT_MAX (SRV_OUT_HIGH + 8 * 1024)
#define SRV_IP_MAX 64
/*
 * NOOP, RSET, VRFY and HELP past this many (since the last accepted
 * message) count as errors, as Postfix's smtpd_junk_command_limit: a client
 * that only idles this way reaches error_limit and is let go (E5).
 */
#define SRV_JUNK_LIMIT 100
#define SRV_LOG_CMD_MAX 200

enum smtp_server_state {
	SRV_S_GREETING, /* no HELO/EHLO yet */
	SRV_S_READY,    /* after HELO/EHLO, no transaction */
	SRV_S_MAIL,     /* MAIL accepted, no recipient yet */
	SRV_S_RCPT,     /* at least one recipient */
	SRV_S_DATA,     /* reading the message, until commit_done */
	SRV_S_QUIT,     /* closing: QUIT, 421, bogus input */
};

struct smtp_server {
	struct smtp_server_cfg cfg;  /* copy; strings are the caller's */
	char client_ip[SRV_IP_MAX];
	bool allowed;
	bool helo_done, esmtp;
	char helo[HOSTNAME_MAX + 1]; /* sanitized */
	enum smtp_server_state state;
	enum smtp_server_event pending; /* DATA_START or NEED_COMMIT owed, else NEED_MORE */
	bool failed;                 /* out of memory: close */
	unsigned errors;
	unsigned junk;               /* junk commands since the last message */
	size_t rcpt_tried;           /* RCPT commands in this transaction */
	struct smtp_tx *tx;
	struct buf line, out, chunk;
	struct smtp_data data;
	bool line_crlf;              /* the current command line ended in CRLF */
	uint64_t spool_free;         /* bytes free in the spool; UINT64_MAX = unknown */
	const char *cur;             /* current command line, for reject logs */
	size_t cur_len;
};

struct server_args {
	const char *verb, *arg;
	size_t vlen, alen;
	struct smtp_cmd_path path;
	struct addr_path addr;
	uint64_t size;
	bool body8, utf8;
};

enum { SRV_F_DENIED_OK = 1 << 0, SRV_F_SECRET = 1 << 1, SRV_F_BOGUS = 1 << 2 };

struct server_cmd {
	const char *name;
	unsigned flags;
	/* 0 to go on; -1 after sending the error reply. NULL: always 0. */
	int (*check)(struct smtp_server *s, struct server_args *a);
	enum smtp_server_event (*proceed)(struct smtp_server *s,
					  struct server_args *a);
};

/* smtp_server.c */
void server_enter_state(struct smtp_server *s, enum smtp_server_state st);
void server_reply(struct smtp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An error reply: counted toward error_limit and logged with the command. */
void server_reject(struct smtp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void server_log(struct smtp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum smtp_server_event server_close(struct smtp_server *s);
void server_tx_free(struct smtp_server *s);
enum smtp_server_state server_idle_state(const struct smtp_server *s);

/* smtp_server_cmd.c */
const struct server_cmd *server_cmd_find(const char *verb, size_t vlen);

#endif
