/*
 * test_log_order.c - unit tests for shim/log_order.c: a log descriptor's
 * lines are taken for requests in the order they were answered, and a line
 * is placed (may be named) only when taken in order (for the oldest
 * request not taken, none after it taken) after ORDER_QUIET lines taken in
 * order, or from the first on a log opened before any answer. Lines in
 * order are placed, also past a line too long to keep and a line of a request with a query logged
 * by its path; a line rebuilt into another request's line is never placed,
 * in any order of answers and logging; a request with no line (a hole), a
 * line of no request, and a late line each stop placement for ORDER_QUIET
 * lines; a line rebuilt into the line of a request never logged there,
 * after lines of later requests, is not placed; a place made later counts
 * from there; a line too late for the ring is placed at no request; a
 * write of two lines shows a descriptor to be a buffer's, for good (a file
 * opened again on its number too). Random
 * traffic with rewritten, missing, extra and late lines never places a
 * line at another's request. Threads answering while another counts lines
 * (TSan). Built with log_order.c's source, to hold a descriptor's place
 * busy as another thread counting a line of it does (a line its bracket
 * held, released while the program writes its buffer's next flush): a
 * line that finds it busy is placed at no request, and is a buffer's if
 * the descriptor's lines were shown to be, or its write of two lines shows
 * it now; lines that find it being made likewise, and no second place is
 * made; a log opened while its number's place is busy gets a place of its
 * own, shown a buffer's if the number was. Descriptors past ORDER_PLACES are all shown buffers' by a write of
 * two lines on one of them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "log_order.c"

#define FD 7
/* Lines in order not placed on a log opened before any answer: the first
 * (it may be another log's request's line, rebuilt). */
#define FIRST 1

/* Request n's serial and buckets: all different. */
static uint64_t serial_of(unsigned n)
{
	return 1000 + n;
}

static uint32_t buckets_of(unsigned n)
{
	return 0x10000u + n;
}

static int reset(void **state)
{
	(void)state;
	log_order_release();
	return 0;
}

/* Requests first..first+count-1 answered, in that order. */
static void answer(unsigned first, unsigned count)
{
	for (unsigned n = first; n < first + count; n++)
		log_order_answered(serial_of(n), buckets_of(n), 0);
}

/* log_order_line of a line no write showed to be a buffer's. */
static uint64_t line_placed(int fd, uint32_t buckets)
{
	bool flushed;
	return log_order_line(fd, buckets, false, &flushed);
}

/* A line on fd quoting a line with buckets, of request own: 1 if it was
 * placed (at own), 0 if not. */
static unsigned placed_at(int fd, uint32_t buckets, uint64_t own)
{
	uint64_t at = line_placed(fd, buckets);
	if (at)
		assert_int_equal(at, own);
	return at != 0;
}

/* Lines of requests first..first+count-1 on fd, in order: how many were
 * placed; each placed at its own request. */
static unsigned lines(int fd, unsigned first, unsigned count)
{
	unsigned placed = 0;
	for (unsigned n = first; n < first + count; n++)
		placed += placed_at(fd, buckets_of(n), serial_of(n));
	return placed;
}

/* How many places fd has. */
static unsigned places_of(int fd)
{
	unsigned n = 0;
	for (unsigned i = 0; i < ORDER_PLACES; i++) {
		int32_t holder = atomic_load_explicit(&places[i].fd, memory_order_relaxed);
		n += holder == fd + 1 || holder == -(fd + 1);
	}
	return n;
}

static void test_lines_in_order_are_placed(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 100), 100 - FIRST);
	/* Interleaved: each line after its answer. */
	for (unsigned n = 100; n < 200; n++) {
		answer(n, 1);
		assert_int_equal(lines(FD, n, 1), 1);
	}
}

static void test_same_line_for_every_request(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	for (unsigned n = 0; n < 50; n++)
		log_order_answered(serial_of(n), 0x777, 0);
	for (unsigned n = 0; n < 50; n++)
		assert_int_equal(line_placed(FD, 0x777), n < FIRST ? 0 : serial_of(n));
}

/* Pairs of requests: a rewritten one (its own line R, its logged line the
 * target's T) and its target. k connections in lockstep: all k of one
 * kind answered, then all k of the other, in the order given. Returns how
 * many lines were placed; none wrongly. */
