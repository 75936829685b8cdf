/*
 * hook_process.c - threads and processes: pthread_create carries the
 * creator's request into the new thread; a thread's pending lines go out when
 * it ends (return, pthread_exit or cancellation); every pending line goes out
 * before the process leaves through _exit, _Exit, abort, exec, or a fatal
 * signal whose default action would kill it. Programs exec'ed or spawned
 * (exec family, posix_spawn, system, popen) get the request's id and the
 * current log files in their environment. fork is handled by atfork
 * handlers in shim_init.c, which _Fork's hook runs itself.
 *
 * pthread_create may allocate (it is not async-signal-safe itself), when
 * more threads are being started at once than thread_starts holds; nothing
 * else here may: environments are built in mmap'ed or stack arrays. system()
 * and popen(), not async-signal-safe either, may wait on a lock. If the shim
 * cannot wrap a thread it starts it unwrapped.
 */
#include "hooks.h"

#include "event_batch.h"

#include "large_table.h"
#include "page_bytes.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "signal_frames.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct thread_start {
	void *(*fn)(void *);
	void *arg;
	uint64_t request;
	uint32_t last_conn;
	uint32_t generation;
	int32_t creator; /* the creating thread's tid */
	uint8_t mode;
};

/* Unfinished lines are judged with the context the thread still has; held
 * lines go out without an id, as at any boundary. */
static void thread_ending(void *unused)
{
	(void)unused;
	log_flush_thread();
	ctx_boundary();
	batch_thread_exit();
}

/* What a new thread is started with, from pthread_create until the new
 * thread has copied it: a slot of thread_starts, taken with a bit of
 * used, or (every slot taken) malloc's. A malloc'ed record cost a thread
 * some 1,240 instructions (1,660 the shim added in all): its free in the
 * new thread set up that thread's malloc cache, which the thread's exit
 * then tore down. One page, written only by programs that start threads.
 * A fork between the taking and the copying leaves the slot taken in the
 * child (the thread is not there): one slot fewer, never a wrong record. */
#define THREAD_START_SLOTS 64
static struct {
	_Atomic uint64_t used;
	struct thread_start slot[THREAD_START_SLOTS];
} thread_starts __attribute__((aligned(PAGE_BYTES))) LARGE_TABLE;
_Static_assert(sizeof(thread_starts) <= PAGE_BYTES, "thread_starts: one page");

static struct thread_start *thread_start_take(void)
{
	uint64_t used = atomic_load_explicit(&thread_starts.used, memory_order_relaxed);
	while (~used != 0) {
		unsigned i = (unsigned)__builtin_ctzll(~used);
		if (atomic_compare_exchange_weak_explicit(&thread_starts.used, &used,
							  used | (uint64_t)1 << i,
							  memory_order_acquire, memory_order_relaxed))
			return &thread_starts.slot[i];
	}
	return malloc(sizeof(struct thread_start));
}

static void thread_start_give_back(struct thread_start *start)
{
	size_t i = (size_t)(start - thread_starts.slot);
	if (start >= thread_starts.slot && i < THREAD_START_SLOTS)
		atomic_fetch_and_explicit(&thread_starts.used, ~((uint64_t)1 << i),
					  memory_order_release);
	else
		free(start);
}

static void *thread_trampoline(void *p)
{
	struct thread_start start = *(struct thread_start *)p;
	thread_start_give_back(p);
	ctx_inherit(start.request, start.last_conn, start.mode, start.generation, start.creator);
	void *result;
	pthread_cleanup_push(thread_ending, NULL);
	result = start.fn(start.arg);
	pthread_cleanup_pop(1);
	return result;
}

EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			  void *arg)
{
	int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
		REAL(pthread_create);
	if (unlikely(!create))
		return EAGAIN;
	if (!shim.active)
		return create(t, attr, fn, arg);
	struct thread_start *start = thread_start_take();
	if (!start)
		return create(t, attr, fn, arg);
	start->fn = fn;
	start->arg = arg;
	ctx_current(); /* a context from before a detach is not passed on */
	start->generation = thread_ctx.generation;
	start->request = thread_ctx.request;
	start->last_conn = thread_ctx.last_conn;
	start->mode = thread_ctx.mode;
	start->creator = ctx_tid();
	/* While this thread is still the only one: no thread of the program's
	 * can set a disposition between the shim's look and its own set. */
	batch_give_back();
	fatal_signal_flush_ensure();
	if (!atomic_load_explicit(&process.threaded, memory_order_relaxed))
		call_chain_load_if_wanted(true); /* its event loops may wait in threads */
	atomic_store_explicit(&process.threaded, true, memory_order_relaxed);
	int r = create(t, attr, thread_trampoline, start);
	if (r != 0)
		thread_start_give_back(start);
	return r;
}

/* Writes every pending line, unless this is a vfork child sharing its
 * parent's memory (the lines are the parent's). me: raw_getpid(). */
static void process_ending_as(pid_t me)
{
	if (shim.active && me == process.pid) {
		int saved = errno;
		log_flush_all();
		ctx_boundary();
		errno = saved;
	}
}

static void process_ending(void)
{
	if (shim.active)
		process_ending_as(raw_getpid());
}

/* _exit and _Exit: a process that never made a line slot or an output
 * backlog has no pending line, and reads nothing more (errno, its pid): a
 * fork child that does nothing else maps no more of the library's code or
 * libc's (fork_hot.h). */
static FORK_PATH void process_exiting(void)
{
	if (STATE_WAS_MADE(MADE_SLOTS | MADE_BACKLOGS))
		process_ending();
}

