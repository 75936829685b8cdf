/*
 * call_chain.c - return-address chains (see call_chain.h): walked by the
 * modules' own frame rules (frame_rule.h), cached, and by libunwind for
 * whatever they do not describe.
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
#include <fcntl.h>
#include <link.h>
#include <libunwind.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "frame_rule.h"

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

static _Atomic int unwinder_pipe[2] = {-1, -1};
static _Atomic bool chains_off;

/* libunwind, loaded by call_chain_load: until then there are no chains. */
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

static int find_libc_code(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	size_t n = info->dlpi_name ? strlen(info->dlpi_name) : 0;
	if (n < 9 || strcmp(info->dlpi_name + n - 9, "libc.so.6") != 0)
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

void call_chain_load(void)
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
	dl_iterate_phdr(find_libc_code, NULL);
	bool ready = unwind_backtrace && unwind_proc_info && unwind_local_space;
	atomic_store_explicit(&unwinder_state, ready ? UNWINDER_READY : UNWINDER_MISSING,
			      memory_order_release);
}

bool call_chain_ready(void)
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

bool call_chain_is_pipe(int fd)
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

/* The unwind table of the module whose code holds pc, found with
 * dl_iterate_phdr (the loader's lock, as libunwind takes it on its cache
 * misses); and the loader's count of modules unloaded so far. */
struct module_search {
	uintptr_t pc;
	struct unwind_table table;
	bool found;
	unsigned long long unloaded;
};

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct module_search *m = arg;
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		m->unloaded = info->dlpi_subs;
	const ElfW(Phdr) *eh = NULL;
	bool holds = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && m->pc >= start && m->pc - start < ph->p_memsz)
			holds = true;
		else if (ph->p_type == PT_GNU_EH_FRAME)
			eh = ph;
	}
	if (!holds)
		return 0;
	if (eh) {
		uintptr_t hdr = info->dlpi_addr + eh->p_vaddr;
		for (int i = 0; i < info->dlpi_phnum; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uintptr_t start = info->dlpi_addr + ph->p_vaddr;
			if (ph->p_type == PT_LOAD && (ph->p_flags & PF_R) && hdr >= start &&
			    hdr - start < ph->p_filesz) {
				m->table = (struct unwind_table){hdr, start, start + ph->p_filesz};
				m->found = true;
			}
		}
	}
	return 1;
}

static struct frame_rule rule_from_tables(uintptr_t pc, unsigned long long *unloaded)
{
	struct module_search m = {pc, {0, 0, 0}, false, 0};
	dl_iterate_phdr(find_module, &m);
	if (unloaded)
		*unloaded = m.unloaded;
	if (!m.found)
		return (struct frame_rule){FRAME_UNKNOWN, false, false, 0, 0, 0};
	return frame_rule_find(&m.table, pc);
}

/* Frame rules by address, shared by all threads: sets of RULE_WAYS
 * entries, one cache line each, each set under a sequence count (odd while
 * its one writer fills it; a reader that sees it odd or changed, or a set
 * of another generation, misses). The generation moves when a miss finds
 * the loader has unloaded a module since the one before: a module later
 * loaded where an unloaded one was is walked by the old rules only at
 * addresses cached for both until its first miss (libunwind's cache is
 * never emptied). 3072 rules, 64 KiB, touched as they fill. */
#define RULE_SET_BITS 10
#define RULE_SETS (1u << RULE_SET_BITS)
#define RULE_WAYS 3

struct rule_set {
	_Atomic uint32_t seq;
	uint32_t generation;
	uint32_t next;
	uint32_t unused;
	struct {
		uintptr_t pc;
		uint64_t rule;
	} way[RULE_WAYS];
} __attribute__((aligned(64)));

static struct rule_set rule_sets[RULE_SETS];
static _Atomic uint32_t rule_generation;
static _Atomic unsigned long long rules_unloaded;

/* A rule in one word: kind, whether the frame address is from rbp, whether
 * rbp is saved; rbp's slot (16 bits) and the frame address's offset. A
 * rule that does not fit is kept as FRAME_UNKNOWN. */
#define PACKED_FROM_RBP 0x100u
#define PACKED_RBP_SAVED 0x200u

static uint64_t pack_rule(struct frame_rule r)
{
	if (r.kind == FRAME_STEP && (r.rbp_slot < INT16_MIN || r.rbp_slot > INT16_MAX))
		return FRAME_UNKNOWN;
	return (uint64_t)r.kind | (r.cfa_from_rbp ? PACKED_FROM_RBP : 0) |
	       (r.rbp_saved ? PACKED_RBP_SAVED : 0) | (uint64_t)(uint16_t)(int16_t)r.rbp_slot << 16 |
	       (uint64_t)(uint32_t)r.cfa_offset << 32;
}

static struct rule_set *rule_set_of(uintptr_t pc)
{
	return &rule_sets[(pc * 0x9e3779b97f4a7c15ull) >> (64 - RULE_SET_BITS)];
}

static bool cached_rule(uintptr_t pc, uint64_t *rule)
{
	struct rule_set *set = rule_set_of(pc);
	uint32_t seq = atomic_load_explicit(&set->seq, memory_order_acquire);
	if ((seq & 1) || __atomic_load_n(&set->generation, __ATOMIC_RELAXED) !=
				 atomic_load_explicit(&rule_generation, memory_order_relaxed))
		return false;
	bool hit = false;
	for (int i = 0; i < RULE_WAYS; i++)
		if (__atomic_load_n(&set->way[i].pc, __ATOMIC_RELAXED) == pc) {
			*rule = __atomic_load_n(&set->way[i].rule, __ATOMIC_RELAXED);
			hit = true;
		}
	atomic_thread_fence(memory_order_acquire);
	return hit && atomic_load_explicit(&set->seq, memory_order_relaxed) == seq;
}

