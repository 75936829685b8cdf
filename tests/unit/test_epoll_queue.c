/*
 * test_epoll_queue.c - unit tests for shim/epoll_queue.c: events fetched
 * beyond the one a wait returns come back one per wait, in order, on the
 * same instance only, and never once their descriptor was modified,
 * deleted, closed or replaced, or their instance's number closed; a batch
 * with an event the map cannot name goes to the caller whole. Also the
 * one-waiter test of epoll_map.c that decides whether a thread may keep
 * events at all.
 *
 * Links epoll_queue.c, epoll_map.c and conn_table.c with the pure sources;
 * no hooks, no libc interposition.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "epoll_map.h"
#include "epoll_queue.h"
#include "shim_init.h"

#include "audit_off.h"

struct shim_state shim;
struct real_functions real;

enum { EP = 5, EP2 = 6 };

static struct epoll_queue queue;
/* Each test's data words: a word once ambiguous on an instance number stays
 * so (epoll_map.h), so no test reuses another's. */
static uint64_t base;

/* Fresh instances on EP and EP2, fds 10..19 registered on EP with data
 * base + fd, and an empty queue. */
static int setup(void **state)
{
	(void)state;
	base += 0x10000;
	epoll_map_new_instance(EP);
	epoll_map_new_instance(EP2);
	for (int fd = 10; fd < 20; fd++)
		epoll_map_set(EP, fd, base + (unsigned)fd);
	memset(&queue, 0, sizeof(queue));
	return 0;
}

/* A batch of events for fds, as the kernel would return it. */
static int batch(struct epoll_event *ev, const int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		ev[i].events = EPOLLIN;
		ev[i].data.u64 = base + (unsigned)fds[i];
	}
	return n;
}

/* The fd of the next kept event of EP, or -1 if the wait goes to the kernel. */
static int next_fd(void)
{
	struct epoll_event ev;
	if (!epoll_queue_take(&queue, EP, &ev))
		return -1;
	return (int)(ev.data.u64 - base);
}

static void test_kept_events_come_back_in_order(void **state)
{
	(void)state;
	struct epoll_event ev[4];
	int n = batch(ev, (const int[]){10, 11, 12, 13}, 4);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 1);
	assert_int_equal(ev[0].data.u64, base + 10); /* the caller's first */
	assert_int_equal(next_fd(), 11);
	assert_int_equal(next_fd(), 12);
	assert_int_equal(next_fd(), 13);
	assert_int_equal(next_fd(), -1);
}

static void test_one_event_is_not_kept(void **state)
{
	(void)state;
	struct epoll_event ev[1];
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, batch(ev, (const int[]){10}, 1)), 1);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, 0), 0);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, -1), -1);
	assert_int_equal(next_fd(), -1);
}

static void test_unknown_event_returns_the_whole_batch(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	ev[2].data.u64 = 0x9999; /* registered by nobody the map saw */
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 3);
	assert_int_equal(next_fd(), -1);
	/* the same word on two fds is ambiguous: whole batch too */
	epoll_map_set(EP, 20, base + 11);
	n = batch(ev, (const int[]){10, 11}, 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 2);
	assert_int_equal(next_fd(), -1);
}

static void test_changed_descriptors_are_dropped(void **state)
{
	(void)state;
	struct epoll_event ev[6];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14, 15}, 6);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 1);
	epoll_map_changed(11);		     /* EPOLL_CTL_MOD */
	epoll_map_changed(13);		     /* EPOLL_CTL_DEL */
	epoll_map_delete(EP, 13);
	epoll_map_forget(14);		     /* closed */
	epoll_map_forget(15);		     /* closed, and the number reused */
	epoll_map_set(EP, 15, base + 15);
	assert_int_equal(next_fd(), 12);
	assert_int_equal(next_fd(), -1);
}

static void test_other_instance_waits_on_the_kernel(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 1);
	struct epoll_event one;
	assert_false(epoll_queue_take(&queue, EP2, &one));
	/* EP2's own batch cannot be kept while EP's events wait */
	epoll_map_set(EP2, 30, 0x3000);
	epoll_map_set(EP2, 31, 0x3001);
	struct epoll_event ev2[2] = {{.data.u64 = 0x3000}, {.data.u64 = 0x3001}};
	assert_int_equal(epoll_queue_keep(&queue, EP2, ev2, 2), 2);
	assert_int_equal(next_fd(), 11);
	assert_int_equal(next_fd(), 12);
}

static void test_closed_instance_drops_everything(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 1);
	epoll_map_forget(EP);
	assert_int_equal(next_fd(), -1);
	/* and a new instance under the same number starts empty */
	epoll_map_new_instance(EP);
	assert_int_equal(next_fd(), -1);
}

static void test_clear_and_busy(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 1);
	queue.busy = true; /* a signal handler waits while the thread is inside */
	assert_int_equal(next_fd(), -1);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), 3);
	queue.busy = false;
	assert_int_equal(next_fd(), 11);
	epoll_queue_clear(&queue); /* a fork child's copy */
	assert_int_equal(next_fd(), -1);
}

static void test_fetch_max(void **state)
{
	(void)state;
	assert_int_equal(epoll_queue_fetch_max(2), 2);
	assert_int_equal(epoll_queue_fetch_max(QUEUE_MAX + 1), QUEUE_MAX + 1);
	assert_int_equal(epoll_queue_fetch_max(512), QUEUE_MAX + 1);
	struct epoll_event ev[QUEUE_MAX + 2];
	int fds[QUEUE_MAX + 2];
	for (int i = 0; i < QUEUE_MAX + 2; i++) {
		fds[i] = 100 + i;
		epoll_map_set(EP, fds[i], base + (unsigned)fds[i]);
	}
	int n = batch(ev, fds, QUEUE_MAX + 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n), n); /* more than fit */
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n - 1), 1);
	for (int i = 1; i < QUEUE_MAX + 1; i++)
		assert_int_equal(next_fd(), 100 + i);
	assert_int_equal(next_fd(), -1);
}

static void test_one_waiter(void **state)
{
	(void)state;
	assert_true(epoll_map_one_waiter(EP, 100));
	assert_true(epoll_map_one_waiter(EP, 100));
	assert_true(epoll_map_one_waiter(EP2, 101));
	assert_false(epoll_map_one_waiter(EP, 101)); /* a second thread */
	assert_false(epoll_map_one_waiter(EP, 100)); /* for good */
	epoll_map_new_instance(EP);		     /* a new instance: anew */
	assert_true(epoll_map_one_waiter(EP, 101));
	assert_false(epoll_map_one_waiter(1 << 20, 100));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_kept_events_come_back_in_order, setup),
		cmocka_unit_test_setup(test_one_event_is_not_kept, setup),
		cmocka_unit_test_setup(test_unknown_event_returns_the_whole_batch, setup),
		cmocka_unit_test_setup(test_changed_descriptors_are_dropped, setup),
		cmocka_unit_test_setup(test_other_instance_waits_on_the_kernel, setup),
		cmocka_unit_test_setup(test_closed_instance_drops_everything, setup),
		cmocka_unit_test_setup(test_clear_and_busy, setup),
		cmocka_unit_test_setup(test_fetch_max, setup),
		cmocka_unit_test_setup(test_one_waiter, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
