/*
 * hook_signal.c - runs every signal handler the program installs through a
 * trampoline that marks the thread "in a handler" (signal_frames.h), so
 * that a line a handler writes (a SIGCHLD reaper logging the child it
 * reaped) gets no id instead of the id of whatever request the interrupted
 * thread serves.
 *
 * Hooks sigaction and glibc's signal entry points that do not go through
 * the exported sigaction (signal = bsd_signal = ssignal; sysv_signal =
 * __sysv_signal; sigset, whose old handler given back and installed again
 * must stay the program's). sigaction calls the next library's (a
 * preloaded signal-chaining library after this one, such as the JVM's
 * libjsig, keeps its place), glibc's before the originals are known. The kernel gets the trampoline with the program's own
 * flags and mask; SIG_DFL and SIG_IGN pass through untouched. Must never
 * change what the program sees: the old action it is given names its own
 * handler, never a trampoline; return values and errno are the real
 * call's. Async-signal-safe: the handlers' places are static (never
 * released, so that after detach the trampolines the kernel still holds
 * keep calling the program's handlers) and written with single atomic
 * stores. The calls a fork child makes (resetting its signals) are
 * FORK_PATH code.
 */
#include "hooks.h"

#include "signal_frames.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>


/* glibc's sigaction under the name the shim does not take: before the
 * constructor, and from the hook. */
int __sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

typedef void (*plain_handler)(int);
typedef void (*info_handler)(int, siginfo_t *, void *);

/* sa_handler and sa_sigaction share their place: one seen as the other. */
static plain_handler as_plain(info_handler h)
{
	return (plain_handler)(void (*)(void))h;
}

/* The program's handler of each signal and kind of trampoline (plain,
 * SA_SIGINFO), under a key: the signal, plus _NSIG for the SA_SIGINFO
 * kind. Order of an update: the new handler is stored in its key's place
 * before the kernel is given that kind's trampoline, and never cleared. A
 * signal that arrives meanwhile is delivered through whatever the kernel
 * held: the same kind's trampoline then calls the new handler (as if it had
 * come just after the call, which a program cannot tell apart), the other
 * kind's its own key's handler, the one the kernel's action was made for. A
 * handler replaced by SIG_DFL or SIG_IGN stays in its place, so a delivery
 * already under way still finds it. */
typedef void (*any_handler)(void);
#define INFO_KEY(sig) ((sig) + _NSIG)

/* The place of a key is one of HANDLER_SLOTS slots on the FORK_HOT page,
 * or else its entry in handler_table: a fork child that installs a handler
 * for a signal its parent never did (busybox httpd's SIGALRM, for each
 * connection) writes no page of its own for it, where a table entry in
 * .bss cost it a page copy (test_fork_faults). The first keys installed
 * take the slots, in slot order, and keep them for good (a slot's key is
 * never cleared, in this process and the children that inherit it): a key
 * goes to the table only once every slot is taken, so its place never
 * moves, and a trampoline finds the handler where the install put it. */
#define HANDLER_SLOTS 4
struct handler_slot {
	_Atomic int key; /* 0: free */
	_Atomic(any_handler) handler;
};
static struct handler_slot handler_slots[HANDLER_SLOTS] FORK_HOT;
static _Atomic(any_handler) handler_table[2 * _NSIG];

/* The place of key's handler, for a trampoline or a report. Slots are
 * taken in order: none after a free one is taken. */
static inline __attribute__((always_inline)) _Atomic(any_handler) *handler_place(int key)
{
	for (int i = 0; i < HANDLER_SLOTS; i++) {
		int held = atomic_load_explicit(&handler_slots[i].key, memory_order_acquire);
		if (held == key)
			return &handler_slots[i].handler;
		if (held == 0)
			break;
	}
	return &handler_table[key];
}

/* The place of key's handler for an install: its slot, or the first free
 * one, which it takes (a compare-and-swap: of two installs racing for a
 * slot, the loser goes on to the next), or its table entry. */
static _Atomic(any_handler) *handler_place_taken(int key)
{
	for (int i = 0; i < HANDLER_SLOTS; i++) {
		int held = 0;
		if (atomic_compare_exchange_strong(&handler_slots[i].key, &held, key) || held == key)
			return &handler_slots[i].handler;
	}
	return &handler_table[key];
}

static any_handler as_any(plain_handler h)
{
	return (any_handler)h;
}

/* The calling trampoline enters a handler: its frame is recorded unless
 * the frame recorded already holds it (an outer handler's on the same
 * stack). Frame first, then the depth, so that a nested signal meanwhile
 * saves and puts back both as it found them; the depth stops at 255. */
