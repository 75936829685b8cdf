/*
 * hook_net.c - accept, the recv family, the send family and sendfile.
 *
 * accept/accept4 make a descriptor a connection; reads on connections feed
 * its request parser; writes on connections mark the response as begun.
 * send on a log descriptor (a socket to a log collector) is enriched like
 * write. Must never alter the bytes of a connection, and never feed the
 * parser bytes the application did not consume (MSG_PEEK).
 */
#include "hooks.h"

#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

static int accepted(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		conn_open(fd);
		errno = saved;
	}
	return fd;
}

EXPORT int accept(int s, struct sockaddr *addr, socklen_t *len)
{
	int (*fn)(int, struct sockaddr *, socklen_t *) = REAL(accept);
	if (unlikely(!fn))
		return (int)syscall(SYS_accept, s, addr, len);
	if (!shim.active)
		return fn(s, addr, len);
	ctx_boundary();
	return accepted(fn(s, addr, len));
}

EXPORT int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
	int (*fn)(int, struct sockaddr *, socklen_t *, int) = REAL(accept4);
	if (unlikely(!fn))
		return (int)syscall(SYS_accept4, s, addr, len, flags);
	if (!shim.active)
		return fn(s, addr, len, flags);
	ctx_boundary();
	return accepted(fn(s, addr, len, flags));
}

static __attribute__((noinline)) ssize_t recv_slow(int fd, void *buf, size_t n, int flags)
{
	ssize_t (*fn)(int, void *, size_t, int) = REAL(recv);
	if (unlikely(!fn))
		return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io();
		return fn(fd, buf, n, flags);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n, flags);
	conn_read_done(fd, buf, NULL, r, flags & MSG_PEEK);
	return r;
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (likely(real.recv != NULL) && untracked(fd, FD_CONN))
		return real.recv(fd, buf, n, flags);
	return recv_slow(fd, buf, n, flags);
}

static __attribute__((noinline)) ssize_t recvfrom_slow(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			socklen_t *len)
{
	ssize_t (*fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *) = REAL(recvfrom);
	if (unlikely(!fn))
		return syscall(SYS_recvfrom, fd, buf, n, flags, addr, len);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io();
		return fn(fd, buf, n, flags, addr, len);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n, flags, addr, len);
	conn_read_done(fd, buf, NULL, r, flags & MSG_PEEK);
	return r;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			socklen_t *len)
{
	if (likely(real.recvfrom != NULL) && untracked(fd, FD_CONN))
		return real.recvfrom(fd, buf, n, flags, addr, len);
	return recvfrom_slow(fd, buf, n, flags, addr, len);
}

static __attribute__((noinline)) ssize_t recvmsg_slow(int fd, struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, struct msghdr *, int) = REAL(recvmsg);
	if (unlikely(!fn))
		return syscall(SYS_recvmsg, fd, msg, flags);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io();
		return fn(fd, msg, flags);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, msg, flags);
	conn_read_done(fd, NULL, msg->msg_iov, r, flags & MSG_PEEK);
	return r;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (likely(real.recvmsg != NULL) && untracked(fd, FD_CONN))
		return real.recvmsg(fd, msg, flags);
	return recvmsg_slow(fd, msg, flags);
}

static ssize_t raw_sendv(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	return real.sendmsg(fd, &m, 0);
}

static __attribute__((noinline)) ssize_t send_slow(int fd, const void *buf, size_t n, int flags)
{
	ssize_t (*fn)(int, const void *, size_t, int) = REAL(send);
	if (unlikely(!fn))
		return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0)) {
		note_other_io();
		return fn(fd, buf, n, flags);
	}
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		return log_path(&sink, &iov, 1, raw_sendv);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n, flags);
	conn_write_done(fd, r);
	return r;
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if (likely(real.send != NULL) && untracked(fd, FD_CONN | FD_LOG))
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
	if (likely(cls == 0)) {
		note_other_io();
		return fn(fd, buf, n, flags, addr, len);
	}
	if ((cls & FD_LOG) && addr == NULL) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		return log_path(&sink, &iov, 1, raw_sendv);
	}
	if (!(cls & FD_CONN))
		return fn(fd, buf, n, flags, addr, len);
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n, flags, addr, len);
	conn_write_done(fd, r);
	return r;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
		      const struct sockaddr *addr, socklen_t len)
{
	if (likely(real.sendto != NULL) && untracked(fd, FD_CONN | FD_LOG))
		return real.sendto(fd, buf, n, flags, addr, len);
	return sendto_slow(fd, buf, n, flags, addr, len);
}

static __attribute__((noinline)) ssize_t sendmsg_slow(int fd, const struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, const struct msghdr *, int) = REAL(sendmsg);
	if (unlikely(!fn))
		return syscall(SYS_sendmsg, fd, msg, flags);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0)) {
		note_other_io();
		return fn(fd, msg, flags);
	}
	if ((cls & FD_LOG) && msg->msg_name == NULL && msg->msg_controllen == 0 &&
	    msg->msg_iovlen <= INT32_MAX) {
		struct log_sink sink = {.fd = fd, .send_flags = flags, .use_send = true};
		return log_path(&sink, msg->msg_iov, (int)msg->msg_iovlen, raw_sendv);
	}
	if (!(cls & FD_CONN))
		return fn(fd, msg, flags);
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, msg, flags);
	conn_write_done(fd, r);
	return r;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (likely(real.sendmsg != NULL) && untracked(fd, FD_CONN | FD_LOG))
		return real.sendmsg(fd, msg, flags);
	return sendmsg_slow(fd, msg, flags);
}

/* A response body sent from a file still marks the response as begun. */
static ssize_t sendfile_common(ssize_t (*fn)(int, int, off_t *, size_t), int out, int in,
			       off_t *off, size_t count)
{
	if (likely(!(fd_class(out) & FD_CONN))) {
		note_other_io();
		return fn(out, in, off, count);
	}
	ctx_before_conn_io(out);
	ssize_t r = fn(out, in, off, count);
	conn_write_done(out, r);
	return r;
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	ssize_t (*fn)(int, int, off_t *, size_t) = REAL(sendfile);
	if (unlikely(!fn))
		return syscall(SYS_sendfile, out, in, off, count);
	return sendfile_common(fn, out, in, off, count);
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	ssize_t (*fn)(int, int, off_t *, size_t) = REAL(sendfile64);
	if (unlikely(!fn))
		return syscall(SYS_sendfile, out, in, off, count);
	return sendfile_common(fn, out, in, off, count);
}
