/*
 * hook_net.c - accept, the recv family, the send family, and the calls that
 * move a connection's bytes unparsed: sendfile, splice, recvmmsg, sendmmsg
 * and pwritev2.
 *
 * accept/accept4 make a descriptor a connection; shutdown for writing ends
 * its requests; reads on connections feed
 * its request parser (bytes read unparsed lose the stream); writes on
 * connections mark the response as begun.
 * send on a log descriptor that is a stream socket (a pipe-like socket to a
 * log collector) is enriched like write. Must never alter the bytes of a
 * connection, never feed the parser bytes the application did not consume
 * (MSG_PEEK) or did not see (MSG_TRUNC), and never drop the caller's flags.
 */
#include "hooks.h"
#include "line_format.h"

#include "call_chain.h"
#include "event_batch.h"

#include "conn_output.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *len);

static LOOP_PATH int accepted(int listen_fd, int fd)
{
	/* Detach may have begun while the accept waited. */
	if (fd >= 0 && __atomic_load_n(&shim.active, __ATOMIC_ACQUIRE)) {
		int saved = errno;
		conn_open(fd);
		if (unlikely(__atomic_load_n(&shim.attached, __ATOMIC_ACQUIRE)) ||
		    unlikely(!__atomic_load_n(&shim.active, __ATOMIC_ACQUIRE)))
			attach_conn_opened(fd);
		if (unlikely(thread_ctx.batch.listener))
			batch_accepted(listen_fd, fd);
		errno_restore(saved);
	}
	return fd;
}

/* A process that listens serves: it answers the AVX2 question before it
 * forks children (line_format_prepare), and the event-loop rules will want
 * libunwind (call_chain_wanted: loaded at its first event loop's wait or
 * first thread, while it has one thread). */
EXPORT int listen(int s, int backlog)
{
	int (*fn)(int, int) = REAL(listen);
	if (unlikely(!fn))
		return (int)syscall(SYS_listen, s, backlog);
	int r = fn(s, backlog);
	if (r != 0 || !shim.active)
		return r;
	line_format_prepare();
	if (shim.config.event_stacks && !atomic_load_explicit(&process.threaded, memory_order_relaxed))
		call_chain_wanted();
	return r;
}

EXPORT LOOP_PATH int accept(int s, struct sockaddr *addr, socklen_t *len)
{
	int (*fn)(int, struct sockaddr *, socklen_t *) = REAL(accept);
	if (unlikely(!fn))
		return (int)syscall(SYS_accept, s, addr, len);
	if (!shim.active)
		return fn(s, addr, len);
	before_blocking();
	ctx_boundary();
	return accepted(s, fn(s, addr, len));
}

EXPORT LOOP_PATH int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
	int (*fn)(int, struct sockaddr *, socklen_t *, int) = REAL(accept4);
	if (unlikely(!fn))
		return (int)syscall(SYS_accept4, s, addr, len, flags);
	if (!shim.active)
		return fn(s, addr, len, flags);
	before_blocking();
	ctx_boundary();
	return accepted(s, fn(s, addr, len, flags));
}

/* A connection shut down for writing answers no more requests
 * (conn_write_shut). FORK_PATH: a busybox httpd child shuts down its
 * connection once it answered. */
EXPORT FORK_PATH int shutdown(int fd, int how)
{
	int (*fn)(int, int) = REAL(shutdown);
	if (unlikely(!fn))
		return (int)syscall(SYS_shutdown, fd, how);
	int r = fn(fd, how);
	if (r != 0 || how == SHUT_RD || !shim.active)
		return r;
	int saved = errno;
	conn_write_shut(fd);
	errno = saved;
	return r;
}

/* A TCP connection the process opens is an outbound connection (its HTTP
 * requests get the trace); a datagram socket connected anywhere but the
 * syslog socket stops being a syslog socket. */
EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int (*fn)(int, const struct sockaddr *, socklen_t) = REAL(connect);
	if (unlikely(!fn))
		return (int)syscall(SYS_connect, fd, addr, len);
	int r = fn(fd, addr, len);
	if (!shim.active)
		return r;
	int saved = errno;
	syslog_connected(fd, addr, len);
	if (r == 0 || saved == EINPROGRESS)
		client_connected(fd, addr);
	errno = saved;
	return r;
}

/* ---- receiving --------------------------------------------------------- */

static FORK_PATH __attribute__((noinline)) ssize_t recv_slow(int fd, void *buf, size_t n, int flags)
{
	ssize_t (*fn)(int, void *, size_t, int) = REAL(recv);
	if (unlikely(!fn))
		return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, buf, n, flags);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n, flags);
	conn_read_done(fd, generation, buf, NULL, n, r, flags);
	return r;
}