static inline __attribute__((always_inline)) void enter_handler(uintptr_t frame)
{
	uint8_t depth = thread_ctx.signal_depth;
	if (depth == 0 || !signal_frame_holds(thread_ctx.signal_frame, frame))
		thread_ctx.signal_frame = frame;
	atomic_signal_fence(memory_order_seq_cst);
	thread_ctx.signal_depth = depth == UINT8_MAX ? depth : (uint8_t)(depth + 1);
	atomic_signal_fence(memory_order_seq_cst);
}

static inline __attribute__((always_inline)) void leave_handler(uint8_t depth, uintptr_t frame)
{
	atomic_signal_fence(memory_order_seq_cst);
	thread_ctx.signal_depth = depth;
	thread_ctx.signal_frame = frame;
}

static void run_plain(int sig)
{
	uint8_t depth = thread_ctx.signal_depth;
	uintptr_t frame = thread_ctx.signal_frame;
	enter_handler((uintptr_t)__builtin_frame_address(0));
	((plain_handler)atomic_load_explicit(handler_place(sig), memory_order_acquire))(sig);
	leave_handler(depth, frame);
}

static void run_info(int sig, siginfo_t *info, void *context)
{
	uint8_t depth = thread_ctx.signal_depth;
	uintptr_t frame = thread_ctx.signal_frame;
	enter_handler((uintptr_t)__builtin_frame_address(0));
	((info_handler)atomic_load_explicit(handler_place(INFO_KEY(sig)), memory_order_acquire))(
		sig, info, context);
	leave_handler(depth, frame);
}

/* The shim's own handler body, run as the trampolines run a program's:
 * marked as in a handler (a line it completes is no request's). */
void signal_run_own(void (*body)(int), int sig)
{
	uint8_t depth = thread_ctx.signal_depth;
	uintptr_t frame = thread_ctx.signal_frame;
	enter_handler((uintptr_t)__builtin_frame_address(0));
	body(sig);
	leave_handler(depth, frame);
}

/* The next library's sigaction, past this hook: for the shim's own
 * handlers, which need no trampoline and no place among the program's
 * handlers (a fork child that installs them writes no page for them). A
 * query through the hook reports such a handler as it is. */
int signal_action_direct(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	int (*fn)(int, const struct sigaction *, struct sigaction *) = REAL(sigaction);
	return fn ? fn(sig, act, oldact) : __sigaction(sig, act, oldact);
}

/* SIGKILL and SIGSTOP, which the kernel never gives a handler, pass
 * through (refused as before) and take no slot. */
static FORK_PATH bool wraps(int sig, void (*handler)(int))
{
	return sig > 0 && sig < _NSIG && sig != SIGKILL && sig != SIGSTOP && handler != SIG_DFL &&
	       handler != SIG_IGN && handler != SIG_ERR && handler != run_plain &&
	       handler != as_plain(run_info);
}

/* The handler to report for old, the handler a call found in place: the
 * program's, where it was a trampoline. written: the key whose place the
 * call itself wrote (0: none), over replaced. */
static FORK_PATH plain_handler handler_named(int sig, plain_handler old, int written,
					      any_handler replaced)
{
	int key;
	if (old == run_plain)
		key = sig;
	else if (old == as_plain(run_info))
		key = INFO_KEY(sig);
	else
		return old;
	any_handler h = key == written ? replaced
				       : atomic_load_explicit(handler_place(key), memory_order_relaxed);
	return (plain_handler)h;
}

EXPORT FORK_PATH int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	struct sigaction given;
	int written = 0;
	_Atomic(any_handler) *place = NULL;
	any_handler replaced = NULL;
	if (act && wraps(sig, act->sa_handler)) {
		given = *act;
		bool info = act->sa_flags & SA_SIGINFO;
		written = info ? INFO_KEY(sig) : sig;
		place = handler_place_taken(written);
		replaced = atomic_exchange(place, as_any(act->sa_handler));
		if (info)
			given.sa_sigaction = run_info;
		else
			given.sa_handler = run_plain;
		act = &given;
	}
	int (*fn)(int, const struct sigaction *, struct sigaction *) = REAL(sigaction);
	int r = fn ? fn(sig, act, oldact) : __sigaction(sig, act, oldact);
	if (r != 0) {
		/* Refused: the kernel never held the new one. errno is the
		 * call's. */
		if (place)
			atomic_store(place, replaced);
	} else if (oldact) {
		oldact->sa_handler = handler_named(sig, oldact->sa_handler, written, replaced);
	}
	return r;
}

