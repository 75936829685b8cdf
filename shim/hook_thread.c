/*
 * hook_thread.c - threads and process exit: pthread_create carries the
 * creator's request into the new thread; a thread's pending lines go out when
 * it ends (return, pthread_exit or cancellation); _exit and _Exit write every
 * pending line before the process goes. fork is handled by an atfork handler
 * in shim_init.c.
 *
 * pthread_create may allocate (it is not async-signal-safe itself); nothing
 * else here may. If the shim cannot wrap a thread it starts it unwrapped.
 */
#include "hooks.h"

#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

struct thread_start {
	void *(*fn)(void *);
	void *arg;
	uint64_t request;
	uint32_t last_conn;
	uint8_t mode;
};

/* Unfinished lines are judged with the context the thread still has; held
 * lines go out without an id, as at any boundary. */
static void thread_ending(void *unused)
{
	(void)unused;
	log_flush_thread();
	ctx_boundary();
}

static void *thread_trampoline(void *p)
{
	struct thread_start start = *(struct thread_start *)p;
	free(p);
	thread_ctx.request = start.request;
	thread_ctx.last_conn = start.last_conn;
	thread_ctx.mode = start.mode;
	void *result;
	pthread_cleanup_push(thread_ending, NULL);
	result = start.fn(start.arg);
	pthread_cleanup_pop(1);
	return result;
}

EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			  void *arg)
{
	int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
		REAL(pthread_create);
	if (unlikely(!create))
		return EAGAIN;
	if (!shim.active)
		return create(t, attr, fn, arg);
	struct thread_start *start = malloc(sizeof(*start));
	if (!start)
		return create(t, attr, fn, arg);
	start->fn = fn;
	start->arg = arg;
	start->request = thread_ctx.request;
	start->last_conn = thread_ctx.last_conn;
	start->mode = thread_ctx.mode;
	int r = create(t, attr, thread_trampoline, start);
	if (r != 0)
		free(start);
	return r;
}

static void process_ending(void)
{
	if (shim.active) {
		int saved = errno;
		log_flush_all();
		ctx_boundary();
		errno = saved;
	}
}

EXPORT void _exit(int status)
{
	void (*fn)(int) = REAL(_exit);
	process_ending();
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

EXPORT void _Exit(int status)
{
	void (*fn)(int) = REAL(_Exit);
	process_ending();
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}
