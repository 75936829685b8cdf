/*
 * test_frame_rule.c - unit tests for shim/frame_rule.c: frame rules read
 * from hand-built .eh_frame_hdr and .eh_frame bytes (a prologue pushing rbp
 * and moving the frame address to it, an epilogue under remember/restore
 * state, the outermost frame, a signal frame, the large offsets and the
 * advance forms), the descriptions it must refuse (CFA expressions, rbp in
 * another register, rsp given a rule, a return address elsewhere than
 * CFA-8, a rule for a register libunwind stops at, unknown augmentations,
 * aligned and data-relative pointers, an advancing CIE, unknown opcodes,
 * an unbalanced restore_state),
 * the search table's edges (before the first function, between two, past
 * a function's end) and every truncation of a valid table (each read is
 * bounded: ASan checks it). Then the test program's own tables: the rule
 * for this very function, as the loader maps it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "frame_rule.h"

#define IMAGE 4096
#define EH_FRAME 256 /* where .eh_frame starts in the image */
#define CODE 3072    /* where the described functions' addresses start */

/* An image of a module's unwind sections: the header and search table at
 * 0, CIEs and FDEs from EH_FRAME on; the functions they describe are
 * addresses at CODE and above (never executed). */
struct image {
	uint8_t *mem;
	size_t end;
	int count;
	uint32_t fde[8], start[8];
};

static void put(struct image *img, const void *bytes, size_t n)
{
	assert_true(img->end + n <= CODE);
	if (n)
		memcpy(img->mem + img->end, bytes, n);
	img->end += n;
}

static void put32(struct image *img, uint32_t v)
{
	put(img, &v, 4);
}

static void put_at32(struct image *img, size_t at, uint32_t v)
{
	memcpy(img->mem + at, &v, 4);
}

static void image_start(struct image *img)
{
	img->mem = aligned_alloc(64, IMAGE);
	assert_non_null(img->mem);
	memset(img->mem, 0, IMAGE);
	img->end = EH_FRAME;
	img->count = 0;
}

/* A CIE (version 1, code alignment 1, data alignment -8, return address
 * column 16; data_align, if set) with augmentation aug and, for 'R', FDE pointers pcrel sdata4
 * ('a' is written as 'P' with an aligned personality pointer); its initial
 * instructions are given. Returns where it starts. */
static const uint8_t minus_eight[] = {0x78}; /* sleb128 */
static const uint8_t *data_align = minus_eight;
static size_t data_align_len = sizeof minus_eight;

static size_t add_cie(struct image *img, const char *aug, const uint8_t *insns, size_t n)
{
	size_t at = img->end;
	put32(img, 0);
	put32(img, 0);
	uint8_t head[] = {1};
	put(img, head, 1);
	char written[16];
	size_t aug_len = strlen(aug);
	assert_true(aug_len < sizeof written);
	for (size_t i = 0; i <= aug_len; i++)
		written[i] = aug[i] == 'a' ? 'P' : aug[i]; /* 'a': 'P', aligned */
	put(img, written, aug_len + 1);
	uint8_t code_align = 1, ra_column = 16;
	put(img, &code_align, 1);
	put(img, data_align, data_align_len);
	put(img, &ra_column, 1);
	if (aug[0] == 'z') {
		uint8_t data[16];
		size_t len = 0;
		for (const char *a = aug + 1; *a; a++) {
			if (*a == 'R')
				data[len++] = 0x1b;
			else if (*a == 'P') {
				data[len++] = 0x03; /* udata4 */
				memset(data + len, 0, 4);
				len += 4;
			} else if (*a == 'L') {
				data[len++] = 0x1b;
			} else if (*a == 'a') { /* 'P' with an aligned pointer */
				data[len++] = 0x50;
				memset(data + len, 0, 8);
				len += 8;
			}
		}
		uint8_t l = (uint8_t)len;
		put(img, &l, 1);
		put(img, data, len);
	}
	put(img, insns, n);
	put_at32(img, at, (uint32_t)(img->end - at - 4));
	return at;
}

static const uint8_t standard_cie[] = {0x0c, 7, 8, 0x90, 1}; /* CFA rsp+8, ra at CFA-8 */

