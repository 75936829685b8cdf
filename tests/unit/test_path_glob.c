/*
 * test_path_glob.c - unit tests for path_glob_match (REQID_LOG_PATHS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "path_glob.h"

static void test_literals(void **state)
{
	(void)state;
	assert_true(path_glob_match("/var/log/app.log", "/var/log/app.log"));
	assert_false(path_glob_match("/var/log/app.log", "/var/log/app.log.1"));
	assert_false(path_glob_match("/var/log/app.log", "/var/log/app.lo"));
	assert_true(path_glob_match("", ""));
	assert_false(path_glob_match("", "a"));
}

static void test_star_stays_in_one_component(void **state)
{
	(void)state;
	assert_true(path_glob_match("/var/log/*.log", "/var/log/app.log"));
	assert_true(path_glob_match("/var/log/*.log", "/var/log/.log"));
	assert_false(path_glob_match("/var/log/*.log", "/var/log/sub/app.log"));
	assert_true(path_glob_match("/var/log/*/*.log", "/var/log/sub/app.log"));
	assert_true(path_glob_match("*", "app.log"));
	assert_false(path_glob_match("*", "dir/app.log"));
	assert_true(path_glob_match("/tmp/**", "/tmp/x"));
	assert_true(path_glob_match("*a/*c", "aba/xc"));
	assert_true(path_glob_match("a*b*c", "aXbYbZc"));
	assert_false(path_glob_match("a*b*c", "aXbYbZ"));
}

static void test_question_mark(void **state)
{
	(void)state;
	assert_true(path_glob_match("app.log.?", "app.log.1"));
	assert_false(path_glob_match("app.log.?", "app.log."));
	assert_false(path_glob_match("a?b", "a/b"));
}

static void test_brackets(void **state)
{
	(void)state;
	assert_true(path_glob_match("app.[0-9]", "app.7"));
	assert_false(path_glob_match("app.[0-9]", "app.x"));
	assert_true(path_glob_match("app.[!0-9]", "app.x"));
	assert_true(path_glob_match("app.[^0-9]", "app.x"));
	assert_false(path_glob_match("app.[!0-9]", "app.5"));
	assert_true(path_glob_match("[]]x", "]x"));
	assert_true(path_glob_match("a[xyz]c", "ayc"));
	assert_false(path_glob_match("a[!x]c", "a/c"));
	/* No closing bracket: a literal '['. */
	assert_true(path_glob_match("a[b", "a[b"));
	assert_false(path_glob_match("a[b", "ab"));
}

static void test_backslash_quotes(void **state)
{
	(void)state;
	assert_true(path_glob_match("a\\*b", "a*b"));
	assert_false(path_glob_match("a\\*b", "axb"));
	assert_true(path_glob_match("a\\?", "a?"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_star_stays_in_one_component),
		cmocka_unit_test(test_question_mark),
		cmocka_unit_test(test_brackets),
		cmocka_unit_test(test_backslash_quotes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
