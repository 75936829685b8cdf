/*
 * in_fork.c - whether a stopped thread of the target is inside glibc's
 * fork().
 *
 * A thread borrowed there must not create the fresh thread: in a child
 * still inside fork, glibc has yet to reset its thread count to 1 (then a
 * thread created before the reset ends the process with exit(0) when it
 * returns, taking the count to 0), its list of thread stacks (it hands
 * every stack but its own to the cache) and its locks. Walks the thread's
 * first frames with libunwind's ptrace accessors, reading the target
 * only; must never write to it, nor say "inside" for a frame it cannot
 * place: a stack it cannot walk counts as outside, as before this check
 * existed.
 */
#include "in_fork.h"

#include <libunwind-ptrace.h>

/* How many frames are looked at, the thread's own first: glibc makes the
 * child's state that of one thread in fork itself and in calls at most two
 * deep from it, before it runs the atfork handlers. Each step costs about
 * half a millisecond while every thread is stopped (libunwind maps the
 * frame's object anew when it changes), so no more are walked. */
#define MAX_FRAMES 3

static int within(uint64_t ip, const struct libc_funcs *f)
{
	return (ip >= f->fork && ip < f->fork + f->fork_size) ||
	       (ip >= f->fork_bare && ip < f->fork_bare + f->fork_bare_size);
}

int thread_in_fork(pid_t tid, const struct libc_funcs *f)
{
	unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
	unw_cursor_t cursor;
	void *upt;
	int frames = 0, inside = 0;

	if (!as)
		return 0;
	upt = _UPT_create(tid);
	if (upt && unw_init_remote(&cursor, as, upt) == 0) {
		do {
			unw_word_t ip;

			if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0)
				break;
			/* A caller's ip is its return address: one past the
			 * call, which may be the function's last byte. */
			inside = within(frames ? ip - 1 : ip, f);
		} while (!inside && ++frames < MAX_FRAMES && unw_step(&cursor) > 0);
	}
	if (upt)
		_UPT_destroy(upt);
	unw_destroy_addr_space(as);
	return inside;
}
