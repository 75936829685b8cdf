/*
 * dead_stack.c - the pages of a stopped thread's own stack below all it
 * can be using, for `reqid detach` (reqid-inject -s): the shim's hooks run
 * deeper frames than the program's own calls, and each thread that ran
 * them keeps the stack pages they reached resident for its life (one page
 * a thread of Apache's event MPM, 64 of them a process: 256 kB). Below a
 * stopped thread's stack pointer and red zone nothing is in use: a signal
 * handler may write there at any moment, and a function the thread calls
 * next writes before it reads. Such a page goes back only if it lies in
 * the thread's own stack (the main thread's [stack], or the guarded
 * mapping whose top holds the thread's descriptor, its thread pointer),
 * among its top STACK_TOP_PAGES pages, held no data at attach (a stack of
 * the program's own making carved below the thread's frames, a fiber's,
 * held data there before attach), and the thread is not in vfork or clone
 * (the child runs on the parent's stack until exec).
 *
 * Reads /proc/PID/maps and /proc/PID/pagemap only; never writes to the
 * target. Pure but for those reads.
 */
#include "dead_stack.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc_maps.h"

#define PAGE 4096u
#define PRESENT (1ull << 63)
#define SWAPPED (1ull << 62)
#define RED_ZONE 128u

/* Bit i set if the page i pages below end holds data (present or
 * swapped out), for the top STACK_TOP_PAGES pages of [start, end); every
 * bit (nothing given back) if pagemap cannot be read. */
static uint64_t held_top(int pagemap, uint64_t start, uint64_t end)
{
	uint64_t entries[STACK_TOP_PAGES], held = 0;
	size_t n = (size_t)((end - start) / PAGE);

	if (n > STACK_TOP_PAGES)
		n = STACK_TOP_PAGES;
	if (pread(pagemap, entries, n * sizeof *entries,
		  (off_t)((end / PAGE - n) * sizeof *entries)) != (ssize_t)(n * sizeof *entries))
		return ~0ull;
	for (size_t i = 0; i < n; i++)
		if (entries[n - 1 - i] & (PRESENT | SWAPPED))
			held |= 1ull << i;
	return held;
}

static int anonymous(const struct maps_entry *e)
{
	return e->inode == 0 && (e->path[0] == '\0' || strcmp(e->path, "[stack]") == 0);
}

