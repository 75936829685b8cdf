/*
 * preflight.c - the refusals made before reqid-inject touches a process.
 *
 * Reads /proc only. Must never ptrace, signal or write to the target: a
 * refused target is left exactly as it was. Each refusal names its cause
 * and, where there is one, the way out.
 */
#include "preflight.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

struct proc_status {
	char state;
	long tracer;
	int seccomp;
	long uid;
};

static int read_status(pid_t pid, struct proc_status *st)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	st->state = '?';
	st->tracer = 0;
	st->seccomp = 0;
	st->uid = -1;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "State: %c", &st->state) == 1 ||
		    sscanf(line, "TracerPid: %ld", &st->tracer) == 1 ||
		    sscanf(line, "Seccomp: %d", &st->seccomp) == 1)
			continue;
		sscanf(line, "Uid: %ld", &st->uid);
	}
	fclose(f);
	return 0;
}

static int fail_traced(pid_t pid, long tracer)
{
	char path[64], comm[64] = "?";
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/comm", tracer);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof comm, f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	return fail("process %d is already traced by process %ld (%s); "
		    "detach that tracer first", (int)pid, tracer, comm);
}

static int ptrace_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int scope = -1;

	if (f) {
		if (fscanf(f, "%d", &scope) != 1)
			scope = -1;
		fclose(f);
	}
	return scope;
}

int fail_permission(pid_t pid, const char *what)
{
	static const char *const hints[] = {
		"kernel.yama.ptrace_scope is 0: run as the target's uid "
		"(the target must be dumpable) or with CAP_SYS_PTRACE, e.g. as root",
		"kernel.yama.ptrace_scope is 1 (only ancestors may trace): run "
		"with CAP_SYS_PTRACE, e.g. as root, or set kernel.yama.ptrace_scope=0 "
		"and run as the target's uid",
		"kernel.yama.ptrace_scope is 2 (admin only): run with "
		"CAP_SYS_PTRACE, e.g. as root",
		"kernel.yama.ptrace_scope is 3: ptrace is disabled until reboot",
	};
	struct proc_status st = { .uid = -1 };
	int scope = ptrace_scope();

	if (read_status(pid, &st) == 0 && st.tracer)
		return fail_traced(pid, st.tracer);
	return fail("not permitted to trace process %d (%s; its uid %ld, "
		    "yours %ld): %s", (int)pid, what, st.uid, (long)geteuid(),
		    scope >= 0 && scope <= 3 ? hints[scope] :
		    "Yama is not active: run as the target's uid (the target "
		    "must be dumpable) or with CAP_SYS_PTRACE, e.g. as root");
}

long tracer_of(pid_t tid)
{
	struct proc_status st;

	return read_status(tid, &st) == 0 ? st.tracer : 0;
}

int fail_seize(pid_t pid, pid_t tid)
{
	long tracer = tracer_of(tid);

	return tracer ? fail_traced(pid, tracer) : fail_permission(pid, "PTRACE_SEIZE refused");
}

/* Refuses anything but an x86_64 executable. */
static int check_exe(pid_t pid)
{
	unsigned char h[EI_NIDENT + 4];
	struct proc_status st;
	char path[64];
	unsigned machine;
	int fd, err;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (err == EACCES || err == EPERM)
			return fail_permission(pid, "cannot read its executable");
		if (read_status(pid, &st) < 0 || st.state == 'Z' || st.state == 'X')
			return fail("process %d has exited", (int)pid);
		return fail("process %d has no executable (%s): it is exiting, "
			    "or a kernel thread", (int)pid, strerror(err));
	}
	n = pread(fd, h, sizeof h, 0);
	close(fd);
	if (n != (ssize_t)sizeof h || memcmp(h, ELFMAG, SELFMAG) != 0)
		return fail("process %d runs a file that is not ELF", (int)pid);
	machine = h[EI_NIDENT + 2] | h[EI_NIDENT + 3] << 8;
	if (h[EI_CLASS] != ELFCLASS64 || h[EI_DATA] != ELFDATA2LSB ||
	    machine != EM_X86_64)
		return fail("process %d is not an x86_64 program (ELF class %u, "
			    "machine %u); only x86_64 is supported", (int)pid,
			    h[EI_CLASS], machine);
	return 0;
}

int preflight(pid_t pid)
{
	struct proc_status st;

	if (pid == getpid())
		return fail("reqid-inject cannot inject into itself");
	if (read_status(pid, &st) < 0) {
		if (errno == ENOENT || errno == ESRCH)
			return fail("no such process %d", (int)pid);
		return fail("cannot read /proc/%d/status: %s", (int)pid,
			    strerror(errno));
	}
	if (st.state == 'Z' || st.state == 'X')
		return fail("process %d has exited (its main thread is a zombie)",
			    (int)pid);
	if (st.tracer)
		return fail_traced(pid, st.tracer);
	if (st.state == 'T' || st.state == 't')
		return fail("process %d is stopped by job control; resume it "
			    "(kill -CONT %d) first", (int)pid, (int)pid);
	if (st.seccomp == 1)
		return fail("process %d runs in strict seccomp mode, which "
			    "forbids the calls injection makes", (int)pid);
	if (st.seccomp == 2)
		return fail("process %d runs under a seccomp filter, which may "
			    "forbid the calls injection makes (mmap, mprotect, "
			    "clone3); refusing", (int)pid);
	return check_exe(pid);
}
