/*
 * test_epoll_map.c - unit tests for shim/epoll_map.c: an epoll event's data
 * word leads back to exactly the descriptor registered with it on that
 * epoll instance, or to none: never to a descriptor that was deleted,
 * closed, re-registered with another word or registered on a closed
 * instance whose number came back, and never when two descriptors share the
 * word. The count of connections per instance follows adds, moves,
 * deletes and closes. Descriptors and instances on numbers up to 2^20 - 1
 * are mapped like low ones. The index grows with the registrations held
 * (past the 65,536 it once had for all), not with the keys ever seen, and
 * keeps what it knew (ambiguous keys among it) across every rebuild.
 *
 * Links epoll_map.c and conn_table.c (for the fd flags) with the pure
 * sources; no hooks, no libc interposition.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>

#include "conn_table.h"
#include "epoll_map.h"
#include "shim_init.h"

#include "audit_off.h"
#include "fork_code_off.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;

enum { EP = 5, EP2 = 6 };

/* Each test starts from fresh epoll instances on EP and EP2, which voids
 * every registration an earlier test left on them. */
static int setup(void **state)
{
	(void)state;
	epoll_map_new_instance(EP);
	epoll_map_new_instance(EP2);
	for (int fd = 0; fd < 64; fd++)
		atomic_store(&fd_state_made(fd)->flags, 0);
	return 0;
}

static void test_lookup_finds_the_registered_fd(void **state)
{
	(void)state;
	epoll_map_set(EP, 10, 0x7f00001000, EPOLLIN);
	epoll_map_set(EP, 11, 0x7f00002000, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 0x7f00001000), 10);
	assert_int_equal(epoll_map_lookup(EP, 0x7f00002000), 11);
	/* another instance, another word: unknown */
	assert_int_equal(epoll_map_lookup(EP2, 0x7f00001000), -1);
	assert_int_equal(epoll_map_lookup(EP, 0x7f00003000), -1);
	/* out of range */
	assert_int_equal(epoll_map_lookup(-1, 0x7f00001000), -1);
	assert_int_equal(epoll_map_lookup((int)FD_LIMIT, 0x7f00001000), -1);
}

/* epoll_map_lookup_events answers the fd epoll_map_lookup does and the
 * mask epoll_map_registration has for it: 0 where that has none (a mask
 * not known, no fd). */
static void test_lookup_events_is_lookup_and_registration(void **state)
{
	(void)state;
	uint32_t events = 1;
	epoll_map_set(EP, 13, 0x7f00004000, EPOLLIN | EPOLLET);
	assert_int_equal(epoll_map_lookup_events(EP, 0x7f00004000, &events), 13);
	assert_int_equal(events, EPOLLIN | EPOLLET);
	epoll_map_set(EP, 13, 0x7f00004000, EPOLLIN | EPOLLONESHOT | EPOLLEXCLUSIVE);
	assert_int_equal(epoll_map_lookup_events(EP, 0x7f00004000, &events), 13);
	assert_int_equal(events, EPOLLIN | EPOLLONESHOT | EPOLLEXCLUSIVE);
	/* a registration whose mask is not known (0): found, mask 0 */
	epoll_map_set(EP, 14, 0x7f00005000, 0);
	events = 1;
	assert_int_equal(epoll_map_lookup_events(EP, 0x7f00005000, &events), 14);
	assert_int_equal(events, 0);
	struct epoll_event got;
	assert_false(epoll_map_registration(EP, 14, &got));
	/* no fd: unknown word, another instance, a shared word */
	events = 1;
	assert_int_equal(epoll_map_lookup_events(EP, 0x7f00006000, &events), -1);
	assert_int_equal(events, 0);
	events = 1;
	assert_int_equal(epoll_map_lookup_events(EP2, 0x7f00004000, &events), -1);
	assert_int_equal(events, 0);
	epoll_map_set(EP, 15, 0x7f00004000, EPOLLIN | EPOLLET);
	events = 1;
	assert_int_equal(epoll_map_lookup_events(EP, 0x7f00004000, &events), -1);
	assert_int_equal(events, 0);
	assert_int_equal(epoll_map_lookup(EP, 0x7f00004000), -1);
}

/* epoll_map_lookup_hashed, given what epoll_map_prefetch returned, answers
 * as epoll_map_lookup_events (with a mask) and epoll_map_lookup (without):
 * a registered fd, an unknown word, another instance, a shared word, an
 * instance number out of range. */
