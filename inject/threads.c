/*
 * threads.c - stopping and resuming every thread of the target.
 *
 * Seizes each thread in /proc/PID/task, which does not stop it, re-reading
 * the list until no new thread appears; only then interrupts them all, in
 * one pass, collects their stops, and re-reads the list for a thread
 * started just before its creator stopped. So a thread is stopped from its
 * interrupt to its release, in the same order for all, and the time to
 * seize a thousand threads is spent while they all run. A thread slow to
 * stop does not keep the others stopped: after ROUND_MS they are let go
 * and stopped again a moment later, as often as the time to stop them
 * allows, then reqid-inject gives up. Every wait is bounded. Must never set
 * PTRACE_O_EXITKILL (if reqid-inject dies, the kernel detaches and the
 * target runs on), and never swallow a signal: one that arrives while a
 * thread is seized or being stopped is delivered at once, and the pending
 * interrupt stops the thread right after.
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

/* The longest one sleep of await_tracee lasts: a bound on the delay should
 * a wake-up be missed. */
#define AWAIT_SLICE_MS 2.0
/* How long the stops may take before the leader is checked for an exit: a
 * dying process's leader reports only after every other thread. */
#define LEADER_CHECK_MS 20.0
/* A try at stopping every thread gives up when one has not stopped this
 * long after the first interrupt; RESTOP_PAUSE_US separates the tries. */
#define ROUND_MS 30.0
#define RESTOP_PAUSE_US 10000

static struct thread *find(struct threads *t, pid_t tid)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].tid == tid)
			return &t->v[i];
	return NULL;
}

char thread_state(pid_t pid, pid_t tid)
{
	char path[64], line[64], state = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid,
		 (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "State:", 6) == 0)
			sscanf(line + 6, " %c", &state);
	fclose(f);
	return state;
}

int thread_exiting(pid_t pid, pid_t tid)
{
	char state = thread_state(pid, tid);

	return !state || state == 'Z' || state == 'X';
}

/* PTRACE_SEIZE of tid: 0, or the errno of its refusal. A refusal (EPERM)
 * while tid is not exiting is tried again, for up to SEIZE_RETRY_MS, also
 * while tid has a tracer: another reqid-inject (a second `reqid attach` or
 * `detach` at the same time) holds the threads for moments, lets them go
 * one by one, takes the main thread again to give its stack back, and
 * (detach, -s) each thread alone in turn to give its stack pages back, so
 * a refusal made while it held tid can find no tracer just after, and
 * would otherwise read "not permitted", which the command does not wait
 * on (a tracer still there at the end is named: the command waits on
 * another reqid-inject). A refusal for want of permission refuses every
 * time. Seizing stops no thread: the wait adds to no stop but a thread's
 * that appeared meanwhile. */
#define SEIZE_RETRY_MS 200.0

static int seize(pid_t pid, pid_t tid)
{
	double deadline = now_ms() + SEIZE_RETRY_MS;
	long delay = 50;

	for (;;) {
		if (ptrace(PTRACE_SEIZE, tid, 0, 0) == 0)
			return 0;
		int err = errno;
		if (err != EPERM || thread_exiting(pid, tid) || now_ms() > deadline)
			return err;
		nap(&delay, 5000);
	}
}

/* Seizes thread tid, without stopping it, and adds it to the list: 1, 0
 * if it has exited, or -1. */
static int seize_one(struct threads *t, pid_t tid)
{
	struct thread *th;

	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;

		th = realloc(t->v, cap * sizeof *th);
		if (!th)
			return fail("out of memory");
		t->v = th;
		t->cap = cap;
	}
	double t0 = now_ms();
	int err = seize(t->pid, tid);
	t->seize_ms += now_ms() - t0;
	if (err) {
		/* An exiting thread refuses with EPERM too. */
		if (err == ESRCH || (err == EPERM && thread_exiting(t->pid, tid)))
			return 0;
		if (err == EPERM)
			return fail_seize(t->pid, tid);
		return fail("PTRACE_SEIZE of thread %d: %s", (int)tid, strerror(err));
	}
	th = &t->v[t->n++];
	th->tid = tid;
	th->state = SEIZED;
	th->since = 0;
	return 1;
}

