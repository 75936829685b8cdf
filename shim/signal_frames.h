/*
 * signal_frames.h - whether the calling thread runs inside a signal handler
 * the program installed (hook_signal.c runs each through a trampoline that
 * records its frame here). A line written there gets no id: the request the
 * interrupted thread serves is not the handler's.
 *
 * The judgement may say "in a handler" when it is not (a handler left by
 * siglongjmp and code running deeper than it ran since): that only loses an
 * id. It must never say "not in one" inside a handler on the stack its
 * trampoline ran on. One frame is kept (thread_ctx.signal_frame, 8 bytes
 * of static TLS: a list of them outgrew what dlopen at attach may take): a
 * nested handler on the same stack runs below its outer one's frame, one
 * on another stack (sigaltstack) records its own, put back when it
 * returns. Not covered: a handler on another stack that jumps into the
 * handler it interrupted (its frame stays recorded; the outer handler's
 * lines then get ids). Pure arithmetic on addresses and TLS: never
 * allocates, blocks or touches errno.
 */
#ifndef REQID_SIGNAL_FRAMES_H
#define REQID_SIGNAL_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "thread_ctx.h"

/* How far below its trampoline's frame a handler's stack may reach and
 * still be taken for that handler's: a handler and the calls it makes use
 * far less, and a frame on another stack (sigaltstack) lies farther. */
#define SIGNAL_FRAME_REACH ((uintptr_t)1 << 20)

/* Whether a stack at sp lies within a handler whose trampoline's frame is
 * frame: at or below it, within reach of it. */
static inline bool signal_frame_holds(uintptr_t frame, uintptr_t sp)
{
	return sp <= frame && frame - sp < SIGNAL_FRAME_REACH;
}

/* The stack pointer of the calling code. */
static inline __attribute__((always_inline)) uintptr_t current_stack(void)
{
	uintptr_t sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return sp;
}

/* Whether the calling thread runs in a program's signal handler: a load
 * of a byte of thread_ctx and a branch when it does not. Inline whole,
 * without a call, so that the line path keeps its registers. A stack
 * within none of the trampolines entered and not left means each was left
 * by a jump (a running one holds its handler's stack): none is counted
 * any more. */
static inline __attribute__((always_inline)) bool in_signal_handler(void)
{
	if (__builtin_expect(thread_ctx.signal_depth == 0, 1))
		return false;
	if (signal_frame_holds(thread_ctx.signal_frame, current_stack()))
		return true;
	thread_ctx.signal_depth = 0;
	return false;
}

/* The shim's own handlers: body(sig) marked as in a handler; installed
 * and queried past the sigaction hook. */
void signal_run_own(void (*body)(int), int sig) __attribute__((visibility("hidden")));
struct sigaction;
int signal_action_direct(int sig, const struct sigaction *act, struct sigaction *oldact)
	__attribute__((visibility("hidden")));

/* At attach: the handlers the program installed before run through the
 * trampolines from now on. */
void signal_handlers_wrap(void) __attribute__((visibility("hidden")));

/* At detach: the kernel gets the program's own handlers back, so that
 * libc's sigaction shows them; a delivery already in a trampoline still
 * finds its handler (the table stays). */
void signal_handlers_unwrap(void) __attribute__((visibility("hidden")));

#endif
