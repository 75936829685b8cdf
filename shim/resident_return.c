/*
 * resident_return.c - the file pages attach made resident go back at
 * detach (see resident_return.h).
 *
 * At attach, /proc/self/pagemap says which pages of each read-only private
 * file mapping are present; a bit each is kept. At detach every page of
 * such a mapping that is present now, maps its file's page (pagemap's
 * file bit: never a private copy, such as a GOT page the patcher wrote,
 * whose contents exist nowhere else) and was not present at attach is
 * dropped with MADV_DONTNEED: the kernel maps the file's page again at the
 * next touch. The shim's own file counts as not present at attach, and
 * so do the pages of libc and the loader that reqid-inject saw not present
 * before it touched them (REQID_RESIDENT_BEFORE, inject/resident_pages.c):
 * the injection runs their code before attach takes its note
 * (pthread_create on the borrowed thread, dlopen), and the kernel maps up
 * to 64 KiB of a file around each page touched.
 * Only mappings that were read-only when /proc/self/maps was read are
 * looked at, and each batch of pages is dropped right after its pagemap
 * entries are read: a page would lose a write only if the program made
 * its mapping writable and wrote it within those microseconds (the loader
 * does so only for text relocations, which x86_64 libraries do not have).
 * A process that gave up root (not dumpable) cannot read its own pagemap
 * (root's only then), but can its smaps: a mapping's pages count as
 * present at attach if it held any, and at detach a mapping smaps finds no
 * private copy in (Anonymous: 0, read right before its drop) goes back as
 * a whole but for those pages, and so does the shim's own code (no text
 * relocations; a debugger's breakpoint set in it would go too). Apache's
 * children (www-data) kept libunwind's, liblzma's and the shim's
 * read-only pages, 420-484 kB a process after detach; 204-284 since.
 *
 * The injector's thread runs libc code after that, on its way out; a
 * thread of the shim's own (resident_late_drop) waits for it to be gone
 * and drops those pages of libc's code the same way, each page's pagemap
 * entry read right before its drop. That thread is no glibc thread: it
 * runs with every signal blocked, on a page of the library's, calls no
 * function, and exits by the system call.
 *
 * The injector's thread's own stack is reqid-inject's, which gives its
 * pages back once the thread has exited (inject/reqid_inject.c,
 * drop_stack); its malloc arena stays with the process: nothing here asks
 * libc for anything that allocates (pthread_getattr_np, which the stack's
 * bounds once came from, allocated and freed a cpuset and an attribute
 * extension there, on a page of the arena that then stayed resident).
 *
 * Runs on the injector's thread only, but for that thread. Must never
 * drop a page that is not a clean copy of its file; any failure leaves
 * pages where they are.
 */
#include "resident_return.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "large_table.h"
#include "page_bytes.h"
#include "proc_lines.h"
#include "raw_syscall.h"

#define RANGES_MAX 4096
#define PAGES_MAX (1u << 27) /* 512 GB of mappings noted at most */
#define PRESENT (1ull << 63)
#define SWAPPED (1ull << 62)
#define FILE_PAGE (1ull << 61)

/* A mapping as /proc/self/maps lists it; and as smaps does, its resident
 * and anonymous (private copy) kB, when read from smaps (next_counted). */
struct mapping {
	uintptr_t start, end;
	bool readonly_private_file; /* r-?p with an inode */
	bool code;                  /* r-xp */
	unsigned long dev_major, dev_minor, inode;
	unsigned long rss_kb, anonymous_kb;
};

struct noted_range {
	uintptr_t start, end;
	size_t first_bit;
};

struct snapshot {
	size_t size;  /* bytes mapped for it */
	bool complete; /* every qualifying mapping is noted */
	unsigned ranges;
	size_t bits_used, bits_max;
	unsigned long own_major, own_minor, own_inode; /* the shim's file */
	struct noted_range range[RANGES_MAX];
	uint64_t bits[];
};

static struct snapshot *noted;

/* The late drop's thread (resident_late_drop), 0 if none was started.
 * Defined before the page-aligned notes, so that it lies among the
 * variables after them (on a page written at every detach anyway), not
 * alone on a page before them. */
static long late_thread;

_Atomic int hooked_waits;

