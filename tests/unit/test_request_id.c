/*
 * test_request_id.c - unit tests for shim/request_id.c: request_id_is_valid()
 * (charset and length limits), request_id_is_trace_id(), the id generator
 * (format, never all zero, uniqueness, determinism per key) and hex_encode().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "request_id.h"

#include <xxhash.h>

static bool allowed_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void assert_generated_format(const char id[GENERATED_ID_LEN])
{
	bool nonzero = false;
	for (int i = 0; i < GENERATED_ID_LEN; i++) {
		assert_true(is_lower_hex(id[i]));
		if (id[i] != '0')
			nonzero = true;
	}
	assert_true(nonzero);
}

static const uint8_t key_a[16] = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
};
static const uint8_t key_b[16] = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x11,
};
static const uint8_t key_zero[16];

/* ---- request_id_is_valid ----------------------------------------------- */

static void test_valid_ids(void **state)
{
	(void)state;
	assert_true(request_id_is_valid("a", 1));
	assert_true(request_id_is_valid("abc", 3));
	assert_true(request_id_is_valid("abc-DEF_123.x:y", 15));
	assert_true(request_id_is_valid("4bf92f3577b34da6a3ce929d0e0e4736", 32));
	const char *all = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
	assert_true(request_id_is_valid(all, strlen(all)));
	assert_true(request_id_is_valid("-", 1));
	assert_true(request_id_is_valid("...", 3));
}

static void test_valid_length_limits(void **state)
{
	(void)state;
	char buf[200];
	memset(buf, 'a', sizeof buf);
	assert_false(request_id_is_valid(buf, 0));
	assert_false(request_id_is_valid("", 0));
	assert_true(request_id_is_valid(buf, 1));
	assert_true(request_id_is_valid(buf, 127));
	assert_true(request_id_is_valid(buf, 128));
	assert_false(request_id_is_valid(buf, 129));
	assert_false(request_id_is_valid(buf, 200));
}

static void test_valid_respects_len(void **state)
{
	(void)state;
	/* only the first len bytes count */
	assert_true(request_id_is_valid("abc def", 3));
	assert_false(request_id_is_valid("abc def", 4));
	/* an embedded NUL inside len is rejected, not a terminator */
	assert_false(request_id_is_valid("ab\0cd", 5));
	assert_false(request_id_is_valid("\0", 1));
}

static void test_invalid_chars(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"a b", "a\rb", "a\nb", "a\"b", "a\\b", "a\x7f", "a\x80", "a\xff",
		"a=b", "a,b", "a;b", "a/b", "a{b", "a}b", "a\tb", "\xc3\xa9", "a'b",
		"a+b", "a@b", "a%b", " a", "a ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (request_id_is_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted invalid id #%zu", i);
	}
}

static void test_every_byte(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		char one = (char)c;
		char three[3] = { 'x', (char)c, 'y' };
		bool want = allowed_char((unsigned char)c);
		if (request_id_is_valid(&one, 1) != want)
			fail_msg("byte 0x%02x alone: expected %d", c, want);
		if (request_id_is_valid(three, 3) != want)
			fail_msg("byte 0x%02x in the middle: expected %d", c, want);
		/* at the last position of a maximal id */
		char big[128];
		memset(big, 'a', sizeof big);
		big[127] = (char)c;
		if (request_id_is_valid(big, 128) != want)
			fail_msg("byte 0x%02x at index 127: expected %d", c, want);
	}
}

/* Ids are checked 16 bytes at a time, from loads that overlap for lengths
 * that are not a multiple of 16: every byte at every position of every
 * length up to three blocks is seen (each id in a buffer of its own length,
 * so that ASan sees a read past it). */
static void test_every_byte_every_length(void **state)
{
	(void)state;
	for (size_t len = 1; len <= 48; len++) {
		char *id = malloc(len);
		assert_non_null(id);
		for (size_t at = 0; at < len; at++) {
			for (int c = 0; c < 256; c++) {
				memset(id, 'a', len);
				id[at] = (char)c;
				if (request_id_is_valid(id, len) != allowed_char((unsigned char)c))
					fail_msg("byte 0x%02x at %zu of %zu", c, at, len);
				if (request_id_is_valid_at_start(id, len) !=
				    request_id_is_valid(id, len))
					fail_msg("start-up copy differs: 0x%02x at %zu of %zu", c,
						 at, len);
			}
		}
		free(id);
	}
}

/* ---- request_id_is_trace_id -------------------------------------------- */

