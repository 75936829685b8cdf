/*
 * shim_init.h - the shim's process-wide state: settings, the original libc
 * functions behind every hook, and whether the shim is active.
 *
 * Hooks may run before the constructor (from another library's constructor)
 * and while dlsym itself is running; they then pass calls through. Nothing
 * here may allocate on a hook path.
 */
#ifndef REQID_SHIM_INIT_H
#define REQID_SHIM_INIT_H

#include <dlfcn.h>
#include <link.h>
#include <poll.h>
#include <stdio.h>
#include <wchar.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/platform/x86.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "config.h"
#include "http_parser.h"
#include "line_format.h"
#include "request_id.h"

#define HIDDEN __attribute__((visibility("hidden")))
#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Every hooked libc function: X(name, return type, parameter list, needed).
 * A needed one missing from libc keeps the shim inactive; the others
 * (newer than some glibcs) fall back to raw syscalls in their hooks. */
#define REAL_FUNCTIONS(X) \
	X(read, ssize_t, (int, void *, size_t), 1) \
	X(__read_chk, ssize_t, (int, void *, size_t, size_t), 0) \
	X(readv, ssize_t, (int, const struct iovec *, int), 1) \
	X(preadv2, ssize_t, (int, const struct iovec *, int, off_t, int), 0) \
	X(preadv64v2, ssize_t, (int, const struct iovec *, int, off_t, int), 0) \
	X(write, ssize_t, (int, const void *, size_t), 1) \
	X(writev, ssize_t, (int, const struct iovec *, int), 1) \
	X(pwrite, ssize_t, (int, const void *, size_t, off_t), 1) \
	X(pwrite64, ssize_t, (int, const void *, size_t, off_t), 1) \
	X(close, int, (int), 1) \
	X(dup, int, (int), 1) \
	X(dup2, int, (int, int), 1) \
	X(dup3, int, (int, int, int), 1) \
	X(fcntl, int, (int, int, ...), 1) \
	X(fcntl64, int, (int, int, ...), 0) \
	X(close_range, int, (unsigned, unsigned, int), 0) \
	X(closefrom, void, (int), 0) \
	X(open, int, (const char *, int, ...), 1) \
	X(open64, int, (const char *, int, ...), 1) \
	X(__open_2, int, (const char *, int), 0) \
	X(__open64_2, int, (const char *, int), 0) \
	X(openat, int, (int, const char *, int, ...), 1) \
	X(openat64, int, (int, const char *, int, ...), 1) \
	X(__openat_2, int, (int, const char *, int), 0) \
	X(__openat64_2, int, (int, const char *, int), 0) \
	X(creat, int, (const char *, mode_t), 1) \
	X(creat64, int, (const char *, mode_t), 1) \
	X(fopen, FILE *, (const char *, const char *), 1) \
	X(fopen64, FILE *, (const char *, const char *), 1) \
	X(freopen, FILE *, (const char *, const char *, FILE *), 1) \
	X(freopen64, FILE *, (const char *, const char *, FILE *), 1) \
	X(fclose, int, (FILE *), 1) \
	X(popen, FILE *, (const char *, const char *), 1) \
	X(socket, int, (int, int, int), 1) \
	X(socketpair, int, (int, int, int, int *), 1) \
	X(pipe, int, (int *), 1) \
	X(pipe2, int, (int *, int), 1) \
	X(eventfd, int, (unsigned, int), 1) \
	X(epoll_create, int, (int), 1) \
	X(epoll_create1, int, (int), 1) \
	X(timerfd_create, int, (int, int), 1) \
	X(memfd_create, int, (const char *, unsigned), 0) \
	X(connect, int, (int, const struct sockaddr *, socklen_t), 1) \
	X(syslog, void, (int, const char *, ...), 1) \
	X(vsyslog, void, (int, const char *, va_list), 1) \
	X(__vsyslog_chk, void, (int, int, const char *, va_list), 0) \
	X(openlog, void, (const char *, int, int), 1) \
	X(closelog, void, (void), 1) \
	X(error, void, (int, int, const char *, ...), 1) \
	X(error_at_line, void, (int, int, const char *, unsigned, const char *, ...), 1) \
	X(vfprintf, int, (FILE *, const char *, va_list), 1) \
	X(__vfprintf_chk, int, (FILE *, int, const char *, va_list), 0) \
	X(vdprintf, int, (int, const char *, va_list), 1) \
	X(__vdprintf_chk, int, (int, int, const char *, va_list), 0) \
	X(fputs, int, (const char *, FILE *), 1) \
	X(fputs_unlocked, int, (const char *, FILE *), 1) \
	X(puts, int, (const char *), 1) \
	X(fputc, int, (int, FILE *), 1) \
	X(fputc_unlocked, int, (int, FILE *), 1) \
	X(putc, int, (int, FILE *), 1) \
	X(putc_unlocked, int, (int, FILE *), 1) \
	X(_IO_putc, int, (int, FILE *), 0) \
	X(putchar, int, (int), 1) \
	X(putchar_unlocked, int, (int), 1) \
	X(fwrite, size_t, (const void *, size_t, size_t, FILE *), 1) \
	X(fwrite_unlocked, size_t, (const void *, size_t, size_t, FILE *), 1) \
	X(perror, void, (const char *), 1) \
	X(vwarn, void, (const char *, va_list), 1) \
	X(vwarnx, void, (const char *, va_list), 1) \
	X(fputws, int, (const wchar_t *, FILE *), 1) \
	X(fputws_unlocked, int, (const wchar_t *, FILE *), 1) \
	X(fputwc, wint_t, (wchar_t, FILE *), 1) \
	X(fputwc_unlocked, wint_t, (wchar_t, FILE *), 1) \
	X(vfwprintf, int, (FILE *, const wchar_t *, va_list), 1) \
	X(__overflow, int, (FILE *, int), 1) \
	X(funlockfile, void, (FILE *), 1) \
	X(flockfile, void, (FILE *), 1) \
	X(__vfwprintf_chk, int, (FILE *, int, const wchar_t *, va_list), 0) \
	X(fflush, int, (FILE *), 1) \
	X(fflush_unlocked, int, (FILE *), 1) \
	X(listen, int, (int, int), 1) \
	X(accept, int, (int, struct sockaddr *, socklen_t *), 1) \
	X(accept4, int, (int, struct sockaddr *, socklen_t *, int), 1) \
	X(shutdown, int, (int, int), 1) \
	X(recv, ssize_t, (int, void *, size_t, int), 1) \
	X(__recv_chk, ssize_t, (int, void *, size_t, size_t, int), 0) \
	X(recvfrom, ssize_t, (int, void *, size_t, int, struct sockaddr *, socklen_t *), 1) \
	X(__recvfrom_chk, ssize_t, (int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *), 0) \
	X(recvmsg, ssize_t, (int, struct msghdr *, int), 1) \
	X(send, ssize_t, (int, const void *, size_t, int), 1) \
	X(sendto, ssize_t, (int, const void *, size_t, int, const struct sockaddr *, socklen_t), 1) \
	X(sendmsg, ssize_t, (int, const struct msghdr *, int), 1) \
	X(sendfile, ssize_t, (int, int, off_t *, size_t), 1) \
	X(sendfile64, ssize_t, (int, int, off_t *, size_t), 1) \
	X(splice, ssize_t, (int, loff_t *, int, loff_t *, size_t, unsigned), 0) \
	X(recvmmsg, int, (int, struct mmsghdr *, unsigned, int, struct timespec *), 0) \
	X(sendmmsg, int, (int, struct mmsghdr *, unsigned, int), 0) \
	X(pwritev2, ssize_t, (int, const struct iovec *, int, off_t, int), 0) \
	X(pwritev64v2, ssize_t, (int, const struct iovec *, int, off_t, int), 0) \
	X(epoll_wait, int, (int, struct epoll_event *, int, int), 1) \
	X(epoll_pwait, int, (int, struct epoll_event *, int, int, const sigset_t *), 1) \
	X(epoll_pwait2, int, (int, struct epoll_event *, int, const struct timespec *, const sigset_t *), 0) \
	X(epoll_ctl, int, (int, int, int, struct epoll_event *), 1) \
	X(poll, int, (struct pollfd *, nfds_t, int), 1) \
	X(ppoll, int, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *), 1) \
	X(__poll_chk, int, (struct pollfd *, nfds_t, int, size_t), 0) \
	X(__ppoll_chk, int, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, \
			     size_t), 0) \
	X(select, int, (int, fd_set *, fd_set *, fd_set *, struct timeval *), 1) \
	X(pselect, int, (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *), 1) \
	X(pthread_cond_wait, int, (pthread_cond_t *, pthread_mutex_t *), 1) \
	X(pthread_cond_timedwait, int, (pthread_cond_t *, pthread_mutex_t *, const struct timespec *), 1) \
	X(sem_wait, int, (sem_t *), 1) \
	X(sem_timedwait, int, (sem_t *, const struct timespec *), 1) \
	X(sem_clockwait, int, (sem_t *, clockid_t, const struct timespec *), 0) \
	X(nanosleep, int, (const struct timespec *, struct timespec *), 1) \
	X(clock_nanosleep, int, (clockid_t, int, const struct timespec *, struct timespec *), 1) \
	X(usleep, int, (useconds_t), 1) \
	X(sleep, unsigned, (unsigned), 1) \
	X(pthread_create, int, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *), 1) \
	X(_exit, void, (int), 1) \
	X(_Fork, pid_t, (void), 0) \
	X(vfork, pid_t, (void), 0) \
	X(clone, int, (int (*)(void *), void *, int, void *, ...), 0) \
	X(_Exit, void, (int), 1) \
	X(abort, void, (void), 1) \
	X(execve, int, (const char *, char *const[], char *const[]), 1) \
	X(execvpe, int, (const char *, char *const[], char *const[]), 1) \
	X(fexecve, int, (int, char *const[], char *const[]), 1) \
	X(posix_spawn, int, (pid_t *, const char *, const posix_spawn_file_actions_t *, \
			     const posix_spawnattr_t *, char *const[], char *const[]), 1) \
	X(posix_spawnp, int, (pid_t *, const char *, const posix_spawn_file_actions_t *, \
			      const posix_spawnattr_t *, char *const[], char *const[]), 1) \
	X(system, int, (const char *), 1) \
	X(sigaction, int, (int, const struct sigaction *, struct sigaction *), 0) \
	X(signal, __sighandler_t, (int, __sighandler_t), 0) \
	X(sysv_signal, __sighandler_t, (int, __sighandler_t), 0) \
	X(sigset, __sighandler_t, (int, __sighandler_t), 0)

