/*
 * target_mem.c - reading and writing the target's memory through
 * /proc/PID/mem.
 *
 * The descriptor stays usable after the threads are detached, which is
 * how the result of the injected call is polled. Must never write anywhere
 * but the pages reqid-inject mapped (in this run or an earlier one), the
 * dead stack below a stopped thread's red zone, and the borrowed thread's
 * errno when it is put back.
 */
#include "target_mem.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"
#include "preflight.h"

int target_mem_open(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == EACCES || errno == EPERM)
		return fail_permission(pid, "cannot open its memory");
	if (errno == ENOENT || errno == ESRCH)
		return fail("the target exited during attach");
	return fail("cannot open %s: %s", path, strerror(errno));
}

/* len bytes between buf and the target's memory at addr, through /proc/PID/mem. */
static int transfer(int mem, uint64_t addr, char *p, size_t len, bool to_target)
{
	while (len) {
		ssize_t n = to_target ? pwrite(mem, p, len, (off_t)addr)
				      : pread(mem, p, len, (off_t)addr);
		if (n <= 0) {
			if (n == 0)
				errno = ESRCH;
			return -1;
		}
		p += n;
		addr += n;
		len -= n;
	}
	return 0;
}

int target_mem_read(int mem, uint64_t addr, void *buf, size_t len)
{
	return transfer(mem, addr, buf, len, false);
}

int target_mem_write(int mem, uint64_t addr, const void *buf, size_t len)
{
	return transfer(mem, addr, (char *)buf, len, true); /* pwrite only reads it */
}
