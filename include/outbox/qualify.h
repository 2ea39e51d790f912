/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_QUALIFY_H
#define OUTBOX_QUALIFY_H
/*
 * Qualify bare local names with a domain ("root" -> "root@example.com"),
 * for locally submitted mail ([rewrite] domain). Pure code.
 *
 * Both functions append to a caller-owned bounded buffer. On -ENOBUFS or
 * -ENOMEM out is restored to its length before the call (nothing partial
 * is left behind). Qualifying an already qualified value changes nothing,
 * so applying them twice is the same as once.
 */
#include <stddef.h>

#include "outbox/buf.h"

/*
 * An envelope address: "root", "\"a b\"" or "<root>". Appends the
 * qualified form and returns 1, or appends the input unchanged and returns
 * 0 when there is nothing to do: the null path ("" or "<>"), an '@'
 * outside quotes, or input that is not one local part (unterminated
 * quote, spaces, control bytes). -EINVAL when domain is not a valid
 * domain (addr_check_domain), with out untouched.
 */
int qualify_addr(const char *addr, size_t n, const char *domain,
		 struct buf *out);

/*
 * The value of an address-list header field (To, Cc, Bcc, From, Reply-To,
 * Sender; RFC 5322 3.4): every mailbox whose addr-spec has no '@' gets
 * "@domain" right after its local part. Display names, comments, white
 * space, folding (CRLF WSP) and groups are kept byte for byte:
 *   root                      -> root@d
 *   Root User <root>          -> Root User <root@d>
 *   root (Cron Daemon)        -> root@d (Cron Daemon)
 *   a, b@x, "x, y" <z>        -> a@d, b@x, "x, y" <z@d>
 *   group: a, b;              -> group: a@d, b@d;
 *   undisclosed-recipients:;  -> unchanged
 * A value that does not parse (unbalanced quotes, comments or brackets, a
 * phrase without an address such as "Root User", "a@", stray specials) is
 * appended unchanged: never make a bad header worse.
 * Returns the number of addresses qualified (0 when unchanged), or
 * -EINVAL (bad domain), -ENOBUFS/-ENOMEM (out restored).
 */
int qualify_header(const char *value, size_t n, const char *domain,
		   struct buf *out);

#endif
