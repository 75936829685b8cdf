/*
 * test_tracestate.c - unit tests for shim/tracestate.c: W3C Trace Context
 * tracestate validation and normalisation (OWS and empty members dropped,
 * 32-member limit, simple and multi-tenant key grammar and lengths, value
 * chars and length, duplicate keys), the length bounds on both buffers, and
 * idempotence over exhaustive and random short inputs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tracestate.h"

/* Runs tracestate_normalize on exact-size heap copies, so ASan catches any
 * read past in[len-1] or write past out[len-1]. Returns the result and copies
 * the output (NUL-terminated) to got, which has room for len + 1 bytes. */
static int normalize_bytes(const char *in, size_t len, char *got)
{
	char *in_copy = malloc(len ? len : 1);
	char *out = malloc(len ? len : 1);
	assert_non_null(in_copy);
	assert_non_null(out);
	memcpy(in_copy, in, len);
	int n = tracestate_normalize(in_copy, len, out);
	if (n >= 0) {
		assert_true((size_t)n <= len);
		memcpy(got, out, (size_t)n);
		got[n] = '\0';
	}
	free(in_copy);
	free(out);
	return n;
}

static void expect_normalized(const char *in, const char *want)
{
	char got[TRACESTATE_MAX + 1];
	int n = normalize_bytes(in, strlen(in), got);
	if (n < 0)
		fail_msg("dropped valid tracestate \"%s\"", in);
	if (strcmp(got, want) != 0)
		fail_msg("\"%s\" normalised to \"%s\", want \"%s\"", in, got, want);
	assert_int_equal(n, strlen(want));
}

static void expect_same(const char *in)
{
	expect_normalized(in, in);
}

static void expect_dropped(const char *in)
{
	char got[TRACESTATE_MAX + 1];
	if (normalize_bytes(in, strlen(in), got) != -1)
		fail_msg("kept invalid tracestate \"%s\"", in);
}

/* Writes n copies of c followed by suffix into buf; returns buf. */
static char *repeat(char *buf, char c, size_t n, const char *suffix)
{
	memset(buf, c, n);
	strcpy(buf + n, suffix);
	return buf;
}

static void test_valid_members(void **state)
{
	(void)state;
	expect_same("foo=bar");
	expect_same("foo=bar,baz=qux");
	expect_same("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
	expect_same("a=1,b=2,c=3");
	expect_same("k_-*/09az=v");
	expect_same("foo=!\"#$%&'()*+-./0123456789:;<>?@ABCXYZ[\\]^_`abcxyz{|}~");
	expect_same("0=0");
	expect_same("foo=a b");
	expect_same("foo=  a  b");
}

static void test_ows_around_members(void **state)
{
	(void)state;
	expect_normalized("foo=1 \t , \t bar=2", "foo=1,bar=2");
	expect_normalized(" foo=1", "foo=1");
	expect_normalized("\tfoo=1\t", "foo=1");
	expect_normalized("foo=bar  ", "foo=bar");
	expect_normalized("foo=bar \t ", "foo=bar");
	expect_normalized("foo=1 ,bar=2", "foo=1,bar=2");
	expect_normalized("foo=1, bar=2", "foo=1,bar=2");
	expect_normalized("  foo=a b  ,  bar=c d  ", "foo=a b,bar=c d");
}

static void test_empty_members(void **state)
{
	(void)state;
	expect_normalized("foo=1,,bar=2,", "foo=1,bar=2");
	expect_normalized(",foo=1", "foo=1");
	expect_normalized(",,foo=1,,", "foo=1");
	expect_normalized(" , \t,foo=1, \t ,", "foo=1");
	expect_normalized("foo=1, ,bar=2", "foo=1,bar=2");
}

static void test_no_members(void **state)
{
	(void)state;
	expect_normalized("", "");
	expect_normalized(",", "");
	expect_normalized(",,,", "");
	expect_normalized(" ", "");
	expect_normalized("\t", "");
	expect_normalized(" \t , \t ", "");
	expect_normalized(" , , ,\t,", "");
}

/* Writes "k0=v,k1=v,...": members of two-char-or-more keys, joined with sep. */
static void build_members(char *buf, int count, const char *sep)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int i = 0; i < count; i++)
		o += (size_t)sprintf(buf + o, "%sk%d=v", i ? sep : "", i);
}