static unsigned rewritten_pairs(unsigned k, bool rewritten_first, unsigned rounds)
{
	unsigned placed = 0, base = 0;
	for (unsigned round = 0; round < rounds; round++, base += 2 * k) {
		/* request base + 2c: rewritten; base + 2c + 1: its target */
		for (int half = 0; half < 2; half++) {
			bool rewritten = (half == 0) == rewritten_first;
			for (unsigned c = 0; c < k; c++)
				answer(base + 2 * c + (rewritten ? 0 : 1), 1);
		}
		for (int half = 0; half < 2; half++) {
			bool rewritten = (half == 0) == rewritten_first;
			for (unsigned c = 0; c < k; c++) {
				unsigned target = base + 2 * c + 1;
				if (rewritten)
					assert_int_equal(line_placed(FD, buckets_of(target)), 0);
				else
					placed += placed_at(FD, buckets_of(target), serial_of(target));
			}
		}
	}
	return placed;
}

static void test_rewritten_lines_are_never_placed(void **state)
{
	(void)state;
	for (unsigned k = 1; k <= 100; k++)
		for (int first = 0; first < 2; first++) {
			log_order_release();
			log_order_log_opened(FD);
			rewritten_pairs(k, first, 20);
		}
}

/* A request whose line is too long to keep is answered with buckets 0,
 * and its access line quotes one too long (0 too): it is taken for it. A
 * request with a query is known by its path's line too. A line of no
 * request is taken for none, and the lines after it are distrusted. */
static void test_lines_that_name_nothing(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 40);
	log_order_answered(5000, 0, 0);
	answer(40, 10);
	log_order_answered(5001, 0x4444, 0x5555);
	log_order_answered(5002, 0x6666, 0x7777);
	answer(50, 50);
	assert_int_equal(lines(FD, 0, 40), 40 - FIRST);
	assert_int_equal(line_placed(FD, 0), 0);
	assert_int_equal(lines(FD, 40, 10), 10);
	assert_int_equal(line_placed(FD, 0x4444), 5001); /* as it came */
	assert_int_equal(line_placed(FD, 0x7777), 5002); /* by its path */
	assert_int_equal(lines(FD, 50, 10), 10);
	assert_int_equal(line_placed(FD, 0x424242), 0); /* a client gone: nginx's 499 */
	assert_int_equal(lines(FD, 60, 40), 40 - ORDER_QUIET);
}

static void test_request_without_line_is_a_hole(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 100), 100 - FIRST);
	answer(100, 1); /* a request its server logs nowhere */
	answer(101, 200);
	/* held up until it is a hole, then one line for it and ORDER_QUIET */
	assert_int_equal(lines(FD, 101, 200), 200 - ORDER_HOLE_AGE - 1 - ORDER_QUIET);
}

static void test_late_line_costs_the_lines_before_it(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 300);
	assert_int_equal(lines(FD, 0, 100), 100 - FIRST);
	assert_int_equal(lines(FD, 101, 5), 0); /* 100's line came late */
	assert_int_equal(lines(FD, 100, 1), 0);
	assert_int_equal(lines(FD, 106, 194), 194 - ORDER_QUIET);
}

/* The request at the place was never logged here; lines of later ones
 * were; then a line rebuilt into its line comes: not placed. */
static void test_line_after_later_lines_is_not_placed(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 50), 50 - FIRST);
	assert_int_equal(lines(FD, 51, 3), 0);
	assert_int_equal(line_placed(FD, buckets_of(50)), 0);
	assert_int_equal(lines(FD, 54, 46), 46 - ORDER_QUIET);
}

static void test_late_place_is_distrusted(void **state)
{
	(void)state;
	answer(0, 10);
	answer(10, 100);
	/* first line on FD, no open seen: counted from the ring's end */
	assert_int_equal(line_placed(FD, buckets_of(5)), 0);
	log_order_release();
	answer(0, 10);
	log_order_log_opened(FD); /* opened after requests were answered */
	answer(10, 100);
	assert_int_equal(lines(FD, 10, 100), 100 - ORDER_QUIET);
}

static void test_reopened_log_counts_afresh(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 60), 60 - FIRST);
	log_order_log_opened(FD); /* a new file on the same number */
	answer(100, 100);
	/* its lines start at request 100: the 40 unwritten ones are lost */
	assert_int_equal(lines(FD, 100, 100), 100 - ORDER_QUIET);
}

