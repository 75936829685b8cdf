/*
 * hook_fd.c - the calls that create, copy and close descriptors, so the
 * per-fd flags always describe what a number names now: a number handed out
 * again (by open, socket, pipe, dup...) starts with no stale connection or
 * log flag; files whose path matches REQID_LOG_PATHS become log descriptors;
 * a copy of a log descriptor is one too; closing a log descriptor writes the
 * lines still pending for it.
 *
 * Must never change what these calls return or leave in errno, and never
 * make a descriptor that carries a protocol (a connection, or a TCP socket
 * dup2'ed onto stdout by inetd or a CGI parent) a log descriptor.
 */
#include "hooks.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "audit_log.h"
#include "call_chain.h"
#include "epoll_map.h"
#include "log_order.h"
#include "path_glob.h"
#include "raw_syscall.h"

/* own_process, asked at most once for all the steps of one call (a
 * system call each time, 2-3 us on this project's VM): *own is OWN_UNASKED
 * until then. The answer cannot change within the call: the process is a
 * vfork child or not from the moment it runs. */
#define OWN_UNASKED (-1)
static FORK_PATH __attribute__((noinline)) bool own_process_once(int8_t *own)
{
	if (*own == OWN_UNASKED)
		*own = own_process();
	return *own;
}

/* fd's flags become flags, unless they are already or this is a vfork
 * child. own: as for own_process_once, shared with the rest of the call. */
static FORK_PATH void set_flags_once(int fd, uint8_t flags, int8_t *own)
{
	struct fd_state *st = fd_state(fd);
	if ((st ? atomic_load_explicit(&st->flags, memory_order_relaxed) == flags : flags == 0) ||
	    !own_process_once(own))
		return;
	if (st || (st = fd_state_made(fd)))
		atomic_store_explicit(&st->flags, flags, memory_order_relaxed);
}

static FORK_PATH void set_flags(int fd, uint8_t flags)
{
	int8_t own = OWN_UNASKED;
	set_flags_once(fd, flags, &own);
}

/* fd was just created and names something new. */
static FORK_PATH int fresh(int fd, bool log)
{
	if (fd >= 0 && shim.active)
		set_flags(fd, log ? FD_LOG : 0);
	return fd;
}

static bool is_log(int fd)
{
	return fd_class(fd) & FD_LOG;
}

/* Attached: the number's next holder may come from a call begun before
 * attach (an accept blocked then), past the shim. One marked already was
 * never adopted: it counts as unseen no more. Outside FORK_PATH's window: a
 * fork server started under the shim never runs it. */
static __attribute__((noinline, cold)) void retiring_attached(int fd)
{
	struct fd_state *st;
	if (own_process() && (st = fd_state_made(fd)) &&
	    (atomic_fetch_or(&st->flags, FD_ADOPT) & FD_ADOPT))
		conn_adoption_dropped(fd);
}

/* fd is about to stop naming what it named: close its books. own: as for
 * own_process_once. */
static FORK_PATH void fd_retiring(int fd, int8_t *own)
{
	if (unlikely(shim.attached))
		retiring_attached(fd);
	bool epoll = epoll_map_tracks(fd), unwinder = call_chain_is_pipe(fd);
	uint8_t cls = fd_class(fd);
	if (unlikely(audit_is_channel(fd)) && own_process_once(own))
		audit_fd_closing(); /* the next record opens it again */
	/* Only in the shim's own process: a vfork child closing its copies
	 * must not close the books of the parent's descriptors, which live
	 * on (its kept epoll events, its call chains, its connections). */
	if (likely(cls == 0 && !epoll && !unwinder) || !own_process_once(own))
		return;
	if (epoll)
		epoll_map_forget(fd);
	if (unwinder)
		call_chain_fd_closing(fd);
	int saved = errno;
	if (cls & FD_CONN) {
		if (conn_named_once(fd))
			ctx_conn_closing(fd); /* the connection itself ends */
		conn_forget(fd);
	}
	if (cls & FD_LOG) {
		log_flush_fd(fd);
		atomic_fetch_and(&fd_state(fd)->flags, (uint8_t)~FD_LOG);
	}
	if (cls & FD_CLIENT)
		client_forget(fd);
	errno_restore(saved);
}

/* ---- log files by path ------------------------------------------------- */

static bool log_path_matches(const char *path)
{
	for (uint8_t i = 0; i < shim.config.log_path_count; i++)
		if (path_glob_match(shim.config.log_paths[i], path))
			return true;
	return false;
}

