/*
 * frame_rule.c - x86-64 frame rules from .eh_frame_hdr and .eh_frame (see
 * frame_rule.h).
 *
 * Must never read outside the bounds it is given, never follow a pointer it
 * has not checked, never loop without consuming bytes, and never answer
 * FRAME_STEP or FRAME_OUTERMOST for a description it did not understand
 * whole.
 */
#include "frame_rule.h"

#include <string.h>

#include "fork_hot.h"

/* DWARF register numbers (x86-64 psABI) */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16

/* Pointer encodings (DW_EH_PE_*) */
#define PE_OMIT 0xff
#define PE_FORMAT 0x0f
#define PE_APPLY 0x70
#define PE_PCREL 0x10
#define PE_DATAREL 0x30
#define PE_ALIGNED 0x50
#define PE_INDIRECT 0x80
#define PE_TABLE (PE_DATAREL | 0x0b) /* datarel sdata4: what GNU ld and lld write */

#define REMEMBER_MAX 8
#define AUGMENTATION_MAX 8

struct cursor {
	uintptr_t p, end;
	bool bad;
};

/* An unsigned little-endian value of n bytes (at most 8); 0 past the end. */
static uint64_t get_uint(struct cursor *c, uintptr_t n)
{
	uint64_t v = 0;
	if (c->bad || c->p > c->end || c->end - c->p < n) {
		c->bad = true;
		return 0;
	}
	memcpy(&v, (const void *)c->p, n);
	c->p += n;
	return v;
}

static uint8_t get_u8(struct cursor *c)
{
	return (uint8_t)get_uint(c, 1);
}

static LOOP_PATH uint64_t get_uleb(struct cursor *c)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b = get_u8(c);
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	c->bad = true;
	return 0;
}

static LOOP_PATH int64_t get_sleb(struct cursor *c)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b = get_u8(c);
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (shift + 7 < 64 && (b & 0x40))
				v |= ~(uint64_t)0 << (shift + 7);
			return (int64_t)v;
		}
	}
	c->bad = true;
	return 0;
}

static void skip(struct cursor *c, uint64_t n)
{
	if (c->bad || c->p > c->end || c->end - c->p < n)
		c->bad = true;
	else
		c->p += n;
}

/* A value in encoding enc, applied (pc-relative, or relative to base when
 * base is not 0) when apply is set; false for what this file does not take
 * (indirect, aligned, text-, function- or data-relative without a base,
 * unknown formats) or bytes out of bounds. */
static LOOP_PATH bool get_encoded(struct cursor *c, uint8_t enc, bool apply, uintptr_t base,
				   uint64_t *out)
{
	uintptr_t at = c->p;
	if ((enc & PE_APPLY) == PE_ALIGNED)
		return false;
	uint64_t v;
	switch (enc & PE_FORMAT) {
	case 0x00: case 0x04: case 0x0c: v = get_uint(c, 8); break;
	case 0x01: v = get_uleb(c); break;
	case 0x09: v = (uint64_t)get_sleb(c); break;
	case 0x02: v = get_uint(c, 2); break;
	case 0x0a: v = (uint64_t)(int64_t)(int16_t)get_uint(c, 2); break;
	case 0x03: v = get_uint(c, 4); break;
	case 0x0b: v = (uint64_t)(int64_t)(int32_t)get_uint(c, 4); break;
	default: return false;
	}
	if (c->bad)
		return false;
	if (apply) {
		if (enc & PE_INDIRECT)
			return false;
		switch (enc & PE_APPLY) {
		case 0: break;
		case PE_PCREL: v += at; break;
		case PE_DATAREL:
			if (base == 0)
				return false;
			v += base;
			break;
		default: return false;
		}
	}
	*out = v;
	return true;
}

struct cie {
	uint64_t code_align;
	int64_t data_align;
	uint8_t fde_encoding;
	bool augmented;             /* 'z': FDEs carry an augmentation length */
	bool signal;                /* 'S': a signal frame */
	uintptr_t start, end;       /* initial instructions */
};

/* The .eh_frame entry (CIE or FDE) at at: a cursor over what follows its
 * length, to its end; bad for an empty entry, one past hi, or the 64-bit
 * format. */
static LOOP_PATH struct cursor entry_at(const struct unwind_table *t, uintptr_t at)
{
	struct cursor c = {at, t->hi, false};
	uint64_t len = get_uint(&c, 4);
	if (c.bad || len == 0 || len == 0xffffffffu || c.end - c.p < len)
		c.bad = true;
	else
		c.end = c.p + len;
	return c;
}