/* Seizes every listed thread not seen yet (the main thread only, if it is
 * the only one to stop); returns how many, or -1. */
static int seize_new(struct threads *t)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int added = 0, rc;

	if (t->leader_only || t->only) {
		pid_t one = t->only ? t->only : t->pid;
		return find(t, one) ? 0 : seize_one(t, one);
	}
	snprintf(path, sizeof path, "/proc/%d/task", (int)t->pid);
	d = opendir(path);
	if (!d)
		return fail("the target exited during attach");
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid <= 0 || find(t, tid))
			continue;
		rc = seize_one(t, tid);
		if (rc < 0) {
			closedir(d);
			return -1;
		}
		added += rc;
	}
	closedir(d);
	return added;
}

/* Interrupts every seized thread, in the list's order. */
static void interrupt_seized(struct threads *t)
{
	double t0 = now_ms();
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct thread *th = &t->v[i];

		if (th->state != SEIZED)
			continue;
		th->since = now_ms();
		if (!t->first_interrupt)
			t->first_interrupt = th->since;
		th->state = INTERRUPTED;
		/* ESRCH: it exited; its wait status will say so. */
		ptrace(PTRACE_INTERRUPT, th->tid, 0, 0);
	}
	t->interrupt_ms += now_ms() - t0;
}

int await_tracee(double deadline)
{
	double left = deadline - now_ms();
	struct timespec slice;
	sigset_t chld;

	if (left <= 0)
		return 0;
	if (left > AWAIT_SLICE_MS)
		left = AWAIT_SLICE_MS;
	slice.tv_sec = 0;
	slice.tv_nsec = (long)(left * 1e6);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	return sigtimedwait(&chld, NULL, &slice) == SIGCHLD;
}

/* Takes in one wait status of a thread: 0, or -1 after fail(). */
static int take_status(struct threads *t, struct thread *th, int st)
{
	if (!WIFSTOPPED(st)) {
		th->state = GONE;
		return th->tid == t->pid ? fail("the target exited during attach") : 0;
	}
	if (st >> 16 != PTRACE_EVENT_STOP) {
		/* A signal: delivered now; the interrupt stops it after. */
		ptrace(PTRACE_CONT, th->tid, 0, WSTOPSIG(st));
		return 0;
	}
	th->state = STOPPED;
	t->stopped++;
	if (WSTOPSIG(st) != SIGTRAP)
		return fail("the target was stopped by SIG%s during attach; resume it "
			    "and retry", sigabbrev_np(WSTOPSIG(st)));
	return 0;
}

/* Collects the stop of every interrupted thread before the deadline: 0,
 * or 1 if some thread has not stopped by give_up (before the deadline), or
 * -1 after fail(); with release, lets each go as soon as it has stopped.
 * Waits for each thread by its tid (a wait for any tracee
 * looks at every one, which with a thousand threads costs more than the
 * stops), and between rounds sleeps rather than wake at every stop: at
 * real-time priority it would take the CPU from the threads stopping at
 * each one. */
static int wait_stopped(struct threads *t, double give_up, double deadline, int release)
{
	double started = now_ms();
	size_t first = 0;	/* the list's first thread still interrupted */
	long delay = 20;

	for (;;) {
		pid_t late = 0;
		size_t i;

		for (i = first; i < t->n; i++) {
			struct thread *th = &t->v[i];
			pid_t w;
			int st;

			while (th->state == INTERRUPTED &&
			       (w = waitpid(th->tid, &st, __WALL | WNOHANG)) != 0)
				if (w < 0)
					th->state = GONE;
				else if (take_status(t, th, st) < 0)
					return -1;
			if (th->state != INTERRUPTED)
				continue;
			/* Not stopped yet: its stop, if it comes, begins later. */
			th->since = now_ms();
			if (!late) {
				late = th->tid;
				first = i;
			}
		}
		if (release)
			threads_release(t, 0);
		if (!late)
			return 0;
		if (now_ms() - started > LEADER_CHECK_MS && thread_exiting(t->pid, t->pid))
			return fail("the target exited during attach");
		if (now_ms() > deadline)
			return fail("thread %d of the target did not stop in time "
				    "(in uninterruptible sleep?)", (int)late);
		if (now_ms() > give_up)
			return 1;
		nap(&delay, 1000);
	}
}

