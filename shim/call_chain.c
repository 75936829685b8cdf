/*
 * call_chain.c - return-address chains (see call_chain.h): walked by the
 * modules' own frame rules (frame_rule.h), cached, and by libunwind for
 * whatever they do not describe, loaded only once a walk needs it.
 *
 * Must never read the stack but where a frame rule says a frame keeps its
 * return address or rbp, never unwind re-entrantly (a signal handler that
 * writes a line while this thread unwinds gets no chain), never lock, and
 * never report a chain that may have been cut short.
 */
#define UNW_LOCAL_ONLY
#include "call_chain.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <libunwind.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "fork_hot.h"
#include "frame_rule.h"
#include "large_table.h"
#include "next_symbol.h"
#include "page_bytes.h"
#include "raw_syscall.h"
#include "thread_count.h"

/* How far from the thread's first unwind a stack pointer may be and still
 * be on the same stack. */
#define STACK_REACH (1u << 20)

/* How far above the walk's first frame a frame rule may send it: the
 * default stack limit. Only a wrong unwind table would reach so far. */
#define WALK_REACH (8u << 20)

/* Descriptor numbers are placed below this, or below RLIMIT_NOFILE: high
 * enough to stay out of the program's way, low enough that the kernel's
 * descriptor table, which every fork copies, stays small. */
#define PIPE_CEILING 1024

static __thread bool unwinding __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_anchor __attribute__((tls_model("initial-exec")));
__thread const struct call_chain *call_chain_lender __attribute__((tls_model("initial-exec")));

static _Atomic int unwinder_pipe[2] = {-1, -1};
static _Atomic bool chains_off;

/* The frame rules' part, set up by call_chain_load: until then there are
 * no chains. libunwind, loaded by call_chain_load when asked for whole, or
 * once a walk met a frame the rules do not take (unwinder_wanted): until
 * then such a walk gives no chain. */
static _Atomic bool rules_taken, rules_ready;
static _Atomic bool unwinder_wanted;
enum { UNWINDER_ABSENT, UNWINDER_LOADING, UNWINDER_READY, UNWINDER_MISSING };
static _Atomic int unwinder_state;
static int (*unwind_backtrace)(void **frames, int size);
static int (*unwind_proc_info)(unw_addr_space_t space, unw_word_t ip, unw_proc_info_t *pi,
			       void *arg);
static unw_addr_space_t *unwind_local_space;

/* libc's code, where glibc's signal return trampoline lies: the only
 * return addresses whose bytes are read (a frame of a program without
 * unwind tables may be any stack word, mapped or not). */
static uintptr_t libc_code_start, libc_code_end;

static LOOP_PATH int find_libc_code(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	if (!is_libc_name(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			libc_code_start = info->dlpi_addr + ph->p_vaddr;
			libc_code_end = libc_code_start + ph->p_memsz;
		}
	}
	return 1;
}

static void load_unwinder(void)
{
	int expected = UNWINDER_ABSENT;
	if (atomic_load_explicit(&unwinder_state, memory_order_relaxed) != UNWINDER_ABSENT ||
	    !atomic_compare_exchange_strong(&unwinder_state, &expected, UNWINDER_LOADING))
		return;
	/* Local: its _Unwind_* never stand in for the program's own. */
	void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
	if (lib) {
		unwind_backtrace = (int (*)(void **, int))dlsym(lib, "unw_backtrace");
		unwind_proc_info = (int (*)(unw_addr_space_t, unw_word_t, unw_proc_info_t *,
					    void *))dlsym(lib, "_ULx86_64_get_proc_info_by_ip");
		unwind_local_space = (unw_addr_space_t *)dlsym(lib, "_ULx86_64_local_addr_space");
	}
	bool ready = unwind_backtrace && unwind_proc_info && unwind_local_space;
	atomic_store_explicit(&unwinder_state, ready ? UNWINDER_READY : UNWINDER_MISSING,
			      memory_order_release);
}

