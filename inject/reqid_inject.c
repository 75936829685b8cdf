/*
 * reqid_inject.c - make a running process load a library and call one of
 * its functions:
 *
 *	reqid-inject [-v] [-p|-s] PID LIBPATH FUNCTION ARG
 *
 * runs, on a fresh thread of PID, f = dlsym(dlopen(LIBPATH, RTLD_NOW),
 * FUNCTION) and f(copy of ARG), f being int f(const char *), and prints
 * its result on stdout. LIBPATH is opened by the target, so relative to
 * its working directory and search path. On failure prints one
 * "reqid-inject: " line on stderr and exits 1 (2 for a usage error); -v
 * adds a line with the stop times and one with where they went (each
 * step's milliseconds, how many stops were let go for want of a thread
 * to borrow: unsafe-points, and which thread was borrowed for the setup:
 * main or other). -p appends to ARG a line saying which
 * pages of the target's libc and loader were resident before the
 * injection touched them (resident_pages.c), as `reqid attach` wants,
 * and notes in the target (after the stub's code) which top pages of each
 * thread's stack hold data; -s, once FUNCTION returned 0 (`reqid detach`),
 * stops the threads one at a time, each borrowed for one madvise of the
 * pages of its own stack below all it can be using that held none at that
 * note (dead_stack.c): the shim's hooks run deeper frames than the
 * program's own calls.
 *
 * How: when new pages are needed, stops the main thread alone (the others
 * run on: no thread uses them) and borrows it (remote_call.c) for an mmap
 * system call, read+exec: the code and the data are written through
 * /proc/PID/mem, as a debugger plants a breakpoint, so no page is ever
 * writable and executable. Then stops every thread (threads.c), again
 * later while the main thread is inside fork() (in_fork.c) or while no
 * thread is where a call into libc cannot find malloc or the loader
 * half-way (borrow_point.c: inside malloc, in the loader's start-up after
 * an exec), and borrows such a thread, the main one if it is, for one
 * call of the stub's setup (stub.c), which makes
 * new data and stack pages read+write and calls pthread_attr_init,
 * pthread_attr_setstack and pthread_create, errno saved and put back
 * around them: while every thread is stopped the borrowed one is resumed
 * once, as each resume may wait for a CPU. Puts every register back,
 * resumes everything and polls the data block until the fresh thread is
 * done; once that thread has exited, stops the main thread alone again
 * and borrows it for one madvise system call (a system call made from
 * the bytes `syscall; ret` needs no such point), which gives its stack's
 * pages back, and only then marks the pages free for the next injection.
 * Must never run dlopen or the library's code on a borrowed thread, leave
 * a thread stopped or borrowed, or exit by a signal while threads are
 * stopped.
 *
 * The pages, a guard page, the fresh thread's stack, a data block big
 * enough for any arguments and one page of code right after it, are never
 * unmapped (a fresh thread runs the code after it reports done, and the
 * stub's fork handlers, which make forks wait while the library loads, run
 * for the process's life): a later injection into the same process reuses
 * them, so memory does not grow. The stack is the thread's own, not one
 * glibc allocates: glibc keeps an exited thread's stack for its next
 * thread, with the pages at its top (the thread's descriptor and static
 * TLS, the frames dlopen and FUNCTION ran in) resident for the process's
 * life, and never reuses a stack it was given, whose pages go back once
 * the thread is gone (drop_stack).
 * The block's last STUB_HOLD_SIZE bytes are the stub's and are never
 * written here. It finds them in /proc/PID/maps (an
 * anonymous r-xp page holding the stub's bytes after a rw-p block) before
 * stopping the threads, and takes them only if, checked again once the
 * threads are stopped, the block is marked free (the last result was read)
 * and the thread that ran it has exited; else it maps new ones (a block
 * an older reqid-inject wrote, with its struct at the start, never reads
 * as free: its end is zero). Must never
 * rewrite a block a fresh thread or another reqid-inject may still read,
 * nor drop a stack a thread may still run on.
 * FUNCTION must not keep ARG's address: the next injection overwrites it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <unistd.h>

#include "borrow_point.h"
#include "clock.h"
#include "dead_stack.h"
#include "fail.h"
#include "in_fork.h"
#include "preflight.h"
#include "priority.h"
#include "proc_maps.h"
#include "remote_call.h"
#include "resident_pages.h"
#include "stub.h"
#include "target_libc.h"
#include "target_mem.h"
#include "threads.h"

#define STOP_MS 500		/* to stop every thread */
#define FORK_WAIT_MS 2000	/* for a fork in flight to end */
#define STOPPED_MAX_MS 40	/* the other threads' stop, calls included */
#define SLEEP_CHECK_MS 0.5	/* how often a call is checked for sleeping */
#define CALL_MS 2000		/* the same call once the others run again */
#define DONE_MS 5000		/* dlopen and FUNCTION on the fresh thread */
#define EXIT_MS 1000		/* the fresh thread's exit, once done */
#define ARG_LIMIT 65536
#define NAME_LIMIT 1024
/* The data block: room for the thread's attributes (aligned), the three
 * strings, then struct stub_data, then the fork hold, which ends the block
 * (stub.h). The attributes and strings are written right before the
 * struct, so that with short strings the injection touches one page of
 * the block, the one the hold is on: its other pages stay zero, not
 * resident. */
