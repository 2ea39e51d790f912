/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_CRLF_PLAIN_H
#define OUTBOX_CRLF_PLAIN_H
#include <stddef.h>

/*
 * The length of the longest prefix of p[0..n), which starts at a line
 * start, made of whole lines that need no work: each ends in CRLF, holds
 * no other CR or LF, does not start with '.', and has at most line_max
 * octets before its CRLF. Both body filters (DATA in, smtp_data.c; DATA
 * out, dot.c) copy such a run as it is, in one go, instead of byte by
 * byte through their states: nearly all of a typical body. Pure code.
 */
size_t crlf_plain_prefix(const char *p, size_t n, size_t line_max);

#endif