/* Set when an attach begins (resident_late_drop_wait): the late drop's
 * thread waits no longer for the hooked waits to end. */
static volatile bool late_hurry;

/* The shim's own code pages to drop last (resident_return_own_code). */
#define OWN_RUNS_MAX 16
static struct {
	uintptr_t start, end;
} own_runs[OWN_RUNS_MAX];
static unsigned own_run_count;
extern const char __start_reqid_last_text[], __stop_reqid_last_text[];

/* What the late drop's thread (resident_late_drop) needs, on a page of its
 * own that it drops last: libc's code mapping, a bit a page saying it was
 * resident at the snapshot (kept), the thread to wait for, and its stack.
 * A libc whose code has more than LATE_PAGES_MAX pages gets no late drop. */
#define LATE_PAGES_MAX 8192
#define LATE_BATCH 64
struct late_notes {
	uintptr_t start, end; /* 0, 0: nothing to drop */
	long waited;	      /* the thread whose exit it waits for */
	bool own_code;	      /* it drops the shim's own code first
				 (resident_return_own_code) */
	uint64_t kept[LATE_PAGES_MAX / 64];
	uint64_t entries[LATE_BATCH];
	char pagemap_path[24];
};
static union {
	struct late_notes notes;
	char stack[PAGE_BYTES]; /* the thread's stack: what the notes leave, at the top */
} late __attribute__((aligned(PAGE_BYTES))) LARGE_TABLE;
_Static_assert(sizeof(late) == PAGE_BYTES && sizeof(struct late_notes) + 2048 <= PAGE_BYTES,
	       "the late drop's notes and at least 2 KiB of stack fill one page");

static const char *hex(const char *s, unsigned long *out)
{
	unsigned long v = 0;
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			break;
		v = v << 4 | d;
	}
	*out = v;
	return s;
}

static bool parse_mapping(const char *s, struct mapping *m)
{
	unsigned long start, end, offset, inode = 0;
	s = hex(s, &start);
	if (*s++ != '-')
		return false;
	s = hex(s, &end);
	if (*s++ != ' ' || strlen(s) < 5)
		return false;
	const char *perms = s;
	s += 4;
	if (*s++ != ' ')
		return false;
	s = hex(s, &offset);
	if (*s++ != ' ')
		return false;
	s = hex(s, &m->dev_major);
	if (*s++ != ':')
		return false;
	s = hex(s, &m->dev_minor);
	if (*s++ != ' ')
		return false;
	for (; *s >= '0' && *s <= '9'; s++)
		inode = inode * 10 + (unsigned long)(*s - '0');
	m->start = start;
	m->end = end;
	m->inode = inode;
	m->readonly_private_file = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' &&
				   inode != 0 && end > start;
	m->code = perms[2] == 'x';
	return true;
}

/* The files under /proc are opened, read and closed by system calls, not
 * through libc's functions (proc_lines.h): the shim's own uses of those
 * bind to its hooks, whose pages a hook's look-up would make resident
 * again. */
static int proc_open(const char *path)
{
	long fd = raw_syscall4(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
	return fd < 0 ? -1 : (int)fd;
}

static void proc_close(int fd)
{
	raw_syscall3(SYS_close, fd, 0, 0);
}

static bool maps_open(struct proc_lines *r)
{
	return proc_lines_open(r, "/proc/self/maps");
}

/* The next read-only private file mapping; false at the end. */
static bool next_mapping(struct proc_lines *r, struct mapping *m)
{
	char line[512];
	size_t len;
	while (proc_lines_next(r, line, sizeof(line), &len))
		if (parse_mapping(line, m) && m->readonly_private_file)
			return true;
	return false;
}

/* /proc/self/smaps, for a process that cannot read its own pagemap (one
 * that gave up root is not dumpable, and its pagemap, unlike its smaps, is
 * readable by root only): whether a mapping holds a page at all, and
 * whether any of its pages is a private copy, are all that is known. */
struct smaps_reader {
	struct proc_lines lines;
	bool pending; /* header holds the next mapping's line, read already */
	char header[512];
};

static bool smaps_open(struct smaps_reader *r)
{
	r->pending = false;
	return proc_lines_open(&r->lines, "/proc/self/smaps");
}

/* The kB of a "Name:   N kB" line if it is name's ("Rss:"), else false. */
static bool smaps_field(const char *line, const char *name, unsigned long *kb)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return false;
	unsigned long v = 0;
	for (line += n; *line == ' '; line++)
		;
	for (; *line >= '0' && *line <= '9'; line++)
		v = v * 10 + (unsigned long)(*line - '0');
	*kb = v;
	return true;
}

