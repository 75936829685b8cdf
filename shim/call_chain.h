/*
 * call_chain.h - the calling thread's chain of return addresses, for the
 * event-loop rule (event_batch.h): which function activations are live when
 * a line is written.
 *
 * Addresses come from libunwind's unw_backtrace (the CFI-driven fast path, a
 * few ns per frame), never from reading stack slots by guess. A chain that
 * cannot be had whole (deeper than CHAIN_MAX, or the thread is already
 * unwinding: a signal handler interrupted it) is reported as none, and the
 * rule then proves nothing. Never allocates after a thread's first unwind,
 * never blocks.
 */
#ifndef REQID_CALL_CHAIN_H
#define REQID_CALL_CHAIN_H

#include <stdint.h>

#define CHAIN_MAX 64

struct call_chain {
	int count;                /* frames, innermost first; 0: no chain */
	void *frames[CHAIN_MAX];
};

/* Fills chain with the calling thread's return addresses, the shim's own
 * frames included (innermost). */
void call_chain_take(struct call_chain *chain) __attribute__((visibility("hidden")));

/* The hash of the outermost depth frames of chain (those of a function's
 * callers, from its caller out to the thread's first frame). */
uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
	__attribute__((visibility("hidden")));

#endif
