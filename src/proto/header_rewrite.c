/* SPDX-License-Identifier: MIT */
/*
 * DESCRIPTION
 *	Header rewriting for local submissions: qualify bare names in the
 *	address fields, force the From field when asked, add missing Date,
 *	Message-ID and From. The header section is held back line by line
 *	(bounded) until its end is seen, rewritten in two passes (which
 *	fields exist, then the output), and the body passes through. Pure
 *	code.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "outbox/header_rewrite.h"
#include "outbox/qualify.h"

struct hr_field {
	const char *name;   /* the field, from its first byte */
	size_t name_len;
	const char *value;  /* after the ':' up to the final line end */
	size_t value_len;
	const char *eol;    /* the final line end ("\r\n" or "\n") */
	size_t eol_len;
	size_t total;       /* the whole field with all its lines */
};

/* Lines of a field: the first, then those starting with SP or HT. */
static size_t
hr_line_len(const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	return lf != NULL ? (size_t)(lf - p) + 1 : n;
}

/* The field at hdr[0..n), which must start a field. */
static void
hr_field_at(const char *hdr, size_t n, struct hr_field *f)
{
	size_t len = hr_line_len(hdr, n);
	while (len < n && (hdr[len] == ' ' || hdr[len] == '\t'))
		len += hr_line_len(hdr + len, n - len);
	const char *colon = memchr(hdr, ':', len);
	f->name = hdr;
	f->name_len = colon != NULL ? (size_t)(colon - hdr) : len;
	f->total = len;
	f->eol_len = 0;
	if (len > 0 && hdr[len - 1] == '\n')
		f->eol_len = len > 1 && hdr[len - 2] == '\r' ? 2 : 1;
	f->eol = hdr + len - f->eol_len;
	f->value = colon != NULL ? colon + 1 : f->eol;
	f->value_len = (size_t)(f->eol - f->value);
}

static bool
hr_is(const struct hr_field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	       strncasecmp(f->name, name, f->name_len) == 0;
}