/* libc functions the shim itself calls, on paths that only run once the
 * originals are found (a hook's slow path, system(), attach, detach), taken
 * with them: the loader binding each as an import cost every process some
 * 700 instructions at start, the look-up beside the originals some 250.
 * Call them as LIBC(name). Only functions: a variable may have been copied
 * into the program (a copy relocation), and an indirect function (memcpy,
 * strlen) would be dlsym's to answer. Every one is needed but those of
 * needed 0, which only attach, detach, audit records and err() call: their
 * wrappers fail as the call would (exit by the system call). */
#define LIBC_CALLS(X) \
	X(vsnprintf, int, (char *, size_t, const char *, va_list), 1) \
	X(__vsnprintf_chk, int, (char *, size_t, int, size_t, const char *, va_list), 1) \
	X(vswprintf, int, (wchar_t *, size_t, const wchar_t *, va_list), 1) \
	X(wcsnrtombs, size_t, (char *, const wchar_t **, size_t, size_t, mbstate_t *), 1) \
	X(strerror_r, char *, (int, char *, size_t), 1) \
	X(getcwd, char *, (char *, size_t), 1) \
	X(setlogmask, int, (int), 1) \
	X(dlclose, int, (void *), 1) \
	X(dladdr, int, (const void *, Dl_info *), 1) \
	X(dlinfo, int, (void *, int, void *), 1) \
	X(getauxval, unsigned long, (unsigned long), 1) \
	X(pthread_setcancelstate, int, (int, int *), 1) \
	X(posix_spawnattr_init, int, (posix_spawnattr_t *), 1) \
	X(posix_spawnattr_destroy, int, (posix_spawnattr_t *), 1) \
	X(posix_spawnattr_setflags, int, (posix_spawnattr_t *, short), 1) \
	X(posix_spawnattr_setsigdefault, int, (posix_spawnattr_t *, const sigset_t *), 1) \
	X(posix_spawnattr_setsigmask, int, (posix_spawnattr_t *, const sigset_t *), 1) \
	X(waitpid, pid_t, (pid_t, int *, int), 1) \
	X(kill, int, (pid_t, int), 1) \
	X(raise, int, (int), 1) \
	X(sigemptyset, int, (sigset_t *), 1) \
	X(sigfillset, int, (sigset_t *), 1) \
	X(sigaddset, int, (sigset_t *, int), 1) \
	X(sigismember, int, (const sigset_t *, int), 1) \
	X(sigprocmask, int, (int, const sigset_t *, sigset_t *), 1) \
	LINKED_CALLS(X)