LOOP_PATH void call_chain_load(bool whole)
{
	bool expected = false;
	if (!atomic_load_explicit(&rules_taken, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&rules_taken, &expected, true)) {
		dl_iterate_phdr(find_libc_code, NULL);
		atomic_store_explicit(&rules_ready, true, memory_order_release);
	}
	if (whole || atomic_load_explicit(&unwinder_wanted, memory_order_relaxed))
		load_unwinder();
}

/* Set by a listen (call_chain_wanted); read at event loops' waits. */
static _Atomic bool chains_wanted;

_Atomic bool call_chain_settled;

/* A walk needs libunwind: loaded at the next chance (a wait while the
 * process has one thread), if it may come. */
static void want_unwinder(void)
{
	atomic_store(&unwinder_wanted, true);
	atomic_store(&call_chain_settled, false);
}

/* call_chain_load_if_wanted(false) found nothing to do, and will find none
 * until a walk wants libunwind while it is absent (want_unwinder, which
 * unsettles it after it wanted it: one of the two sees the other). */
static void settle(void)
{
	atomic_store(&call_chain_settled, true);
	if (atomic_load(&unwinder_wanted) &&
	    atomic_load(&unwinder_state) == UNWINDER_ABSENT)
		atomic_store(&call_chain_settled, false);
}

void call_chain_wanted(void)
{
	atomic_store_explicit(&chains_wanted, true, memory_order_relaxed);
}

LOOP_PATH void call_chain_load_if_wanted(bool whole)
{
	if (!atomic_load_explicit(&chains_wanted, memory_order_relaxed))
		return;
	bool unwinder = whole || atomic_load_explicit(&unwinder_wanted, memory_order_relaxed);
	if (atomic_load_explicit(&rules_taken, memory_order_relaxed) &&
	    (!unwinder ||
	     atomic_load_explicit(&unwinder_state, memory_order_relaxed) != UNWINDER_ABSENT)) {
		if (!whole)
			settle();
		return;
	}
	int saved = errno;
	/* A walk wanted libunwind at a wait: only if no thread the hooks did
	 * not see runs, else never (its walks give no chain). */
	int absent = UNWINDER_ABSENT;
	if (!whole && unwinder && thread_count() != 1)
		atomic_compare_exchange_strong(&unwinder_state, &absent, UNWINDER_MISSING);
	call_chain_load(whole);
	errno = saved;
}

LOOP_PATH bool call_chain_ready(void)
{
	return atomic_load_explicit(&rules_ready, memory_order_acquire);
}

/* Whether libunwind may still come (call_chain_load): what it would find
 * is not known yet. */
static bool unwinder_to_come(void)
{
	int state = atomic_load_explicit(&unwinder_state, memory_order_acquire);
	return state == UNWINDER_ABSENT || state == UNWINDER_LOADING;
}

static bool unwinder_ready(void)
{
	return atomic_load_explicit(&unwinder_state, memory_order_acquire) == UNWINDER_READY;
}

int call_chain_pipe(int fds[2], int flags)
{
	if ((int)syscall(SYS_pipe2, fds, flags | O_CLOEXEC) != 0)
		return -1;
	struct rlimit rl;
	rlim_t top = PIPE_CEILING;
	if (syscall(SYS_getrlimit, RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < top)
		top = rl.rlim_cur;
	for (int i = 0; i < 2 && top > 64; i++) {
		int high = (int)syscall(SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, (int)top - 2 + i);
		if (high >= 0) {
			syscall(SYS_close, fds[i]);
			fds[i] = high;
		}
	}
	atomic_store(&unwinder_pipe[0], fds[0]);
	atomic_store(&unwinder_pipe[1], fds[1]);
	return 0;
}

FORK_PATH bool call_chain_is_pipe(int fd)
{
	return fd >= 0 && (fd == atomic_load_explicit(&unwinder_pipe[0], memory_order_relaxed) ||
			   fd == atomic_load_explicit(&unwinder_pipe[1], memory_order_relaxed));
}

void call_chain_fd_closing(int fd)
{
	/* libunwind closes its own pipe only to make a new one (unwinding). */
	if (!unwinding && call_chain_is_pipe(fd))
		atomic_store(&chains_off, true);
}

/* The rule for pc from the unwind table of the module whose code holds it,
 * read while dl_iterate_phdr holds the loader's lock (so no dlclose unmaps
 * the table meanwhile; libunwind takes that lock on its cache misses too);
 * and the loader's count of modules unloaded so far. */
struct module_search {
	uintptr_t pc;
	struct frame_rule rule;
	unsigned long long unloaded;
};

/* The loaded segment of a module that holds addr, or NULL. */
static const ElfW(Phdr) *segment_holding(const struct dl_phdr_info *info, uintptr_t addr)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && addr >= start && addr - start < ph->p_memsz)
			return ph;
	}
	return NULL;
}