#define DATA_MAX (sizeof(pthread_attr_t) + 16 + PATH_MAX + NAME_LIMIT + ARG_LIMIT + 1 + \
		  sizeof(struct stub_data) + STUB_HOLD_SIZE)
/* The fresh thread's stack, below the data block, with a guard page below
 * it: the size glibc gives a thread under the usual 8 MiB stack limit. */
#define STACK_BYTES ((uint64_t)8 << 20)

struct request {
	pid_t pid;
	const char *path, *name, *arg;
	int mem;
	struct libc_funcs libc;
	struct code_ranges places; /* the loader's code and the program's */
	uint64_t start_stack;	/* where its main thread's stack started, or 0 */
	uint64_t stack, data, code; /* the pages in the target, or 0 */
	uint64_t guard;		/* the guard page below the stack, when mapped this run */
	uint64_t hold;		/* the fork hold of a stub page in the target, or 0 */
	struct stack_note *note; /* -p: the stacks' top pages holding data, or NULL */
};

static struct remote borrowed;	/* holds the extended state: large */
static struct threads threads;

/* Where the time of each stop went, for -v: the main thread's alone to
 * map new pages, the attach's stop, then the main thread's to give the
 * stack back (each .n 0 if there was none; .v NULL). */
static struct {
	double premap_ms;
	struct threads premap;
	double fork_check_ms, map_ms, call_ms;
	int unsafe;		/* stops let go for want of a thread to borrow */
	int borrowed_other;	/* the setup borrowed a thread other than main */
	const char *let_go;	/* why the others were let go before the calls
				 * returned ("asleep", "stopped-40ms"), or NULL */
	struct threads first;
	double again_call_ms;
	struct threads again;
	struct threads stacks;	/* -s: the threads stopped to give stack pages
				 * back (n) and the longest stop */
	size_t stack_pages;	/* the pages of the ranges given back */
} phases;

/* Keeps the numbers of the stop just ended in *into; the list goes. */
static void record_stop(struct threads *into)
{
	*into = threads;
	into->v = NULL;
	free(threads.v);
	memset(&threads, 0, sizeof threads);
}

/* Waits for the call started on the borrowed thread. The other threads
 * are let go, and the call gets more time, as soon as the borrowed thread
 * sleeps (the calls only sleep waiting for a lock, which a stopped thread
 * may hold), or once they have been stopped STOPPED_MAX_MS (a CPU slow to
 * come on a busy machine). */
static int await_call(uint64_t *ret)
{
	double release_at = now_ms() + STOPPED_MAX_MS - threads_stopped_ms(&threads);
	int rc;

	while ((rc = remote_wait(&borrowed, SLEEP_CHECK_MS, ret)) == 1 &&
	       now_ms() < release_at && thread_state(borrowed.tid, borrowed.tid) != 'S')
		;
	if (rc == 1) {
		if (!threads.leader_only)
			phases.let_go = now_ms() < release_at ? "asleep" : "stopped-40ms";
		threads_release(&threads, borrowed.tid);
		rc = remote_wait(&borrowed, CALL_MS, ret);
	}
	return rc == 1 ? remote_abandon(&borrowed) : rc;
}

/* One call of the function at fn on the borrowed thread. */
static int call(const char *name, uint64_t fn, const uint64_t args[6], uint64_t *ret)
{
	return remote_start(&borrowed, name, fn, args) < 0 ? -1 : await_call(ret);
}

/* One system call on the borrowed thread; *ret is its result or -errno. */
static int call_syscall(const struct request *q, const char *name, long nr,
			const uint64_t args[6], uint64_t *ret)
{
	return remote_start_syscall(&borrowed, name, q->libc.syscall_ret, nr, args) < 0 ?
	       -1 : await_call(ret);
}

/* The error number of a system call's result, 0 if it succeeded. */
static int syscall_error(uint64_t ret)
{
	return ret > (uint64_t)-4096 ? (int)-ret : 0;
}

static uint64_t page_up(uint64_t n)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) & ~(page - 1);
}

/* Where struct stub_data lies in the block that starts at data: right
 * before the hold. */
static uint64_t stub_data_at(uint64_t data)
{
	return data + page_up(DATA_MAX) - STUB_HOLD_SIZE - sizeof(struct stub_data);
}

/* Whether the block at data is free: its result was read and its thread
 * has exited. The stub's tid is numbered in the target's pid namespace: in
 * another one than ours the check may err, but the stub no longer touches
 * the block once done, and free comes after done. */
static int block_free(const struct request *q, uint64_t data)
{
	struct stub_data d;

	return target_mem_read(q->mem, stub_data_at(data), &d, sizeof d) == 0 &&
	       d.done == STUB_FREE && thread_exiting(q->pid, d.tid);
}

