/*
 * borrow_point.h - whether a stopped thread is at a point where it may be
 * borrowed to call into libc (see borrow_point.c).
 */
#ifndef REQID_INJECT_BORROW_POINT_H
#define REQID_INJECT_BORROW_POINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

/* The executable code of the loader and of the program, [start, end);
 * both 0 when unknown. */
struct code_ranges {
	uint64_t loader_start, loader_end;
	uint64_t program_start, program_end;
};

enum borrow_point {
	BORROW_SAFE,
	BORROW_IN_LOADER,	/* its pc in the loader's code, or the loader's
				 * start-up under way (constructors run) */
	BORROW_IN_MEMORY_CALL,	/* in a system call malloc makes */
	BORROW_IN_LOCK_WAIT,	/* waiting for a lock (futex wait for value 2) */
	BORROW_IN_LIBRARY,	/* running library code, not in a system call */
	BORROW_IN_PROCESS_CALL,	/* in a system call that makes a process or
				 * thread (fork holds malloc's locks there) */
	BORROW_IN_SIGNAL_HANDLER, /* a signal frame on its stack: the handler
				 * may have interrupted malloc or the loader */
};

/* Whether the process is still in the loader's start-up, from first_frame
 * (below): no thread of it may be borrowed. */
int starting_up(uint64_t first_frame, const struct code_ranges *code);

/* Where the thread whose registers are regs (stopped by ptrace) is;
 * first_frame is the word right below where the kernel started the main
 * thread's stack (below argc; 0 if unknown), which tells whether the
 * process is still starting up, whichever thread regs are of. */
enum borrow_point borrow_point(const struct user_regs_struct *regs, uint64_t first_frame,
			       const struct code_ranges *code);

/* Whether the n stack words from a thread's stack pointer up hold the
 * address a signal handler returns to (restore_rt, the signal return code;
 * 0 if unknown: never): the thread runs a handler, which may have
 * interrupted malloc or the loader whatever call it now sleeps in. A stale
 * copy of that address in a live frame reads as a handler too: the thread
 * is passed over, never wrongly borrowed. */
int stack_in_signal_handler(const uint64_t *words, size_t n, uint64_t restore_rt);

/* Words for the point, for a message: "in the loader" ... */
const char *borrow_point_words(enum borrow_point point);

#endif