/* One try at stopping every thread: 0, 1 if bounded and a thread had not
 * stopped ROUND_MS after the first interrupt, or -1 after fail(). */
static int try_stop(struct threads *t, int bounded, double deadline)
{
	int added, rc;

	do {
		added = seize_new(t);
		if (added < 0)
			return -1;
	} while (added > 0);
	do {
		interrupt_seized(t);
		double t0 = now_ms();
		rc = wait_stopped(t, bounded ? t->first_interrupt + ROUND_MS : deadline,
				  deadline, 0);
		t->wait_ms += now_ms() - t0;
		if (rc != 0)
			return rc;
		added = seize_new(t);
		if (added < 0)
			return -1;
	} while (added > 0);
	return 0;
}

/* After a try with a late thread: lets the stopped threads go at once, and
 * each late one as soon as it has stopped (not once all have: one stopping
 * early would wait for the latest); the list is then empty. */
static int let_go(struct threads *t, double deadline)
{
	threads_release(t, 0);
	if (wait_stopped(t, deadline, deadline, 1) < 0)
		return -1;
	t->n = 0;
	t->first_interrupt = 0;
	return 0;
}

static int stop(struct threads *t, pid_t pid, int leader_only, pid_t only, double budget_ms)
{
	double deadline = now_ms() + budget_ms;
	struct thread *leader;
	size_t most = 0;
	int rc;

	memset(t, 0, sizeof *t);
	t->pid = pid;
	t->leader_only = leader_only;
	t->only = only;
	t->borrowed = pid;
	/* A thread that needs long to stop (one waiting for a CPU on a busy
	 * machine, a vfork parent) keeps those stopped before it waiting:
	 * they are let go and stopped again a moment later, until the
	 * deadline, where the stop fails rather than keep them stopped
	 * longer (the main thread alone is stopped as long as it takes: its
	 * stop begins when it stops). */
	while ((rc = try_stop(t, !leader_only && !only, deadline)) == 1) {
		if (let_go(t, deadline) < 0)
			return -1;
		if (t->stopped > most)
			most = t->stopped;
		t->stopped = 0;
		t->restarts++;
		long pause = RESTOP_PAUSE_US;
		nap(&pause, pause);
	}
	if (most > t->stopped)
		t->stopped = most;
	if (rc < 0)
		return -1;
	leader = find(t, only ? only : pid);
	if (!leader || leader->state != STOPPED)
		return fail("the target exited during attach");
	return 0;
}

int threads_stop(struct threads *t, pid_t pid, double budget_ms)
{
	return stop(t, pid, 0, 0, budget_ms);
}

int threads_stop_leader(struct threads *t, pid_t pid, double budget_ms)
{
	return stop(t, pid, 1, 0, budget_ms);
}

int threads_stop_one(struct threads *t, pid_t pid, pid_t tid, double budget_ms)
{
	return stop(t, pid, 0, tid, budget_ms);
}

double threads_stopped_ms(const struct threads *t)
{
	return t->first_interrupt ? now_ms() - t->first_interrupt : 0;
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
		/* ESRCH: killed meanwhile; nothing to give back. A thread
		 * seized but not stopped (a failed stop) is let go when
		 * reqid-inject exits. */
		ptrace(PTRACE_DETACH, th->tid, 0, 0);
		th->state = RELEASED;
		stopped = now_ms() - th->since;
		if (stopped > t->longest_ms)
			t->longest_ms = stopped;
		if (th->tid != t->borrowed && stopped > t->longest_other_ms)
			t->longest_other_ms = stopped;
	}
	t->release_ms += now_ms() - t0;
}
