/*
 * test_tracestate.c - unit tests for shim/tracestate.c: W3C Trace Context
 * tracestate validation and normalisation by the editor's draft (OWS and
 * empty members dropped, the 32-member limit counting repeated keys, the key
 * grammar with '@' anywhere but first and its 256-char limit, value chars and
 * length, a repeated key keeping its first member and the rest of the list),
 * the length bounds on both buffers, and idempotence and no repeated key
 * in the output over exhaustive and random short inputs.
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
#include "tracestate_members.h"

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
	/* the conformance harness's OWS cases */
	expect_normalized("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3");
	expect_normalized("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3");
	expect_normalized("foo=1\t", "foo=1");
	expect_normalized("\t foo=1 \t", "foo=1");
	/* OWS inside a member is not OWS: around '=' it makes the key or the
	 * value invalid */
	expect_dropped("foo =1");
	expect_dropped("foo=\t1");
	expect_dropped("foo\t=1,bar=2");
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

	/* repeated keys count: 31 distinct members and one repeat are 32 (the
	 * repeat dropped), one more is 33 */
	build_members(want, 31, ",");
	strcpy(in, want);
	strcat(in, ",k0=again");
	expect_normalized(in, want);
	strcat(in, ",k31=v");
	expect_dropped(in);
	build_members(in, 30, ",");
	strcat(in, ",k5=again,k6=again");
	build_members(want, 30, ",");
	expect_normalized(in, want);
	strcat(in, ",k7=again");
	expect_dropped(in);
}

static void test_key_length(void **state)
{
	(void)state;
	char buf[TRACESTATE_MAX + 1];
	expect_same(repeat(buf, 'k', 256, "=1"));
	expect_dropped(repeat(buf, 'k', 257, "=1"));
	expect_same(repeat(buf, '9', 256, "=1"));
	expect_dropped(repeat(buf, '9', 257, "=1"));

	/* '@' counts like any key char: 256 in all, wherever the '@'s are */
	repeat(buf, '@', 256, "=1");
	buf[0] = 'k';
	expect_same(buf);
	repeat(buf, '@', 257, "=1");
	buf[0] = 'k';
	expect_dropped(buf);
	repeat(buf, 't', 256, "=1");
	buf[100] = '@';
	buf[255] = '@';
	expect_same(buf);
	repeat(buf, 't', 257, "=1");
	buf[100] = '@';
	buf[256] = '@';
	expect_dropped(buf);

	/* a 256-char key beside other members, on what were two header lines
	 * (the harness's case), and one char more dropping them all */
	strcpy(buf, "foo=1,");
	repeat(buf + 6, 'z', 256, "=1");
	expect_same(buf);
	repeat(buf + 6, 'z', 257, "=1");
	expect_dropped(buf);
}

/* The old tenant@system split (241 and 14 chars, one '@', a system starting
 * with a letter) is gone: a key is one run of key chars, '@' any number of
 * times anywhere but first. */