static LOOP_PATH int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct module_search *m = arg;
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		m->unloaded = info->dlpi_subs;
	if (!segment_holding(info, m->pc))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_GNU_EH_FRAME)
			continue;
		/* the table and the .eh_frame it indexes: in one readable segment */
		uintptr_t hdr = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		const ElfW(Phdr) *seg = segment_holding(info, hdr);
		if (seg && (seg->p_flags & PF_R)) {
			uintptr_t start = info->dlpi_addr + seg->p_vaddr;
			struct unwind_table t = {hdr, start, start + seg->p_filesz};
			m->rule = frame_rule_find(&t, m->pc);
		}
	}
	return 1;
}

static struct frame_rule rule_from_tables(uintptr_t pc, unsigned long long *unloaded)
{
	struct module_search m = {pc, {FRAME_UNKNOWN, false, false, 0, 0, 0}, 0};
	dl_iterate_phdr(find_module, &m);
	if (unloaded)
		*unloaded = m.unloaded;
	return m.rule;
}

/* Frame rules by address, shared by all threads: sets of RULE_WAYS
 * entries, one cache line each. An entry's tag is its address with a count
 * of the writes to the entry above it; a reader reads the tag, the rule
 * and the tag again, and takes the rule only if the tag has not changed. A
 * writer (one per set at a time, by the set's lock; a thread that finds it
 * taken does not cache) first sets the address in the tag to RULE_FILLING.
 * A rule carries the generation it was made in (20 bits); the generation
 * moves when a miss finds the loader has unloaded a module since the one
 * before: a module later loaded where an unloaded one was is walked by the
 * old rules only at addresses cached (or walks remembered, chain_memo) for
 * both until its first miss (libunwind's cache is never emptied). At most
 * 1536 rules, 32 KiB; the sets in use are the first 64 (one page) to start,
 * doubled (and the generation moved, which empties them all) when a rule
 * would take the place of a live one, up to all 512: an nginx worker's
 * walks cache some 30 addresses, which hashed over the 32 KiB touched all
 * 8 pages (in 128 KiB, 20), and on this project's VM a page only read
 * costs as much as one written. */
#define RULE_SET_BITS 9
#define RULE_SET_BITS_START 6
#define RULE_SETS (1u << RULE_SET_BITS)
#define RULE_WAYS 3
#define TAG_PC_BITS 47 /* user addresses, below 2^47: others are not cached */
#define TAG_PC ((1ull << TAG_PC_BITS) - 1)
#define RULE_FILLING 1ull /* never a looked-up address */

struct rule_set {
	_Atomic bool locked;
	uint8_t next;
	struct {
		_Atomic uint64_t tag;
		_Atomic uint64_t rule;
	} way[RULE_WAYS];
} __attribute__((aligned(64)));

/* Page-aligned, whole pages: call_chain_release_rules gives them back
 * whole, each at once (never a byte at a time under a reader). */
static struct rule_set rule_sets[RULE_SETS] __attribute__((aligned(PAGE_BYTES))) LARGE_TABLE;
_Static_assert(sizeof(rule_sets) % PAGE_BYTES == 0, "the rules fill whole pages");
static _Atomic uint32_t rule_generation;
static _Atomic unsigned long long rules_unloaded;
/* How often the sets in use doubled: 1 << (RULE_SET_BITS_START + it) */
static _Atomic uint32_t rule_sets_grown;