static void cache_rule(uintptr_t pc, uint64_t rule)
{
	struct rule_set *set = rule_set_of(pc);
	uint32_t seq = atomic_load_explicit(&set->seq, memory_order_relaxed);
	if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&set->seq, &seq, seq + 1,
								  memory_order_acquire,
								  memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	uint32_t generation = atomic_load_explicit(&rule_generation, memory_order_relaxed);
	if (set->generation != generation) {
		for (int i = 0; i < RULE_WAYS; i++)
			__atomic_store_n(&set->way[i].pc, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&set->generation, generation, __ATOMIC_RELAXED);
	}
	uint32_t w = set->next;
	set->next = (w + 1) % RULE_WAYS;
	__atomic_store_n(&set->way[w].rule, rule, __ATOMIC_RELAXED);
	__atomic_store_n(&set->way[w].pc, pc, __ATOMIC_RELAXED);
	atomic_store_explicit(&set->seq, seq + 2, memory_order_release);
}

static uint64_t rule_at(uintptr_t pc)
{
	uint64_t rule;
	if (cached_rule(pc, &rule))
		return rule;
	unsigned long long unloaded;
	rule = pack_rule(rule_from_tables(pc, &unloaded));
	if (atomic_exchange_explicit(&rules_unloaded, unloaded, memory_order_relaxed) != unloaded)
		atomic_fetch_add_explicit(&rule_generation, 1, memory_order_relaxed);
	cache_rule(pc, rule);
	return rule;
}

/* The calling thread's chain by the frame rules alone, as unw_backtrace
 * gives it (the return addresses, from the caller of this
 * function out, ending before an address under 0x4000 or at the outermost
 * frame): its length (max when it may go on), or -1 when a frame is not in
 * the common shape or the walk would leave [its own frame, that + reach). */
static __attribute__((noinline)) int walk_frames(void **frames, int max, uintptr_t reach)
{
	uintptr_t pc, sp, bp;
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(pc), "=r"(sp), "=r"(bp));
	uintptr_t top = sp + reach;
	int n = 0;
	for (;;) {
		uint64_t rule = rule_at(pc);
		if ((rule & 0xff) == FRAME_OUTERMOST)
			return n;
		if ((rule & 0xff) != FRAME_STEP)
			return -1;
		uintptr_t cfa = ((rule & PACKED_FROM_RBP) ? bp : sp) + (uintptr_t)(int64_t)(int32_t)(rule >> 32);
		if (cfa < sp + 8 || cfa > top || (cfa & 7))
			return -1;
		uintptr_t ra = *(const uintptr_t *)(cfa - 8);
		if (rule & PACKED_RBP_SAVED) {
			uintptr_t slot = cfa + (uintptr_t)(int64_t)(int16_t)(uint16_t)(rule >> 16);
			if (slot < sp || slot > top - 8 || (slot & 7))
				return -1;
			bp = *(const uintptr_t *)slot;
		}
		sp = cfa;
		if (ra < 0x4000 || n == max)
			return n;
		frames[n++] = (void *)ra;
		pc = ra - 1;
	}
}

uintptr_t call_chain_function(const void *ip)
{
	if (unwinding || atomic_load_explicit(&chains_off, memory_order_relaxed) ||
	    !call_chain_ready())
		return 0;
	unwinding = true;
	/* ip is a return address: the call before it is what it belongs to */
	uintptr_t function = rule_from_tables((uintptr_t)ip - 1, NULL).function;
	unwinding = false;
	if (function)
		return function;
	unw_proc_info_t pi;
	unwinding = true;
	/* ip is a return address: the call before it is what it belongs to */
	int r = unwind_proc_info(*unwind_local_space, (unw_word_t)ip - 1, &pi, NULL);
	unwinding = false;
	return r == 0 ? (uintptr_t)pi.start_ip : 0;
}

bool call_chain_unwinding(void)
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

void call_chain_take(struct call_chain *chain)
{
	chain->count = 0;
	if (unwinding || atomic_load_explicit(&chains_off, memory_order_relaxed) ||
	    !call_chain_ready())
		return;
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	if (stack_anchor == 0)
		stack_anchor = sp;
	if ((sp > stack_anchor ? sp - stack_anchor : stack_anchor - sp) > STACK_REACH)
		return;
	unwinding = true;
	int n = walk_frames(chain->frames, CHAIN_MAX, WALK_REACH);
	bool walked = n >= 0;
	if (!walked)
		n = unwind_backtrace(chain->frames, CHAIN_MAX);
	unwinding = false;
	/* A full buffer may be a cut chain: its outer frames are unknown. */
	if (n <= 0 || n >= CHAIN_MAX)
		return;
	/* the frame rules never step through a signal frame */
	for (int i = 0; !walked && i < n; i++)
		if (is_signal_return(chain->frames[i]))
			return;
	chain->count = n;
}

uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
{
	return XXH3_64bits(chain->frames + (chain->count - depth), (size_t)depth * sizeof(void *));
}