static void test_lookup_hashed_is_lookup(void **state)
{
	(void)state;
	epoll_map_set(EP, 16, 0x7f00007000, EPOLLIN | EPOLLET);
	epoll_map_set(EP, 17, 0x7f00008000, EPOLLIN);
	epoll_map_set(EP, 18, 0x7f00009000, EPOLLIN);
	epoll_map_set(EP, 19, 0x7f00009000, EPOLLIN);
	const struct {
		int epfd;
		uint64_t data;
		int fd;
		uint32_t events;
	} cases[] = {{EP, 0x7f00007000, 16, EPOLLIN | EPOLLET},
		     {EP, 0x7f00008000, 17, EPOLLIN},
		     {EP, 0x7f0000a000, -1, 0},
		     {EP2, 0x7f00007000, -1, 0},
		     {EP, 0x7f00009000, -1, 0},
		     {-1, 0x7f00007000, -1, 0}};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		uint64_t hash = epoll_map_prefetch(cases[k].epfd, cases[k].data);
		uint32_t events = 1;
		assert_int_equal(epoll_map_lookup_hashed(cases[k].epfd, cases[k].data, hash, &events),
				 cases[k].fd);
		assert_int_equal(events, cases[k].events);
		assert_int_equal(epoll_map_lookup_hashed(cases[k].epfd, cases[k].data, hash, NULL),
				 cases[k].fd);
		assert_int_equal(epoll_map_lookup(cases[k].epfd, cases[k].data), cases[k].fd);
	}
}

static void test_delete_close_and_modify(void **state)
{
	(void)state;
	epoll_map_set(EP, 12, 42, EPOLLIN);
	epoll_map_delete(EP, 12);
	assert_int_equal(epoll_map_lookup(EP, 42), -1);

	epoll_map_set(EP, 12, 42, EPOLLIN);
	epoll_map_forget(12); /* close(12) */
	assert_int_equal(epoll_map_lookup(EP, 42), -1);

	/* EPOLL_CTL_MOD with a new word: the old one leads nowhere */
	epoll_map_set(EP, 12, 42, EPOLLIN);
	epoll_map_set(EP, 12, 43, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 42), -1);
	assert_int_equal(epoll_map_lookup(EP, 43), 12);

	/* a delete on another instance leaves this registration alone */
	epoll_map_delete(EP2, 12);
	assert_int_equal(epoll_map_lookup(EP, 43), 12);
}

static void test_same_word_for_two_fds_is_ambiguous_for_good(void **state)
{
	(void)state;
	epoll_map_set(EP, 20, 0, EPOLLIN); /* programs that put 0 in every event */
	assert_int_equal(epoll_map_lookup(EP, 0), 20);
	epoll_map_set(EP, 21, 0, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 0), -1);
	/* one of them goes: still unknown, the word was shared */
	epoll_map_forget(21);
	assert_int_equal(epoll_map_lookup(EP, 0), -1);
	/* the same word on another instance is another key */
	epoll_map_set(EP2, 22, 0, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP2, 0), 22);
}

static void test_reused_fd_and_instance_numbers(void **state)
{
	(void)state;
	epoll_map_set(EP, 30, 0xabc, EPOLLIN);
	/* fd 30 closed and reopened as something registered with another word */
	epoll_map_forget(30);
	epoll_map_set(EP, 30, 0xdef, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 0xabc), -1);
	assert_int_equal(epoll_map_lookup(EP, 0xdef), 30);
	/* the epoll fd itself closed and its number reused for a new instance:
	 * the old registrations were the old instance's */
	epoll_map_new_instance(EP);
	assert_int_equal(epoll_map_lookup(EP, 0xdef), -1);
	epoll_map_set(EP, 31, 0xdef, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 0xdef), 31);
}

static void test_many_registrations(void **state)
{
	(void)state;
	/* more words than the probe window, hashed anywhere: each found */
	for (int fd = 100; fd < 4100; fd++)
		epoll_map_set(EP2, fd, (uint64_t)fd * 0x10000 + 0x55, EPOLLIN);
	for (int fd = 100; fd < 4100; fd++)
		assert_int_equal(epoll_map_lookup(EP2, (uint64_t)fd * 0x10000 + 0x55), fd);
	for (int fd = 100; fd < 4100; fd++)
		epoll_map_forget(fd);
	assert_int_equal(epoll_map_lookup(EP2, 100 * 0x10000 + 0x55), -1);
}

