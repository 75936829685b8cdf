/*
 * test_call_chain.c - unit tests for shim/call_chain.c: the chains its own
 * walk gives (frame rules, cached) against libunwind's unw_backtrace from
 * the same function, frame for frame: through plain and recursive calls, a
 * frame whose address is rbp-based (alloca), a thread's stack out to its
 * first frame, again once every rule is cached, and from four threads at
 * once while the shared rule cache fills; through a function without
 * unwind tables (the walk gives way to libunwind, whose chain is taken);
 * remembered walks taken again, and not taken where the same stack pointer
 * now has other callers above it;
 * and no chain at all deeper than CHAIN_MAX or inside a signal handler.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <alloca.h>
#include <libunwind.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <signal.h>
#include <string.h>

#include "call_chain.h"

/* Both chains from one function. Ours starts with the return address of
 * call_chain_take, in this function, then this function's own into its
 * caller; libunwind's starts in this function too (at its own call). */
struct both {
	struct call_chain ours;
	void *theirs[CHAIN_MAX];
	int their_count;
};

static bool without_libunwind; /* in threads other than main under TSan */
static struct chain_memo *memo;  /* the main thread's, when a test uses one */

/* A copy of chain with frames of its own (a lent chain's are the memo's). */
static void keep_chain(struct call_chain *to, const struct call_chain *from)
{
	to->count = from->count;
	memcpy(to->own, from->frames, (size_t)from->count * sizeof(void *));
	to->frames = to->own;
}

static __attribute__((noinline)) void take_both(struct both *b)
{
	CALL_CHAIN(chain);
	call_chain_take(&chain, memo);
	keep_chain(&b->ours, &chain);
	b->their_count = without_libunwind ? 0 : unw_backtrace(b->theirs, CHAIN_MAX);
	__asm__ volatile("" ::: "memory");
}

static void expect_same(const struct both *b)
{
	assert_true(b->ours.count > 1);
	/* ours: [in take_both, caller...]; theirs: [in take_both, caller...] */
	assert_int_equal(b->ours.count, b->their_count);
	for (int i = 1; i < b->their_count; i++)
		assert_ptr_equal(b->ours.frames[i], b->theirs[i]);
}

static __attribute__((noinline)) int recurse(int depth, struct both *b)
{
	if (depth == 0) {
		take_both(b);
		return 0;
	}
	int r = recurse(depth - 1, b);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}

static void test_recursion(void **state)
{
	(void)state;
	struct both b;
	for (int round = 0; round < 3; round++) { /* the first fills the cache */
		recurse(5, &b);
		expect_same(&b);
	}
}

static __attribute__((noinline)) int with_alloca(size_t n, struct both *b)
{
	char *p = alloca(n);
	memset(p, 1, n);
	__asm__ volatile("" ::"r"(p) : "memory");
	recurse(2, b);
	return p[n - 1];
}

static void test_rbp_frame(void **state)
{
	(void)state;
	struct both b;
	for (int round = 0; round < 2; round++) {
		with_alloca(4000, &b);
		expect_same(&b);
	}
}

static void *thread_main(void *arg)
{
	recurse(3, arg);
	return NULL;
}

/* For the tests of remembered walks: the main thread's memo, empty, and
 * none again after (a failed test leaves none behind). */
static int memo_on(void **state)
{
	(void)state;
	static struct chain_memo m;
	memset(&m, 0, sizeof(m));
	memo = &m;
	return 0;
}

static int memo_off(void **state)
{
	(void)state;
	memo = NULL;
	return 0;
}

/* The same again, each walk remembered and then taken from the memo. */
static void test_remembered(void **state)
{
	(void)state;
	test_recursion(state);
	test_rbp_frame(state);
	struct both b;
	for (int round = 0; round < 3; round++) {
		recurse(round, &b); /* a deeper stack each time */
		expect_same(&b);
		with_alloca(100 * (size_t)round + 16, &b);
		expect_same(&b);
	}
}

