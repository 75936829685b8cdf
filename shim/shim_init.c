/*
 * shim_init.c - start-up, shut-down and fork handling for libreqid.so.
 *
 * Resolves the original libc functions, reads the REQID_* settings, seeds the
 * id generator and marks the log descriptors. If anything here fails the
 * shim stays inactive and every hook passes its call through untouched.
 * Must never allocate: it may run inside another library's constructor.
 */
#include "shim_init.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn_table.h"
#include "log_writer.h"
#include "thread_ctx.h"

struct real_functions real;
struct shim_state shim;

static _Atomic bool real_ready;
static __thread bool resolving __attribute__((tls_model("initial-exec")));

#define RESOLVE(into, name) (*(void **)&(into).name = dlsym(RTLD_NEXT, #name))
#define RESOLVE_V(into, name, ver) (*(void **)&(into).name = dlvsym(RTLD_NEXT, #name, ver))

bool real_resolve(void)
{
	if (atomic_load_explicit(&real_ready, memory_order_acquire))
		return true;
	if (resolving)
		return false;
	resolving = true;
	struct real_functions r;
	RESOLVE(r, read);
	RESOLVE(r, readv);
	RESOLVE(r, write);
	RESOLVE(r, writev);
	RESOLVE(r, pwrite);
	RESOLVE(r, pwrite64);
	RESOLVE(r, close);
	RESOLVE(r, dup2);
	RESOLVE(r, dup3);
	RESOLVE(r, close_range);
	RESOLVE(r, closefrom);
	RESOLVE(r, accept);
	RESOLVE(r, accept4);
	RESOLVE(r, recv);
	RESOLVE(r, recvfrom);
	RESOLVE(r, recvmsg);
	RESOLVE(r, send);
	RESOLVE(r, sendto);
	RESOLVE(r, sendmsg);
	RESOLVE(r, sendfile);
	RESOLVE(r, sendfile64);
	RESOLVE(r, epoll_wait);
	RESOLVE(r, epoll_pwait);
	RESOLVE(r, epoll_pwait2);
	RESOLVE(r, poll);
	RESOLVE(r, ppoll);
	RESOLVE(r, select);
	RESOLVE(r, pselect);
	/* The default versions; dlsym could hand back the 2.2.5 compat ones. */
	RESOLVE_V(r, pthread_cond_wait, "GLIBC_2.3.2");
	RESOLVE_V(r, pthread_cond_timedwait, "GLIBC_2.3.2");
	RESOLVE(r, sem_wait);
	RESOLVE(r, sem_timedwait);
	RESOLVE(r, nanosleep);
	RESOLVE(r, clock_nanosleep);
	RESOLVE(r, usleep);
	RESOLVE(r, sleep);
	RESOLVE(r, pthread_create);
	RESOLVE(r, _exit);
	RESOLVE(r, _Exit);
	if (!r.pthread_cond_wait)
		RESOLVE(r, pthread_cond_wait);
	if (!r.pthread_cond_timedwait)
		RESOLVE(r, pthread_cond_timedwait);
	/* epoll_pwait2, close_range and closefrom are newer than some glibcs. */
	bool complete = r.read && r.readv && r.write && r.writev && r.pwrite && r.pwrite64 &&
			r.close && r.dup2 && r.dup3 && r.accept && r.accept4 && r.recv &&
			r.recvfrom && r.recvmsg && r.send && r.sendto && r.sendmsg && r.sendfile &&
			r.sendfile64 && r.epoll_wait && r.epoll_pwait && r.poll && r.ppoll &&
			r.select && r.pselect && r.pthread_cond_wait && r.pthread_cond_timedwait &&
			r.sem_wait && r.sem_timedwait && r.nanosleep && r.clock_nanosleep &&
			r.usleep && r.sleep && r.pthread_create && r._exit && r._Exit;
	if (!complete) {
		/* Nothing sensible to pass calls to: stay out of the way for good,
		 * using raw syscalls where hooks have no original. */
		resolving = false;
		return false;
	}
	real = r;
	atomic_store_explicit(&real_ready, true, memory_order_release);
	resolving = false;
	return true;
}

static void say(const char *a, const char *b)
{
	char line[160];
	size_t n = 0;
	for (const char *s = a; *s && n < sizeof(line) - 2; s++)
		line[n++] = *s;
	for (const char *s = b; s && *s && n < sizeof(line) - 2; s++)
		line[n++] = *s;
	line[n++] = '\n';
	if (real.write)
		real.write(2, line, n);
}

static void seed_ids(void)
{
	uint8_t key[16];
	if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
		/* No entropy yet: pid, time and addresses still separate processes. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
		uint64_t b = (uint64_t)(uintptr_t)&ts ^ ((uint64_t)(uintptr_t)key << 17) ^
			     ((uint64_t)getpid() << 40);
		memcpy(key, &a, 8);
		memcpy(key + 8, &b, 8);
	}
	id_generator_seed(&shim.ids, key);
}

static void after_fork_child(void)
{
	seed_ids();
	log_forget_all();
}

static const char *environment(const char *name)
{
	return getenv(name);
}

__attribute__((constructor)) static void shim_start(void)
{
	if (!real_resolve())
		return;
	unsigned warnings = config_parse(&shim.config, environment);
	for (unsigned bit = 1; bit != 0; bit <<= 1)
		if (warnings & bit)
			say("reqid: ignoring invalid ", config_warning_variable(bit));
	if (shim.config.disabled)
		return;
	header_matcher_init(&shim.matcher, &shim.config);
	shim.style.format = shim.config.format;
	shim.style.field = shim.config.field;
	shim.style.field_len = shim.config.field_len;
	seed_ids();
	if (pthread_atfork(NULL, NULL, after_fork_child) != 0)
		return;
	for (uint8_t i = 0; i < shim.config.log_fd_count; i++) {
		int fd = shim.config.log_fds[i];
		if (fd < FD_TABLE_SIZE && fcntl(fd, F_GETFD) >= 0)
			atomic_fetch_or(&fd_flags[fd], FD_LOG);
	}
	shim.active = true;
}

__attribute__((destructor)) static void shim_stop(void)
{
	if (!shim.active)
		return;
	log_flush_all();
	ctx_boundary();
}

bool config_is_log_fd(int fd)
{
	for (uint8_t i = 0; i < shim.config.log_fd_count; i++)
		if (shim.config.log_fds[i] == fd)
			return true;
	return false;
}
