/*
 * spin_writev.c - a calibration library for bench_servers.py: preloaded
 * instead of the shim, it spins BENCH_SPIN_NS nanoseconds (read once, at
 * load: nginx's workers run with a cleared environment) in every writev
 * before making it. A server that answers each request with one writev
 * then does a known amount of extra work per request, and its req/s ratio
 * says what that much work costs a whole server on this machine.
 *
 * A benchmark tool only: never built into or loaded with libreqid.so.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>

static ssize_t (*next_writev)(int, const struct iovec *, int);
static long spin_ns;

__attribute__((constructor)) static void spin_init(void)
{
	const char *ns = getenv("BENCH_SPIN_NS");
	next_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	spin_ns = ns ? atol(ns) : 0;
}

static long elapsed_ns(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do
		clock_gettime(CLOCK_MONOTONIC, &now);
	while (elapsed_ns(&start, &now) < spin_ns);
	return next_writev(fd, iov, iovcnt);
}