/* LIBC_CALLS the shim's code calls by their own names: the link sends each
 * call to __wrap_NAME (the Makefile's -Wl,--wrap=NAME), which shim_init.c
 * defines as LIBC(NAME) (a system call, or a failure, when the original is
 * not found), so that none is an import the loader binds at every start.
 * pthread_cleanup_push and pop call the three __pthread_ ones (the
 * pthread_create and system() hooks); __x86_get_cpuid_feature_leaf is the
 * loader's, which CPU_FEATURE_ACTIVE calls (line_format.c). dlsym stays an
 * import: it is what finds the others where the tables are not certain. */
#define LINKED_CALLS(X) \
	X(mmap, void *, (void *, size_t, int, int, int, off_t), 1) \
	X(munmap, int, (void *, size_t), 1) \
	X(mremap, void *, (void *, size_t, size_t, int, ...), 1) \
	X(madvise, int, (void *, size_t, int), 1) \
	X(clock_gettime, int, (clockid_t, struct timespec *), 1) \
	X(ioctl, int, (int, unsigned long, ...), 1) \
	X(fileno, int, (FILE *), 1) \
	X(fileno_unlocked, int, (FILE *), 1) \
	X(ferror, int, (FILE *), 1) \
	X(ftrylockfile, int, (FILE *), 1) \
	X(fwide, int, (FILE *, int), 1) \
	X(mbsnrtowcs, size_t, (wchar_t *, const char **, size_t, size_t, mbstate_t *), 1) \
	X(snprintf, int, (char *, size_t, const char *, ...), 1) \
	X(malloc, void *, (size_t), 1) \
	X(free, void, (void *), 1) \
	X(exit, void, (int), 0) \
	X(dlopen, void *, (const char *, int), 0) \
	X(dl_iterate_phdr, int, (int (*)(struct dl_phdr_info *, size_t, void *), void *), 0) \
	X(pthread_self, pthread_t, (void), 0) \
	X(pthread_getattr_np, int, (pthread_t, pthread_attr_t *), 0) \
	X(pthread_attr_getstack, int, (const pthread_attr_t *, void **, size_t *), 0) \
	X(pthread_attr_destroy, int, (pthread_attr_t *), 0) \
	X(__register_atfork, int, (void (*)(void), void (*)(void), void (*)(void), void *), 1) \
	X(__pthread_register_cancel, void, (__pthread_unwind_buf_t *), 1) \
	X(__pthread_unregister_cancel, void, (__pthread_unwind_buf_t *), 1) \
	X(__pthread_unwind_next, void, (__pthread_unwind_buf_t *), 1) \
	X(__x86_get_cpuid_feature_leaf, const struct cpuid_feature *, (unsigned int), 0) \
	X(dlvsym, void *, (void *, const char *, const char *), 0)

