/*
 * remote_call.h - calling a function on one stopped thread of the target
 * (see remote_call.c).
 */
#ifndef REQID_INJECT_REMOTE_CALL_H
#define REQID_INJECT_REMOTE_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Big enough for any XSAVE layout the kernel exposes today (AMX: 11 KB). */
#define XSTATE_MAX 65536

struct remote {
	pid_t tid;
	int mem;			/* /proc/PID/mem */
	int gone;			/* the thread exited: nothing to restore */
	const char *name;		/* the function being called */
	struct user_regs_struct saved;
	unsigned xstate_type;		/* NT_X86_XSTATE or NT_PRFPREG */
	size_t xstate_len;
	unsigned char xstate[XSTATE_MAX] __attribute__((aligned(64)));
};

/* Saves the registers of tid, which must be in a ptrace stop. */
int remote_save(struct remote *r, pid_t tid, int mem);

/* Starts name(args) on the thread. */
int remote_start(struct remote *r, const char *name, uint64_t fn,
		 const uint64_t args[6]);

/* Starts system call nr(args) on the thread, at syscall_ret (the bytes
 * `syscall; ret` in its code): errno stays as it was, the result or
 * -errno comes back as the call's. */
int remote_start_syscall(struct remote *r, const char *name, uint64_t syscall_ret,
			 long nr, const uint64_t args[6]);

/* The lowest address a call started on a thread whose stack pointer is
 * rsp writes (its return address, below the red zone). */
uint64_t remote_lowest_written(uint64_t rsp);

/* Waits up to timeout_ms for the call to return: 0 with its rax in *ret,
 * 1 if it is still running, -1 after fail(). */
int remote_wait(struct remote *r, double timeout_ms, uint64_t *ret);

/* Stops a call that did not return, so remote_restore can abandon it;
 * returns -1 after fail(). */
int remote_abandon(struct remote *r);

/* Puts every saved register back; the thread stays stopped. */
int remote_restore(struct remote *r);

#endif
