/*
 * raw_syscall.h - system calls made directly, not through libc's wrappers.
 *
 * A fork child maps every 64 KiB of libc's code it runs anew, at a page
 * fault each, and a starting process every 64 KiB it runs at all: the
 * shim's paths that fork children and starting processes take make their
 * few system calls here instead. Always inlined: a copy of its own would
 * lie outside the code window or section its caller was put in (FORK_PATH,
 * RESIDENT_LAST_CODE). A failure comes back as -errno; errno is never
 * touched. x86_64 only, as the shim is.
 */
#ifndef REQID_RAW_SYSCALL_H
#define REQID_RAW_SYSCALL_H

#include <sys/syscall.h>
#include <sys/types.h>

static inline __attribute__((always_inline)) long raw_syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline __attribute__((always_inline)) long raw_syscall4(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

/* getpid() and sched_yield() as libc makes them (neither can fail): not
 * imports the loader binds at every start. */
static inline __attribute__((always_inline)) pid_t raw_getpid(void)
{
	return (pid_t)raw_syscall3(SYS_getpid, 0, 0, 0);
}

static inline __attribute__((always_inline)) void raw_sched_yield(void)
{
	raw_syscall3(SYS_sched_yield, 0, 0, 0);
}

#endif
