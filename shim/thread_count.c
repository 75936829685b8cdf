/*
 * thread_count.c - how many threads the process has, read from the kernel:
 * whether a dlopen is safe at a wait (call_chain.c), whether threads run
 * besides the injector's at attach (attach.c), whether the thread a vfork
 * child borrows the memory of is the process's only one (thread_ctx.c).
 *
 * Raw system calls on a stack buffer only, so a hook may call it (its
 * caller keeps errno). Must never allocate or lock.
 */
#include "thread_count.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* num_threads of the stat file at path. */
static unsigned count_in(const char *path)
{
	char buf[512];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The name may hold spaces: the fields begin after its last ')'. The
	 * search and the number read here, not by libc's strrchr and strtoul:
	 * each function the library takes from libc costs every process it
	 * starts in some 800 instructions of the loader's. */
	const char *p = NULL;
	for (ssize_t i = n - 1; i >= 0 && !p; i--)
		if (buf[i] == ')')
			p = buf + i;
	for (int field = 2; p && field < 20; field++)
		p = strchr(p + 1, ' ');
	unsigned count = 0;
	for (p = p ? p + 1 : ""; *p >= '0' && *p <= '9'; p++)
		count = count * 10 + (unsigned)(*p - '0');
	return count;
}

unsigned thread_count(void)
{
	return count_in("/proc/self/stat");
}

unsigned thread_count_of(pid_t pid)
{
	/* The path written here, not by snprintf, which is not
	 * async-signal-safe. */
	char path[32] = "/proc/", digits[12];
	int n = 0, at = 6;
	if (pid <= 0)
		return 0;
	for (; pid > 0; pid /= 10)
		digits[n++] = (char)('0' + pid % 10);
	while (n > 0)
		path[at++] = digits[--n];
	memcpy(path + at, "/stat", sizeof("/stat"));
	return count_in(path);
}
