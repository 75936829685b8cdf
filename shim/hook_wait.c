/*
 * hook_wait.c - the calls where a thread stops working on one thing and may
 * come back to another: multi-descriptor waits (epoll, poll, select),
 * condition variables, semaphores and sleeps.
 *
 * Each is a boundary for attribution (thread_ctx.h): held lines leave
 * without an id before the thread blocks, so no line waits on a blocking
 * call. A thread certain of its request stays so while it waits on an
 * outbound connection alone (a reply from a service the request called) or
 * on a condition variable. A wait on several descriptors at once also marks
 * the thread as an event loop; its epoll_wait hands out one event per call
 * from the batch the kernel returned (epoll_queue.h), and epoll_ctl's
 * registrations are mapped (event_batch.h, epoll_map.h). Must
 * never change any other argument, nor a result or errno beyond what a
 * wait that found fewer descriptors ready would return.
 */
#include "hooks.h"

#include "epoll_map.h"
#include "epoll_queue.h"
#include "event_batch.h"
#include "resident_return.h"

#include <sys/syscall.h>
#include <unistd.h>

/* glibc's, declared by its headers only under _FORTIFY_SOURCE. */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		const sigset_t *mask, size_t fdslen);

/* A wait on the one connection the thread is serving is part of serving it. */
static bool waits_on_current(int fd)
{
	return thread_ctx.request != 0 && (fd_class(fd) & FD_CONN) &&
	       conn_request(fd) == thread_ctx.request;
}

/* nfds: descriptors waited on (2: two or more); conns: two or more of
 * them are connections. */
static void before_fd_wait(unsigned nfds, int only_fd, bool conns)
{
	before_blocking();
	if (nfds > 1)
		ctx_mark_event_loop(conns);
	if (nfds == 1 && waits_on_current(only_fd))
		ctx_wait_on_conn(only_fd);
	else if (!(nfds == 1 && (fd_class(only_fd) & FD_CLIENT) && ctx_certain_request()))
		ctx_boundary(); /* waiting for a service the request called is part of it */
	if (nfds > 1)
		batch_end(); /* after its lines went out, judged by its state */
	ctx_wait_seen(nfds > 1);
}

/* A wait the hook makes, counted in a process attach loaded the library
 * into (hooked_waits): detach's late drop gives the shim's code back once
 * no thread is inside one, as the rest of the hook runs when it returns. */
static inline bool hooked_wait_begins(void)
{
	if (likely(!shim.loaded_by_attach))
		return false;
	atomic_fetch_add_explicit(&hooked_waits, 1, memory_order_relaxed);
	return true;
}

static inline void hooked_wait_ends(bool counted)
{
	if (counted)
		atomic_fetch_sub_explicit(&hooked_waits, 1, memory_order_release);
}

/* Every epoll wait is an event loop's: at most one event at a time, each
 * one a batch of its own (event_batch.h). fd: the descriptor of ev[0] if
 * the queue knows it, else -1. */
static int epoll_done(int epfd, const struct epoll_event *ev, int n, int fd, void *wait_return)
{
	int saved = errno;
	batch_after_epoll(epfd, ev, n, fd, wait_return);
	errno = saved;
	return n;
}

/* Whether a wait on epfd is one on several connections: a thread already
 * marked as serving several (WATCH_CONNS, which only a new attach clears)
 * stays so whatever it counts, so it is not counted. */
static bool serves_conns(int epfd)
{
	return (thread_ctx.watch & WATCH_CONNS) || epoll_map_connections(epfd) > 1;
}

/* The body of an epoll wait: an event loop's is answered from the events
 * its thread fetched before, if one is still valid, else by the kernel
 * (call, asking for `fetch` events), keeping all but the first it returns
 * (epoll_queue.h, batch_fetch_max). A wait that returns after detach (the
 * program sat in it meanwhile) gives the program all the kernel gave and
 * runs nothing more of the shim but the thread's giving back of its
 * frames (batch_wait_after_detach): no stack walk, no map lookup, whose
 * code and tables detach has given back to the kernel. */
#define QUEUED_WAIT(call)                                                              \
	do {                                                                           \
		int saved = errno;                                                     \
		before_fd_wait(2, -1, serves_conns(epfd));                             \
		struct epoll_queue *q;                                                 \
		bool edge;                                                             \
		int fetch = batch_fetch_max(epfd, max, &q, &edge);                     \
		int kept_fd;                                                           \
		if (q && epoll_queue_take(q, epfd, ev, batch_rearm, &kept_fd)) {       \
			errno = saved;                                                 \
			return epoll_done(epfd, ev, 1, kept_fd,                        \
					  __builtin_return_address(0));                \
		}                                                                      \
		errno = saved;                                                         \
		bool counted = hooked_wait_begins();                                   \
		int n = (call);                                                        \
		hooked_wait_ends(counted);                                             \
		if (unlikely(!__atomic_load_n(&shim.active, __ATOMIC_ACQUIRE))) {      \
			/* detached while it waited: pass it through */               \
			batch_wait_after_detach();                                     \
			return n;                                                      \
		}                                                                      \
		if (q && n > 1) {                                                      \
			saved = errno;                                                 \
			n = epoll_queue_keep(q, epfd, ev, n, edge);                    \
			errno = saved;                                                 \
		}                                                                      \
		return epoll_done(epfd, ev, n, -1, __builtin_return_address(0));       \
	} while (0)

