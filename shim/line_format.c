/*
 * line_format.c - JSON validation, JSON escaping and the three line formats.
 *
 * Runs inside write hooks: no allocation, no I/O, bounded recursion (object
 * nesting deeper than JSON_MAX_DEPTH is treated as plain text). Output never
 * exceeds line_format_bound().
 */
#include "line_format.h"

#include <emmintrin.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/platform/x86.h>

#include "fork_hot.h"

#define JSON_MAX_DEPTH 32

/* ---- JSON validation ------------------------------------------------- */

struct json_cursor {
	const unsigned char *p, *end;
};

static bool json_value(struct json_cursor *c, int depth);

static void skip_ws(struct json_cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end)
{
	unsigned char b = p[0];
	size_t n;
	uint32_t cp;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf) {
		n = 2;
		cp = b & 0x1f;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3;
		cp = b & 0x0f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4;
		cp = b & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static bool json_string(struct json_cursor *c)
{
	c->p++; /* opening quote */
	while (c->p < c->end) {
		unsigned char b = *c->p;
		if (b == '"') {
			c->p++;
			return true;
		}
		if (b < 0x20)
			return false;
		if (b == '\\') {
			if (c->end - c->p < 2)
				return false;
			unsigned char e = c->p[1];
			if (e == 'u') {
				if (c->end - c->p < 6)
					return false;
				for (int i = 2; i < 6; i++) {
					unsigned char h = c->p[i];
					if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
					      (h >= 'A' && h <= 'F')))
						return false;
				}
				c->p += 6;
			} else if (strchr("\"\\/bfnrt", e) && e) {
				c->p += 2;
			} else {
				return false;
			}
			continue;
		}
		size_t n = utf8_sequence(c->p, c->end);
		if (n == 0)
			return false;
		c->p += n;
	}
	return false;
}

static bool json_digits(struct json_cursor *c)
{
	const unsigned char *start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start;
}

static bool json_number(struct json_cursor *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return false;
	if (*c->p == '0')
		c->p++;
	else if (!json_digits(c))
		return false;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!json_digits(c))
			return false;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!json_digits(c))
			return false;
	}
	return true;
}

static bool json_literal(struct json_cursor *c, const char *word, size_t n)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* Object or array; c->p is at the opening bracket. */
static bool json_container(struct json_cursor *c, int depth)
{
	unsigned char close = *c->p == '{' ? '}' : ']';
	bool object = close == '}';
	if (depth >= JSON_MAX_DEPTH)
		return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return true;
	}
	for (;;) {
		if (object) {
			if (c->p >= c->end || *c->p != '"' || !json_string(c))
				return false;
			skip_ws(c);
			if (c->p >= c->end || *c->p != ':')
				return false;
			c->p++;
			skip_ws(c);
		}
		if (!json_value(c, depth + 1))
			return false;
		skip_ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == close) {
			c->p++;
			return true;
		}
		if (*c->p != ',')
			return false;
		c->p++;
		skip_ws(c);
	}
}

static bool json_value(struct json_cursor *c, int depth)
{
	if (c->p >= c->end)
		return false;
	switch (*c->p) {
	case '{':
	case '[':
		return json_container(c, depth);
	case '"':
		return json_string(c);
	case 't':
		return json_literal(c, "true", 4);
	case 'f':
		return json_literal(c, "false", 5);
	case 'n':
		return json_literal(c, "null", 4);
	default:
		return json_number(c);
	}
}

bool json_is_object_line(const char *line, size_t len)
{
	struct json_cursor c = {(const unsigned char *)line, (const unsigned char *)line + len};
	while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))
		c.p++;
	if (c.p >= c.end || *c.p != '{')
		return false;
	if (!json_container(&c, 0))
		return false;
	while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == '\r'))
		c.p++;
	return c.p == c.end;
}

/* ---- JSON escaping --------------------------------------------------- */

