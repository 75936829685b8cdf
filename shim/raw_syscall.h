/*
 * raw_syscall.h - system calls made directly, not through libc's wrappers.
 *
 * A fork child maps every 64 KiB of libc's code it runs anew, at a page
 * fault each, and a starting process every 64 KiB it runs at all: the
 * shim's paths that fork children and starting processes take make their
 * few system calls here instead, and so do the rare paths whose libc
 * wrapper would be one more import for the loader to bind at every start
 * (some 650 instructions each). Always inlined: a copy of its own would
 * lie outside the code window or section its caller was put in (FORK_PATH,
 * RESIDENT_LAST_CODE). A failure comes back as -errno; errno is never
 * touched. x86_64 only, as the shim is.
 */
#ifndef REQID_RAW_SYSCALL_H
#define REQID_RAW_SYSCALL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static inline __attribute__((always_inline)) long raw_syscall5(long nr, long a, long b, long c, long d,
								long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

/* fstat(fd, st) as libc makes it (newfstatat with an empty path, so that
 * a seccomp filter that allows the program's calls allows it): 0 or
 * -errno. The empty path is on the stack: the kernel reads it from the
 * caller's memory, and a literal lay on a page of the library's that
 * nothing else reads at start. */
static inline __attribute__((always_inline)) int raw_fstat(int fd, struct stat *st)
{
	char empty_path[1] = {0};
	return (int)raw_syscall4(SYS_newfstatat, fd, (long)empty_path, (long)st, AT_EMPTY_PATH);
}

static inline __attribute__((always_inline)) int raw_getsockopt(int fd, int level, int name,
								 void *value, socklen_t *len)
{
	return (int)raw_syscall5(SYS_getsockopt, fd, level, name, (long)value, (long)len);
}

/* getpid() and sched_yield() as libc makes them (neither can fail). */
static inline __attribute__((always_inline)) pid_t raw_getpid(void)
{
	return (pid_t)raw_syscall3(SYS_getpid, 0, 0, 0);
}

static inline __attribute__((always_inline)) void raw_sched_yield(void)
{
	raw_syscall3(SYS_sched_yield, 0, 0, 0);
}

static inline __attribute__((always_inline)) int raw_getsockname(int fd, struct sockaddr *addr,
								  socklen_t *len)
{
	return (int)raw_syscall3(SYS_getsockname, fd, (long)addr, (long)len);
}

/* Whether thread tid of this process has exited (tgkill with no signal
 * says ESRCH): a thread id left in a table by a thread that is gone holds
 * nothing. */
static inline __attribute__((always_inline)) bool raw_thread_gone(pid_t tid)
{
	return raw_syscall3(SYS_tgkill, raw_getpid(), tid, 0) == -ESRCH;
}

#endif
