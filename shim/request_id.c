/*
 * request_id.c - id validation and generation.
 *
 * Generation is called from hooks, so it must stay async-signal-safe: one
 * atomic increment and a hash over 24 bytes on the stack. Never allocates,
 * never makes a syscall (the key comes from the caller).
 */
#include "request_id.h"

#include <string.h>
#include <xxhash.h>

bool request_id_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
			  c == '-';
		if (!ok)
			return false;
	}
	return true;
}

bool request_id_is_trace_id(const char *s, size_t len)
{
	bool nonzero = false;
	if (len != GENERATED_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		nonzero |= c != '0';
	}
	return nonzero;
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

void id_generate(struct id_generator *gen, char out[GENERATED_ID_LEN])
{
	uint8_t input[24];
	uint8_t digest[16];
	uint64_t n = atomic_fetch_add_explicit(&gen->counter, 1, memory_order_relaxed);

	memcpy(input, gen->key, 16);
	memcpy(input + 16, &n, 8);
	XXH128_hash_t h = XXH3_128bits(input, sizeof(input));
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, h);
	memcpy(digest, canon.digest, sizeof(digest));
	/* An all-zero trace-id is invalid in W3C Trace Context. */
	uint8_t any = 0;
	for (size_t i = 0; i < sizeof(digest); i++)
		any |= digest[i];
	if (!any)
		digest[15] = 1;
	hex_encode(digest, sizeof(digest), out);
}