/* Whether the page at code starts with the stub's bytes. */
static int holds_stub(const struct request *q, uint64_t code)
{
	unsigned char *bytes = malloc(stub_code_size);
	int same;

	same = bytes && target_mem_read(q->mem, code, bytes, stub_code_size) == 0 &&
	       memcmp(bytes, stub_code, stub_code_size) == 0;
	free(bytes);
	return same;
}

/* The stack's size, written in the code page right after the stub's bytes:
 * a page with it has the stack below its data block (one an older
 * reqid-inject mapped has not, and is not reused). */
static const uint64_t stack_mark = STACK_BYTES;

static int stack_below(const struct request *q, uint64_t code)
{
	uint64_t mark;

	return target_mem_read(q->mem, code + stub_code_size, &mark, sizeof mark) == 0 &&
	       mark == stack_mark;
}

/* Where the note of the stacks' top pages holding data lies (-p, -s): in
 * the code page, after the stack's mark; 0 if it does not fit there. */
static uint64_t stack_note_at(uint64_t code)
{
	uint64_t at = code + stub_code_size + sizeof stack_mark;

	at = (at + 7) & ~(uint64_t)7;
	return at + sizeof(struct stack_note) <= code + page_up(stub_code_size + sizeof stack_mark) ?
	       at : 0;
}

/* -s: the newest note of the stub pages in the target (an attach's
 * reqid-inject -p wrote it on the pages it took, which may not be the ones
 * this injection took), into *note; every note found is emptied, so that
 * none is read twice. 0 if there is none. */
static int take_stack_note(const struct request *q, struct stack_note *note)
{
	uint64_t code_size = page_up(stub_code_size + sizeof stack_mark), none = 0;
	struct stack_note found;
	struct maps_reader maps;
	struct maps_entry e;
	int taken = 0;

	if (maps_open(&maps, q->pid) < 0)
		return 0;
	while (maps_next(&maps, &e)) {
		uint64_t at = stack_note_at(e.start);
		if (e.inode != 0 || strcmp(e.perms, "r-xp") != 0 || e.end - e.start != code_size ||
		    !at || !holds_stub(q, e.start) ||
		    target_mem_read(q->mem, at, &found, sizeof found) < 0 || found.count == 0 ||
		    target_mem_write(q->mem, at, &none, sizeof none) < 0)
			continue;
		if (!taken || found.made > note->made)
			*note = found;
		taken = 1;
	}
	maps_close(&maps);
	return taken;
}

/* Looks for the pages of a previous injection that are free; sets q->data
 * and q->code to the first found. */
static void find_pages(struct request *q)
{
	uint64_t data_size = page_up(DATA_MAX);
	uint64_t code_size = page_up(stub_code_size + sizeof stack_mark);
	uint64_t rw_start = 0, rw_end = 0;
	struct maps_reader maps;
	struct maps_entry e;

	if (maps_open(&maps, q->pid) < 0)
		return;
	while (maps_next(&maps, &e)) {
		if (e.inode == 0 && strcmp(e.perms, "r-xp") == 0 &&
		    e.end - e.start == code_size && rw_end == e.start &&
		    e.start - rw_start >= data_size && holds_stub(q, e.start)) {
			if (!q->hold)
				q->hold = e.start - STUB_HOLD_SIZE;
			if (e.start - rw_start >= data_size + STACK_BYTES &&
			    stack_below(q, e.start) && block_free(q, e.start - data_size)) {
				q->data = e.start - data_size;
				q->stack = q->data - STACK_BYTES;
				q->code = e.start;
				break;
			}
		}
		rw_start = e.start;
		rw_end = e.inode == 0 && strcmp(e.perms, "rw-p") == 0 ? e.end : 0;
	}
	maps_close(&maps);
}

/* Whether the stopped target is in the middle of a fork, where no thread
 * may be started: a fork child there has not yet had glibc reset its
 * thread count to one, so a thread started now is counted, uncounted by
 * that reset, and at its exit taken for the process's last thread: glibc
 * calls exit(0) and the child dies with its connection. Either of two
 * signs is enough. The stub's fork hold counts a fork from its prepare
 * handler to its parent or child handler, which run after the reset, but
 * only once a stub page is there (an earlier injection, or the parent's).
 * The main thread's first frames in fork or _Fork (in_fork.c) need no
 * earlier injection. */
static int fork_in_flight(const struct request *q)
{
	struct stub_hold hold;

	if (q->hold && target_mem_read(q->mem, q->hold, &hold, sizeof hold) == 0 &&
	    hold.forking > 0)
		return 1;
	return thread_in_fork(q->pid, &q->libc, q->mem);
}

/* How much of a thread's stack above its stack pointer is looked at for a
 * signal frame: handlers run shallow, and a page of the stack read is a
 * system call. */
#define SIGNAL_SCAN_PAGES 32

/* Whether stopped thread tid's stack, from rsp up to SIGNAL_SCAN_PAGES
 * pages, holds a signal frame. The scan stays inside the mapping that
 * holds rsp, and on the main thread below where the kernel started its
 * stack (argc; above lie its arguments and environment): a read through
 * /proc/PID/mem faults in what it touches, and the target keeps it. */
