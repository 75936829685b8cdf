/*
 * signal_chain.c - a preloaded library that wraps sigaction as signal-
 * chaining libraries do (the JVM's libjsig): it counts the calls that reach
 * it and passes each on to the next sigaction. test_signal_lines.py preloads
 * it after the shim: the program's calls must still reach it. Never changes
 * a call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>

int signal_chain_calls;

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	static int (*next)(int, const struct sigaction *, struct sigaction *);
	if (!next)
		next = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT,
											   "sigaction");
	__atomic_add_fetch(&signal_chain_calls, 1, __ATOMIC_RELAXED);
	return next(sig, act, oldact);
}