static void test_connections_counted(void **state)
{
	(void)state;
	atomic_store(&fd_state_made(40)->flags, FD_CONN);
	atomic_store(&fd_state_made(41)->flags, FD_CONN);
	epoll_map_set(EP, 39, 1, EPOLLIN); /* a listening socket: not a connection */
	assert_int_equal(epoll_map_connections(EP), 0);
	epoll_map_set(EP, 40, 2, EPOLLIN);
	assert_int_equal(epoll_map_connections(EP), 1);
	epoll_map_set(EP, 40, 3, EPOLLIN); /* MOD: counted once */
	assert_int_equal(epoll_map_connections(EP), 1);
	epoll_map_set(EP, 41, 4, EPOLLIN);
	assert_int_equal(epoll_map_connections(EP), 2);
	epoll_map_delete(EP, 40);
	assert_int_equal(epoll_map_connections(EP), 1);
	epoll_map_forget(41);
	assert_int_equal(epoll_map_connections(EP), 0);
	epoll_map_forget(39);
	assert_int_equal(epoll_map_connections(EP), 0);
	/* moved to another instance: counted there */
	epoll_map_set(EP, 40, 5, EPOLLIN);
	epoll_map_set(EP2, 40, 5, EPOLLIN);
	assert_int_equal(epoll_map_connections(EP), 0);
	assert_int_equal(epoll_map_connections(EP2), 1);
	/* a new instance on the number starts at none */
	epoll_map_new_instance(EP2);
	assert_int_equal(epoll_map_connections(EP2), 0);
	epoll_map_forget(40);
	assert_int_equal(epoll_map_connections(EP2), 0);
}

static void test_high_descriptors(void **state)
{
	(void)state;
	const int top = (int)FD_LIMIT - 1, ep_high = (int)FD_LIMIT - 2;
	assert_int_equal(epoll_map_stamp(500000), 0);
	assert_false(epoll_map_tracks(500000));
	epoll_map_changed(500000); /* a change on a number never seen counts */
	assert_int_equal(epoll_map_stamp(500000), 1);
	epoll_map_new_instance(ep_high);
	atomic_store(&fd_state_made(top)->flags, FD_CONN);
	atomic_store(&fd_state_made(70000)->flags, FD_CONN);
	epoll_map_set(ep_high, top, 0x1111, EPOLLIN);
	epoll_map_set(ep_high, 70000, 0x2222, EPOLLIN);
	epoll_map_set(EP, 80000, 0x1111, EPOLLIN);
	assert_int_equal(epoll_map_lookup(ep_high, 0x1111), top);
	assert_int_equal(epoll_map_lookup(ep_high, 0x2222), 70000);
	assert_int_equal(epoll_map_lookup(EP, 0x1111), 80000);
	assert_int_equal(epoll_map_connections(ep_high), 2);
	assert_true(epoll_map_tracks(top));
	/* The instance's number is read back from the registration's key. */
	epoll_map_forget(top);
	assert_int_equal(epoll_map_connections(ep_high), 1);
	assert_int_equal(epoll_map_lookup(ep_high, 0x1111), -1);
	epoll_map_delete(ep_high, 70000);
	assert_int_equal(epoll_map_connections(ep_high), 0);
	assert_int_equal(epoll_map_lookup(ep_high, 0x2222), -1);
	/* A new instance on the number voids what the old one had. */
	epoll_map_set(ep_high, 70000, 0x3333, EPOLLIN);
	epoll_map_new_instance(ep_high);
	assert_int_equal(epoll_map_lookup(ep_high, 0x3333), -1);
	assert_int_equal(epoll_map_connections(ep_high), 0);
	epoll_map_forget(70000);
	epoll_map_forget(80000);
	atomic_store(&fd_state(top)->flags, 0);
	atomic_store(&fd_state(70000)->flags, 0);
}

/* Registers fds first..first+n-1 on EP2 with words word(fd). */
static uint64_t word(int fd)
{
	return (uint64_t)fd * 0x1000 + 0x7f0000000000;
}

static void register_range(int first, int n)
{
	for (int fd = first; fd < first + n; fd++)
		epoll_map_set(EP2, fd, word(fd), EPOLLIN);
}

static void forget_range(int first, int n)
{
	for (int fd = first; fd < first + n; fd++)
		epoll_map_forget(fd);
}

/* Two data words whose hashes with EP share the 43 bits a slot keeps
 * (found by a birthday search over 16-byte-aligned heap addresses). */
#define SHARED_BITS_1 0x7f00002611d0ull
#define SHARED_BITS_2 0x7f000ba5f660ull

