/*
 * fuzz_tracestate.c - libFuzzer target for tracestate normalisation.
 *
 * Feeds up to TRACESTATE_MAX bytes, from and into buffers of exactly the
 * input's size (ASan catches any overrun), and checks that the result is -1
 * or at most the input length, that the output has no empty member, no
 * whitespace next to a comma or at either end, at most 32 members and no key
 * twice, and that normalising the output again gives it back unchanged.
 * Never prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tracestate.h"
#include "../unit/tracestate_members.h"

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* No empty member, no OWS around any member. */
static void check_normalised(const char *s, size_t n)
{
	if (n == 0)
		return;
	if (s[0] == ',' || s[n - 1] == ',' || is_blank(s[0]) || is_blank(s[n - 1]))
		abort();
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] == ',' && (s[i + 1] == ',' || is_blank(s[i + 1])))
			abort();
		if (is_blank(s[i]) && s[i + 1] == ',')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = size < TRACESTATE_MAX ? size : TRACESTATE_MAX;
	char *in = malloc(len + !len);
	char *out = malloc(len + !len);
	memcpy(in, data, len);

	int n = tracestate_normalize(in, len, out);
	if (n < -1 || n > (int)len)
		abort();
	if (n >= 0) {
		check_normalised(out, (size_t)n);
		if (tracestate_members_fault(out, (size_t)n))
			abort();
		char *again = malloc((size_t)n + !n);
		if (tracestate_normalize(out, (size_t)n, again) != n ||
		    memcmp(again, out, (size_t)n) != 0)
			abort();
		free(again);
	}
	free(in);
	free(out);
	return 0;
}