/* The escaper's constants (32 of each for AVX2, the first 16 for SSE2),
 * loaded from memory through a pointer the compiler cannot see into: else
 * it builds each in registers, some 30 instructions per line. */
static const uint8_t plain_run_constants[4][32] __attribute__((aligned(32))) = {
	{[0 ... 31] = 1}, {[0 ... 31] = 0x21}, {[0 ... 31] = '"'}, {[0 ... 31] = '\\'}};

/* The bytes of a vector that need escaping or a UTF-8 check: all but
 * 0x20..0x7e other than '"' and '\\' (v + 1 < 0x21, signed, catches bytes
 * below 0x20, 0x7f and 0x80 up at once). k: plain_run_constants. */
static inline __attribute__((always_inline)) unsigned care_mask16(__m128i v, const __m128i *k)
{
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(
		_mm_cmplt_epi8(_mm_add_epi8(v, _mm_load_si128(k)), _mm_load_si128(k + 2)),
		_mm_or_si128(_mm_cmpeq_epi8(v, _mm_load_si128(k + 4)),
			     _mm_cmpeq_epi8(v, _mm_load_si128(k + 6)))));
}

/* The mask of the bytes of a 32-byte vector that need care (as
 * care_mask16). k: plain_run_constants. */
__attribute__((target("avx2"))) static inline uint32_t care_mask32(__m256i v, const __m256i *k)
{
	return (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(
		_mm256_cmpgt_epi8(_mm256_load_si256(k + 1), _mm256_add_epi8(v, _mm256_load_si256(k))),
		_mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_load_si256(k + 2)),
				_mm256_cmpeq_epi8(v, _mm256_load_si256(k + 3)))));
}

/* The bits of the 32 bytes of v that are '"' and those that are '\\'.
 * k: plain_run_constants. */
__attribute__((target("avx2"))) static inline void
quote_marks32(__m256i v, const __m256i *k, uint32_t *quotes, uint32_t *backslashes)
{
	*quotes = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_load_si256(k + 2)));
	*backslashes = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_load_si256(k + 3)));
}

/* Copies 32 bytes and returns the mask of those that need care. */
__attribute__((target("avx2"))) static inline uint32_t copy32(const unsigned char *p, char *o,
							      const __m256i *k)
{
	__m256i v = _mm256_loadu_si256((const __m256i *)p);
	_mm256_storeu_si256((__m256i *)o, v);
	return care_mask32(v, k);
}

/* Copies the next bytes of p (left of them, 1 or more) to o a vector at a
 * time and returns how many need no escaping: all left of them, or up to
 * the first that does (or needs a UTF-8 check). o may receive up to 15
 * bytes past what it returns and past left: json_escape's bound leaves
 * room. A tail shorter than 16 bytes is copied into a vector first. */
static inline __attribute__((always_inline)) size_t copy_plain(const unsigned char *p, size_t left,
							       char *o)
{
	const void *k = plain_run_constants;
	__asm__("" : "+r"(k));
	size_t done = 0;
	unsigned mask;
	for (; left - done >= 16; done += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(p + done));
		_mm_storeu_si128((__m128i *)(o + done), v);
		if ((mask = care_mask16(v, k)) != 0)
			return done + (size_t)__builtin_ctz(mask);
	}
	size_t rest = left - done;
	if (rest == 0)
		return left;
	unsigned char tail[16] __attribute__((aligned(16)));
	_mm_store_si128((__m128i *)tail, _mm_setzero_si128());
	memcpy(tail, p + done, rest);
	__m128i v = _mm_load_si128((const __m128i *)tail);
	_mm_storeu_si128((__m128i *)(o + done), v);
	mask = care_mask16(v, k) & ((1u << rest) - 1);
	return done + (mask ? (size_t)__builtin_ctz(mask) : rest);
}

/* 0: not asked yet, 1: no AVX2, 2: AVX2. On the page a fork child writes
 * anyway (fork_hot.h); a fork server's parent asks when it listens
 * (line_format_prepare). */
