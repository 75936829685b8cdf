/*
 * hook_io.c - read, readv, write, writev, pwrite, close and the calls that
 * replace or close descriptors (dup2, dup3, close_range, closefrom).
 *
 * Each hook classifies the fd with one table load and passes anything that
 * is neither a connection nor a log descriptor straight to libc. Must never
 * change what the application sees: same bytes on connections, same return
 * values and errno.
 */
#include "hooks.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

static __attribute__((noinline)) ssize_t read_slow(int fd, void *buf, size_t n)
{
	ssize_t (*fn)(int, void *, size_t) = REAL(read);
	if (unlikely(!fn))
		return syscall(SYS_read, fd, buf, n);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io();
		return fn(fd, buf, n);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n);
	conn_read_done(fd, buf, NULL, r, false);
	return r;
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (likely(real.read != NULL) && untracked(fd, FD_CONN))
		return real.read(fd, buf, n);
	return read_slow(fd, buf, n);
}

static __attribute__((noinline)) ssize_t readv_slow(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t (*fn)(int, const struct iovec *, int) = REAL(readv);
	if (unlikely(!fn))
		return syscall(SYS_readv, fd, iov, iovcnt);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io();
		return fn(fd, iov, iovcnt);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, iov, iovcnt);
	conn_read_done(fd, NULL, iov, r, false);
	return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (likely(real.readv != NULL) && untracked(fd, FD_CONN))
		return real.readv(fd, iov, iovcnt);
	return readv_slow(fd, iov, iovcnt);
}

static ssize_t raw_writev(int fd, const struct iovec *iov, int iovcnt)
{
	return real.writev(fd, iov, iovcnt);
}

static __attribute__((noinline)) ssize_t write_slow(int fd, const void *buf, size_t n)
{
	ssize_t (*fn)(int, const void *, size_t) = REAL(write);
	if (unlikely(!fn))
		return syscall(SYS_write, fd, buf, n);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0)) {
		note_other_io();
		return fn(fd, buf, n);
	}
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		return log_path(&sink, &iov, 1, raw_writev);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, buf, n);
	conn_write_done(fd, r);
	return r;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	if (likely(real.write != NULL) && untracked(fd, FD_CONN | FD_LOG))
		return real.write(fd, buf, n);
	return write_slow(fd, buf, n);
}

static __attribute__((noinline)) ssize_t writev_slow(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t (*fn)(int, const struct iovec *, int) = REAL(writev);
	if (unlikely(!fn))
		return syscall(SYS_writev, fd, iov, iovcnt);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0)) {
		note_other_io();
		return fn(fd, iov, iovcnt);
	}
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd};
		if (iovcnt < 0)
			return fn(fd, iov, iovcnt);
		return log_path(&sink, iov, iovcnt, raw_writev);
	}
	ctx_before_conn_io(fd);
	ssize_t r = fn(fd, iov, iovcnt);
	conn_write_done(fd, r);
	return r;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (likely(real.writev != NULL) && untracked(fd, FD_CONN | FD_LOG))
		return real.writev(fd, iov, iovcnt);
	return writev_slow(fd, iov, iovcnt);
}

/* pwrite on a log descriptor is enriched only with O_APPEND, where the
 * kernel ignores the offset; elsewhere offsets would no longer match. */
static ssize_t pwrite_common(ssize_t (*fn)(int, const void *, size_t, off_t), int fd,
			     const void *buf, size_t n, off_t off)
{
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0))
		note_other_io();
	if (!(cls & FD_LOG))
		return fn(fd, buf, n, off);
	int saved = errno;
	int fl = fcntl(fd, F_GETFL);
	errno = saved;
	if (fl < 0 || !(fl & O_APPEND))
		return fn(fd, buf, n, off);
	struct log_sink sink = {.fd = fd};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	return log_path(&sink, &iov, 1, raw_writev);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*fn)(int, const void *, size_t, off_t) = REAL(pwrite);
	if (unlikely(!fn))
		return syscall(SYS_pwrite64, fd, buf, n, off);
	return pwrite_common(fn, fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*fn)(int, const void *, size_t, off_t) = REAL(pwrite64);
	if (unlikely(!fn))
		return syscall(SYS_pwrite64, fd, buf, n, off);
	return pwrite_common(fn, fd, buf, n, off);
}

/* fd is about to stop naming what it named: close its books. */
static void fd_retiring(int fd)
{
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0))
		return;
	int saved = errno;
	if (cls & FD_CONN) {
		ctx_conn_closing(fd);
		conn_forget(fd);
	}
	if (cls & FD_LOG) {
		log_flush_fd(fd);
		atomic_fetch_and(&fd_flags[fd], (uint8_t)~FD_LOG);
	}
	errno = saved;
}

EXPORT int close(int fd)
{
	int (*fn)(int) = REAL(close);
	if (unlikely(!fn))
		return (int)syscall(SYS_close, fd);
	fd_retiring(fd);
	return fn(fd);
}

/* A configured log descriptor number that gets a new file (dup2 of a log
 * file onto 2, say) is a log descriptor again. */
static void fd_replaced(int fd)
{
	if (shim.active && (unsigned)fd < FD_TABLE_SIZE && config_is_log_fd(fd))
		atomic_fetch_or(&fd_flags[fd], FD_LOG);
}

EXPORT int dup2(int oldfd, int newfd)
{
	int (*fn)(int, int) = REAL(dup2);
	if (unlikely(!fn))
		return (int)syscall(SYS_dup2, oldfd, newfd);
	if (oldfd != newfd)
		fd_retiring(newfd);
	int r = fn(oldfd, newfd);
	if (r >= 0 && oldfd != newfd)
		fd_replaced(newfd);
	return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	int (*fn)(int, int, int) = REAL(dup3);
	if (unlikely(!fn))
		return (int)syscall(SYS_dup3, oldfd, newfd, flags);
	if (oldfd != newfd)
		fd_retiring(newfd);
	int r = fn(oldfd, newfd, flags);
	if (r >= 0)
		fd_replaced(newfd);
	return r;
}

static void range_retiring(unsigned first, unsigned last)
{
	if (last >= FD_TABLE_SIZE)
		last = FD_TABLE_SIZE - 1;
	for (unsigned fd = first; fd <= last && first < FD_TABLE_SIZE; fd++)
		fd_retiring((int)fd);
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
