/*
 * target_libc.h - addresses of libc functions inside the target (see
 * target_libc.c).
 */
#ifndef REQID_INJECT_TARGET_LIBC_H
#define REQID_INJECT_TARGET_LIBC_H

#include <stdint.h>
#include <sys/types.h>

#include "borrow_point.h"

struct libc_funcs {
	uint64_t dlopen, dlsym, dlerror;
	uint64_t pthread_create, pthread_detach, pthread_self;
	uint64_t pthread_attr_init, pthread_attr_setstack;
	uint64_t errno_location, register_atfork;
	uint64_t syscall_ret;	/* the bytes of `syscall; ret` */
	/* the signal return code a handler returns to (glibc's __restore_rt:
	 * mov $15,%rax; syscall), 0 if not found: a thread whose stack holds
	 * its address above the stack pointer is inside a signal handler. */
	uint64_t restore_rt;
	/* fork and _Fork (fork without the atfork handlers), with their
	 * sizes: a thread with a frame in them is inside a fork. */
	uint64_t fork, fork_size, fork_bare, fork_bare_size;
};

/* Fills f from the target's libc.so.6; -1 after fail() for a static
 * binary, a libc other than glibc >= 2.34, or an unreadable file. */
int target_libc_find(pid_t pid, struct libc_funcs *f);

/* Fills code with where the target's loader and program code lie (each 0
 * if unknown): 0, or -1 if its auxv or maps cannot be read. */
int target_code_find(pid_t pid, struct code_ranges *code);

#endif