static int in_signal_handler(const struct request *q, pid_t tid, uint64_t rsp)
{
	uint64_t words[4096 / sizeof(uint64_t)];
	uint64_t at = rsp & ~(uint64_t)7;
	uint64_t end = at + SIGNAL_SCAN_PAGES * 4096ull, top;

	if (!q->libc.restore_rt)
		return 0;
	if (tid == q->pid && q->start_stack && q->start_stack < end)
		end = q->start_stack;
	if ((top = proc_mapping_end(q->pid, at)) < end)
		end = top;
	while (at < end) {
		uint64_t page_end = (at | 4095) + 1;
		size_t n = (size_t)((page_end < end ? page_end : end) - at) / sizeof(uint64_t);

		if (target_mem_read(q->mem, at, words, n * sizeof(uint64_t)) < 0)
			return 0;
		if (stack_in_signal_handler(words, n, q->libc.restore_rt))
			return 1;
		at += n * sizeof(uint64_t);
	}
	return 0;
}

/* Where stopped thread tid is (borrow_point.c, and no signal handler on
 * its stack), or -1 after fail(). */
static int thread_point(const struct request *q, pid_t tid, uint64_t first_frame)
{
	struct user_regs_struct regs;
	int point;

	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return tid == q->pid ? fail("the target exited during attach") : BORROW_IN_LIBRARY;
	point = (int)borrow_point(&regs, first_frame, &q->places);
	if (point == BORROW_SAFE && in_signal_handler(q, tid, regs.rsp))
		point = BORROW_IN_SIGNAL_HANDLER;
	return point;
}

/* Looks for a stopped thread that may be borrowed, the main thread first,
 * and sets *tid to it; returns BORROW_SAFE if it found one, else where the
 * main thread is, or -1 after fail(). The main thread's first frame, the
 * word below argc on its stack's first page, which it holds, tells for
 * them all whether the process is still starting up. A thread that exited
 * while stopped (killed) is passed over. */
static int safe_thread(const struct request *q, pid_t *tid)
{
	uint64_t first_frame = 0;
	int main_point;
	size_t i;

	if (q->start_stack)
		target_mem_read(q->mem, q->start_stack - sizeof first_frame, &first_frame,
				sizeof first_frame);
	*tid = q->pid;
	if (starting_up(first_frame, &q->places))
		return BORROW_IN_LOADER;
	main_point = thread_point(q, q->pid, first_frame);
	if (main_point == BORROW_SAFE || main_point < 0)
		return main_point;
	for (i = 0; i < threads.n; i++) {
		*tid = threads.v[i].tid;
		if (*tid != q->pid && threads.v[i].state == STOPPED &&
		    thread_point(q, *tid, first_frame) == BORROW_SAFE)
			return BORROW_SAFE;
	}
	*tid = q->pid;
	return main_point;
}

/* Stops every thread of the target outside a fork (fork_in_flight) and
 * with a thread where it may be borrowed (safe_thread), whose id goes to
 * *tid: else lets them go and stops them again a moment later, for
 * FORK_WAIT_MS at most. */
static int stop_at_safe_point(struct request *q, pid_t *tid)
{
	double deadline = now_ms() + FORK_WAIT_MS;
	long delay = 100;
	int point = BORROW_SAFE;

	for (;;) {
		if (threads_stop(&threads, q->pid, STOP_MS) < 0)
			return -1;
		double t0 = now_ms();
		int in_fork = fork_in_flight(q);
		phases.fork_check_ms += now_ms() - t0;
		if (!in_fork && (point = safe_thread(q, tid)) == BORROW_SAFE) {
			threads.borrowed = *tid;
			phases.borrowed_other = *tid != q->pid;
			return 0;
		}
		if (point < 0)
			return -1;
		phases.unsafe += !in_fork;
		threads_release(&threads, 0);
		if (now_ms() > deadline && in_fork)
			return fail("process %d stayed in the middle of a fork for %d s; "
				    "try again", (int)q->pid, FORK_WAIT_MS / 1000);
		if (now_ms() > deadline)
			return fail("no thread of process %d came to a point where a thread "
				    "can be started safely in %d s (its main thread last seen "
				    "%s); try again", (int)q->pid, FORK_WAIT_MS / 1000,
				    borrow_point_words((enum borrow_point)point));
		free(threads.v);	/* threads_stop starts a new list */
		nap(&delay, 10000);
	}
}

/* Maps the guard page, the stack, the data block and the page of code
 * after it, all read+exec (the setup makes all but the code page what they
 * are to be), and writes the code and the stack's mark. */
