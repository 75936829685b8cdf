/*
 * test_audit_record.c - unit tests for shim/audit_record.c: the records
 * `reqid audit` reads back are one line each, whatever the program's text
 * holds (every byte 0-255 escaped or passed as scripts/reqid_audit.py
 * expects), numbers and addresses in their exact forms, text cut at its
 * limit with "...", and a record that does not fit its buffer cut short,
 * still ending in a newline, never written past the buffer's end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "audit_record.h"

static void expect_record(const struct audit_record *r, size_t n, const char *want)
{
	if (n != strlen(want) || memcmp(r->buf, want, n) != 0)
		fail_msg("record \"%.*s\", expected \"%s\"", (int)r->len, r->buf, want);
}

static void test_fields(void **state)
{
	(void)state;
	char buf[256];
	struct audit_record r;
	void *frames[] = {(void *)0x7f00deadbeefULL, (void *)0x1, (void *)0};
	audit_record_start(&r, buf, sizeof(buf), 'L');
	audit_field_u64(&r, 0);
	audit_field_u64(&r, 18446744073709551615ULL);
	audit_field_raw(&r, "tagged", 6);
	audit_field_addresses(&r, frames, 3);
	audit_field_addresses(&r, frames, 0);
	audit_field_text(&r, "plain text", 10, 100);
	size_t n = audit_record_end(&r);
	expect_record(&r, n, "L\t0\t18446744073709551615\ttagged\t7f00deadbeef,1,0\t\tplain text\n");
	assert_false(r.overflow);
}

static void test_every_byte(void **state)
{
	(void)state;
	char text[256], buf[2048];
	for (int i = 0; i < 256; i++)
		text[i] = (char)i;
	struct audit_record r;
	audit_record_start(&r, buf, sizeof(buf), 'L');
	audit_field_text(&r, text, sizeof(text), sizeof(text));
	size_t n = audit_record_end(&r);
	/* one line: the only newline is the last byte, the only tab the first
	 * field separator */
	assert_ptr_equal(memchr(buf, '\n', n), buf + n - 1);
	assert_ptr_equal(memchr(buf, '\t', n), buf + 1);
	char want[2048];
	size_t w = 0;
	want[w++] = 'L';
	want[w++] = '\t';
	for (int c = 0; c < 256; c++) {
		if (c == '\\')
			w += (size_t)sprintf(want + w, "\\\\");
		else if (c == '\t')
			w += (size_t)sprintf(want + w, "\\t");
		else if (c == '\n')
			w += (size_t)sprintf(want + w, "\\n");
		else if (c == '\r')
			w += (size_t)sprintf(want + w, "\\r");
		else if (c < 0x20 || c == 0x7f)
			w += (size_t)sprintf(want + w, "\\x%02x", c);
		else
			want[w++] = (char)c;
	}
	want[w++] = '\n';
	assert_int_equal(n, w);
	assert_memory_equal(buf, want, w);
}

static void test_text_limit(void **state)
{
	(void)state;
	char buf[64];
	struct audit_record r;
	audit_record_start(&r, buf, sizeof(buf), 'S');
	audit_field_text(&r, "abcdef", 6, 4);
	audit_field_text(&r, "a\tb", 3, 3);
	audit_field_text(&r, "xyz", 3, 0);
	size_t n = audit_record_end(&r);
	expect_record(&r, n, "S\tabcd...\ta\\tb\t...\n");
}

/* A record longer than its buffer: cut, the newline in its last byte,
 * nothing written past the end (the canary after it stays). */
static void test_overflow(void **state)
{
	(void)state;
	for (size_t cap = 1; cap < 40; cap++) {
		char mem[64];
		memset(mem, '#', sizeof(mem));
		struct audit_record r;
		audit_record_start(&r, mem, cap, 'L');
		audit_field_u64(&r, 1234567890);
		audit_field_text(&r, "a line of the program's\n", 24, 100);
		size_t n = audit_record_end(&r);
		size_t whole = strlen("L\t1234567890\ta line of the program's\\n\n");
		if (cap >= whole) {
			assert_false(r.overflow);
			assert_int_equal(n, whole);
		} else {
			assert_true(r.overflow);
			assert_true(n >= 1 && n <= cap);
			assert_int_equal(mem[n - 1], '\n');
		}
		for (size_t i = cap; i < sizeof(mem); i++)
			assert_int_equal(mem[i], '#');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_text_limit),
		cmocka_unit_test(test_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
