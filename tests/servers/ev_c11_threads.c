/*
 * ev_c11_threads.c - ev_threads (two threads waiting on one epoll fd) with
 * its threads started by C11 thrd_create. glibc's thrd_create calls its
 * internal pthread_create, so no pthread_create hook sees the threads
 * start: the shim must still know the process is threaded (what it lets a
 * single-threaded event loop do, such as holding a batch's lines to the
 * batch's end, reorders lines beside a second thread). Built by
 * test_first_use.py. Must never detach or otherwise differ from
 * ev_threads but in how its threads start.
 */
#define _GNU_SOURCE /* accept4 */
#include <pthread.h>
#include <stdlib.h>
#include <threads.h>

struct c11_start {
	void *(*fn)(void *);
	void *arg;
};

static int c11_trampoline(void *p)
{
	struct c11_start s = *(struct c11_start *)p;
	free(p);
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

#define pthread_create c11_create
#include "ev_threads.c"