/* The next read-only private file mapping with its counts; false at the
 * end. */
static bool next_counted(struct smaps_reader *r, struct mapping *m)
{
	char line[512];
	size_t len;
	for (;;) {
		if (!r->pending && !proc_lines_next(&r->lines, r->header, sizeof(r->header), &len))
			return false;
		r->pending = false;
		if (!parse_mapping(r->header, m))
			continue;
		m->rss_kb = m->anonymous_kb = 0;
		while (proc_lines_next(&r->lines, line, sizeof(line), &len)) {
			struct mapping next;
			if (parse_mapping(line, &next)) {
				memcpy(r->header, line, len + 1);
				r->pending = true;
				break;
			}
			if (!smaps_field(line, "Rss:", &m->rss_kb))
				smaps_field(line, "Anonymous:", &m->anonymous_kb);
		}
		if (m->readonly_private_file)
			return true;
	}
}

static bool is_own(const struct snapshot *s, const struct mapping *m)
{
	return m->inode == s->own_inode && m->dev_major == s->own_major &&
	       m->dev_minor == s->own_minor;
}

/* The pagemap entries of count pages from addr into out; false if they
 * cannot be read. */
static bool pagemap_read(int fd, uintptr_t addr, uint64_t *out, size_t count)
{
	size_t want = count * sizeof(uint64_t);
	long got = raw_syscall4(SYS_pread64, fd, (long)out, (long)want,
				(long)(addr / PAGE_BYTES * sizeof(uint64_t)));
	return got == (long)want;
}

/* Without pagemap (a process that gave up root), mincore says which of
 * count pages from addr are present, into held; false if it cannot, or if
 * the system has swap: mincore calls a page swapped out not resident, and
 * it holds data. */
static bool held_by_mincore(const void *addr, size_t count, bool *held)
{
	struct sysinfo info;
	unsigned char present[PAGES_HELD_MAX];
	if (count > PAGES_HELD_MAX || raw_syscall3(SYS_sysinfo, (long)&info, 0, 0) != 0 ||
	    info.totalswap != 0 ||
	    raw_syscall3(SYS_mincore, (long)addr, (long)(count * PAGE_BYTES), (long)present) != 0)
		return false;
	for (size_t i = 0; i < count; i++)
		held[i] = present[i] & 1;
	return true;
}

void resident_pages_held(const void *addr, size_t count, bool *held)
{
	int saved = errno;
	uint64_t entries[PAGES_HELD_MAX];
	int fd = proc_open("/proc/self/pagemap");
	bool known = fd >= 0 && count <= PAGES_HELD_MAX &&
		     pagemap_read(fd, (uintptr_t)addr, entries, count);
	if (fd >= 0)
		proc_close(fd);
	if (!known && fd < 0 && held_by_mincore(addr, count, held)) {
		errno = saved;
		return;
	}
	for (size_t i = 0; i < count; i++)
		held[i] = !known || (entries[i] & (PRESENT | SWAPPED)) != 0;
	errno = saved;
}

#define BATCH 512

/* The shim's own file: the mapping its code lies in. */
static bool find_own_file(struct snapshot *s)
{
	struct proc_lines r;
	if (!maps_open(&r))
		return false;
	uintptr_t here = (uintptr_t)&find_own_file;
	char line[512];
	size_t len;
	struct mapping m;
	bool found = false;
	while (!found && proc_lines_next(&r, line, sizeof(line), &len))
		if (parse_mapping(line, &m) && m.start <= here && here < m.end && m.inode) {
			s->own_major = m.dev_major;
			s->own_minor = m.dev_minor;
			s->own_inode = m.inode;
			found = true;
		}
	proc_lines_close(&r);
	return found;
}

/* Pages of the qualifying mappings, and whether there are more than
 * RANGES_MAX of them. */
