/*
 * call_chain.c - return-address chains through libunwind (see call_chain.h).
 *
 * Must never read the stack by itself, never unwind re-entrantly (a signal
 * handler that writes a line while this thread unwinds gets no chain), and
 * never report a chain that may have been cut short.
 */
#define UNW_LOCAL_ONLY
#include "call_chain.h"

#include <libunwind.h>
#include <stdbool.h>
#include <xxhash.h>

static __thread bool unwinding __attribute__((tls_model("initial-exec")));

void call_chain_take(struct call_chain *chain)
{
	chain->count = 0;
	if (unwinding)
		return;
	unwinding = true;
	int n = unw_backtrace(chain->frames, CHAIN_MAX);
	unwinding = false;
	/* A full buffer may be a cut chain: its outer frames are unknown. */
	chain->count = n > 0 && n < CHAIN_MAX ? n : 0;
}

uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
{
	return XXH3_64bits(chain->frames + (chain->count - depth), (size_t)depth * sizeof(void *));
}