EXPORT FORK_PATH void _exit(int status)
{
	void (*fn)(int) = REAL(_exit);
	process_exiting();
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

EXPORT FORK_PATH_LATE void _Exit(int status)
{
	void (*fn)(int) = REAL(_Exit);
	process_exiting();
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

EXPORT void abort(void)
{
	void (*fn)(void) = REAL(abort);
	process_ending();
	if (fn)
		fn();
	LIBC(raise)(SIGABRT);
	syscall(SYS_exit_group, 127);
	__builtin_unreachable();
}

/* _Fork (glibc 2.34 and later): fork without the atfork handlers, which a
 * program may call in a signal handler. The shim's run around it as for
 * fork (before_fork, after_fork_child), the program's do not: without
 * them its child kept the parent's pid and id counter, and a server that
 * _Fork()s a child per connection gave each child's first request the
 * same id. Both are async-signal-safe; errno stays the call's. In the
 * accept path's window (FORK_PATH's is full), which fork copies to a child
 * as it copies FORK_PATH's (fork_copies_code). */
EXPORT LOOP_PATH pid_t _Fork(void)
{
	pid_t (*fn)(void) = REAL(_Fork);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return -1;
	}
	if (!shim.active)
		return fn();
	int saved = errno;
	before_fork();
	errno = saved;
	pid_t pid = fn();
	if (pid == 0) {
		saved = errno;
		after_fork_child();
		errno = saved;
	}
	return pid;
}

/* vfork and clone: a child that shares the process's memory (its tables)
 * but not its descriptors must not change what the tables say, and only
 * the kernel can tell a hook that runs in one (own_process asks it: four
 * system calls a busybox httpd request). These hooks mark the process as
 * one that made such a child before the child exists; one that never did
 * asks nothing. They are written in assembly: a vfork child returns into
 * the frame of the function that called vfork, which its parent then
 * returns through, so no frame of the shim's may lie between (and clone
 * passes a variadic call's registers and stack on as they came). Each
 * asks a function of the shim for the original, then jumps to it. */
_Atomic bool memory_shared FORK_HOT;

static pid_t vfork_refused(void)
{
	errno = ENOSYS;
	return -1;
}

static int clone_refused(void)
{
	errno = ENOSYS;
	return -1;
}

HIDDEN void *vfork_original(void);
HIDDEN void *clone_original(int flags);

/* Called by the vfork hook below, before the original. */
LOOP_PATH void *vfork_original(void)
{
	atomic_store_explicit(&memory_shared, true, memory_order_relaxed);
	pid_t (*fn)(void) = REAL(vfork);
	return (void *)(fn ? fn : vfork_refused);
}

/* Called by the clone hook below with clone's flags, before the original.
 * A child without CLONE_VM runs no fork handler either: it keeps the
 * parent's pid and a copy of its pending lines, which only a hook that asks
 * the kernel leaves alone (written once, by the parent). */
void *clone_original(int flags)
{
	if (!(flags & CLONE_THREAD))
		atomic_store_explicit(&memory_shared, true, memory_order_relaxed);
	int (*fn)(int (*)(void *), void *, int, void *, ...) = REAL(clone);
	return fn ? (void *)fn : (void *)clone_refused;
}

__asm__(".pushsection .text.hot.reqid_loop_path,\"ax\",@progbits\n"
	".p2align 6\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
	"	subq $8, %rsp\n" /* the call below finds the stack aligned */
	"	call vfork_original\n"
	"	addq $8, %rsp\n"
	"	jmp *%rax\n"
	".size vfork, .-vfork\n"
	".globl __vfork\n"
	".set __vfork, vfork\n"
	".p2align 4\n"
	".globl clone\n"
	".type clone, @function\n"
	"clone:\n"
	"	pushq %rdi\n"
	"	pushq %rsi\n"
	"	pushq %rdx\n"
	"	pushq %rcx\n"
	"	pushq %r8\n"
	"	pushq %r9\n"
	"	pushq %rax\n" /* al: a variadic call's count of vector registers */
	"	movl %edx, %edi\n"
	"	call clone_original\n"
	"	movq %rax, %r11\n"
	"	popq %rax\n"
	"	popq %r9\n"
	"	popq %r8\n"
	"	popq %rcx\n"
	"	popq %rdx\n"
	"	popq %rsi\n"
	"	popq %rdi\n"
	"	jmp *%r11\n"
	".size clone, .-clone\n"
	".globl __clone\n"
	".set __clone, clone\n"
	".popsection\n");

/* ---- exec -------------------------------------------------------------- */

/* An exec'ed program that loads the shim decides which of its descriptors
 * are logs from REQID_LOG_IDS: the files that are log descriptors here now.
 * So a pipe a shell set up to capture a command's output stays data in the
 * command. A program that will not load the shim gets its environment
 * unchanged. */

/* Whether envp preloads this library. strstr's search made with strncmp,
 * which the library takes from libc anyway: each function it takes costs
 * every starting process some 800 instructions of the loader's, and
 * another of libc's (memmem) could be a page a fork child has not mapped. */
static FORK_PATH_LATE bool env_preloads_shim(char *const *envp)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		if (strncmp(envp[i], "LD_PRELOAD=", 11) != 0)
			continue;
		for (const char *p = envp[i] + 11; *p; p++)
			if (*p == 'l' && strncmp(p, "libreqid", 8) == 0)
				return true;
	}
	return false;
}

#define VFORK_ENV_MAX 512
#define ENV_ADDED 4 /* entries fill_env may add */

/* The text of the entries fill_env adds. */
struct env_entries {
	char ids[sizeof(LOG_IDS_VARIABLE) + LOG_IDS_SIZE];
	char request[sizeof(REQUEST_VARIABLE) + REQUEST_ID_MAX + 1];
	char traceparent[sizeof(TRACEPARENT_VARIABLE) + TRACEPARENT_LEN + 1];
	char tracestate[sizeof(TRACESTATE_VARIABLE) + TRACESTATE_MAX + 1];
};

struct exec_env {
	char **env;
	size_t size;
	pid_t pid; /* raw_getpid(), asked once for the exec's two checks; 0: not yet */
	struct env_entries entries;
	char *vfork_env[VFORK_ENV_MAX];
};

static FORK_PATH_LATE bool is_variable(const char *entry, const char *name_eq)
{
	return strncmp(entry, name_eq, strlen(name_eq)) == 0;
}