static size_t count_pages(bool *too_many)
{
	struct proc_lines r;
	size_t pages = 0;
	unsigned ranges = 0;
	struct mapping m;
	if (!maps_open(&r))
		return 0;
	while (next_mapping(&r, &m)) {
		pages += (m.end - m.start) / PAGE_BYTES;
		ranges++;
	}
	proc_lines_close(&r);
	*too_many = ranges > RANGES_MAX;
	return pages;
}

/* The hex digits REQID_RESIDENT_BEFORE (before: "START-END:DIGITS,...",
 * up to a newline or its end; inject/resident_pages.c) gives for the
 * mapping [start, end), *count of them; NULL if it lists none. */
static const char *before_digits(const char *before, uintptr_t start, uintptr_t end,
				 size_t *count)
{
	const char *p = before;
	while (p && *p && *p != '\n') {
		unsigned long listed_start, listed_end, unused;
		p = hex(p, &listed_start);
		if (*p++ != '-')
			return NULL;
		p = hex(p, &listed_end);
		if (*p++ != ':')
			return NULL;
		const char *digits = p;
		p = hex(p, &unused);
		if (listed_start == start && listed_end == end) {
			*count = (size_t)(p - digits);
			return digits;
		}
		if (*p++ != ',')
			return NULL;
	}
	return NULL;
}

/* Whether page `page` of a mapping was resident before the injection, as
 * its digits (before_digits) say; true if they say nothing of it. */
static bool resident_before(const char *digits, size_t count, size_t page)
{
	if (!digits || page / 4 >= count)
		return true;
	char c = digits[page / 4];
	unsigned value = c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
	return value >> (page % 4) & 1;
}

/* Without pagemap (pagemap < 0), from smaps: every page of a mapping that
 * held one counts as present, none of one that held none. */
static void note_pages(struct snapshot *s, int pagemap, const char *before)
{
	struct smaps_reader r;
	struct mapping m;
	uint64_t entries[BATCH];
	if (pagemap < 0 ? !smaps_open(&r) : !maps_open(&r.lines)) {
		s->complete = false;
		return;
	}
	while (pagemap < 0 ? next_counted(&r, &m) : next_mapping(&r.lines, &m)) {
		size_t pages = (m.end - m.start) / PAGE_BYTES;
		if (s->ranges == RANGES_MAX || s->bits_used + pages > s->bits_max) {
			s->complete = false;
			break;
		}
		struct noted_range *n = &s->range[s->ranges++];
		*n = (struct noted_range){m.start, m.end, s->bits_used};
		s->bits_used += pages;
		if (is_own(s, &m))
			continue; /* the shim's own: not there before attach */
		size_t digit_count = 0;
		const char *digits = before_digits(before, m.start, m.end, &digit_count);
		for (size_t done = 0; done < pages;) {
			size_t k = pages - done < BATCH ? pages - done : BATCH;
			if (pagemap < 0) {
				memset(entries, m.rss_kb ? 0xff : 0, k * sizeof(uint64_t));
			} else if (!pagemap_read(pagemap, m.start + done * PAGE_BYTES, entries, k)) {
				/* Unknown: counted as present, kept. */
				memset(entries, 0xff, k * sizeof(uint64_t));
			}
			for (size_t i = 0; i < k; i++) {
				size_t bit = n->first_bit + done + i;
				if ((entries[i] & PRESENT) &&
				    resident_before(digits, digit_count, done + i))
					s->bits[bit / 64] |= 1ull << (bit % 64);
			}
			done += k;
		}
	}
	proc_lines_close(&r.lines);
}

void resident_forget(void)
{
	if (noted) {
		munmap(noted, noted->size);
		noted = NULL;
	}
}

void resident_snapshot(const char *before)
{
	int saved = errno;
	resident_forget();
	bool too_many = false;
	size_t pages = count_pages(&too_many);
	size_t slack = pages / 16 + 4096; /* mappings made between the passes */
	size_t bits_max = pages + slack > PAGES_MAX ? PAGES_MAX : pages + slack;
	size_t size = offsetof(struct snapshot, bits) + (bits_max + 63) / 64 * sizeof(uint64_t);
	/* Unreadable in a process that gave up root (not dumpable): its pages
	 * count as present, and only the shim's own code goes back
	 * (resident_return). */
	int pagemap = proc_open("/proc/self/pagemap");
	struct snapshot *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
	if (s != MAP_FAILED) {
		s->size = size;
		s->complete = !too_many && bits_max == pages + slack;
		s->bits_max = bits_max;
		if (find_own_file(s)) {
			note_pages(s, pagemap, before);
			noted = s;
		} else {
			munmap(s, size);
		}
	}
	if (pagemap >= 0)
		proc_close(pagemap);
	errno = saved;
}