/* An FDE for [CODE + start, + range) under the CIE at cie. */
static void add_fde(struct image *img, size_t cie, uint32_t start, uint32_t range,
		    const uint8_t *insns, size_t n)
{
	size_t at = img->end;
	put32(img, 0);
	put32(img, (uint32_t)(img->end - cie));
	put32(img, (uint32_t)(CODE + start - img->end));
	put32(img, range);
	uint8_t aug_len = 0;
	put(img, &aug_len, 1);
	put(img, insns, n);
	put_at32(img, at, (uint32_t)(img->end - at - 4));
	img->fde[img->count] = (uint32_t)at;
	img->start[img->count] = CODE + start;
	img->count++;
}

/* An image of one function, [CODE, + range), under a CIE of its own:
 * returns where the CIE starts. */
static size_t one_function(struct image *img, const char *aug, const uint8_t *cie_insns,
			   size_t cie_n, uint32_t range, const uint8_t *insns, size_t n)
{
	image_start(img);
	size_t cie = add_cie(img, aug, cie_insns, cie_n);
	add_fde(img, cie, 0, range, insns, n);
	return cie;
}

/* The header: eh_frame pointer, FDE count, then the table (in the order
 * the FDEs were added: add them by address). */
static struct unwind_table image_table(struct image *img)
{
	uint8_t head[] = {1, 0x1b, 0x03, 0x3b};
	memcpy(img->mem, head, 4);
	put_at32(img, 4, (uint32_t)(EH_FRAME - 4));
	put_at32(img, 8, (uint32_t)img->count);
	for (int i = 0; i < img->count; i++) {
		put_at32(img, 12 + 8 * (size_t)i, img->start[i]);
		put_at32(img, 16 + 8 * (size_t)i, img->fde[i]);
	}
	uintptr_t base = (uintptr_t)img->mem;
	return (struct unwind_table){base, base, base + img->end};
}

static struct frame_rule rule_at(struct image *img, uint32_t pc)
{
	struct unwind_table t = image_table(img);
	return frame_rule_find(&t, (uintptr_t)img->mem + CODE + pc);
}

static void expect_step(struct frame_rule r, bool from_rbp, int32_t offset, bool rbp_saved,
			int32_t slot)
{
	assert_int_equal(r.kind, FRAME_STEP);
	assert_int_equal(r.cfa_from_rbp, from_rbp);
	assert_int_equal(r.cfa_offset, offset);
	assert_int_equal(r.rbp_saved, rbp_saved);
	assert_int_equal(r.rbp_slot, slot);
}

/* push %rbp (1 byte); mov %rsp,%rbp (3); ... ; pop %rbp at 20; ret at 21 */
static const uint8_t prologue[] = {
	0x41, 0x0e, 16, 0x86, 2,  /* at 1: CFA rsp+16, rbp at CFA-16 */
	0x43, 0x0d, 6,            /* at 4: CFA rbp+16 */
	0x50, 0x0c, 7, 8,         /* at 20: CFA rsp+8 */
};

static void test_prologue_and_body(void **state)
{
	(void)state;
	struct image img;
	one_function(&img, "zR", standard_cie, sizeof standard_cie, 22, prologue, sizeof prologue);
	expect_step(rule_at(&img, 0), false, 8, false, 0);
	expect_step(rule_at(&img, 1), false, 16, true, -16);
	expect_step(rule_at(&img, 3), false, 16, true, -16);
	expect_step(rule_at(&img, 4), true, 16, true, -16);
	expect_step(rule_at(&img, 19), true, 16, true, -16);
	/* rbp's rule stays: pop restored it, but the CFI did not say so */
	expect_step(rule_at(&img, 20), false, 8, true, -16);
	assert_int_equal(rule_at(&img, 5).function, (uintptr_t)img.mem + CODE);
	assert_int_equal(rule_at(&img, 22).kind, FRAME_UNKNOWN);
	assert_int_equal(rule_at(&img, 22).function, 0);
	free(img.mem);
}