size_t fd_path(int fd, char *path)
{
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* The system call libc's readlink makes, made here: each function taken
	 * from libc costs every starting process some 800 instructions of the
	 * loader's. A failure leaves errno as it was. */
	long r = raw_syscall3(SYS_readlink, (long)proc, (long)path, PATH_MAX - 1);
	if (r <= 0)
		return 0;
	path[r] = '\0';
	return (size_t)r;
}

/* Whether the file opened as path (relative to dirfd) is a log file: the
 * path as given, or made absolute, matches a REQID_LOG_PATHS pattern. */
static bool is_log_path(int dirfd, const char *path)
{
	char abs[PATH_MAX];
	if (shim.config.log_path_count == 0 || path == NULL)
		return false;
	if (log_path_matches(path))
		return true;
	if (path[0] == '/')
		return false;
	size_t n;
	if (dirfd == AT_FDCWD) {
		if (!LIBC(getcwd)(abs, sizeof(abs)))
			return false;
		n = strlen(abs);
	} else if ((n = fd_path(dirfd, abs)) == 0) {
		return false;
	}
	size_t len = strlen(path);
	if (n + 1 + len >= sizeof(abs))
		return false;
	abs[n] = '/';
	memcpy(abs + n + 1, path, len + 1);
	return log_path_matches(abs);
}

/* A file opened only for reading is never a log: nothing is written to it
 * (nor to any copy of its descriptor), so its path is not matched. */
static bool writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY && !(flags & O_PATH);
}

bool open_fd_is_log(int fd)
{
	char path[PATH_MAX];
	int flags = fcntl(fd, F_GETFL);
	return shim.config.log_path_count > 0 && flags >= 0 && writable(flags) &&
	       fd_path(fd, path) > 0 && log_path_matches(path);
}

/* Out of line: the four opens share one copy in the fork child's window. */
static FORK_PATH __attribute__((noinline)) int opened(int fd, int dirfd, const char *path,
						      int flags)
{
	if (fd >= 0 && shim.active) {
		int saved = errno;
		bool log = writable(flags) && is_log_path(dirfd, path);
		fresh(fd, log);
		if (log)
			log_order_log_opened(fd);
		errno = saved;
	}
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

EXPORT FORK_PATH int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int (*fn)(const char *, int, ...) = REAL(open);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
	return opened(fn(path, flags, mode), AT_FDCWD, path, flags);
}

EXPORT FORK_PATH int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int (*fn)(const char *, int, ...) = REAL(open64);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_LARGEFILE, mode);
	return opened(fn(path, flags, mode), AT_FDCWD, path, flags);
}

EXPORT FORK_PATH int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int (*fn)(int, const char *, int, ...) = REAL(openat);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, dirfd, path, flags, mode);
	return opened(fn(dirfd, path, flags, mode), dirfd, path, flags);
}

EXPORT FORK_PATH int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int (*fn)(int, const char *, int, ...) = REAL(openat64);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, dirfd, path, flags | O_LARGEFILE, mode);
	return opened(fn(dirfd, path, flags, mode), dirfd, path, flags);
}

/* The _FORTIFY_SOURCE entry points, for opens without a mode argument. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

EXPORT int __open_2(const char *path, int flags)
{
	int (*fn)(const char *, int) = REAL(__open_2);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
	return opened(fn(path, flags), AT_FDCWD, path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	int (*fn)(const char *, int) = REAL(__open64_2);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_LARGEFILE, 0);
	return opened(fn(path, flags), AT_FDCWD, path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	int (*fn)(int, const char *, int) = REAL(__openat_2);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, dirfd, path, flags, 0);
	return opened(fn(dirfd, path, flags), dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	int (*fn)(int, const char *, int) = REAL(__openat64_2);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, dirfd, path, flags | O_LARGEFILE, 0);
	return opened(fn(dirfd, path, flags), dirfd, path, flags);
}

EXPORT int creat(const char *path, mode_t mode)
{
	int (*fn)(const char *, mode_t) = REAL(creat);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
	return opened(fn(path, mode), AT_FDCWD, path, O_WRONLY);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	int (*fn)(const char *, mode_t) = REAL(creat64);
	if (unlikely(!fn))
		return (int)syscall(SYS_openat, AT_FDCWD, path,
				    O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode);
	return opened(fn(path, mode), AT_FDCWD, path, O_WRONLY);
}

/* ---- stdio streams (glibc opens and closes their fds internally) -------- */