/* Walks whose reads (each frame's return address, and the last one, which
 * ends the walk) fill the memo's room or more: taken again, each from the
 * memo or walked, the same. */
static void test_remembered_near_the_memo_size(void **state)
{
	(void)state;
	struct both b;
	recurse(0, &b);
	int base = b.ours.count;
	for (int depth = MEMO_READS - 3 - base; depth < CHAIN_MAX - base; depth++) {
		for (int round = 0; round < 2; round++) {
			recurse(depth, &b);
			expect_same(&b);
			assert_int_equal(b.ours.count, base + depth);
		}
	}
}

/* A remembered walk is checked in the order it read the stack, and no word
 * past the first that differs is read: on another stack reached at the same
 * stack pointer (a coroutine's), the words after it may not be mapped. */
static void test_remembered_walk_stops_at_the_first_change(void **state)
{
	(void)state;
	struct both b;
	recurse(3, &b);
	struct remembered_walk *r = NULL;
	for (int w = 0; w < MEMO_WALKS; w++)
		if (memo->walk[w].count > 0)
			r = &memo->walk[w];
	assert_non_null(r);
	assert_true(r->reads >= 2);
	void *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_ptr_not_equal(hole, MAP_FAILED);
	r->read[0].value ^= 1; /* the first word it read holds something else now */
	r->read[1].at = (uintptr_t)hole;
	recurse(3, &b); /* from the same stack pointer: walked again */
	expect_same(&b);
	munmap(hole, 4096);
}

/* Two callers with the same frame size, called from the same place: the
 * walks start at the same stack pointer and read the same words, which
 * hold other return addresses: the remembered walk must not be taken. */
static __attribute__((noipa)) void caller_a(struct both *b)
{
	take_both(b);
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noipa)) void caller_b(struct both *b)
{
	take_both(b);
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void call_one(int which, struct both *b)
{
	if (which)
		caller_b(b);
	else
		caller_a(b);
	__asm__ volatile("" ::: "memory");
}

static void test_remembered_same_stack_pointer(void **state)
{
	(void)state;
	struct both a, b;
	for (int round = 0; round < 3; round++) {
		call_one(0, &a);
		expect_same(&a);
		call_one(1, &b);
		expect_same(&b);
		assert_ptr_not_equal(a.ours.frames[1], b.ours.frames[1]);
	}
}

/* The chain taken by lend_and_walk: its frames as taken, and whether they
 * were lent. */
struct lend {
	void *frames[CHAIN_MAX];
	int count;
	bool lent;
	uint64_t walk;
};

/* Takes a chain and keeps it in scope while, if walk_others, chains are
 * taken from more stack pointers than the memo keeps walks of (as a
 * signal handler's lines would): they must neither be lent nor replace the
 * remembered walk whose frames the held chain has. */
static __attribute__((noinline)) void lend_and_walk(bool walk_others, struct lend *l)
{
	CALL_CHAIN(held);
	call_chain_take(&held, memo);
	l->count = held.count;
	l->lent = held.frames != held.own;
	l->walk = held.walk;
	memcpy(l->frames, held.frames, (size_t)held.count * sizeof(void *));
	if (!walk_others)
		return;
	for (int depth = 0; depth < MEMO_WALKS + 2; depth++) {
		struct both b;
		recurse(depth, &b);
		expect_same(&b);
	}
	assert_ptr_equal(call_chain_lender, &held);
	assert_int_equal(held.count, l->count);
	assert_memory_equal(held.frames, l->frames, (size_t)held.count * sizeof(void *));
}

/* A walk taken again lends its remembered frames to a CALL_CHAIN, for as
 * long as that is in scope; then the next one is lent. */
static void test_lent_frames_stay_while_held(void **state)
{
	(void)state;
	struct lend first, again;
	/* A loop the compiler keeps (unit-asan's -O1 build peeled the first
	 * round into a call site of its own, whose chain differs): one call
	 * site, so the rounds take one chain. */
	static volatile int three = 3;
	for (int round = 0; round < three; round++) {
		lend_and_walk(round > 0, round == 0 ? &first : &again);
		assert_null(call_chain_lender);
	}
	assert_false(first.lent); /* walked, and remembered */
	assert_true(again.lent);
	assert_int_equal(again.count, first.count);
	assert_memory_equal(again.frames, first.frames, (size_t)first.count * sizeof(void *));
}

/* A chain taken again from a remembered walk carries the walk's serial:
 * the same each time, another once the walk was replaced; a chain walked
 * carries none. */
static void test_walk_serials(void **state)
{
	(void)state;
	struct lend l[2][3]; /* three chains from one place, the walks replaced between */
	static volatile int three = 3; /* a loop the compiler keeps: one call site */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < three; i++)
			lend_and_walk(false, &l[round][i]);
		for (int depth = 0; depth < MEMO_WALKS + 2; depth++) { /* each walk replaced */
			struct both b;
			recurse(depth, &b);
		}
	}
	for (int round = 0; round < 2; round++) {
		assert_int_equal(l[round][0].walk, 0);
		assert_int_not_equal(l[round][1].walk, 0);
		assert_int_equal(l[round][2].walk, l[round][1].walk);
		assert_memory_equal(l[round][2].frames, l[0][0].frames,
				    (size_t)l[0][0].count * sizeof(void *));
	}
	assert_int_not_equal(l[1][1].walk, l[0][1].walk);
}

