/*
 * tracestate_members.h - the member rules a normalised tracestate must keep,
 * shared by the unit test (test_tracestate.c) and the fuzzer
 * (fuzz_tracestate.c) so both check the same thing. Test code only: never
 * linked into the shim.
 */
#ifndef REQID_TEST_TRACESTATE_MEMBERS_H
#define REQID_TEST_TRACESTATE_MEMBERS_H

#include <stddef.h>
#include <string.h>

#include "tracestate.h"

/* NULL when the n bytes at s are members "key=value" split by ',', at most
 * TRACESTATE_MEMBERS_MAX of them, no key twice; else what is wrong. */
static const char *tracestate_members_fault(const char *s, size_t n)
{
	const char *keys[TRACESTATE_MEMBERS_MAX];
	size_t key_lens[TRACESTATE_MEMBERS_MAX];
	size_t members = 0;

	for (size_t pos = 0; pos < n;) {
		const char *comma = memchr(s + pos, ',', n - pos);
		size_t end = comma ? (size_t)(comma - s) : n;
		const char *eq = memchr(s + pos, '=', end - pos);
		if (!eq)
			return "a member without '='";
		if (members == TRACESTATE_MEMBERS_MAX)
			return "more than TRACESTATE_MEMBERS_MAX members";
		keys[members] = s + pos;
		key_lens[members] = (size_t)(eq - (s + pos));
		for (size_t i = 0; i < members; i++) {
			if (key_lens[i] == key_lens[members] &&
			    memcmp(keys[i], keys[members], key_lens[i]) == 0)
				return "a key twice";
		}
		members++;
		pos = end + 1;
	}
	return NULL;
}

#endif
