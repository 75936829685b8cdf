/*
 * test_epoll_queue.c - unit tests for shim/epoll_queue.c: events fetched
 * beyond the one a wait returns come back one per wait, in order, on the
 * same instance only, and never once their descriptor was modified,
 * deleted, closed or replaced, or their instance's number closed; a batch
 * with an event the map cannot name goes to the caller whole. Events of an
 * edge queue (edge-triggered or one-shot registrations) go back to the
 * kernel where a level-triggered one would be dropped, and all of them
 * when the thread is to wait elsewhere. Also the
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
#include <stdio.h>
#include <string.h>

#include "epoll_map.h"
#include "epoll_queue.h"
#include "shim_init.h"

#include "audit_off.h"
#include "fork_code_off.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;

enum { EP = 5, EP2 = 6 };

static struct epoll_queue queue;
/* Each test's data words: a word once ambiguous on an instance number stays
 * so (epoll_map.h), so no test reuses another's. */
static uint64_t base;

/* The events settled by rearm (epoll_rearm_fn), in order; the kernel's
 * registrations the map no longer has (a file closed under the number that
 * lives on under another); a number whose EPOLL_CTL_MOD the kernel refuses. */
static int rearmed[16], rearmed_count;
static bool kernel_keeps[20];
static int refused_fd;

static bool rearm(int epfd, int fd)
{
	assert_int_equal(epfd, EP);
	assert_true(rearmed_count < 16);
	rearmed[rearmed_count++] = fd;
	struct epoll_event registration;
	if (!epoll_map_registration(epfd, fd, &registration))
		return !(fd < 20 && kernel_keeps[fd]);
	return fd != refused_fd;
}

/* Fresh instances on EP and EP2, fds 10..19 registered on EP with data
 * base + fd, and an empty queue. */
static int setup(void **state)
{
	(void)state;
	base += 0x10000;
	epoll_map_new_instance(EP);
	epoll_map_new_instance(EP2);
	for (int fd = 10; fd < 20; fd++)
		epoll_map_set(EP, fd, base + (unsigned)fd, EPOLLIN);
	memset(&queue, 0, sizeof(queue));
	rearmed_count = 0;
	memset(kernel_keeps, 0, sizeof(kernel_keeps));
	refused_fd = -1;
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

/* fds 10..19 registered again, edge-triggered (or one-shot: the same to
 * the queue). */
static void register_edges(void)
{
	for (int fd = 10; fd < 20; fd++)
		epoll_map_set(EP, fd, base + (unsigned)fd,
			      EPOLLIN | (fd % 2 ? EPOLLONESHOT : EPOLLET));
}

/* The fd of the next kept event of EP, or -1 if the wait goes to the kernel. */
static int next_fd(void)
{
	struct epoll_event ev;
	int fd;
	if (!epoll_queue_take(&queue, EP, &ev, rearm, &fd))
		return -1;
	assert_true(fd == -1 || fd == (int)(ev.data.u64 - base)); /* named only as the map does */
	return (int)(ev.data.u64 - base);
}

static void test_kept_events_come_back_in_order(void **state)
{
	(void)state;
	struct epoll_event ev[4];
	int n = batch(ev, (const int[]){10, 11, 12, 13}, 4);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	assert_int_equal(ev[0].data.u64, base + 10); /* the caller's first */
	assert_int_equal(next_fd(), 11);
	assert_int_equal(next_fd(), 12);
	assert_int_equal(next_fd(), 13);
	assert_int_equal(next_fd(), -1);
}

/* A kept event handed out names its descriptor while the map is as it was
 * when the event was kept; after any change of the map (here another
 * descriptor registered) it names none, and the map is asked again. */
static void test_kept_events_name_their_descriptor_while_the_map_stands(void **state)
{
	(void)state;
	struct epoll_event ev[4], one;
	int fd;
	int n = batch(ev, (const int[]){10, 11, 12, 13}, 4);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(fd, 11);
	assert_int_equal(epoll_map_lookup(EP, one.data.u64), 11);
	epoll_map_set(EP, 20, base + 20, EPOLLIN);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(one.data.u64, base + 12);
	assert_int_equal(fd, -1);
	assert_int_equal(epoll_map_lookup(EP, one.data.u64), 12);
}

/* The queue remembers which descriptor a data word named (its lookup
 * memo): a word whose registration moved to another descriptor since (a
 * server's connection record given to a new connection) names the new
 * one in the next batch, never the one the memo saw. */
static void test_a_data_word_moved_to_another_descriptor_names_it(void **state)
{
	(void)state;
	struct epoll_event ev[3], one;
	int fd;
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(fd, 11);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(fd, 12);
	epoll_map_delete(EP, 11);
	epoll_map_set(EP, 21, base + 11, EPOLLIN);
	n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(one.data.u64, base + 11);
	assert_int_equal(fd, 21);
	assert_true(epoll_queue_take(&queue, EP, &one, rearm, &fd));
	assert_int_equal(fd, 12);
}

static void test_one_event_is_not_kept(void **state)
{
	(void)state;
	struct epoll_event ev[1];
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, batch(ev, (const int[]){10}, 1), false), 1);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, 0, false), 0);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, -1, false), -1);
	assert_int_equal(next_fd(), -1);
}