/* A rule in one word: kind (2 bits), whether the frame address is from
 * rbp, whether rbp is saved, the generation (20 bits), rbp's slot (16
 * bits, signed) and the frame address's offset (24 bits). A rule that does
 * not fit is kept as FRAME_UNKNOWN. */
#define PACKED_KIND 0x3u
#define PACKED_FROM_RBP 0x4u
#define PACKED_RBP_SAVED 0x8u
#define PACKED_GENERATION 0xfffff0u
#define PACKED_SLOT_SHIFT 24
#define PACKED_OFFSET_SHIFT 40

static uint64_t packed_generation(uint32_t generation)
{
	return ((uint64_t)generation << 4) & PACKED_GENERATION;
}

static uint64_t pack_rule(struct frame_rule r, uint32_t generation)
{
	uint64_t g = packed_generation(generation);
	if (r.kind == FRAME_STEP && (r.rbp_slot < INT16_MIN || r.rbp_slot > INT16_MAX ||
				     r.cfa_offset >= (1 << 24)))
		return FRAME_UNKNOWN | g;
	return (uint64_t)r.kind | (r.cfa_from_rbp ? PACKED_FROM_RBP : 0) |
	       (r.rbp_saved ? PACKED_RBP_SAVED : 0) | g |
	       (uint64_t)(uint16_t)(int16_t)r.rbp_slot << PACKED_SLOT_SHIFT |
	       (uint64_t)(uint32_t)r.cfa_offset << PACKED_OFFSET_SHIFT;
}

static int64_t rule_cfa_offset(uint64_t rule)
{
	return (int64_t)(rule >> PACKED_OFFSET_SHIFT);
}

static int64_t rule_rbp_slot(uint64_t rule)
{
	return (int16_t)(uint16_t)(rule >> PACKED_SLOT_SHIFT);
}

/* pc's set among those in use: the first ones, so that only their pages
 * are touched. An index taken before they doubled finds rules of a past
 * generation, or caches one where no lookup looks: never a wrong one. */
static struct rule_set *rule_set_of(uintptr_t pc)
{
	unsigned bits =
		RULE_SET_BITS_START + atomic_load_explicit(&rule_sets_grown, memory_order_relaxed);
	return &rule_sets[(pc * 0x9e3779b97f4a7c15ull) >> (64 - bits)];
}

/* Whether way w of set holds a rule of generation (one a lookup takes). */
static bool rule_live(const struct rule_set *set, int w, uint32_t generation)
{
	uint64_t tag = atomic_load_explicit(&set->way[w].tag, memory_order_relaxed) & TAG_PC;
	uint64_t r = atomic_load_explicit(&set->way[w].rule, memory_order_relaxed);
	return tag != 0 && tag != RULE_FILLING &&
	       (r & PACKED_GENERATION) == packed_generation(generation);
}

/* A rule found every way of its set live: doubles the sets in use and
 * moves the generation, unless they are all in use already. Whether it
 * (or another thread meanwhile) did. */
static bool rule_sets_grow(void)
{
	uint32_t grown = atomic_load_explicit(&rule_sets_grown, memory_order_relaxed);
	if (grown == RULE_SET_BITS - RULE_SET_BITS_START)
		return false;
	if (atomic_compare_exchange_strong_explicit(&rule_sets_grown, &grown, grown + 1,
						    memory_order_relaxed, memory_order_relaxed))
		atomic_fetch_add_explicit(&rule_generation, 1, memory_order_seq_cst);
	return true;
}

static bool cached_rule(uintptr_t pc, uint32_t generation, uint64_t *rule)
{
	struct rule_set *set = rule_set_of(pc);
	for (int i = 0; i < RULE_WAYS; i++) {
		uint64_t tag = atomic_load_explicit(&set->way[i].tag, memory_order_acquire);
		if ((tag & TAG_PC) != pc)
			continue;
		uint64_t r = atomic_load_explicit(&set->way[i].rule, memory_order_acquire);
		if (atomic_load_explicit(&set->way[i].tag, memory_order_relaxed) != tag ||
		    (r & PACKED_GENERATION) != packed_generation(generation))
			continue;
		*rule = r;
		return true;
	}
	return false;
}

