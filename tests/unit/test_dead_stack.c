/*
 * test_dead_stack.c - unit tests for reqid-inject's choice of the stack
 * pages a stopped thread is not using (inject/dead_stack.c): synthetic
 * areas and notes, and this process's own stacks read from /proc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../inject/dead_stack.h"

#define P 4096ull
#define TOP 0x7f0000800000ull	/* a thread's stack: 8 MiB below it */
#define TCB (TOP - 0x900)	/* its thread pointer, at the top */

/* One thread stack area, held now as now_held says, noted as before. */
static struct stack_area area;
static struct stack_areas areas = { &area, 1 };
static struct stack_note note;

static void set_up(uint64_t now_held, uint64_t before)
{
	area = (struct stack_area){ TOP - (8ull << 20), TOP, now_held, 0 };
	memset(&note, 0, sizeof note);
	note.count = 1;
	note.area[0].end = TOP;
	note.area[0].held = before;
}

/* The thread's stack pointer in page 1 (counted from the top), pages 0-2
 * held at attach, page 3 since: page 3 alone goes. */
static void test_new_page_below_frames(void **state)
{
	(void)state;
	uint64_t start, end, rsp = TOP - P - 0x320;

	set_up(0xf, 0x7);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, 202, rsp - 400, &start, &end), 1);
	assert_int_equal(start, TOP - 4 * P);
	assert_int_equal(end, TOP - 3 * P);
}

/* A page held at attach below the new ones (a deeper call before) stays,
 * and so does every page under it. */
static void test_run_stops_at_page_held_before(void **state)
{
	(void)state;
	uint64_t start, end, rsp = TOP - P - 0x320;

	set_up(0x7 | 0x18 | (1ull << 10) | (1ull << 12), 0x7 | (1ull << 10));
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 1);
	assert_int_equal(start, TOP - 5 * P);
	assert_int_equal(end, TOP - 3 * P);
}

/* Never the page with the red zone or the call's return address: the
 * stack pointer 100 bytes into page 3 keeps page 3 (the red zone and the
 * return address lie in it too); 100 bytes above page 4, it keeps page 4,
 * which the red zone reaches into. */
static void test_red_zone_and_call_kept(void **state)
{
	(void)state;
	uint64_t start, end, rsp = TOP - 3 * P - 100;

	set_up(0x3f, 0x3);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 1);
	assert_int_equal(end, TOP - 4 * P);
	assert_int_equal(start, TOP - 6 * P);
	rsp = TOP - 4 * P + 100;
	set_up(0x1f, 0x3);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp, &start, &end), 0);
}

/* Nothing: in vfork or clone, on a stack whose top does not hold its
 * thread pointer (a fiber's, a signal stack), a thread on the main
 * thread's stack that is not the main thread, no note of the area, or
 * nothing held now that was not then. */
static void test_refusals(void **state)
{
	(void)state;
	uint64_t start, end, rsp = TOP - P - 0x320;

	set_up(0xf, 0x7);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, SYS_vfork, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, SYS_clone, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, SYS_clone3, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, 0x1000, -1, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 1, rsp, TCB, -1, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 0, TOP + P, TCB, -1, TOP, &start, &end), 0);
	area.main = 1;
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 0);
	assert_int_equal(dead_stack_range(&areas, &note, 1, rsp, 0x1000, -1, rsp - 400, &start, &end), 1);
	area.main = 0;
	note.area[0].end = TOP + P;
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 0);
	set_up(0x7, 0x7);
	assert_int_equal(dead_stack_range(&areas, &note, 0, rsp, TCB, -1, rsp - 400, &start, &end), 0);
}

/* The syscall lines of /proc/PID/task/TID/syscall: in a call, out of
 * one, running, and broken ones. */
