/*
 * early_ctor.c - a preloaded shared library for test_semantics.py whose
 * constructor logs with write(2, ...), reads a pipe and starts and joins a
 * thread, so the test can show that libreqid.so's hooks work (pass through,
 * resolve libc lazily, never crash) when they are called before libreqid's
 * own constructor has run.
 *
 * It plays an unrelated library: it must never mention or depend on the
 * shim, never allocate or use stdio on fds 1/2, and never exit the process.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static void say(const char *s)
{
	size_t n = strlen(s);
	if (write(2, s, n) != (ssize_t)n)
		return;
}

static void *early_thread(void *arg)
{
	(void)arg;
	say("early-ctor thread line\n");
	return NULL;
}

__attribute__((constructor)) static void early_ctor(void)
{
	say("early-ctor constructor line\n");
	int p[2];
	char c = 0;
	if (pipe(p) == 0) {
		if (write(p[1], "z", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'z')
			say("early-ctor pipe read ok\n");
		else
			say("early-ctor pipe read FAILED\n");
		close(p[0]);
		close(p[1]);
	}
	pthread_t t;
	if (pthread_create(&t, NULL, early_thread, NULL) == 0 && pthread_join(t, NULL) == 0)
		say("early-ctor thread joined\n");
	else
		say("early-ctor thread FAILED\n");
}