static void test_member_count(void **state)
{
	(void)state;
	char in[TRACESTATE_MAX + 1];
	char want[TRACESTATE_MAX + 1];

	build_members(in, 32, ",");
	expect_same(in);
	build_members(in, 33, ",");
	expect_dropped(in);

	build_members(in, 32, " , ,\t,");
	build_members(want, 32, ",");
	expect_normalized(in, want);
	size_t n = strlen(in);
	strcpy(in + n, ",,, ,");
	expect_normalized(in, want);

	build_members(in, 33, ", ,");
	expect_dropped(in);
	build_members(in, 64, ",");
	expect_dropped(in);
}

static void test_key_length(void **state)
{
	(void)state;
	char buf[TRACESTATE_MAX + 1];
	expect_same(repeat(buf, 'k', 256, "=1"));
	expect_dropped(repeat(buf, 'k', 257, "=1"));
	expect_same(repeat(buf, '9', 256, "=1"));
}

static void test_multi_tenant_key(void **state)
{
	(void)state;
	char buf[TRACESTATE_MAX + 1];
	char system[32];

	expect_same("t@s=1");
	expect_same("0t@s=1");
	expect_same("t_-*/9@s_-*/9=1");
	expect_same("foo=1,foo@s=2,foo@t=3,bar@s=4");

	repeat(system, 's', 14, "=1");
	repeat(buf, 't', 241, "@");
	strcat(buf, system);
	assert_int_equal(strlen(buf), 258);
	expect_same(buf);

	repeat(buf, 't', 242, "@");
	strcat(buf, system);
	expect_dropped(buf);

	repeat(buf, 't', 1, "@");
	strcat(buf, repeat(system, 's', 15, "=1"));
	expect_dropped(buf);

	expect_dropped("a@b@c=1");
	expect_dropped("a@@b=1");
	expect_dropped("t@1s=1");
	expect_dropped("t@_s=1");
	expect_dropped("t@S=1");
	expect_dropped("T@s=1");
	expect_dropped("@s=1");
	expect_dropped("t@=1");
	expect_dropped("@=1");
	expect_dropped("_t@s=1");
}

static void test_key_chars(void **state)
{
	(void)state;
	expect_same("1foo=1");
	expect_dropped("_foo=1");
	expect_dropped("-foo=1");
	expect_dropped("*foo=1");
	expect_dropped("/foo=1");
	expect_dropped("Foo=1");
	expect_dropped("foO=1");
	expect_dropped("FOO=1");
	expect_dropped("foo.bar=1");
	expect_dropped("foo bar=1");
	expect_dropped("foo =1");
	expect_dropped("foo\t=1");
	expect_dropped("foo:bar=1");
	expect_dropped("f\xc3\xa9=1");
	expect_dropped("ok=1,Bad=2");
}

static void test_value_length(void **state)
{
	(void)state;
	char buf[TRACESTATE_MAX + 1];
	strcpy(buf, "foo=");
	repeat(buf + 4, 'v', 256, "");
	expect_same(buf);
	repeat(buf + 4, 'v', 257, "");
	expect_dropped(buf);
	/* 256 chars counting leading spaces; trailing OWS does not count */
	repeat(buf + 4, ' ', 255, "v");
	expect_same(buf);
	char want[TRACESTATE_MAX + 1];
	strcpy(want, buf);
	strcat(buf, " \t ");
	expect_normalized(buf, want);
}

static void test_value_chars(void **state)
{
	(void)state;
	char in[8];
	char want[8];

	for (int c = 0x20; c <= 0x7e; c++) {
		if (c == ',' || c == '=')
			continue;
		snprintf(in, sizeof in, "k=a%c", c);
		snprintf(want, sizeof want, "k=a%c", c);
		if (c == ' ')
			want[3] = '\0';
		expect_normalized(in, want);
	}
	expect_dropped("foo=a=b");
	expect_dropped("foo==");
	expect_dropped("foo=1=");
	expect_dropped("foo=\x19");
	expect_dropped("foo=a\x7f");
	expect_dropped("foo=\x80");
	expect_dropped("foo=\xff");
	expect_dropped("foo=a\tb");
	expect_dropped("foo=a\rb");
	expect_dropped("foo=a\n");
	expect_normalized("foo= b", "foo= b");
	expect_normalized("foo=a ", "foo=a");
	expect_normalized("foo=a \t", "foo=a");
	expect_dropped("foo= ");
	expect_dropped("foo=\t");

	/* a NUL inside the value */
	char got[16];
	assert_int_equal(normalize_bytes("foo=a\0b", 7, got), -1);
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_dropped("foo=1,foo=1");
	expect_dropped("foo=1,foo=2");
	expect_dropped("foo=1,bar=2,foo=3");
	expect_dropped("foo=1 , ,foo=2");
	expect_dropped("t@s=1,t@s=2");
	expect_same("foo=1,fo=2,fooo=3");
	expect_same("fo=1,foo=2");
	expect_same("foo=1,foo@s=2,s=3");
}