static void test_unknown_event_returns_the_whole_batch(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	ev[2].data.u64 = 0x9999; /* registered by nobody the map saw */
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 3);
	assert_int_equal(next_fd(), -1);
	/* the same word on two fds is ambiguous: whole batch too */
	epoll_map_set(EP, 20, base + 11, EPOLLIN);
	n = batch(ev, (const int[]){10, 11}, 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 2);
	assert_int_equal(next_fd(), -1);
}

static void test_changed_descriptors_are_dropped(void **state)
{
	(void)state;
	struct epoll_event ev[6];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14, 15}, 6);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	epoll_map_changed(11);		     /* EPOLL_CTL_MOD */
	epoll_map_changed(13);		     /* EPOLL_CTL_DEL */
	epoll_map_delete(EP, 13);
	epoll_map_forget(14);		     /* closed */
	epoll_map_forget(15);		     /* closed, and the number reused */
	epoll_map_set(EP, 15, base + 15, EPOLLIN);
	assert_int_equal(next_fd(), 12);
	assert_int_equal(next_fd(), -1);
}

static void test_other_instance_waits_on_the_kernel(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	struct epoll_event one;
	int fd;
	assert_false(epoll_queue_take(&queue, EP2, &one, rearm, &fd));
	/* EP2's own batch cannot be kept while EP's events wait */
	epoll_map_set(EP2, 30, 0x3000, EPOLLIN);
	epoll_map_set(EP2, 31, 0x3001, EPOLLIN);
	struct epoll_event ev2[2] = {{.data.u64 = 0x3000}, {.data.u64 = 0x3001}};
	assert_int_equal(epoll_queue_keep(&queue, EP2, ev2, 2, false), 2);
	assert_int_equal(next_fd(), 11);
	assert_int_equal(next_fd(), 12);
}

static void test_closed_instance_drops_everything(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
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
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	queue.busy = true; /* a signal handler waits while the thread is inside */
	assert_int_equal(next_fd(), -1);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 3);
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
		epoll_map_set(EP, fds[i], base + (unsigned)fds[i], EPOLLIN);
	}
	int n = batch(ev, fds, QUEUE_MAX + 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), n); /* more than fit */
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n - 1, false), 1);
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

/* An edge queue (an instance with edge-triggered or one-shot registrations)
 * hands its events out as a level-triggered one does, but one whose
 * descriptor changed goes back to the kernel instead of being dropped, and
 * every kept event goes back when the thread waits elsewhere. */
static void test_edge_events_go_back_not_away(void **state)
{
	(void)state;
	register_edges();
	struct epoll_event ev[5];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14}, 5);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	assert_int_equal(next_fd(), 11);
	epoll_map_changed(12); /* modified, or registered elsewhere */
	assert_int_equal(rearmed_count, 0);
	assert_int_equal(next_fd(), 13);
	assert_int_equal(rearmed_count, 1);
	assert_int_equal(rearmed[0], 12);
	epoll_queue_give_back(&queue, rearm); /* the thread waits elsewhere */
	assert_int_equal(rearmed_count, 2);
	assert_int_equal(rearmed[1], 14);
	assert_int_equal(next_fd(), -1);
	epoll_queue_give_back(&queue, rearm);
	assert_int_equal(rearmed_count, 2);
}

/* An edge event whose registration the map lost (its descriptor closed,
 * or deleted) goes away when the kernel holds no registration under its
 * number either: the program may have freed what its data word points to.
 * One the kernel still holds (the file lives on under another number) or
 * whose EPOLL_CTL_MOD the kernel refused cannot go back: it is handed out
 * as it came, and stays through a give_back. */
