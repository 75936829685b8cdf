/*
 * in_fork.c - whether a stopped thread of the target is inside glibc's
 * fork().
 *
 * A thread borrowed there must not create the fresh thread: in a child
 * still inside fork, glibc has yet to reset its thread count to 1 (then a
 * thread created before the reset ends the process with exit(0) when it
 * returns, taking the count to 0), its list of thread stacks (it hands
 * every stack but its own to the cache) and its locks. Walks the thread's
 * first frames with libunwind's ptrace accessors, reading the target
 * only; must never write to it, nor make its pages resident (a page of a
 * file the target does not have in memory is read from the file), nor say
 * "inside" for a frame it cannot place: a stack it cannot walk counts as
 * outside, as before this check existed.
 *
 * The walk costs a few milliseconds while every thread is stopped, so a
 * cheaper test comes first and answers "outside" only where the walk
 * would: the frames the walk looks at are the thread's ip and return
 * addresses on its stack above the stack pointer; on the main thread's
 * stack (from the stack pointer to where the kernel started it, /proc/PID/
 * stat's startstack), if neither the ip nor any word points into fork or
 * _Fork (or one byte past them), none of those frames is there. Anything
 * it cannot read whole and cheaply (another stack, a page not in memory, a
 * deep stack) is left to the walk.
 */
#include "in_fork.h"

#include <fcntl.h>
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#include "proc_maps.h"
#include "target_mem.h"

/* How many frames are looked at, the thread's own first: glibc makes the
 * child's state that of one thread in fork itself and in calls at most two
 * deep from it, before it runs the atfork handlers. Each step costs about
 * half a millisecond while every thread is stopped (libunwind maps the
 * frame's object anew when it changes), so no more are walked. */
#define MAX_FRAMES 3

/* The most stack the cheap test reads: a main thread's stack in an event
 * loop or a blocking call is a few kilobytes deep. */
#define SCAN_MAX (256 * 1024)

static int within(uint64_t ip, const struct libc_funcs *f)
{
	return (ip >= f->fork && ip < f->fork + f->fork_size) ||
	       (ip >= f->fork_bare && ip < f->fork_bare + f->fork_bare_size);
}

/* Whether every page of [start, end) is in the target's memory (not in
 * swap, not left untouched). */
static int all_present(int pagemap, uint64_t start, uint64_t end)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), entries[64];
	uint64_t first = start / page, last = (end - 1) / page, i;

	while (first <= last) {
		uint64_t n = last - first + 1 < 64 ? last - first + 1 : 64;

		if (pread(pagemap, entries, n * sizeof *entries,
			  (off_t)(first * sizeof *entries)) != (ssize_t)(n * sizeof *entries))
			return 0;
		for (i = 0; i < n; i++)
			if (!(entries[i] >> 63))
				return 0;
		first += n;
	}
	return 1;
}

/* 0 if main thread pid, stopped, surely has no frame in fork or _Fork
 * (see the top); 1 if it may have. */
static int may_be_in_fork(pid_t pid, const struct libc_funcs *f, int mem, int pagemap)
{
	struct user_regs_struct regs;
	uint64_t top = proc_start_stack(pid), *words;
	size_t n, i;
	int may = 1;

	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return 1;
	if (within(regs.rip, f))
		return 1;
	if (pagemap < 0 || top <= regs.rsp || top - regs.rsp > SCAN_MAX ||
	    !all_present(pagemap, regs.rsp, top))
		return 1;
	n = (top - regs.rsp) / sizeof *words;
	words = malloc(n * sizeof *words);
	if (words && target_mem_read(mem, regs.rsp, words, n * sizeof *words) == 0) {
		may = 0;
		for (i = 0; i < n && !may; i++)
			may = within(words[i], f) || within(words[i] - 1, f);
	}
	free(words);
	return may;
}

/*
 * The walk's reads of the target's memory. A read through ptrace faults in
 * the page it reads, and the target keeps it: the unwind tables of the
 * thread's first frames (in an nginx worker some 190 KB with the kernel's
 * fault-around), which detach, finding them resident from before attach,
 * then leaves there. So a word on a page the target has neither in memory
 * nor in swap (/proc/PID/pagemap) is read from the file its mapping maps,
 * where there is one: the bytes a fault would bring. Files are opened when
 * first needed and only if they are the mapping's (device and inode);
 * anything else goes through ptrace, as before.
 */