static void test_malformed_members(void **state)
{
	(void)state;
	expect_dropped("foo");
	expect_dropped("foo,bar=1");
	expect_dropped("bar=1,foo");
	expect_dropped("=1");
	expect_dropped("foo=");
	expect_dropped("=");
	expect_dropped(" = ");
	expect_dropped("foo=1,=");
	expect_dropped("foo=1,bar=");
	expect_dropped("foo=1;bar=2");
}

static void test_respects_len(void **state)
{
	(void)state;
	char out[TRACESTATE_MAX + 8];
	const char *s = "foo=1,bar=2=junk";

	assert_int_equal(tracestate_normalize(s, 11, out), 11);
	assert_memory_equal(out, "foo=1,bar=2", 11);
	assert_int_equal(tracestate_normalize(s, 5, out), 5);
	assert_int_equal(tracestate_normalize(s, 4, out), -1);
	assert_int_equal(tracestate_normalize(s, 0, out), 0);
	assert_int_equal(tracestate_normalize(s, 12, out), -1);

	char in[TRACESTATE_MAX + 2];
	char got[TRACESTATE_MAX + 2];
	memset(in, ' ', sizeof in);
	memcpy(in, "a=1", 3);
	assert_int_equal(normalize_bytes(in, TRACESTATE_MAX, got), 3);
	assert_int_equal(tracestate_normalize(in, TRACESTATE_MAX + 1, out), -1);
}

/* Checks the contract on any input: -1 or at most len, and normalising the
 * output again gives the same output. */
static void check_contract(const char *in, size_t len)
{
	char got[TRACESTATE_MAX + 1];
	char again[TRACESTATE_MAX + 1];
	int n = normalize_bytes(in, len, got);
	if (n == -1)
		return;
	assert_true(n >= 0 && (size_t)n <= len);
	int m = normalize_bytes(got, (size_t)n, again);
	assert_int_equal(m, n);
	assert_memory_equal(again, got, (size_t)n);
}

static void test_all_short_inputs(void **state)
{
	(void)state;
	char in[2];
	for (int a = 0; a < 256; a++) {
		in[0] = (char)a;
		check_contract(in, 1);
		for (int b = 0; b < 256; b++) {
			in[1] = (char)b;
			check_contract(in, 2);
		}
	}
}

static uint32_t xorshift(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void test_random_inputs(void **state)
{
	(void)state;
	/* pieces of members, valid and not, glued at random; then sometimes a
	 * random byte somewhere */
	static const char *const pieces[] = {
		"a=1", "b0=x y", "k_-*/=v", "t@s=1", "t@s", "=", "=v", "a", "0", "@",
		" ", "\t", ",", ",", ", ", "A", ".", "\x7f", "\x19", "~", "a=1,a=2",
	};
	enum { PIECES = sizeof pieces / sizeof pieces[0] };
	uint32_t x = 2463534242u;
	char in[64];
	char got[TRACESTATE_MAX + 1];
	int kept = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = 0;
		for (uint32_t n = xorshift(&x) % 8; n > 0; n--) {
			const char *p = pieces[xorshift(&x) % PIECES];
			size_t p_len = strlen(p);
			if (len + p_len > sizeof in)
				break;
			memcpy(in + len, p, p_len);
			len += p_len;
		}
		if (len > 0 && xorshift(&x) % 4 == 0)
			in[xorshift(&x) % len] = (char)xorshift(&x);
		if (normalize_bytes(in, len, got) > 0)
			kept++;
		check_contract(in, len);
	}
	/* the generator must reach valid non-empty lists, or the test proves little */
	assert_true(kept > 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_members),
		cmocka_unit_test(test_ows_around_members),
		cmocka_unit_test(test_empty_members),
		cmocka_unit_test(test_no_members),
		cmocka_unit_test(test_member_count),
		cmocka_unit_test(test_key_length),
		cmocka_unit_test(test_multi_tenant_key),
		cmocka_unit_test(test_key_chars),
		cmocka_unit_test(test_value_length),
		cmocka_unit_test(test_value_chars),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_malformed_members),
		cmocka_unit_test(test_respects_len),
		cmocka_unit_test(test_all_short_inputs),
		cmocka_unit_test(test_random_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