EXPORT LOOP_PATH int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	int (*fn)(int, struct epoll_event *, int, int) = REAL(epoll_wait);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_wait, epfd, ev, max, timeout);
	QUEUED_WAIT(fn(epfd, ev, fetch, timeout));
}

EXPORT LOOP_PATH int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
				 const sigset_t *mask)
{
	int (*fn)(int, struct epoll_event *, int, int, const sigset_t *) = REAL(epoll_pwait);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_pwait, epfd, ev, max, timeout, mask, _NSIG / 8);
	QUEUED_WAIT(fn(epfd, ev, fetch, timeout, mask));
}

EXPORT LOOP_PATH int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
				  const struct timespec *timeout, const sigset_t *mask)
{
	int (*fn)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *) =
		REAL(epoll_pwait2);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_pwait2, epfd, ev, max, timeout, mask, _NSIG / 8);
	QUEUED_WAIT(fn(epfd, ev, fetch, timeout, mask));
}

/* The map from an event's data word back to its fd. */
EXPORT LOOP_PATH int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int (*fn)(int, int, int, struct epoll_event *) = REAL(epoll_ctl);
	if (unlikely(!fn))
		return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
	int r = fn(epfd, op, fd, ev);
	if (r == 0 && own_process()) {
		int saved = errno;
		epoll_map_changed(fd); /* events of fd fetched before are void */
		if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev) {
			if (ev->events & (EPOLLET | EPOLLONESHOT))
				epoll_map_edge_registered(epfd);
			epoll_map_set(epfd, fd, ev->data.u64, ev->events);
			if (fd_class(fd) & FD_CONN)
				ctx_note_parked(conn_fd(fd));
		} else if (op == EPOLL_CTL_DEL) {
			epoll_map_delete(epfd, fd);
			batch_deleted(epfd, fd);
		}
		errno = saved;
	}
	return r;
}

/* A poll or select on several connections returned: nested brackets need
 * its callers (event_batch.h); no batch, though (a pass over every client
 * after each wait serves all of them from one call). */
static int waited(int r, bool conns, void *wait_return)
{
	ctx_wait_returned();
	if (conns && shim.config.event_brackets &&
	    __atomic_load_n(&shim.active, __ATOMIC_ACQUIRE)) {
		int saved = errno;
		batch_after_wait(wait_return);
		errno = saved;
	}
	return r;
}

static bool before_poll(const struct pollfd *fds, nfds_t n)
{
	batch_give_back();
	int saved = errno;
	unsigned active = 0, conns = 0;
	int only = -1;
	for (nfds_t i = 0; i < n && conns < 2; i++) {
		if (fds[i].fd >= 0) {
			active += active < 2;
			conns += (fd_class(fds[i].fd) & FD_CONN) != 0;
			only = fds[i].fd;
		}
	}
	before_fd_wait(active, only, conns > 1);
	errno = saved;
	return conns > 1;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int (*fn)(struct pollfd *, nfds_t, int) = REAL(poll);
	if (unlikely(!fn))
		return (int)syscall(SYS_poll, fds, n, timeout);
	bool conns = before_poll(fds, n);
	bool counted = hooked_wait_begins();
	int ready = fn(fds, n, timeout);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		 const sigset_t *mask)
{
	int (*fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *) = REAL(ppoll);
	if (unlikely(!fn))
		return (int)syscall(SYS_ppoll, fds, n, timeout, mask, _NSIG / 8);
	bool conns = before_poll(fds, n);
	bool counted = hooked_wait_begins();
	int ready = fn(fds, n, timeout, mask);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

/* _FORTIFY_SOURCE turns poll() and ppoll() on an array of known size into
 * these; one whose count overruns the array goes to libc unlooked at (it
 * ends the program). */
EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	int (*fn)(struct pollfd *, nfds_t, int, size_t) = REAL(__poll_chk);
	if (unlikely(!fn))
		return poll(fds, n, timeout);
	if (n > fdslen / sizeof(*fds))
		return fn(fds, n, timeout, fdslen);
	bool conns = before_poll(fds, n);
	bool counted = hooked_wait_begins();
	int ready = fn(fds, n, timeout, fdslen);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		       const sigset_t *mask, size_t fdslen)
{
	int (*fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t) =
		REAL(__ppoll_chk);
	if (unlikely(!fn))
		return ppoll(fds, n, timeout, mask);
	if (n > fdslen / sizeof(*fds))
		return fn(fds, n, timeout, mask, fdslen);
	bool conns = before_poll(fds, n);
	bool counted = hooked_wait_begins();
	int ready = fn(fds, n, timeout, mask, fdslen);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

static bool before_select(int nfds, const fd_set *r, const fd_set *w, const fd_set *e)
{
	batch_give_back();
	int saved = errno;
	unsigned active = 0, conns = 0;
	int only = -1;
	for (int fd = 0; fd < nfds && fd < FD_SETSIZE && conns < 2; fd++) {
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) {
			active += active < 2;
			conns += (fd_class(fd) & FD_CONN) != 0;
			only = fd;
		}
	}
	before_fd_wait(active, only, conns > 1);
	errno = saved;
	return conns > 1;
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	int (*fn)(int, fd_set *, fd_set *, fd_set *, struct timeval *) = REAL(select);
	if (unlikely(!fn))
		return (int)syscall(SYS_select, nfds, r, w, e, timeout);
	bool conns = before_select(nfds, r, w, e);
	bool counted = hooked_wait_begins();
	int ready = fn(nfds, r, w, e, timeout);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
		   const sigset_t *mask)
{
	int (*fn)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *) =
		REAL(pselect);
	if (unlikely(!fn))
		return -1;
	bool conns = before_select(nfds, r, w, e);
	bool counted = hooked_wait_begins();
	int ready = fn(nfds, r, w, e, timeout, mask);
	hooked_wait_ends(counted);
	return waited(ready, conns, __builtin_return_address(0));
}

