/*
 * priority.h - reqid-inject's own scheduling priority while the target's
 * threads are stopped (see priority.c).
 */
#ifndef REQID_INJECT_PRIORITY_H
#define REQID_INJECT_PRIORITY_H

#include <sched.h>

struct priority {
	int policy;
	struct sched_param param;
	int nice;
	enum { AS_IT_WAS, REAL_TIME, NICE } raised;
};

/* Raises the calling thread's priority where permitted, saving the old
 * one in p; silent when it is not permitted. */
void priority_raise(struct priority *p);

/* Puts back what priority_raise saved. */
void priority_restore(const struct priority *p);

#endif