static void test_remember_restore_and_restore_reg(void **state)
{
	(void)state;
	const uint8_t insns[] = {
		0x41, 0x0e, 16, 0x86, 2, /* at 1: push rbp */
		0x41, 0x0a,              /* at 2: remember */
		0x0e, 8, 0xc6,           /*        pop rbp: CFA rsp+8, rbp restored */
		0x41, 0x0b,              /* at 3: restore: back to rsp+16, rbp saved */
		0x02, 10, 0x0e, 48,      /* at 13 (advance_loc1): CFA rsp+48 */
		0x03, 0x00, 0x01, 0x0e, 200, 0x02, /* at 269 (advance_loc2): rsp+328 (uleb) */
		0x04, 0x00, 0x00, 0x01, 0x00, 0x0e, 0x80, 0x80, 0x04, /* at 65805: rsp+65536 */
	};
	struct image img;
	one_function(&img, "zR", standard_cie, sizeof standard_cie, 70000, insns, sizeof insns);
	expect_step(rule_at(&img, 1), false, 16, true, -16);
	expect_step(rule_at(&img, 2), false, 8, false, 0);
	expect_step(rule_at(&img, 3), false, 16, true, -16);
	expect_step(rule_at(&img, 13), false, 48, true, -16);
	expect_step(rule_at(&img, 268), false, 48, true, -16);
	expect_step(rule_at(&img, 269), false, 328, true, -16);
	expect_step(rule_at(&img, 65805), false, 65536, true, -16);
	free(img.mem);
}

static void test_outermost(void **state)
{
	(void)state;
	const uint8_t insns[] = {0x07, 16}; /* undefined rip */
	struct image img;
	one_function(&img, "zR", standard_cie, sizeof standard_cie, 8, insns, sizeof insns);
	struct frame_rule r = rule_at(&img, 4);
	assert_int_equal(r.kind, FRAME_OUTERMOST);
	assert_int_equal(r.function, (uintptr_t)img.mem + CODE);
	free(img.mem);
}

/* Each description must give FRAME_UNKNOWN (the FDE was found: its
 * function is still known). */
static void expect_refused(const char *aug, const uint8_t *cie_insns, size_t cie_n,
			   const uint8_t *insns, size_t n)
{
	struct image img;
	one_function(&img, aug, cie_insns, cie_n, 64, insns, n);
	struct frame_rule r = rule_at(&img, 10);
	assert_int_equal(r.kind, FRAME_UNKNOWN);
	free(img.mem);
}

static void test_refusals(void **state)
{
	(void)state;
	const uint8_t cfa_expression[] = {0x0f, 3, 0x77, 8, 0x06};
	const uint8_t rbp_in_register[] = {0x09, 6, 3};
	const uint8_t rbp_expression[] = {0x10, 6, 2, 0x76, 0};
	const uint8_t rsp_rule[] = {0x87, 2};
	const uint8_t ra_elsewhere[] = {0x90, 2};
	const uint8_t cfa_in_rbx[] = {0x0c, 3, 16};
	const uint8_t unknown_op[] = {0x2d};
	const uint8_t lone_restore_state[] = {0x0b};
	const uint8_t rbp_val_offset[] = {0x14, 6, 2};
	const uint8_t small_cfa[] = {0x0e, 0};
	expect_refused("zR", standard_cie, sizeof standard_cie, cfa_expression, sizeof cfa_expression);
	expect_refused("zR", standard_cie, sizeof standard_cie, rbp_in_register, sizeof rbp_in_register);
	expect_refused("zR", standard_cie, sizeof standard_cie, rbp_expression, sizeof rbp_expression);
	expect_refused("zR", standard_cie, sizeof standard_cie, rsp_rule, sizeof rsp_rule);
	expect_refused("zR", standard_cie, sizeof standard_cie, ra_elsewhere, sizeof ra_elsewhere);
	expect_refused("zR", standard_cie, sizeof standard_cie, cfa_in_rbx, sizeof cfa_in_rbx);
	expect_refused("zR", standard_cie, sizeof standard_cie, unknown_op, sizeof unknown_op);
	expect_refused("zR", standard_cie, sizeof standard_cie, lone_restore_state,
		       sizeof lone_restore_state);
	expect_refused("zR", standard_cie, sizeof standard_cie, rbp_val_offset, sizeof rbp_val_offset);
	expect_refused("zR", standard_cie, sizeof standard_cie, small_cfa, sizeof small_cfa);
	/* an unknown augmentation; an aligned personality pointer */
	expect_refused("zRX", standard_cie, sizeof standard_cie, NULL, 0);
	expect_refused("zaR", standard_cie, sizeof standard_cie, NULL, 0);
	/* a rule for a register libunwind stops at (xmm6, as ms_abi saves it) */
	const uint8_t xmm_saved[] = {0x05, 23, 4};
	const uint8_t xmm_restored[] = {0x06, 17};
	const uint8_t rbx_in_xmm[] = {0x09, 3, 17};
	expect_refused("zR", standard_cie, sizeof standard_cie, xmm_saved, sizeof xmm_saved);
	expect_refused("zR", standard_cie, sizeof standard_cie, xmm_restored, sizeof xmm_restored);
	expect_refused("zR", standard_cie, sizeof standard_cie, rbx_in_xmm, sizeof rbx_in_xmm);
	/* a CIE that moves the location */
	const uint8_t cie_advancing[] = {0x0c, 7, 8, 0x90, 1, 0x41, 0x0e, 16};
	expect_refused("zR", cie_advancing, sizeof cie_advancing, NULL, 0);
	/* a register libunwind stops at, named inside remembered state, and
	 * as the frame address's register before rsp again */
	const uint8_t xmm_in_remembered[] = {0x0a, 0x05, 23, 4, 0x0b};
	const uint8_t cfa_via_xmm[] = {0x0d, 17, 0x0d, 7};
	expect_refused("zR", standard_cie, sizeof standard_cie, xmm_in_remembered,
		       sizeof xmm_in_remembered);
	expect_refused("zR", standard_cie, sizeof standard_cie, cfa_via_xmm, sizeof cfa_via_xmm);
	/* -(INT64_MIN): a CIE whose data alignment is INT64_MIN */
	const uint8_t int64_min[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f};
	const uint8_t negative_offset[] = {0x2f, 6, 1};
	data_align = int64_min;
	data_align_len = sizeof int64_min;
	expect_refused("zR", standard_cie, sizeof standard_cie, negative_offset, sizeof negative_offset);
	data_align = minus_eight;
	data_align_len = sizeof minus_eight;
	/* no return address rule at all */
	const uint8_t cfa_only[] = {0x0c, 7, 8};
	expect_refused("zR", cfa_only, sizeof cfa_only, NULL, 0);
}

