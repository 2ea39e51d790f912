/* layer: proto */
/* SPDX-License-Identifier: MIT */
/*
 * The control protocol codec (proto/control_proto.c, control_json.c):
 * request lines, JSON escaping byte by byte, the message object exactly,
 * and reading it back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/control.h"

#include "check.h"

static int
parse(const char *line, struct control_req *r)
{
	char err[128];
	return control_parse(line, strlen(line), r, err, sizeof(err));
}

static void
test_parse_ok(void)
{
	struct control_req r;
	CHECK_EQ(0, parse("LIST", &r));
	CHECK_EQ(CONTROL_LIST, r.cmd);
	CHECK_STR_EQ("", r.id);
	CHECK_EQ(0, parse("list\r", &r));
	CHECK_EQ(CONTROL_LIST, r.cmd);
	CHECK_EQ(0, parse("SHOW 0123456789ABCDEF", &r));
	CHECK_EQ(CONTROL_SHOW, r.cmd);
	CHECK_STR_EQ("0123456789ABCDEF", r.id);
	CHECK_EQ(0, parse("FLUSH", &r));
	CHECK_EQ(CONTROL_FLUSH, r.cmd);
	CHECK_STR_EQ("", r.id);
	CHECK_EQ(0, parse("Flush 0123456789ABCDEF", &r));
	CHECK_STR_EQ("0123456789ABCDEF", r.id);
	CHECK_EQ(0, parse("DELETE 0123456789ABCDEF", &r));
	CHECK_EQ(CONTROL_DELETE, r.cmd);
	CHECK_EQ(0, parse("HOLD 0123456789ABCDEF", &r));
	CHECK_EQ(CONTROL_HOLD, r.cmd);
	CHECK_EQ(0, parse("RELEASE 0123456789ABCDEF", &r));
	CHECK_EQ(CONTROL_RELEASE, r.cmd);
}

static void
test_parse_bad(void)
{
	static const char *const bad[] = {
		"", " ", "LIST ", " LIST", "LIST  ", "LIST x",
		"LISTX", "SHOW", "SHOW  0123456789ABCDEF",
		"SHOW 0123456789ABCDEF ", "SHOW 0123456789abcdef",
		"SHOW 0123456789ABCDE", "SHOW 0123456789ABCDEF0",
		"SHOW ../../etc/passwd", "DELETE", "HOLD", "RELEASE",
		"FLUSH a b", "SHOW 0123456789ABCDEF 0123456789ABCDEF",
		"LIST\n", "LI\tST", "SHOW 0123456789ABCDE\x7f", "QUIT",
		"SHOW 0123456789ABCD\xc3\xa9",
	};
	struct control_req r;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &r);
		if (rc != -EINVAL)
			fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
		CHECK_EQ(-EINVAL, rc);
		CHECK_STR_EQ("", r.id);
	}
	char err[128];
	CHECK_EQ(-EINVAL, control_parse("SHOW", 4, &r, err, sizeof(err)));
	CHECK_STR_EQ("wrong number of arguments for SHOW", err);
	CHECK_EQ(-EINVAL, control_parse("NOPE", 4, &r, err, sizeof(err)));
	CHECK_STR_EQ("unknown command", err);
	CHECK_EQ(-EINVAL, control_parse("HOLD x", 6, &r, err, sizeof(err)));
	CHECK_STR_EQ("bad queue id", err);
	/* NUL inside the line is a control byte, not an end. */
	CHECK_EQ(-EINVAL, control_parse("LIST\0x", 6, &r, err, sizeof(err)));
	/* Length bound. */
	char big[CONTROL_LINE_MAX + 2];
	memset(big, 'A', sizeof(big));
	CHECK_EQ(-EINVAL, control_parse(big, sizeof(big), &r, err, sizeof(err)));
	CHECK_STR_EQ("request too long", err);
}

