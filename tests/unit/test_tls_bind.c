/*
 * test_tls_bind.c - unit tests for shim/tls_bind.c: an SSL object's socket
 * is found until the object is freed, a freed object's slot is reused,
 * and an object at a freed one's address starts unknown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tls_bind.h"

static char objects[8192][16]; /* stand-ins for SSL objects */

static void test_set_find_forget(void **state)
{
	(void)state;
	assert_int_equal(tls_bind_fd(objects[0]), -1);
	tls_bind_set(objects[0], 0);
	tls_bind_set(objects[1], 7);
	assert_int_equal(tls_bind_fd(objects[0]), 0);
	assert_int_equal(tls_bind_fd(objects[1]), 7);
	tls_bind_set(objects[1], 9); /* the socket it was seen on last */
	assert_int_equal(tls_bind_fd(objects[1]), 9);
	tls_bind_forget(objects[0]);
	assert_int_equal(tls_bind_fd(objects[0]), -1);
	assert_int_equal(tls_bind_fd(objects[1]), 9);
	tls_bind_forget(objects[1]);
	assert_int_equal(tls_bind_fd(objects[1]), -1);
}

/* Many objects come and go: each is found while it lives, none after. */
static void test_churn(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 1000; i++)
			tls_bind_set(objects[round * 300 % 7000 + i], i + round);
		for (int i = 0; i < 1000; i++)
			assert_int_equal(tls_bind_fd(objects[round * 300 % 7000 + i]), i + round);
		for (int i = 0; i < 1000; i++)
			tls_bind_forget(objects[round * 300 % 7000 + i]);
		for (int i = 0; i < 1000; i++)
			assert_int_equal(tls_bind_fd(objects[round * 300 % 7000 + i]), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_find_forget),
		cmocka_unit_test(test_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
