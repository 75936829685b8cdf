/*
 * frame_rule.h - how to step from an x86-64 frame to its caller's, read
 * from a module's .eh_frame_hdr search table and .eh_frame DWARF call frame
 * information: the part of unwinding call_chain.c does without libunwind.
 *
 * Pure logic over bytes in memory: every read is checked against the
 * bounds it is given, nothing is written, nothing allocated. It answers
 * only the common shape (the caller's frame address is rsp or rbp plus a
 * constant, the return address is just below it, rbp is unchanged or saved
 * at a constant offset from it) and the outermost frame (return address
 * undefined), and says which frames are signal frames; anything else
 * (expressions, rbp or the return address elsewhere, a rule for a register
 * libunwind does not know (17 and up: it would stop there), encodings it
 * does not know, a table that does not cover the address) is
 * FRAME_UNKNOWN, and the caller must take its chain some other way. Never
 * guesses.
 */
#ifndef REQID_FRAME_RULE_H
#define REQID_FRAME_RULE_H

#include <stdbool.h>
#include <stdint.h>

enum frame_kind {
	FRAME_UNKNOWN,   /* not described, or not in the common shape */
	FRAME_STEP,      /* the caller's frame is found as the rule says */
	FRAME_OUTERMOST, /* no caller: the thread's first function */
	FRAME_SIGNAL,    /* a signal frame (its CIE says 'S'): what it interrupted is below */
};

struct frame_rule {
	enum frame_kind kind;
	bool cfa_from_rbp;  /* caller's stack pointer = (rbp or rsp) + cfa_offset */
	bool rbp_saved;     /* the caller's rbp is at cfa + rbp_slot, else unchanged */
	int32_t cfa_offset;
	int32_t rbp_slot;
	uintptr_t function; /* start of the function the address is in, 0 if unknown */
};

/* A loaded module's unwind tables: its .eh_frame_hdr at hdr, and the
 * readable range [lo, hi) that holds it and the .eh_frame it indexes. */
struct unwind_table {
	uintptr_t hdr;
	uintptr_t lo, hi;
};

/* The rule at pc: an exact instruction address for the innermost frame, a
 * return address minus one for the others. */
struct frame_rule frame_rule_find(const struct unwind_table *table, uintptr_t pc);

#endif