static bool parse_cie(const struct unwind_table *t, uintptr_t at, struct cie *cie)
{
	struct cursor c = entry_at(t, at);
	uint64_t id = get_uint(&c, 4);
	uint8_t version = get_u8(&c);
	if (c.bad || id != 0 || (version != 1 && version != 3))
		return false;
	char aug[AUGMENTATION_MAX];
	size_t n = 0;
	for (;;) {
		char ch = (char)get_u8(&c);
		if (c.bad || n == AUGMENTATION_MAX)
			return false;
		if (ch == 0)
			break;
		aug[n++] = ch;
	}
	cie->code_align = get_uleb(&c);
	cie->data_align = get_sleb(&c);
	uint64_t ra = version == 1 ? get_u8(&c) : get_uleb(&c);
	if (c.bad || ra != REG_RA || cie->code_align == 0)
		return false;
	cie->fde_encoding = 0;
	cie->signal = false;
	cie->augmented = n > 0 && aug[0] == 'z';
	if (n > 0 && !cie->augmented)
		return false;
	if (cie->augmented) {
		uint64_t aug_len = get_uleb(&c);
		if (c.bad || c.end - c.p < aug_len)
			return false;
		struct cursor a = {c.p, c.p + aug_len, false};
		for (size_t i = 1; i < n; i++) {
			uint64_t ignored;
			if (aug[i] == 'R') {
				cie->fde_encoding = get_u8(&a);
			} else if (aug[i] == 'P') {
				uint8_t enc = get_u8(&a);
				if (!get_encoded(&a, enc, false, 0, &ignored))
					return false;
			} else if (aug[i] == 'L') {
				get_u8(&a);
			} else if (aug[i] == 'S') {
				cie->signal = true;
			} else {
				return false;
			}
			if (a.bad)
				return false;
		}
		c.p += aug_len;
	}
	cie->start = c.p;
	cie->end = c.end;
	return true;
}

enum rule_how { HOW_SAME, HOW_AT_CFA, HOW_UNDEFINED, HOW_OTHER, HOW_UNSET };

struct reg_rule {
	enum rule_how how;
	int64_t offset;
};

struct cfi_state {
	uint64_t cfa_reg;
	int64_t cfa_offset;
	bool cfa_expression;
	struct reg_rule rbp, rsp, ra;
};

/* libunwind's registers for x86-64: it stops at a rule for any other */
#define REG_KNOWN 17

struct cfi_run {
	const struct cie *cie;
	bool in_cie;                     /* no advance there */
	uintptr_t pc, loc;
	struct cfi_state initial;        /* what DW_CFA_restore goes back to */
	struct cfi_state remembered[REMEMBER_MAX];
	int depth;
	bool reached;                    /* an advance went past pc: stop */
	bool foreign;                    /* a register of REG_KNOWN or above was named:
					    libunwind stops there, whatever follows */
};

static struct reg_rule *rule_of(struct cfi_state *s, uint64_t reg)
{
	switch (reg) {
	case REG_RBP: return &s->rbp;
	case REG_RSP: return &s->rsp;
	case REG_RA: return &s->ra;
	default: return NULL;
	}
}

/* A register an instruction names: one libunwind does not know makes the
 * description foreign. */
static uint64_t named(struct cfi_run *r, uint64_t reg)
{
	if (reg >= REG_KNOWN)
		r->foreign = true;
	return reg;
}

static void set_rule(struct cfi_run *run, struct cfi_state *s, uint64_t reg, enum rule_how how,
		     int64_t offset)
{
	struct reg_rule *r = rule_of(s, named(run, reg));
	if (r) {
		r->how = how;
		r->offset = offset;
	}
}

static void restore(struct cfi_run *r, struct cfi_state *s, uint64_t reg)
{
	switch (named(r, reg)) {
	case REG_RBP: s->rbp = r->initial.rbp; break;
	case REG_RSP: s->rsp = r->initial.rsp; break;
	case REG_RA: s->ra = r->initial.ra; break;
	}
}

static bool scaled(uint64_t factor_times, int64_t align, int64_t *out)
{
	if (factor_times > INT32_MAX)
		return false;
	return !__builtin_mul_overflow((int64_t)factor_times, align, out);
}

static bool advance(struct cfi_run *r, uint64_t delta)
{
	uint64_t by;
	if (r->in_cie)
		return false;
	if (__builtin_mul_overflow(delta, r->cie->code_align, &by) || by > r->pc - r->loc)
		r->reached = true;
	else
		r->loc += by;
	return true;
}