static FILE *stream_opened(FILE *f, const char *path, const char *mode)
{
	if (f)
		opened(fileno(f), AT_FDCWD, path,
		       mode[0] == 'r' && !strchr(mode, '+') ? O_RDONLY : O_WRONLY);
	return f;
}

/* Not FORK_PATH (the window is full): a server's child writes to the
 * descriptors it was given, and opens files, if it does, with open. */
EXPORT FILE *fopen(const char *path, const char *mode)
{
	FILE *(*fn)(const char *, const char *) = REAL(fopen);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return NULL;
	}
	return stream_opened(fn(path, mode), path, mode);
}

/* Not FORK_PATH either; a 64-bit program calls it only when built for
 * large files. */
EXPORT FILE *fopen64(const char *path, const char *mode)
{
	FILE *(*fn)(const char *, const char *) = REAL(fopen64);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return NULL;
	}
	return stream_opened(fn(path, mode), path, mode);
}

/* freopen replaces the stream's fd, usually to point stdout or stderr at a
 * (new) log file: the result is a log descriptor if the path matches, if
 * the stream's old fd was one, or if its number is a configured one. */
static FILE *stream_reopened(FILE *(*fn)(const char *, const char *, FILE *),
			     const char *path, const char *mode, FILE *stream)
{
	int old = stream ? fileno(stream) : -1;
	bool was_log = is_log(old);
	int8_t own = OWN_UNASKED;
	fd_retiring(old, &own);
	FILE *f = fn(path, mode, stream);
	if (f && shim.active) {
		int saved = errno;
		int fd = fileno(f);
		fresh(fd, was_log || is_log_path(AT_FDCWD, path) || config_is_log_fd(fd));
		errno = saved;
	}
	return f;
}

EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	FILE *(*fn)(const char *, const char *, FILE *) = REAL(freopen);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return NULL;
	}
	return stream_reopened(fn, path, mode, stream);
}

EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	FILE *(*fn)(const char *, const char *, FILE *) = REAL(freopen64);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return NULL;
	}
	return stream_reopened(fn, path, mode, stream);
}

EXPORT int fclose(FILE *f)
{
	int (*fn)(FILE *) = REAL(fclose);
	if (unlikely(!fn))
		return EOF;
	if (f && shim.active) {
		int8_t own = OWN_UNASKED;
		stdio_forget_stream(f);
		fd_retiring(fileno(f), &own);
	}
	return fn(f);
}

EXPORT FILE *popen(const char *command, const char *type)
{
	FILE *(*fn)(const char *, const char *) = REAL(popen);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return NULL;
	}
	char **saved = spawn_environ_begin();
	FILE *f = fn(command, type);
	spawn_environ_end(saved);
	if (f)
		fresh(fileno(f), false);
	return f;
}

/* ---- other descriptor makers ------------------------------------------- */

/* A unix datagram socket may be the one a program opens to /dev/log
 * itself; connect() (hook_syslog.c) clears the mark if it is not. */
EXPORT int socket(int domain, int type, int protocol)
{
	int (*fn)(int, int, int) = REAL(socket);
	if (unlikely(!fn))
		return (int)syscall(SYS_socket, domain, type, protocol);
	int fd = fn(domain, type, protocol);
	if (fd >= 0 && shim.active)
		set_flags(fd, domain == AF_UNIX && (type & 0xf) == SOCK_DGRAM ? FD_SYSLOG : 0);
	return fd;
}

EXPORT LOOP_PATH int socketpair(int domain, int type, int protocol, int sv[2])
{
	int (*fn)(int, int, int, int *) = REAL(socketpair);
	if (unlikely(!fn))
		return (int)syscall(SYS_socketpair, domain, type, protocol, sv);
	int r = fn(domain, type, protocol, sv);
	if (r == 0) {
		fresh(sv[0], false);
		fresh(sv[1], false);
	}
	return r;
}

EXPORT FORK_PATH int pipe(int fds[2])
{
	int (*fn)(int *) = REAL(pipe);
	if (unlikely(!fn))
		return (int)syscall(SYS_pipe2, fds, 0);
	if (unlikely(call_chain_unwinding()))
		return call_chain_pipe(fds, 0); /* libunwind's own (call_chain.h) */
	int r = fn(fds);
	if (r == 0) {
		fresh(fds[0], false);
		fresh(fds[1], false);
	}
	return r;
}

