/*
 * test_traceparent.c - unit tests for shim/traceparent.c: W3C Trace Context
 * traceparent parsing (field extraction, lowercase-hex rules, version ff and
 * all-zero ids rejected, version 00 exact length, future versions, surrounding
 * whitespace), including the edge cases of the W3C trace-context test suite.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "traceparent.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT "00f067aa0ba902b7"
#define VALID "00-" TRACE "-" PARENT "-01"

static bool parse_str(const char *s, struct traceparent *out)
{
	memset(out, 0xA5, sizeof *out);
	return traceparent_parse(s, strlen(s), out);
}

static void expect_invalid(const char *s)
{
	struct traceparent tp;
	if (parse_str(s, &tp))
		fail_msg("accepted invalid traceparent \"%s\"", s);
}

static void expect_valid(const char *s, uint8_t version, uint8_t flags)
{
	struct traceparent tp;
	if (!parse_str(s, &tp))
		fail_msg("rejected valid traceparent \"%s\"", s);
	assert_int_equal(tp.version, version);
	assert_memory_equal(tp.trace_id, TRACE, 32);
	assert_memory_equal(tp.parent_id, PARENT, 16);
	assert_int_equal(tp.flags, flags);
}

static void test_valid_example(void **state)
{
	(void)state;
	assert_int_equal(strlen(VALID), 55);
	expect_valid(VALID, 0, 1);
}

static void test_flags(void **state)
{
	(void)state;
	expect_valid("00-" TRACE "-" PARENT "-00", 0, 0);
	expect_valid("00-" TRACE "-" PARENT "-ff", 0, 0xff);
	expect_valid("00-" TRACE "-" PARENT "-09", 0, 9);
	expect_valid("00-" TRACE "-" PARENT "-a0", 0, 0xa0);
	expect_valid("00-" TRACE "-" PARENT "-02", 0, 2);
	expect_valid("00-" TRACE "-" PARENT "-03", 0, 3);
}

/* Every flags byte is accepted and reported as-is, unknown bits included. */
static void test_every_flags_value(void **state)
{
	(void)state;
	for (unsigned f = 0; f < 256; f++) {
		char buf[64];
		snprintf(buf, sizeof buf, "00-" TRACE "-" PARENT "-%02x", f);
		expect_valid(buf, 0, (uint8_t)f);
		snprintf(buf, sizeof buf, "cc-" TRACE "-" PARENT "-%02x-x", f);
		expect_valid(buf, 0xcc, (uint8_t)f);
	}
}

/* Versions 00..fe are accepted, ff never; only versions above 00 may be
 * longer than 55 chars. */
static void test_every_version(void **state)
{
	(void)state;
	for (unsigned v = 0; v < 256; v++) {
		char exact[64];
		char longer[64];
		snprintf(exact, sizeof exact, "%02x-" TRACE "-" PARENT "-01", v);
		snprintf(longer, sizeof longer, "%02x-" TRACE "-" PARENT "-01-x", v);
		if (v == 0xff) {
			expect_invalid(exact);
			expect_invalid(longer);
			continue;
		}
		expect_valid(exact, (uint8_t)v, 1);
		if (v == 0)
			expect_invalid(longer);
		else
			expect_valid(longer, (uint8_t)v, 1);
	}
}

static void test_other_ids(void **state)
{
	(void)state;
	struct traceparent tp;
	assert_true(parse_str("00-00000000000000000000000000000001-0000000000000001-01", &tp));
	assert_memory_equal(tp.trace_id, "00000000000000000000000000000001", 32);
	assert_memory_equal(tp.parent_id, "0000000000000001", 16);
	assert_true(parse_str("00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-03", &tp));
	assert_memory_equal(tp.trace_id, "ffffffffffffffffffffffffffffffff", 32);
	assert_memory_equal(tp.parent_id, "ffffffffffffffff", 16);
	assert_int_equal(tp.flags, 3);
}

