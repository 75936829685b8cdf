/*
 * in_fork.h - whether a stopped thread is inside glibc's fork() (see
 * in_fork.c).
 */
#ifndef REQID_INJECT_IN_FORK_H
#define REQID_INJECT_IN_FORK_H

#include <sys/types.h>

#include "target_libc.h"

/* 1 if a frame of tid, ptrace-stopped, is in fork or _Fork; 0 if none is
 * or its stack cannot be walked. tid is the main thread (the cheap test
 * reads the main thread's stack bounds, through mem, its open
 * /proc/PID/mem: target_mem_open). */
int thread_in_fork(pid_t tid, const struct libc_funcs *f, int mem);

#endif