EXPORT FORK_PATH int pipe2(int fds[2], int flags)
{
	int (*fn)(int *, int) = REAL(pipe2);
	if (unlikely(!fn))
		return (int)syscall(SYS_pipe2, fds, flags);
	if (unlikely(call_chain_unwinding()))
		return call_chain_pipe(fds, flags); /* libunwind's own (call_chain.h) */
	int r = fn(fds, flags);
	if (r == 0) {
		fresh(fds[0], false);
		fresh(fds[1], false);
	}
	return r;
}

EXPORT LOOP_PATH int eventfd(unsigned initval, int flags)
{
	int (*fn)(unsigned, int) = REAL(eventfd);
	if (unlikely(!fn))
		return (int)syscall(SYS_eventfd2, initval, flags);
	return fresh(fn(initval, flags), false);
}

/* A new epoll instance: registrations under its number are void. */
static int epoll_instance(int epfd)
{
	if (epfd >= 0 && own_process())
		epoll_map_new_instance(epfd);
	return fresh(epfd, false);
}

EXPORT LOOP_PATH int epoll_create(int size)
{
	int (*fn)(int) = REAL(epoll_create);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_create1, 0);
	return epoll_instance(fn(size));
}

EXPORT LOOP_PATH int epoll_create1(int flags)
{
	int (*fn)(int) = REAL(epoll_create1);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_create1, flags);
	return epoll_instance(fn(flags));
}

EXPORT int timerfd_create(int clock, int flags)
{
	int (*fn)(int, int) = REAL(timerfd_create);
	if (unlikely(!fn))
		return (int)syscall(SYS_timerfd_create, clock, flags);
	return fresh(fn(clock, flags), false);
}

EXPORT int memfd_create(const char *name, unsigned flags)
{
	int (*fn)(const char *, unsigned) = REAL(memfd_create);
	if (unlikely(!fn))
		return (int)syscall(SYS_memfd_create, name, flags);
	return fresh(fn(name, flags), false);
}

/* ---- copies ------------------------------------------------------------ */

/* old is still marked for adoption after adopt_pending (a detach is
 * waiting, and may give up): so is its copy, and it counts as unseen as old
 * does (conn_unseen_until_adopted). */
static __attribute__((noinline, cold)) void copy_unadopted(int copy)
{
	struct fd_state *st = fd_state_made(copy);
	if (st) {
		atomic_fetch_or(&st->flags, FD_ADOPT);
		conn_unseen_until_adopted(copy);
	}
}

/* copy (dup, F_DUPFD) names what old names: a log stays a log, a
 * connection's copy is the same connection. In the fork child's window, with
 * fcntl: a shell moves the script it runs to a high descriptor with F_DUPFD
 * as it starts, and every CGI script cost a fault in another window. */
static FORK_PATH int copy_made(int old, int copy)
{
	if (copy >= 0 && shim.active) {
		adopt_pending(old); /* its copy is the same connection */
		fresh(copy, is_log(old));
		if (unlikely(fd_flags(old) & FD_ADOPT))
			copy_unadopted(copy);
		if (fd_class(old) & FD_CONN && own_process())
			conn_copied(old, copy);
	}
	return copy;
}

EXPORT int dup(int old)
{
	int (*fn)(int) = REAL(dup);
	if (unlikely(!fn))
		return (int)syscall(SYS_dup, old);
	return copy_made(old, fn(old));
}

static FORK_PATH int fcntl_common(int (*fn)(int, int, ...), int fd, int cmd, unsigned long arg)
{
	if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
		return fn(fd, cmd, arg);
	return copy_made(fd, fn(fd, cmd, arg));
}

/* The third argument, if any, is passed on as it came (an int or a pointer
 * in the same register). */
EXPORT FORK_PATH int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	int (*fn)(int, int, ...) = REAL(fcntl);
	if (unlikely(!fn))
		return (int)syscall(SYS_fcntl, fd, cmd, arg);
	return fcntl_common(fn, fd, cmd, arg);
}

EXPORT FORK_PATH int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	int (*fn)(int, int, ...) = REAL(fcntl64);
	if (unlikely(!fn))
		return (int)syscall(SYS_fcntl, fd, cmd, arg);
	return fcntl_common(fn, fd, cmd, arg);
}

