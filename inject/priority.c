/*
 * priority.c - reqid-inject's own scheduling priority while the target's
 * threads are stopped.
 *
 * A stop lasts as long as reqid-inject takes to stop, borrow and resume
 * the threads; on a busy machine much of that is time spent waiting for a
 * CPU, and with a thousand threads each interrupt and each resume wakes a
 * thread that may take the CPU from it. For the stop only, it runs as
 * SCHED_FIFO at the lowest real-time priority where that is permitted
 * (root, CAP_SYS_NICE, RLIMIT_RTPRIO), else at nice -20 where RLIMIT_NICE
 * allows, else as it was, silently. Must never change the target's
 * scheduling, keep the raised priority past the stop, or spin while
 * raised: every wait in the stop sleeps (await_tracee, nap).
 */
#include "priority.h"

#include <errno.h>
#include <sys/resource.h>

void priority_raise(struct priority *p)
{
	struct sched_param lowest = { .sched_priority = sched_get_priority_min(SCHED_FIFO) };

	p->raised = AS_IT_WAS;
	p->policy = sched_getscheduler(0);
	if (p->policy < 0 || sched_getparam(0, &p->param) < 0)
		return;
	if (p->policy == SCHED_OTHER &&
	    sched_setscheduler(0, SCHED_FIFO, &lowest) == 0) {
		p->raised = REAL_TIME;
		return;
	}
	errno = 0;
	p->nice = getpriority(PRIO_PROCESS, 0);
	if (errno == 0 && p->nice > -20 && setpriority(PRIO_PROCESS, 0, -20) == 0)
		p->raised = NICE;
}

void priority_restore(const struct priority *p)
{
	if (p->raised == REAL_TIME)
		sched_setscheduler(0, p->policy, &p->param);
	else if (p->raised == NICE)
		setpriority(PRIO_PROCESS, 0, p->nice);
}