/* A signal frame is reported as one, whatever its instructions. */
static void test_signal_frame(void **state)
{
	(void)state;
	const uint8_t expression[] = {0x0f, 3, 0x77, 160, 1};
	struct image img;
	one_function(&img, "zRS", standard_cie, sizeof standard_cie,
		     16, expression, sizeof expression);
	struct frame_rule r = rule_at(&img, 4);
	assert_int_equal(r.kind, FRAME_SIGNAL);
	assert_int_equal(r.function, (uintptr_t)img.mem + CODE);
	free(img.mem);
}

/* An FDE whose function starts at address 0 (absolute pointers, the
 * encoding of a CIE without 'R') and reaches the address asked about: a
 * function of 0 reads as none, so the rule is unknown, signal frame or not. */
static void test_fde_at_zero_refused(void **state)
{
	(void)state;
	const char *const augs[] = {"", "S"};
	for (size_t k = 0; k < 2; k++) {
		struct image img;
		image_start(&img);
		size_t cie = add_cie(&img, augs[k], standard_cie, sizeof standard_cie);
		size_t at = img.end;
		put32(&img, 0);
		put32(&img, (uint32_t)(img.end - cie));
		uint64_t begin = 0, range = UINT64_MAX / 2;
		put(&img, &begin, 8);
		put(&img, &range, 8);
		put_at32(&img, at, (uint32_t)(img.end - at - 4));
		img.fde[0] = (uint32_t)at;
		img.start[0] = CODE;
		img.count = 1;
		assert_int_equal(rule_at(&img, 4).kind, FRAME_UNKNOWN);
		free(img.mem);
	}
}

/* FDE addresses relative to a data base the rules do not have. */
static void test_datarel_fde_refused(void **state)
{
	(void)state;
	struct image img;
	size_t cie = one_function(&img, "zR", standard_cie, sizeof standard_cie, 16, NULL, 0);
	/* the CIE: length, id, version, "zR", alignments and column, the
	 * augmentation's length, then the encoding 'R' gives */
	size_t r_byte = cie + 4 + 4 + 1 + 3 + 3 + 1;
	assert_int_equal(img.mem[r_byte], 0x1b);
	img.mem[r_byte] = 0x3b;
	assert_int_equal(rule_at(&img, 4).kind, FRAME_UNKNOWN);
	free(img.mem);
}

/* A register the rules do not follow may be anywhere: rbx saved, r12 in an
 * expression, args_size. And 'P' and 'L' augmentations are skipped. */