static void test_surrounding_whitespace(void **state)
{
	(void)state;
	expect_valid(" " VALID, 0, 1);
	expect_valid(VALID " ", 0, 1);
	expect_valid("\t" VALID "\t", 0, 1);
	expect_valid(" \t  " VALID " \t ", 0, 1);
}

static void test_respects_len(void **state)
{
	(void)state;
	struct traceparent tp;
	const char *s = VALID "-trailing-junk";
	memset(&tp, 0, sizeof tp);
	assert_true(traceparent_parse(s, 55, &tp));
	assert_memory_equal(tp.trace_id, TRACE, 32);
	assert_false(traceparent_parse(s, 54, &tp));
	assert_false(traceparent_parse(s, 0, &tp));
	/* len 57 of version 00 is "...-01-t": too long */
	assert_false(traceparent_parse(s, 57, &tp));
}

static void test_uppercase_rejected(void **state)
{
	(void)state;
	expect_invalid("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473A-" PARENT "-01");
	expect_invalid("00-" TRACE "-00F067AA0BA902B7-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902bB-01");
	expect_invalid("00-" TRACE "-" PARENT "-0A");
	expect_invalid("0A-" TRACE "-" PARENT "-01");
	expect_invalid("CC-" TRACE "-" PARENT "-01");
}

static void test_version_ff_rejected(void **state)
{
	(void)state;
	expect_invalid("ff-" TRACE "-" PARENT "-01");
	expect_invalid("ff-" TRACE "-" PARENT "-01-extra");
}

static void test_all_zero_rejected(void **state)
{
	(void)state;
	expect_invalid("00-00000000000000000000000000000000-" PARENT "-01");
	expect_invalid("00-" TRACE "-0000000000000000-01");
	expect_invalid("cc-00000000000000000000000000000000-" PARENT "-01");
	expect_invalid("cc-" TRACE "-0000000000000000-01");
}

static void test_version00_length(void **state)
{
	(void)state;
	expect_invalid(VALID "-x");
	expect_invalid(VALID "-");
	expect_invalid(VALID "x");
	expect_invalid(VALID "0");
	expect_invalid("00-" TRACE "-" PARENT "-1");
	expect_invalid("00-" TRACE "-" PARENT "-");
	expect_invalid("00-" TRACE "-" PARENT);
	/* the W3C suite's version 00 cases */
	expect_invalid(VALID ".");
	expect_invalid(VALID "-what-the-future-will-be-like");
	expect_invalid(VALID ".what-the-future-will-be-like");
	expect_invalid(VALID "--");
	expect_invalid(VALID "-01");
}

static void test_separators(void **state)
{
	(void)state;
	expect_invalid("00_" TRACE "-" PARENT "-01");
	expect_invalid("00-" TRACE "_" PARENT "-01");
	expect_invalid("00-" TRACE "-" PARENT "_01");
	expect_invalid("00 " TRACE " " PARENT " 01");
	expect_invalid("00:" TRACE ":" PARENT ":01");
	/* right length, separators shifted */
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902b-701");
	expect_invalid("000" TRACE "--" PARENT "01");
}

static void test_non_hex(void **state)
{
	(void)state;
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473g-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6 3ce929d0e0e4736-" PARENT "-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902bz-01");
	expect_invalid("00-" TRACE "-" PARENT "-0g");
	expect_invalid("0g-" TRACE "-" PARENT "-01");
	expect_invalid("g0-" TRACE "-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473\xe9-" PARENT "-01");
	expect_invalid("00-" TRACE "-" PARENT "-+1");
	/* a NUL inside the value */
	struct traceparent tp;
	char buf[56];
	memcpy(buf, VALID, 56);
	buf[10] = '\0';
	assert_false(traceparent_parse(buf, 55, &tp));
}

static void test_short_fields(void **state)
{
	(void)state;
	expect_invalid("");
	expect_invalid(" ");
	expect_invalid(" \t ");
	expect_invalid("00");
	expect_invalid("00-");
	expect_invalid("0-" TRACE "-" PARENT "-01");
	expect_invalid("000-" TRACE "-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473-" PARENT "-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902b-01");
	expect_invalid("00-" TRACE "-" PARENT "-1");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7a-01");
	expect_invalid("00-" TRACE "--01");
}