static void test_thread(void **state)
{
	(void)state;
#ifdef __SANITIZE_THREAD__
	skip(); /* libunwind's per-thread cache faults at thread exit under TSan */
#endif
	struct both b;
	for (int round = 0; round < 2; round++) {
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, thread_main, &b), 0);
		pthread_join(t, NULL);
		expect_same(&b);
	}
}

/* Each thread, at depths that put different addresses in the shared
 * cache's sets, takes the chain at each depth again and again: every one
 * must be the same as its first. (Against its own chains, not libunwind's:
 * under ThreadSanitizer libunwind's per-thread cache faults as the thread
 * ends, in its destructor.) */
static void *compare_often(void *arg)
{
	struct call_chain first[7];
	long mismatches = 0;
	for (int i = 0; i < 7 * 60; i++) {
		int depth = (int)((long)arg + i) % 7;
		struct both b;
		recurse(depth, &b);
		if (i < 7)
			keep_chain(&first[depth], &b.ours);
		else if (b.ours.count != first[depth].count || b.ours.count == 0 ||
			 memcmp(b.ours.frames, first[depth].frames,
				(size_t)b.ours.count * sizeof(void *)) != 0)
			mismatches++;
	}
	return (void *)mismatches;
}

/* Starts n threads running compare_often (without libunwind's chains). */
static void comparers_start(pthread_t *t, int n)
{
	without_libunwind = true;
	for (long i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, compare_often, (void *)i), 0);
}

/* Waits for them: no chain differed from its first. */
static void comparers_join(pthread_t *t, int n)
{
	for (int i = 0; i < n; i++) {
		void *mismatches;
		pthread_join(t[i], &mismatches);
		assert_int_equal((long)mismatches, 0);
	}
	without_libunwind = false;
}

static void test_threads_at_once(void **state)
{
	(void)state;
	pthread_t t[4];
	comparers_start(t, 4);
	comparers_join(t, 4);
}

/* Detach empties the shared cache of frame rules while threads walk and
 * fill it: every chain is still the same as its first. */
static void test_rules_released_while_threads_walk(void **state)
{
	(void)state;
	pthread_t t[3];
	comparers_start(t, 3);
	for (int i = 0; i < 200; i++) {
		call_chain_release_rules();
		sched_yield();
	}
	comparers_join(t, 3);
	struct both b;
	call_chain_release_rules();
	recurse(3, &b);
	expect_same(&b);
}

