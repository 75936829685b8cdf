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
 * call's. Async-signal-safe: the table is static (never released, so that
 * after detach the trampolines the kernel still holds keep calling the
 * program's handlers) and written with single atomic stores. The calls a
 * fork child makes (resetting its signals) are FORK_PATH code.
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

/* The program's handler of each signal, one table per kind of
 * trampoline. Order of an update: the new handler is stored in its kind's
 * table before the kernel is given that kind's trampoline, and never
 * cleared. A signal that arrives meanwhile is delivered through whatever the
 * kernel held: the same kind's trampoline then calls the new handler (as if
 * it had come just after the call, which a program cannot tell apart), the
 * other kind's its own table's entry, the handler the kernel's action was
 * made for. A handler replaced by SIG_DFL or SIG_IGN stays in its table, so
 * a delivery already under way still finds it. */
static _Atomic(plain_handler) plain_handlers[_NSIG];
static _Atomic(info_handler) info_handlers[_NSIG];

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
	atomic_load_explicit(&plain_handlers[sig], memory_order_acquire)(sig);
	leave_handler(depth, frame);
}

static void run_info(int sig, siginfo_t *info, void *context)
{
	uint8_t depth = thread_ctx.signal_depth;
	uintptr_t frame = thread_ctx.signal_frame;
	enter_handler((uintptr_t)__builtin_frame_address(0));
	atomic_load_explicit(&info_handlers[sig], memory_order_acquire)(sig, info, context);
	leave_handler(depth, frame);
}

static bool wraps(int sig, void (*handler)(int))
{
	return sig > 0 && sig < _NSIG && handler != SIG_DFL && handler != SIG_IGN &&
	       handler != SIG_ERR && handler != run_plain && handler != as_plain(run_info);
}

/* The handler to report for old, the handler a call found in place: the
 * program's, where it was a trampoline. replaced_plain: the plain table's
 * entry the call replaced (the call itself wrote a plain one), else NULL. */
static plain_handler handler_named(int sig, plain_handler old, bool wrote_plain,
				   plain_handler replaced_plain, bool wrote_info,
				   info_handler replaced_info)
{
	if (old == run_plain)
		return wrote_plain ? replaced_plain
				   : atomic_load_explicit(&plain_handlers[sig], memory_order_relaxed);
	if (old == as_plain(run_info))
		return as_plain(wrote_info ? replaced_info
					 : atomic_load_explicit(&info_handlers[sig],
								memory_order_relaxed));
	return old;
}

EXPORT FORK_PATH int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	struct sigaction given;
	bool wrote_plain = false, wrote_info = false;
	plain_handler replaced_plain = NULL;
	info_handler replaced_info = NULL;
	if (act && wraps(sig, act->sa_handler)) {
		given = *act;
		if (act->sa_flags & SA_SIGINFO) {
			replaced_info = atomic_exchange(&info_handlers[sig], act->sa_sigaction);
			given.sa_sigaction = run_info;
			wrote_info = true;
		} else {
			replaced_plain = atomic_exchange(&plain_handlers[sig], act->sa_handler);
			given.sa_handler = run_plain;
			wrote_plain = true;
		}
		act = &given;
	}
	int (*fn)(int, const struct sigaction *, struct sigaction *) = REAL(sigaction);
	int r = fn ? fn(sig, act, oldact) : __sigaction(sig, act, oldact);
	if (r != 0) {
		/* Refused (an invalid signal, SIGKILL): the kernel never held
		 * the new one. errno is the call's. */
		if (wrote_plain)
			atomic_store(&plain_handlers[sig], replaced_plain);
		if (wrote_info)
			atomic_store(&info_handlers[sig], replaced_info);
	} else if (oldact) {
		oldact->sa_handler = handler_named(sig, oldact->sa_handler, wrote_plain,
						   replaced_plain, wrote_info, replaced_info);
	}
	return r;
}

/* A glibc signal() variant: real_fn installs handler with its own flags. */
static FORK_PATH __sighandler_t install_plain(__sighandler_t (*real_fn)(int, __sighandler_t), int sig,
				    __sighandler_t handler)
{
	if (!wraps(sig, handler))
		return handler_named(sig, real_fn(sig, handler), false, NULL, false, NULL);
	plain_handler replaced = atomic_exchange(&plain_handlers[sig], handler);
	__sighandler_t old = real_fn(sig, run_plain);
	if (old == SIG_ERR) {
		atomic_store(&plain_handlers[sig], replaced);
		return old;
	}
	return handler_named(sig, old, true, replaced, false, NULL);
}

/* glibc's semantics, for a call made before the originals are known. */
static __sighandler_t install_as(int sig, __sighandler_t handler, int flags, bool mask_sig)
{
	struct sigaction act = {.sa_handler = handler, .sa_flags = flags}, old;
	sigemptyset(&act.sa_mask);
	if (mask_sig && sigaddset(&act.sa_mask, sig) != 0)
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

EXPORT FORK_PATH __sighandler_t sysv_signal(int sig, __sighandler_t handler)
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
	sigemptyset(&one);
	sigaddset(&one, sig);
	struct sigaction old;
	if (disp == SIG_HOLD) {
		if (sigprocmask(SIG_BLOCK, &one, &before) < 0)
			return SIG_ERR;
		if (sigismember(&before, sig))
			return SIG_HOLD;
		return sigaction(sig, NULL, &old) < 0 ? SIG_ERR : old.sa_handler;
	}
	struct sigaction act = {.sa_handler = disp};
	sigemptyset(&act.sa_mask);
	if (sigaction(sig, &act, &old) < 0 || sigprocmask(SIG_UNBLOCK, &one, &before) < 0)
		return SIG_ERR;
	return sigismember(&before, sig) ? SIG_HOLD : old.sa_handler;
}

/* sigset: as signal; SIG_HOLD (block the signal, install nothing) passes
 * through, and so does the SIG_HOLD it may give back. */
EXPORT __sighandler_t sigset(int sig, __sighandler_t disp)
{
	__sighandler_t (*fn)(int, __sighandler_t) = REAL(sigset);
	if (unlikely(!fn))
		return sigset_as(sig, disp);
	if (disp == SIG_HOLD)
		return handler_named(sig, fn(sig, disp), false, NULL, false, NULL);
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
		if (now.sa_handler == run_plain)
			now.sa_handler = atomic_load(&plain_handlers[sig]);
		else if (now.sa_handler == as_plain(run_info))
			now.sa_sigaction = atomic_load(&info_handlers[sig]);
		else
			continue;
		__sigaction(sig, &now, NULL);
	}
}
