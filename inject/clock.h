/*
 * clock.h - monotonic milliseconds and the short sleeps of polling loops.
 *
 * Only for polling another process (it cannot signal us); must never be
 * used to wait for something reqid-inject itself could be told about.
 */
#ifndef REQID_INJECT_CLOCK_H
#define REQID_INJECT_CLOCK_H

#include <time.h>

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sleeps *us microseconds, then doubles *us up to max_us. */
static inline void nap(long *us, long max_us)
{
	struct timespec ts = { *us / 1000000, *us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
	*us = *us * 2 < max_us ? *us * 2 : max_us;
}

#endif