EXPORT FORK_PATH ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (likely(real.recv != NULL) && untracked(fd, READ_CARE))
		return real.recv(fd, buf, n, flags);
	return recv_slow(fd, buf, n, flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	ssize_t (*fn)(int, void *, size_t, size_t, int) = REAL(__recv_chk);
	if (unlikely(!fn))
		return recv(fd, buf, n, flags);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, buf, n, buflen, flags);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n, buflen, flags);
	conn_read_done(fd, generation, buf, NULL, n, r, flags);
	return r;
}

static __attribute__((noinline)) ssize_t recvfrom_slow(int fd, void *buf, size_t n, int flags,
							struct sockaddr *addr, socklen_t *len)
{
	ssize_t (*fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *) = REAL(recvfrom);
	if (unlikely(!fn))
		return syscall(SYS_recvfrom, fd, buf, n, flags, addr, len);
	adopt_pending(fd);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io(fd);
		return fn(fd, buf, n, flags, addr, len);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n, flags, addr, len);
	conn_read_done(fd, generation, buf, NULL, n, r, flags);
	return r;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			socklen_t *len)
{
	if (likely(real.recvfrom != NULL) && untracked(fd, READ_CARE))
		return real.recvfrom(fd, buf, n, flags, addr, len);
	return recvfrom_slow(fd, buf, n, flags, addr, len);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *addr, socklen_t *len)
{
	ssize_t (*fn)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *) =
		REAL(__recvfrom_chk);
	if (unlikely(!fn))
		return recvfrom(fd, buf, n, flags, addr, len);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, buf, n, buflen, flags, addr, len);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n, buflen, flags, addr, len);
	conn_read_done(fd, generation, buf, NULL, n, r, flags);
	return r;
}

static LOOP_PATH __attribute__((noinline)) ssize_t
recvmsg_slow(int fd, struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, struct msghdr *, int) = REAL(recvmsg);
	if (unlikely(!fn))
		return syscall(SYS_recvmsg, fd, msg, flags);
	adopt_pending(fd);
	if (likely(!(fd_class(fd) & FD_CONN)) || !msg) {
		note_other_io(fd);
		return fn(fd, msg, flags);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, msg, flags);
	conn_read_done(fd, generation, NULL, msg->msg_iov, msg->msg_iovlen, r, flags);
	return r;
}

EXPORT LOOP_PATH ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (likely(real.recvmsg != NULL) && untracked(fd, READ_CARE))
		return real.recvmsg(fd, msg, flags);
	return recvmsg_slow(fd, msg, flags);
}

/* ---- sending ----------------------------------------------------------- */

/* In the send family, lines sent on a log descriptor are enriched only on a
 * stream socket (is_stream_socket), where send is write with flags; anything
 * else (not a socket, a datagram socket where each send is one message) goes
 * to libc as it came. */
static FORK_PATH __attribute__((noinline)) ssize_t
send_slow(int fd, const void *buf, size_t n, int flags)
{
	ssize_t (*fn)(int, const void *, size_t, int) = REAL(send);
	if (unlikely(!fn))
		return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0) && !adopted_now(fd)) {
		note_other_io(fd);
		return fn(fd, buf, n, flags);
	}
	if (cls & FD_SYSLOG)
		return syslog_datagram(fd, buf, n, flags, NULL, 0);
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		if (!log_path_ok(&iov, 1) || !is_stream_socket(fd))
			return fn(fd, buf, n, flags);
		return log_path(&sink, &iov, 1);
	}
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return client_output(fd, &iov, 1, flags, true, NULL);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = conn_output(fd, &iov, 1, flags, true, NULL);
	conn_write_done(fd, generation, r);
	return r;
}

EXPORT FORK_PATH ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if (likely(real.send != NULL) && untracked(fd, WRITE_CARE | FD_SYSLOG))
		return real.send(fd, buf, n, flags);
	return send_slow(fd, buf, n, flags);
}

static __attribute__((noinline)) ssize_t sendto_slow(int fd, const void *buf, size_t n, int flags,
						      const struct sockaddr *addr, socklen_t len)
{
	ssize_t (*fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) =
		REAL(sendto);
	if (unlikely(!fn))
		return syscall(SYS_sendto, fd, buf, n, flags, addr, len);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0) && !adopted_now(fd)) {
		note_other_io(fd);
		return fn(fd, buf, n, flags, addr, len);
	}
	if (cls & FD_SYSLOG)
		return syslog_datagram(fd, buf, n, flags, addr, len);
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		if (addr || !log_path_ok(&iov, 1) || !is_stream_socket(fd))
			return fn(fd, buf, n, flags, addr, len);
		return log_path(&sink, &iov, 1);
	}
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	struct msghdr m = {.msg_name = (void *)addr, .msg_namelen = len};
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return client_output(fd, &iov, 1, flags, true, &m);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = conn_output(fd, &iov, 1, flags, true, &m);
	conn_write_done(fd, generation, r);
	return r;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
		      const struct sockaddr *addr, socklen_t len)
{
	if (likely(real.sendto != NULL) && untracked(fd, WRITE_CARE | FD_SYSLOG))
		return real.sendto(fd, buf, n, flags, addr, len);
	return sendto_slow(fd, buf, n, flags, addr, len);
}

