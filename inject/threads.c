/*
 * threads.c - stopping and resuming every thread of the target.
 *
 * Seizes each thread in /proc/PID/task, interrupts it and waits for its
 * stop, re-reading the list until no new thread appears. Every wait is
 * bounded. Must never set PTRACE_O_EXITKILL (if reqid-inject dies, the
 * kernel detaches and the target runs on), and never swallow a signal: one
 * that arrives while a thread is being stopped is delivered at once, and
 * the pending interrupt stops the thread right after.
 */
#include "threads.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "clock.h"
#include "fail.h"
#include "preflight.h"

static struct thread *find(struct threads *t, pid_t tid)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].tid == tid)
			return &t->v[i];
	return NULL;
}

int thread_exiting(pid_t pid, pid_t tid)
{
	char path[64], line[64];
	FILE *f;
	int gone = 1;

	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid,
		 (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "State:", 6) == 0)
			gone = strpbrk(line + 6, "ZX") != NULL;
	fclose(f);
	return gone;
}

/* PTRACE_SEIZE of tid: 0, or the errno of its refusal. A refusal (EPERM)
 * when tid has no tracer just after is tried once more: another
 * reqid-inject (a second `reqid attach` or `detach` at the same time) lets
 * the threads go one by one as it ends, and a refusal made while it held
 * tid would otherwise read "not permitted", which the command does not
 * wait on. A refusal for want of permission refuses again. */
static int seize(pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) == 0)
		return 0;
	int err = errno;
	if (err != EPERM || tracer_of(tid) != 0)
		return err;
	return ptrace(PTRACE_SEIZE, tid, 0, 0) == 0 ? 0 : errno;
}

/* Seizes and interrupts every listed thread not seen yet; returns how
 * many, or -1. */
static int seize_new(struct threads *t)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int added = 0;

	snprintf(path, sizeof path, "/proc/%d/task", (int)t->pid);
	d = opendir(path);
	if (!d)
		return fail("the target exited during attach");
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		struct thread *th;

		if (tid <= 0 || find(t, tid))
			continue;
		if (t->n == t->cap) {
			size_t cap = t->cap ? 2 * t->cap : 64;
			th = realloc(t->v, cap * sizeof *th);
			if (!th) {
				closedir(d);
				return fail("out of memory");
			}
			t->v = th;
			t->cap = cap;
		}
		double t0 = now_ms();
		int err = seize(tid);
		t->seize_ms += now_ms() - t0;
		if (err) {
			/* An exiting thread refuses with EPERM too. */
			if (err == ESRCH || (err == EPERM && thread_exiting(t->pid, tid)))
				continue;
			closedir(d);
			if (err == EPERM)
				return fail_seize(t->pid, tid);
			return fail("PTRACE_SEIZE of thread %d: %s", (int)tid,
				    strerror(err));
		}
		th = &t->v[t->n++];
		th->tid = tid;
		th->state = SEIZED;
		th->since = now_ms();
		/* ESRCH: it exited; its wait status will say so. */
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		t->interrupt_ms += now_ms() - th->since;
		added++;
	}
	closedir(d);
	return added;
}

/* Collects the stop of every seized thread before the deadline. */
static int wait_stopped(struct threads *t, double deadline)
{
	long delay = 20;

	for (;;) {
		pid_t late = 0;
		size_t i;

		for (i = 0; i < t->n; i++) {
			struct thread *th = &t->v[i];
			int st;
			pid_t w;

			if (th->state != SEIZED)
				continue;
			w = waitpid(th->tid, &st, __WALL | WNOHANG);
			if (w == 0) {
				late = th->tid;
			} else if (w < 0 || !WIFSTOPPED(st)) {
				th->state = GONE;
				if (th->tid == t->pid)
					return fail("the target exited during attach");
			} else if (st >> 16 == PTRACE_EVENT_STOP) {
				th->state = STOPPED;
				t->stopped++;
				if (WSTOPSIG(st) != SIGTRAP)
					return fail("the target was stopped by SIG%s "
						    "during attach; resume it and retry",
						    sigabbrev_np(WSTOPSIG(st)));
			} else {
				ptrace(PTRACE_CONT, th->tid, 0, WSTOPSIG(st));
				late = th->tid;
			}
		}
		if (!late)
			return 0;
		if (delay == 2000 && thread_exiting(t->pid, t->pid))
			return fail("the target exited during attach");
		if (now_ms() > deadline)
			return fail("thread %d of the target did not stop in time "
				    "(in uninterruptible sleep?)", (int)late);
		nap(&delay, 2000);
	}
}

int threads_stop(struct threads *t, pid_t pid, double budget_ms)
{
	double deadline = now_ms() + budget_ms;
	struct thread *leader;
	int added;

	memset(t, 0, sizeof *t);
	t->pid = pid;
	do {
		added = seize_new(t);
		double t0 = now_ms();
		if (added < 0 || wait_stopped(t, deadline) < 0)
			return -1;
		t->wait_ms += now_ms() - t0;
	} while (added > 0);
	leader = find(t, pid);
	if (!leader || leader->state != STOPPED)
		return fail("the target exited during attach");
	return 0;
}

void threads_release(struct threads *t, pid_t keep)
{
	double t0 = now_ms();
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct thread *th = &t->v[i];
		double stopped;

		if (th->state != STOPPED || th->tid == keep)
			continue;
		/* ESRCH: killed meanwhile; nothing to give back. */
		ptrace(PTRACE_DETACH, th->tid, 0, 0);
		th->state = RELEASED;
		stopped = now_ms() - th->since;
		if (stopped > t->longest_ms)
			t->longest_ms = stopped;
	}
	t->release_ms += now_ms() - t0;
}