/* The W3C suite's per-field cases: illegal chars, too long, too short. */
static void test_w3c_field_cases(void **state)
{
	(void)state;
	/* version */
	expect_invalid(".0-" TRACE "-" PARENT "-01");
	expect_invalid("0.-" TRACE "-" PARENT "-01");
	expect_invalid("000-" TRACE "-" PARENT "-01");
	expect_invalid("0000-" TRACE "-" PARENT "-01");
	expect_invalid("0-" TRACE "-" PARENT "-01");
	/* trace-id */
	expect_invalid("00-.bf92f3577b34da6a3ce929d0e0e4736-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473.-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e47367-" PARENT "-01");
	expect_invalid("00-4bf92f3577b34da6a3ce929d0e0e473-" PARENT "-01");
	/* parent-id */
	expect_invalid("00-" TRACE "-.0f067aa0ba902b7-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902b.-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902b70-01");
	expect_invalid("00-" TRACE "-00f067aa0ba902b-01");
	/* trace-flags */
	expect_invalid("00-" TRACE "-" PARENT "-.0");
	expect_invalid("00-" TRACE "-" PARENT "-0.");
	expect_invalid("00-" TRACE "-" PARENT "-001");
	expect_invalid("00-" TRACE "-" PARENT "-0");
	/* the same with a future version, where longer is allowed */
	expect_invalid("cc-4bf92f3577b34da6a3ce929d0e0e47367-" PARENT "-01");
	expect_invalid("cc-" TRACE "-00f067aa0ba902b70-01");
	expect_invalid("cc-" TRACE "-" PARENT "-001");
	expect_invalid("cc-" TRACE "-" PARENT "-0.");
}

static void test_too_long(void **state)
{
	(void)state;
	char buf[512];
	/* a future version may be long, version 00 never */
	snprintf(buf, sizeof buf, "cc-" TRACE "-" PARENT "-01-%0400d", 0);
	expect_valid(buf, 0xcc, 1);
	buf[0] = buf[1] = '0';
	expect_invalid(buf);
	expect_invalid(VALID VALID);
	expect_invalid("00-" TRACE TRACE "-" PARENT "-01");
	expect_invalid("00-" TRACE "-" PARENT PARENT "-01");
}

static void test_inner_whitespace_rejected(void **state)
{
	(void)state;
	expect_invalid("00 -" TRACE "-" PARENT "-01");
	expect_invalid("00- " TRACE "-" PARENT "-01");
	expect_invalid(VALID " x");
	expect_invalid(VALID "\r");
	expect_invalid(VALID "\n");
	expect_invalid("00-" TRACE " -" PARENT "-01");
	expect_invalid("00-" TRACE "-" PARENT "- 01");
	expect_invalid("00-" TRACE "-" PARENT "-0 1");
	expect_invalid("00\t-" TRACE "-" PARENT "-01");
	expect_invalid("00-" TRACE "-\t" PARENT "-01");
	expect_invalid(" \t00 -" TRACE "-" PARENT "-01\t ");
	expect_invalid(VALID "\t-x");
	/* a future version's tail may not start with whitespace either */
	expect_invalid("cc-" TRACE "-" PARENT "-01 -x");
	expect_invalid("cc-" TRACE "-" PARENT "-01\t-x");
	/* the W3C suite's OWS cases */
	expect_valid("\t \t " VALID, 0, 1);
	expect_valid(VALID " \t ", 0, 1);
	expect_valid("\t \t " VALID " \t \t", 0, 1);
}

