/* layer: base */
/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	buf_swap and buf_take, which move a buffer's storage instead of its
 *	bytes (the intake path's body goes from the SMTP machine's chunk to
 *	the spool's held body this way): the pointers themselves move, each
 *	buffer keeps its own maximum, and a swap that would put more bytes in
 *	a buffer than its maximum changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "outbox/buf.h"

static void
test_swap(void)
{
	struct buf a, b;
	buf_init(&a, 16);
	buf_init(&b, 1000);
	CHECK_EQ(0, buf_append(&b, "hello", 5));
	char *hello = b.data;
	size_t cap = b.cap;
	/* Into an empty buffer without storage: a takes b's, b has none. */
	CHECK_EQ(0, buf_swap(&a, &b));
	CHECK(a.data == hello);
	CHECK_EQ(5, a.len);
	CHECK_EQ(cap, a.cap);
	CHECK_EQ(16, a.max);
	CHECK(b.data == NULL);
	CHECK_EQ(0, b.len);
	CHECK_EQ(0, b.cap);
	CHECK_EQ(1000, b.max);
	CHECK_STR_EQ("hello", a.data);
	/* Each keeps its max: a refuses past 16 whatever its storage. */
	CHECK_EQ(0, buf_append(&a, " world", 6));
	CHECK_EQ(-ENOBUFS, buf_append(&a, "123456", 6));
	CHECK_STR_EQ("hello world", a.data);

	/* More bytes than the other's max: nothing changes. */
	char big[40];
	memset(big, 'x', sizeof(big));
	CHECK_EQ(0, buf_append(&b, big, sizeof(big)));
	char *bx = b.data;
	char *ad = a.data;
	CHECK_EQ(-ENOBUFS, buf_swap(&a, &b));
	CHECK(a.data == ad && b.data == bx);
	CHECK_EQ(11, a.len);
	CHECK_EQ(40, b.len);
	CHECK_EQ(-ENOBUFS, buf_swap(&b, &a));
	CHECK(a.data == ad && b.data == bx);

	/* Both with bytes that fit both: a real exchange. */
	buf_reset(&b);
	CHECK_EQ(0, buf_append(&b, "bye", 3));
	CHECK_EQ(0, buf_swap(&b, &a));
	CHECK(a.data == bx && b.data == ad);
	CHECK_STR_EQ("bye", a.data);
	CHECK_STR_EQ("hello world", b.data);
	CHECK_EQ(3, a.len);
	CHECK_EQ(11, b.len);
	buf_free(&a);
	buf_free(&b);
}

static void
test_take(void)
{
	struct buf b;
	buf_init(&b, 100);
	CHECK(buf_take(&b) == NULL);
	CHECK_EQ(0, buf_append(&b, "body\r\n", 6));
	char *was = b.data;
	char *p = buf_take(&b);
	CHECK(p == was);
	CHECK_STR_EQ("body\r\n", p); /* still NUL-terminated */
	CHECK(b.data == NULL);
	CHECK_EQ(0, b.len);
	CHECK_EQ(0, b.cap);
	CHECK_EQ(100, b.max);
	/* Usable again: new storage. */
	CHECK_EQ(0, buf_append(&b, "x", 1));
	CHECK(b.data != NULL && b.data != p);
	free(p);
	buf_free(&b);
}

int
main(void)
{
	test_swap();
	test_take();
	CHECK_DONE();
}