static void test_trace_id(void **state)
{
	(void)state;
	assert_true(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736", 32));
	assert_true(request_id_is_trace_id("00000000000000000000000000000001", 32));
	assert_true(request_id_is_trace_id("ffffffffffffffffffffffffffffffff", 32));
	assert_true(request_id_is_trace_id("0123456789abcdef0123456789abcdef", 32));

	assert_false(request_id_is_trace_id("00000000000000000000000000000000", 32));
	assert_false(request_id_is_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736", 32));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e473A", 32));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e473g", 32));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e473", 31));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e47360", 33));
	assert_false(request_id_is_trace_id("", 0));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6-3ce929d0e0e4736", 32));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6 3ce929d0e0e4736", 32));
	assert_false(request_id_is_trace_id("4bf92f3577b34da6\0003ce929d0e0e4736", 32));
	/* a prefix of a longer valid buffer with the right len */
	assert_true(request_id_is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736XYZ", 32));
	/* every byte at every position, among valid digits and among zeros */
	for (int at = 0; at < 32; at++) {
		for (int c = 0; c < 256; c++) {
			bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
			char id[33] = "4bf92f3577b34da6a3ce929d0e0e4736";
			id[at] = (char)c;
			if (request_id_is_trace_id(id, 32) != want)
				fail_msg("byte 0x%02x at %d: expected %d", c, at, want);
			memcpy(id, "00000000000000000000000000000000", 32);
			id[at] = (char)c;
			if (request_id_is_trace_id(id, 32) != (want && c != '0'))
				fail_msg("byte 0x%02x at %d of zeros: expected %d", c, at,
					 want && c != '0');
		}
	}
	/* every byte, first and last */
	for (int c = 0; c < 256; c++) {
		bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		char id[33] = "4bf92f3577b34da6a3ce929d0e0e4736";
		id[0] = (char)c;
		if (request_id_is_trace_id(id, 32) != want)
			fail_msg("byte 0x%02x first: expected %d", c, want);
		memcpy(id, "00000000000000000000000000000000", 32);
		id[31] = (char)c;
		if (request_id_is_trace_id(id, 32) != (want && c != '0'))
			fail_msg("byte 0x%02x last of zeros: expected %d", c, want && c != '0');
	}
}

/* ---- generator --------------------------------------------------------- */

/* The id is the hex of XXH3-128 (canonical, big-endian) over key and the
 * counter, digit for digit, for many counters (every nibble value at every
 * position). */
static void test_generate_is_hex_of_hash(void **state)
{
	(void)state;
	static const uint8_t key[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xff, 0xfe, 0x80, 0x7f, 0x10, 1};
	struct id_generator gen;
	id_generator_seed(&gen, key);
	for (uint64_t n = 0; n < 2000; n++) {
		uint8_t input[24];
		memcpy(input, key, 16);
		memcpy(input + 16, &n, 8);
		XXH128_canonical_t canon;
		XXH128_canonicalFromHash(&canon, XXH3_128bits(input, sizeof(input)));
		char want[32], got[32];
		hex_encode(canon.digest, 16, want);
		id_generate(&gen, got);
		assert_memory_equal(got, want, 32);
	}
}

static void test_generate_format(void **state)
{
	(void)state;
	struct id_generator gen;
	id_generator_seed(&gen, key_a);
	for (int i = 0; i < 1000; i++) {
		char buf[GENERATED_ID_LEN + 2];
		memset(buf, '#', sizeof buf);
		id_generate(&gen, buf);
		assert_generated_format(buf);
		/* writes exactly 32 bytes */
		assert_int_equal(buf[GENERATED_ID_LEN], '#');
		assert_int_equal(buf[GENERATED_ID_LEN + 1], '#');
		assert_true(request_id_is_valid(buf, GENERATED_ID_LEN));
		assert_true(request_id_is_trace_id(buf, GENERATED_ID_LEN));
	}
}

static void test_generate_zero_key(void **state)
{
	(void)state;
	struct id_generator gen;
	id_generator_seed(&gen, key_zero);
	for (int i = 0; i < 1000; i++) {
		char buf[GENERATED_ID_LEN];
		id_generate(&gen, buf);
		assert_generated_format(buf);
	}
}

static int cmp_ids(const void *a, const void *b)
{
	return memcmp(a, b, GENERATED_ID_LEN);
}

static void test_generate_distinct(void **state)
{
	(void)state;
	enum { N = 100000 };
	char *ids = malloc((size_t)N * GENERATED_ID_LEN);
	assert_non_null(ids);
	struct id_generator gen;
	id_generator_seed(&gen, key_a);
	for (size_t i = 0; i < N; i++) {
		id_generate(&gen, ids + i * GENERATED_ID_LEN);
		assert_generated_format(ids + i * GENERATED_ID_LEN);
	}
	qsort(ids, N, GENERATED_ID_LEN, cmp_ids);
	for (size_t i = 1; i < N; i++)
		if (memcmp(ids + (i - 1) * GENERATED_ID_LEN, ids + i * GENERATED_ID_LEN,
			   GENERATED_ID_LEN) == 0)
			fail_msg("duplicate generated id %.32s", ids + i * GENERATED_ID_LEN);
	free(ids);
}

static void test_generate_deterministic(void **state)
{
	(void)state;
	struct id_generator g1, g2;
	id_generator_seed(&g1, key_a);
	id_generator_seed(&g2, key_a);
	for (int i = 0; i < 1000; i++) {
		char a[GENERATED_ID_LEN], b[GENERATED_ID_LEN];
		id_generate(&g1, a);
		id_generate(&g2, b);
		assert_memory_equal(a, b, GENERATED_ID_LEN);
	}
	/* re-seeding restarts the sequence */
	char first[GENERATED_ID_LEN], again[GENERATED_ID_LEN];
	id_generator_seed(&g1, key_a);
	id_generate(&g1, first);
	id_generator_seed(&g1, key_a);
	id_generate(&g1, again);
	assert_memory_equal(first, again, GENERATED_ID_LEN);
}

