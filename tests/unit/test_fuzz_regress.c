/* layer: daemon */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Replays the fuzz inputs through the fuzz harnesses themselves, in
 *	the normal build (and under its ASan/UBSan): every crash input
 *	saved in tests/fuzz/regress/<target>/ (each one a bug found and
 *	fixed) and every seed in tests/fuzz/corpus/<target>/. A harness
 *	aborts on a broken invariant, which fails this test. The harness
 *	files are included here with FUZZ_REPLAY set, which leaves out
 *	their libFuzzer entry points (tests/CMakeLists.txt builds one
 *	source per unit test).
 */
#define FUZZ_REPLAY 1
#include <dirent.h>
#include <errno.h>

#include "check.h"

#include "../fuzz/fuzz_addr.c"
#include "../fuzz/fuzz_aliases.c"
#include "../fuzz/fuzz_client.c"
#include "../fuzz/fuzz_config.c"
#include "../fuzz/fuzz_control.c"
#include "../fuzz/fuzz_data.c"
#include "../fuzz/fuzz_dns.c"
#include "../fuzz/fuzz_dsn.c"
#include "../fuzz/fuzz_envelope.c"
#include "../fuzz/fuzz_local_msg.c"
#include "../fuzz/fuzz_maildrop.c"
#include "../fuzz/fuzz_mx.c"
#include "../fuzz/fuzz_qualify.c"
#include "../fuzz/fuzz_reply.c"
#include "../fuzz/fuzz_sendmail_args.c"
#include "../fuzz/fuzz_server.c"
#include "../fuzz/fuzz_spool_record.c"

#define REGRESS_FILE_MAX (1u << 20)

struct regress_target {
	const char *name;
	void (*fn)(const uint8_t *data, size_t size);
};

static const struct regress_target regress_targets[] = {
	{ "addr", fuzz_addr },         { "aliases", fuzz_aliases },
	{ "client", fuzz_client },     { "config", fuzz_config },
	{ "control", fuzz_control },   { "data", fuzz_data },
	{ "dns", fuzz_dns },           { "dsn", fuzz_dsn },
	{ "envelope", fuzz_envelope }, { "local_msg", fuzz_local_msg },
	{ "maildrop", fuzz_maildrop }, { "mx", fuzz_mx },
	{ "qualify", fuzz_qualify },   { "reply", fuzz_reply },
	{ "sendmail_args", fuzz_sendmail_args },
	{ "server", fuzz_server },
	{ "spool_record", fuzz_spool_record },
};

/* Read a whole (small) file into a heap buffer of exactly its size. */
static uint8_t *
regress_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	uint8_t *tmp = malloc(REGRESS_FILE_MAX);
	CHECK(tmp != NULL);
	size_t n = fread(tmp, 1, REGRESS_FILE_MAX, f);
	CHECK(ferror(f) == 0 && n < REGRESS_FILE_MAX);
	fclose(f);
	/* Exactly n bytes, so ASan sees a harness reading past the input. */
	uint8_t *data = malloc(n ? n : 1);
	CHECK(data != NULL);
	if (n)
		memcpy(data, tmp, n);
	free(tmp);
	*len = n;
	return data;
}

/* Replay every file of dir through fn; returns how many (-1: no dir). */
static int
regress_dir(const char *dir, void (*fn)(const uint8_t *, size_t))
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int count = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		size_t len;
		uint8_t *data = regress_read(path, &len);
		fn(data, len);
		free(data);
		count++;
		check_count++;
	}
	closedir(d);
	return count;
}

/*
 * Bugs the fuzzers found, checked directly as well (the inputs above are
 * in tests/fuzz/regress/<target>/).
 */

/* aliases: "\\|cmd" and "\\/file" expanded to "|cmd" and "/file". */
static void
test_aliases_escaped_targets(void)
{
	static const char text[] =
		"a: \\/bin/sh, \\|cmd, \"\\/x\", \\:include:/z, ok@x.test\n"
		"b: \\b, \\c\n";
	struct aliases al;
	aliases_init(&al);
	CHECK_EQ(0, aliases_parse(&al, text, strlen(text)));
	const struct aliases_entry *e = aliases_find(&al, "a");
	CHECK(e != NULL);
	CHECK_EQ(1, e->ntargets);
	CHECK_STR_EQ("ok@x.test", e->targets[0]);
	CHECK_EQ(4, al.nwarnings);
	e = aliases_find(&al, "b");
	CHECK(e != NULL);
	CHECK_EQ(2, e->ntargets); /* plain final names stay usable */
	struct aliases_result r;
	CHECK_EQ(0, aliases_expand(&al, "a", &r, NULL, 0));
	CHECK_EQ(1, r.n);
	CHECK_STR_EQ("ok@x.test", r.addrs[0]);
	aliases_result_free(&r);
	aliases_free(&al);
}

/* local_msg: NULL + 0 (undefined; clang's UBSan) on empty buffers. */
static void
test_local_msg_no_rcpts(void)
{
	struct local_msg_opts o = { .extract_rcpts = true };
	struct local_msg m;
	struct buf out;
	local_msg_init(&m, &o);
	buf_init(&out, 1 << 16);
	CHECK(local_msg_rcpt_next(&m, NULL) == NULL);
	CHECK_EQ(LOCAL_MSG_OK, local_msg_finish(&m, &out));
	CHECK(local_msg_rcpt_next(&m, NULL) == NULL);
	buf_free(&out);
	local_msg_free(&m);

	/* lm_hdr_eol took NULL + 0 for an empty held header section. */
	struct local_msg_opts o2 = { .header_max = 144 };
	local_msg_init(&m, &o2);
	buf_init(&out, 1 << 16);
	CHECK_EQ(LOCAL_MSG_OK, local_msg_feed(&m, "\r1n", 3, &out));
	CHECK_EQ(LOCAL_MSG_OK, local_msg_finish(&m, &out));
	CHECK_STR_EQ("\r\n1n\r\n", out.data);
	buf_free(&out);
	local_msg_free(&m);
}

/* mx: an invalid "h.test.." shadowed the valid "h.test." after it. */
static void
test_mx_double_dot(void)
{
	struct mx_host rec[2] = { { "h.test..", 2 }, { "h.test.", 2 } };
	struct mx_list out;
	uint64_t seed = 1;
	CHECK_EQ(MX_OK, mx_order(rec, 2, &out, fmx_random, &seed));
	CHECK_EQ(1, out.n);
	CHECK_STR_EQ("h.test", out.host[0].name);
}

int
main(void)
{
	test_mx_double_dot();
	test_aliases_escaped_targets();
	test_local_msg_no_rcpts();
	const char *root = getenv("OUTBOX_TEST_DATA");
	CHECK(root != NULL);
	int total_regress = 0, total_seeds = 0;
	for (size_t i = 0; i < sizeof(regress_targets) /
				   sizeof(regress_targets[0]); i++) {
		const struct regress_target *t = &regress_targets[i];
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", root, t->name);
		int seeds = regress_dir(dir, t->fn);
		/* Every target has committed seeds. */
		CHECK(seeds > 0);
		snprintf(dir, sizeof(dir), "%s/fuzz/regress/%s", root, t->name);
		int crashes = regress_dir(dir, t->fn);
		printf("%-14s %4d seeds %3d regressions\n", t->name, seeds,
		       crashes < 0 ? 0 : crashes);
		total_seeds += seeds;
		total_regress += crashes < 0 ? 0 : crashes;
	}
	printf("replayed %d seeds and %d regression inputs\n", total_seeds,
	       total_regress);
	CHECK_DONE();
}