/* "NAME=" followed by n bytes of value, NUL-terminated, in buf. */
static FORK_PATH_LATE char *env_entry(char *buf, const char *name_eq, size_t name_len, const char *value,
				 size_t n)
{
	memcpy(buf, name_eq, name_len);
	memcpy(buf + name_len, value, n);
	buf[name_len + n] = '\0';
	return buf;
}

static const char ids_name[] = LOG_IDS_VARIABLE "=";

/* A vfork child's REQID_LOG_IDS, in out (size bytes): the value envp gives,
 * and the files on its configured log descriptors that were opened by a
 * log path (a parent that opened one and put it on the child's stderr
 * before exec: its tables, which the child shares, do not say so, but the
 * path says the same in both). False when envp's value is to stay as it
 * is: absent (every configured log descriptor is one in the child), or too
 * long to add to. */
static FORK_PATH_LATE bool vfork_log_ids(char *const *envp, size_t n, char *out, size_t size)
{
	size_t len = 0;
	bool given = false;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!is_variable(envp[i], ids_name))
			continue;
		const char *value = envp[i] + sizeof(ids_name) - 1;
		if ((len = strlen(value)) >= size)
			return false;
		memcpy(out, value, len + 1);
		given = true;
	}
	if (!given)
		return false;
	/* Without log paths no descriptor was opened by one: nothing to add,
	 * and no fstat of each (two system calls per CGI request). */
	for (uint8_t k = 0; shim.config.log_path_count > 0 && k < shim.config.log_fd_count; k++) {
		int fd = shim.config.log_fds[k];
		struct stat st;
		if (raw_fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    !log_ids_contain(out, (uint64_t)st.st_dev, (uint64_t)st.st_ino) &&
		    open_fd_is_log(fd))
			len = log_ids_append(out, len, size, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
	}
	return true;
}

/* envp's n entries into out (room for n + ENV_ADDED + 1): REQID_REQUEST_ID,
 * REQID_TRACEPARENT and REQID_TRACESTATE set for the request the calling
 * thread is certain of (removed if none), and REQID_LOG_IDS: the current
 * log files, or in a vfork child (its descriptors are not what the tables
 * say) vfork_log_ids. The new entries' text lives in e. Outside the fork
 * child's window (FORK_PATH): a child that execs, once, maps its page
 * before the exec drops them all; the window has room for what every
 * child runs for its request. */
static void fill_env(char *const *envp, size_t n, char **out, struct env_entries *e,
		     bool vfork_child)
{
	static const char request_name[] = REQUEST_VARIABLE "=";
	static const char traceparent_name[] = TRACEPARENT_VARIABLE "=";
	static const char tracestate_name[] = TRACESTATE_VARIABLE "=";
	char *ids = e->ids + sizeof(ids_name) - 1;
	size_t ids_size = sizeof(e->ids) - (sizeof(ids_name) - 1);
	bool set_ids = true;
	if (!vfork_child)
		current_log_ids(ids, ids_size);
	else
		set_ids = vfork_log_ids(envp, n, ids, ids_size);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_variable(envp[i], request_name) && !is_variable(envp[i], traceparent_name) &&
		    !is_variable(envp[i], tracestate_name) &&
		    (!set_ids || !is_variable(envp[i], ids_name)))
			out[k++] = envp[i];
	if (set_ids) {
		memcpy(e->ids, ids_name, sizeof(ids_name) - 1);
		out[k++] = e->ids;
	}
	uint64_t request = ctx_certain_request();
	char id[REQUEST_ID_MAX];
	size_t len = request_table_get(request, id);
	if (len > 0)
		out[k++] = env_entry(e->request, request_name, sizeof(request_name) - 1, id, len);
	struct trace_ctx trace;
	if (len > 0 && request_table_trace(request, &process.ids, &trace)) {
		char tp[TRACEPARENT_LEN];
		traceparent_format(&trace, trace.span_id, tp);
		out[k++] = env_entry(e->traceparent, traceparent_name, sizeof(traceparent_name) - 1,
				     tp, sizeof(tp));
		char ts[TRACESTATE_MAX];
		size_t ts_len = request_table_tracestate(request, ts);
		if (ts_len > 0)
			out[k++] = env_entry(e->tracestate, tracestate_name,
					     sizeof(tracestate_name) - 1, ts, ts_len);
	}
	out[k] = NULL;
}