/* The noted range holding addr, NULL if none. */
static const struct noted_range *range_of(const struct snapshot *s, uintptr_t addr)
{
	unsigned lo = 0, hi = s->ranges;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (addr < s->range[mid].start)
			hi = mid;
		else if (addr >= s->range[mid].end)
			lo = mid + 1;
		else
			return &s->range[mid];
	}
	return NULL;
}

/* Whether page addr of mapping m may go: not present at the snapshot. */
static bool new_since(const struct snapshot *s, const struct mapping *m, uintptr_t addr)
{
	if (is_own(s, m))
		return true;
	const struct noted_range *n = range_of(s, addr);
	if (!n)
		return s->complete; /* mapped since, or not noted: kept if unsure */
	size_t bit = n->first_bit + (addr - n->start) / PAGE_BYTES;
	return !(s->bits[bit / 64] >> (bit % 64) & 1);
}

/* Drops [start, end) of mapping m now, or, for the shim's own code, notes
 * it for resident_return_own_code, less the pages of the code that runs
 * after it. */
static void drop(const struct mapping *m, uintptr_t start, uintptr_t end)
{
	if (end <= start)
		return;
	if (!(m->code && is_own(noted, m))) {
		madvise((void *)start, end - start, MADV_DONTNEED);
		return;
	}
	uintptr_t keep_start = (uintptr_t)__start_reqid_last_text & ~(uintptr_t)(PAGE_BYTES - 1);
	uintptr_t keep_end = ((uintptr_t)__stop_reqid_last_text + PAGE_BYTES - 1) & ~(uintptr_t)(PAGE_BYTES - 1);
	uintptr_t parts[2][2] = {{start, end < keep_start ? end : keep_start},
				 {start > keep_end ? start : keep_end, end}};
	for (int i = 0; i < 2; i++)
		if (parts[i][1] > parts[i][0] && own_run_count < OWN_RUNS_MAX) {
			own_runs[own_run_count].start = parts[i][0];
			own_runs[own_run_count].end = parts[i][1];
			own_run_count++;
		}
}

void resident_return_own_code(void)
{
	for (unsigned i = 0; i < own_run_count; i++)
		raw_syscall3(SYS_madvise, (long)own_runs[i].start,
			     (long)(own_runs[i].end - own_runs[i].start), MADV_DONTNEED);
	own_run_count = 0;
}

/* Whether the thread of the last late drop has exited (or none was
 * started): the notes are free. */
static inline __attribute__((always_inline)) bool late_thread_gone(void)
{
	return late_thread == 0 || raw_thread_gone((pid_t)late_thread);
}

/* Notes libc's code mapping m for the late drop: which of its pages were
 * resident at the snapshot. */
static void note_late(const struct mapping *m)
{
	size_t pages = (m->end - m->start) / PAGE_BYTES;
	if (pages > LATE_PAGES_MAX)
		return;
	memset(late.notes.kept, 0, sizeof(late.notes.kept));
	for (size_t i = 0; i < pages; i++)
		if (!new_since(noted, m, m->start + i * PAGE_BYTES))
			late.notes.kept[i / 64] |= 1ull << (i % 64);
	memcpy(late.notes.pagemap_path, "/proc/self/pagemap", sizeof("/proc/self/pagemap"));
	late.notes.start = m->start;
	late.notes.end = m->end;
}