static int map_pages(struct request *q)
{
	uint64_t guard = page_up(1), data_size = page_up(DATA_MAX);
	uint64_t code_size = page_up(stub_code_size + sizeof stack_mark);
	uint64_t size = guard + STACK_BYTES + data_size + code_size, ret;
	int err;

	if (call_syscall(q, "mmap", SYS_mmap, (uint64_t[6]){ 0, size,
			 PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
			 (uint64_t)-1, 0 }, &ret) < 0)
		return -1;
	if ((err = syscall_error(ret)))
		return fail("mmap of %lu bytes (read+exec) failed in the target: %s%s",
			    (unsigned long)size, strerror(err),
			    err == EPERM || err == EACCES ?
			    " (a policy against executable memory?)" : "");
	q->guard = ret;
	q->stack = ret + guard;
	q->data = q->stack + STACK_BYTES;
	q->code = q->data + data_size;
	if (target_mem_write(q->mem, q->code, stub_code, stub_code_size) < 0 ||
	    target_mem_write(q->mem, q->code + stub_code_size, &stack_mark,
			     sizeof stack_mark) < 0)
		return fail("cannot write the target's new pages: %s",
			    strerror(errno));
	return 0;
}

/* Says what failed in the setup that returned ret (stub.h); 0 if nothing. */
static int setup_failed(uint64_t ret)
{
	static const char *const what[] = {
		[SETUP_GUARD] = "mprotect(PROT_NONE) of its new guard page",
		[SETUP_WRITABLE] = "mprotect(PROT_READ|PROT_WRITE) of its new pages",
		[SETUP_ATTR_INIT] = "pthread_attr_init",
		[SETUP_ATTR_SETSTACK] = "pthread_attr_setstack",
		[SETUP_CREATE] = "pthread_create",
	};
	uint64_t step = ret >> 32;

	if (ret == 0)
		return 0;
	return fail("%s failed in the target: %s",
		    step < sizeof what / sizeof what[0] && what[step] ? what[step] : "the setup",
		    strerror((int)(uint32_t)ret));
}

/* After a setup that did not return: puts the errno it saved back. */
static void restore_errno(const struct request *q)
{
	struct stub_data d;

	if (target_mem_read(q->mem, stub_data_at(q->data), &d, sizeof d) == 0 && d.errno_at)
		target_mem_write(q->mem, d.errno_at, &d.saved_errno, sizeof d.saved_errno);
}

/* Writes the data block, into the pages found if they are still free
 * (another reqid-inject may have taken them meanwhile) or new ones, and
 * starts the fresh thread on the stack below it (the setup). */
static int start_thread(struct request *q)
{
	size_t plen = strlen(q->path) + 1, nlen = strlen(q->name) + 1;
	size_t alen = strlen(q->arg) + 1;
	size_t strings = plen + nlen + alen;
	struct stub_data *d;
	uint64_t ret, at;
	char *block;
	int rc;

	double t0 = now_ms();
	if (!q->guard && (!q->data || !block_free(q, q->data)) && map_pages(q) < 0)
		return -1;
	phases.map_ms = now_ms() - t0;

	/* The strings, then the struct, written at once. glibc's attributes
	 * go before them, and hold nothing to free here (no cpuset, no signal
	 * mask): no pthread_attr_destroy. */
	at = stub_data_at(q->data);
	block = calloc(1, strings + sizeof *d);
	if (!block)
		return fail("out of memory");
	d = (struct stub_data *)(block + strings);
	d->dlopen = q->libc.dlopen;
	d->dlsym = q->libc.dlsym;
	d->dlerror = q->libc.dlerror;
	d->pthread_self = q->libc.pthread_self;
	d->pthread_detach = q->libc.pthread_detach;
	d->register_atfork = q->libc.register_atfork;
	d->path = at - strings;
	d->name = d->path + plen;
	d->arg = d->name + nlen;
	d->errno_location = q->libc.errno_location;
	d->pthread_attr_init = q->libc.pthread_attr_init;
	d->pthread_attr_setstack = q->libc.pthread_attr_setstack;
	d->pthread_create = q->libc.pthread_create;
	d->attr = (at - strings - sizeof(pthread_attr_t)) & ~(uint64_t)15;
	d->stack = q->stack;
	d->stack_size = STACK_BYTES;
	d->guard = q->guard;
	d->guard_size = q->guard ? q->stack - q->guard : 0;
	d->writable_size = q->code - q->stack;
	memcpy(block, q->path, plen);
	memcpy(block + plen, q->name, nlen);
	memcpy(block + plen + nlen, q->arg, alen);
	rc = target_mem_write(q->mem, at - strings, block, strings + sizeof *d);
	free(block);
	if (rc < 0)
		return fail("cannot write the target's data block: %s",
			    strerror(errno));
	/* -p: the note, replacing an older one there (-s goes by the newest). */
	uint64_t note_at = stack_note_at(q->code);
	if (note_at && q->note &&
	    target_mem_write(q->mem, note_at, q->note, sizeof *q->note) < 0)
		return fail("cannot write the target's code page: %s", strerror(errno));
	if (call("the setup of pthread_create", q->code + stub_setup_offset,
		 (uint64_t[6]){ at }, &ret) < 0) {
		restore_errno(q);
		return -1;
	}
	return setup_failed(ret);
}

/* Gives back the pages of the stack of the fresh thread, which has exited
 * (glibc no longer reads its descriptor there, nor the kernel its tid):
 * they read as zeroes when the next injection's thread runs on them. */
