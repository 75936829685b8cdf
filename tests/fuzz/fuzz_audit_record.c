/*
 * fuzz_audit_record.c - libFuzzer target for shim/audit_record.c.
 *
 * The first input byte picks the buffer's size (1 to 256) and the text
 * limit; the rest is a log line. Builds a record in a heap buffer of
 * exactly that size (ASan catches any write past it) and checks that it is
 * one line (a newline only in its last byte, a tab only between fields),
 * that an uncut record unescapes back to the line, and that a cut one says
 * so. Never prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_record.h"

/* Reverses audit_field_text's escaping of s[0, n) into out; its length. */
static size_t unescape(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[k++] = s[i];
			continue;
		}
		if (++i == n)
			abort();
		switch (s[i]) {
		case '\\': out[k++] = '\\'; break;
		case 't': out[k++] = '\t'; break;
		case 'n': out[k++] = '\n'; break;
		case 'r': out[k++] = '\r'; break;
		case 'x': {
			if (i + 2 >= n)
				abort();
			char hex[3] = {s[i + 1], s[i + 2], 0};
			out[k++] = (char)strtol(hex, NULL, 16);
			i += 2;
			break;
		}
		default:
			abort();
		}
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cap = (size_t)data[0] + 1, max = (size_t)data[0] * 2;
	const char *text = (const char *)data + 1;
	size_t n = size - 1;
	char *buf = malloc(cap);
	if (!buf)
		return 0;
	struct audit_record r;
	audit_record_start(&r, buf, cap, 'L');
	audit_field_u64(&r, n);
	audit_field_text(&r, text, n, max);
	size_t len = audit_record_end(&r);
	if (len == 0 || len > cap || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1))
		abort();
	const char *tab = memchr(buf, '\t', len);
	if (!r.overflow) {
		/* "L", tab, the count, tab, the text */
		const char *second = tab ? memchr(tab + 1, '\t', len - (size_t)(tab + 1 - buf)) : NULL;
		if (!second || memchr(second + 1, '\t', len - (size_t)(second + 1 - buf)))
			abort();
		char *back = malloc(4 * n + 8);
		if (!back)
			abort();
		size_t field = len - 1 - (size_t)(second + 1 - buf);
		size_t dots = n > max ? 3 : 0;
		size_t k = unescape(second + 1, field - dots, back);
		size_t want = n < max ? n : max;
		if (k != want || memcmp(back, text, want) != 0)
			abort();
		free(back);
	}
	free(buf);
	return 0;
}