void resident_return(void)
{
	int saved = errno;
	if (!noted) {
		errno = saved;
		return;
	}
	own_run_count = 0;
	/* The notes are written only once the last late drop's thread is
	 * gone (reqid_attach waits for it). */
	bool late_free = late_thread_gone();
	if (late_free)
		late.notes.start = late.notes.end = 0;
	/* An address in libc's code: of a function the library imports
	 * anyway (an import of its own, pthread_detach, cost every process
	 * some 660 instructions of the loader's at start). */
	uintptr_t libc_code = (uintptr_t)&__errno_location;
	struct smaps_reader r;
	int pagemap = proc_open("/proc/self/pagemap");
	if (pagemap < 0 ? smaps_open(&r) : maps_open(&r.lines)) {
		struct mapping m;
		uint64_t entries[BATCH];
		while (pagemap < 0 ? next_counted(&r, &m) : next_mapping(&r.lines, &m)) {
			/* Without pagemap, a mapping smaps finds no private
			 * copy in (a library loaded since may have had its
			 * text written: relocations, patches; a RELRO part
			 * has) holds its file's pages only, and so does the
			 * shim's own code. */
			if (pagemap < 0 && m.anonymous_kb != 0 && !(m.code && is_own(noted, &m)))
				continue;
			if (late_free && pagemap >= 0 && m.code && m.start <= libc_code &&
			    libc_code < m.end)
				note_late(&m);
			size_t pages = (m.end - m.start) / PAGE_BYTES;
			for (size_t done = 0; done < pages;) {
				size_t k = pages - done < BATCH ? pages - done : BATCH;
				uintptr_t base = m.start + done * PAGE_BYTES;
				if (pagemap < 0) {
					for (size_t i = 0; i < k; i++)
						entries[i] = PRESENT | FILE_PAGE;
				} else if (!pagemap_read(pagemap, base, entries, k)) {
					done += k;
					continue;
				}
				uintptr_t run = 0; /* start of the run of pages to drop, 0: none */
				for (size_t i = 0; i < k; i++) {
					uintptr_t addr = base + i * PAGE_BYTES;
					bool go = (entries[i] & PRESENT) && (entries[i] & FILE_PAGE) &&
						  new_since(noted, &m, addr);
					if (go && !run)
						run = addr;
					if (!go && run) {
						drop(&m, run, addr);
						run = 0;
					}
				}
				if (run)
					drop(&m, run, base + k * PAGE_BYTES);
				done += k;
			}
		}
		proc_lines_close(&r.lines);
	}
	if (pagemap >= 0)
		proc_close(pagemap);
	resident_forget();
	errno = saved;
}

/* How long the late drop's thread waits, at most, for the thread that
 * started it to be gone, then for no thread to be inside a hooked wait. */
#define LATE_WAIT_NS 1000000000L
#define HOOKED_WAIT_NS 200000000L

/* The late drop's thread: runs on late.stack with every signal blocked and
 * the exiting thread's thread pointer, so it calls nothing (no libc, no
 * TLS) but system calls and the code beside it (RESIDENT_LAST_CODE). Once
 * the thread it waits for is gone (at most a second or so: dropping while
 * it runs is safe, its pages come back), and then no thread of the program
 * is inside a wait a hook made (hooked_waits; at most HOOKED_WAIT_NS: an
 * idle program may sit in one for good), the shim's own code goes
 * (own_code), then each page of libc's code that is resident, maps its
 * file's page (pagemap's file bit, read right before: never a private
 * copy) and was not resident at the snapshot; then the page of its notes
 * and stack, with no use of the stack after, and the thread exits.
 * A wait that returns runs the rest of its hook, and a page of the shim's
 * code touched after its drop comes back with up to 64 KiB around it: an
 * nginx worker sitting in its epoll_wait at detach, woken by
 * reqid-inject's last stop of its main thread once the injector's thread
 * had gone, made two such windows resident again (128-192 kB, in about
 * half of the detaches of an idle nginx). */