/* A log opened on a number whose place a thread is using (counting a line
 * of the closed file's): the new file gets a place of its own, counted
 * afresh, still shown a buffer's as the number's lines were. Before, it
 * kept the closed file's place, trusted: its first lines were placed with
 * no ORDER_QUIET lines of its own taken in order. */
static void test_log_opened_while_its_place_is_busy(void **state)
{
	(void)state;
	bool flushed;
	log_order_log_opened(FD);
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 99), 99 - FIRST);
	log_order_line(FD, buckets_of(99), true, &flushed); /* a write's second line */
	assert_true(flushed);
	struct log_place *closed = place_find(FD);
	atomic_store_explicit(&closed->busy, 1, memory_order_release);
	log_order_log_opened(FD); /* a new file on the same number */
	atomic_store_explicit(&closed->busy, 0, memory_order_release);
	answer(100, 100);
	assert_int_equal(log_order_line(FD, buckets_of(100), false, &flushed), 0);
	assert_true(flushed);
	assert_int_equal(lines(FD, 101, 99), 99 - (ORDER_QUIET - 1));
	assert_int_equal(places_of(FD), 1);
	log_order_log_opened(FD); /* its place idle: started again in it */
	answer(200, 100);
	assert_int_equal(lines(FD, 200, 100), 100 - ORDER_QUIET);
	assert_int_equal(places_of(FD), 1);
}

/* A write of two access lines shows a descriptor's lines to be a
 * buffer's: every later line on it says so, placed or not, also after a
 * file is opened again on its number (a rotated log, written as the one
 * before: unshown, its first flush of one line alone took the flushing
 * thread's id, 1 to 5 of 3,120 lines in test_shared_log_buffer.py's
 * rotation by reopen); another descriptor's lines do not. */
static void test_buffer_shown_by_two_lines_in_one_write(void **state)
{
	(void)state;
	bool flushed;
	log_order_log_opened(FD);
	log_order_log_opened(FD + 1);
	answer(0, 10);
	assert_int_equal(log_order_line(FD, buckets_of(0), false, &flushed), 0);
	assert_false(flushed);
	assert_int_equal(log_order_line(FD, buckets_of(1), false, &flushed), serial_of(1));
	assert_false(flushed);
	/* the second of one write's lines */
	assert_int_equal(log_order_line(FD, buckets_of(2), true, &flushed), serial_of(2));
	assert_true(flushed);
	assert_int_equal(log_order_line(FD, buckets_of(3), false, &flushed), serial_of(3));
	assert_true(flushed);
	assert_int_equal(log_order_line(FD, buckets_of(9), false, &flushed), 0);
	assert_true(flushed);
	assert_int_equal(log_order_line(FD + 1, buckets_of(0), false, &flushed), 0);
	assert_false(flushed);
	log_order_log_opened(FD); /* a new file on the same number */
	answer(10, 1);
	log_order_line(FD, buckets_of(10), false, &flushed);
	assert_true(flushed);
	log_order_log_opened(FD + 1);
	log_order_line(FD + 1, buckets_of(10), false, &flushed);
	assert_false(flushed);
}

/* Another thread is counting a line of fd's (busy) or is done. */
static void place_busy(int fd, bool busy)
{
	struct log_place *pl = place_find(fd);
	assert_non_null(pl);
	atomic_store_explicit(&pl->busy, busy, memory_order_release);
}

/* A buffered log's line of one request, flushed alone by the thread of
 * another while a third releases a line it held: it gets an id only by
 * naming (else it kept the flushing thread's request's id:
 * test_shared_log_buffer, 1 line of 3,120 in about 1 run of 30 on a busy
 * machine). */
static void test_busy_place_keeps_a_buffers_lines_so(void **state)
{
	(void)state;
	bool flushed;
	log_order_log_opened(FD);
	answer(0, 10);
	log_order_line(FD, buckets_of(0), false, &flushed);
	log_order_line(FD, buckets_of(1), true, &flushed); /* a write of two lines */
	assert_true(flushed);
	place_busy(FD, true);
	assert_int_equal(log_order_line(FD, buckets_of(2), false, &flushed), 0);
	assert_true(flushed);
	place_busy(FD, false);
	log_order_line(FD, buckets_of(3), false, &flushed);
	assert_true(flushed);
}

