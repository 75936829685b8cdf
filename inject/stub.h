/*
 * stub.h - the code the fresh thread runs and the data block it reads
 * (see stub.c).
 */
#ifndef REQID_INJECT_STUB_H
#define REQID_INJECT_STUB_H

#include <stddef.h>
#include <stdint.h>

/* Right before the hold, at the end of the data mapping; the strings
 * come before it. */
struct stub_data {
	/* written by reqid-inject */
	uint64_t dlopen, dlsym, dlerror, pthread_self, pthread_detach;
	uint64_t register_atfork;		/* glibc's __register_atfork */
	uint64_t path, name, arg;		/* addresses of the strings */
	/* written by the stub: tid first, done last */
	uint64_t handle;			/* dlopen's result */
	uint64_t func;				/* dlsym's result */
	int32_t status;				/* FUNCTION's result */
	int32_t tid;				/* its thread, as the target numbers it */
	uint64_t done;				/* STUB_DONE, then STUB_FREE */
	uint64_t thread;			/* pthread_create's pthread_t */
	char error[512];			/* dlerror's text, cut to fit */
	/* for the setup, on the borrowed thread (stub.c); written by reqid-inject */
	uint64_t errno_location, pthread_attr_init, pthread_attr_setstack,
		 pthread_create;
	uint64_t attr;				/* where the thread's attributes go */
	uint64_t stack, stack_size;		/* the fresh thread's stack */
	uint64_t guard;				/* the page below it when the pages are
						 * new (made PROT_NONE), else 0 */
	uint64_t guard_size;
	uint64_t writable_size;			/* from stack: made read+write when new */
	/* written by the setup */
	uint64_t errno_at;			/* __errno_location's result */
	int32_t saved_errno;			/* the borrowed thread's errno */
};

/* The last STUB_HOLD_SIZE bytes of the data mapping, right before the code:
 * the fork hold (stub.c). Zero when mapped; written only by the stub and
 * its fork handlers, never by reqid-inject, so it outlives the block's
 * injections. */
struct stub_hold {
	int32_t loading;	/* tid of the thread whose dlopen runs (forks wait), or 0 */
	int32_t forking;	/* forks between their prepare and parent handlers */
	int32_t registered;	/* the handlers are registered (once per page) */
};
#define STUB_HOLD_SIZE 64

/* done: 0 while the call runs, STUB_DONE once the stub no longer touches
 * the block, STUB_FREE once reqid-inject has read the result. */
#define STUB_DONE 1
#define STUB_FREE 2

extern const unsigned char stub_code[];
extern const size_t stub_code_size;
/* Where the setup starts in stub_code; it returns 0, or the failed step
 * (enum stub_setup_step) times 2^32 plus the error number. */
extern const size_t stub_setup_offset;
enum stub_setup_step {
	SETUP_GUARD = 1, SETUP_WRITABLE, SETUP_ATTR_INIT, SETUP_ATTR_SETSTACK,
	SETUP_CREATE
};

#endif