static FORK_PATH_LATE size_t env_count(char *const *envp)
{
	size_t n = 0;
	while (envp[n])
		n++;
	return n;
}

/* The environment to exec with (see fill_env), in an array from mmap (exec
 * must not allocate with malloc; environments can be too large for a
 * thread's stack), or, in a vfork child, in a bounded array on the stack: a
 * mapping made there would stay behind in the parent. Returns envp itself
 * when there is nothing to change or no memory. */
static FORK_PATH_LATE char *const *exec_env(char *const *envp, struct exec_env *e)
{
	e->env = NULL;
	e->pid = 0;
	if (!shim.active || !env_preloads_shim(envp))
		return envp;
	e->pid = raw_getpid();
	bool vfork_child = e->pid != process.pid;
	size_t n = env_count(envp);
	if (vfork_child) {
		if (n + ENV_ADDED + 1 > VFORK_ENV_MAX)
			return envp;
		e->env = e->vfork_env;
	} else {
		e->size = (n + ENV_ADDED + 1) * sizeof(char *);
		e->env = mmap(NULL, e->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
		if (e->env == MAP_FAILED) {
			e->env = NULL;
			return envp;
		}
	}
	fill_env(envp, n, e->env, &e->entries, vfork_child);
	return e->env;
}

/* The exec failed (or the spawn is done): the array goes. */
static FORK_PATH_LATE int exec_failed(struct exec_env *e, int r)
{
	int saved = errno;
	if (e->env && e->env != e->vfork_env)
		munmap(e->env, e->size);
	errno = saved;
	return r;
}

/* process_ending for an exec: with the pid exec_env asked for, if it did
 * (a vfork child that execs, a CGI script's, asked twice). As at _exit, a
 * process that never made a line slot or an output backlog has no line
 * pending: it asks nothing more (its pid), and maps no more of the
 * library's code (the event loop's window) or stack (env exec'ing its
 * program: two faults and a getpid fewer). */
static FORK_PATH_LATE void exec_ending(const struct exec_env *e)
{
	if (!STATE_WAS_MADE(MADE_SLOTS | MADE_BACKLOGS))
		return;
	if (e->pid)
		process_ending_as(e->pid);
	else
		process_ending();
}

EXPORT FORK_PATH_LATE int execve(const char *path, char *const argv[], char *const envp[])
{
	int (*fn)(const char *, char *const[], char *const[]) = REAL(execve);
	struct exec_env e;
	char *const *env = exec_env(envp, &e);
	exec_ending(&e);
	if (unlikely(!fn))
		return exec_failed(&e, (int)syscall(SYS_execve, path, argv, env));
	return exec_failed(&e, fn(path, argv, env));
}

EXPORT FORK_PATH_LATE int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

/* execvpe and execvp are not FORK_PATH (the window is full): they lie with
 * the start-up code (START_PATH), in the window every process maps as it
 * starts (env exec'ing its program faulted a window for execvp alone);
 * execve and execv are in the fork child's window. */
EXPORT START_PATH int execvpe(const char *file, char *const argv[], char *const envp[])
{
	int (*fn)(const char *, char *const[], char *const[]) = REAL(execvpe);
	struct exec_env e;
	char *const *env = exec_env(envp, &e);
	exec_ending(&e);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return exec_failed(&e, -1);
	}
	return exec_failed(&e, fn(file, argv, env));
}

EXPORT START_PATH int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	int (*fn)(int, char *const[], char *const[]) = REAL(fexecve);
	struct exec_env e;
	char *const *env = exec_env(envp, &e);
	exec_ending(&e);
	if (unlikely(!fn)) {
		errno = ENOSYS;
		return exec_failed(&e, -1);
	}
	return exec_failed(&e, fn(fd, argv, env));
}