static void test_busy_place_is_shown_a_buffers_by_two_lines(void **state)
{
	(void)state;
	bool flushed;
	log_order_log_opened(FD);
	answer(0, 10);
	log_order_line(FD, buckets_of(0), false, &flushed);
	assert_false(flushed);
	place_busy(FD, true);
	assert_int_equal(log_order_line(FD, buckets_of(1), false, &flushed), 0);
	assert_false(flushed);
	assert_int_equal(log_order_line(FD, buckets_of(2), true, &flushed), 0);
	assert_true(flushed);
	place_busy(FD, false);
	log_order_line(FD, buckets_of(3), false, &flushed);
	assert_true(flushed);
}

/* Past ORDER_PLACES descriptors a log gets no place: its lines are placed
 * at no request, and once a write of two lines on any such descriptor
 * showed it to be a buffer's, all their lines are taken to be (which of
 * them it was is not known). Before, such a descriptor was never shown a
 * buffer's, and a buffer's line flushed alone by the thread of another
 * request kept that request's id (test_shared_log_buffer --other-logs 70:
 * 272 of 3,120 lines). */
static void test_unplaced_descriptors_are_shown_buffers(void **state)
{
	(void)state;
	bool flushed;
	for (int fd = 0; fd < ORDER_PLACES; fd++)
		log_order_log_opened(fd);
	answer(0, 10);
	assert_int_equal(log_order_line(ORDER_PLACES, buckets_of(0), false, &flushed), 0);
	assert_false(flushed);
	assert_int_equal(log_order_line(ORDER_PLACES, buckets_of(1), true, &flushed), 0);
	assert_true(flushed);
	assert_int_equal(log_order_line(ORDER_PLACES, buckets_of(2), false, &flushed), 0);
	assert_true(flushed);
	assert_int_equal(log_order_line(ORDER_PLACES + 1, buckets_of(3), false, &flushed), 0);
	assert_true(flushed);
	log_order_line(3, buckets_of(4), false, &flushed); /* placed ones keep their own */
	assert_false(flushed);
	log_order_release();
	assert_int_equal(log_order_line(ORDER_PLACES, buckets_of(0), false, &flushed), 0);
	assert_false(flushed);
}

/* Another thread claimed a place for fd and is starting it (place_make):
 * a line that comes meanwhile makes fd no second place, and its write of
 * two lines shows fd's one place a buffer's. */
static void test_place_being_made_is_not_made_again(void **state)
{
	(void)state;
	bool flushed;
	struct log_place *pl = &places[FD % ORDER_PLACES];
	answer(0, 10);
	atomic_store_explicit(&pl->busy, 1, memory_order_relaxed);
	atomic_store_explicit(&pl->fd, -(FD + 1), memory_order_release);
	assert_int_equal(log_order_line(FD, buckets_of(0), false, &flushed), 0);
	assert_false(flushed);
	assert_int_equal(log_order_line(FD, buckets_of(1), true, &flushed), 0);
	assert_true(flushed);
	assert_int_equal(places_of(FD), 1);
	atomic_store_explicit(&pl->fd, FD + 1, memory_order_release); /* made */
	atomic_store_explicit(&pl->busy, 0, memory_order_release);
	log_order_line(FD, buckets_of(2), false, &flushed);
	assert_true(flushed);
	assert_int_equal(places_of(FD), 1);
}

/* Threads writing a descriptor's first lines at once, one of them a
 * write's second line: the descriptor gets one place, shown a buffer's.
 * Before, a thread that found the place busy as another made it made a
 * second one, which the write's line could mark instead (then the
 * descriptor's next line alone was not a buffer's): rare, 1 round of
 * 60,000 with two CPU hogs on 2 cores (test_place_being_made_is_not_made_
 * again shows it every time). */
#define RACERS 3

static pthread_barrier_t racers_ready;

static void *first_line(void *arg)
{
	bool flushed;
	pthread_barrier_wait(&racers_ready);
	log_order_line(FD, buckets_of(0), arg != NULL, &flushed);
	return NULL;
}

static void test_first_lines_at_once_make_one_place(void **state)
{
	(void)state;
	unsigned twice = 0, unshown = 0;
	pthread_barrier_init(&racers_ready, NULL, RACERS);
	for (unsigned round = 0; round < 3000; round++) {
		pthread_t t[RACERS];
		bool flushed;
		log_order_release();
		answer(0, 4);
		for (int i = 0; i < RACERS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, first_line,
							i == 0 ? (void *)1 : NULL),
					 0);
		for (int i = 0; i < RACERS; i++)
			pthread_join(t[i], NULL);
		twice += places_of(FD) != 1;
		log_order_line(FD, buckets_of(1), false, &flushed);
		unshown += !flushed;
	}
	pthread_barrier_destroy(&racers_ready);
	assert_int_equal(twice, 0);
	assert_int_equal(unshown, 0);
}