static void test_at_in_keys(void **state)
{
	(void)state;
	char buf[TRACESTATE_MAX + 1];

	expect_same("t@s=1");
	expect_same("0t@s=1");
	expect_same("t_-*/9@s_-*/9=1");
	expect_same("foo=1,foo@s=2,foo@t=3,bar@s=4");
	expect_same("foo@=1,bar=2");
	expect_same("foo@@bar=1,bar=2");
	expect_same("foo@bar@baz=1,bar=2");
	expect_same("a@b@c=1");
	expect_same("a@@b=1");
	expect_same("k@@@@=1");
	expect_same("t@1s=1");
	expect_same("t@_s=1");
	expect_same("t@-=1");
	expect_same("0@=1");
	expect_same("a@b@c@d@e@f@g@h@i@j@k@l@m@n@o@p@q@r@s@t@u@v@w@x@y@z@0@1@2@3@4@5@6=1");

	/* lengths the old split refused: 242-char tenant, 15-char system */
	repeat(buf, 't', 242, "@v=1");
	expect_same(buf);
	repeat(buf, 't', 1, "@");
	repeat(buf + 2, 'v', 15, "=1");
	expect_same(buf);
	repeat(buf, 't', 241, "@");
	repeat(buf + 242, 'v', 14, "=1");
	expect_same(buf);

	/* '@' first, alone, or beside characters a key never has */
	expect_dropped("@s=1");
	expect_dropped("@=1");
	expect_dropped("@@=1");
	expect_dropped("@foo=1,bar=2");
	expect_dropped("bar=2,@foo=1");
	expect_dropped("_t@s=1");
	expect_dropped("t@S=1");
	expect_dropped("T@s=1");
	expect_dropped("foo@Bar@baz=1");
	expect_dropped("t@s.x=1");
	expect_dropped("t@ s=1");
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
	expect_dropped("ok=1,baD=2,c=3");
	expect_dropped("Z=1");

	/* every byte as a key's first and as its second char */
	char in[8];
	char got[8];
	for (int c = 0; c < 256; c++) {
		bool first_ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		bool later_ok = first_ok || c == '_' || c == '-' || c == '*' || c == '/' || c == '@';
		memcpy(in, "?=1", 3);
		in[0] = (char)c;
		assert_int_equal(normalize_bytes(in, 3, got), first_ok ? 3 : -1);
		memcpy(in, "a?=1", 4);
		in[1] = (char)c;
		assert_int_equal(normalize_bytes(in, 4, got), later_ok ? 4 : -1);
	}
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

/* A repeated key is no reason to drop the list: its first member is kept,
 * later ones with the same key dropped, every other member carried in order. */
static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_normalized("foo=1,foo=1", "foo=1");
	expect_normalized("foo=1,foo=2", "foo=1");
	expect_normalized("foo=1,foo=2,foo=3", "foo=1");
	expect_normalized("foo=1,bar=2,foo=3", "foo=1,bar=2");
	expect_normalized("foo=1,bar=2,foo=3,baz=4,bar=5", "foo=1,bar=2,baz=4");
	expect_normalized("a=1,b=2,a=3,c=4", "a=1,b=2,c=4");
	expect_normalized("foo=1 , ,foo=2", "foo=1");
	expect_normalized("foo=1 , ,foo=2 ,\tqux=3", "foo=1,qux=3");
	expect_normalized("t@s=1,t@s=2", "t@s=1");
	expect_normalized("a@@b=1,c=2,a@@b=3", "a@@b=1,c=2");
	/* two header lines joined: "foo=1" and "foo=2" */
	expect_normalized("foo=1,foo=2,bar=3", "foo=1,bar=3");
	/* keys equal only in part stay apart */
	expect_same("foo=1,fo=2,fooo=3");
	expect_same("fo=1,foo=2");
	expect_same("foo=1,foo@s=2,s=3");
	expect_same("foo@=1,foo=2,foo@@=3");
	/* the repeat is still checked: an invalid one drops the whole list */
	expect_dropped("foo=1,foo=a=b");
	expect_dropped("foo=1,foo=");
	expect_dropped("foo=1,Foo=2");
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

/* Checks the contract on any input: -1 or at most len, at most 32 members
 * and no key twice, and normalising the output again gives the same
 * output. */
static void check_contract(const char *in, size_t len)
{
	char got[TRACESTATE_MAX + 1];
	char again[TRACESTATE_MAX + 1];
	int n = normalize_bytes(in, len, got);
	if (n == -1)
		return;
	assert_true(n >= 0 && (size_t)n <= len);
	const char *fault = tracestate_members_fault(got, (size_t)n);
	if (fault)
		fail_msg("%s in \"%.*s\"", fault, (int)n, got);
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
		"a@@b=2", "b0=1", "@a=1",
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
		cmocka_unit_test(test_at_in_keys),
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