/* Keeps rule for pc, made in generation: not if the generation has moved
 * since (the rule may be of a module since unloaded). */
static void cache_rule(uintptr_t pc, uint64_t rule, uint32_t generation)
{
	struct rule_set *set = rule_set_of(pc);
	if (pc > TAG_PC || atomic_exchange_explicit(&set->locked, true, memory_order_acquire))
		return;
	int w = set->next, i = 0;
	while (i < RULE_WAYS && rule_live(set, w, generation)) {
		w = (w + 1) % RULE_WAYS;
		i++;
	}
	if (atomic_load_explicit(&rule_generation, memory_order_relaxed) == generation &&
	    (i < RULE_WAYS || !rule_sets_grow())) {
		set->next = (uint8_t)((w + 1) % RULE_WAYS);
		uint64_t writes = (atomic_load_explicit(&set->way[w].tag, memory_order_relaxed) >>
				   TAG_PC_BITS) + 1;
		uint64_t count = writes << TAG_PC_BITS;
		atomic_store_explicit(&set->way[w].tag, count | RULE_FILLING, memory_order_relaxed);
		atomic_thread_fence(memory_order_release);
		atomic_store_explicit(&set->way[w].rule, rule, memory_order_relaxed);
		atomic_store_explicit(&set->way[w].tag, count | pc, memory_order_release);
	}
	atomic_store_explicit(&set->locked, false, memory_order_release);
}

/* Each set is taken first (its writers hold it while they write), so that
 * no writer is halfway through an entry whose page goes; the zeroes free
 * them all. The kernel swaps each page for zeroes at once: a reader that
 * read a tag and then finds the page gone reads the tag again as zero and
 * takes nothing. A walk begun before reads the zeroes as no rule, and the
 * generation moved, so it caches nothing in them. Locked pages (mlockall)
 * refuse: the sets are freed and the rules stay, of a past generation. */
static void rule_sets_unlock(unsigned count)
{
	for (unsigned i = 0; i < count; i++)
		atomic_store_explicit(&rule_sets[i].locked, false, memory_order_release);
}

void call_chain_release_rules(void)
{
	atomic_fetch_add_explicit(&rule_generation, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < RULE_SETS; i++) {
		int spins = 0;
		while (atomic_exchange_explicit(&rule_sets[i].locked, true, memory_order_acquire)) {
			if (++spins == 100000) {
				rule_sets_unlock(i);
				return;
			}
			raw_sched_yield();
		}
	}
	int saved = errno;
	if (madvise(rule_sets, sizeof(rule_sets), MADV_DONTNEED) != 0)
		rule_sets_unlock(RULE_SETS);
	errno = saved;
}

/* The rule for pc, as of generation (the walk's). */
static uint64_t rule_at(uintptr_t pc, uint32_t generation)
{
	uint64_t rule;
	if (cached_rule(pc, generation, &rule))
		return rule;
	unsigned long long unloaded;
	struct frame_rule found = rule_from_tables(pc, &unloaded);
	/* the count only grows: the first miss to see it grow moves the
	 * generation, and its rule is not kept (the table it was read from
	 * may be gone) */
	unsigned long long seen = atomic_load_explicit(&rules_unloaded, memory_order_relaxed);
	while (unloaded > seen) {
		if (atomic_compare_exchange_weak_explicit(&rules_unloaded, &seen, unloaded,
							  memory_order_relaxed, memory_order_relaxed)) {
			atomic_fetch_add_explicit(&rule_generation, 1, memory_order_relaxed);
			break;
		}
	}
	rule = pack_rule(found, generation);
	cache_rule(pc, rule, generation);
	return rule;
}