/* posix_spawn runs exec itself, out of the shim's sight: the environment is
 * fixed up here. */
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int (*fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
		  const posix_spawnattr_t *, char *const[], char *const[]) = REAL(posix_spawn);
	struct exec_env e;
	if (unlikely(!fn))
		return ENOSYS;
	char *const *env = exec_env(envp, &e);
	int r = fn(pid, path, actions, attr, argv, env);
	exec_failed(&e, 0);
	return r;
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int (*fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
		  const posix_spawnattr_t *, char *const[], char *const[]) = REAL(posix_spawnp);
	struct exec_env e;
	if (unlikely(!fn))
		return ENOSYS;
	char *const *env = exec_env(envp, &e);
	int r = fn(pid, file, actions, attr, argv, env);
	exec_failed(&e, 0);
	return r;
}

/* The execl family takes its arguments inline; they are gathered into an
 * array on the stack for the execv family (execl itself may not allocate).
 * Not FORK_PATH: the window is full, and a child that execs pays its one
 * extra fault once, as it leaves. */
static size_t count_args(const char *arg0, va_list ap)
{
	size_t n = 1;
	for (const char *a = arg0; a; a = va_arg(ap, const char *))
		n++;
	return n;
}

static void gather_args(char **argv, const char *arg0, va_list ap)
{
	size_t i = 0;
	for (const char *a = arg0; a; a = va_arg(ap, const char *))
		argv[i++] = (char *)a;
	argv[i] = NULL;
}

EXPORT int execl(const char *path, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	size_t n = count_args(arg0, ap);
	va_end(ap);
	char *argv[n];
	va_start(ap, arg0);
	gather_args(argv, arg0, ap);
	va_end(ap);
	return execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	size_t n = count_args(arg0, ap);
	va_end(ap);
	char *argv[n];
	va_start(ap, arg0);
	gather_args(argv, arg0, ap);
	va_end(ap);
	return execvp(file, argv);
}

/* The least used of them: outside the fork child's window of code, which
 * is full (fork_hot.h); a child that calls it maps one more 64 KiB. */
EXPORT int execle(const char *path, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	size_t n = count_args(arg0, ap);
	va_end(ap);
	char *argv[n];
	va_start(ap, arg0);
	gather_args(argv, arg0, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}

/* ---- fatal signals ----------------------------------------------------- */

/* Signals whose default action ends the process, for which the shim
 * installs a handler if the program left the default in place when it
 * does so (fatal_signal_flush_ensure: when a line may first be pending,
 * just before the first thread starts, or before a server's fork; at
 * attach). The handler writes the pending lines and lets the default
 * action happen (SA_RESETHAND restored it; the signal is raised again). */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM};

static void flush_at_fatal_signal(int sig)
{
	int saved = errno;
	/* The default action next, whoever calls this (a program's handler
	 * that chains to the one it replaced calls it directly). */
	signal(sig, SIG_DFL);
	log_output_dying();
	process_ending();
	LIBC(raise)(sig);
	errno = saved;
}

static void on_fatal_signal(int sig)
{
	signal_run_own(flush_at_fatal_signal, sig);
}

/* Read wherever a line may become pending: on the FORK_HOT page, which
 * those paths read anyway. */
_Atomic bool fatal_flush_installed FORK_HOT;

LOOP_PATH void install_fatal_signal_flush(void)
{
	if (raw_getpid() != process.pid || atomic_exchange(&fatal_flush_installed, true))
		return;
	int saved = errno;
	/* Past the sigaction hook: a program's handler shows as its
	 * trampoline, which is no more SIG_DFL than the handler. One struct
	 * for the query and the install: a fork child's stack may be near
	 * the end of its pages. */
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction sa;
		if (signal_action_direct(fatal_signals[i], NULL, &sa) != 0 ||
		    sa.sa_handler != SIG_DFL || (sa.sa_flags & SA_SIGINFO))
			continue;
		sa.sa_handler = on_fatal_signal;
		sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
		LIBC(sigfillset)(&sa.sa_mask);
		signal_action_direct(fatal_signals[i], &sa, NULL);
	}
	errno = saved;
}

