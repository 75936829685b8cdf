/*
 * request_id.c - id validation and generation.
 *
 * Generation is called from hooks, so it must stay async-signal-safe: one
 * atomic increment and a hash over 24 bytes on the stack. Never allocates,
 * never makes a syscall (the key comes from the caller).
 */
#include "request_id.h"

#include <emmintrin.h>
#include <string.h>
#include <xxhash.h>

#include "fork_hot.h"
#include "http_chars.h"

/* The bytes of x that an id may not hold, one bit each. */
static inline __attribute__((always_inline)) unsigned non_id_bytes(__m128i x)
{
	__m128i letter = http_in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 'z');
	__m128i digit_or_colon = http_in_range(x, '0', ':');
	__m128i dash_or_dot = http_in_range(x, '-', '.');
	__m128i underscore = _mm_cmpeq_epi8(x, _mm_set1_epi8('_'));
	__m128i ok = _mm_or_si128(_mm_or_si128(letter, digit_or_colon),
				  _mm_or_si128(dash_or_dot, underscore));
	return ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
}

/* 16 bytes at a time. The blocks may overlap, and a short id is spread
 * over a block from loads that overlap: a byte looked at twice is still one
 * of the id's, and no byte outside s[0, len) is read. */
static inline __attribute__((always_inline)) bool id_is_valid(const char *s, size_t len)
{
	const unsigned char *b = (const unsigned char *)s;
	if (len == 0 || len > REQUEST_ID_MAX)
		return false;
	if (len >= 16) {
		unsigned bad = non_id_bytes(_mm_loadu_si128((const __m128i *)(b + len - 16)));
		for (size_t i = 0; i + 16 < len; i += 16)
			bad |= non_id_bytes(_mm_loadu_si128((const __m128i *)(b + i)));
		return bad == 0;
	}
	__m128i x;
	if (len >= 8) {
		uint64_t head, tail;
		memcpy(&head, b, 8);
		memcpy(&tail, b + len - 8, 8);
		x = _mm_set_epi64x((long long)tail, (long long)head);
	} else if (len >= 4) {
		uint32_t head, tail;
		memcpy(&head, b, 4);
		memcpy(&tail, b + len - 4, 4);
		x = _mm_set_epi32((int)tail, (int)head, (int)tail, (int)head);
	} else {
		uint32_t bytes = b[0] | (uint32_t)b[len / 2] << 8 | (uint32_t)b[len - 1] << 16 |
				 (uint32_t)b[0] << 24;
		x = _mm_set1_epi32((int)bytes);
	}
	return non_id_bytes(x) == 0;
}

LOOP_PATH bool request_id_is_valid(const char *s, size_t len)
{
	return id_is_valid(s, len);
}

/* The same check in the start-up code's window: a program exec'ed for a
 * request checks the id it was given as it starts, and a call to the one
 * above would map the event-loop server's window for it alone (a fault in
 * every CGI program). */
START_PATH bool request_id_is_valid_at_start(const char *s, size_t len)
{
	return id_is_valid(s, len);
}

/* The bytes of x that are lowercase hex digits, and those that are '0',
 * one bit each. */
static inline __attribute__((always_inline)) unsigned hex_lower_bytes(__m128i x, unsigned *zeros)
{
	*zeros = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('0')));
	__m128i ok = _mm_or_si128(http_in_range(x, '0', '9'), http_in_range(x, 'a', 'f'));
	return (unsigned)_mm_movemask_epi8(ok);
}

FORK_PATH bool request_id_is_trace_id(const char *s, size_t len)
{
	_Static_assert(GENERATED_ID_LEN == 32, "a trace-id is two SSE2 words");
	if (len != GENERATED_ID_LEN)
		return false;
	unsigned zeros_head, zeros_tail;
	unsigned head = hex_lower_bytes(_mm_loadu_si128((const __m128i *)s), &zeros_head);
	unsigned tail = hex_lower_bytes(_mm_loadu_si128((const __m128i *)(s + 16)), &zeros_tail);
	return (head & tail) == 0xffff && (zeros_head & zeros_tail) != 0xffff;
}

void hex_encode(const uint8_t *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
}

void id_generator_seed(struct id_generator *gen, const uint8_t key[16])
{
	memcpy(gen->key, key, sizeof(gen->key));
	atomic_store_explicit(&gen->counter, 0, memory_order_relaxed);
}

/* hex_encode of 16 bytes, all at once: each nibble n becomes '0' + n, plus
 * 39 more ('a' - '0' - 10) when it is above 9. */
static void hex_encode_16(const uint8_t bytes[16], char out[32])
{
	const __m128i low_nibble = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
	__m128i v = _mm_loadu_si128((const __m128i *)bytes);
	__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low_nibble);
	__m128i lo = _mm_and_si128(v, low_nibble);
	__m128i digits[2] = {_mm_unpacklo_epi8(hi, lo), _mm_unpackhi_epi8(hi, lo)};
	for (int i = 0; i < 2; i++) {
		__m128i letters = _mm_and_si128(_mm_cmpgt_epi8(digits[i], nine), _mm_set1_epi8(39));
		__m128i text = _mm_add_epi8(_mm_add_epi8(digits[i], _mm_set1_epi8('0')), letters);
		_mm_storeu_si128((__m128i *)(out + 16 * i), text);
	}
}

FORK_PATH void
id_generate_at(const struct id_generator *gen, uint64_t n, char out[GENERATED_ID_LEN])
{
	uint8_t input[24];
	uint8_t digest[16];

	memcpy(input, gen->key, 16);
	memcpy(input + 16, &n, 8);
	XXH128_hash_t h = XXH3_128bits(input, sizeof(input));
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, h);
	memcpy(digest, canon.digest, sizeof(digest));
	/* An all-zero trace-id is invalid in W3C Trace Context. */
	uint64_t halves[2];
	memcpy(halves, digest, sizeof(halves));
	if ((halves[0] | halves[1]) == 0)
		digest[15] = 1;
	hex_encode_16(digest, out);
}

FORK_PATH void id_generate(struct id_generator *gen, char out[GENERATED_ID_LEN])
{
	id_generate_at(gen, id_reserve(gen, 1), out);
}

void id_generator_after_fork(struct id_generator *gen, uint32_t pid)
{
	uint8_t input[28];
	uint64_t n = atomic_load_explicit(&gen->counter, memory_order_relaxed);
	memcpy(input, gen->key, 16);
	memcpy(input + 16, &n, 8);
	memcpy(input + 24, &pid, 4);
	atomic_store_explicit(&gen->counter, XXH3_64bits(input, sizeof(input)),
			      memory_order_relaxed);
}
