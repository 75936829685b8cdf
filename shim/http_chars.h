/*
 * http_chars.h - the character classes and body arithmetic that the request
 * parser (http_parser.c) and the response parser (http_response.c) share:
 * RFC 9110 token characters, ASCII case folding, chunk-size hex digits, and
 * skipping body bytes. Pure: no state, no libc interposition.
 */
#ifndef REQID_HTTP_CHARS_H
#define REQID_HTTP_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Token characters: ALPHA, DIGIT and !#$%&'*+-.^_`|~ (http_parser.c). */
extern const bool http_tchar[256] __attribute__((visibility("hidden")));

static inline bool http_is_tchar(unsigned char c)
{
	return http_tchar[c];
}

static inline unsigned char http_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* The value of a hex digit of a chunk size; -1 for any other byte. */
static inline int http_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = http_lower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Body bytes: of avail bytes at hand, takes those still *remaining and
 * returns how many. */
static inline size_t http_take_body(uint64_t *remaining, size_t avail)
{
	size_t take = avail < *remaining ? avail : (size_t)*remaining;
	*remaining -= take;
	return take;
}

#endif
