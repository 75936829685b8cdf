/*
 * dead_stack.h - the pages of a stopped thread's own stack below all it
 * can be using, which attach's hooks made resident and detach gives back
 * (see dead_stack.c).
 */
#ifndef REQID_INJECT_DEAD_STACK_H
#define REQID_INJECT_DEAD_STACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The pages at the top of a stack looked at: deeper ones are left alone. */
#define STACK_TOP_PAGES 64

/* A mapping that can be a thread's own stack: the main thread's
 * ([stack]), or an anonymous read+write mapping right above an anonymous
 * inaccessible one (the guard page glibc maps below a thread's stack);
 * held has bit i set if the page i pages below its top (its end) holds
 * data (present or swapped out), for its STACK_TOP_PAGES top pages; every
 * bit where pagemap cannot be read. */
struct stack_area {
	uint64_t start, end, held;
	int main;
};

struct stack_areas {
	struct stack_area *v;
	size_t n;
};

/* Reads pid's stack areas and, from its pagemap, which of each one's top
 * pages hold data; 0, or -1 (none read). */
int stack_areas_read(struct stack_areas *a, pid_t pid);

void stack_areas_free(struct stack_areas *a);

/* The note of the areas' top pages that held data at attach, kept in the
 * target until detach: at most STACK_NOTE_MAX areas (the others keep
 * their pages); made, when it was taken (a later attach's note is the one
 * a detach goes by). */
#define STACK_NOTE_MAX 200
struct stack_note {
	uint64_t count;
	double made;
	struct {
		uint64_t end, held; /* by its end: [stack] grows down */
	} area[STACK_NOTE_MAX];
};

/* Fills note from a (stack_areas_read at attach), taken at made. */
void stack_note_make(struct stack_note *note, const struct stack_areas *a, double made);

/* Pages of its own stack a thread stopped with stack pointer rsp, thread
 * pointer fs_base and system call orig_rax (-1: none) is not using, when
 * nothing lower than lowest_written is written on it meanwhile: sets
 * [*start, *end) to the run of its area's top pages (in now, the areas
 * read at detach) that begins with the highest page below both that held
 * no data at attach (note), and holds none that did, trimmed to those
 * holding data now; 0 if it holds none, or the thread is in vfork or clone
 * (a child may run on its stack), or runs on no stack of its own (the
 * main thread's stack holds it, but it is not the main thread; or its
 * thread pointer is not above it in its area: a stack of the program's
 * own making, a fiber's or a signal stack), or the note has no such area. */
int dead_stack_range(const struct stack_areas *now, const struct stack_note *note,
		     int is_main, uint64_t rsp, uint64_t fs_base, long orig_rax,
		     uint64_t lowest_written, uint64_t *start, uint64_t *end);

/* Whether a thread is worth stopping (and dead_stack_range asking), from
 * its /proc/PID/task/TID/syscall line, read while it runs: it is running,
 * or blocked outside an epoll wait with pages to give back below its stack
 * pointer then. A thread in an epoll wait is left alone: the kernel never
 * restarts one a stop interrupted (it returns EINTR; poll, select, read,
 * futex and the like resume where they were), and the hook it may wait in
 * would run once more after detach dropped the shim's code, mapping it
 * again. */
int dead_stack_worth_stopping(const struct stack_areas *now, const struct stack_note *note,
			      int is_main, const char *syscall_line);

/* Reads a /proc/PID/task/TID/syscall line: the system call's number (-1:
 * none) and the stack pointer; 0 if it is not such a line ("running"). */
int syscall_line_parse(const char *line, long *nr, uint64_t *sp);

#endif