static int drop_stack(struct request *q)
{
	uint64_t ret;
	int err;

	if (call_syscall(q, "madvise", SYS_madvise, (uint64_t[6]){ q->stack, STACK_BYTES,
			 MADV_DONTNEED }, &ret) < 0)
		return -1;
	if ((err = syscall_error(ret)))
		return fail("madvise failed in the target: %s", strerror(err));
	return 0;
}

/* Borrows stopped thread tid for job; it is put back exactly as it
 * was whatever happens (the system calls leave errno alone; the setup
 * puts it back). Not if the process runs another program than when q->mem
 * was opened: after an exec the descriptor reads the old memory, which is
 * gone (the word read is the one at the thread's stack pointer, a page it
 * holds), and what was learnt of the process is stale. */
static int borrow(struct request *q, pid_t tid, int (*job)(struct request *))
{
	uint64_t word;
	int rc;

	if (remote_save(&borrowed, tid, q->mem) < 0)
		return -1;
	if (target_mem_read(q->mem, borrowed.saved.rsp, &word, sizeof word) < 0)
		return fail("process %d ran a new program (exec) during attach; try again",
			    (int)q->pid);
	rc = job(q);
	if (remote_restore(&borrowed) < 0)
		rc = -1;
	return rc;
}

/* Once the result is read: waits a little for the fresh thread to exit,
 * so that the next injection finds the pages free; whether it has. */
static int await_exit(const struct request *q, pid_t tid)
{
	double deadline = now_ms() + EXIT_MS;
	long delay = 20;
	int exited;

	while (!(exited = thread_exiting(q->pid, tid)) && now_ms() < deadline)
		nap(&delay, 5000);
	return exited;
}

/* Marks the block free: the next injection may take its pages and run a
 * thread on the stack below it. */
static void mark_block_free(const struct request *q)
{
	uint64_t done = STUB_FREE;

	target_mem_write(q->mem, stub_data_at(q->data) + offsetof(struct stub_data, done),
			 &done, sizeof done);
}

/* Stops the main thread alone, the others running on, and borrows it for
 * job, which must change only pages no thread uses; the stop's numbers go
 * to *record, the job's time to *job_ms. */
static int borrow_alone(struct request *q, int (*job)(struct request *), sigset_t *fatal,
			struct threads *record, double *job_ms)
{
	struct priority raised;
	sigset_t old;
	int rc;

	sigprocmask(SIG_BLOCK, fatal, &old);
	priority_raise(&raised);
	rc = threads_stop_leader(&threads, q->pid, STOP_MS);
	if (rc == 0) {
		double t0 = now_ms();
		rc = borrow(q, q->pid, job);
		*job_ms = now_ms() - t0;
	}
	threads_release(&threads, 0);
	priority_restore(&raised);
	record_stop(record);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Once the fresh thread has exited: the main thread is stopped again and
 * borrowed for drop_stack; the others run on, as the madvise changes pages
 * none of them uses (the block is not yet marked free, so no other
 * reqid-inject runs a thread there). A failure leaves the pages there and
 * changes nothing else: the call's result stands. */
static void stack_back(struct request *q, sigset_t *fatal)
{
	borrow_alone(q, drop_stack, fatal, &phases.again, &phases.again_call_ms);
}

/* Thread tid of the target stopped alone and borrowed for one madvise of
 * the pages of its own stack below all it can be using that held no data
 * at attach (note, dead_stack.c), if it has any: its stack pointer is read
 * with it stopped, and it runs only the madvise, which writes nothing
 * below its return address. The pages given back are counted in
 * phases.stack_pages; the stop's numbers go to phases.stacks. */
static void stack_of_thread_back(struct request *q, const struct stack_areas *now,
				 const struct stack_note *note, pid_t tid)
{
	struct user_regs_struct regs;
	struct threads one;
	uint64_t start, end, ret;

	if (threads_stop_one(&threads, q->pid, tid, STOP_MS) == 0 &&
	    ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0 &&
	    dead_stack_range(now, note, tid == q->pid, regs.rsp, regs.fs_base,
			     (long)regs.orig_rax, remote_lowest_written(regs.rsp), &start, &end) &&
	    remote_save(&borrowed, tid, q->mem) == 0) {
		if (call_syscall(q, "madvise", SYS_madvise,
				 (uint64_t[6]){ start, end - start, MADV_DONTNEED }, &ret) == 0 &&
		    !syscall_error(ret))
			phases.stack_pages += (end - start) / page_up(1);
		remote_restore(&borrowed);
	}
	threads_release(&threads, 0);
	record_stop(&one);
	phases.stacks.n++;
	if (one.longest_ms > phases.stacks.longest_ms)
		phases.stacks.longest_ms = one.longest_ms;
}

/* -s: each thread of the target worth it (dead_stack_worth_stopping, from
 * its /proc/PID/task/TID/syscall line) stopped alone in turn, the others
 * running on, and its dead stack pages given back (stack_of_thread_back). */
static void stacks_back(struct request *q, const struct stack_note *note, sigset_t *fatal)
{
	struct stack_areas now;
	struct priority raised;
	char path[64], line[256];
	struct dirent *e;
	sigset_t old;
	DIR *tasks;

	snprintf(path, sizeof path, "/proc/%d/task", (int)q->pid);
	if (stack_areas_read(&now, q->pid) < 0)
		return;
	if (!(tasks = opendir(path))) {
		stack_areas_free(&now);
		return;
	}
	sigprocmask(SIG_BLOCK, fatal, &old);
	priority_raise(&raised);
	while ((e = readdir(tasks))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		FILE *f;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)q->pid, (int)tid);
		if (!(f = fopen(path, "re")))
			continue;
		int worth = fgets(line, sizeof line, f) &&
			    dead_stack_worth_stopping(&now, note, tid == q->pid, line);
		fclose(f);
		if (worth)
			stack_of_thread_back(q, &now, note, tid);
	}
	closedir(tasks);
	priority_restore(&raised);
	sigprocmask(SIG_SETMASK, &old, NULL);
	stack_areas_free(&now);
}