/* The word a remembered walk's stop reads (struct stack_read): never 1. */
static const uintptr_t memo_stop_word;

/* Ends a remembered walk's reads after its first n. */
static void memo_stop(struct remembered_walk *r, unsigned n)
{
	r->read[n].at = (uintptr_t)&memo_stop_word;
	r->read[n].value = 1;
}

/* Whether the words a remembered walk read still hold what they held,
 * checked in the walk's order: none past the first that differs is read.
 * The stop after them always differs, so the loop needs no count: the
 * reads held if it ended at the stop. */
static inline bool reads_hold(const struct remembered_walk *r)
{
	const struct stack_read *p = r->read;
	for (;; p += 4) {
		if (*(const uintptr_t *)p[0].at != p[0].value)
			break;
		if (*(const uintptr_t *)p[1].at != p[1].value) {
			p += 1;
			break;
		}
		if (*(const uintptr_t *)p[2].at != p[2].value) {
			p += 2;
			break;
		}
		if (*(const uintptr_t *)p[3].at != p[3].value) {
			p += 3;
			break;
		}
	}
	return p == r->read + r->reads;
}

/* Where a walk from stack pointer sp is hinted (chain_memo's hint). */
static uint8_t *memo_hint(struct chain_memo *memo, uintptr_t sp)
{
	_Static_assert(MEMO_HINTS == 16, "four bits of the hash");
	return &memo->hint[(uint32_t)((sp >> 3) * 0x9e3779b1u) >> 28];
}

/* The walk remembered for this stack pointer and rbp, checked against the
 * stack as it is, or NULL. The hinted walk is looked at first, then the
 * others from the one after it. */
static inline __attribute__((always_inline)) const struct remembered_walk *
walk_again(struct chain_memo *memo, uintptr_t sp, uintptr_t bp, uint32_t generation)
{
	uint8_t *hint = memo_hint(memo, sp);
	for (unsigned k = 0; k < MEMO_WALKS; k++) {
		unsigned w = (*hint + k) % MEMO_WALKS;
		const struct remembered_walk *r = &memo->walk[w];
		if (r->sp != sp || r->count <= 0 || (r->bp_used && r->bp != bp) ||
		    r->generation != generation || !reads_hold(r))
			continue;
		*hint = (uint8_t)w;
		return r;
	}
	return NULL;
}

/* The remembered walk a new walk from sp replaces, in turn (two chains
 * taken in turn from the same stack pointer each keep theirs), hinted for
 * sp; none while a chain holds a lend (its frames may be that walk's). */
static struct remembered_walk *walk_to_replace(struct chain_memo *memo, uintptr_t sp)
{
	if (call_chain_lender)
		return NULL;
	struct remembered_walk *r = &memo->walk[memo->next];
	*memo_hint(memo, sp) = (uint8_t)memo->next;
	memo->next = (memo->next + 1) % MEMO_WALKS;
	return r;
}

static void remember_read(struct remembered_walk *r, uintptr_t at, uintptr_t value)
{
	if (!r || r->count < 0)
		return;
	if (r->reads == MEMO_READS) {
		r->count = -1; /* too long to remember */
		return;
	}
	r->read[r->reads].at = at;
	r->read[r->reads].value = value;
	r->reads++;
	memo_stop(r, r->reads);
}

/* walk_rules could not take the chain: libunwind may */
#define WALK_ELSEWHERE (-1)
/* walk_rules met a signal frame: no chain */
#define WALK_NO_CHAIN (-2)

/* The chain by the frame rules alone from the frame whose pc, sp and rbp
 * are given (call_chain_take's, taken where it calls this: the walk reads
 * only words at or above sp, which this call's own frame, below it, leaves
 * as they were), as unw_backtrace gives it in call_chain_take's caller (the
 * return addresses, from call_chain_take's own out, ending before an
 * address under 0x4000 or at the outermost frame): its length (CHAIN_MAX
 * when it may go on), WALK_NO_CHAIN at a signal frame (libunwind would
 * cross it, and the chain be refused for it), or WALK_ELSEWHERE when a
 * frame is not in the common shape or the walk would leave
 * [sp, sp + WALK_REACH). Six arguments, all in registers: none is pushed
 * below sp either. Remembered
 * in r (if not NULL: its sp, rbp and generation set, nothing read yet).
 * Out of line: a walk taken again from memory (call_chain_take) needs none
 * of its registers. */