static void test_edge_events_without_registration(void **state)
{
	(void)state;
	register_edges();
	struct epoll_event ev[6];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14, 15}, 6);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_forget(11); /* closed, its file lives on under another number */
	kernel_keeps[11] = true;
	epoll_map_forget(12); /* closed, the last copy of its file */
	epoll_map_delete(EP, 13);
	epoll_map_changed(13);
	epoll_map_changed(14); /* modified; the kernel refuses to take it back */
	refused_fd = 14;
	epoll_queue_give_back(&queue, rearm); /* 11 and 14 cannot go back */
	assert_int_equal(rearmed_count, 5);
	assert_int_equal(rearmed[1], 12);
	assert_int_equal(rearmed[4], 15);
	assert_int_equal(next_fd(), 11); /* tried once more, then handed out */
	assert_int_equal(next_fd(), 14);
	assert_int_equal(rearmed_count, 7);
	assert_int_equal(next_fd(), -1);
}

/* The same without a give_back: the wait skips the events whose
 * registrations are gone, hands out the rest. */
static void test_edge_events_of_closed_descriptors_are_dropped(void **state)
{
	(void)state;
	register_edges();
	struct epoll_event ev[4];
	int n = batch(ev, (const int[]){10, 11, 12, 13}, 4);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_delete(EP, 11);
	epoll_map_changed(11);
	epoll_map_forget(12);
	assert_int_equal(next_fd(), 13);
	assert_int_equal(rearmed_count, 2);
	assert_int_equal(next_fd(), -1);
}

/* A registration the program deleted takes its kept events with it, and
 * none of them goes to rearm (the kernel holds no registration to give
 * them back to); a deletion on another instance, or of another fd, keeps
 * them. */
static void test_deleted_registrations_take_their_events(void **state)
{
	(void)state;
	register_edges();
	struct epoll_event ev[5];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14}, 5);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_delete(EP, 11);
	epoll_map_changed(11);
	epoll_queue_deleted(&queue, EP, 11);
	epoll_queue_deleted(&queue, EP2, 12);
	epoll_queue_deleted(&queue, EP, 15);
	kernel_keeps[11] = true; /* as if the kernel still said so: not asked */
	epoll_map_forget(13);
	epoll_map_delete(EP, 13);
	epoll_queue_deleted(&queue, EP, 13);
	assert_int_equal(next_fd(), 12);
	epoll_queue_give_back(&queue, rearm);
	assert_int_equal(rearmed_count, 1);
	assert_int_equal(rearmed[0], 14);
	assert_int_equal(next_fd(), -1);
}

/* /proc/self/fdinfo of an epoll instance, read in pieces: a number is
 * found only on a complete "tfd:" line, as a whole number. */
static void test_fdinfo_lists(void **state)
{
	(void)state;
	static const char info[] =
		"pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n"
		"tfd:        7 events:       19 data:                7  pos:0 ino:2a1 sdev:8\n"
		"tfd:       12 events:     2019 data:     55d2f0a1b2c0  pos:0 ino:15cd4ac sdev:9\n"
		"tfd:\t1234567\n";
	size_t n = sizeof(info) - 1, done;
	uint64_t ino = 99;
	assert_true(epoll_fdinfo_lists(info, n, 7, &done, &ino));
	assert_int_equal(ino, 0x2a1);
	assert_true(epoll_fdinfo_lists(info, n, 12, &done, &ino));
	assert_int_equal(ino, 0x15cd4ac);
	assert_true(epoll_fdinfo_lists(info, n, 1234567, &done, &ino));
	assert_int_equal(ino, 0); /* listed without an inode */
	assert_int_equal(done, n);
	assert_false(epoll_fdinfo_lists(info, n, 1, &done, &ino)); /* not a prefix of 12 */
	assert_int_equal(done, n);
	assert_false(epoll_fdinfo_lists(info, n, 19, &done, &ino)); /* an events mask */
	assert_false(epoll_fdinfo_lists(info, n, 0, &done, &ino));  /* pos: is not tfd: */
	size_t first = strlen("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n");
	size_t cut = first + 20; /* inside the tfd 7 line */
	assert_false(epoll_fdinfo_lists(info, cut, 7, &done, &ino));
	assert_int_equal(done, first);
	assert_true(epoll_fdinfo_lists(info + done, n - done, 7, &done, &ino));
	assert_int_equal(ino, 0x2a1);
	assert_false(epoll_fdinfo_lists("tfd: 7", 6, 7, &done, &ino)); /* no newline yet */
	assert_int_equal(done, 0);
	static const char odd[] = "tfd: 12345678901 x\ntfd: x7\ntfd:\n";
	assert_false(epoll_fdinfo_lists(odd, sizeof(odd) - 1, 1234567890, &done, &ino));
	assert_false(epoll_fdinfo_lists(odd, sizeof(odd) - 1, 7, &done, &ino));
}