/* Runs the instructions in [from, to) until one would move past pc. */
static LOOP_PATH bool run_cfi(struct cfi_run *r, struct cfi_state *s, uintptr_t from, uintptr_t to)
{
	struct cursor c = {from, to, false};
	while (!r->reached && !c.bad && c.p < c.end) {
		uint8_t op = get_u8(&c);
		uint64_t reg = op & 0x3f, n;
		int64_t off;
		switch (op & 0xc0) {
		case 0x40:
			if (!advance(r, reg))
				return false;
			continue;
		case 0x80:
			if (!scaled(get_uleb(&c), r->cie->data_align, &off))
				return false;
			set_rule(r, s, reg, HOW_AT_CFA, off);
			continue;
		case 0xc0:
			restore(r, s, reg);
			continue;
		}
		switch (op) {
		case 0x00: /* nop */
			break;
		case 0x01: { /* set_loc */
			uint64_t to_loc;
			if (r->in_cie || !get_encoded(&c, r->cie->fde_encoding, true, 0, &to_loc) ||
			    to_loc < r->loc)
				return false;
			if (to_loc > r->pc)
				r->reached = true;
			else
				r->loc = to_loc;
			break;
		}
		case 0x02: case 0x03: case 0x04: /* advance_loc1, 2, 4 */
			if (!advance(r, get_uint(&c, (uintptr_t)1 << (op - 0x02))))
				return false;
			break;
		case 0x05: /* offset_extended */
			reg = get_uleb(&c);
			if (!scaled(get_uleb(&c), r->cie->data_align, &off))
				return false;
			set_rule(r, s, reg, HOW_AT_CFA, off);
			break;
		case 0x06: /* restore_extended */
			restore(r, s, get_uleb(&c));
			break;
		case 0x07: set_rule(r, s, get_uleb(&c), HOW_UNDEFINED, 0); break;
		case 0x08: set_rule(r, s, get_uleb(&c), HOW_SAME, 0); break;
		case 0x09: /* register */
			reg = get_uleb(&c);
			named(r, get_uleb(&c));
			set_rule(r, s, reg, HOW_OTHER, 0);
			break;
		case 0x0a: /* remember_state */
			if (r->depth == REMEMBER_MAX)
				return false;
			r->remembered[r->depth++] = *s;
			break;
		case 0x0b: /* restore_state */
			if (r->depth == 0)
				return false;
			*s = r->remembered[--r->depth];
			break;
		case 0x0d: /* def_cfa_register (other than rsp or rbp: refused at the end) */
			s->cfa_reg = named(r, get_uleb(&c));
			break;
		case 0x0c: /* def_cfa: the register, then the offset */
			s->cfa_reg = named(r, get_uleb(&c));
			s->cfa_expression = false;
			__attribute__((fallthrough));
		case 0x0e: /* def_cfa_offset */
			n = get_uleb(&c);
			if (n > INT32_MAX)
				return false;
			s->cfa_offset = (int64_t)n;
			break;
		case 0x0f: /* def_cfa_expression */
			skip(&c, get_uleb(&c));
			s->cfa_expression = true;
			break;
		case 0x10: case 0x16: /* expression, val_expression */
			reg = get_uleb(&c);
			skip(&c, get_uleb(&c));
			set_rule(r, s, reg, HOW_OTHER, 0);
			break;
		case 0x11: /* offset_extended_sf */
			reg = get_uleb(&c);
			if (__builtin_mul_overflow(get_sleb(&c), r->cie->data_align, &off))
				return false;
			set_rule(r, s, reg, HOW_AT_CFA, off);
			break;
		case 0x12: /* def_cfa_sf: the register, then the offset */
			s->cfa_reg = named(r, get_uleb(&c));
			s->cfa_expression = false;
			__attribute__((fallthrough));
		case 0x13: /* def_cfa_offset_sf */
			if (__builtin_mul_overflow(get_sleb(&c), r->cie->data_align, &s->cfa_offset))
				return false;
			break;
		case 0x14: case 0x15: /* val_offset, val_offset_sf */
			reg = get_uleb(&c);
			get_uleb(&c);
			set_rule(r, s, reg, HOW_OTHER, 0);
			break;
		case 0x2e: /* GNU_args_size */
			get_uleb(&c);
			break;
		case 0x2f: /* GNU_negative_offset_extended */
			reg = get_uleb(&c);
			if (!scaled(get_uleb(&c), r->cie->data_align, &off) || off == INT64_MIN)
				return false;
			set_rule(r, s, reg, HOW_AT_CFA, -off);
			break;
		default:
			return false;
		}
		if (c.bad)
			return false;
	}
	return !c.bad;
}

