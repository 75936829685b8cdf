/*
 * remote_call.c - calling a function on one stopped thread of the target.
 *
 * Saves the thread's general registers and its full extended state, then
 * for each call points it at the function, or for a system call at the
 * bytes `syscall; ret` in libc, with a zero return address below the red
 * zone; the SIGSEGV at address 0 marks the return. Must never
 * deliver that SIGSEGV, swallow any other signal, or leave the thread
 * anywhere but where it was: remote_restore puts back every register, and
 * with them the restart of an interrupted system call.
 */
#include "remote_call.h"

#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "clock.h"
#include "fail.h"
#include "target_mem.h"
#include "threads.h"

#define RED_ZONE 128
#define SLACK 256		/* more room below the red zone */
#define EFLAGS_DF 0x400		/* the ABI wants it clear at a call */
/* How long a call may run before the thread is checked for an exit (a
 * killed thread whose process has more threads may not report at once). */
#define GONE_CHECK_MS 2.0

/* A ptrace request on the stopped thread failed: ESRCH means it no longer
 * is stopped, which only its death can do. */
static int ptrace_failed(struct remote *r, const char *what)
{
	if (errno == ESRCH) {
		r->gone = 1;
		return fail("the target exited during attach");
	}
	return fail("%s on thread %d: %s", what, (int)r->tid, strerror(errno));
}

int remote_save(struct remote *r, pid_t tid, int mem)
{
	struct iovec iov = { r->xstate, sizeof r->xstate };

	r->tid = tid;
	r->mem = mem;
	r->gone = 0;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r->saved) < 0)
		return ptrace_failed(r, "PTRACE_GETREGS");
	r->xstate_type = NT_X86_XSTATE;
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0) {
		r->xstate_type = NT_PRFPREG;
		iov.iov_len = sizeof r->xstate;
		if (ptrace(PTRACE_GETREGSET, tid, NT_PRFPREG, &iov) < 0)
			return ptrace_failed(r, "reading the FPU state");
	}
	if (iov.iov_len >= sizeof r->xstate)
		return fail("the FPU state of thread %d is larger than %zu bytes",
			    (int)tid, sizeof r->xstate);
	r->xstate_len = iov.iov_len;
	return 0;
}

uint64_t remote_lowest_written(uint64_t rsp)
{
	return ((rsp - RED_ZONE - SLACK) & ~15ull) - 8;
}

/* Points the thread at rip with rax and the six argument registers
 * (args[3] in rcx for a function, r10 for a system call) and a zero return
 * address below the red zone, and lets it run. */
static int start(struct remote *r, const char *name, uint64_t rip, uint64_t rax,
		 const uint64_t args[6], int is_syscall)
{
	struct user_regs_struct regs = r->saved;
	uint64_t zero = 0;

	r->name = name;
	regs.rsp = remote_lowest_written(r->saved.rsp);
	if (target_mem_write(r->mem, regs.rsp, &zero, sizeof zero) < 0)
		return fail("cannot write below the stack of thread %d: %s",
			    (int)r->tid, strerror(errno));
	regs.rip = rip;
	regs.rax = rax;
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	if (is_syscall)
		regs.r10 = args[3];
	else
		regs.rcx = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	regs.orig_rax = -1;	/* no system call to restart over the call */
	regs.eflags &= ~EFLAGS_DF;
	if (ptrace(PTRACE_SETREGS, r->tid, 0, &regs) < 0 ||
	    ptrace(PTRACE_CONT, r->tid, 0, 0) < 0)
		return ptrace_failed(r, "starting a call");
	return 0;
}

int remote_start(struct remote *r, const char *name, uint64_t fn,
		 const uint64_t args[6])
{
	return start(r, name, fn, 0, args, 0);
}

int remote_start_syscall(struct remote *r, const char *name, uint64_t syscall_ret,
			 long nr, const uint64_t args[6])
{
	return start(r, name, syscall_ret, (uint64_t)nr, args, 1);
}

static int is_fault(int sig, const siginfo_t *si)
{
	return si->si_code > 0 && (sig == SIGSEGV || sig == SIGBUS ||
		sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS);
}

/* Collects the thread's stops until the call returns (0), the deadline
 * passes (1), or, once interrupted, the thread stops (2); -1 after fail()
 * when the call crashed or the target exited. */
static int collect(struct remote *r, double deadline, int interrupted,
		   uint64_t *ret)
{
	double started = now_ms();

	for (;;) {
		struct user_regs_struct regs;
		siginfo_t si;
		int st, sig;
		pid_t w = waitpid(r->tid, &st, __WALL | WNOHANG);

		if (w < 0 || (w > 0 && !WIFSTOPPED(st))) {
			r->gone = 1;
			return fail("the target exited during attach");
		}
		if (w == 0) {
			if (now_ms() >= deadline)
				return 1;
			if (now_ms() - started > GONE_CHECK_MS &&
			    thread_exiting(r->tid, r->tid)) {
				r->gone = 1;
				return fail("the target exited during attach");
			}
			await_tracee(deadline);
			continue;
		}
		sig = WSTOPSIG(st);
		if (st >> 16 == PTRACE_EVENT_STOP) {
			if (interrupted)
				return 2;
			/* A group stop: run on; detaching re-enters it. */
			ptrace(PTRACE_CONT, r->tid, 0, 0);
			continue;
		}
		if (ptrace(PTRACE_GETSIGINFO, r->tid, 0, &si) < 0)
			continue;	/* killed meanwhile: the exit follows */
		if (sig == SIGSEGV && si.si_addr == NULL &&
		    ptrace(PTRACE_GETREGS, r->tid, 0, &regs) == 0 && regs.rip == 0) {
			*ret = regs.rax;
			return interrupted ? 2 : 0;
		}
		if (is_fault(sig, &si))
			return fail(sig == SIGSYS ?
				    "%s was refused by a seccomp filter in the target (SIG%s)" :
				    "%s crashed in the target (SIG%s at %p)", r->name,
				    sigabbrev_np(sig), si.si_addr);
		/* Asynchronous: delivered now, as during any call. */
		ptrace(PTRACE_CONT, r->tid, 0, sig);
	}
}

int remote_wait(struct remote *r, double timeout_ms, uint64_t *ret)
{
	return collect(r, now_ms() + timeout_ms, 0, ret);
}

int remote_abandon(struct remote *r)
{
	uint64_t ignored;
	int rc;

	ptrace(PTRACE_INTERRUPT, r->tid, 0, 0);
	rc = collect(r, now_ms() + 500, 1, &ignored);
	if (rc == 1)
		return fail("%s hung in the target and thread %d did not stop; "
			    "the target is left running it", r->name, (int)r->tid);
	return fail("%s did not return in the target; abandoned it (a lock "
		    "it took may stay held)", r->name);
}

int remote_restore(struct remote *r)
{
	struct iovec iov = { r->xstate, r->xstate_len };

	if (r->gone)
		return -1;
	if (ptrace(PTRACE_SETREGSET, r->tid, r->xstate_type, &iov) < 0 ||
	    ptrace(PTRACE_SETREGS, r->tid, 0, &r->saved) < 0)
		return ptrace_failed(r, "restoring the registers");
	return 0;
}