static _Atomic int avx2_known FORK_HOT;

/* Whether AVX2 is usable (the processor has it, the kernel saves its
 * registers), as glibc's loader found at start (sys/platform/x86.h): no
 * cpuid here. In a VM cpuid traps to the hypervisor; a fork server's
 * children each asked it (about 40 us a request under busybox httpd). Not
 * through the compiler's CPU model either, whose constructor would run in
 * every process. */
static FORK_PATH __attribute__((noinline)) bool ask_avx2(void)
{
	bool yes = CPU_FEATURE_ACTIVE(AVX2);
	atomic_store_explicit(&avx2_known, yes ? 2 : 1, memory_order_relaxed);
	return yes;
}

static inline bool has_avx2(void)
{
	int k = atomic_load_explicit(&avx2_known, memory_order_relaxed);
	return __builtin_expect(k == 0, 0) ? ask_avx2() : k == 2;
}

void line_format_prepare(void)
{
	(void)has_avx2();
}

/* For the bytes below 0x80 JSON escapes with two: those two (the
 * backslash, then the byte after it) as they lie in memory, and above them
 * what seeing it tells (LINE_SAW_*); 0: \\u00XX (or not escaped). */
#define SHORT_ESCAPE(c, saw) ((uint32_t)('\\' | (c) << 8 | (saw) << 16))
static const uint32_t short_escape[128] = {
	['"'] = SHORT_ESCAPE('"', LINE_SAW_QUOTE), ['\\'] = SHORT_ESCAPE('\\', 0),
	['\n'] = SHORT_ESCAPE('n', LINE_SAW_NEWLINE), ['\r'] = SHORT_ESCAPE('r', 0),
	['\t'] = SHORT_ESCAPE('t', 0), ['\b'] = SHORT_ESCAPE('b', 0), ['\f'] = SHORT_ESCAPE('f', 0)};

static char *escape_byte(char *o, unsigned char b, bool surrogate)
{
	static const char digits[] = "0123456789abcdef";
	memcpy(o, surrogate ? "\\udc" : "\\u00", 4);
	o[4] = digits[b >> 4];
	o[5] = digits[b & 15];
	return o + 6;
}

/* The byte at p (p < end), which needs escaping or a UTF-8 check, to o:
 * returns how many input bytes it took (a valid UTF-8 sequence is copied
 * whole) and moves *o past its output; adds to *saw what it tells
 * (LINE_SAW_*). */
static inline __attribute__((always_inline)) size_t
escape_care(const unsigned char *p, const unsigned char *end, char **o, unsigned *saw)
{
	unsigned char b = *p;
	if (b >= 0x80) {
		size_t n = utf8_sequence(p, end);
		if (n == 0) {
			*o = escape_byte(*o, b, true);
			return 1;
		}
		memcpy(*o, p, n);
		*o += n;
		return n;
	}
	uint32_t e = short_escape[b];
	if (e) {
		memcpy(*o, &e, 2); /* little-endian: its two bytes */
		*o += 2;
		*saw |= e >> 16;
	} else {
		*o = escape_byte(*o, b, false);
	}
	return 1;
}

/* The escaper without AVX2: runs of plain bytes go 16 bytes at a time,
 * each byte that needs escaping or a UTF-8 check is handled between
 * them. Adds to *seen what the input held (line_format.h: LINE_SAW_*), and
 * stops once it saw one of stop's. */
static size_t escape_sse2(const char *in, size_t len, char *out, unsigned *seen, unsigned stop)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + len;
	char *o = out;
	unsigned saw = 0;
	while (p < end) {
		size_t run = copy_plain(p, (size_t)(end - p), o);
		p += run;
		o += run;
		if (p < end) {
			p += escape_care(p, end, &o, &saw);
			if (saw & stop)
				break;
		}
	}
	*seen |= saw;
	return (size_t)(o - out);
}

