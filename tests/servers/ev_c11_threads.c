/*
 * ev_c11_threads.c - ev_threads (two threads waiting on one epoll fd) with
 * its threads started by C11 thrd_create. glibc's thrd_create calls its
 * internal pthread_create, so no pthread_create hook sees the threads
 * start: the shim must still know the process is threaded (what it lets a
 * single-threaded event loop do, such as holding a batch's lines to the
 * batch's end, reorders lines beside a second thread). Built by
 * test_first_use.py. Must never detach or otherwise differ from
 * ev_threads but in how its threads start.
 *
 * EVC11_VFORK=1: each thread, first of all, runs a helper through vfork
 * whose child writes a line to stderr with stdio and exits: the thread's
 * first need of its tid comes in that child, which shares its memory.
 *
 * EVC11_START_AFTER=PATH: the threads start only once a byte can be read
 * from PATH (a fifo), after the port was reported: `reqid attach` can load
 * the shim into the process while it has one thread, and the threads start
 * under it (test_attach_event_loops.py).
 */
#define _GNU_SOURCE /* accept4 */
#include <pthread.h>
#include <stddef.h> /* evloop.h uses offsetof */
#include <stdlib.h>
#include <sys/wait.h>
#include <threads.h>

#include "evloop.h"

struct c11_start {
	void *(*fn)(void *);
	void *arg;
};

/* EVC11_VFORK's helper: its line, written by the vfork child. */
static void run_helper(void)
{
	char line[512];
	size_t n = lh_log_prefix(line, sizeof line, "INFO");
	snprintf(line + n, sizeof line - n, "helper of thread %ld ran\n", (long)syscall(SYS_gettid));
	pid_t child = vfork();
	if (child == 0) {
		fputs(line, stderr);
		_exit(0);
	}
	if (child > 0)
		while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
			;
}

static int c11_trampoline(void *p)
{
	struct c11_start s = *(struct c11_start *)p;
	free(p);
	const char *helper = getenv("EVC11_VFORK");
	if (helper && *helper == '1')
		run_helper();
	s.fn(s.arg);
	return 0;
}

/* pthread_create's contract over thrd_create (glibc's thrd_t is a
 * pthread_t, so pthread_join works on it); attributes are not used. */
static int c11_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	(void)attr;
	struct c11_start *s = malloc(sizeof(*s));
	if (!s)
		return 11;
	s->fn = fn;
	s->arg = arg;
	thrd_t th;
	if (thrd_create(&th, c11_trampoline, s) != thrd_success) {
		free(s);
		return 11;
	}
	*t = (pthread_t)th;
	return 0;
}

/* EVC11_START_AFTER: the threads main asked for, started at its first join. */
struct c11_deferred {
	void *(*fn)(void *);
	void *arg;
};
static struct c11_deferred deferred[8];
static int deferred_count;

static int c11_create_maybe_later(pthread_t *t, const pthread_attr_t *attr,
				  void *(*fn)(void *), void *arg)
{
	if (!getenv("EVC11_START_AFTER"))
		return c11_create(t, attr, fn, arg);
	if (deferred_count == (int)(sizeof(deferred) / sizeof(deferred[0])))
		return 11;
	deferred[deferred_count].fn = fn;
	deferred[deferred_count].arg = arg;
	*t = (pthread_t)0;
	deferred_count++;
	return 0;
}

/* pthread_join's contract; the first call, with threads deferred, reads
 * the start byte and starts them, then waits for them all to end. */
static int c11_join(pthread_t t, void **ret)
{
	if (deferred_count == 0)
		return pthread_join(t, ret);
	char go;
	int fd = open(getenv("EVC11_START_AFTER"), O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &go, 1) != 1)
		return 11;
	close(fd);
	pthread_t started[8];
	int n = deferred_count;
	deferred_count = 0;
	for (int i = 0; i < n; i++)
		if (c11_create(&started[i], NULL, deferred[i].fn, deferred[i].arg) != 0)
			return 11;
	for (int i = 0; i < n; i++)
		pthread_join(started[i], NULL);
	return 0;
}

#define pthread_create c11_create_maybe_later
#define pthread_join c11_join
#include "ev_threads.c"