/* Polls the data block until the fresh thread sets done. */
static int wait_done(struct request *q, struct stub_data *d, sigset_t *fatal)
{
	double deadline = now_ms() + DONE_MS;
	long delay = 100;

	for (;;) {
		if (target_mem_read(q->mem, stub_data_at(q->data), d, sizeof *d) < 0)
			return thread_exiting(q->pid, q->pid) ?
			       fail("the target exited before %s returned", q->name) :
			       fail("process %d ran a new program (exec) before %s "
				    "returned; try again", (int)q->pid, q->name);
		if (d->done)
			break;
		if (now_ms() > deadline && d->handle)
			return fail("%s has not returned within %d s; it runs on "
				    "in process %d", q->name, DONE_MS / 1000,
				    (int)q->pid);
		if (now_ms() > deadline)
			return fail("dlopen(\"%s\") has not returned within %d s "
				    "(a loader lock held?); it runs on in process %d",
				    q->path, DONE_MS / 1000, (int)q->pid);
		nap(&delay, 2000);
	}
	if (await_exit(q, d->tid))
		stack_back(q, fatal);
	mark_block_free(q);
	d->error[sizeof d->error - 1] = 0;
	if (!d->handle)
		return fail("dlopen(\"%s\") failed in process %d: %s", q->path,
			    (int)q->pid, d->error);
	if (!d->func)
		return fail("dlsym(\"%s\") failed in process %d: %s", q->name,
			    (int)q->pid, d->error);
	return 0;
}

/* The -v lines on the stop times and where they went. */
static void print_phases(double total_ms)
{
	const struct threads *p = &phases.premap, *f = &phases.first, *a = &phases.again;
	const struct threads *all[] = { p, f, a };
	double longest = 0;
	size_t stopped = 0, i;

	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (all[i]->stopped > stopped)
			stopped = all[i]->stopped;
		if (all[i]->longest_ms > longest)
			longest = all[i]->longest_ms;
	}
	fprintf(stderr, "reqid-inject: %zu threads stopped, longest stop %.3f ms, total "
		"%.3f ms\n", stopped, longest, total_ms);
	if (p->n)
		fprintf(stderr, "reqid-inject: new pages first: wait %.3f mmap %.3f resume "
			"%.3f longest %.3f\n", p->wait_ms, phases.premap_ms, p->release_ms,
			p->longest_ms);
	fprintf(stderr, "reqid-inject: phases ms: seize %.3f interrupt %.3f wait %.3f "
		"fork-check %.3f mmap %.3f calls %.3f resume %.3f longest %.3f "
		"longest-other %.3f restarts %d unsafe-points %d let-go %s borrowed %s",
		f->seize_ms, f->interrupt_ms, f->wait_ms, phases.fork_check_ms, phases.map_ms,
		phases.call_ms, f->release_ms, f->longest_ms, f->longest_other_ms, f->restarts,
		phases.unsafe, phases.let_go ? phases.let_go : "-",
		phases.borrowed_other ? "other" : "main");
	if (phases.stacks.n)
		fprintf(stderr, "; stacks: %zu threads stopped one by one, %zu pages given back, "
			"longest stop %.3f", phases.stacks.n, phases.stack_pages,
			phases.stacks.longest_ms);
	if (a->n)
		fprintf(stderr, "; again: seize %.3f interrupt %.3f wait %.3f madvise %.3f "
			"resume %.3f longest %.3f", a->seize_ms, a->interrupt_ms, a->wait_ms,
			phases.again_call_ms, a->release_ms, a->longest_ms);
	fputc('\n', stderr);
}

/* ARG with the line of resident_pages_line appended (as its last line), read
 * before any remote call; ARG alone if that line cannot be made or would
 * make it longer than ARG_LIMIT. */
static const char *with_resident_pages(const char *arg, pid_t pid)
{
	char *line = resident_pages_line(pid), *both = NULL;
	size_t alen = strlen(arg), llen;

	if (!line)
		return arg;
	llen = strlen(line);
	if (alen + 1 + llen <= ARG_LIMIT && (both = malloc(alen + 1 + llen + 1))) {
		memcpy(both, arg, alen);
		both[alen] = '\n';
		memcpy(both + alen + (alen ? 1 : 0), line, llen + 1);
	}
	free(line);
	return both ? both : arg;
}

