/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	The body filters' fast path (crlf_plain.h): memchr, which the C
 *	library does a vector at a time, finds each line end; a second one
 *	makes sure the line holds no bare CR.
 */
#include <string.h>

#include "outbox/crlf_plain.h"

size_t
crlf_plain_prefix(const char *p, size_t n, size_t line_max)
{
	size_t done = 0;
	while (done < n && p[done] != '.') {
		const char *lf = memchr(p + done, '\n', n - done);
		if (lf == NULL)
			break;
		size_t end = (size_t)(lf - p);
		if (end == done || p[end - 1] != '\r')
			break;   /* a bare LF */
		size_t len = end - 1 - done;
		if (len > line_max || memchr(p + done, '\r', len) != NULL)
			break;
		done = end + 1;
	}
	return done;
}
