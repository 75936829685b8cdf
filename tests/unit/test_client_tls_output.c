/*
 * test_client_tls_output.c - unit tests for client_output_tls
 * (shim/client_output.c): a program's write of an outbound request through
 * a TLS library, with the trace headers added, as the series of library
 * writes it becomes.
 *
 * The library is fake_ssl.h's, with OpenSSL's rules: a write takes all
 * its bytes or fails taking none, and the call after a failed one must
 * pass the same buffer and length (else "bad write retry", a test
 * failure). The program repeats a failed call with the same arguments.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_output.h"
#include "conn_table.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

#include "audit_off.h"
#include "default_shim.h"
#include "fake_ssl.h"
#include "fork_code_off.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;

/* The thread's request: what the outbound requests are part of. */
static uint64_t current_request;

uint64_t ctx_certain_request(void)
{
	return current_request;
}

bool is_stream_socket(int fd)
{
	(void)fd;
	return true;
}

static int setup(void **state)
{
	(void)state;
	default_shim();
	process.pid = getpid();
	real.writev = writev;
	real.sendmsg = sendmsg;
	current_request = request_table_add("out-a", 5, NULL, 0, 0, NULL, NULL, 0, NULL);
	return 0;
}

static const char request[] = "GET / HTTP/1.1\r\nHost: b\r\n\r\n";
static const char expected[] = "GET / HTTP/1.1\r\nHost: b\r\nX-Request-ID: out-a\r\n\r\n";

static void connect_fd(int fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(443)};
	client_connected(fd, (const struct sockaddr *)&a);
	assert_true(fd_class(fd) & FD_CLIENT);
}

static void test_request_gets_header(void **state)
{
	(void)state;
	struct fake_ssl f = {0};
	struct tls_sender to = {fake_send, &f, false};
	connect_fd(7);
	assert_int_equal(client_output_tls(7, &to, request, sizeof request - 1), sizeof request - 1);
	assert_int_equal(f.out_len, sizeof expected - 1);
	assert_memory_equal(f.out, expected, sizeof expected - 1);
	client_forget(7);
}

/* Every failure pattern of the first six library calls: the program's
 * retries pass what the library expects, the header goes once. */
static void test_failed_sends_are_retried_as_they_were(void **state)
{
	(void)state;
	for (uint64_t mask = 0; mask < 64; mask++) {
		struct fake_ssl f = {.fail_mask = mask};
		struct tls_sender to = {fake_send, &f, false};
		connect_fd(7);
		unsigned failed = 0;
		ssize_t r;
		while ((r = client_output_tls(7, &to, request, sizeof request - 1)) <= 0)
			assert_true(++failed < 100);
		assert_int_equal(r, sizeof request - 1);
		assert_int_equal(f.out_len, sizeof expected - 1);
		assert_memory_equal(f.out, expected, sizeof expected - 1);
		client_forget(7);
	}
}

/* A TLS object freed after its socket was closed (a garbage-collected
 * one): its descriptor is now another connection's, whose write failed
 * on its added header and will be retried. That connection's owed header
 * and retry must stay as they were. */
static void test_stale_free_leaves_new_connection_alone(void **state)
{
	(void)state;
	struct fake_ssl old = {0};
	struct tls_sender old_to = {fake_send, &old, false};
	connect_fd(7);
	assert_int_equal(client_output_tls(7, &old_to, request, sizeof request - 1),
			 sizeof request - 1);
	client_forget(7); /* closed; the object lives on */

	/* The new connection's first write: its request line and Host
	 * go, the header's send fails (call 1). */
	struct fake_ssl f = {.fail_mask = 1u << 1};
	struct tls_sender to = {fake_send, &f, false};
	connect_fd(7);
	assert_true(client_output_tls(7, &to, request, sizeof request - 1) <= 0);
	client_output_tls_end(7, &old); /* the stale object freed */
	ssize_t r;
	unsigned failed = 0;
	while ((r = client_output_tls(7, &to, request, sizeof request - 1)) <= 0)
		assert_true(++failed < 100);
	assert_int_equal(r, sizeof request - 1);
	assert_int_equal(f.out_len, sizeof expected - 1);
	assert_memory_equal(f.out, expected, sizeof expected - 1);
	client_output_tls_end(7, &f); /* its own object: nothing owed after */
	client_forget(7);
}

/* Through a proxy: a plain CONNECT (its own header added), then TLS on
 * the tunnel, whose first plaintext is a new HTTP stream: its request
 * gets the header too. */
static void test_request_through_connect_tunnel(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int fd = sv[0];
	connect_fd(fd);
	static const char connect_req[] = "CONNECT b:443 HTTP/1.1\r\nHost: b:443\r\n\r\n";
	static const char connect_want[] =
		"CONNECT b:443 HTTP/1.1\r\nHost: b:443\r\nX-Request-ID: out-a\r\n\r\n";
	struct iovec iov = {(void *)connect_req, sizeof connect_req - 1};
	assert_int_equal(client_output(fd, &iov, 1, 0, false, NULL), sizeof connect_req - 1);
	char got[256];
	ssize_t g = read(sv[1], got, sizeof got);
	assert_int_equal(g, sizeof connect_want - 1);
	assert_memory_equal(got, connect_want, sizeof connect_want - 1);
	/* The handshake's first record, written by the library. */
	static const char hello[] = "\x16\x03\x01\x00\x05hello";
	struct iovec h = {(void *)hello, sizeof hello - 1};
	assert_int_equal(client_output(fd, &h, 1, 0, false, NULL), sizeof hello - 1);
	g = read(sv[1], got, sizeof got);
	assert_int_equal(g, sizeof hello - 1);
	assert_memory_equal(got, hello, sizeof hello - 1);

	struct fake_ssl f = {0};
	struct tls_sender to = {fake_send, &f, false};
	assert_int_equal(client_output_tls(fd, &to, request, sizeof request - 1),
			 sizeof request - 1);
	assert_int_equal(f.out_len, sizeof expected - 1);
	assert_memory_equal(f.out, expected, sizeof expected - 1);
	client_forget(fd);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_request_gets_header, setup),
		cmocka_unit_test_setup(test_failed_sends_are_retried_as_they_were, setup),
		cmocka_unit_test_setup(test_stale_free_leaves_new_connection_alone, setup),
		cmocka_unit_test_setup(test_request_through_connect_tunnel, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
