/*
 * audit_record.c - building audit records (see audit_record.h).
 *
 * Never writes past the buffer, never allocates.
 */
#include "audit_record.h"

#include <string.h>

static void put(struct audit_record *r, const char *s, size_t n)
{
	if (r->overflow || n > r->cap - r->len) {
		r->overflow = true;
		return;
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

void audit_record_start(struct audit_record *r, char *buf, size_t cap, char kind)
{
	r->buf = buf;
	r->cap = cap;
	r->len = 0;
	r->overflow = false;
	put(r, &kind, 1);
}

void audit_field_raw(struct audit_record *r, const char *s, size_t n)
{
	put(r, "\t", 1);
	put(r, s, n);
}

void audit_field_u64(struct audit_record *r, uint64_t v)
{
	char digits[20];
	size_t n = 0;
	do {
		digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	audit_field_raw(r, digits + sizeof(digits) - n, n);
}

static void put_hex(struct audit_record *r, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char digits[16];
	size_t n = 0;
	do {
		digits[sizeof(digits) - ++n] = hex[v & 15];
		v >>= 4;
	} while (v);
	put(r, digits + sizeof(digits) - n, n);
}

void audit_field_text(struct audit_record *r, const char *s, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	put(r, "\t", 1);
	size_t take = n < max ? n : max;
	size_t run = 0; /* bytes that pass as they are, not yet put */
	for (size_t i = 0; i < take; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '\\' && c != 0x7f)
			continue;
		put(r, s + run, i - run);
		run = i + 1;
		char esc[4] = {'\\', 0, 0, 0};
		size_t len = 2;
		switch (c) {
		case '\\': esc[1] = '\\'; break;
		case '\t': esc[1] = 't'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		default:
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			len = 4;
		}
		put(r, esc, len);
	}
	put(r, s + run, take - run);
	if (take < n)
		put(r, "...", 3);
}

void audit_field_addresses(struct audit_record *r, void *const *addrs, int count)
{
	put(r, "\t", 1);
	for (int i = 0; i < count; i++) {
		if (i)
			put(r, ",", 1);
		put_hex(r, (uint64_t)(uintptr_t)addrs[i]);
	}
}

size_t audit_record_end(struct audit_record *r)
{
	if (r->cap == 0)
		return 0;
	if (!r->overflow && r->len < r->cap) {
		r->buf[r->len++] = '\n';
		return r->len;
	}
	/* Cut: the record ends where it had to, still one line. */
	r->overflow = true;
	if (r->len == r->cap)
		r->len--;
	r->buf[r->len++] = '\n';
	return r->len;
}
