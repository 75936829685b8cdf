/*
 * hooks.h - the few steps every hook shares, kept inline so the path for a
 * descriptor the shim does not care about stays a handful of instructions.
 *
 * Every helper preserves errno. None allocates, blocks or takes a lock.
 */
#ifndef REQID_HOOKS_H
#define REQID_HOOKS_H

#include <errno.h>

#include "conn_table.h"
#include "log_writer.h"
#include "shim_init.h"
#include "thread_ctx.h"

/* True when a hook has nothing to do: fd has none of the flags in care and
 * the thread is no event loop (whose I/O elsewhere ends a bracket). Hooks
 * test this first and tail-call libc, so untracked I/O costs a few loads. */
static inline bool untracked(int fd, uint8_t care)
{
	return likely((fd_class(fd) & care) == 0) && likely(!thread_ctx.event_loop);
}

/* I/O on a descriptor that is neither a connection nor a log: an event-loop
 * thread has switched to other work, so its bracket ends. */
static inline void note_other_io(void)
{
	if (unlikely(thread_ctx.event_loop) && thread_ctx.mode != CTX_NONE)
		ctx_other_io();
}

static inline void conn_read_done(int fd, const void *buf, const struct iovec *iov,
				  ssize_t r, bool peek)
{
	int saved = errno;
	if (r > 0 && !peek)
		conn_on_read(fd, buf, iov, (size_t)r);
	ctx_after_conn_io(fd, false);
	errno = saved;
}

static inline void conn_write_done(int fd, ssize_t r)
{
	int saved = errno;
	if (r > 0)
		conn_on_write(fd);
	ctx_after_conn_io(fd, true);
	errno = saved;
}

/* Enriches a write to a log descriptor; a re-entrant call (a signal handler
 * interrupting the shim) passes its bytes through unchanged. */
static inline ssize_t log_path(const struct log_sink *sink, const struct iovec *iov, int iovcnt,
			       ssize_t (*raw)(int, const struct iovec *, int))
{
	if (thread_ctx.in_shim)
		return raw(sink->fd, iov, iovcnt);
	thread_ctx.in_shim = true;
	ssize_t r = log_writev(sink, iov, iovcnt);
	thread_ctx.in_shim = false;
	return r;
}

#endif