int stack_areas_read(struct stack_areas *a, pid_t pid)
{
	struct maps_reader maps;
	struct maps_entry e;
	uint64_t guard_end = 0; /* the end of the last anonymous ---p mapping */
	size_t cap = 0;
	char path[64];
	int pagemap;

	memset(a, 0, sizeof *a);
	snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
	if ((pagemap = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (maps_open(&maps, pid) < 0) {
		close(pagemap);
		return -1;
	}
	while (maps_next(&maps, &e)) {
		int is_main = strcmp(e.path, "[stack]") == 0;
		int guarded = guard_end == e.start && anonymous(&e) && !is_main;
		guard_end = anonymous(&e) && strcmp(e.perms, "---p") == 0 ? e.end : 0;
		if (strcmp(e.perms, "rw-p") != 0 || !(is_main || guarded))
			continue;
		if (a->n == cap) {
			size_t more = cap ? 2 * cap : 64;
			struct stack_area *v = realloc(a->v, more * sizeof *v);
			if (!v)
				break;
			a->v = v;
			cap = more;
		}
		a->v[a->n++] = (struct stack_area){ e.start, e.end,
						    held_top(pagemap, e.start, e.end), is_main };
	}
	maps_close(&maps);
	close(pagemap);
	return 0;
}

void stack_areas_free(struct stack_areas *a)
{
	free(a->v);
	memset(a, 0, sizeof *a);
}

void stack_note_make(struct stack_note *note, const struct stack_areas *a, double made)
{
	memset(note, 0, sizeof *note);
	note->made = made;
	for (size_t i = 0; i < a->n && note->count < STACK_NOTE_MAX; i++) {
		note->area[note->count].end = a->v[i].end;
		note->area[note->count].held = a->v[i].held;
		note->count++;
	}
}

/* The note's bits for the area that ends at end; 0 if it has none. */
static int noted_held(const struct stack_note *note, uint64_t end, uint64_t *held)
{
	uint64_t count = note->count < STACK_NOTE_MAX ? note->count : STACK_NOTE_MAX;

	for (uint64_t i = 0; i < count; i++)
		if (note->area[i].end == end) {
			*held = note->area[i].held;
			return 1;
		}
	return 0;
}

/* The range of area's pages for a thread with stack pointer rsp
 * (dead_stack_range), its area known to be its own. */
static int range_below(const struct stack_area *area, const struct stack_note *note, uint64_t rsp,
		       uint64_t lowest_written, uint64_t *start, uint64_t *end)
{
	uint64_t before;

	if (!noted_held(note, area->end, &before))
		return 0;
	uint64_t limit = rsp - RED_ZONE < lowest_written ? rsp - RED_ZONE : lowest_written;
	uint64_t pages = (area->end - area->start) / PAGE;
	if (pages > STACK_TOP_PAGES)
		pages = STACK_TOP_PAGES;
	/* Page i lies wholly below limit from i = first on. */
	uint64_t i = (area->end - (limit & ~(uint64_t)(PAGE - 1))) / PAGE, j;
	while (i < pages && (before >> i & 1))
		i++;
	for (j = i; j < pages && !(before >> j & 1); j++)
		;
	/* Pages i to j-1 held nothing at attach: those holding data now. */
	uint64_t run = j - i >= 64 ? ~0ull : ((1ull << (j - i)) - 1);
	uint64_t now_held = i < 64 ? (area->held >> i) & run : 0;
	if (!now_held)
		return 0;
	*end = area->end - (i + (uint64_t)__builtin_ctzll(now_held)) * PAGE;
	*start = area->end - (i + 64 - (uint64_t)__builtin_clzll(now_held)) * PAGE;
	return 1;
}

/* The area rsp lies in, NULL if none, or if it is the main thread's stack
 * and is_main is not set, or the other way round. */
static const struct stack_area *area_of(const struct stack_areas *now, int is_main, uint64_t rsp)
{
	for (size_t i = 0; i < now->n; i++)
		if (now->v[i].start <= rsp && rsp < now->v[i].end)
			return now->v[i].main == is_main ? &now->v[i] : NULL;
	return NULL;
}

int dead_stack_range(const struct stack_areas *now, const struct stack_note *note,
		     int is_main, uint64_t rsp, uint64_t fs_base, long orig_rax,
		     uint64_t lowest_written, uint64_t *start, uint64_t *end)
{
	const struct stack_area *area = area_of(now, is_main, rsp);

	if (orig_rax == SYS_vfork || orig_rax == SYS_clone || orig_rax == SYS_clone3 || !area ||
	    (!is_main && !(rsp < fs_base && fs_base < area->end)))
		return 0;
	return range_below(area, note, rsp, lowest_written, start, end);
}

int dead_stack_worth_stopping(const struct stack_areas *now, const struct stack_note *note,
			      int is_main, const char *syscall_line)
{
	uint64_t sp, start, end;
	long nr;

	if (strncmp(syscall_line, "running", 7) == 0)
		return 1;
	if (!syscall_line_parse(syscall_line, &nr, &sp))
		return 0;
	if (nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == SYS_epoll_pwait2)
		return 0;
	const struct stack_area *area = area_of(now, is_main, sp);
	return area && range_below(area, note, sp, sp - RED_ZONE, &start, &end);
}

int syscall_line_parse(const char *line, long *nr, uint64_t *sp)
{
	char *after;
	uint64_t word[9];
	int n = 0;

	*nr = strtol(line, &after, 10);
	if (after == line)
		return 0;
	for (line = after; n < 9; line = after) {
		while (*line == ' ')
			line++;
		if (*line == '\n' || *line == '\0')
			break;
		word[n++] = strtoull(line, &after, 16);
		if (after == line)
			return 0;
	}
	/* "NR ARG1..ARG6 SP PC" in a system call, "-1 SP PC" out of one */
	if (n != (*nr == -1 ? 2 : 8))
		return 0;
	*sp = word[n - 2];
	return 1;
}