#define REAL_FIELD(name, ret, params, needed) ret (*name) params;
struct real_functions {
	REAL_FUNCTIONS(REAL_FIELD)
	LIBC_CALLS(REAL_FIELD)
};
#undef REAL_FIELD

/* State that a fork child resets or exit drains, each bit set by its module
 * the first time it makes some: a process that never did reads and writes
 * none of it at fork or exit (on this VM every page a process first touches
 * costs a fault, 2 us or more). */
enum made_state {
	MADE_SLOTS = 1,        /* line slots (log_writer.c) */
	MADE_BACKLOGS = 2,     /* output backlogs (log_output.c) */
	MADE_EPOLL_LOCK = 4,   /* the epoll map's writer lock (epoll_map.c) */
	MADE_STREAM_MARKS = 8, /* marks of stdio log streams (hook_stdio.c) */
};

/* Whether state of kind bit was ever made (enum made_state). */
#define STATE_WAS_MADE(bit) ((atomic_load_explicit(&process.made, memory_order_relaxed) & (bit)) != 0)

/* Marks that state of kind bit exists (enum made_state). */
#define STATE_MADE(bit)                                                                 \
	do {                                                                            \
		if (!STATE_WAS_MADE(bit))                                               \
			atomic_fetch_or(&process.made, (bit));                             \
	} while (0)