/* In an edge queue, an event whose registration is level-triggered goes as
 * in any queue: dropped when its descriptor changed or the thread waits
 * elsewhere (the kernel reports it again), never given back. */
static void test_level_events_of_an_edge_queue(void **state)
{
	(void)state;
	register_edges();
	epoll_map_set(EP, 12, base + 12, EPOLLIN);
	epoll_map_set(EP, 14, base + 14, EPOLLIN);
	struct epoll_event ev[5];
	int n = batch(ev, (const int[]){10, 11, 12, 13, 14}, 5);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_changed(12);
	assert_int_equal(next_fd(), 11);
	assert_int_equal(next_fd(), 13);
	assert_int_equal(rearmed_count, 0);
	memset(&queue, 0, sizeof(queue));
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_queue_give_back(&queue, rearm);
	assert_int_equal(rearmed_count, 2);
	assert_int_equal(rearmed[0], 11);
	assert_int_equal(rearmed[1], 13);
	assert_int_equal(next_fd(), -1);
}

/* A level-triggered queue is left alone by give_back: the kernel reports
 * its events again anyway, and the thread's next wait on EP takes them. */
static void test_level_events_stay_on_give_back(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	epoll_queue_give_back(&queue, rearm);
	assert_int_equal(rearmed_count, 0);
	assert_int_equal(next_fd(), 11);
	epoll_map_changed(12);
	assert_int_equal(next_fd(), -1);
	assert_int_equal(rearmed_count, 0);
}

/* An edge batch is kept only if every event could be given back: its
 * registration known with its events mask, and not EPOLLEXCLUSIVE (which
 * EPOLL_CTL_MOD refuses). */
static void test_edge_batch_needs_known_registrations(void **state)
{
	(void)state;
	struct epoll_event ev[3];
	epoll_map_set(EP, 15, base + 15, 0); /* mask not known */
	int n = batch(ev, (const int[]){10, 15, 11}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, false), 1);
	memset(&queue, 0, sizeof(queue));
	epoll_map_set(EP, 16, base + 16, EPOLLIN | EPOLLET | EPOLLEXCLUSIVE);
	n = batch(ev, (const int[]){10, 16}, 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 2);
	/* A level-triggered one (a listening socket shared by processes) is
	 * kept as in any queue: the kernel reports it again. */
	epoll_map_set(EP, 17, base + 17, EPOLLIN | EPOLLEXCLUSIVE);
	n = batch(ev, (const int[]){10, 17}, 2);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_changed(17);
	assert_int_equal(next_fd(), -1);
	assert_int_equal(rearmed_count, 0);
	struct epoll_event got;
	assert_true(epoll_map_registration(EP, 11, &got));
	assert_int_equal(got.events, EPOLLIN);
	assert_int_equal(got.data.u64, base + 11);
	assert_false(epoll_map_registration(EP2, 11, &got));
	epoll_map_delete(EP, 11);
	assert_false(epoll_map_registration(EP, 11, &got));
}

/* An edge queue's instance closed: its events go nowhere (the instance is
 * gone, and its number may be another's). */
static void test_edge_events_of_a_closed_instance(void **state)
{
	(void)state;
	register_edges();
	struct epoll_event ev[3];
	int n = batch(ev, (const int[]){10, 11, 12}, 3);
	assert_int_equal(epoll_queue_keep(&queue, EP, ev, n, true), 1);
	epoll_map_forget(EP);
	epoll_queue_give_back(&queue, rearm);
	assert_int_equal(rearmed_count, 0);
	assert_int_equal(next_fd(), -1);
}

/* A registration line as the kernel prints it, each field read; one
 * without events, data or ino is a registration all the same, but not
 * complete. */
