/*
 * bench_io.c - the loops `make bench` measures, with and without the shim.
 *
 * usage: bench_io MODE N RESULT_FILE
 *   bench_io nonlog N     N one-byte write()s to /dev/null (not a log fd)
 *   bench_io line N       N 100-byte lines written to fd 1 (a log fd)
 *   bench_io request N    N keep-alive HTTP requests over a loopback
 *                         connection it accepts itself: read the request,
 *                         log a line, write the response
 *
 * Writes "<mode> <N> <nanoseconds per iteration>" to RESULT_FILE. Each loop is a separate
 * noinline function so callgrind can count its instructions alone. Knows
 * nothing of the shim.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((noinline)) static void loop_nonlog(int fd, long n)
{
	for (long i = 0; i < n; i++)
		if (write(fd, "x", 1) != 1)
			exit(1);
}

__attribute__((noinline)) static void loop_line(long n)
{
	/* 99 visible bytes and a newline: one 100-byte log line. */
	static const char line[] =
		"2026-11-21T10:00:00.000Z INFO  [bench] handled GET /api/items/42 status=200 bytes=5120 ms=3.250 ok!\n";
	_Static_assert(sizeof(line) == 101, "the line must be 100 bytes");
	for (long i = 0; i < n; i++)
		if (write(1, line, 100) != 100)
			exit(1);
}

__attribute__((noinline)) static void loop_request(int client, int server, long n)
{
	static const char req[] = "GET /items/42 HTTP/1.1\r\nHost: bench\r\nX-Request-ID: bench-1\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char line[] = "handled GET /items/42 status=200\n";
	char buf[512];
	for (long i = 0; i < n; i++) {
		if (write(client, req, sizeof(req) - 1) != sizeof(req) - 1)
			exit(1);
		if (read(server, buf, sizeof(buf)) != sizeof(req) - 1)
			exit(1);
		if (write(2, line, sizeof(line) - 1) != sizeof(line) - 1)
			exit(1);
		if (write(server, resp, sizeof(resp) - 1) != sizeof(resp) - 1)
			exit(1);
		/* Shimmed, the response carries an X-Request-ID header too. */
		if (read(client, buf, sizeof(buf)) < (ssize_t)sizeof(resp) - 1)
			exit(1);
	}
}

static void connected_pair(int *client, int *server)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		exit(1);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof(a)))
		exit(1);
	*server = accept(l, NULL, NULL);
	if (*server < 0)
		exit(1);
	close(l);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: bench_io nonlog|line|request N RESULT_FILE\n");
		return 2;
	}
	long n = atol(argv[2]);
	double t0 = 0, t1 = 0;
	if (strcmp(argv[1], "nonlog") == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd < 0)
			return 1;
		t0 = now_ns();
		loop_nonlog(fd, n);
		t1 = now_ns();
	} else if (strcmp(argv[1], "line") == 0) {
		t0 = now_ns();
		loop_line(n);
		t1 = now_ns();
	} else if (strcmp(argv[1], "request") == 0) {
		int client, server;
		connected_pair(&client, &server);
		t0 = now_ns();
		loop_request(client, server, n);
		t1 = now_ns();
	} else {
		return 2;
	}
	FILE *result = fopen(argv[3], "w");
	if (!result)
		return 1;
	fprintf(result, "%s %ld %.1f\n", argv[1], n, (t1 - t0) / n);
	return fclose(result) == 0 ? 0 : 1;
}