struct shim_state {
	bool active;              /* configured and not disabled */
	bool audit;               /* under `reqid audit`: records go to
				     REQID_AUDIT_DIR (audit_log.h) */
	bool accepted;            /* this process accepted a connection */
	bool parks_requests;      /* a thread wrote the first response to a
				     request another thread had read and been
				     certain of, and had not handed to it
				     (ctx_response_began): no thread is
				     certain of a request from then on */
	bool attached;            /* by `reqid attach`: descriptors may come from
				     calls begun before it (FD_ADOPT) */
	bool detaching;           /* `reqid detach` waits for owed header bytes:
				     responses get no new header */
	bool loaded_by_attach;    /* `reqid attach` loaded the library: set
				     before its hooks first run, never cleared
				     (attached is, by detach, which a hook
				     begun before it may outlive) */
	uint64_t exec_request;    /* the request this program was exec'ed for */
	struct header_matcher matcher;
	struct line_style style;
	struct line_style syslog_style; /* style, with the CEE cookie for json */
	bool traced_fields;       /* lines carry trace_id or span_id */
	struct reqid_config config; /* last: its last page is its log paths */
};

/* What a fork child writes of the process's state: first on the page the
 * FORK_HOT globals and the low descriptors' flags share (fork_hot.h). */
struct process_state {
	_Atomic bool threaded;    /* this process started a thread (fork
				     children begin without) */
	pid_t pid;                /* this process (updated in fork children) */
	struct id_generator ids;  /* reseeded in fork children */
	_Atomic uint32_t made;    /* enum made_state bits (each set once, so
				     a parent writes this page once) */
	uint16_t tid_offset;      /* where glibc's thread descriptor keeps the
				     thread's tid, from the thread pointer;
				     0: unknown (fork_facts_learn) */
	bool fork_facts_learned;  /* tid_offset, learnt at the first fork */
};

extern struct real_functions real HIDDEN;
extern struct shim_state shim HIDDEN;
extern struct process_state process HIDDEN;

