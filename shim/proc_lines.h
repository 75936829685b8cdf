/*
 * proc_lines.h - a file under /proc read line by line by system calls, for
 * the injector's thread (attach, detach): /proc/self/maps, an epoll
 * instance's fdinfo.
 *
 * Not through libc's stdio: fopen's FILE and its buffer come from the
 * malloc arena of the injector's thread, whose pages they touch stay
 * resident after detach (the thread is gone, its arena stays); and the
 * shim's own calls of open, read and close bind to its hooks (it is linked
 * -Bsymbolic-functions), whose tables detach empties. The buffer is the
 * caller's (on its stack). Never for a hook.
 */
#ifndef REQID_PROC_LINES_H
#define REQID_PROC_LINES_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/syscall.h>

#include "raw_syscall.h"

struct proc_lines {
	int fd;
	size_t len, at;
	char buf[4096];
};

/* Opens path for reading; false if it cannot be opened. */
static inline bool proc_lines_open(struct proc_lines *r, const char *path)
{
	long fd = raw_syscall4(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
	r->fd = fd < 0 ? -1 : (int)fd;
	r->len = r->at = 0;
	return r->fd >= 0;
}

static inline void proc_lines_close(struct proc_lines *r)
{
	raw_syscall3(SYS_close, r->fd, 0, 0);
}

/* The next line into line (without its newline, NUL-terminated, cut to
 * size - 1 bytes), *len its length there; false at the file's end. */
static inline bool proc_lines_next(struct proc_lines *r, char *line, size_t size, size_t *len)
{
	size_t n = 0;
	for (;;) {
		if (r->at == r->len) {
			long got = raw_syscall3(SYS_read, r->fd, (long)r->buf, sizeof(r->buf));
			if (got <= 0) {
				line[n] = '\0';
				*len = n;
				return n > 0;
			}
			r->len = (size_t)got;
			r->at = 0;
		}
		char c = r->buf[r->at++];
		if (c == '\n') {
			line[n] = '\0';
			*len = n;
			return true;
		}
		if (n + 1 < size)
			line[n++] = c;
	}
}

#endif
