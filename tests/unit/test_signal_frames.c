/*
 * test_signal_frames.c - unit tests for signal_frame_holds (signal_frames.h):
 * whether a stack pointer lies within a signal handler whose trampoline's
 * frame was recorded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "signal_frames.h"

static void test_at_or_below_within_reach(void **state)
{
	(void)state;
	const uintptr_t frame = 0x7fff0000;
	assert_true(signal_frame_holds(frame, frame));
	assert_true(signal_frame_holds(frame, frame - 64));
	assert_true(signal_frame_holds(frame, frame - SIGNAL_FRAME_REACH + 1));
}

/* Above it: the handler was left (siglongjmp). */
static void test_above_is_outside(void **state)
{
	(void)state;
	assert_false(signal_frame_holds(0x7fff0000, 0x7fff0008));
}

/* Out of reach: another stack (a sigaltstack in the heap). */
static void test_out_of_reach_is_outside(void **state)
{
	(void)state;
	const uintptr_t frame = 0x7fff0000;
	assert_false(signal_frame_holds(frame, frame - SIGNAL_FRAME_REACH));
	assert_false(signal_frame_holds(frame, 0x55550000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_at_or_below_within_reach),
		cmocka_unit_test(test_above_is_outside),
		cmocka_unit_test(test_out_of_reach_is_outside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