/* Reads the settings through lookup and, unless they disable it, makes the
 * shim active: at start (from the environment) or when `reqid attach`
 * loaded it into a running program (attached: nothing in the program's
 * environment is read or changed, and invalid settings refuse instead of
 * being ignored). Returns 0, the config_parse warning bits that refused
 * it, or ACTIVATE_NO_LIBC (libc lacks what the hooks need). */
#define ACTIVATE_NO_LIBC (1u << 31)
unsigned shim_activate(config_lookup lookup, bool attached) HIDDEN;

/* Registers, once, the handler a forked child runs (its pid, its id
 * generator, what it must not inherit); whether it is registered.
 * shim_activate calls it; reqid_attach first, so that every fork from its
 * change on runs it (attach.c). */
bool fork_handler_registered(void) HIDDEN;

/* pthread_atfork for the library's own handlers (unregistered if it were
 * unloaded); whether they are in. */
bool fork_handlers_add(void (*prepare)(void), void (*parent)(void), void (*child)(void)) HIDDEN;

/* Resolves the originals if not done yet: those the shim calls without
 * asking REAL first, or all of them (shim_init.c's real_resolve says
 * when). False while resolution is under way on this thread (dlsym
 * re-entering a hook): pass the call through with a raw syscall then. */
bool real_resolve(void) HIDDEN;

/* real_resolve_NAME() resolves original NAME if it was left for its first
 * use (shim_init.c's real_resolve_slot), all of them before the
 * constructor ran (real_resolve); one function each, of no argument, so
 * that a hook's call of it loads no register on the hook's way (a slot
 * number passed to one shared function cost the request loop 5 to 7
 * instructions a request: write_slow kept the descriptor in a saved
 * register). */
#define REAL_RESOLVER(name, ret, params, needed) bool real_resolve_##name(void) HIDDEN;
REAL_FUNCTIONS(REAL_RESOLVER)
LIBC_CALLS(REAL_RESOLVER)
#undef REAL_RESOLVER
#define REAL_SLOT(fn) (offsetof(struct real_functions, fn) / sizeof(void (*)(void)))

/* Fetches an original, resolving on first use; NULL only during resolution
 * or when libc has no such function. */
#define REAL(fn) (likely(real.fn != NULL) || real_resolve_##fn() ? real.fn : NULL)

/* One of LIBC_CALLS, found as REAL finds an original. */
#define LIBC(fn) REAL(fn)

/* The address of the variable called name that the loader binds libc's
 * own uses of (the program's copy, if it made one: a copy relocation),
 * asked of dlsym at its first use and kept in *cache; NULL if there is
 * none. For variables only a rare path reads (err(), warn(), error()): an
 * import of each cost every process some 660 instructions of the loader's
 * at start. Keeps errno. */
void *loader_variable(void *_Atomic *cache, const char *name) HIDDEN;

/* True if fd is one of the configured log descriptors (REQID_LOG_FDS). */
bool config_is_log_fd(int fd) HIDDEN;

/* Whether fd is a stream socket (errno kept). */
bool is_stream_socket(int fd) HIDDEN FORK_PATH;

/* Whether fd is the server end of a stream connection (TCP, or a unix
 * socket whose own end is named): on a log descriptor number that is a
 * connection handed over by inetd or a CGI parent, not a log, and rewriting
 * it would change the protocol. journald's stdout stream (an unnamed unix
 * socket) stays a log. A fork server's child asks it when it puts a pipe
 * on stdio for a CGI program (FORK_PATH); start-up, only for a log
 * descriptor that is a socket. */
bool is_accepted_socket(int fd) HIDDEN FORK_PATH;

/* fd, marked FD_ADOPT at attach, is about to be read or written: an
 * accepted socket whose every received byte is still queued (the program
 * has read none) becomes a connection from here (conn_join); one the
 * program has read from, only with REQID_JOIN_OPEN, joined mid-stream; the
 * mark goes either way (attach.c). Keeps errno. */
