/*
 * hook_syslog.c - syslog(3) and datagrams a program sends to /dev/log
 * itself.
 *
 * syslog, vsyslog and their _FORTIFY_SOURCE twins format the message here
 * and hand the enriched text to glibc's syslog as "%s" (glibc sends it
 * through an internal call no hook sees, so nothing is enriched twice). A
 * datagram socket connected or addressed to the syslog socket gets the same
 * treatment for the message after the "<PRI>TIMESTAMP TAG: " header.
 *
 * A message is judged like a line (thread_ctx.h): sent at once with the id
 * of a thread certain of its request, held while the thread's bracket is
 * open, sent without an id otherwise. Must never change what the calls
 * return or drop a message: if anything fails, the original goes out.
 */
#include "hooks.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "line_format.h"

void __syslog_chk(int pri, int flag, const char *fmt, ...);
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap);

#define MESSAGE_STACK 2048

/* Paths of the local syslog socket. */
static const char *const syslog_paths[] = {"/dev/log", "/run/systemd/journal/syslog"};

static bool is_syslog_address(const struct sockaddr *addr, socklen_t len)
{
	if (!addr || len <= offsetof(struct sockaddr_un, sun_path) || addr->sa_family != AF_UNIX)
		return false;
	const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
	/* strnlen's answer from memchr, which the library takes from libc
	 * anyway (every function it takes costs a starting process some 800
	 * instructions of the loader's). */
	size_t room = len - offsetof(struct sockaddr_un, sun_path);
	const char *end = memchr(un->sun_path, '\0', room);
	size_t n = end ? (size_t)(end - un->sun_path) : room;
	for (size_t i = 0; i < sizeof(syslog_paths) / sizeof(syslog_paths[0]); i++)
		if (n == strlen(syslog_paths[i]) && memcmp(un->sun_path, syslog_paths[i], n) == 0)
			return true;
	return false;
}

/* A buffer of n bytes: the caller's stack one if big enough, else mmap'ed
 * (released with release_room). NULL if neither. */
static char *room(char *stack, size_t n)
{
	if (n <= MESSAGE_STACK)
		return stack;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void release_room(char *buf, char *stack, size_t n)
{
	if (buf && buf != stack)
		munmap(buf, n);
}

/* ---- syslog(3) --------------------------------------------------------- */

/* Formats like (__v)syslog would, errno included for %m. */
static int format(char *buf, size_t size, int flag, int saved_errno, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	errno = saved_errno;
	int len = flag > 0 ? LIBC(__vsnprintf_chk)(buf, size, flag, size, fmt, copy)
			   : LIBC(vsnprintf)(buf, size, fmt, copy);
	va_end(copy);
	return len;
}

/* Puts "<pri>message" through the log writer (which holds it or sends it
 * with the thread's id). False if it could not be formatted (no memory):
 * the caller sends the original. */
static bool enriched_syslog(int pri, int flag, int saved_errno, const char *fmt, va_list ap)
{
	char stack[MESSAGE_STACK];
	int head = snprintf(stack, sizeof(stack), "<%d>", pri);
	int len = format(stack + head, sizeof(stack) - (size_t)head, flag, saved_errno, fmt, ap);
	if (len < 0)
		return false;
	size_t total = (size_t)head + (size_t)len;
	char *text = room(stack, total + 1);
	if (!text)
		return false;
	if (text != stack) {
		memcpy(text, stack, (size_t)head);
		format(text + head, (size_t)len + 1, flag, saved_errno, fmt, ap);
	}
	struct log_sink sink = {.fd = SYSLOG_SLOT_FD, .message = MESSAGE_SYSLOG};
	struct iovec iov = {.iov_base = text, .iov_len = total};
	log_path(&sink, &iov, 1);
	release_room(text, stack, total + 1);
	return true;
}

static void any_syslog(int pri, int flag, const char *fmt, va_list ap)
{
	int saved = errno;
	/* A priority glibc would complain about, or one its mask drops, is
	 * glibc's business: the message is never held or enriched. */
	bool plain = (pri & ~(LOG_PRIMASK | LOG_FACMASK)) ||
		     !(LIBC(setlogmask)(0) & LOG_MASK(LOG_PRI(pri)));
	if (!plain && REAL(syslog) && shim.active && !thread_ctx.in_shim &&
	    enriched_syslog(pri, flag, saved, fmt, ap)) {
		errno = saved;
		return;
	}
	errno = saved;
	if (flag > 0 && real.__vsyslog_chk)
		real.__vsyslog_chk(pri, flag, fmt, ap);
	else if (real.vsyslog)
		real.vsyslog(pri, fmt, ap);
	errno = saved;
}

EXPORT void vsyslog(int pri, const char *fmt, va_list ap)
{
	any_syslog(pri, 0, fmt, ap);
}

EXPORT void syslog(int pri, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	any_syslog(pri, 0, fmt, ap);
	va_end(ap);
}

EXPORT void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
	any_syslog(pri, flag, fmt, ap);
}

EXPORT void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	any_syslog(pri, flag, fmt, ap);
	va_end(ap);
}

/* Messages the thread holds go out before the identity or mask they were
 * written under changes. */
EXPORT void openlog(const char *ident, int option, int facility)
{
	if (shim.active && !thread_ctx.in_shim)
		log_release_syslog();
	REAL(openlog)(ident, option, facility);
}

EXPORT void closelog(void)
{
	if (shim.active && !thread_ctx.in_shim)
		log_release_syslog();
	REAL(closelog)();
}

/* ---- datagrams to /dev/log --------------------------------------------- */

/* Unix datagram sockets start as possible syslog sockets (socket() in
 * hook_fd.c marks them); connecting one anywhere else clears the mark. */
void syslog_connected(int fd, const struct sockaddr *addr, socklen_t len)
{
	if ((fd_class(fd) & FD_SYSLOG) && !is_syslog_address(addr, len))
		atomic_fetch_and(&fd_state(fd)->flags, (uint8_t)~FD_SYSLOG);
}

ssize_t syslog_datagram(int fd, const void *buf, size_t n, int flags,
			const struct sockaddr *addr, socklen_t alen)
{
	bool to_syslog = addr ? is_syslog_address(addr, alen) : true;
	if (thread_ctx.in_shim || !to_syslog || !buf || syslog_header_len(buf, n) == 0 ||
	    alen > sizeof(struct sockaddr_un))
		return real.sendto(fd, buf, n, flags, addr, alen);
	struct log_sink sink = {.fd = fd, .message = MESSAGE_DATAGRAM, .send_flags = flags,
				.addr = addr, .addr_len = addr ? alen : 0};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	return log_path(&sink, &iov, 1);
}