void remove_fatal_signal_flush(void)
{
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old;
		if (sigaction(fatal_signals[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
		    old.sa_handler == on_fatal_signal)
			signal(fatal_signals[i], SIG_DFL);
	}
	atomic_store(&fatal_flush_installed, false);
}

/* ---- system and popen -------------------------------------------------- */

/* glibc's system() and popen() start /bin/sh with environ through an
 * internal posix_spawn out of the shim's sight. So system() is done here as
 * glibc does it (SIGINT and SIGQUIT ignored while any system() runs, SIGCHLD
 * blocked, the shell killed and reaped if the caller is cancelled), spawning
 * with the environment exec_env makes; and popen() runs with environ
 * pointing at such an environment for as long as the spawn takes. */

/* A lock a fork child may find held by a thread that no longer exists
 * there: the child takes it over. */
static _Atomic pid_t process_lock_owner;

static void process_lock(void)
{
	pid_t me = raw_getpid(), owner = 0;
	while (!atomic_compare_exchange_weak(&process_lock_owner, &owner, me)) {
		if (owner != 0 && owner != me &&
		    atomic_compare_exchange_strong(&process_lock_owner, &owner, me))
			break;
		owner = 0;
		raw_sched_yield();
	}
}

static void process_unlock(void)
{
	atomic_store(&process_lock_owner, 0);
}

static int system_users;
static struct sigaction system_intr LARGE_TABLE, system_quit LARGE_TABLE;

static void system_done(void)
{
	process_lock();
	if (--system_users == 0) {
		sigaction(SIGINT, &system_intr, NULL);
		sigaction(SIGQUIT, &system_quit, NULL);
	}
	process_unlock();
}

static void system_cancelled(void *arg)
{
	pid_t pid = *(pid_t *)arg;
	int state;
	LIBC(kill)(pid, SIGKILL);
	LIBC(pthread_setcancelstate)(PTHREAD_CANCEL_DISABLE, &state);
	while (LIBC(waitpid)(pid, NULL, 0) < 0 && errno == EINTR)
		;
	LIBC(pthread_setcancelstate)(state, NULL);
	system_done();
}

static int run_system(const char *line, char *const *env)
{
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	sigset_t omask, reset;
	int status = -1;
	process_lock();
	if (system_users++ == 0) {
		sigaction(SIGINT, &ignore, &system_intr);
		sigaction(SIGQUIT, &ignore, &system_quit);
	}
	process_unlock();
	LIBC(sigaddset)(&ignore.sa_mask, SIGCHLD);
	LIBC(sigprocmask)(SIG_BLOCK, &ignore.sa_mask, &omask);
	LIBC(sigemptyset)(&reset);
	if (system_intr.sa_handler != SIG_IGN)
		LIBC(sigaddset)(&reset, SIGINT);
	if (system_quit.sa_handler != SIG_IGN)
		LIBC(sigaddset)(&reset, SIGQUIT);
	posix_spawnattr_t attr;
	LIBC(posix_spawnattr_init)(&attr);
	LIBC(posix_spawnattr_setsigmask)(&attr, &omask);
	LIBC(posix_spawnattr_setsigdefault)(&attr, &reset);
	LIBC(posix_spawnattr_setflags)(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	char *argv[] = {"sh", "-c", "--", (char *)line, NULL};
	int r = real.posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, env);
	LIBC(posix_spawnattr_destroy)(&attr);
	if (r == 0) {
		pthread_cleanup_push(system_cancelled, &pid);
		while ((r = (int)LIBC(waitpid)(pid, &status, 0)) < 0 && errno == EINTR)
			;
		if (r != pid)
			status = -1;
		pthread_cleanup_pop(0);
		r = 0;
	} else {
		status = W_EXITCODE(127, 0);
	}
	system_done();
	LIBC(sigprocmask)(SIG_SETMASK, &omask, NULL);
	if (r != 0)
		errno = r;
	return status;
}

EXPORT int system(const char *line)
{
	int (*fn)(const char *) = REAL(system);
	if (unlikely(!fn))
		return -1;
	if (!real.posix_spawn || raw_getpid() != process.pid)
		return fn(line);
	struct exec_env e;
	char *const *env = exec_env(environ, &e); /* environ itself: nothing to change */
	if (env == environ)
		return fn(line);
	int status = line ? run_system(line, env) : run_system("exit 0", env) == 0;
	return exec_failed(&e, status);
}

/* environ while a popen() spawns: grown as needed and never unmapped, since
 * another thread's getenv may still be walking an old one. */
static char **spawn_env;
static size_t spawn_env_room;
static struct env_entries spawn_entries LARGE_TABLE;

char **spawn_environ_begin(void)
{
	char **saved = environ;
	if (!shim.active || raw_getpid() != process.pid || !env_preloads_shim(saved))
		return NULL;
	process_lock();
	size_t n = env_count(saved);
	if (n + ENV_ADDED + 1 > spawn_env_room) {
		size_t room = (n + ENV_ADDED + 1) * 2;
		void *p = mmap(NULL, room * sizeof(char *), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			process_unlock();
			return NULL;
		}
		spawn_env = p;
		spawn_env_room = room;
	}
	fill_env(saved, n, spawn_env, &spawn_entries, true);
	environ = spawn_env;
	return saved;
}

void spawn_environ_end(char **saved)
{
	if (!saved)
		return;
	if (environ == spawn_env)
		environ = saved;
	process_unlock();
}

/* The library's ELF header, at the start of its one mapping of code (the
 * link puts the headers, the code and the unwind tables in one segment:
 * shim/layout.ld), and the start of the two windows of code that end that
 * mapping, the event-loop server's and the fork child's
 * (reqid_loop_path_start). */
extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));
extern const char reqid_loop_path_start[] __attribute__((visibility("hidden")));

