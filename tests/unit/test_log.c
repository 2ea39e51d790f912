/* layer: base */
/* SPDX-License-Identifier: MIT */
/*
 * Logging (base/log.c): the text line shape and [log] format = json, with
 * stderr captured in a temporary file. The JSON escaping is checked byte
 * by byte: quotes, backslash, control bytes, valid and invalid UTF-8, and
 * an over-long message cut at a whole character.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox/log.h"
#include "outbox/str.h"

#include "check.h"

static int saved_stderr = -1;
static FILE *capture;

static void
capture_start(void)
{
	capture = tmpfile();
	CHECK(capture != NULL);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	CHECK(saved_stderr >= 0);
	CHECK(dup2(fileno(capture), STDERR_FILENO) == STDERR_FILENO);
}

/* Stop capturing; the captured bytes (heap, NUL-terminated). */
static char *
capture_end(size_t *len)
{
	CHECK(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
	close(saved_stderr);
	CHECK(fseek(capture, 0, SEEK_END) == 0);
	long size = ftell(capture);
	CHECK(size >= 0);
	rewind(capture);
	char *data = calloc(1, (size_t)size + 1);
	CHECK(fread(data, 1, (size_t)size, capture) == (size_t)size);
	fclose(capture);
	*len = (size_t)size;
	return data;
}

/* The part of line after the "ts" value: everything but the clock. */
static const char *
after_ts(const char *line)
{
	CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
	/* 2024-01-02T03:04:05.678Z */
	const char *ts = line + 7;
	CHECK(strlen(ts) > 25);
	CHECK(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' &&
	      ts[16] == ':' && ts[19] == '.' && ts[23] == 'Z' && ts[24] == '"');
	return ts + 25;
}

static void
test_text_lines(void)
{
	log_init("testd", LOG_TO_STDERR, LOG_LVL_INFO);
	log_set_json(false);
	capture_start();
	log_info("hello %d", 42);
	log_warn("careful");
	log_debug("not shown");
	size_t len;
	char *out = capture_end(&len);
	char want[128];
	snprintf(want, sizeof(want), " testd[%ld]: hello 42\n", (long)getpid());
	CHECK(strstr(out, want) != NULL);
	snprintf(want, sizeof(want), " testd[%ld]: warning: careful\n",
		 (long)getpid());
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "not shown") == NULL);
	CHECK(out[23] == 'Z' && out[10] == 'T');
	free(out);
}

static void
test_json_lines(void)
{
	log_init("outboxd", LOG_TO_STDERR, LOG_LVL_DEBUG);
	log_set_json(true);
	capture_start();
	log_info("a \"quoted\" \\path\\ tab\there");
	log_err("ctl \x01\x1f\x7f nl\ncr\r");
	log_debug("utf8 b\xc3\xbc" "cher \xf0\x9f\x93\xa7 bad \xff\xc3(");
	log_warn("w");
	size_t len;
	char *out = capture_end(&len);
	log_set_json(false);
	char pid[64];
	snprintf(pid, sizeof(pid), "\"pid\":%ld,", (long)getpid());

	char *l1 = out, *l2 = strchr(l1, '\n');
	CHECK(l2 != NULL);
	*l2++ = '\0';
	char *l3 = strchr(l2, '\n');
	CHECK(l3 != NULL);
	*l3++ = '\0';
	char *l4 = strchr(l3, '\n');
	CHECK(l4 != NULL);
	*l4++ = '\0';
	char *end = strchr(l4, '\n');
	CHECK(end != NULL && end[1] == '\0');
	*end = '\0';

	char want[512];
	snprintf(want, sizeof(want),
		 ",\"level\":\"info\",\"ident\":\"outboxd\",%s\"msg\":"
		 "\"a \\\"quoted\\\" \\\\path\\\\ tab\\u0009here\"}",
		 pid);
	CHECK_STR_EQ(want, after_ts(l1));
	snprintf(want, sizeof(want),
		 ",\"level\":\"error\",\"ident\":\"outboxd\",%s\"msg\":"
		 "\"ctl \\u0001\\u001f\\u007f nl\\ncr\\u000d\"}",
		 pid);
	CHECK_STR_EQ(want, after_ts(l2));
	snprintf(want, sizeof(want),
		 ",\"level\":\"debug\",\"ident\":\"outboxd\",%s\"msg\":"
		 "\"utf8 b\xc3\xbc" "cher \xf0\x9f\x93\xa7 bad \\u00ff\\u00c3(\"}",
		 pid);
	CHECK_STR_EQ(want, after_ts(l3));
	snprintf(want, sizeof(want),
		 ",\"level\":\"warning\",\"ident\":\"outboxd\",%s\"msg\":\"w\"}",
		 pid);
	CHECK_STR_EQ(want, after_ts(l4));
	free(out);
}

static void
test_json_long(void)
{
	/* Every byte needs 6 to escape: the line is cut, still one object. */
	char *big = malloc(5000);
	memset(big, '\x01', 4999);
	big[4999] = '\0';
	log_init("outboxd", LOG_TO_STDERR, LOG_LVL_INFO);
	log_set_json(true);
	capture_start();
	log_info("%s", big);
	size_t len;
	char *out = capture_end(&len);
	log_set_json(false);
	CHECK(len > 4096);
	CHECK(out[len - 1] == '\n');
	CHECK(memchr(out, '\n', len - 1) == NULL);
	CHECK(strncmp(out + len - 3, "\"}\n", 3) == 0);
	/* Cut at a whole escape: the text before the end is \u0001 units. */
	const char *msg = strstr(out, "\"msg\":\"") + 7;
	size_t n = (size_t)(out + len - 3 - msg);
	CHECK(n % 6 == 0);
	CHECK(strncmp(out + len - 9, "\\u0001", 6) == 0);
	free(out);
	free(big);
}

int
main(void)
{
	test_text_lines();
	test_json_lines();
	test_json_long();
	CHECK_DONE();
}