/* Whether a file put on stdout is a log: a terminal or /dev/null, or a
 * regular file opened for appending (a daemon pointing stdout at its log).
 * A pipe or socket there is a shell or popen capturing a command's output,
 * and a regular file opened without O_APPEND is a shell's `> file` (a pid
 * file, a data file): data, whose bytes must stay the program's. */
static FORK_PATH bool stdout_file_is_log(int fd)
{
	struct stat st;
	if (raw_fstat(fd, &st) != 0)
		return false;
	if (S_ISCHR(st.st_mode))
		return true;
	return S_ISREG(st.st_mode) && (raw_syscall3(SYS_fcntl, fd, F_GETFL, 0) & O_APPEND);
}

/* newfd now names what oldfd names: a log stays a log; a connection's copy
 * is the same connection (a forked server's dup2(conn, 0)), never a log; another
 * file put on a configured log number is a log (a daemon pointing stderr at
 * its log file), except on stdout where stdout_file_is_log says. own: as for
 * own_process_once, shared with the call's fd_retiring. A vfork child
 * records nothing, so one the call already knows for one (a CGI's
 * dup2(pipe, 1) before its exec) asks nothing about newfd either: those
 * were two system calls (getsockopt, fstat) per CGI request. */
static FORK_PATH void copied_onto(int oldfd, int newfd, int8_t *own)
{
	adopt_pending(oldfd); /* its copy is the same connection */
	uint8_t from = fd_class(oldfd);
	bool log = false;
	if (from & FD_LOG) {
		log = true;
	} else if (!(from & FD_CONN) && *own != false && config_is_log_fd(newfd) &&
		   !is_accepted_socket(newfd)) {
		log = newfd != STDOUT_FILENO || stdout_file_is_log(newfd);
	}
	if (shim.active)
		set_flags_once(newfd, log ? FD_LOG : 0, own);
	if (unlikely(fd_flags(oldfd) & FD_ADOPT))
		copy_unadopted(newfd);
	if (from & FD_CONN && own_process_once(own))
		conn_copied(oldfd, newfd);
}

EXPORT FORK_PATH int dup2(int oldfd, int newfd)
{
	int (*fn)(int, int) = REAL(dup2);
	if (unlikely(!fn))
		return (int)syscall(SYS_dup2, oldfd, newfd);
	if (oldfd == newfd || !shim.active)
		return fn(oldfd, newfd);
	int8_t own = OWN_UNASKED;
	fd_retiring(newfd, &own);
	int r = fn(oldfd, newfd);
	if (r >= 0) {
		int saved = errno;
		copied_onto(oldfd, newfd, &own);
		errno = saved;
	}
	return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	int (*fn)(int, int, int) = REAL(dup3);
	if (unlikely(!fn))
		return (int)syscall(SYS_dup3, oldfd, newfd, flags);
	if (oldfd == newfd || !shim.active)
		return fn(oldfd, newfd, flags);
	int8_t own = OWN_UNASKED;
	fd_retiring(newfd, &own);
	int r = fn(oldfd, newfd, flags);
	if (r >= 0) {
		int saved = errno;
		copied_onto(oldfd, newfd, &own);
		errno = saved;
	}
	return r;
}

/* ---- closing ----------------------------------------------------------- */

EXPORT FORK_PATH int close(int fd)
{
	int (*fn)(int) = REAL(close);
	if (unlikely(!fn))
		return (int)syscall(SYS_close, fd);
	int8_t own = OWN_UNASKED;
	fd_retiring(fd, &own);
	return fn(fd);
}

static void range_retiring(unsigned first, unsigned last)
{
	unsigned end = fd_state_end(); /* no fd from here on has books */
	int8_t own = OWN_UNASKED;
	if (last >= end)
		last = end - 1;
	for (unsigned fd = first; fd <= last && first < end; fd++)
		fd_retiring((int)fd, &own);
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	int (*fn)(unsigned, unsigned, int) = REAL(close_range);
	if (unlikely(!fn))
		return (int)syscall(SYS_close_range, first, last, flags);
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last)
		range_retiring(first, last);
	return fn(first, last, flags);
}

EXPORT void closefrom(int low)
{
	void (*fn)(int) = REAL(closefrom);
	if (low >= 0)
		range_retiring((unsigned)low, ~0u);
	if (unlikely(!fn)) {
		syscall(SYS_close_range, (unsigned)low, ~0u, 0);
		return;
	}
	fn(low);
}