void attach_adopt(int fd) HIDDEN;

/* fd became a connection (accept, adoption) in an attached process, or
 * while detach turned the shim off: if detach may have swept the
 * connections before fd was one, its stream is lost as theirs were. */
void attach_conn_opened(int fd) HIDDEN;

/* Whether thread tid, running when the last attach patched the GOT, may be
 * running the events of a wait it began before: WATCH_UNSEEN if it was
 * running, with WATCH_UNSEEN_BATCH if it was inside a wait on several
 * descriptors; 0 if neither (ctx_start_afresh). */
uint8_t attach_thread_unseen(int32_t tid) HIDDEN;

/* Whether the file open as fd, open for writing, has a path matching a
 * REQID_LOG_PATHS pattern: a log opened before `reqid attach` (hook_fd.c). */
bool open_fd_is_log(int fd) HIDDEN;

/* The path of what fd names (/proc/self/fd), NUL-terminated in
 * path[PATH_MAX]; its length, 0 if there is none. */
size_t fd_path(int fd, char *path) HIDDEN;

/* The identities of the files open as log descriptors now, for
 * REQID_LOG_IDS (see config.h); fds below LOG_IDS_SCAN are looked at. */
#define LOG_IDS_SCAN 1024
#define LOG_IDS_SIZE 1024
size_t current_log_ids(char *buf, size_t size) HIDDEN;

/* Bytes a program put into log streams' buffers directly (inline putc)
 * go through the line machinery: all streams the shim knows at exit, one
 * stream before it is closed (hook_stdio.c). stdio_reclaim_all runs at
 * exit and at fflush(NULL), never for a line; a fork child may run both
 * (FORK_PATH). */
void stdio_reclaim_all(void) HIDDEN FORK_PATH;
void stdio_forget_stream(FILE *f) HIDDEN;

/* The shim has just written into f, holding its lock: what is in the buffer
 * up to here is not the program's direct writing. */
void stdio_note_write(FILE *f) HIDDEN;

/* Installs the handlers that write pending lines on fatal signals left at
 * their default action (hook_process.c), once per process (not in a vfork
 * child: its dispositions are its own, the flag below its parent's). Cold:
 * it runs once, and so lies with the start-up code (text a process first
 * touches costs a page fault per 64 KiB window). */
void install_fatal_signal_flush(void) HIDDEN __attribute__((cold));
extern _Atomic bool fatal_flush_installed HIDDEN;

/* Whether this process made a child that shares its memory, or one no
 * fork handler ran in, which may call the shim's hooks (vfork, or clone
 * without CLONE_THREAD: hook_process.c), or had the library loaded by
 * attach (a vfork child may be running then): only then must a hook ask
 * the kernel whether it runs in such a child (own_process). A fork or
 * _Fork child starts with it false. */
extern _Atomic bool memory_shared HIDDEN;

/* Called where a line may first be left pending (a line slot or an output
 * backlog is taken), just before a process's first thread starts, and
 * before a fork by a process that accepted a connection (its children,
 * one per connection, inherit them instead of each installing): the
 * handlers go in then, not at start, so that a process that never holds a
 * line (most short-lived ones: a CGI script's shell, a `make` recipe) makes
 * none of their twelve system calls, and the program sees its signals'
 * dispositions as it would bare until then; and never later than its
 * first thread, so that no thread of the program's can set a disposition
 * between the shim's look and its set. */
static inline void fatal_signal_flush_ensure(void)
{
	if (__builtin_expect(!atomic_load_explicit(&fatal_flush_installed, memory_order_relaxed), 0))
		install_fatal_signal_flush();
}

/* Puts the default action back where the handler above still is (`reqid
 * detach`). */
void remove_fatal_signal_flush(void) HIDDEN __attribute__((cold));

#endif
