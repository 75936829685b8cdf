/*
 * borrow_point.c - whether a stopped thread is at a point where it may be
 * borrowed for a call of pthread_create (the setup in stub.c).
 *
 * That call allocates (the thread's TLS vector) and goes through the
 * loader's TLS state, so the thread must be in neither: glibc's malloc
 * takes no lock while a process is single-threaded, and a call made from
 * inside malloc corrupts its heap; a process still in the loader's
 * start-up (after exec, libc mapped but not initialised) has no TLS state
 * to copy. From the registers alone, a thread is safe where it surely is in
 * neither: inside a system call that malloc and the loader do not make
 * (the kernel keeps its number in orig_rax), with its pc outside the
 * loader, or running the program's own code outside any system call.
 * Any thread of the process will do, in a process with more than one:
 * there glibc's malloc and loader take their locks, and a lock that a
 * stopped thread holds only makes the borrowed one wait (reqid-inject
 * then lets the others go). But not the thread that holds malloc's locks
 * itself, as fork() does around its clone: its call would wait forever.
 * The loader's start-up also runs the libraries' constructors, which may
 * make any system call: until it jumps to the program's entry, the first
 * frame of the main thread's stack, right below argc, is the return
 * address of the loader's call (of _dl_start, then _dl_init), in its code;
 * the program's start code (_start) overwrites that word with its first
 * push and never returns. A constructor may start threads: that word, not
 * the thread's own stack, says whether the start-up is over.
 * Anything else is unsafe, to be tried again a moment later: a wrong
 * "safe" crashes the target, a wrong "unsafe" only delays the attach.
 * A signal handler of the program that interrupted malloc looks like the
 * program's code, or like a safe system call when it sleeps: the
 * registers cannot tell it, the stack can (stack_in_signal_handler: the
 * kernel puts the address of the signal return code at the top of every
 * signal frame, where the handler returns to).
 * Pure logic: reads only its arguments.
 */
#include "borrow_point.h"

#include <linux/futex.h>
#include <sys/syscall.h>

static int within(uint64_t pc, uint64_t start, uint64_t end)
{
	return start < end && pc >= start && pc < end;
}

/* System calls malloc and free make (sbrk, the arenas' and large chunks'
 * mappings, trimming), which the loader makes too. */
static int memory_call(long nr)
{
	return nr == SYS_brk || nr == SYS_mmap || nr == SYS_munmap || nr == SYS_mremap ||
	       nr == SYS_mprotect || nr == SYS_madvise;
}

/* System calls that make a process or a thread: fork() makes its clone
 * holding malloc's locks (pthread_create makes its clone holding none, but
 * the registers cannot tell the two apart). */
static int process_call(long nr)
{
	return nr == SYS_clone || nr == SYS_clone3 || nr == SYS_fork || nr == SYS_vfork;
}

/* glibc's low-level lock waits with futex(addr, FUTEX_WAIT[_PRIVATE], 2):
 * the thread may hold another lock (malloc's, the loader's) meanwhile. */
static int lock_wait(const struct user_regs_struct *regs)
{
	unsigned op = (unsigned)regs->rsi & ~(unsigned)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);

	return (long)regs->orig_rax == SYS_futex && regs->rdx == 2 &&
	       (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET);
}

int starting_up(uint64_t first_frame, const struct code_ranges *code)
{
	return within(first_frame, code->loader_start, code->loader_end);
}

enum borrow_point borrow_point(const struct user_regs_struct *regs, uint64_t first_frame,
			       const struct code_ranges *code)
{
	long nr = (long)regs->orig_rax;

	if (within(regs->rip, code->loader_start, code->loader_end) ||
	    starting_up(first_frame, code))
		return BORROW_IN_LOADER;
	if (nr >= 0) {
		if (memory_call(nr))
			return BORROW_IN_MEMORY_CALL;
		if (process_call(nr))
			return BORROW_IN_PROCESS_CALL;
		return lock_wait(regs) ? BORROW_IN_LOCK_WAIT : BORROW_SAFE;
	}
	return within(regs->rip, code->program_start, code->program_end) ?
	       BORROW_SAFE : BORROW_IN_LIBRARY;
}

int stack_in_signal_handler(const uint64_t *words, size_t n, uint64_t restore_rt)
{
	size_t i;

	for (i = 0; restore_rt && i < n; i++)
		if (words[i] == restore_rt)
			return 1;
	return 0;
}

const char *borrow_point_words(enum borrow_point point)
{
	switch (point) {
	case BORROW_SAFE:
		return "at a safe point";
	case BORROW_IN_LOADER:
		return "in the loader (starting up, or loading a library)";
	case BORROW_IN_MEMORY_CALL:
		return "in a memory system call (inside malloc?)";
	case BORROW_IN_LOCK_WAIT:
		return "waiting for a lock";
	case BORROW_IN_LIBRARY:
		return "running library code outside a system call";
	case BORROW_IN_SIGNAL_HANDLER:
		return "running a signal handler";
	case BORROW_IN_PROCESS_CALL:
		return "in a system call making a process or thread (inside fork?)";
	}
	return "?";
}
