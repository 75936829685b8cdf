/*
 * threads.h - stopping and resuming every thread of the target (see
 * threads.c).
 */
#ifndef REQID_INJECT_THREADS_H
#define REQID_INJECT_THREADS_H

#include <stddef.h>
#include <sys/types.h>

struct thread {
	pid_t tid;
	enum { SEIZED, INTERRUPTED, STOPPED, RELEASED, GONE } state;
	double since;		/* when it was interrupted, or last seen not
				 * yet stopped (now_ms); 0 before */
};

struct threads {
	pid_t pid;
	int leader_only;	/* only the main thread is stopped */
	pid_t only;		/* only this thread is stopped (threads_stop_one), or 0 */
	struct thread *v;
	size_t n, cap;
	size_t stopped;		/* how many were stopped at once */
	int restarts;		/* tries given up for a late thread */
	double first_interrupt;	/* now_ms() of the first interrupt, 0 before */
	double longest_ms;	/* the longest a thread stayed stopped */
	pid_t borrowed;		/* the thread borrowed for the calls: the main
				 * thread unless the caller says otherwise */
	double longest_other_ms; /* the same, the borrowed thread left out */
	/* Time spent in each step, summed over the passes (reqid-inject -v). */
	double seize_ms, interrupt_ms, wait_ms, release_ms;
};

/* Seizes and stops every thread of pid within budget_ms; -1 after fail(),
 * with whatever was stopped still to release. SIGCHLD must be blocked
 * (await_tracee). */
int threads_stop(struct threads *t, pid_t pid, double budget_ms);

/* The same for the main thread only, the others running on. */
int threads_stop_leader(struct threads *t, pid_t pid, double budget_ms);

/* The same for thread tid of pid only; -1 after fail() also when it has
 * exited. */
int threads_stop_one(struct threads *t, pid_t pid, pid_t tid, double budget_ms);

/* Sleeps until a traced thread changes state (SIGCHLD, which the caller
 * keeps blocked), the deadline, or 2 ms at most: 1 if one did. Its wait
 * status is then to be collected with waitpid. */
int await_tracee(double deadline);

/* How long since the first thread was interrupted (0 before). */
double threads_stopped_ms(const struct threads *t);

/* Lets every stopped thread but keep (0: none kept) run on. */
void threads_release(struct threads *t, pid_t keep);

/* The state letter of thread tid of pid (/proc/PID/task/TID/status: R,
 * S, D, t, Z...), 0 if it is gone. */
char thread_state(pid_t pid, pid_t tid);

/* 1 if thread tid of pid has exited or is exiting (a zombie): it may no
 * longer answer ptrace or report to waitpid; the leader of a dying process
 * reports only after every other thread. */
int thread_exiting(pid_t pid, pid_t tid);

#endif