/* Copies the n bytes at p (n < 32) to o a vector at a time, the input
 * ending at end: 32 bytes when 32 can be read from p, else (only in
 * escape_rest_avx2's copy of a line's tail, which can be read 16 bytes
 * past its end) 16 or 32. The output that follows (a byte at least for
 * each input byte after the n) is written over the bytes past the n; the
 * last vector of a line may reach up to 15 bytes past its output's end. */
__attribute__((target("avx2"))) static inline void copy_run(char *o, const unsigned char *p,
							    size_t n, const unsigned char *end)
{
	if (end - p >= 32) {
		_mm256_storeu_si256((__m256i *)o, _mm256_loadu_si256((const __m256i *)p));
		return;
	}
	_mm_storeu_si128((__m128i *)o, _mm_loadu_si128((const __m128i *)p));
	if (n > 16)
		_mm_storeu_si128((__m128i *)(o + 16), _mm_loadu_si128((const __m128i *)(p + 16)));
}

/* The escaper with AVX2 from byte from on (the bytes before it copied as
 * they are): 32 bytes at a time, a block with no byte that needs care
 * copied whole; in one that has some, the mask found once gives each of
 * them in turn, the plain runs between them copied by copy_run, and the
 * next block starts after the last of them (or after a UTF-8 sequence that
 * reaches past it). The line's last bytes, fewer than 32, are taken from a
 * copy of them at the end of 32 bytes followed by 16 zeroes, where vectors
 * may be loaded anywhere. Stops once it saw one of stop's (LINE_SAW_*),
 * met only among the bytes that are neither '"' nor '\\'. */
FORK_PATH __attribute__((target("avx2"), noinline)) static size_t
escape_rest_avx2(const char *in, size_t len, char *out, unsigned *seen, size_t from,
		 unsigned stop)
{
	const unsigned char *p = (const unsigned char *)in + from, *end = (const unsigned char *)in + len;
	const void *k = plain_run_constants;
	__asm__("" : "+r"(k));
	unsigned char tail[48] __attribute__((aligned(32)));
	char *o = out + from;
	unsigned saw = 0;
	while (p < end) {
		size_t left = (size_t)(end - p);
		uint64_t mask; /* 64 bits: cleared below a taken byte up to 35 */
		if (left >= 32) {
			if ((mask = copy32(p, o, k)) == 0) {
				p += 32;
				o += 32;
				continue;
			}
		} else {
			if (end != tail + 32) { /* into the copy */
				_mm_store_si128((__m128i *)(tail + 32), _mm_setzero_si128());
				if (len >= 32) {
					_mm256_store_si256((__m256i *)tail,
							   _mm256_loadu_si256((const __m256i *)(end - 32)));
				} else {
					_mm256_store_si256((__m256i *)tail, _mm256_setzero_si256());
					memcpy(tail + 32 - left, p, left);
				}
				p = tail + 32 - left;
				end = tail + 32;
			}
			mask = care_mask32(_mm256_load_si256((const __m256i *)tail), k) >> (32 - left);
			if (mask == 0) {
				copy_run(o, p, left, end);
				o += left;
				break;
			}
		}
		size_t at = (size_t)__builtin_ctzll(mask), taken;
		if (left < 32) /* else copy32 has stored the run before it */
			copy_run(o, p, at, end);
		o += at;
		/* The block's marks, as mask has them: a block of the line,
		 * or the tail's copy moved down to the line's bytes. */
		uint32_t quotes, backslashes;
		if (left >= 32) {
			quote_marks32(_mm256_loadu_si256((const __m256i *)p), k, &quotes, &backslashes);
		} else {
			quote_marks32(_mm256_load_si256((const __m256i *)tail), k, &quotes, &backslashes);
			quotes >>= 32 - left;
			backslashes >>= 32 - left;
		}
		if (mask == (quotes | backslashes)) {
			/* The usual case: each a '"' or '\\', a backslash
			 * written before it. */
			saw |= quotes ? LINE_SAW_QUOTE : 0;
			for (;;) {
				uint16_t pair = (uint16_t)('\\' | p[at] << 8);
				memcpy(o, &pair, 2);
				o += 2;
				taken = at + 1;
				mask &= mask - 1;
				if (!mask || (left >= 32 && left - taken < 32))
					break;
				at = (size_t)__builtin_ctzll(mask);
				copy_run(o, p + taken, at - taken, end);
				o += at - taken;
			}
			p += taken;
			continue;
		}
		for (;;) {
			taken = at + escape_care(p + at, end, &o, &saw);
			if (saw & stop)
				goto seen_stop;
			mask &= ~0ull << taken;
			/* a block of the line itself: its runs are copied 32
			 * bytes at a time, and so only while 32 can be read */
			if (!mask || (left >= 32 && left - taken < 32))
				break;
			at = (size_t)__builtin_ctzll(mask);
			copy_run(o, p + taken, at - taken, end);
			o += at - taken;
		}
		p += taken;
	}
seen_stop:
	*seen |= saw;
	return (size_t)(o - out);
}

