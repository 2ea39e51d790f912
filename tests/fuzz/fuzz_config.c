/* layer: daemon */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Fuzz target: configuration parsing and validation (config.h).
 *
 *	Input: a mode byte, then text. Mode 0: the text is an INI file for
 *	config_load_string (inih, the OUTBOX_* environment, config_check,
 *	the file checks). Mode 1: the text is NUL-separated section, key,
 *	value triples for config_raw_set, config_check_section,
 *	config_check_entry and config_check. Mode 2: the text goes through
 *	every config_value_* parser.
 *
 *	Invariants: never a crash; a failure always says why (non-empty,
 *	NUL-terminated); a success gives a configuration within its array
 *	bounds with NUL-terminated strings, also after entries that were
 *	refused one by one.
 */
#include <sys/socket.h>

#include "fuzz.h"
#include "outbox/config.h"

static void
fcfg_check_out(const struct config *c)
{
	FUZZ_ASSERT(c->listen.naddress <= CONFIG_MAX_LISTEN);
	FUZZ_ASSERT(c->listen.nallow <= CONFIG_MAX_ALLOW);
	FUZZ_ASSERT(c->relay.nhost <= CONFIG_MAX_RELAYS);
	FUZZ_ASSERT(c->mx.ndns_servers <= CONFIG_MAX_DNS);
	FUZZ_ASSERT(memchr(c->listen.hostname, 0, sizeof(c->listen.hostname)));
	FUZZ_ASSERT(memchr(c->spool.dir, 0, sizeof(c->spool.dir)));
	FUZZ_ASSERT(memchr(c->relay.user, 0, sizeof(c->relay.user)));
	FUZZ_ASSERT(memchr(c->rewrite.admin, 0, sizeof(c->rewrite.admin)));
	FUZZ_ASSERT(memchr(c->rewrite.domain, 0, sizeof(c->rewrite.domain)));
	FUZZ_ASSERT(memchr(c->daemon.user, 0, sizeof(c->daemon.user)));
	for (size_t i = 0; i < c->listen.nallow; i++)
		FUZZ_ASSERT(c->listen.allow[i].prefix <= 128);
}

static void
fcfg_err(const char *err, size_t size)
{
	FUZZ_ASSERT(memchr(err, '\0', size) != NULL && err[0] != '\0');
}

static void
fcfg_load(const char *text)
{
	struct config *c = malloc(sizeof(*c));
	char err[CONFIG_ERR_MAX];
	if (c == NULL)
		abort();
	memset(err, 'x', sizeof(err));
	if (config_load_string(text, "fuzz.ini", c, err, sizeof(err)) == 0)
		fcfg_check_out(c);
	else
		fcfg_err(err, sizeof(err));
	free(c);
}

static void
fcfg_raw(struct fuzz_in *in)
{
	struct config_raw raw = { 0 };
	struct config *c = malloc(sizeof(*c));
	if (c == NULL)
		abort();
	config_defaults(c);
	char err[CONFIG_ERR_MAX], msg[256];
	for (int i = 0; i < 32 && in->n > 0; i++) {
		char *sec = fuzz_field(in, 0, NULL);
		char *key = fuzz_field(in, 0, NULL);
		char *val = fuzz_field(in, 0, NULL);
		if (config_check_section(sec, msg, sizeof(msg)) != 0)
			fcfg_err(msg, sizeof(msg));
		if (config_raw_set(&raw, sec, key, val, "fuzz.ini:1") == 0) {
			struct config_entry *e = config_raw_find(&raw, sec, key);
			FUZZ_ASSERT(e != NULL);
			if (config_check_entry(e, c, err, sizeof(err)) != 0)
				fcfg_err(err, sizeof(err));
		}
		free(sec);
		free(key);
		free(val);
	}
	fcfg_check_out(c);
	int rc = config_check(&raw, c, err, sizeof(err));
	if (rc == 0)
		fcfg_check_out(c);
	else
		fcfg_err(err, sizeof(err));
	config_raw_free(&raw);
	free(c);
}

static void
fcfg_values(const char *s, size_t n)
{
	uint64_t u;
	bool b;
	struct config_hostport hp;
	struct config_cidr cidr;
	char msg[256];
	(void)config_value_size(s, &u);
	(void)config_value_duration_ms(s, &u);
	(void)config_value_bool(s, &b);
	if (config_value_hostport(s, n, 25, n & 1, &hp, msg, sizeof(msg)) == 0)
		FUZZ_ASSERT(memchr(hp.host, 0, sizeof(hp.host)));
	if (config_value_cidr(s, n, &cidr, msg, sizeof(msg)) == 0)
		FUZZ_ASSERT(cidr.prefix <= (cidr.family == AF_INET ? 32u : 128u));
	(void)config_value_hostname(s);
	(void)config_value_is_ip(s);
}

static void
fuzz_config(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_byte(&in) % 3;
	if (mode == 1) {
		fcfg_raw(&in);
		return;
	}
	size_t n;
	char *text = fuzz_field(&in, 0, &n);
	if (mode == 0)
		fcfg_load(text);
	else
		fcfg_values(text, n);
	free(text);
}

FUZZ_ENTRY(fuzz_config)
