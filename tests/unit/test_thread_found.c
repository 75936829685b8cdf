/*
 * test_thread_found.c - unit tests for thread_found_from (what attach's
 * thread scan makes of a thread's /proc syscall and wchan text) and the
 * /proc parsers beside it. The syscall lines are the kernel's format:
 * "NR ARG1 ... ARG6 SP PC", the arguments in hex.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "thread_found.h"

static void test_waits_on_several(void **state)
{
	(void)state;
	/* epoll_wait, epoll_pwait, select, pselect6 */
	assert_int_equal(thread_found_from("232 0x4 0x7ffd1 0x40 0xffffffff 0x0 0x0 0x7ffd0 0x7f1", NULL),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from("281 0x4 0x7ffd1 0x40 0x14 0x0 0x8 0x7ffd0 0x7f1", NULL),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from("23 0x9 0x7ffd1 0x0 0x0 0x7ffd2 0x0 0x7ffd0 0x7f1", NULL),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from("270 0x9 0x7ffd1 0x0 0x0 0x0 0x7ffd2 0x7ffd0 0x7f1", NULL),
			 FOUND_IN_WAIT);
	/* poll and ppoll on two descriptors; on one, a read that waits */
	assert_int_equal(thread_found_from("7 0x7ffcf53971f0 0x2 0x1f40 0x0 0x0 0x0 0x1 0x2", NULL),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from("271 0x7ffcf53971f0 0x11 0x0 0x0 0x8 0x0 0x1 0x2", NULL),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from("7 0x7ffcf53971f0 0x1 0x1f40 0x0 0x0 0x0 0x1 0x2", NULL),
			 FOUND_IDLE);
	assert_int_equal(thread_found_from("271 0x7ffcf53971f0 0x1 0x0 0x0 0x8 0x0 0x1 0x2", NULL),
			 FOUND_IDLE);
}

static void test_futex_lock_or_condition(void **state)
{
	(void)state;
	/* pthread_mutex_lock: FUTEX_WAIT | FUTEX_PRIVATE_FLAG (0x80) */
	assert_int_equal(thread_found_from("202 0x5581 0x80 0x2 0x0 0x0 0x0 0x1 0x2", NULL),
			 FOUND_AT_WORK);
	assert_int_equal(thread_found_from("202 0x5581 0x0 0x2 0x0 0x0 0x0 0x1 0x2", NULL),
			 FOUND_AT_WORK);
	/* FUTEX_LOCK_PI, private */
	assert_int_equal(thread_found_from("202 0x5581 0x86 0x0 0x0 0x0 0x0 0x1 0x2", NULL),
			 FOUND_AT_WORK);
	/* pthread_cond_wait, sem_wait: FUTEX_WAIT_BITSET, private, with or
	 * without FUTEX_CLOCK_REALTIME */
	assert_int_equal(thread_found_from("202 0x5581 0x89 0x0 0x0 0x0 0xffffffff 0x1 0x2", NULL),
			 FOUND_IDLE);
	assert_int_equal(thread_found_from("202 0x5581 0x189 0x0 0x7ffd 0x0 0xffffffff 0x1 0x2",
					   NULL),
			 FOUND_IDLE);
	/* FUTEX_WAIT_REQUEUE_PI */
	assert_int_equal(thread_found_from("202 0x5581 0x8b 0x0 0x0 0x5582 0x0 0x1 0x2", NULL),
			 FOUND_IDLE);
}

static void test_idle_and_at_work_calls(void **state)
{
	(void)state;
	const char *idle[] = {"0 0x5 0x7ffd 0x1000 0x0 0x0 0x0 0x1 0x2",   /* read */
			      "45 0x5 0x7ffd 0x1000 0x0 0x0 0x0 0x1 0x2",  /* recvfrom */
			      "288 0x3 0x0 0x0 0x80800 0x0 0x0 0x1 0x2",   /* accept4 */
			      "43 0x3 0x0 0x0 0x0 0x0 0x0 0x1 0x2",        /* accept */
			      "42 0x6 0x7ffd 0x10 0x0 0x0 0x0 0x1 0x2",    /* connect */
			      "61 0xffffffff 0x7ffd 0x0 0x0 0x0 0x0 0x1 0x2", /* wait4 */
			      "130 0x7ffd 0x8 0x0 0x0 0x0 0x0 0x1 0x2"};   /* rt_sigsuspend */
	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		assert_int_equal(thread_found_from(idle[i], NULL), FOUND_IDLE);
	const char *at_work[] = {"1 0x4 0x7ffd 0x1000 0x0 0x0 0x0 0x1 0x2",   /* write */
				 "20 0x2 0x7ffd 0x2 0x0 0x0 0x0 0x1 0x2",     /* writev */
				 "44 0x5 0x7ffd 0x40 0x4000 0x0 0x0 0x1 0x2", /* sendto */
				 "35 0x7ffd 0x0 0x0 0x0 0x0 0x0 0x1 0x2",     /* nanosleep */
				 "230 0x0 0x0 0x7ffd 0x7ffd 0x0 0x0 0x1 0x2", /* clock_nanosleep */
				 "74 0x3 0x0 0x0 0x0 0x0 0x0 0x1 0x2",        /* fsync */
				 "running",
				 "-1 0x7ffd 0x7f12"};                         /* outside a call */
	for (size_t i = 0; i < sizeof(at_work) / sizeof(at_work[0]); i++)
		assert_int_equal(thread_found_from(at_work[i], NULL), FOUND_AT_WORK);
}

