/*
 * fuzz_frame_rule.c - libFuzzer target for the frame rules read from
 * .eh_frame_hdr and .eh_frame bytes.
 *
 * The input, copied to a buffer of exactly its size (ASan catches any read
 * past it), is the module's readable range with the header at its start;
 * the address asked about is the input's start plus its last two bytes
 * (so that the FDE pointers, which are relative, can reach it). Checks
 * that a rule it gives is one the walker can follow: a frame address at
 * least 8 above rsp or rbp, and a function start at or below the address.
 * Never prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame_rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	uintptr_t base = (uintptr_t)copy;
	uint16_t at;
	memcpy(&at, data + size - 2, 2);
	struct unwind_table t = {base, base, base + size};
	uintptr_t pc = base + at;
	struct frame_rule r = frame_rule_find(&t, pc);
	if (r.kind == FRAME_STEP && r.cfa_offset < 8)
		abort();
	if (r.kind != FRAME_UNKNOWN && (r.function == 0 || r.function > pc))
		abort();
	free(copy);
	return 0;
}