static void test_syscall_line_parse(void **state)
{
	(void)state;
	long nr;
	uint64_t sp;

	assert_int_equal(syscall_line_parse("202 0x55d0 0x189 0x0 0x0 0x0 0xca 0x7ffd5a8c1ce0 "
					    "0x7f2a8f9a2f36\n", &nr, &sp), 1);
	assert_int_equal(nr, 202);
	assert_int_equal(sp, 0x7ffd5a8c1ce0ull);
	assert_int_equal(syscall_line_parse("-1 0x7f0000001000 0x55d012345678\n", &nr, &sp), 1);
	assert_int_equal(nr, -1);
	assert_int_equal(sp, 0x7f0000001000ull);
	assert_int_equal(syscall_line_parse("running\n", &nr, &sp), 0);
	assert_int_equal(syscall_line_parse("202 0x1 0x2\n", &nr, &sp), 0);
	assert_int_equal(syscall_line_parse("-1 0x7f0000001000\n", &nr, &sp), 0);
	assert_int_equal(syscall_line_parse("", &nr, &sp), 0);
}

/* A thread is stopped if running, or blocked with pages to give back,
 * but never in an epoll wait (poll, a call the kernel restarts, is
 * stopped). */
static void test_worth_stopping(void **state)
{
	(void)state;
	char line[200];
	uint64_t rsp = TOP - P - 0x320;

	set_up(0xf, 0x7);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, "running\n"), 1);
	snprintf(line, sizeof line, "%d 0x0 0x0 0x0 0x0 0x0 0x0 0x%llx 0x1000\n", SYS_futex,
		 (unsigned long long)rsp);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, line), 1);
	snprintf(line, sizeof line, "-1 0x%llx 0x1000\n", (unsigned long long)rsp);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, line), 1);
	static const int waits[] = { SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_pwait2 };
	for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
		snprintf(line, sizeof line, "%d 0x0 0x0 0x0 0x0 0x0 0x0 0x%llx 0x1000\n", waits[i],
			 (unsigned long long)rsp);
		assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, line), 0);
	}
	snprintf(line, sizeof line, "%d 0x0 0x0 0x0 0x0 0x0 0x0 0x%llx 0x1000\n", SYS_poll,
		 (unsigned long long)rsp);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, line), 1);
	set_up(0x7, 0x7);
	snprintf(line, sizeof line, "%d 0x0 0x0 0x0 0x0 0x0 0x0 0x%llx 0x1000\n", SYS_futex,
		 (unsigned long long)rsp);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, line), 0);
	assert_int_equal(dead_stack_worth_stopping(&areas, &note, 0, "garbage\n"), 0);
}

static void *thread_sp(void *out)
{
	volatile char here;
	*(uintptr_t *)out = (uintptr_t)&here;
	struct stack_areas a;
	assert_int_equal(stack_areas_read(&a, getpid()), 0);
	int found = 0;
	for (size_t i = 0; i < a.n; i++)
		if (a.v[i].start <= (uintptr_t)&here && (uintptr_t)&here < a.v[i].end) {
			found++;
			assert_int_equal(a.v[i].main, 0);
			assert_true(a.v[i].held & 1); /* its top page holds its descriptor */
		}
	assert_int_equal(found, 1);
	stack_areas_free(&a);
	return NULL;
}

/* This process's main stack and a thread's (glibc's, with its guard) are
 * found, with their top pages held. */
static void test_own_stacks_read(void **state)
{
	(void)state;
	volatile char here;
	struct stack_areas a;
	uintptr_t in_thread;
	pthread_t t;

	assert_int_equal(stack_areas_read(&a, getpid()), 0);
	int found = 0;
	for (size_t i = 0; i < a.n; i++)
		if (a.v[i].start <= (uintptr_t)&here && (uintptr_t)&here < a.v[i].end) {
			found++;
			assert_int_equal(a.v[i].main, 1);
		}
	assert_int_equal(found, 1);
	stack_areas_free(&a);
	assert_int_equal(pthread_create(&t, NULL, thread_sp, &in_thread), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_page_below_frames),
		cmocka_unit_test(test_run_stops_at_page_held_before),
		cmocka_unit_test(test_red_zone_and_call_kept),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_syscall_line_parse),
		cmocka_unit_test(test_worth_stopping),
		cmocka_unit_test(test_own_stacks_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