static void test_too_deep(void **state)
{
	(void)state;
	struct both b;
	recurse(CHAIN_MAX + 4, &b);
	assert_int_equal(b.ours.count, 0);
}

/* A function with no unwind table entry: it keeps a frame pointer, which
 * libunwind follows (and the frame rules do not). */
void through_no_tables(void (*fn)(struct both *), struct both *b);
__asm__(".text\n"
	".globl through_no_tables\n"
	".type through_no_tables, @function\n"
	"through_no_tables:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	mov %rdi, %rax\n"
	"	mov %rsi, %rdi\n"
	"	call *%rax\n"
	"	pop %rbp\n"
	"	ret\n"
	".size through_no_tables, .-through_no_tables\n");

static __attribute__((noinline)) void call_through(struct both *b)
{
	through_no_tables(take_both, b);
	__asm__ volatile("" ::: "memory");
}

static void test_frame_without_tables(void **state)
{
	(void)state;
	struct both b;
	call_through(&b);
	/* the chain is libunwind's: it crosses the function without tables */
	expect_same(&b);
	void *inside = (void *)through_no_tables;
	bool crossed = false;
	for (int i = 0; i < b.ours.count; i++)
		if (b.ours.frames[i] > inside && (char *)b.ours.frames[i] < (char *)inside + 16)
			crossed = true;
	assert_true(crossed);
}

/* Before libunwind is loaded, a walk the frame rules cannot take gives
 * no chain, and asks for libunwind (the waits are no longer settled); the
 * next wait's load brings it, and the same walk gives libunwind's chain. A function's start looked up meanwhile is
 * not final (libunwind may know it). Runs first: the rest need libunwind. */
static void test_libunwind_loaded_when_a_walk_needs_it(void **state)
{
	(void)state;
	struct both b;
	bool final = true;
	/* a process that listened, its frame rules set up: nothing to load
	 * at its waits */
	call_chain_wanted();
	call_chain_load_if_wanted(false);
	assert_true(call_chain_settled);
	call_through(&b);
	assert_int_equal(b.ours.count, 0);
	assert_false(call_chain_settled); /* its next wait loads libunwind */
	assert_int_equal(call_chain_function((char *)through_no_tables + 8, &final), 0);
	assert_false(final);
	call_chain_load_if_wanted(false);
	call_chain_load_if_wanted(false);
	assert_true(call_chain_settled);
	call_through(&b);
	expect_same(&b);
	assert_true(b.ours.count > 0);
	call_chain_function((char *)through_no_tables + 8, &final);
	assert_true(final);
}

static struct call_chain in_handler;

static void on_signal(int sig)
{
	(void)sig;
	call_chain_take(&in_handler, NULL);
}

static void test_signal_handler(void **state)
{
	(void)state;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	in_handler.count = -1;
	raise(SIGUSR1);
	assert_int_equal(in_handler.count, 0);
	signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
	call_chain_load(false);
	assert_true(call_chain_ready());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libunwind_loaded_when_a_walk_needs_it),
		cmocka_unit_test(test_recursion),
		cmocka_unit_test(test_rbp_frame),
		cmocka_unit_test_setup_teardown(test_remembered, memo_on, memo_off),
		cmocka_unit_test_setup_teardown(test_remembered_same_stack_pointer, memo_on, memo_off),
		cmocka_unit_test_setup_teardown(test_remembered_near_the_memo_size, memo_on, memo_off),
		cmocka_unit_test_setup_teardown(test_remembered_walk_stops_at_the_first_change, memo_on, memo_off),
		cmocka_unit_test_setup_teardown(test_lent_frames_stay_while_held, memo_on, memo_off),
		cmocka_unit_test_setup_teardown(test_walk_serials, memo_on, memo_off),
		cmocka_unit_test(test_thread),
		cmocka_unit_test(test_threads_at_once),
		cmocka_unit_test(test_rules_released_while_threads_walk),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_frame_without_tables),
		cmocka_unit_test(test_signal_handler),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