static __attribute__((noinline)) ssize_t sendmsg_slow(int fd, const struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, const struct msghdr *, int) = REAL(sendmsg);
	if (unlikely(!fn))
		return syscall(SYS_sendmsg, fd, msg, flags);
	uint8_t cls = fd_class(fd);
	if ((likely(cls == 0) && !adopted_now(fd)) || !msg) {
		note_other_io(fd);
		return fn(fd, msg, flags);
	}
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		if (msg->msg_name || msg->msg_controllen || msg->msg_iovlen > IOV_MAX ||
		    !log_path_ok(msg->msg_iov, (int)msg->msg_iovlen) || !is_stream_socket(fd))
			return fn(fd, msg, flags);
		return log_path(&sink, msg->msg_iov, (int)msg->msg_iovlen);
	}
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return msg->msg_iovlen <= IOV_MAX
			       ? client_output(fd, msg->msg_iov, (int)msg->msg_iovlen, flags, true, msg)
			       : fn(fd, msg, flags);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = msg->msg_iovlen <= IOV_MAX
			    ? conn_output(fd, msg->msg_iov, (int)msg->msg_iovlen, flags, true, msg)
			    : fn(fd, msg, flags);
	conn_write_done(fd, generation, r);
	return r;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (likely(real.sendmsg != NULL) && untracked(fd, WRITE_CARE))
		return real.sendmsg(fd, msg, flags);
	return sendmsg_slow(fd, msg, flags);
}

/* What unseen_output_begin says when fd is no connection of the shim's
 * (call libc), or when the header bytes owed on it failed (return -1,
 * errno says); on a connection it gives its generation, 0-255. */
#define UNSEEN_PASS (-1)
#define UNSEEN_REFUSED (-2)

/* Before a call that puts bytes on fd unseen (a response body, as
 * sendfile's): on a connection, its generation (conn_io_begin) once the
 * header bytes owed went first, then call libc and unseen_output_done; on
 * a log, after the lines the shim has for it (log_flush_fd_plain). */
static int unseen_output_begin(int fd)
{
	uint8_t cls = fd_class(fd);
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return client_before_sendfile(fd) ? UNSEEN_PASS : UNSEEN_REFUSED;
	}
	if (likely(!(cls & FD_CONN))) {
		if (unlikely(cls & FD_LOG))
			log_flush_fd_plain(fd);
		note_other_io(fd);
		return UNSEEN_PASS;
	}
	uint8_t generation = conn_io_begin(fd);
	return conn_output_before_sendfile(fd) ? generation : UNSEEN_REFUSED;
}

/* After it put r bytes on connection fd: they are skipped as a response's
 * body (not one: the response stream is lost for insertion). */
static void unseen_output_done(int fd, uint8_t generation, ssize_t r)
{
	if (likely(conn_generation(fd) == generation))
		conn_output_sendfile_done(fd, r);
	conn_write_done(fd, generation, r);
}

/* A response body sent from a file still marks the response as begun
 * (unseen_output_begin and unseen_output_done's steps, written out: the
 * helpers inlined here grow FORK_PATH's window by 51-76 bytes). */
static FORK_PATH ssize_t sendfile_common(ssize_t (*fn)(int, int, off_t *, size_t), int out, int in,
					 off_t *off, size_t count)
{
	uint8_t cls = fd_class(out);
	if (cls & FD_CLIENT) {
		note_client_io(out);
		return client_before_sendfile(out) ? fn(out, in, off, count) : -1;
	}
	if (likely(!(cls & FD_CONN))) {
		if (unlikely(cls & FD_LOG))
			log_flush_fd_plain(out);
		note_other_io(out);
		return fn(out, in, off, count);
	}
	uint8_t generation = conn_io_begin(out);
	if (!conn_output_before_sendfile(out))
		return -1;
	ssize_t r = fn(out, in, off, count);
	if (likely(conn_generation(out) == generation))
		conn_output_sendfile_done(out, r);
	conn_write_done(out, generation, r);
	return r;
}

EXPORT FORK_PATH ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	ssize_t (*fn)(int, int, off_t *, size_t) = REAL(sendfile);
	if (unlikely(!fn))
		return syscall(SYS_sendfile, out, in, off, count);
	return sendfile_common(fn, out, in, off, count);
}

