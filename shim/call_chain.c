/*
 * call_chain.c - return-address chains through libunwind (see call_chain.h).
 *
 * Must never read the stack by itself, never unwind re-entrantly (a signal
 * handler that writes a line while this thread unwinds gets no chain), and
 * never report a chain that may have been cut short.
 */
#define UNW_LOCAL_ONLY
#include "call_chain.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <libunwind.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

/* How far from the thread's first unwind a stack pointer may be and still
 * be on the same stack. */
#define STACK_REACH (1u << 20)

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

uintptr_t call_chain_function(const void *ip)
{
	if (unwinding || atomic_load_explicit(&chains_off, memory_order_relaxed) ||
	    !call_chain_ready())
		return 0;
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
	int n = unwind_backtrace(chain->frames, CHAIN_MAX);
	unwinding = false;
	/* A full buffer may be a cut chain: its outer frames are unknown. */
	if (n <= 0 || n >= CHAIN_MAX)
		return;
	for (int i = 0; i < n; i++)
		if (is_signal_return(chain->frames[i]))
			return;
	chain->count = n;
}

uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
{
	return XXH3_64bits(chain->frames + (chain->count - depth), (size_t)depth * sizeof(void *));
}
