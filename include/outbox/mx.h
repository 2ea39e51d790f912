/* SPDX-License-Identifier: MIT */
#ifndef OUTBOX_MX_H
#define OUTBOX_MX_H
/*
 * Routing for direct delivery (RFC 5321 5.1, RFC 7505), as pure code: what
 * the DNS answers mean and in which order to try the hosts. The resolver
 * glue (io/resolver.c) asks DNS; this module decides.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/limits.h"

#define MX_MAX_HOSTS 32   /* more MX records than this are cut (sorted first) */

struct mx_host {
	char name[HOSTNAME_MAX + 1];  /* without a trailing dot */
	unsigned pref;
};

struct mx_list {
	struct mx_host host[MX_MAX_HOSTS];
	size_t n;
};

/* The outcome of a DNS lookup in the terms delivery uses. */
enum mx_status {
	MX_OK,          /* hosts to try */
	MX_IMPLICIT,    /* no MX records (NODATA): the domain itself is the host */
	MX_NULL,        /* RFC 7505 null MX: permanent 5.1.10, no A fallback */
	MX_NXDOMAIN,    /* permanent 5.1.2 */
	MX_TEMP,        /* SERVFAIL, timeout, unreachable DNS: temporary 4.4.3 */
	MX_BAD,         /* records present but none usable (bad names): permanent 5.4.4 */
};

/*
 * Build the try order from raw records (in wire order). Sorted by
 * preference; equal preferences shuffled with random(); duplicates
 * dropped; a single record with an empty host (".") is a null MX.
 * Names that are not valid host names are dropped (all dropped => MX_BAD).
 * random is called as random(arg) and returns a uniformly random uint32.
 *
 * Decisions: a null MX among other records is still MX_NULL (Postfix stops
 * at a null MX); n == 0 is MX_IMPLICIT (no MX records); when more than
 * MX_MAX_HOSTS usable names remain, the best MX_MAX_HOSTS are kept, a
 * cut equal-preference run being sampled uniformly. Duplicate names
 * (case-insensitive) keep their best preference; names are lower-cased.
 */
enum mx_status mx_order(const struct mx_host *records, size_t n,
			struct mx_list *out, uint32_t (*random)(void *arg),
			void *arg);

/* Enhanced status and text for a failed lookup of domain: "5.1.10", ...
 * ("" for MX_OK and MX_IMPLICIT). */
const char *mx_status_enh(enum mx_status st);
/* The text for it: "Recipient address has null MX", ... ("" for OK/IMPLICIT). */
const char *mx_status_text(enum mx_status st);
/* SMTP-like code for logs and results: 556 null MX, 550 NXDOMAIN, 451 temp ... */
int mx_status_code(enum mx_status st);
bool mx_status_permanent(enum mx_status st);

/*
 * The destination of a recipient: its domain, lower-cased, or for an
 * address literal the literal with brackets ("[192.0.2.1]", "[IPv6:...]").
 * Returns 0, or -1 when the address has no domain (the caller qualifies
 * it or fails it). out must hold HOSTNAME_MAX + 1 bytes.
 */
int mx_rcpt_domain(const char *addr, char *out, size_t size);
/*
 * A usable host name: LDH labels of 1..63 octets, no leading or trailing
 * '-', at most HOSTNAME_MAX octets, one trailing dot allowed, and not an
 * IP address in disguise (a numeric last label, as in "192.0.2.1").
 */
bool mx_host_valid(const char *name);
/* For a domain "[192.0.2.1]" / "[IPv6:2001:db8::1]": the bare IP text. 0 or -1. */
int mx_literal_ip(const char *domain, char *out, size_t size);

#endif
