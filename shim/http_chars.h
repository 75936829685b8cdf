/*
 * http_chars.h - the character classes and body arithmetic that the request
 * parser (http_parser.c) and the response parser (http_response.c) share:
 * RFC 9110 token characters, ASCII case folding, chunk-size hex digits,
 * skipping body bytes, and SSE2 searches for the bytes that end a line or a
 * header name (request_id.c's check of an id's bytes uses the same byte
 * range test). Pure: no state, no libc interposition; a search never reads
 * outside the buffer it is given.
 */
#ifndef REQID_HTTP_CHARS_H
#define REQID_HTTP_CHARS_H

#include <emmintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* ---- searching ---------------------------------------------------------- */

/* Marks, one bit per byte of a 16-byte block, the bytes a search stops at. */
typedef unsigned (*http_stop_bytes)(__m128i block);

/* CR and LF: the end of a line. */
static inline unsigned http_eol_bytes(__m128i x)
{
	__m128i cr = _mm_cmpeq_epi8(x, _mm_set1_epi8('\r'));
	__m128i lf = _mm_cmpeq_epi8(x, _mm_set1_epi8('\n'));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(cr, lf));
}

/* Each byte of x in lo..hi (unsigned): adding 0x80 - lo moves lo..hi to
 * the lowest signed bytes, where one signed compare finds them. */
static inline __m128i http_in_range(__m128i x, unsigned char lo, unsigned char hi)
{
	__m128i d = _mm_add_epi8(x, _mm_set1_epi8((char)(0x80 - lo)));
	return _mm_cmplt_epi8(d, _mm_set1_epi8((char)(-128 + (hi - lo) + 1)));
}

/* Bytes other than the usual ones of header names (letters, digits, '-'):
 * the other token characters, and whatever ends the name. */
static inline unsigned http_unusual_name_bytes(__m128i x)
{
	__m128i letter = http_in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 'z');
	__m128i usual = _mm_or_si128(_mm_or_si128(letter, http_in_range(x, '0', '9')),
				     _mm_cmpeq_epi8(x, _mm_set1_epi8('-')));
	return ~(unsigned)_mm_movemask_epi8(usual) & 0xffff;
}

/* The 4 <= n < 16 bytes at b as a block (the rest zero), read with loads
 * that overlap rather than pass b + n. */
static inline __m128i http_load_short(const unsigned char *b, size_t n)
{
	uint64_t lo, hi = 0;
	if (n > 8) {
		memcpy(&lo, b, 8);
		memcpy(&hi, b + n - 8, 8);
		hi >>= 8 * (16 - n);
	} else {
		uint32_t head, tail;
		memcpy(&head, b, 4);
		memcpy(&tail, b + n - 4, 4);
		lo = head | (uint64_t)tail << 8 * (n - 4);
	}
	return _mm_set_epi64x((long long)hi, (long long)lo);
}

/* The first byte of s[i, len) that stop marks, or len. Only bytes of s[0,
 * len) are read: the last block is moved back to end at len; a buffer
 * shorter than a block is loaded in pieces, its last few bytes one at a
 * time. Whole blocks come first: they are the usual case. */
static inline __attribute__((always_inline)) size_t
http_scan(const unsigned char *s, size_t i, size_t len, http_stop_bytes stop)
{
	unsigned m;
	for (; len - i >= 16; i += 16) {
		m = stop(_mm_loadu_si128((const __m128i *)(s + i)));
		if (m)
			return i + (unsigned)__builtin_ctz(m);
	}
	if (i == len)
		return len;
	if (len >= 16) {
		m = stop(_mm_loadu_si128((const __m128i *)(s + len - 16))) >> (16 - (len - i));
		return m ? i + (unsigned)__builtin_ctz(m) : len;
	}
	if (len - i < 4) {
		while (i < len && !(stop(_mm_cvtsi32_si128(s[i])) & 1))
			i++;
		return i;
	}
	m = stop(http_load_short(s + i, len - i)) & ((1u << (len - i)) - 1);
	return m ? i + (unsigned)__builtin_ctz(m) : len;
}

/* The end of the run of token characters from s[i]: the first other byte,
 * or len. */
static inline __attribute__((always_inline)) size_t
http_token_end(const unsigned char *s, size_t i, size_t len)
{
	for (;;) {
		i = http_scan(s, i, len, http_unusual_name_bytes);
		if (i == len || !http_is_tchar(s[i]))
			return i;
		i++;
	}
}

#endif