static void test_restarted_calls(void **state)
{
	(void)state;
	const char *poll2 = "219 0x7ffcf53971f0 0x2 0x1f40 0x7fcf67a208d0 0x0 0x0 0x1 0x2";
	const char *poll1 = "219 0x7ffcf53971f0 0x1 0x1f40 0x7fcf67a208d0 0x0 0x0 0x1 0x2";
	const char *cond = "219 0x5581 0x189 0x0 0x7ffd 0x0 0xffffffff 0x1 0x2";
	const char *lock = "219 0x5581 0x80 0x2 0x7ffd 0x0 0x0 0x1 0x2";
	const char *sleep = "219 0x7ffd 0x0 0x0 0x0 0x0 0x0 0x1 0x2";
	assert_true(thread_found_needs_wchan(poll2));
	assert_false(thread_found_needs_wchan("7 0x7ffcf53971f0 0x2 0x1f40 0x0 0x0 0x0 0x1 0x2"));
	assert_false(thread_found_needs_wchan("running"));
	assert_true(thread_found_needs_wchan(NULL));
	assert_int_equal(thread_found_from(poll2, "poll_schedule_timeout.constprop.0"),
			 FOUND_IN_WAIT);
	assert_int_equal(thread_found_from(poll1, "poll_schedule_timeout.constprop.0"), FOUND_IDLE);
	assert_int_equal(thread_found_from(cond, "futex_wait_queue"), FOUND_IDLE);
	assert_int_equal(thread_found_from(lock, "futex_wait_queue"), FOUND_AT_WORK);
	assert_int_equal(thread_found_from(sleep, "hrtimer_nanosleep"), FOUND_AT_WORK);
	assert_int_equal(thread_found_from(poll2, NULL), FOUND_AT_WORK);
}

static void test_wchan_alone(void **state)
{
	(void)state;
	assert_int_equal(thread_found_from(NULL, "0"), FOUND_AT_WORK);
	assert_int_equal(thread_found_from(NULL, ""), FOUND_AT_WORK);
	assert_int_equal(thread_found_from(NULL, NULL), FOUND_AT_WORK);
	assert_int_equal(thread_found_from(NULL, "ep_poll"), FOUND_IN_WAIT);
	assert_int_equal(thread_found_from(NULL, "do_select"), FOUND_IN_WAIT);
	assert_int_equal(thread_found_from(NULL, "poll_schedule_timeout.constprop.0"), FOUND_IN_WAIT);
	assert_int_equal(thread_found_from(NULL, "pipe_read"), FOUND_IDLE);
	assert_int_equal(thread_found_from(NULL, "futex_wait_queue"), FOUND_IDLE);
}

static void test_parsers(void **state)
{
	(void)state;
	const char *end;
	assert_int_equal(proc_decimal_at("219 0x1", &end), 219);
	assert_string_equal(end, " 0x1");
	assert_int_equal(proc_decimal_at("-1 0x7", &end), -1);
	assert_int_equal(proc_decimal_at("x", &end), 0);
	assert_string_equal(end, "x");
	assert_int_equal(proc_hex_at("  0x1f40 0x2", &end), 0x1f40);
	assert_string_equal(end, " 0x2");
	assert_int_equal(proc_hex_at("FFff", &end), 0xffff);
	assert_int_equal(proc_hex_at("0x12345678901234567", &end), 0x1234567890123456UL);
	assert_true(proc_has_word("do_sys_poll", "poll"));
	assert_false(proc_has_word("pol", "poll"));
	assert_true(proc_has_word("anything", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waits_on_several),
		cmocka_unit_test(test_futex_lock_or_condition),
		cmocka_unit_test(test_idle_and_at_work_calls),
		cmocka_unit_test(test_restarted_calls),
		cmocka_unit_test(test_wchan_alone),
		cmocka_unit_test(test_parsers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