/* Gives the library's mapping that holds at an anonymous page: the byte at
 * at, written again through /proc/self/mem (mem), as a debugger plants a
 * breakpoint: the kernel copies the page for the write and the mapping's
 * protection never changes (no moment of writable code, no mprotect a
 * policy could refuse or log). A refused write leaves the page as it was. */
static void page_copied(int mem, const char *at)
{
	char byte = *(volatile const char *)at;
	raw_syscall4(SYS_pwrite64, mem, (long)&byte, 1, (long)(uintptr_t)at);
}

/* The code before the last two windows (the headers, start-up, attach, exit
 * and the rest a fork server's child does not run for a request) becomes
 * a mapping of its own first, by a change of a flag no one reads for code
 * (no transparent huge pages for it), and gets no anonymous page, so fork
 * leaves its page entries alone; the windows' mapping gets one, so fork
 * copies theirs. busybox httpd's parent has 80 entries of the library's
 * code mapped: every fork copied them all, and every child's exit dropped
 * them again; 32 now. A fork and exit of a small process (p10 of 3,000,
 * four alternated runs): 103 us with a 96-page mapping of code not
 * copied, 115 us with all 96 entries copied, 108 us split in two with 32
 * copied (a mapping more costs about 1.2 us). Where the kernel refuses the
 * flag the mapping stays one, all of it copied, as before. */
void fork_copies_code(void)
{
	/* openat, as glibc opens: a seccomp filter that allows the program
	 * its opens may kill a process at the legacy open. */
	int mem = (int)raw_syscall4(SYS_openat, AT_FDCWD, (long)"/proc/self/mem", O_RDWR | O_CLOEXEC,
				    0);
	if (mem < 0)
		return;
	uintptr_t start = (uintptr_t)&__ehdr_start, windows = (uintptr_t)reqid_loop_path_start;
	raw_syscall3(SYS_madvise, (long)start, (long)(windows - start), MADV_NOHUGEPAGE);
	page_copied(mem, reqid_loop_path_start);
	raw_syscall3(SYS_close, mem, 0, 0);
}
