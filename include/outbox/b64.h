/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_B64_H
#define OUTBOX_B64_H
#include <stddef.h>
#include "outbox/buf.h"

/* Append the base64 of in[0..n) to out. 0 or -ENOBUFS. */
int b64_encode(const void *in, size_t n, struct buf *out) BUF_WUR;
/*
 * Decode strict base64 (padding required, no white space) into out.
 * 0, -EINVAL on bad input, -ENOBUFS when out is full.
 */
int b64_decode(const char *in, size_t n, struct buf *out) BUF_WUR;

#endif