static void test_places_are_per_descriptor(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	log_order_log_opened(FD + ORDER_PLACES); /* same probe start */
	answer(0, 100);
	assert_int_equal(lines(FD, 0, 100), 100 - FIRST);
	assert_int_equal(lines(FD + ORDER_PLACES, 0, 100), 100 - FIRST);
}

static void test_line_later_than_the_ring(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	answer(0, ORDER_RING + 10);
	assert_int_equal(lines(FD, 0, 10), 0); /* overwritten */
	assert_int_equal(lines(FD, 10 + ORDER_QUIET, 10), 0); /* the overwritten are holes */
}

/* A request's path line is kept apart from its entry: the request that
 * reuses the entry a ring later, known by no path, is not taken for a
 * line quoting the path of the one before. */
static void test_reused_entry_forgets_its_path(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	log_order_answered(5001, 0x4444, 0x5555);
	answer(1, ORDER_RING - 1);
	log_order_answered(5002, 0x6666, 0); /* the entry of 5001's position */
	/* 5001's line never comes: a hole, distrusted for one line more */
	assert_int_equal(lines(FD, 1, ORDER_RING - 1), ORDER_RING - 1 - (ORDER_QUIET + 1));
	assert_int_equal(line_placed(FD, 0x5555), 0);
}

static void test_places_run_out(void **state)
{
	(void)state;
	for (int fd = 0; fd < ORDER_PLACES; fd++)
		log_order_log_opened(fd);
	answer(0, 50);
	assert_int_equal(lines(ORDER_PLACES, 0, 50), 0);
	assert_int_equal(lines(3, 0, 50), 50 - FIRST);
	assert_int_equal(line_placed(-1, buckets_of(0)), 0);
}

/* Random traffic on one descriptor. Each request is normal (its own line,
 * logged in order), shares its line with a few others, is not logged
 * there, is logged under the line of a normal request near it (rebuilt),
 * or is logged up to 5 lines late; lines of no request come between; the
 * log trails the answers by up to 40 requests. Rates per thousand. What
 * the order cannot tell apart is left out: a line rebuilt into the line of
 * a request never logged there, or of one logged in the other order. A
 * line quoting a line no other request has (the only lines
 * request_named_with names) is placed at its own request or none. Returns
 * how many such lines were placed. */
enum kind { NORMAL, SHARED, UNLOGGED, REBUILT, LATE };
#define TRAFFIC 2000

static unsigned random_traffic(unsigned seed, const unsigned rate[5], unsigned extra,
			       unsigned *unique)
{
	static enum kind kind[TRAFFIC];
	static uint32_t own[TRAFFIC], quoted[TRAFFIC];
	static unsigned order[TRAFFIC];
	srand(seed);
	log_order_release();
	log_order_log_opened(FD);
	for (unsigned n = 0; n < TRAFFIC; n++) {
		unsigned r = (unsigned)rand() % 1000, k = SHARED;
		while (k <= LATE && r >= rate[k])
			r -= rate[k++];
		kind[n] = k <= LATE ? (enum kind)k : NORMAL;
		own[n] = kind[n] == SHARED ? 0x800000u + (n >> 3) : buckets_of(n);
	}
	unsigned lines_n = 0;
	for (unsigned n = 0; n < TRAFFIC; n++) {
		quoted[n] = own[n];
		if (kind[n] == REBUILT) {
			unsigned target = n >= 20 ? n - 20 + (unsigned)rand() % 40 : n + 1;
			if (target >= TRAFFIC || kind[target] != NORMAL)
				kind[n] = UNLOGGED;
			else
				quoted[n] = own[target];
		}
		if (kind[n] != UNLOGGED)
			order[lines_n++] = n;
	}
	for (unsigned i = 0; i < lines_n; i++) /* late lines move back */
		if (kind[order[i]] == LATE) {
			unsigned to = i + 1 + (unsigned)rand() % 5, n = order[i];
			if (to >= lines_n)
				continue;
			for (unsigned j = i; j < to; j++)
				order[j] = order[j + 1];
			order[to] = n;
			kind[n] = NORMAL; /* moved once */
		}
	unsigned right = 0, answered = 0;
	for (unsigned i = 0; i < lines_n; i++) {
		unsigned n = order[i];
		unsigned until = n + (unsigned)rand() % 40;
		for (; answered <= until && answered < TRAFFIC; answered++)
			log_order_answered(serial_of(answered), own[answered], 0);
		if ((unsigned)rand() % 1000 < extra)
			line_placed(FD, 0x900000u + (unsigned)rand() % 64);
		if (quoted[n] < 0x800000u) {
			(*unique)++;
			right += placed_at(FD, quoted[n], serial_of(n));
		} else {
			line_placed(FD, quoted[n]);
		}
	}
	return right;
}