static RESIDENT_LAST_CODE __attribute__((noreturn, used)) void late_drop_thread(void)
{
	struct late_notes *n = &late.notes;
	/* Naps from 10 us, doubling up to 1 ms: the pages go back within
	 * microseconds of that thread's end, so that the process is back to
	 * its size about when reqid-inject sees it gone and returns. Stored one
	 * by one: a constant struct would be read from the library's
	 * read-only data, dropped by now. */
	volatile long nap[2];
	nap[0] = 0;
	long nap_ns = 10000, waited_ns = 0;
	while (waited_ns < LATE_WAIT_NS && !raw_thread_gone((pid_t)n->waited)) {
		nap[1] = nap_ns;
		raw_syscall3(SYS_nanosleep, (long)nap, 0, 0);
		waited_ns += nap_ns;
		nap_ns = nap_ns < 500000 ? nap_ns * 2 : 1000000;
	}
	if (n->own_code) {
		nap[1] = 1000000;
		for (waited_ns = 0; atomic_load_explicit(&hooked_waits, memory_order_acquire) > 0 &&
				    waited_ns < HOOKED_WAIT_NS && !late_hurry;
		     waited_ns += nap[1])
			raw_syscall3(SYS_nanosleep, (long)nap, 0, 0);
		/* The last thread to leave its wait may still be on its way
		 * out of the hook: a millisecond more. */
		if (waited_ns > 0)
			raw_syscall3(SYS_nanosleep, (long)nap, 0, 0);
		resident_return_own_code();
	}
	long fd = raw_syscall4(SYS_openat, AT_FDCWD, (long)n->pagemap_path, O_RDONLY | O_CLOEXEC,
			       0);
	size_t pages = (n->end - n->start) / PAGE_BYTES;
	for (size_t done = 0; fd >= 0 && done < pages; done += LATE_BATCH) {
		size_t k = pages - done < LATE_BATCH ? pages - done : LATE_BATCH;
		uintptr_t base = n->start + done * PAGE_BYTES;
		if (raw_syscall4(SYS_pread64, fd, (long)n->entries, (long)(k * sizeof(uint64_t)),
				 (long)(base / PAGE_BYTES * sizeof(uint64_t))) != (long)(k * sizeof(uint64_t)))
			continue;
		for (size_t i = 0; i < k; i++) {
			size_t bit = done + i;
			if ((n->entries[i] & PRESENT) && (n->entries[i] & FILE_PAGE) &&
			    !(n->kept[bit / 64] >> (bit % 64) & 1))
				raw_syscall3(SYS_madvise, (long)(base + i * PAGE_BYTES), PAGE_BYTES, MADV_DONTNEED);
		}
	}
	if (fd >= 0)
		raw_syscall3(SYS_close, fd, 0, 0);
	__asm__ volatile("syscall\n\t"
			 "mov %[exit], %%eax\n\t"
			 "xor %%edi, %%edi\n\t"
			 "syscall\n\t"
			 "ud2"
			 :
			 : "a"((long)SYS_madvise), "D"(&late), "S"((long)sizeof(late)),
			   "d"((long)MADV_DONTNEED), [exit] "i"(SYS_exit)
			 : "rcx", "r11", "memory");
	__builtin_unreachable();
}

void resident_late_drop(void)
{
	struct late_notes *n = &late.notes;
	if (n->end == 0 || !late_thread_gone()) {
		/* No thread runs on the notes' page (resident_return wrote their
		 * end there): it goes back, reading as zeroes, no notes, again. */
		bool notes_idle = late_thread_gone();
		resident_return_own_code();
		if (notes_idle)
			raw_syscall3(SYS_madvise, (long)&late, sizeof(late), MADV_DONTNEED);
		return;
	}
	n->own_code = true;
	late_hurry = false;
	n->waited = raw_syscall3(SYS_gettid, 0, 0, 0);
	uint64_t every = ~0ull, old;
	raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&every, (long)&old, sizeof(every));
	long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
		     CLONE_SYSVSEM;
	void (*child)(void) = late_drop_thread;
	long tid;
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 0;
	/* The new thread starts on the top of late.stack (16-byte aligned, as
	 * a call wants it) and calls late_drop_thread, which never returns. */
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "call *%[child]\n\t"
			 "ud2\n"
			 "1:"
			 : "=a"(tid)
			 : "a"((long)SYS_clone), "D"(flags), "S"(late.stack + sizeof(late)),
			   "d"(0L), "r"(r10), "r"(r8), [child] "r"(child)
			 : "rcx", "r11", "memory");
	raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, sizeof(old));
	if (tid > 0) {
		late_thread = tid;
	} else {
		resident_return_own_code();
		raw_syscall3(SYS_madvise, (long)&late, sizeof(late), MADV_DONTNEED);
	}
}

void resident_late_drop_wait(void)
{
	late_hurry = true;
	struct timespec nap = {0, 1000000};
	for (int naps = 0; naps < 100 && !late_thread_gone(); naps++)
		nanosleep(&nap, NULL);
}