static bool
hr_is_address_field(const struct hr_field *f)
{
	static const char *const names[] = { "From", "To", "Cc", "Bcc",
					     "Reply-To", "Sender" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (hr_is(f, names[i]))
			return true;
	return false;
}

static unsigned
hr_present(const char *hdr, size_t n)
{
	static const struct { const char *name; unsigned bit; } known[] = {
		{ "Date", LOCAL_MSG_H_DATE },
		{ "Message-ID", LOCAL_MSG_H_MESSAGE_ID },
		{ "From", LOCAL_MSG_H_FROM },
		{ "Reply-To", LOCAL_MSG_H_REPLY_TO },
	};
	unsigned present = 0;
	struct hr_field f;
	for (size_t off = 0; off < n; off += f.total) {
		hr_field_at(hdr + off, n - off, &f);
		for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
			if (hr_is(&f, known[i].name))
				present |= known[i].bit;
	}
	return present;
}

/* "Name:" + value qualified + the field's own line end; >0 if changed. */
static int
hr_emit_qualified(const struct hr_field *f, const char *name,
		  const char *domain, struct buf *out)
{
	int r = buf_append(out, name, strlen(name));
	if (r == 0)
		r = buf_append(out, ":", 1);
	if (r < 0)
		return r;
	int q = domain != NULL && domain[0] != '\0'
			? qualify_header(f->value, f->value_len, domain, out)
			: buf_append(out, f->value, f->value_len);
	if (q < 0)
		return q;
	/* A last field without a line end gets one: fields may follow. */
	if (f->eol_len > 0)
		r = buf_append(out, f->eol, f->eol_len);
	else
		r = buf_append(out, "\r\n", 2);
	return r < 0 ? r : q;
}

/* from_header = rewrite: the forced From, the original kept in Reply-To. */
static int
hr_emit_forced_from(const struct hr_field *f, bool keep_reply_to,
		    const struct header_rewrite_opts *o, struct buf *out)
{
	int r = buf_printf(out, "From: <%s>\r\n", o->force_from);
	if (r == 0 && keep_reply_to)
		r = hr_emit_qualified(f, "Reply-To", o->domain, out);
	return r < 0 ? r : 1;
}

static int
hr_emit_field(const struct hr_field *f, bool *reply_to_free,
	      const struct header_rewrite_opts *o, struct buf *out)
{
	if (o->from_rewrite && o->force_from != NULL &&
	    o->force_from[0] != '\0' && hr_is(f, "From")) {
		bool keep = *reply_to_free;
		*reply_to_free = false;
		return hr_emit_forced_from(f, keep, o, out);
	}
	if (hr_is_address_field(f) && o->domain != NULL && o->domain[0] != '\0') {
		char name[16];
		if (f->name_len >= sizeof name)
			return buf_append(out, f->name, f->total);
		memcpy(name, f->name, f->name_len);
		name[f->name_len] = '\0';
		return hr_emit_qualified(f, name, o->domain, out);
	}
	return buf_append(out, f->name, f->total);
}

int
header_rewrite_section(const char *hdr, size_t n,
		       const struct header_rewrite_opts *opts,
		       struct buf *out)
{
	unsigned present = hr_present(hdr, n), added = 0;
	bool reply_to_free = !(present & LOCAL_MSG_H_REPLY_TO);
	int changed = 0;
	struct hr_field f;
	for (size_t off = 0; off < n; off += f.total) {
		hr_field_at(hdr + off, n - off, &f);
		int r = hr_emit_field(&f, &reply_to_free, opts, out);
		if (r < 0)
			return r;
		changed += r > 0;
	}
	int r = local_msg_fixup_headers(present, &opts->fixup, out, &added);
	if (r < 0)
		return r;
	for (; added != 0; added &= added - 1)
		changed++;
	return changed;
}

/* ---- the streaming stage ---- */

void
header_rewrite_init(struct header_rewrite *h,
		    const struct header_rewrite_opts *opts)
{
	memset(h, 0, sizeof *h);
	h->opts = *opts;
	if (h->opts.hold_max == 0)
		h->opts.hold_max = HEADER_REWRITE_HOLD_MAX;
	buf_init(&h->hold, h->opts.hold_max);
}

void
header_rewrite_free(struct header_rewrite *h)
{
	buf_free(&h->hold);
}

/* Does the complete line l[0..n) continue the header section? */
static bool
hr_line_is_header(const char *l, size_t n, bool first)
{
	if (n == 0 || l[0] == '\r' || l[0] == '\n')
		return false; /* the empty line (or a bare CR line) */
	if (l[0] == ' ' || l[0] == '\t')
		return !first;
	size_t i = 0;
	while (i < n && l[i] >= 33 && l[i] <= 126 && l[i] != ':')
		i++;
	return i > 0 && i < n && l[i] == ':';
}

/*
 * The header section is hold[0..end): write it rewritten, then the rest.
 * When the body starts without the empty line (a text line right after
 * the fields, or no fields at all), one is inserted, as the sendmail
 * command does: otherwise added fields would swallow the first line.
 */
static int
hr_flush(struct header_rewrite *h, size_t end, struct buf *out)
{
	int r = header_rewrite_section(h->hold.data, end, &h->opts, out);
	if (r < 0)
		return r;
	h->changed = (unsigned)r;
	h->passthrough = true;
	const char *rest = h->hold.data + end;
	size_t n = h->hold.len - end;
	bool blank = n == 0 || rest[0] == '\n' ||
		     (rest[0] == '\r' && n > 1 && rest[1] == '\n');
	if (!blank && buf_append(out, "\r\n", 2) < 0)
		return -ENOBUFS;
	return buf_append(out, rest, n);
}

static int
hr_give_up(struct header_rewrite *h, struct buf *out)
{
	h->gave_up = true;
	h->passthrough = true;
	return buf_append(out, h->hold.data, h->hold.len);
}

int
header_rewrite_feed(struct header_rewrite *h, const char *in, size_t n,
		    struct buf *out)
{
	while (!h->passthrough && n > 0) {
		const char *lf = memchr(in, '\n', n);
		size_t take = lf != NULL ? (size_t)(lf - in) + 1 : n;
		if (h->hold.len + take > h->opts.hold_max) {
			int r = hr_give_up(h, out);
			if (r < 0)
				return r;
			break;
		}
		if (buf_append(&h->hold, in, take) < 0)
			return -ENOMEM;
		in += take;
		n -= take;
		if (lf == NULL)
			break;
		const char *line = h->hold.data + h->scanned;
		size_t len = h->hold.len - h->scanned;
		if (!hr_line_is_header(line, len, h->scanned == 0)) {
			int r = hr_flush(h, h->scanned, out);
			if (r < 0)
				return r;
			break;
		}
		h->scanned = h->hold.len;
	}
	return n > 0 ? buf_append(out, in, n) : 0;
}

int
header_rewrite_finish(struct header_rewrite *h, struct buf *out)
{
	if (h->passthrough)
		return 0;
	/* A last line without its line end is not taken as a field. */
	return hr_flush(h, h->scanned, out);
}
