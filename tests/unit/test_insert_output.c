/*
 * test_insert_output.c - unit tests for insert_send (shim/insert_output.c):
 * a write of one to six buffers, some of them empty, with one added text at
 * every point of the first buffer and of the others, against a kernel that
 * takes every count of bytes from none to all.
 *
 * The kernel is a fake writev. Whatever the layout (the usual write of up
 * to four buffers with the text in the first, built on its own, or any
 * other), it must be given the application's bytes with the text at its
 * point, in pieces none of which is empty; and for each count it takes,
 * the application must be told exactly its bytes among them, the rest of
 * a text begun must be owed, and the last byte taken must be said to be
 * added text exactly when it was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>

#include "insert_output.h"
#include "shim_init.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;

/* The fake kernel: takes at most limit bytes of what it is given. */
static struct {
	char got[256];
	size_t got_len;
	size_t limit;
	int pieces;
	bool empty_piece;
} kernel;

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
	(void)fd;
	kernel.got_len = 0;
	kernel.pieces = iovcnt;
	kernel.empty_piece = false;
	for (int i = 0; i < iovcnt; i++) {
		kernel.empty_piece |= iov[i].iov_len == 0;
		assert_true(kernel.got_len + iov[i].iov_len <= sizeof(kernel.got));
		memcpy(kernel.got + kernel.got_len, iov[i].iov_base, iov[i].iov_len);
		kernel.got_len += iov[i].iov_len;
	}
	return (ssize_t)(kernel.got_len < kernel.limit ? kernel.got_len : kernel.limit);
}

static const char text[] = "X-Request-ID: t1\r\n";
#define TEXT_LEN (sizeof(text) - 1)

/* One write of the buffers of lens (count of them, the application's bytes
 * a running alphabet) with the text at offset at, for every count the
 * kernel may take. */
static void check_layout(const size_t *lens, int count, size_t at)
{
	char app[128];
	struct iovec iov[8];
	size_t total = 0;
	for (int i = 0; i < count; i++) {
		iov[i] = (struct iovec){app + total, lens[i]};
		for (size_t k = 0; k < lens[i]; k++)
			app[total + k] = (char)('a' + (total + k) % 26);
		total += lens[i];
	}
	/* the stream the peer must see, and how many pieces carry it */
	char want[sizeof(app) + TEXT_LEN];
	memcpy(want, app, at);
	memcpy(want + at, text, TEXT_LEN);
	memcpy(want + at + TEXT_LEN, app + at, total - at);
	size_t all = total + TEXT_LEN;
	int pieces = 1;
	for (size_t i = 0, start = 0; i < (size_t)count; start += lens[i++])
		pieces += (at > start && at < start + lens[i]) ? 2 : lens[i] > 0;

	for (size_t limit = 0; limit <= all; limit++) {
		struct insertion ins = {.count = 1, .at = {at}, .text = {text}, .len = {TEXT_LEN}};
		char owed_buf[64];
		uint16_t owed_len = 0;
		struct owed_bytes owed = {&owed_len, owed_buf, sizeof(owed_buf)};
		struct insert_result res;
		kernel.limit = limit;
		ssize_t r = insert_send(3, iov, count, 0, false, NULL, &ins, &owed, &res);
		assert_int_equal(r, (ssize_t)limit);
		assert_int_equal(kernel.got_len, all);
		assert_memory_equal(kernel.got, want, all);
		assert_int_equal(kernel.pieces, pieces);
		assert_false(kernel.empty_piece);
		/* the application's bytes among those taken */
		size_t app_taken = limit <= at ? limit : limit <= at + TEXT_LEN ? at : limit - TEXT_LEN;
		assert_int_equal(res.app, app_taken);
		bool in_text = limit > at && limit < at + TEXT_LEN;
		assert_int_equal(owed_len, in_text ? at + TEXT_LEN - limit : 0);
		if (in_text)
			assert_memory_equal(owed_buf, text + (limit - at), owed_len);
		assert_int_equal(res.after_added, limit > at && limit <= at + TEXT_LEN);
	}
}

/* Every point of every buffer, the text in the first (the usual write) or
 * in another. */
static void check_every_point(const size_t *lens, int count)
{
	size_t total = 0;
	for (int i = 0; i < count; i++)
		total += lens[i];
	for (size_t at = 0; at <= total; at++)
		check_layout(lens, count, at);
}

static void test_one_buffer(void **state)
{
	(void)state;
	static const size_t one[] = {9};
	check_every_point(one, 1);
}

static void test_head_and_body(void **state)
{
	(void)state;
	static const size_t two[] = {12, 7};
	check_every_point(two, 2);
}

static void test_empty_buffers_are_no_pieces(void **state)
{
	(void)state;
	static const size_t layouts[][4] = {
		{0, 5, 0, 3}, {6, 0, 0, 4}, {0, 0, 0, 0}, {4, 3, 0, 0}, {5, 2, 3, 1},
	};
	for (size_t k = 0; k < sizeof(layouts) / sizeof(layouts[0]); k++)
		check_every_point(layouts[k], 4);
}

static void test_more_buffers_than_the_usual_write(void **state)
{
	(void)state;
	static const size_t five[] = {4, 0, 3, 2, 5};
	static const size_t six[] = {3, 1, 1, 0, 2, 4};
	check_every_point(five, 5);
	check_every_point(six, 6);
}

/* Bytes owed from an earlier write go first, and the write is built as
 * any other: the owed bytes, then the application's with the text. */
static void test_owed_bytes_go_first(void **state)
{
	(void)state;
	char app[] = "HTTP/1.1 200 OK\r\n\r\nbody";
	struct iovec iov[2] = {{app, 19}, {app + 19, 4}};
	char owed_buf[64] = "ID: 9\r\n";
	uint16_t owed_len = 7;
	struct owed_bytes owed = {&owed_len, owed_buf, sizeof(owed_buf)};
	struct insertion ins = {.count = 1, .at = {17}, .text = {text}, .len = {TEXT_LEN}};
	struct insert_result res;
	kernel.limit = SIZE_MAX;
	assert_int_equal(insert_send(3, iov, 2, 0, false, NULL, &ins, &owed, &res),
			 (ssize_t)(7 + 23 + TEXT_LEN));
	assert_memory_equal(kernel.got, "ID: 9\r\nHTTP/1.1 200 OK\r\nX-Request-ID: t1\r\n\r\nbody",
			    7 + 23 + TEXT_LEN);
	assert_int_equal(kernel.pieces, 5);
	assert_int_equal(res.app, 23);
	assert_int_equal(owed_len, 0);
	assert_false(res.after_added);
}

int main(void)
{
	real.writev = fake_writev;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_buffer),
		cmocka_unit_test(test_head_and_body),
		cmocka_unit_test(test_empty_buffers_are_no_pieces),
		cmocka_unit_test(test_more_buffers_than_the_usual_write),
		cmocka_unit_test(test_owed_bytes_go_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
