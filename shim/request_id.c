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

/* Bytes an id may hold: 1 for [A-Za-z0-9._:-], 2 for lowercase hex
 * digits too. */
static const uint8_t id_chars[256] = {
	['0' ... '9'] = 3, ['a' ... 'f'] = 3, ['g' ... 'z'] = 1, ['A' ... 'Z'] = 1,
	['.'] = 1, ['_'] = 1, [':'] = 1, ['-'] = 1,
};

bool request_id_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > REQUEST_ID_MAX)
		return false;
	unsigned all = 1;
	for (size_t i = 0; i < len; i++)
		all &= id_chars[(unsigned char)s[i]];
	return all != 0;
}

bool request_id_is_trace_id(const char *s, size_t len)
{
	if (len != GENERATED_ID_LEN)
		return false;
	unsigned all = 2, zeros = 0;
	for (size_t i = 0; i < len; i++) {
		all &= id_chars[(unsigned char)s[i]];
		zeros += s[i] == '0';
	}
	return all != 0 && zeros != len;
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

uint64_t id_reserve(struct id_generator *gen, unsigned count)
{
	return atomic_fetch_add_explicit(&gen->counter, count, memory_order_relaxed);
}

void id_generate_at(const struct id_generator *gen, uint64_t n, char out[GENERATED_ID_LEN])
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

void id_generate(struct id_generator *gen, char out[GENERATED_ID_LEN])
{
	id_generate_at(gen, id_reserve(gen, 1), out);
}

void id_generator_before_fork(struct id_generator *gen)
{
	id_reserve(gen, 1);
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