static void test_random_traffic_places_nothing_wrong(void **state)
{
	(void)state;
	unsigned right = 0, unique = 0, mild_right = 0, mild_unique = 0;
	for (unsigned seed = 1; seed <= 300; seed++) {
		const unsigned rate[5] = {0, (unsigned)rand() % 300, (unsigned)rand() % 50,
					  (unsigned)rand() % 300, (unsigned)rand() % 100};
		right += random_traffic(seed, rate, (unsigned)rand() % 50, &unique);
	}
	/* what a server's log sees: a rewrite, a lost or late line now and then */
	for (unsigned seed = 1; seed <= 300; seed++) {
		const unsigned rate[5] = {0, (unsigned)rand() % 300, (unsigned)rand() % 2,
					  (unsigned)rand() % 5, (unsigned)rand() % 10};
		mild_right += random_traffic(seed, rate, (unsigned)rand() % 2, &mild_unique);
	}
	printf("random traffic: %u of %u lines placed; mild: %u of %u\n", right, unique,
	       mild_right, mild_unique);
	assert_true(mild_right > mild_unique * 2 / 3);
}

/* Threads answering while this one counts lines: a line is placed only at
 * a request whose line it quotes. */
struct answering {
	unsigned first;
};

static void *answer_thread(void *arg)
{
	struct answering *a = arg;
	for (unsigned n = a->first; n < a->first + 20000; n++)
		log_order_answered(serial_of(n), buckets_of(n % 512), 0);
	return NULL;
}

static void test_threads_answer_while_lines_are_counted(void **state)
{
	(void)state;
	log_order_log_opened(FD);
	pthread_t t[2];
	struct answering a[2] = {{0}, {20000}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, answer_thread, &a[i]), 0);
	for (unsigned k = 0; k < 20000; k++) {
		unsigned line = k % 512;
		uint64_t at = line_placed(FD, buckets_of(line));
		if (at)
			assert_int_equal((at - 1000) % 512, line);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_lines_in_order_are_placed, reset),
		cmocka_unit_test_setup(test_same_line_for_every_request, reset),
		cmocka_unit_test_setup(test_rewritten_lines_are_never_placed, reset),
		cmocka_unit_test_setup(test_lines_that_name_nothing, reset),
		cmocka_unit_test_setup(test_request_without_line_is_a_hole, reset),
		cmocka_unit_test_setup(test_late_line_costs_the_lines_before_it, reset),
		cmocka_unit_test_setup(test_line_after_later_lines_is_not_placed, reset),
		cmocka_unit_test_setup(test_late_place_is_distrusted, reset),
		cmocka_unit_test_setup(test_reopened_log_counts_afresh, reset),
		cmocka_unit_test_setup(test_log_opened_while_its_place_is_busy, reset),
		cmocka_unit_test_setup(test_buffer_shown_by_two_lines_in_one_write, reset),
		cmocka_unit_test_setup(test_busy_place_keeps_a_buffers_lines_so, reset),
		cmocka_unit_test_setup(test_busy_place_is_shown_a_buffers_by_two_lines, reset),
		cmocka_unit_test_setup(test_unplaced_descriptors_are_shown_buffers, reset),
		cmocka_unit_test_setup(test_place_being_made_is_not_made_again, reset),
		cmocka_unit_test_setup(test_first_lines_at_once_make_one_place, reset),
		cmocka_unit_test_setup(test_places_are_per_descriptor, reset),
		cmocka_unit_test_setup(test_line_later_than_the_ring, reset),
		cmocka_unit_test_setup(test_reused_entry_forgets_its_path, reset),
		cmocka_unit_test_setup(test_places_run_out, reset),
		cmocka_unit_test_setup(test_random_traffic_places_nothing_wrong, reset),
		cmocka_unit_test_setup(test_threads_answer_while_lines_are_counted, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