static LOOP_PATH __attribute__((noinline)) int walk_rules(void **frames, uintptr_t pc,
							   uintptr_t sp, uintptr_t bp,
							   uint32_t generation,
							   struct remembered_walk *r)
{
	uintptr_t top = sp + WALK_REACH;
	/* rbp as read from a frame, remembered only once a frame address is
	 * found from it (most programs never do: their rbp is a variable) */
	bool bp_as_given = true;
	uintptr_t bp_read_at = 0;
	int n = 0;
	for (;;) {
		uint64_t rule = rule_at(pc, generation);
		if ((rule & PACKED_KIND) == FRAME_OUTERMOST)
			break;
		if ((rule & PACKED_KIND) == FRAME_SIGNAL)
			return WALK_NO_CHAIN; /* r->count is 0: not remembered */
		if ((rule & PACKED_KIND) != FRAME_STEP)
			return WALK_ELSEWHERE;
		if ((rule & PACKED_FROM_RBP) && r) {
			if (bp_as_given)
				r->bp_used = true;
			else if (bp_read_at)
				remember_read(r, bp_read_at, bp);
			bp_read_at = 0;
		}
		uintptr_t cfa = ((rule & PACKED_FROM_RBP) ? bp : sp) + (uintptr_t)rule_cfa_offset(rule);
		if (cfa < sp + 8 || cfa > top || (cfa & 7))
			return WALK_ELSEWHERE;
		uintptr_t ra = *(const uintptr_t *)(cfa - 8);
		if (rule & PACKED_RBP_SAVED) {
			uintptr_t slot = cfa + (uintptr_t)rule_rbp_slot(rule);
			if (slot < sp || slot > top - 8 || (slot & 7))
				return WALK_ELSEWHERE;
			bp = *(const uintptr_t *)slot;
			bp_as_given = false;
			bp_read_at = slot;
		}
		sp = cfa;
		if (ra < 0x4000 || n == CHAIN_MAX) {
			remember_read(r, cfa - 8, ra);
			break;
		}
		remember_read(r, cfa - 8, ra);
		frames[n++] = (void *)ra;
		pc = ra - 1;
	}
	/* remembered unless too long (count -1); a walk of no frame is not
	 * (count 0 means none) */
	if (r) {
		r->count = r->count == 0 ? (int16_t)n : 0;
		memcpy(r->frames, frames, (size_t)r->count * sizeof(void *));
	}
	return n;
}

/* Whether a walk from sp is on the stack of the thread's first walk (set
 * then): not a coroutine's or an alternate signal stack. */
static bool on_first_stack(uintptr_t sp)
{
	if (stack_anchor == 0)
		stack_anchor = sp;
	return (sp > stack_anchor ? sp - stack_anchor : stack_anchor - sp) <= STACK_REACH;
}

/* The calling thread's chain by the frame rules (walk_rules) into chain,
 * from the frame of the function this is inlined in (call_chain_take: so
 * that a walk taken again from memo costs no call and no frame of its
 * own): its length, or WALK_NO_CHAIN, or WALK_ELSEWHERE. Taken again from
 * memo when it remembers this walk (its frames lent to chain, or copied
 * while another chain holds a lend); else walked (only on the thread's
 * first stack: a walk remembered was taken there) and remembered there,
 * but while a chain holds a lend. */