/* With AVX2: most lines need no escaping. They are copied 32 bytes at a
 * time, the last 32 bytes of the line stored over bytes already copied as
 * they are, with no registers to save; escape_rest_avx2 takes over from
 * the first byte that needs care. */
FORK_PATH __attribute__((target("avx2"))) static size_t
escape_avx2(const char *in, size_t len, char *out, unsigned *seen, unsigned stop)
{
	const unsigned char *p = (const unsigned char *)in;
	const void *k = plain_run_constants;
	__asm__("" : "+r"(k));
	size_t done = 0;
	uint32_t mask;
	if (len < 32)
		return escape_rest_avx2(in, len, out, seen, 0, stop);
	for (; len - done >= 32; done += 32)
		if ((mask = copy32(p + done, out + done, k)) != 0)
			return escape_rest_avx2(in, len, out, seen, done + (size_t)__builtin_ctz(mask),
						stop);
	if (done < len && (mask = copy32(p + len - 32, out + len - 32, k) >> (32 - (len - done))) != 0)
		return escape_rest_avx2(in, len, out, seen, done + (size_t)__builtin_ctz(mask),
					stop);
	return len;
}

/* json_escape, also adding to *seen what the input held; it stops once it
 * saw one of stop's (LINE_SAW_*). */
static size_t escape(const char *in, size_t len, char *out, unsigned *seen, unsigned stop)
{
	return has_avx2() ? escape_avx2(in, len, out, seen, stop)
			  : escape_sse2(in, len, out, seen, stop);
}

size_t json_escape(const char *in, size_t len, char *out)
{
	unsigned seen = 0;
	return escape(in, len, out, &seen, 0);
}

/* ---- formats --------------------------------------------------------- */

size_t syslog_header_len(const char *msg, size_t len)
{
	enum { HEADER_MAX = 512 };
	size_t i = 1;
	if (len < 3 || msg[0] != '<')
		return 0;
	while (i < len && i < 4 && msg[i] >= '0' && msg[i] <= '9') /* PRI: 1-3 digits */
		i++;
	if (i == 1 || i >= len || msg[i] != '>')
		return 0;
	for (i++; i + 1 < len && i < HEADER_MAX; i++)
		if (msg[i] == ':' && msg[i + 1] == ' ')
			return i + 2;
	return 0;
}

