/*
 * thread_count.h - how many threads the process has, as the kernel counts
 * them (see thread_count.c).
 */
#ifndef REQID_THREAD_COUNT_H
#define REQID_THREAD_COUNT_H

#include <sys/types.h>

/* The process's threads (num_threads, the 20th field of /proc/self/stat),
 * the ones glibc starts for itself (a SIGEV_THREAD timer's, aio's), which
 * no hook sees, among them; 0 if it cannot tell. */
unsigned thread_count(void) __attribute__((visibility("hidden")));

/* thread_count's answer for process pid (a vfork child asks of its parent). */
unsigned thread_count_of(pid_t pid) __attribute__((visibility("hidden")));

#endif