static void test_higher_version(void **state)
{
	(void)state;
	expect_valid("cc-" TRACE "-" PARENT "-01", 0xcc, 1);
	expect_valid("cc-" TRACE "-" PARENT "-01-", 0xcc, 1);
	expect_valid("cc-" TRACE "-" PARENT "-01-what-the-future-will-be-like", 0xcc, 1);
	expect_valid("01-" TRACE "-" PARENT "-01-xyz", 1, 1);
	expect_valid("fe-" TRACE "-" PARENT "-02", 0xfe, 2);
	expect_valid("  cc-" TRACE "-" PARENT "-01-extra  ", 0xcc, 1);

	expect_invalid("cc-" TRACE "-" PARENT "-01x");
	expect_invalid("cc-" TRACE "-" PARENT "-01x-extra");
	expect_invalid("cc-" TRACE "-" PARENT "-1");
	expect_invalid("cc-" TRACE "-" PARENT "-0");
	expect_invalid("cc-" TRACE "-" PARENT);
	expect_invalid("cc-" TRACE "-" PARENT "-0g");

	/* the W3C suite's version cc cases: the fields come from the first 55
	 * chars, the 56th must be '-', whatever follows it is not checked */
	expect_valid("cc-" TRACE "-" PARENT "-01-WHAT.the=future,will be", 0xcc, 1);
	expect_valid("cc-" TRACE "-" PARENT "-00-" TRACE, 0xcc, 0);
	expect_invalid("cc-" TRACE "-" PARENT "-01.what-the-future-will-be-like");
	expect_invalid("cc-" TRACE "-" PARENT "-01.");
	expect_invalid("cc-" TRACE "-" PARENT "-01_what");
	expect_invalid("cc-" TRACE "-" PARENT "-0A-what");
	expect_invalid("cc-" TRACE "-00F067AA0BA902B7-01-what");
	expect_invalid("cc-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01-what");
	expect_invalid("cC-" TRACE "-" PARENT "-01-what");
	/* shorter than 55: a future version gets no leniency there */
	expect_invalid("cc-4bf92f3577b34da6a3ce929d0e0e473-" PARENT "-01");
	expect_invalid("cc-" TRACE "-00f067aa0ba902b-01");
	expect_invalid("cc-" TRACE "-" PARENT "-");
	expect_invalid("cc-" TRACE);
	expect_invalid("cc-");
	expect_invalid("cc");
	expect_invalid(" cc-" TRACE "-" PARENT "-1 ");
}

static void test_every_bad_byte_position(void **state)
{
	(void)state;
	/* Replacing any non-separator char of the valid example with 'G', 'A'
	 * (uppercase), a space or a tab must fail (a blank at either end is
	 * outer whitespace, leaving 54 chars); replacing a separator with '0'
	 * must fail. */
	for (size_t i = 0; i < 55; i++) {
		char buf[56];
		struct traceparent tp;
		memcpy(buf, VALID, 56);
		if (buf[i] == '-') {
			buf[i] = '0';
			if (traceparent_parse(buf, 55, &tp))
				fail_msg("accepted with separator %zu replaced", i);
			continue;
		}
		buf[i] = 'G';
		if (traceparent_parse(buf, 55, &tp))
			fail_msg("accepted 'G' at index %zu", i);
		buf[i] = 'A';
		if (traceparent_parse(buf, 55, &tp))
			fail_msg("accepted 'A' at index %zu", i);
		buf[i] = ' ';
		if (traceparent_parse(buf, 55, &tp))
			fail_msg("accepted ' ' at index %zu", i);
		buf[i] = '\t';
		if (traceparent_parse(buf, 55, &tp))
			fail_msg("accepted tab at index %zu", i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_example),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_every_flags_value),
		cmocka_unit_test(test_every_version),
		cmocka_unit_test(test_other_ids),
		cmocka_unit_test(test_surrounding_whitespace),
		cmocka_unit_test(test_respects_len),
		cmocka_unit_test(test_uppercase_rejected),
		cmocka_unit_test(test_version_ff_rejected),
		cmocka_unit_test(test_all_zero_rejected),
		cmocka_unit_test(test_version00_length),
		cmocka_unit_test(test_separators),
		cmocka_unit_test(test_non_hex),
		cmocka_unit_test(test_short_fields),
		cmocka_unit_test(test_w3c_field_cases),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_inner_whitespace_rejected),
		cmocka_unit_test(test_higher_version),
		cmocka_unit_test(test_every_bad_byte_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