static void test_other_registers_ignored(void **state)
{
	(void)state;
	const uint8_t insns[] = {0x83, 3, 0x10, 12, 2, 0x7c, 0, 0x2e, 16, 0x41, 0x0e, 24};
	struct image img;
	/* with 'L' the FDE's augmentation holds an LSDA pointer: give none */
	one_function(&img, "zPLR", standard_cie, sizeof standard_cie, 16, insns, sizeof insns);
	expect_step(rule_at(&img, 0), false, 8, false, 0);
	expect_step(rule_at(&img, 1), false, 24, false, 0);
	free(img.mem);
}

static void test_table_edges(void **state)
{
	(void)state;
	struct image img;
	image_start(&img);
	size_t cie = add_cie(&img, "zR", standard_cie, sizeof standard_cie);
	add_fde(&img, cie, 16, 16, NULL, 0);
	add_fde(&img, cie, 48, 16, prologue, sizeof prologue);
	add_fde(&img, cie, 64, 8, NULL, 0);
	assert_int_equal(rule_at(&img, 15).kind, FRAME_UNKNOWN);
	expect_step(rule_at(&img, 16), false, 8, false, 0);
	expect_step(rule_at(&img, 31), false, 8, false, 0);
	assert_int_equal(rule_at(&img, 32).kind, FRAME_UNKNOWN); /* a gap */
	assert_int_equal(rule_at(&img, 47).kind, FRAME_UNKNOWN);
	expect_step(rule_at(&img, 48 + 4), true, 16, true, -16);
	assert_int_equal(rule_at(&img, 48 + 4).function, (uintptr_t)img.mem + CODE + 48);
	expect_step(rule_at(&img, 64), false, 8, false, 0);
	assert_int_equal(rule_at(&img, 72).kind, FRAME_UNKNOWN);
	free(img.mem);
}

/* The table cut short at every length, copied to a buffer of exactly that
 * size: never a read past it, never a rule from what is left. */
static void test_every_truncation(void **state)
{
	(void)state;
	struct image img;
	one_function(&img, "zR", standard_cie, sizeof standard_cie, 22, prologue, sizeof prologue);
	struct unwind_table whole = image_table(&img);
	size_t len = img.end;
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, img.mem, cut);
		uintptr_t base = (uintptr_t)copy;
		struct unwind_table t = {base, base, base + cut};
		/* the function's addresses, relative to the copy as to the image */
		struct frame_rule r = frame_rule_find(&t, base + CODE + 10);
		assert_int_equal(r.kind, FRAME_UNKNOWN);
		free(copy);
	}
	expect_step(frame_rule_find(&whole, whole.hdr + CODE + 10), true, 16, true, -16);
	free(img.mem);
}

/* The program's own tables, as the loader mapped them. */
struct own_module {
	uintptr_t pc;
	struct unwind_table table;
	bool found;
};

static int find_own(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct own_module *m = arg;
	const ElfW(Phdr) *eh = NULL;
	bool holds = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && m->pc >= start && m->pc - start < ph->p_memsz)
			holds = true;
		if (ph->p_type == PT_GNU_EH_FRAME)
			eh = ph;
	}
	if (!holds || !eh)
		return 0;
	uintptr_t hdr = info->dlpi_addr + eh->p_vaddr;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && hdr >= start && hdr - start < ph->p_filesz) {
			m->table = (struct unwind_table){hdr, start, start + ph->p_filesz};
			m->found = true;
		}
	}
	return 1;
}

static __attribute__((noinline)) uintptr_t here(void)
{
	return (uintptr_t)__builtin_return_address(0);
}

static void test_own_tables(void **state)
{
	(void)state;
	uintptr_t ra = here();
	struct own_module m = {ra - 1, {0, 0, 0}, false};
	dl_iterate_phdr(find_own, &m);
	assert_true(m.found);
	struct frame_rule r = frame_rule_find(&m.table, ra - 1);
	/* cmocka's caller gave this function a frame: rsp-based at -O2,
	 * rbp-based at -O0 */
	assert_int_equal(r.kind, FRAME_STEP);
	assert_true(r.cfa_offset >= 8);
	assert_int_equal(r.function, (uintptr_t)test_own_tables);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prologue_and_body),
		cmocka_unit_test(test_remember_restore_and_restore_reg),
		cmocka_unit_test(test_outermost),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_signal_frame),
		cmocka_unit_test(test_fde_at_zero_refused),
		cmocka_unit_test(test_datarel_fde_refused),
		cmocka_unit_test(test_other_registers_ignored),
		cmocka_unit_test(test_table_edges),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_own_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