static inline __attribute__((always_inline)) int walk_frames(struct call_chain *chain,
							      struct chain_memo *memo)
{
	uintptr_t pc, sp, bp;
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(pc), "=r"(sp), "=r"(bp));
	uint32_t generation = atomic_load_explicit(&rule_generation, memory_order_relaxed);
	struct remembered_walk *r = NULL;
	if (memo) {
		const struct remembered_walk *again = walk_again(memo, sp, bp, generation);
		if (again) {
			chain->walk = again->serial;
			if (__builtin_expect(!call_chain_lender, 1)) {
				chain->frames = again->frames;
				call_chain_lender = chain;
			} else {
				memcpy(chain->own, again->frames,
				       (size_t)again->count * sizeof(void *));
			}
			return again->count;
		}
	}
	if (!on_first_stack(sp))
		return WALK_NO_CHAIN;
	if (memo && (r = walk_to_replace(memo, sp)) != NULL) {
		r->serial = ++memo->serials;
		r->sp = sp;
		r->bp = bp;
		r->generation = generation;
		r->count = 0;
		r->bp_used = false;
		r->reads = 0;
		memo_stop(r, 0);
	}
	return walk_rules(chain->own, pc, sp, bp, generation, r);
}

uintptr_t call_chain_function(const void *ip, bool *final)
{
	*final = false;
	if (unwinding || atomic_load_explicit(&chains_off, memory_order_relaxed) ||
	    !call_chain_ready())
		return 0;
	/* ip is a return address: the call before it is what it belongs to */
	uintptr_t pc = (uintptr_t)ip - 1;
	unw_proc_info_t pi;
	unwinding = true;
	uintptr_t function = rule_from_tables(pc, NULL).function;
	if (!function && unwinder_ready() && unwind_proc_info(*unwind_local_space, pc, &pi, NULL) == 0)
		function = (uintptr_t)pi.start_ip;
	unwinding = false;
	if (!function && unwinder_to_come()) {
		want_unwinder();
		return 0;
	}
	*final = true;
	return function;
}

FORK_PATH bool call_chain_unwinding(void)
{
	return unwinding;
}

/* x86-64 glibc's signal return trampoline (__restore_rt): mov $15,%rax;
 * syscall (48 c7 c0 0f 00 00 00 0f 05). A frame that returns there is a
 * signal handler's caller. Compared as one word and a byte, inline: this
 * runs for every frame of every chain; only inside libc's code, which is
 * mapped (the unwinder can return a stack word as a frame of code without
 * unwind tables: reading it could fault). */
static bool is_signal_return(const void *ip)
{
	if ((uintptr_t)ip < libc_code_start || (uintptr_t)ip + 9 > libc_code_end)
		return false;
	uint64_t head;
	memcpy(&head, ip, sizeof(head));
	return head == 0x0f0000000fc0c748ull && ((const unsigned char *)ip)[8] == 0x05;
}

LOOP_PATH void call_chain_take(struct call_chain *chain, struct chain_memo *memo)
{
	chain->count = 0;
	chain->walk = 0;
	chain->frames = chain->own;
	if (unwinding || atomic_load_explicit(&chains_off, memory_order_relaxed) ||
	    !call_chain_ready())
		return;
	unwinding = true;
	int n = walk_frames(chain, memo);
	bool walked = n != WALK_ELSEWHERE;
	if (!walked && unwinder_ready()) {
		n = unwind_backtrace(chain->own, CHAIN_MAX);
	} else if (!walked) {
		/* no chain now; libunwind at the next chance, if it may come */
		want_unwinder();
		n = 0;
	}
	unwinding = false;
	/* A full buffer may be a cut chain: its outer frames are unknown. */
	if (n <= 0 || n >= CHAIN_MAX) {
		chain->walk = 0;
		return;
	}
	if (!walked) {
		/* the frame rules never step through a signal frame */
		for (int i = 0; i < n; i++)
			if (is_signal_return(chain->own[i]))
				return;
		/* libunwind's chain begins in this function, the rules' in its
		 * caller (walk_frames is inlined here) */
		n--;
		memmove(chain->own, chain->own + 1, (size_t)n * sizeof(void *));
	}
	chain->count = n;
}

LOOP_PATH uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
{
	return XXH3_64bits(chain->frames + (chain->count - depth), (size_t)depth * sizeof(void *));
}