static char *put(char *o, const void *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* One field: "name":"value" (json, prefix) or name=value (logfmt), after
 * sep when it is not the first. */
static FORK_PATH char *
put_field(char *o, const char *start, const struct line_style *style,
	  const char *name, size_t name_len, const char *value, size_t value_len)
{
	bool logfmt = style->format == FORMAT_LOGFMT;
	if (o != start)
		*o++ = logfmt ? ' ' : ',';
	if (!logfmt)
		*o++ = '"';
	o = put(o, name, name_len);
	o = put(o, logfmt ? "=" : "\":\"", logfmt ? 1 : 3);
	o = put(o, value, value_len);
	if (!logfmt)
		*o++ = '"';
	return o;
}

/* line_fields for a style whose fields are other than the id alone. Out
 * of line: the usual style's call saves no registers for this loop. */
static FORK_PATH __attribute__((noinline)) size_t
listed_fields(const struct line_style *style, const char *id, size_t id_len,
	      const struct trace_ctx *trace, char out[LINE_FIELDS_MAX])
{
	char *o = out;
	for (uint8_t i = 0; i < style->field_count; i++) {
		switch (style->fields[i]) {
		case FIELD_REQUEST_ID:
			if (id_len)
				o = put_field(o, out, style, style->field, style->field_len, id,
					      id_len);
			break;
		case FIELD_TRACE_ID:
			if (trace)
				o = put_field(o, out, style, "trace_id", 8, trace->trace_id,
					      sizeof(trace->trace_id));
			break;
		case FIELD_SPAN_ID:
			if (trace)
				o = put_field(o, out, style, "span_id", 7, trace->span_id,
					      sizeof(trace->span_id));
			break;
		}
	}
	return (size_t)(o - out);
}

FORK_PATH size_t line_fields(const struct line_style *style, const char *id, size_t id_len,
			     const struct trace_ctx *trace, char out[LINE_FIELDS_MAX])
{
	if (style->field_count != 1 || style->fields[0] != FIELD_REQUEST_ID)
		return listed_fields(style, id, id_len, trace, out);
	/* The usual fields: the id alone. */
	return id_len ? (size_t)(put_field(out, out, style, style->field, style->field_len, id,
					   id_len) - out)
		      : 0;
}

size_t line_format(const struct line_style *style, const char *fields, size_t fields_len,
		   const char *line, size_t len, char *out)
{
	unsigned seen;
	return line_format_noting(style, fields, fields_len, line, len, out, &seen, 0);
}

FORK_PATH size_t
line_format_noting(const struct line_style *style, const char *fields, size_t fields_len,
		   const char *line, size_t len, char *out, unsigned *seen, unsigned stop)
{
	char *o = out;
	*seen = 0;

	switch (style->format) {
	case FORMAT_PREFIX:
		*o++ = '{';
		o = put(o, fields, fields_len);
		o = put(o, "} ", 2);
		o = put(o, line, len);
		*seen = memchr(line, '"', len) ? LINE_SAW_QUOTE : 0;
		break;
	case FORMAT_LOGFMT:
		if (fields_len) {
			o = put(o, fields, fields_len);
			*o++ = ' ';
		}
		o = put(o, line, len);
		*seen = memchr(line, '"', len) ? LINE_SAW_QUOTE : 0;
		break;
	case FORMAT_JSON:
		if (style->cee) {
			o = put(o, "@cee:", 5);
			if (len >= 5 && memcmp(line, "@cee:", 5) == 0) {
				line += 5;
				len -= 5;
			}
		}
		if (len > 0 && line_may_be_object(line[0]) && json_is_object_line(line, len)) {
			*seen = LINE_SAW_QUOTE; /* an object has keys */
			if (!fields_len)
				return (size_t)(put(o, line, len) - out);
			const char *brace = memchr(line, '{', len);
			size_t head = (size_t)(brace - line) + 1;
			o = put(o, line, head);
			o = put(o, fields, fields_len);
			const char *q = brace + 1;
			while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
				q++;
			if (*q != '}')
				*o++ = ',';
			o = put(o, line + head, len - head);
			break;
		}
		*o++ = '{';
		if (fields_len) {
			o = put(o, fields, fields_len);
			*o++ = ',';
		}
		o = put(o, "\"msg\":\"", 7);
		o += escape(line, len, o, seen, stop);
		o = put(o, "\"}", 2);
		break;
	}
	return (size_t)(o - out);
}