static void test_keys_sharing_hash_bits_never_name_a_wrong_fd(void **state)
{
	(void)state;
	epoll_map_set(EP, 40, SHARED_BITS_1, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, SHARED_BITS_1), 40);
	/* one slot for both: neither can be told apart any more */
	epoll_map_set(EP, 41, SHARED_BITS_2, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, SHARED_BITS_2), -1);
	/* 40 and 42 hold the same word: one event could be either's. 41
	 * closes first: a slot that named it must still not hide 40. */
	epoll_map_forget(41);
	epoll_map_set(EP, 42, SHARED_BITS_1, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, SHARED_BITS_1), -1);
	epoll_map_forget(40);
	epoll_map_forget(42);
}

static void test_index_grows_with_registrations(void **state)
{
	(void)state;
	/* 100,000 held at once, on descriptors up from 200,000: every one
	 * found (the index once had 65,536 slots for all). A table is rebuilt
	 * into one at most half full of what it holds, and twice as large
	 * when a key finds its probe window full, which it rarely does before
	 * three quarters: 100,000 take 262,144 slots, 21 bytes each. */
	register_range(200000, 100000);
	assert_int_equal(epoll_map_index_slots(), 262144);
	for (int fd = 200000; fd < 300000; fd += 7)
		assert_int_equal(epoll_map_lookup(EP2, word(fd)), fd);
	assert_int_equal(epoll_map_lookup(EP2, word(300000)), -1);
	forget_range(200000, 100000);
	assert_int_equal(epoll_map_lookup(EP2, word(200000)), -1);
}

static void test_index_follows_what_is_held_not_what_was_seen(void **state)
{
	(void)state;
	unsigned slots = epoll_map_index_slots();
	assert_true(slots >= 1024);
	/* 300,000 words, never more than 100 registered at once (a server
	 * whose data words are fresh per connection): the table is rebuilt
	 * around what is held, at its size. */
	epoll_map_set(EP, 50, 0x5050, EPOLLIN); /* held throughout */
	for (int round = 1; round <= 3000; round++) {
		register_range(100, 100);
		for (int fd = 100; fd < 200; fd++)
			epoll_map_set(EP2, fd, word(fd) + ((uint64_t)round << 40), EPOLLIN);
		assert_int_equal(epoll_map_lookup(EP2, word(150) + ((uint64_t)round << 40)), 150);
		assert_int_equal(epoll_map_lookup(EP2, word(150)), -1);
		forget_range(100, 100);
	}
	assert_int_equal(epoll_map_index_slots(), slots);
	assert_int_equal(epoll_map_lookup(EP, 0x5050), 50);
	epoll_map_forget(50);
}

static void test_ambiguous_key_survives_rebuilds(void **state)
{
	(void)state;
	epoll_map_set(EP, 60, 0x6060, EPOLLIN);
	epoll_map_set(EP, 61, 0x6060, EPOLLIN);
	epoll_map_forget(61);
	unsigned slots = epoll_map_index_slots();
	/* enough new keys held at once to grow the table twice */
	register_range(400000, (int)slots * 2);
	assert_true(epoll_map_index_slots() >= 4 * slots);
	assert_int_equal(epoll_map_lookup(EP, 0x6060), -1);
	/* fd 60 alone holds the key now, which the rebuilt tables still mark */
	epoll_map_set(EP, 60, 0x6060, EPOLLIN);
	assert_int_equal(epoll_map_lookup(EP, 0x6060), -1);
	assert_int_equal(epoll_map_lookup(EP2, word(400000)), 400000);
	forget_range(400000, (int)slots * 2);
	epoll_map_forget(60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_lookup_finds_the_registered_fd, setup),
		cmocka_unit_test_setup(test_lookup_events_is_lookup_and_registration, setup),
		cmocka_unit_test_setup(test_lookup_hashed_is_lookup, setup),
		cmocka_unit_test_setup(test_delete_close_and_modify, setup),
		cmocka_unit_test_setup(test_same_word_for_two_fds_is_ambiguous_for_good, setup),
		cmocka_unit_test_setup(test_reused_fd_and_instance_numbers, setup),
		cmocka_unit_test_setup(test_many_registrations, setup),
		cmocka_unit_test_setup(test_connections_counted, setup),
		cmocka_unit_test_setup(test_high_descriptors, setup),
		cmocka_unit_test_setup(test_index_follows_what_is_held_not_what_was_seen, setup),
		cmocka_unit_test_setup(test_ambiguous_key_survives_rebuilds, setup),
		cmocka_unit_test_setup(test_keys_sharing_hash_bits_never_name_a_wrong_fd, setup),
		cmocka_unit_test_setup(test_index_grows_with_registrations, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