#define FILE_RANGES 128
struct file_range {
	uint64_t start, end, offset;
	dev_t dev;
	ino_t inode;
	int fd;			/* -1 until opened, -2 if it cannot be */
	char path[256];
};
static struct {
	pid_t pid;
	int pagemap;		/* -1 if it cannot be read */
	int ranges_read;
	unsigned n;
	struct file_range r[FILE_RANGES];
} walk;

static void read_ranges(void)
{
	struct maps_reader maps;
	struct maps_entry e;

	walk.ranges_read = 1;
	if (maps_open(&maps, walk.pid) < 0)
		return;
	while (walk.n < FILE_RANGES && maps_next(&maps, &e)) {
		struct file_range *r = &walk.r[walk.n];

		if (e.inode == 0 || e.path[0] != '/' || strlen(e.path) >= sizeof r->path)
			continue;
		r->start = e.start;
		r->end = e.end;
		r->offset = e.offset;
		r->dev = e.dev;
		r->inode = e.inode;
		snprintf(r->path, sizeof r->path, "%s", e.path);
		r->fd = -1;
		walk.n++;
	}
	maps_close(&maps);
}

/* Whether the target has the page of addr in memory or in swap (or it
 * cannot be told). */
static int page_held(uint64_t addr)
{
	uint64_t entry, page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (walk.pagemap < 0 ||
	    pread(walk.pagemap, &entry, sizeof entry, (off_t)(addr / page * sizeof entry)) !=
		    sizeof entry)
		return 1;
	return (entry >> 62) != 0;
}

/* The word at addr from the file the target maps there, if the target
 * holds neither of the pages it spans: 0, else -1. */
static int word_from_file(uint64_t addr, unw_word_t *val)
{
	struct file_range *r = NULL;
	struct stat st;

	if (page_held(addr) || page_held(addr + sizeof *val - 1))
		return -1;
	if (!walk.ranges_read)
		read_ranges();
	for (unsigned i = 0; i < walk.n && !r; i++)
		if (addr >= walk.r[i].start && addr + sizeof *val <= walk.r[i].end)
			r = &walk.r[i];
	if (!r || r->fd == -2)
		return -1;
	if (r->fd == -1) {
		r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
		if (r->fd >= 0 && (fstat(r->fd, &st) != 0 || st.st_dev != r->dev ||
				   st.st_ino != r->inode)) {
			close(r->fd);
			r->fd = -1;
		}
		if (r->fd < 0) {
			r->fd = -2;
			return -1;
		}
	}
	return pread(r->fd, val, sizeof *val, (off_t)(r->offset + addr - r->start)) ==
		       sizeof *val ? 0 : -1;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
		      void *upt)
{
	if (!write && word_from_file(addr, val) == 0)
		return 0;
	return _UPT_accessors.access_mem(as, addr, val, write, upt);
}

/* The walk of the thread's first frames. */
static int walk_in_fork(pid_t tid, const struct libc_funcs *f)
{
	unw_accessors_t accessors = _UPT_accessors;
	unw_addr_space_t as;
	unw_cursor_t cursor;
	void *upt;
	int frames = 0, inside = 0;

	accessors.access_mem = access_mem;
	as = unw_create_addr_space(&accessors, 0);
	if (!as)
		return 0;
	walk.pid = tid;
	walk.ranges_read = 0;
	walk.n = 0;
	upt = _UPT_create(tid);
	if (upt && unw_init_remote(&cursor, as, upt) == 0) {
		do {
			unw_word_t ip;

			if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0)
				break;
			/* A caller's ip is its return address: one past the
			 * call, which may be the function's last byte. */
			inside = within(frames ? ip - 1 : ip, f);
		} while (!inside && ++frames < MAX_FRAMES && unw_step(&cursor) > 0);
	}
	if (upt)
		_UPT_destroy(upt);
	unw_destroy_addr_space(as);
	for (unsigned i = 0; i < walk.n; i++)
		if (walk.r[i].fd >= 0)
			close(walk.r[i].fd);
	return inside;
}

int thread_in_fork(pid_t tid, const struct libc_funcs *f, int mem)
{
	char path[64];
	int inside;

	snprintf(path, sizeof path, "/proc/%d/pagemap", (int)tid);
	walk.pagemap = open(path, O_RDONLY | O_CLOEXEC);
	inside = may_be_in_fork(tid, f, mem, walk.pagemap) && walk_in_fork(tid, f);
	if (walk.pagemap >= 0)
		close(walk.pagemap);
	return inside;
}