static void test_fdinfo_line(void **state)
{
	(void)state;
	static const char full[] =
		"tfd:       12 events: 40000019 data:     55d2f0a1b2c0  pos:0 ino:15cd4ac sdev:9";
	struct fdinfo_registration r;
	assert_true(epoll_fdinfo_line(full, sizeof(full) - 1, &r));
	assert_int_equal(r.fd, 12);
	assert_int_equal(r.events, 0x40000019);
	assert_int_equal(r.data, 0x55d2f0a1b2c0);
	assert_int_equal(r.ino, 0x15cd4ac);
	assert_true(r.complete);
	static const char max[] = "tfd: 1048575 events: 1 data: ffffffffffffffff pos:0 ino:1";
	assert_true(epoll_fdinfo_line(max, sizeof(max) - 1, &r));
	assert_int_equal(r.fd, 1048575);
	assert_true(r.data == UINT64_MAX);
	assert_true(r.complete);
	assert_true(epoll_fdinfo_line("tfd: 7 events: 19", 17, &r));
	assert_int_equal(r.fd, 7);
	assert_false(r.complete);
	assert_false(epoll_fdinfo_line("tfd: 7x events: 19", 18, &r));
	assert_false(epoll_fdinfo_line("pos:\t0", 6, &r));
	assert_false(epoll_fdinfo_line("tfd:", 4, &r));
	assert_false(epoll_fdinfo_line("tfd: 7", 3, &r)); /* cut before its number */
}

/* A file read a few bytes at a time (each call gives step bytes or what
 * is left), or failing after it gave fail_after bytes. */
struct fake_file {
	const char *text;
	size_t len, at, step, fail_after;
};

static long fake_read(void *source, char *buf, size_t room)
{
	struct fake_file *f = source;
	if (f->at >= f->fail_after)
		return -1;
	size_t n = f->len - f->at;
	if (n > f->step)
		n = f->step;
	if (n > room)
		n = room;
	memcpy(buf, f->text + f->at, n);
	f->at += n;
	return (long)n;
}

/* The whole file through a small buffer, in parts that cut lines anywhere:
 * a line is carried whole to the next part, whatever its position. */
static void test_fdinfo_find_in_parts(void **state)
{
	(void)state;
	char text[8192], buf[128];
	size_t len = (size_t)snprintf(text, sizeof(text), "pos:\t0\nflags:\t02\n");
	for (int fd = 10; fd < 90; fd++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"tfd: %8d events:       19 data: %16x  pos:0 ino:%x sdev:8\n",
					fd, fd, 0x1000 + fd);
	for (size_t step = 1; step <= 97; step += 4) {
		for (int fd = 9; fd <= 90; fd++) {
			struct fake_file f = {text, len, 0, step, SIZE_MAX};
			uint64_t want = fd >= 10 && fd < 90 ? 0x1000u + (unsigned)fd : 0;
			assert_int_equal(epoll_fdinfo_find(fake_read, &f, buf, sizeof(buf), fd), want);
		}
	}
	struct fake_file failing = {text, len, 0, 64, 1000}; /* a read fails before fd 89 */
	assert_int_equal(epoll_fdinfo_find(fake_read, &failing, buf, sizeof(buf), 89), 0);
	char small[40]; /* a line longer than the buffer ends the search */
	struct fake_file f = {text, len, 0, 64, SIZE_MAX};
	assert_int_equal(epoll_fdinfo_find(fake_read, &f, small, sizeof(small), 89), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_kept_events_come_back_in_order, setup),
		cmocka_unit_test_setup(test_kept_events_name_their_descriptor_while_the_map_stands, setup),
		cmocka_unit_test_setup(test_a_data_word_moved_to_another_descriptor_names_it, setup),
		cmocka_unit_test_setup(test_one_event_is_not_kept, setup),
		cmocka_unit_test_setup(test_unknown_event_returns_the_whole_batch, setup),
		cmocka_unit_test_setup(test_changed_descriptors_are_dropped, setup),
		cmocka_unit_test_setup(test_other_instance_waits_on_the_kernel, setup),
		cmocka_unit_test_setup(test_closed_instance_drops_everything, setup),
		cmocka_unit_test_setup(test_clear_and_busy, setup),
		cmocka_unit_test_setup(test_fetch_max, setup),
		cmocka_unit_test_setup(test_one_waiter, setup),
		cmocka_unit_test_setup(test_edge_events_go_back_not_away, setup),
		cmocka_unit_test_setup(test_edge_events_without_registration, setup),
		cmocka_unit_test_setup(test_edge_events_of_closed_descriptors_are_dropped, setup),
		cmocka_unit_test_setup(test_deleted_registrations_take_their_events, setup),
		cmocka_unit_test(test_fdinfo_lists),
		cmocka_unit_test(test_fdinfo_find_in_parts),
		cmocka_unit_test(test_fdinfo_line),
		cmocka_unit_test_setup(test_level_events_stay_on_give_back, setup),
		cmocka_unit_test_setup(test_level_events_of_an_edge_queue, setup),
		cmocka_unit_test_setup(test_edge_batch_needs_known_registrations, setup),
		cmocka_unit_test_setup(test_edge_events_of_a_closed_instance, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
