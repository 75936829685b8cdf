/*
 * hook_io.c - read, readv, preadv2, write, writev and pwrite (and the
 * fortified __read_chk).
 *
 * Each hook classifies the fd with one table load and passes anything that
 * is neither a connection nor a log descriptor straight to libc. Must never
 * change what the application sees: same bytes on connections, same return
 * values and errno.
 */
#include "hooks.h"

#include "conn_output.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

/* read's slow path, flags fd's as read found them. */
static FORK_PATH __attribute__((noinline)) ssize_t read_slow(int fd, void *buf, size_t n,
							     uint8_t flags)
{
	ssize_t (*fn)(int, void *, size_t) = REAL(read);
	if (unlikely(!fn))
		return syscall(SYS_read, fd, buf, n);
	if (unlikely(flags & FD_ADOPT)) {
		attach_adopt(fd);
		flags = fd_flags(fd);
	}
	if (likely(!(flags & FD_CONN))) {
		note_other_io(fd);
		return fn(fd, buf, n);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n);
	conn_read_done(fd, generation, buf, NULL, n, r, 0);
	return r;
}

EXPORT FORK_PATH ssize_t read(int fd, void *buf, size_t n)
{
	uint8_t flags = fd_flags(fd);
	if (likely(real.read != NULL) && untracked_flags(flags, READ_CARE))
		return real.read(fd, buf, n);
	return read_slow(fd, buf, n, flags);
}

/* _FORTIFY_SOURCE turns read() into a fixed-size buffer into this. */
EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ssize_t (*fn)(int, void *, size_t, size_t) = REAL(__read_chk);
	if (unlikely(!fn))
		return read(fd, buf, n);
	if (untracked(fd, READ_CARE))
		return fn(fd, buf, n, buflen);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, buf, n, buflen);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, buf, n, buflen);
	conn_read_done(fd, generation, buf, NULL, n, r, 0);
	return r;
}

static __attribute__((noinline)) ssize_t readv_slow(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t (*fn)(int, const struct iovec *, int) = REAL(readv);
	if (unlikely(!fn))
		return syscall(SYS_readv, fd, iov, iovcnt);
	adopt_pending(fd);
	if (likely(!(fd_class(fd) & FD_CONN))) {
		note_other_io(fd);
		return fn(fd, iov, iovcnt);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, iov, iovcnt);
	conn_read_done(fd, generation, NULL, iov, (size_t)iovcnt, r, 0);
	return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (likely(real.readv != NULL) && untracked(fd, READ_CARE))
		return real.readv(fd, iov, iovcnt);
	return readv_slow(fd, iov, iovcnt);
}

/* preadv2 reads a socket's stream only at offset -1, as readv (elsewhere
 * it fails, ESPIPE): its bytes on a connection feed the parser as readv's. */
static ssize_t preadv2_common(ssize_t (*fn)(int, const struct iovec *, int, off_t, int), int fd,
			      const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	if (untracked(fd, READ_CARE))
		return fn(fd, iov, iovcnt, off, flags);
	adopt_pending(fd);
	if (!(fd_class(fd) & FD_CONN)) {
		note_other_io(fd);
		return fn(fd, iov, iovcnt, off, flags);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = fn(fd, iov, iovcnt, off, flags);
	conn_read_done(fd, generation, NULL, iov, (size_t)iovcnt, r, 0);
	return r;
}

EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	ssize_t (*fn)(int, const struct iovec *, int, off_t, int) = REAL(preadv2);
	if (unlikely(!fn))
		return syscall(SYS_preadv2, fd, iov, iovcnt, off, 0, flags);
	return preadv2_common(fn, fd, iov, iovcnt, off, flags);
}

EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int iovcnt, off_t off, int flags)
{
	ssize_t (*fn)(int, const struct iovec *, int, off_t, int) = REAL(preadv64v2);
	if (unlikely(!fn))
		return syscall(SYS_preadv2, fd, iov, iovcnt, off, 0, flags);
	return preadv2_common(fn, fd, iov, iovcnt, off, flags);
}

static ssize_t write_slow(int fd, const void *buf, size_t n, uint8_t flags);