static int usage(const char *why)
{
	fprintf(stderr, "reqid-inject: %s\n"
		"usage: reqid-inject [-v] [-p|-s] PID LIBPATH FUNCTION ARG\n"
		"  calls int FUNCTION(const char *ARG) from LIBPATH (as the "
		"target's dlopen sees it) on a new thread of PID and prints "
		"its result\n", why);
	return 2;
}

int main(int argc, char **argv)
{
	struct request q = { .mem = -1 };
	struct stub_data d;
	const char *why = NULL;
	sigset_t fatal, old, child;
	struct priority raised;
	double start = now_ms();
	struct stack_note note = {0};
	int verbose = 0, pages = 0, stacks = 0, rc;
	char *end;
	long pid;
	pid_t tid = 0;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		argv++;
		argc--;
	}
	if (argc > 1 && strcmp(argv[1], "-p") == 0) {
		pages = 1;
		argv++;
		argc--;
	} else if (argc > 1 && strcmp(argv[1], "-s") == 0) {
		stacks = 1;
		argv++;
		argc--;
	}
	if (argc != 5)
		return usage("expects 4 arguments");
	errno = 0;
	pid = strtol(argv[1], &end, 10);
	if (errno || *end || end == argv[1] || pid <= 0 || pid > INT_MAX)
		return usage("PID must be a positive process id");
	q.pid = (pid_t)pid;
	q.path = argv[2];
	q.name = argv[3];
	q.arg = argv[4];
	if (!*q.path || strlen(q.path) >= PATH_MAX)
		return usage("LIBPATH must be a non-empty path");
	if (!*q.name || strlen(q.name) >= NAME_LIMIT)
		return usage("FUNCTION must be a symbol name");
	if (strlen(q.arg) > ARG_LIMIT)
		return usage("ARG is longer than 64 KiB");

	/* The stops of traced threads are awaited as SIGCHLD (await_tracee). */
	sigemptyset(&child);
	sigaddset(&child, SIGCHLD);
	sigprocmask(SIG_BLOCK, &child, NULL);
	if (preflight(q.pid) < 0) {
		fprintf(stderr, "reqid-inject: %s\n", fail_message());
		return 1;
	}
	/* The memory first: what is read of the process after, it holds; an
	 * exec meanwhile shows when its main thread is borrowed (borrow). */
	rc = q.mem = target_mem_open(q.pid);
	if (rc >= 0 && pages) {
		struct stack_areas areas;
		q.arg = with_resident_pages(q.arg, q.pid);
		if (stack_areas_read(&areas, q.pid) == 0) {
			stack_note_make(&note, &areas, now_ms());
			stack_areas_free(&areas);
			q.note = &note;
		}
	}
	if (rc >= 0)
		rc = target_libc_find(q.pid, &q.libc);
	if (rc >= 0)
		rc = target_code_find(q.pid, &q.places) < 0 ?
		     fail("the target exited during attach") : 0;
	q.start_stack = proc_start_stack(q.pid);
	if (rc >= 0) {
		find_pages(&q);
		/* Dying while threads are stopped would leave them stopped and
		 * one borrowed. */
		sigemptyset(&fatal);
		sigaddset(&fatal, SIGINT);
		sigaddset(&fatal, SIGTERM);
		sigaddset(&fatal, SIGHUP);
		sigaddset(&fatal, SIGQUIT);
		sigaddset(&fatal, SIGTSTP);
		/* New pages are mapped with the main thread alone stopped, so
		 * that every thread's stop holds one resume of it, not two. */
		if (!q.data)
			rc = borrow_alone(&q, map_pages, &fatal, &phases.premap,
					  &phases.premap_ms);
	}
	if (rc >= 0) {
		sigprocmask(SIG_BLOCK, &fatal, &old);
		priority_raise(&raised);
		rc = stop_at_safe_point(&q, &tid);
		double t0 = now_ms();
		if (rc == 0)
			rc = borrow(&q, tid, start_thread);
		phases.call_ms = now_ms() - t0 - phases.map_ms;
		threads_release(&threads, 0);
		priority_restore(&raised);
		record_stop(&phases.first);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	/* Whatever failed, a vanished target is the cause. */
	if (rc < 0 && thread_exiting(q.pid, q.pid))
		why = "the target exited during attach";
	else if (rc >= 0)
		rc = wait_done(&q, &d, &fatal);
	/* Once detach has succeeded: a refused one (busy) is tried again,
	 * and the note must still be there then. */
	if (rc >= 0 && stacks && d.status == 0 && take_stack_note(&q, &note))
		stacks_back(&q, &note, &fatal);
	if (verbose)
		print_phases(now_ms() - start);
	if (rc < 0) {
		fprintf(stderr, "reqid-inject: %s\n", why ? why : fail_message());
		return 1;
	}
	printf("%d\n", d.status);
	return fflush(stdout) == 0 ? 0 : 1;
}