static void test_generate_key_matters(void **state)
{
	(void)state;
	struct id_generator g1, g2, g3;
	id_generator_seed(&g1, key_a);
	id_generator_seed(&g2, key_b);
	id_generator_seed(&g3, key_zero);
	char a[GENERATED_ID_LEN], b[GENERATED_ID_LEN], z[GENERATED_ID_LEN];
	id_generate(&g1, a);
	id_generate(&g2, b);
	id_generate(&g3, z);
	assert_memory_not_equal(a, b, GENERATED_ID_LEN);
	assert_memory_not_equal(a, z, GENERATED_ID_LEN);
	assert_memory_not_equal(b, z, GENERATED_ID_LEN);
}

static void test_generate_successive_differ(void **state)
{
	(void)state;
	struct id_generator gen;
	id_generator_seed(&gen, key_a);
	char prev[GENERATED_ID_LEN], cur[GENERATED_ID_LEN];
	id_generate(&gen, prev);
	for (int i = 0; i < 100; i++) {
		id_generate(&gen, cur);
		assert_memory_not_equal(prev, cur, GENERATED_ID_LEN);
		memcpy(prev, cur, GENERATED_ID_LEN);
	}
}

/* ---- hex_encode -------------------------------------------------------- */

/* id_generate_at is what id_generate makes of the counter value it takes;
 * id_reserve takes count values at once. */
static void test_generate_at_and_reserve(void **state)
{
	(void)state;
	struct id_generator a, b;
	id_generator_seed(&a, key_a);
	id_generator_seed(&b, key_a);
	assert_int_equal(id_reserve(&b, 2), 0);
	assert_int_equal(id_reserve(&b, 1), 2);
	for (uint64_t n = 0; n < 3; n++) {
		char made[GENERATED_ID_LEN], at[GENERATED_ID_LEN];
		id_generate(&a, made);
		id_generate_at(&b, n, at);
		assert_memory_equal(made, at, GENERATED_ID_LEN);
	}
}

/* A fork child keeps the key (ids reserved before the fork come out the
 * same) and moves its counter to a place of its own: one per pid and
 * counter, so a later fork under the same pid, after the parent took a
 * value of its counter for that fork, gets another place. */
static void test_after_fork(void **state)
{
	(void)state;
	struct id_generator parent;
	id_generator_seed(&parent, key_a);
	uint64_t reserved = id_reserve(&parent, 1);
	char before[GENERATED_ID_LEN], in_child[GENERATED_ID_LEN];
	id_generate_at(&parent, reserved, before);

	struct id_generator child = parent, sibling = parent;
	id_generator_after_fork(&child, 100);
	id_generator_after_fork(&sibling, 101);
	id_generate_at(&child, reserved, in_child);
	assert_memory_equal(before, in_child, GENERATED_ID_LEN);
	uint64_t place = atomic_load(&child.counter);
	assert_true(place != atomic_load(&parent.counter));
	assert_true(place != atomic_load(&sibling.counter));
	struct id_generator again = parent;
	id_generator_after_fork(&again, 100);
	assert_int_equal(atomic_load(&again.counter), place);

	id_reserve(&parent, 1); /* the parent's next fork */
	struct id_generator later = parent;
	id_generator_after_fork(&later, 100);
	assert_true(atomic_load(&later.counter) != place);
}

static void test_hex_encode(void **state)
{
	(void)state;
	const uint8_t bytes[] = { 0x00, 0x01, 0xab, 0xff, 0x10, 0x9c };
	char out[16];
	memset(out, '#', sizeof out);
	hex_encode(bytes, sizeof bytes, out);
	assert_memory_equal(out, "0001abff109c", 12);
	assert_int_equal(out[12], '#');

	memset(out, '#', sizeof out);
	hex_encode(bytes, 0, out);
	assert_int_equal(out[0], '#');

	uint8_t all[256];
	char hex[512];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	hex_encode(all, sizeof all, hex);
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 256; i++) {
		assert_int_equal(hex[2 * i], digits[i >> 4]);
		assert_int_equal(hex[2 * i + 1], digits[i & 15]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),
		cmocka_unit_test(test_valid_length_limits),
		cmocka_unit_test(test_valid_respects_len),
		cmocka_unit_test(test_invalid_chars),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_every_byte_every_length),
		cmocka_unit_test(test_trace_id),
		cmocka_unit_test(test_generate_is_hex_of_hash),
		cmocka_unit_test(test_generate_format),
		cmocka_unit_test(test_generate_zero_key),
		cmocka_unit_test(test_generate_distinct),
		cmocka_unit_test(test_generate_deterministic),
		cmocka_unit_test(test_generate_key_matters),
		cmocka_unit_test(test_generate_successive_differ),
		cmocka_unit_test(test_generate_at_and_reserve),
		cmocka_unit_test(test_after_fork),
		cmocka_unit_test(test_hex_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