/* write on a descriptor of no class, apart: a connection accepted before
 * attach goes round again as one. */
static __attribute__((noinline)) ssize_t write_other(int fd, const void *buf, size_t n)
{
	if (adopted_now(fd))
		return write_slow(fd, buf, n, fd_flags(fd));
	note_other_io(fd);
	return REAL(write)(fd, buf, n);
}

/* write on a connection (cls FD_CONN or FD_CLIENT), apart from write_slow:
 * its registers stay off the log path's. */
static FORK_PATH __attribute__((noinline)) ssize_t
write_conn(int fd, const void *buf, size_t n, uint8_t cls)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return client_output(fd, &iov, 1, 0, false, NULL);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = conn_output(fd, &iov, 1, 0, false, NULL);
	conn_write_done(fd, generation, r);
	return r;
}

/* write's slow path, flags fd's as write found them. */
static FORK_PATH __attribute__((noinline)) ssize_t write_slow(int fd, const void *buf, size_t n,
							      uint8_t flags)
{
	ssize_t (*fn)(int, const void *, size_t) = REAL(write);
	if (unlikely(!fn))
		return syscall(SYS_write, fd, buf, n);
	uint8_t cls = flags & (uint8_t)~FD_ADOPT;
	if (likely(cls == 0))
		return write_other(fd, buf, n);
	if (cls & FD_SYSLOG)
		return syslog_datagram(fd, buf, n, 0, NULL, 0);
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd};
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		if (!log_path_ok(&iov, 1))
			return fn(fd, buf, n);
		return log_path(&sink, &iov, 1);
	}
	return write_conn(fd, buf, n, cls);
}

EXPORT FORK_PATH ssize_t write(int fd, const void *buf, size_t n)
{
	uint8_t flags = fd_flags(fd);
	if (likely(real.write != NULL) && untracked_flags(flags, WRITE_CARE | FD_SYSLOG))
		return real.write(fd, buf, n);
	return write_slow(fd, buf, n, flags);
}

static FORK_PATH __attribute__((noinline)) ssize_t
writev_slow(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t (*fn)(int, const struct iovec *, int) = REAL(writev);
	if (unlikely(!fn))
		return syscall(SYS_writev, fd, iov, iovcnt);
	uint8_t cls = fd_class(fd);
	if (likely(cls == 0) && !adopted_now(fd)) {
		note_other_io(fd);
		return fn(fd, iov, iovcnt);
	}
	if (cls & FD_LOG) {
		struct log_sink sink = {.fd = fd};
		if (!log_path_ok(iov, iovcnt))
			return fn(fd, iov, iovcnt);
		return log_path(&sink, iov, iovcnt);
	}
	if (cls & FD_CLIENT) {
		note_client_io(fd);
		return client_output(fd, iov, iovcnt, 0, false, NULL);
	}
	uint8_t generation = conn_io_begin(fd);
	ssize_t r = conn_output(fd, iov, iovcnt, 0, false, NULL);
	conn_write_done(fd, generation, r);
	return r;
}

EXPORT FORK_PATH ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (likely(real.writev != NULL) && untracked(fd, WRITE_CARE))
		return real.writev(fd, iov, iovcnt);
	return writev_slow(fd, iov, iovcnt);
}

/* pwrite on a log descriptor is enriched only with O_APPEND, where the
 * kernel ignores the offset; elsewhere offsets would no longer match. */
static ssize_t pwrite_common(ssize_t (*fn)(int, const void *, size_t, off_t), int fd,
			     const void *buf, size_t n, off_t off)
{
	uint8_t cls = fd_class(fd);
	if (likely(!(cls & FD_LOG)))
		note_other_io(fd);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	if (!(cls & FD_LOG) || off < 0 || !log_path_ok(&iov, 1))
		return fn(fd, buf, n, off);
	int saved = errno;
	int fl = fcntl(fd, F_GETFL);
	errno = saved;
	if (fl < 0 || !(fl & O_APPEND))
		return fn(fd, buf, n, off);
	struct log_sink sink = {.fd = fd};
	return log_path(&sink, &iov, 1);
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
