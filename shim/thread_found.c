/*
 * thread_found.c - what a thread was doing when attach found it (see
 * thread_found.h).
 *
 * Pure logic on /proc text: must never make a system call, allocate, or
 * use libc's parsers.
 */
#include "thread_found.h"

#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>

long proc_decimal_at(const char *s, const char **end)
{
	bool negative = *s == '-';
	long n = 0;
	s += negative;
	for (int digits = 0; digits < 18 && *s >= '0' && *s <= '9'; digits++)
		n = n * 10 + (*s++ - '0');
	*end = s;
	return negative ? -n : n;
}

unsigned long proc_hex_at(const char *s, const char **end)
{
	unsigned long n = 0;
	while (*s == ' ')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (int digits = 0; digits < 16; digits++, s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
			d = (unsigned)((*s | 0x20) - 'a' + 10);
		else
			break;
		n = n << 4 | d;
	}
	*end = s;
	return n;
}

bool proc_has_word(const char *s, const char *word)
{
	size_t len = strlen(word);
	for (; *s; s++)
		if (strncmp(s, word, len) == 0)
			return true;
	return false;
}

/* Whether futex operation op waits with a bitset (a condition, a
 * semaphore, a read-write lock, a join) or is the PI condition's wait,
 * not a mutex's plain wait or a PI lock. */
static bool futex_waits_for_work(unsigned long op)
{
	unsigned long cmd = op & (unsigned long)FUTEX_CMD_MASK;
	return cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_WAIT_REQUEUE_PI;
}

/* A thread asleep in system call nr, with args its hex arguments. */
static enum found found_in_call(long nr, const char *args)
{
	switch (nr) {
	case SYS_poll:
	case SYS_ppoll:
		/* "FDS NFDS ..." */
		proc_hex_at(args, &args);
		return proc_hex_at(args, &args) != 1 ? FOUND_IN_WAIT : FOUND_IDLE;
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
	case SYS_select:
	case SYS_pselect6:
		return FOUND_IN_WAIT;
	case SYS_futex:
		/* "UADDR OP ..." */
		proc_hex_at(args, &args);
		return futex_waits_for_work(proc_hex_at(args, &args)) ? FOUND_IDLE : FOUND_AT_WORK;
	case SYS_read:
	case SYS_readv:
	case SYS_pread64:
	case SYS_preadv:
	case SYS_preadv2:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_recvmmsg:
	case SYS_accept:
	case SYS_accept4:
	case SYS_connect:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait:
		return FOUND_IDLE;
	default:
		return FOUND_AT_WORK;
	}
}

static bool in_poll_or_select(const char *wchan_text)
{
	return proc_has_word(wchan_text, "poll") || proc_has_word(wchan_text, "select");
}

bool thread_found_needs_wchan(const char *syscall_text)
{
	const char *args;
	return !syscall_text || (syscall_text[0] >= '0' && syscall_text[0] <= '9' &&
				 proc_decimal_at(syscall_text, &args) == SYS_restart_syscall);
}

enum found thread_found_from(const char *syscall_text, const char *wchan_text)
{
	if (!syscall_text) {
		if (!wchan_text || !wchan_text[0] || strcmp(wchan_text, "0") == 0)
			return FOUND_AT_WORK;
		return in_poll_or_select(wchan_text) ? FOUND_IN_WAIT : FOUND_IDLE;
	}
	if (syscall_text[0] < '0' || syscall_text[0] > '9')
		return FOUND_AT_WORK; /* "running", or blocked outside a call ("-1 ...") */
	const char *args;
	long nr = proc_decimal_at(syscall_text, &args);
	if (nr == SYS_restart_syscall) {
		if (wchan_text && in_poll_or_select(wchan_text))
			nr = SYS_poll;
		else if (wchan_text && proc_has_word(wchan_text, "futex"))
			nr = SYS_futex;
		else
			return FOUND_AT_WORK;
	}
	return found_in_call(nr, args);
}