/* A glibc signal() variant: real_fn installs handler with its own flags. */
static FORK_PATH __sighandler_t install_plain(__sighandler_t (*real_fn)(int, __sighandler_t), int sig,
				    __sighandler_t handler)
{
	if (!wraps(sig, handler))
		return handler_named(sig, real_fn(sig, handler), 0, NULL);
	_Atomic(any_handler) *place = handler_place_taken(sig);
	any_handler replaced = atomic_exchange(place, as_any(handler));
	__sighandler_t old = real_fn(sig, run_plain);
	if (old == SIG_ERR) {
		atomic_store(place, replaced);
		return old;
	}
	return handler_named(sig, old, sig, replaced);
}

/* glibc's semantics, for a call made before the originals are known. */
static __sighandler_t install_as(int sig, __sighandler_t handler, int flags, bool mask_sig)
{
	struct sigaction act = {.sa_handler = handler, .sa_flags = flags}, old;
	LIBC(sigemptyset)(&act.sa_mask);
	if (mask_sig && LIBC(sigaddset)(&act.sa_mask, sig) != 0)
		return SIG_ERR;
	return sigaction(sig, &act, &old) == 0 ? old.sa_handler : SIG_ERR;
}

EXPORT FORK_PATH __sighandler_t signal(int sig, __sighandler_t handler)
{
	__sighandler_t (*fn)(int, __sighandler_t) = REAL(signal);
	if (unlikely(!fn))
		return install_as(sig, handler, SA_RESTART, true);
	return install_plain(fn, sig, handler);
}
/* glibc's other names for signal */
EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t handler)
	__attribute__((alias("signal"), nothrow, leaf));
EXPORT __sighandler_t ssignal(int sig, __sighandler_t handler)
	__attribute__((alias("signal"), nothrow, leaf));

/* One-shot SysV handlers: rare in the fork servers FORK_PATH is for, so
 * outside their window. */
EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
	__sighandler_t (*fn)(int, __sighandler_t) = REAL(sysv_signal);
	if (unlikely(!fn))
		return install_as(sig, handler, SA_RESETHAND | SA_NODEFER, false);
	return install_plain(fn, sig, handler);
}
/* what signal() names without _DEFAULT_SOURCE */
EXPORT __sighandler_t __sysv_signal(int sig, __sighandler_t handler)
	__attribute__((alias("sysv_signal"), nothrow, leaf));

/* glibc's sigset, for a call made before the originals are known. */
static __sighandler_t sigset_as(int sig, __sighandler_t disp)
{
	sigset_t one, before;
	if (disp == SIG_ERR || sig < 1 || sig >= _NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	LIBC(sigemptyset)(&one);
	LIBC(sigaddset)(&one, sig);
	struct sigaction old;
	if (disp == SIG_HOLD) {
		if (LIBC(sigprocmask)(SIG_BLOCK, &one, &before) < 0)
			return SIG_ERR;
		if (LIBC(sigismember)(&before, sig))
			return SIG_HOLD;
		return sigaction(sig, NULL, &old) < 0 ? SIG_ERR : old.sa_handler;
	}
	struct sigaction act = {.sa_handler = disp};
	LIBC(sigemptyset)(&act.sa_mask);
	if (sigaction(sig, &act, &old) < 0 || LIBC(sigprocmask)(SIG_UNBLOCK, &one, &before) < 0)
		return SIG_ERR;
	return LIBC(sigismember)(&before, sig) ? SIG_HOLD : old.sa_handler;
}

/* sigset: as signal; SIG_HOLD (block the signal, install nothing) passes
 * through, and so does the SIG_HOLD it may give back. */
EXPORT __sighandler_t sigset(int sig, __sighandler_t disp)
{
	__sighandler_t (*fn)(int, __sighandler_t) = REAL(sigset);
	if (unlikely(!fn))
		return sigset_as(sig, disp);
	if (disp == SIG_HOLD)
		return handler_named(sig, fn(sig, disp), 0, NULL);
	return install_plain(fn, sig, disp);
}

void signal_handlers_wrap(void)
{
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction now;
		if (__sigaction(sig, NULL, &now) == 0 && wraps(sig, now.sa_handler))
			sigaction(sig, &now, NULL);
	}
}

void signal_handlers_unwrap(void)
{
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction now;
		if (__sigaction(sig, NULL, &now) != 0)
			continue;
		plain_handler program = handler_named(sig, now.sa_handler, 0, NULL);
		if (program == now.sa_handler)
			continue;
		now.sa_handler = program;
		__sigaction(sig, &now, NULL);
	}
}
