/*
 * hooks.h - the few steps every hook shares, kept inline so the path for a
 * descriptor the shim does not care about stays a handful of instructions.
 *
 * Every helper preserves errno. None allocates, blocks or takes a lock.
 */
#ifndef REQID_HOOKS_H
#define REQID_HOOKS_H

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_output.h"
#include "conn_output.h"
#include "conn_table.h"
#include "log_writer.h"
#include "raw_syscall.h"
#include "shim_init.h"
#include "thread_ctx.h"

/* True when a hook has nothing to do: fd (its flags) has none of the flags
 * in care and the thread is no event loop (whose I/O elsewhere ends a
 * bracket). Hooks test this first and tail-call libc, so untracked I/O
 * costs a few loads. */
static inline bool untracked_flags(uint8_t flags, uint8_t care)
{
	return likely((flags & care) == 0) && likely(!thread_ctx.watch);
}

/* untracked_flags of fd's flags. (read and write read them themselves and
 * pass them on to their slow paths: once a call.) */
static inline bool untracked(int fd, uint8_t care)
{
	return untracked_flags(fd_flags(fd), care);
}

/* The read hooks care for connections and for descriptors an attached
 * process may have accepted before the shim came in; the write hooks for
 * those, logs and outbound connections (and some for syslog's socket). */
#define READ_CARE (FD_CONN | FD_ADOPT)
#define WRITE_CARE (FD_CONN | FD_LOG | FD_CLIENT | FD_ADOPT)

/* Before a read or write on fd in a hook's slow path: a descriptor marked
 * FD_ADOPT becomes a connection if it is an accepted one (attach.c). */
static inline void adopt_pending(int fd)
{
	if (unlikely(fd_flags(fd) & FD_ADOPT))
		attach_adopt(fd);
}

/* In a write hook's slow path, for fd of no class: whether it was marked
 * FD_ADOPT and is a connection now (attach_adopt). */
static inline bool adopted_now(int fd)
{
	if (likely(!(fd_flags(fd) & FD_ADOPT)))
		return false;
	attach_adopt(fd);
	return fd_class(fd) & FD_CONN;
}

/* The thread is about to block: lines an event-loop batch holds go out
 * now, not after the wait (thread_ctx.h, event_batch.h). */
static inline void before_blocking(void)
{
	if (unlikely(thread_ctx.batch.holding))
		ctx_release_batch();
}

/* Puts errno back to saved, storing it only if it changed: errno is on the
 * thread's TLS page, which a fork server's parent does not write between a
 * fork and its next accept unless the shim does (fork made the page
 * copy-on-write: the first store copies it). */
static inline void errno_restore(int saved)
{
	if (errno != saved)
		errno = saved;
}

/* False in a vfork child: it shares the parent's memory (the fd tables
 * here) but not its descriptors, so it must not change what the tables say.
 * A syscall, only for calls that would change them, and only in a process
 * that made such a child (memory_shared). */
static inline bool own_process(void)
{
	return !atomic_load_explicit(&memory_shared, memory_order_relaxed) ||
	       raw_getpid() == process.pid;
}

/* I/O on fd, a descriptor that is neither a connection nor a log: an
 * event-loop thread has switched to other work, and a thread with an
 * inherited context shows it serves something else (unless fd is an
 * outbound connection: calling another service is part of the request);
 * either way the context ends. */
static inline void note_other_io(int fd)
{
	if (unlikely(thread_ctx.watch) && thread_ctx.mode != CTX_NONE &&
	    (thread_ctx.watch != WATCH_INHERITED || !(fd_class(fd) & FD_CLIENT)))
		ctx_boundary();
}

/* Socket I/O on fd inside a TLS library call (thread_ctx.in_ssl): the
 * call's socket, if it touches that one alone (tls_bind.h). */
static inline void ssl_socket_io(int fd)
{
	uint32_t conn = (uint32_t)conn_fd(fd) + 1;
	if (thread_ctx.ssl_io_conn != conn)
		thread_ctx.ssl_io_conn = thread_ctx.ssl_io_conn ? UINT32_MAX : conn;
}

/* Before a write on outbound connection fd: its own request goes on. */
static inline void note_client_io(int fd)
{
	note_other_io(fd);
	if (!thread_ctx.in_shim)
		thread_ctx.foreign_lines = false;
	if (unlikely(thread_ctx.in_ssl))
		ssl_socket_io(fd);
}

/* Whether fd is a kernel TLS socket (TCP_ULP "tls"): the program's plain
 * reads and writes on it carry plaintext (hook_ssl.c). Keeps errno. */
bool socket_is_ktls(int fd) HIDDEN;

/* I/O that moved bytes on connection fd's socket (tls: fd is a TLS
 * connection, as conn_on_read and conn_on_write report). Inside a TLS
 * library call it is the library's, and names the socket of a library that
 * does its I/O through its own BIO; outside one, on a TLS connection whose
 * socket is kernel TLS, it is plaintext of the program's that the shim
 * does not see: the connection is lost; on any other TLS connection it is
 * records a library the shim does not hook may decrypt: its requests go
 * unseen (conn_tls_unseen). */
static inline void conn_socket_io(int fd, bool tls)
{
	if (unlikely(thread_ctx.in_ssl))
		ssl_socket_io(fd);
	else if (unlikely(tls)) {
		if (socket_is_ktls(fd))
			conn_lose(fd);
		else
			conn_tls_unseen(fd);
	}
}