/* The FDE the search table lists for pc (the last entry at or below it),
 * or 0. */
static uintptr_t find_fde(const struct unwind_table *t, uintptr_t pc)
{
	struct cursor c = {t->hdr, t->hi, false};
	if (t->hdr < t->lo || t->hdr >= t->hi)
		return 0;
	uint8_t version = get_u8(&c), frame_enc = get_u8(&c), count_enc = get_u8(&c),
		table_enc = get_u8(&c);
	uint64_t ignored, count;
	if (c.bad || version != 1 || table_enc != PE_TABLE || frame_enc == PE_OMIT ||
	    count_enc == PE_OMIT || !get_encoded(&c, frame_enc, false, 0, &ignored) ||
	    !get_encoded(&c, count_enc, false, 0, &count))
		return 0;
	uintptr_t table = c.p;
	if (count == 0 || count > (t->hi - table) / 8)
		return 0;
	/* entries are (start, fde) pairs of int32 relative to hdr, by start */
	uint64_t lo = 0, hi = count;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		int32_t start;
		memcpy(&start, (const void *)(table + mid * 8), 4);
		if (t->hdr + (uintptr_t)(intptr_t)start <= pc)
			lo = mid;
		else
			hi = mid;
	}
	int32_t start, fde;
	memcpy(&start, (const void *)(table + lo * 8), 4);
	memcpy(&fde, (const void *)(table + lo * 8 + 4), 4);
	if (t->hdr + (uintptr_t)(intptr_t)start > pc)
		return 0;
	uintptr_t at = t->hdr + (uintptr_t)(intptr_t)fde;
	return at >= t->lo && at < t->hi ? at : 0;
}

LOOP_PATH struct frame_rule frame_rule_find(const struct unwind_table *t, uintptr_t pc)
{
	struct frame_rule unknown = {FRAME_UNKNOWN, false, false, 0, 0, 0};
	uintptr_t at = find_fde(t, pc);
	if (at == 0)
		return unknown;
	struct cursor c = entry_at(t, at);
	uintptr_t cie_field = c.p;
	uint64_t cie_offset = get_uint(&c, 4);
	struct cie cie;
	if (c.bad || cie_offset == 0 || cie_offset > cie_field - t->lo ||
	    !parse_cie(t, cie_field - cie_offset, &cie))
		return unknown;
	uint64_t begin, range;
	if (!get_encoded(&c, cie.fde_encoding, true, 0, &begin) ||
	    !get_encoded(&c, cie.fde_encoding & PE_FORMAT, false, 0, &range) || begin == 0 ||
	    pc < begin || pc - begin >= range)
		return unknown; /* a function at 0 would read as none */
	if (cie.augmented)
		skip(&c, get_uleb(&c));
	if (c.bad)
		return unknown;
	if (cie.signal)
		return (struct frame_rule){FRAME_SIGNAL, false, false, 0, 0, begin};

	/* before the CIE's instructions: no frame address, no return address */
	struct cfi_state s = {REG_RSP, 0, false, {HOW_SAME, 0}, {HOW_SAME, 0}, {HOW_UNSET, 0}};
	struct cfi_run r = {&cie, true, pc, begin, s, {{0}}, 0, false, false};
	if (!run_cfi(&r, &s, cie.start, cie.end))
		return unknown;
	r.initial = s;
	r.depth = 0;
	r.in_cie = false;
	if (!r.reached && !run_cfi(&r, &s, c.p, c.end))
		return unknown;

	struct frame_rule rule = unknown;
	rule.function = begin;
	if (r.foreign)
		return rule;
	if (s.cfa_expression || s.rsp.how != HOW_SAME)
		return rule;
	if (s.ra.how == HOW_UNDEFINED) {
		rule.kind = FRAME_OUTERMOST;
		return rule;
	}
	if (s.ra.how != HOW_AT_CFA || s.ra.offset != -8 ||
	    (s.cfa_reg != REG_RSP && s.cfa_reg != REG_RBP) || s.cfa_offset < 8 ||
	    s.cfa_offset > INT32_MAX)
		return rule;
	if (s.rbp.how == HOW_AT_CFA && s.rbp.offset >= INT32_MIN && s.rbp.offset <= INT32_MAX)
		rule.rbp_saved = true;
	else if (s.rbp.how != HOW_SAME)
		return rule;
	rule.kind = FRAME_STEP;
	rule.cfa_from_rbp = s.cfa_reg == REG_RBP;
	rule.cfa_offset = (int32_t)s.cfa_offset;
	rule.rbp_slot = rule.rbp_saved ? (int32_t)s.rbp.offset : 0;
	return rule;
}