EXPORT FORK_PATH ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	ssize_t (*fn)(int, int, off_t *, size_t) = REAL(sendfile64);
	if (unlikely(!fn))
		return syscall(SYS_sendfile, out, in, off, count);
	return sendfile_common(fn, out, in, off, count);
}

/* splice moves a socket's bytes through a pipe, unseen. Bytes it takes from
 * a connection are consumed unseen, as with MSG_TRUNC: the stream is lost
 * for attribution (its parser, still skipping a body it never saw, would
 * take the next request's head for the rest of that body, and give that
 * request's lines and response the previous request's id). Bytes it puts on
 * a connection are a response's body, as sendfile's are. */
EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned flags)
{
	ssize_t (*fn)(int, loff_t *, int, loff_t *, size_t, unsigned) = REAL(splice);
	if (unlikely(!fn))
		return syscall(SYS_splice, in, off_in, out, off_out, len, flags);
	adopt_pending(in);
	if (fd_class(in) & FD_CONN) {
		uint8_t generation = conn_io_begin(in);
		ssize_t r = fn(in, off_in, out, off_out, len, flags);
		conn_read_done(in, generation, NULL, NULL, 0, r, MSG_TRUNC);
		return r;
	}
	int generation = unseen_output_begin(out);
	if (generation < 0)
		return generation == UNSEEN_PASS ? fn(in, off_in, out, off_out, len, flags) : -1;
	ssize_t r = fn(in, off_in, out, off_out, len, flags);
	unseen_output_done(out, generation, r);
	return r;
}

/* The bytes of the first r messages of vec; r itself when below 1 (an
 * error, or no message). */
static ssize_t mmsg_bytes(const struct mmsghdr *vec, int r)
{
	ssize_t bytes = r;
	if (r > 0)
		for (int i = bytes = 0; i < r; i++)
			bytes += vec[i].msg_len;
	return bytes;
}

/* recvmmsg on a connection (a stream: each message is a recvmsg's bytes)
 * is not parsed: the bytes it consumed are consumed unseen, as splice's,
 * and lose the stream; peeked ones are not consumed. */
EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags, struct timespec *timeout)
{
	int (*fn)(int, struct mmsghdr *, unsigned, int, struct timespec *) = REAL(recvmmsg);
	if (unlikely(!fn))
		return (int)syscall(SYS_recvmmsg, fd, vec, n, flags, timeout);
	if (untracked(fd, READ_CARE))
		return fn(fd, vec, n, flags, timeout);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, vec, n, flags, timeout);
	}
	uint8_t generation = conn_io_begin(fd);
	int r = fn(fd, vec, n, flags, timeout);
	conn_read_done(fd, generation, NULL, NULL, 0, mmsg_bytes(vec, r), flags | MSG_TRUNC);
	return r;
}

/* sendmmsg's bytes on a connection are not parsed: a response's body, as
 * sendfile's. */
EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags)
{
	int (*fn)(int, struct mmsghdr *, unsigned, int) = REAL(sendmmsg);
	if (unlikely(!fn))
		return (int)syscall(SYS_sendmmsg, fd, vec, n, flags);
	if (untracked(fd, WRITE_CARE))
		return fn(fd, vec, n, flags);
	int generation = unseen_output_begin(fd);
	if (generation < 0)
		return generation == UNSEEN_PASS ? fn(fd, vec, n, flags) : -1;
	int r = fn(fd, vec, n, flags);
	unseen_output_done(fd, generation, mmsg_bytes(vec, r));
	return r;
}

/* pwritev2 (offset -1: the socket's stream, as writev) on a connection is
 * not parsed: its flags (RWF_NOWAIT, ...) have no writev to go to. Its
 * bytes are a response's body, as sendfile's. */
static ssize_t pwritev2_common(ssize_t (*fn)(int, const struct iovec *, int, off_t, int), int fd,
			       const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	if (untracked(fd, WRITE_CARE))
		return fn(fd, iov, iovcnt, off, flags);
	int generation = unseen_output_begin(fd);
	if (generation < 0)
		return generation == UNSEEN_PASS ? fn(fd, iov, iovcnt, off, flags) : -1;
	ssize_t r = fn(fd, iov, iovcnt, off, flags);
	unseen_output_done(fd, generation, r);
	return r;
}

EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	ssize_t (*fn)(int, const struct iovec *, int, off_t, int) = REAL(pwritev2);
	if (unlikely(!fn))
		return syscall(SYS_pwritev2, fd, iov, iovcnt, off, 0, flags);
	return pwritev2_common(fn, fd, iov, iovcnt, off, flags);
}

EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	ssize_t (*fn)(int, const struct iovec *, int, off_t, int) = REAL(pwritev64v2);
	if (unlikely(!fn))
		return syscall(SYS_pwritev2, fd, iov, iovcnt, off, 0, flags);
	return pwritev2_common(fn, fd, iov, iovcnt, off, flags);
}
