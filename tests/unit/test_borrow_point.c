/*
 * test_borrow_point.c - unit tests for reqid-inject's rule on where a
 * stopped thread may be borrowed for pthread_create (inject/borrow_point.c),
 * on made-up registers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/futex.h>
#include <sys/syscall.h>

#include "../../inject/borrow_point.h"

static const struct code_ranges code = {
	.loader_start = 0x7f0000001000, .loader_end = 0x7f0000030000,
	.program_start = 0x555500001000, .program_end = 0x555500002000,
};

/* A thread at pc; nr the system call it is in, -1 for none. */
static struct user_regs_struct at(uint64_t pc, long nr)
{
	struct user_regs_struct r = { .rip = pc, .orig_rax = (uint64_t)nr };

	return r;
}

#define LIBC_PC 0x7f1000020000ull

static void test_blocking_call_in_libc_is_safe(void **state)
{
	(void)state;
	long calls[] = { SYS_epoll_wait, SYS_accept4, SYS_read, SYS_nanosleep, SYS_poll,
			 SYS_rt_sigsuspend, SYS_wait4, SYS_dup2, SYS_close };

	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		struct user_regs_struct r = at(LIBC_PC, calls[i]);

		assert_int_equal(borrow_point(&r, 0, &code), BORROW_SAFE);
	}
}

static void test_memory_calls_are_not(void **state)
{
	(void)state;
	long calls[] = { SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect,
			 SYS_madvise };

	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		struct user_regs_struct r = at(LIBC_PC, calls[i]);

		assert_int_equal(borrow_point(&r, 0, &code), BORROW_IN_MEMORY_CALL);
	}
}

/* fork() makes its clone holding malloc's locks: the forking thread's own
 * pthread_create would wait for them forever. */
static void test_process_calls_are_not(void **state)
{
	(void)state;
	long calls[] = { SYS_clone, SYS_clone3, SYS_fork, SYS_vfork };

	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		struct user_regs_struct r = at(LIBC_PC, calls[i]);

		assert_int_equal(borrow_point(&r, 0, &code), BORROW_IN_PROCESS_CALL);
	}
}

static void test_lock_wait_is_not_but_other_futex_waits_are(void **state)
{
	(void)state;
	struct user_regs_struct lock = at(LIBC_PC, SYS_futex);
	struct user_regs_struct join = at(LIBC_PC, SYS_futex);
	struct user_regs_struct wake = at(LIBC_PC, SYS_futex);

	lock.rsi = FUTEX_WAIT | FUTEX_PRIVATE_FLAG;
	lock.rdx = 2;
	assert_int_equal(borrow_point(&lock, 0, &code), BORROW_IN_LOCK_WAIT);
	lock.rsi = FUTEX_WAIT;
	assert_int_equal(borrow_point(&lock, 0, &code), BORROW_IN_LOCK_WAIT);
	join.rsi = FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME;
	join.rdx = 12345;	/* pthread_join: the thread's tid */
	assert_int_equal(borrow_point(&join, 0, &code), BORROW_SAFE);
	wake.rsi = FUTEX_WAKE | FUTEX_PRIVATE_FLAG;
	wake.rdx = 2;
	assert_int_equal(borrow_point(&wake, 0, &code), BORROW_SAFE);
}

static void test_loader_never(void **state)
{
	(void)state;
	struct user_regs_struct in_call = at(code.loader_start + 0x100, SYS_read);
	struct user_regs_struct running = at(code.loader_end - 1, -1);
	struct user_regs_struct past = at(code.loader_end, SYS_read);

	assert_int_equal(borrow_point(&in_call, 0, &code), BORROW_IN_LOADER);
	assert_int_equal(borrow_point(&running, 0, &code), BORROW_IN_LOADER);
	assert_int_equal(borrow_point(&past, 0, &code), BORROW_SAFE);
}

static void test_loader_start_up_never(void **state)
{
	(void)state;
	struct user_regs_struct constructor = at(LIBC_PC, SYS_openat);
	struct user_regs_struct program = at(code.program_start, -1);

	/* _dl_start_user's call of _dl_init: its return address below argc */
	assert_int_equal(borrow_point(&constructor, code.loader_start + 0x40, &code),
			 BORROW_IN_LOADER);
	assert_int_equal(borrow_point(&program, code.loader_start + 0x40, &code),
			 BORROW_IN_LOADER);
	/* _start pushed over it */
	assert_int_equal(borrow_point(&constructor, 0x38, &code), BORROW_SAFE);
	assert_int_equal(borrow_point(&constructor, code.program_start + 8, &code), BORROW_SAFE);
}

static void test_outside_a_call_only_in_the_program(void **state)
{
	(void)state;
	struct user_regs_struct program = at(code.program_start, -1);
	struct user_regs_struct last = at(code.program_end - 1, -1);
	struct user_regs_struct after = at(code.program_end, -1);
	struct user_regs_struct library = at(LIBC_PC, -1);

	assert_int_equal(borrow_point(&program, 0, &code), BORROW_SAFE);
	assert_int_equal(borrow_point(&last, 0, &code), BORROW_SAFE);
	assert_int_equal(borrow_point(&after, 0, &code), BORROW_IN_LIBRARY);
	assert_int_equal(borrow_point(&library, 0, &code), BORROW_IN_LIBRARY);
}

static void test_unknown_ranges(void **state)
{
	(void)state;
	const struct code_ranges none = { 0 };
	struct user_regs_struct running = at(0x555500001000, -1);
	struct user_regs_struct in_call = at(0x7f0000001100, SYS_epoll_wait);

	assert_int_equal(borrow_point(&running, 0, &none), BORROW_IN_LIBRARY);
	assert_int_equal(borrow_point(&in_call, 0, &none), BORROW_SAFE);
}

static void test_words(void **state)
{
	(void)state;
	assert_string_equal(borrow_point_words(BORROW_IN_MEMORY_CALL),
			    "in a memory system call (inside malloc?)");
	assert_string_equal(borrow_point_words(BORROW_SAFE), "at a safe point");
}

/* The signal return code's address anywhere in the words read is a
 * handler running; its absence, or an unknown address (0), is none. */
static void test_signal_frame_on_the_stack(void **state)
{
	const uint64_t restore_rt = 0x7f0000043050;
	uint64_t words[5] = { 0x7ffc00001000, 0, 0x55550000a123, 0x7f0000043051, 7 };

	(void)state;
	assert_int_equal(stack_in_signal_handler(words, 5, restore_rt), 0);
	words[4] = restore_rt;
	assert_int_equal(stack_in_signal_handler(words, 5, restore_rt), 1);
	assert_int_equal(stack_in_signal_handler(words, 4, restore_rt), 0);
	words[1] = 0;
	assert_int_equal(stack_in_signal_handler(words, 5, 0), 0);
	assert_string_equal(borrow_point_words(BORROW_IN_SIGNAL_HANDLER),
			    "running a signal handler");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocking_call_in_libc_is_safe),
		cmocka_unit_test(test_memory_calls_are_not),
		cmocka_unit_test(test_process_calls_are_not),
		cmocka_unit_test(test_lock_wait_is_not_but_other_futex_waits_are),
		cmocka_unit_test(test_loader_never),
		cmocka_unit_test(test_loader_start_up_never),
		cmocka_unit_test(test_outside_a_call_only_in_the_program),
		cmocka_unit_test(test_unknown_ranges),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_signal_frame_on_the_stack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