static void boundary(void)
{
	int saved = errno;
	before_blocking();
	ctx_boundary();
	ctx_wait_seen(false);
	errno = saved;
}

/* A condition wait keeps a thread certain of a request it read itself and
 * has not answered: it waits for something serving it needs (a result, a
 * pool's connection, an interpreter's global lock). A worker waiting for
 * its next job has answered its last one, or got its context from the
 * thread that created it: either way the wait ends it. Semaphores are what
 * interpreters build their locks on: see ctx_lock_wait. */
static void condition_wait(void)
{
	if (!ctx_serves_own_request()) {
		boundary();
	} else {
		before_blocking();
		ctx_wait_seen(false);
	}
}

static void lock_wait(void)
{
	int saved = errno;
	before_blocking();
	ctx_lock_wait();
	ctx_wait_seen(false);
	errno = saved;
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	int (*fn)(pthread_cond_t *, pthread_mutex_t *) = REAL(pthread_cond_wait);
	if (unlikely(!fn))
		return EINVAL;
	condition_wait();
	return fn(c, m);
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
				  const struct timespec *t)
{
	int (*fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *) =
		REAL(pthread_cond_timedwait);
	if (unlikely(!fn))
		return EINVAL;
	condition_wait();
	return fn(c, m, t);
}

EXPORT int sem_wait(sem_t *s)
{
	int (*fn)(sem_t *) = REAL(sem_wait);
	if (unlikely(!fn)) {
		errno = EINVAL;
		return -1;
	}
	lock_wait();
	return fn(s);
}

EXPORT int sem_timedwait(sem_t *s, const struct timespec *t)
{
	int (*fn)(sem_t *, const struct timespec *) = REAL(sem_timedwait);
	if (unlikely(!fn)) {
		errno = EINVAL;
		return -1;
	}
	lock_wait();
	return fn(s, t);
}

EXPORT int sem_clockwait(sem_t *s, clockid_t clock, const struct timespec *t)
{
	int (*fn)(sem_t *, clockid_t, const struct timespec *) = REAL(sem_clockwait);
	if (unlikely(!fn)) {
		errno = EINVAL;
		return -1;
	}
	lock_wait();
	return fn(s, clock, t);
}

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	int (*fn)(const struct timespec *, struct timespec *) = REAL(nanosleep);
	if (unlikely(!fn))
		return (int)syscall(SYS_nanosleep, req, rem);
	boundary();
	return fn(req, rem);
}

EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
			   struct timespec *rem)
{
	int (*fn)(clockid_t, int, const struct timespec *, struct timespec *) =
		REAL(clock_nanosleep);
	if (unlikely(!fn))
		return (int)syscall(SYS_clock_nanosleep, clock, flags, req, rem);
	boundary();
	return fn(clock, flags, req, rem);
}

EXPORT int usleep(useconds_t usec)
{
	int (*fn)(useconds_t) = REAL(usleep);
	if (unlikely(!fn)) {
		struct timespec ts = {usec / 1000000, (long)(usec % 1000000) * 1000};
		return (int)syscall(SYS_nanosleep, &ts, NULL);
	}
	boundary();
	return fn(usec);
}

EXPORT unsigned sleep(unsigned seconds)
{
	unsigned (*fn)(unsigned) = REAL(sleep);
	if (unlikely(!fn)) {
		struct timespec ts = {seconds, 0};
		syscall(SYS_nanosleep, &ts, NULL);
		return 0;
	}
	boundary();
	return fn(seconds);
}