/* Whether a read that returned 0 asked for bytes (count of them in buf, or
 * count entries of iov): then the 0 is end of file. */
static inline bool read_asked(const void *buf, const struct iovec *iov, size_t count)
{
	if (buf || !iov)
		return count > 0;
	for (size_t i = 0; i < count; i++)
		if (iov[i].iov_len > 0)
			return true;
	return false;
}

/* Before a read or write on connection fd: returns fd's generation, for
 * conn_read_done or conn_write_done to tell whether fd still names the
 * connection the call moved bytes on. */
static inline uint8_t conn_io_begin(int fd)
{
	ctx_before_conn_io(fd);
	return conn_generation(fd);
}

/* A call on connection fd that began at generation moved the bytes of a
 * connection fd no longer names: another thread closed fd meanwhile, and
 * may have accepted a new connection on the number. They are nobody's now,
 * and the thread serves no request. */
static inline bool conn_io_stale(int fd, uint8_t generation)
{
	if (likely(conn_generation(fd) == generation))
		return false;
	ctx_boundary();
	return true;
}

/* After a read-like call on connection fd into buf (count bytes) or iov
 * (count entries), begun at generation (conn_io_begin): the bytes it
 * consumed feed the parser, except peeked ones (not consumed) and truncated
 * ones (consumed unseen: the stream is lost); end of file may end the
 * connection's request (conn_on_eof). A read of the socket's error queue
 * (MSG_ERRQUEUE: send timestamps, zero copy completions) is neither: its
 * bytes (often none, as a 0) are not the peer's. */
static inline __attribute__((always_inline)) void
conn_read_done(int fd, uint8_t generation, const void *buf, const struct iovec *iov, size_t count,
	       ssize_t r, int flags)
{
	int saved = errno;
	int holder = conn_fd(fd);
	struct conn *c = conn_holder_entry(holder);
	if (unlikely(flags & MSG_ERRQUEUE))
		r = -1;
	if (likely(r > 0 && !(flags & (MSG_PEEK | MSG_TRUNC)))) {
		enum conn_read got = conn_on_read(fd, holder, c, generation, buf, iov, (size_t)r);
		if (unlikely(got == CONN_READ_STALE)) {
			ctx_boundary();
			errno = saved;
			return;
		}
		conn_socket_io(fd, got == CONN_READ_TLS);
	} else {
		if (unlikely(conn_io_stale(fd, generation))) {
			errno = saved;
			return;
		}
		if (r == 0 && !(flags & MSG_PEEK) && read_asked(buf, iov, count) &&
		    conn_output_response_done(fd))
			conn_on_eof(fd);
		if (r > 0 && (flags & MSG_TRUNC) && !(flags & MSG_PEEK)) {
			conn_socket_io(fd, conn_is_tls(fd));
			conn_lose(fd);
		}
	}
	ctx_after_io_on(fd, holder, c, false, r > 0);
	errno = saved;
}

/* After a write-like call on connection fd begun at generation
 * (conn_io_begin). */
static inline __attribute__((always_inline)) void conn_write_done(int fd, uint8_t generation,
								   ssize_t r)
{
	int saved = errno;
	if (unlikely(conn_io_stale(fd, generation))) {
		errno = saved;
		return;
	}
	int holder = conn_fd(fd);
	struct conn *c = conn_holder_entry(holder);
	if (r > 0) {
		int32_t reader;
		conn_socket_io(fd, conn_on_write(c, &reader));
		/* By its reader, the usual answer, it runs no code outside
		 * FORK_PATH's window: a fork child would fault in a page. */
		if (unlikely(reader != 0 && reader != thread_ctx.tid))
			ctx_response_began(fd, reader);
	}
	ctx_after_io_on(fd, holder, c, true, r > 0);
	errno = saved;
}

/* Whether a write to a log descriptor can take the log path: not from a
 * signal handler that interrupted the shim's own log path, and with
 * arguments the kernel would accept (bad ones go to libc, which reports
 * them as it always does). */
static inline bool log_path_ok(const struct iovec *iov, int iovcnt)
{
	if (thread_ctx.in_shim || iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && !iov))
		return false;
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && !iov[i].iov_base)
			return false;
		if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
			return false;
		total += iov[i].iov_len;
	}
	return true;
}

/* Sends a datagram to the syslog socket with its message enriched
 * (hook_syslog.c). Returns what the application's send returns. */
ssize_t syslog_datagram(int fd, const void *buf, size_t n, int flags,
			const struct sockaddr *addr, socklen_t alen) HIDDEN;

/* fd was connected to addr (hook_syslog.c). */
void syslog_connected(int fd, const struct sockaddr *addr, socklen_t len) HIDDEN;

static inline ssize_t log_path(const struct log_sink *sink, const struct iovec *iov, int iovcnt)
{
	thread_ctx.in_shim = true;
	ssize_t r = log_writev(sink, iov, iovcnt);
	thread_ctx.in_shim = false;
	return r;
}

/* popen() (hook_fd.c) spawns with environ pointing, until the matching
 * end, at the environment an exec from this thread would get (request id,
 * log files). NULL: nothing to change. */
char **spawn_environ_begin(void) HIDDEN;
void spawn_environ_end(char **saved) HIDDEN;

#endif