static void
test_format(void)
{
	struct control_req r = { CONTROL_HOLD, "0123456789ABCDEF" };
	char line[64], small[8];
	CHECK_EQ(0, control_format(&r, line, sizeof(line)));
	CHECK_STR_EQ("HOLD 0123456789ABCDEF\n", line);
	CHECK_EQ(-1, control_format(&r, small, sizeof(small)));
	struct control_req l = { CONTROL_FLUSH, "" };
	CHECK_EQ(0, control_format(&l, line, sizeof(line)));
	CHECK_STR_EQ("FLUSH\n", line);
	/* What we format, we parse. */
	struct control_req back;
	CHECK_EQ(0, parse("HOLD 0123456789ABCDEF", &back));
	CHECK_EQ(r.cmd, back.cmd);
}

static void
check_escape(const char *in, size_t n, const char *want)
{
	struct buf b;
	buf_init(&b, 1024);
	CHECK_EQ(0, control_json_strn(&b, in, n));
	CHECK_STR_EQ(want, b.data);
	buf_free(&b);
}

static void
test_escape(void)
{
	check_escape("", 0, "\"\"");
	check_escape("a@b.test", 8, "\"a@b.test\"");
	check_escape("q\"b\\s", 5, "\"q\\\"b\\\\s\"");
	check_escape("\r\n\t", 3, "\"\\r\\n\\t\"");
	check_escape("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
	check_escape("a\0b", 3, "\"a\\u0000b\"");
	/* Valid UTF-8 passes through: 2, 3 and 4 bytes. */
	check_escape("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
		     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Invalid bytes become \u00XX: lone continuation, truncated
	 * sequence, overlong, surrogate, past U+10FFFF, 0xff. */
	check_escape("\x80", 1, "\"\\u0080\"");
	check_escape("\xc3", 1, "\"\\u00c3\"");
	check_escape("\xc3x", 2, "\"\\u00c3x\"");
	check_escape("\xc0\xaf", 2, "\"\\u00c0\\u00af\"");
	check_escape("\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\"");
	check_escape("\xf4\x90\x80\x80", 4,
		     "\"\\u00f4\\u0090\\u0080\\u0080\"");
	check_escape("\xff", 1, "\"\\u00ff\"");
	check_escape("\xe2\x82", 2, "\"\\u00e2\\u0082\"");
	struct buf b;
	buf_init(&b, 1024);
	CHECK_EQ(0, control_json_str(&b, NULL));
	CHECK_STR_EQ("null", b.data);
	buf_free(&b);
	/* Bounded: a string that does not fit fails. */
	buf_init(&b, 4);
	CHECK_EQ(-ENOBUFS, control_json_str(&b, "abcdef"));
	buf_free(&b);
}

static void
make_env(struct envelope *e)
{
	envelope_init(e);
	memcpy(e->id, "00000000000000A1", ID_SIZE);
	e->sender = strdup("app@local.test");
	e->arrival = 1767225600;
	e->next_attempt = 1767225660;
	e->attempts = 2;
	e->msg_size = 1234;
	e->flags = ENV_F_HELD;
	CHECK_EQ(0, envelope_add_rcpt(e, "r1@dest.test"));
	CHECK_EQ(0, envelope_add_rcpt(e, "r\"2\"@dest.test"));
	CHECK_EQ(0, envelope_add_rcpt(e, "r3@dest.test"));
	e->rcpts[0].state = RCPT_SENT;
	CHECK_EQ(0, envelope_set_error(e, 0, "250 ok"));
	CHECK_EQ(0, envelope_set_error(e, 1, "451 4.3.0 try later"));
	e->rcpts[2].state = RCPT_BOUNCED;
}

static const char msg_json[] =
	"{\"id\":\"00000000000000A1\",\"sender\":\"app@local.test\","
	"\"recipients\":["
	"{\"address\":\"r1@dest.test\",\"state\":\"sent\",\"last_error\":\"250 ok\"},"
	"{\"address\":\"r\\\"2\\\"@dest.test\",\"state\":\"pending\","
	"\"last_error\":\"451 4.3.0 try later\"},"
	"{\"address\":\"r3@dest.test\",\"state\":\"bounced\",\"last_error\":null}],"
	"\"size\":1234,\"arrival\":1767225600,\"attempts\":2,"
	"\"next_attempt\":1767225660,\"held\":true,\"busy\":false,"
	"\"last_error\":\"451 4.3.0 try later\"}";

static void
test_msg_json(void)
{
	struct envelope e;
	make_env(&e);
	struct buf b;
	buf_init(&b, 65536);
	CHECK_EQ(0, control_json_msg(&b, &e, false, NULL, 0, false));
	CHECK_STR_EQ(msg_json, b.data);
	CHECK(strchr(b.data, '\n') == NULL);

	/* Read it back. */
	struct control_msg m;
	char err[128];
	CHECK_EQ(0, control_json_msg_parse(b.data, b.len, &m, err, sizeof(err)));
	CHECK_STR_EQ("00000000000000A1", m.env.id);
	CHECK_STR_EQ("app@local.test", m.env.sender);
	CHECK_EQ(3, m.env.nrcpts);
	CHECK_STR_EQ("r\"2\"@dest.test", m.env.rcpts[1].addr);
	CHECK_EQ(RCPT_SENT, m.env.rcpts[0].state);
	CHECK_EQ(RCPT_PENDING, m.env.rcpts[1].state);
	CHECK_EQ(RCPT_BOUNCED, m.env.rcpts[2].state);
	CHECK_STR_EQ("451 4.3.0 try later", m.env.rcpts[1].last_error);
	CHECK(m.env.rcpts[2].last_error == NULL);
	CHECK_EQ(1234, m.env.msg_size);
	CHECK_EQ(1767225600, m.env.arrival);
	CHECK_EQ(1767225660, m.env.next_attempt);
	CHECK_EQ(2, m.env.attempts);
	CHECK(m.env.flags & ENV_F_HELD);
	CHECK(!m.busy);
	CHECK(m.headers == NULL);
	control_msg_free(&m);

	/* With headers (busy, not held), and the list framing's comma. */
	e.flags = 0;
	buf_reset(&b);
	const char hdr[] = "Subject: caf\xc3\xa9 \xff\r\nX: 1\r\n";
	CHECK_EQ(0, control_json_msg(&b, &e, true, hdr, sizeof(hdr) - 1, true));
	CHECK(strstr(b.data, ",\"headers\":\"Subject: caf\xc3\xa9 \\u00ff\\r\\n"
			     "X: 1\\r\\n\",\"headers_truncated\":true}") != NULL);
	CHECK(strstr(b.data, "\"held\":false,\"busy\":true") != NULL);
	CHECK_EQ(0, buf_puts(&b, ",\n"));
	CHECK_EQ(0, control_json_msg_parse(b.data, b.len, &m, err, sizeof(err)));
	CHECK(m.busy);
	CHECK(!(m.env.flags & ENV_F_HELD));
	/* \u00ff reads back as U+00FF in UTF-8. */
	CHECK_STR_EQ("Subject: caf\xc3\xa9 \xc3\xbf\r\nX: 1\r\n", m.headers);
	CHECK(m.headers_truncated);
	control_msg_free(&m);

	/* The null sender is "", not null. */
	free(e.sender);
	e.sender = strdup("");
	buf_reset(&b);
	CHECK_EQ(0, control_json_msg(&b, &e, false, NULL, 0, false));
	CHECK(strstr(b.data, "\"sender\":\"\",") != NULL);
	CHECK_EQ(0, control_json_msg_parse(b.data, b.len, &m, err, sizeof(err)));
	CHECK_STR_EQ("", m.env.sender);
	control_msg_free(&m);

	/* A bounded buffer fails instead of truncating. */
	struct buf small;
	buf_init(&small, 100);
	CHECK_EQ(-ENOBUFS, control_json_msg(&small, &e, false, NULL, 0, false));
	buf_free(&small);
	buf_free(&b);
	envelope_free(&e);
}

static void
test_last_error(void)
{
	struct envelope e;
	make_env(&e);
	CHECK_STR_EQ("451 4.3.0 try later", control_last_error(&e));
	e.rcpts[1].state = RCPT_SENT;
	CHECK_STR_EQ("250 ok", control_last_error(&e));
	envelope_free(&e);
	envelope_init(&e);
	CHECK(control_last_error(&e) == NULL);
}

static void
test_msg_parse_bad(void)
{
	static const char *const bad[] = {
		"", "[]", "{", "{}", "{\"id\":\"x\",\"sender\":\"a\"}",
		"{\"id\":\"00000000000000A1\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\"} x",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\",}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\",\"size\":-1}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\",\"size\":01}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\","
		"\"attempts\":4294967296}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\","
		"\"arrival\":99999999999999999999}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\","
		"\"recipients\":[{\"state\":\"sent\"}]}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\","
		"\"recipients\":[{\"address\":\"b\",\"state\":\"lost\"}]}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\\u0000b\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\\ud800\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\\udc00\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\\x\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\nb\"}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\",\"held\":1}",
		"{\"id\":\"00000000000000A1\",\"sender\":\"a\",\"x\":"
		"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	};
	struct control_msg m;
	char err[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = control_json_msg_parse(bad[i], strlen(bad[i]), &m, err,
						sizeof(err));
		if (rc != -EINVAL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_EQ(-EINVAL, rc);
		control_msg_free(&m);
	}
	/* Unknown keys of any shape are skipped; surrogate pairs decode. */
	const char ok[] = " {\"future\":{\"a\":[1,2.5e3,true,null,\"x\"]},"
			  "\"id\":\"00000000000000A1\",\"sender\":"
			  "\"\\ud83d\\ude00\\u00e9\\/\"} ,\n";
	CHECK_EQ(0, control_json_msg_parse(ok, sizeof(ok) - 1, &m, err,
					   sizeof(err)));
	CHECK_STR_EQ("\xf0\x9f\x98\x80\xc3\xa9/", m.env.sender);
	CHECK_EQ(0, m.env.nrcpts);
	control_msg_free(&m);
}

static void
test_reply(void)
{
	struct control_reply r;
	const char *ok = "{\"ok\":true,\"id\":\"00000000000000A1\","
			 "\"deferred\":true}\n";
	CHECK_EQ(0, control_json_reply_parse(ok, strlen(ok), &r));
	CHECK(r.ok);
	CHECK(r.deferred);
	CHECK_STR_EQ("00000000000000A1", r.id);
	CHECK_EQ(-1, r.count);
	const char *cnt = "{\"ok\":true,\"count\":7}";
	CHECK_EQ(0, control_json_reply_parse(cnt, strlen(cnt), &r));
	CHECK_EQ(7, r.count);

	struct buf b;
	buf_init(&b, 1024);
	CHECK_EQ(0, control_json_error(&b, "no such message\r\n", "ENOENT"));
	CHECK_STR_EQ("{\"error\":\"no such message\\r\\n\",\"code\":\"ENOENT\"}\n",
		     b.data);
	CHECK_EQ(0, control_json_reply_parse(b.data, b.len, &r));
	CHECK(!r.ok);
	/* Error text is sanitised for printing. */
	CHECK_STR_EQ("no such message??", r.error);
	CHECK_STR_EQ("ENOENT", r.code);
	buf_free(&b);

	const char *neither = "{\"id\":\"00000000000000A1\"}";
	CHECK_EQ(-EINVAL, control_json_reply_parse(neither, strlen(neither), &r));
	CHECK_EQ(-EINVAL, control_json_reply_parse("[", 1, &r));
}

static void
test_header_len(void)
{
	bool complete;
	const char crlf[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
	CHECK_EQ(12, control_header_len(crlf, sizeof(crlf) - 1, &complete));
	CHECK(complete);
	const char lf[] = "A: 1\n\tfolded\n\nbody\n\n";
	CHECK_EQ(13, control_header_len(lf, sizeof(lf) - 1, &complete));
	CHECK(complete);
	/* No header at all: the body starts at once. */
	CHECK_EQ(0, control_header_len("\r\nbody", 6, &complete));
	CHECK(complete);
	/* A bare CR is not an empty line; cut short: no end seen. */
	const char cut[] = "A: 1\r\n\rB: 2\r\n";
	CHECK_EQ(sizeof(cut) - 1, control_header_len(cut, sizeof(cut) - 1,
						     &complete));
	CHECK(!complete);
	CHECK_EQ(7, control_header_len("A: 1\r\n\r", 7, &complete));
	CHECK(!complete);
	CHECK_EQ(0, control_header_len("", 0, &complete));
	CHECK(!complete);
}

int
main(void)
{
	test_parse_ok();
	test_parse_bad();
	test_format();
	test_escape();
	test_msg_json();
	test_last_error();
	test_msg_parse_bad();
	test_reply();
	test_header_len();
	CHECK_DONE();
}
