/*
 * test_next_symbol.c - unit tests for next_symbol: the shim's originals
 * found from the loader's hash tables, as dlsym(RTLD_NEXT) finds them.
 *
 * Two kinds: every name libc defines, looked up in this process both ways
 * (the answers must be the same address); and hand-made tables for each
 * rule of the lookup (versions, bindings, kinds, the Bloom filter).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>

#include "next_symbol.h"
#include "shim_init.h"

/* The object dlsym(RTLD_NEXT) in this program starts after: the program,
 * or the vDSO the loader lists right after it (no lookup searches it). */
static const struct link_map *program_or_vdso(void)
{
	const struct link_map *main_map = _r_debug.r_map;
	const struct link_map *next = main_map->l_next;
	if (next && next->l_addr == (ElfW(Addr))getauxval(AT_SYSINFO_EHDR))
		return next;
	return main_map;
}

/* The objects this program's dlsym(RTLD_NEXT) searches. */
static struct next_objects next;

static int read_next(void **state)
{
	(void)state;
	next_objects_read(program_or_vdso(), &next);
	return 0;
}

static const struct link_map *libc_map(void)
{
	for (const struct link_map *l = _r_debug.r_map; l; l = l->l_next)
		if (is_libc_name(l->l_name))
			return l;
	return NULL;
}

/* How many symbols a GNU hash table covers: past the last bucket's chain. */
static uint32_t symbol_count(const uint32_t *gnu_hash)
{
	uint32_t nbuckets = gnu_hash[0], symoffset = gnu_hash[1], bloom_size = gnu_hash[2];
	const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(gnu_hash + 4) + bloom_size);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t last = 0;
	for (uint32_t i = 0; i < nbuckets; i++)
		if (buckets[i] > last)
			last = buckets[i];
	if (last < symoffset)
		return symoffset;
	while (!(chain[last - symoffset] & 1))
		last++;
	return last + 1;
}

static void test_every_libc_name_as_dlsym_finds_it(void **state)
{
	(void)state;
	const struct link_map *libc = libc_map();
	assert_non_null(libc);
	struct object_symbols o;
	assert_true(object_symbols_read(libc->l_addr, libc->l_ld, &o));
	uint32_t count = symbol_count(o.gnu_hash);
	unsigned found = 0, asked = 0;
	for (uint32_t i = 1; i < count; i++) {
		const ElfW(Sym) *sym = &o.symtab[i];
		if (sym->st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym->st_info) == STB_LOCAL)
			continue;
		const char *name = o.strtab + sym->st_name;
		void *addr = NULL;
		enum symbol_found r = next_symbol(&next, name, &addr);
		if (r == NEXT_SYMBOL_ASK) {
			asked++;
			continue;
		}
		assert_int_equal(r, SYMBOL_FOUND);
		void *want = dlsym(RTLD_NEXT, name);
		if (addr != want)
			fail_msg("%s: %p, dlsym %p", name, addr, want);
		found++;
	}
	/* glibc 2.36 on x86_64: some 2,900 names, a few hundred indirect
	 * (string functions) or only in old versions. */
	assert_true(found > 1500);
	assert_true(asked < found / 2);
}

static void test_every_original_the_shim_takes_is_found(void **state)
{
	(void)state;
#define LOOK_UP(name, ret, params, needed)                                        \
	{                                                                          \
		void *addr = NULL;                                                 \
		enum symbol_found r = next_symbol(&next, #name, &addr);             \
		void *want = dlsym(RTLD_NEXT, #name);                              \
		if (want ? (r == SYMBOL_FOUND && addr != want) || r == SYMBOL_ABSENT \
			 : r != NEXT_SYMBOL_ASK)                                   \
			fail_msg("%s: %d %p, dlsym %p", #name, (int)r, addr, want); \
		found += r == SYMBOL_FOUND;                                        \
		total++;                                                           \
	}
	unsigned found = 0, total = 0;
	REAL_FUNCTIONS(LOOK_UP)
#undef LOOK_UP
	/* dlsym answers only for names of several versions (glibc 2.36:
	 * pthread_cond_wait, posix_spawn and a few more). */
	assert_true(found + 12 >= total);
}

static void test_a_name_nothing_defines_is_asked(void **state)
{
	(void)state;
	void *addr = NULL;
	assert_int_equal(next_symbol(&next, "reqid_no_such_function", &addr),
			 NEXT_SYMBOL_ASK);
	assert_null(addr);
}

static void test_symbol_hash_is_the_loaders(void **state)
{
	(void)state;
	/* Values from the GNU hash definition: h = h * 33 + c from 5381. */
	assert_int_equal(symbol_hash(""), 5381);
	assert_int_equal(symbol_hash("a"), 5381u * 33 + 'a');
	assert_int_equal(symbol_hash("read"), 0x7c9d4d41u);
}

/* ---- hand-made tables --------------------------------------------------- */

#define MADE_MAX 8

/* One bucket, a Bloom filter of one word, symbols 1..count: the layout
 * the linker writes, small enough to state every field. */
struct made_table {
	uint32_t words[4 + 2 + 1 + MADE_MAX];
	ElfW(Sym) symtab[MADE_MAX + 1];
	ElfW(Half) versym[MADE_MAX + 1];
	char strtab[256];
	struct object_symbols o;
};

struct made_symbol {
	const char *name;
	unsigned char bind, type;
	ElfW(Half) version;	/* versym entry: index, 0x8000 hidden */
	ElfW(Addr) value;	/* 0: undefined */
};

static void make_table(struct made_table *t, const struct made_symbol *syms, unsigned count,
		       bool with_versions)
{
	memset(t, 0, sizeof(*t));
	t->words[0] = 1;	/* nbuckets */
	t->words[1] = 1;	/* symoffset */
	t->words[2] = 1;	/* bloom words */
	t->words[3] = 6;	/* bloom shift */
	ElfW(Addr) bloom = 0;
	size_t str = 1;
	uint32_t *chain = &t->words[4 + 2 + 1];
	for (unsigned i = 0; i < count; i++) {
		uint32_t h = symbol_hash(syms[i].name);
		bloom |= (ElfW(Addr))1 << (h % 64);
		bloom |= (ElfW(Addr))1 << ((h >> 6) % 64);
		chain[i] = (h & ~1u) | (i + 1 == count);
		ElfW(Sym) *s = &t->symtab[i + 1];
		s->st_name = (ElfW(Word))str;
		s->st_info = (unsigned char)ELF64_ST_INFO(syms[i].bind, syms[i].type);
		s->st_shndx = syms[i].value ? 12 : SHN_UNDEF;
		s->st_value = syms[i].value;
		t->versym[i + 1] = syms[i].version;
		size_t n = strlen(syms[i].name) + 1;
		memcpy(t->strtab + str, syms[i].name, n);
		str += n;
	}
	memcpy(&t->words[4], &bloom, sizeof(bloom));
	t->words[4 + 2] = count ? 1 : 0; /* the bucket: symbol 1 */
	t->o.base = 0x10000;
	t->o.gnu_hash = t->words;
	t->o.symtab = t->symtab;
	t->o.strtab = t->strtab;
	t->o.versym = with_versions ? t->versym : NULL;
}

/* The dynamic section of a made table (loaded at 0: its entries are
 * addresses). */
static void made_dynamic(const struct made_table *t, ElfW(Dyn) dyn[4])
{
	dyn[0] = (ElfW(Dyn)){DT_GNU_HASH, {(ElfW(Addr))t->words}};
	dyn[1] = (ElfW(Dyn)){DT_SYMTAB, {(ElfW(Addr))t->symtab}};
	dyn[2] = (ElfW(Dyn)){DT_STRTAB, {(ElfW(Addr))t->strtab}};
	dyn[3] = (ElfW(Dyn)){DT_NULL, {0}};
}

static enum symbol_found made_lookup(const struct made_table *t, const char *name, void **addr)
{
	*addr = NULL;
	return object_symbol(&t->o, name, symbol_hash(name), addr);
}

static void test_unversioned_global_and_weak_are_found(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {
		{"strong", STB_GLOBAL, STT_FUNC, 0, 0x100},
		{"feeble", STB_WEAK, STT_FUNC, 0, 0x200},
		{"datum", STB_GLOBAL, STT_OBJECT, 0, 0x300},
	};
	make_table(&t, syms, 3, false);
	void *addr;
	assert_int_equal(made_lookup(&t, "strong", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10100);
	assert_int_equal(made_lookup(&t, "feeble", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10200);
	assert_int_equal(made_lookup(&t, "datum", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10300);
	assert_int_equal(made_lookup(&t, "strongx", &addr), SYMBOL_ABSENT);
	assert_int_equal(made_lookup(&t, "stron", &addr), SYMBOL_ABSENT);
	assert_null(addr);
}

static void test_undefined_local_and_valueless_are_absent(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {
		{"imported", STB_GLOBAL, STT_FUNC, 0, 0},
		{"private", STB_LOCAL, STT_FUNC, 0, 0x100},
		{"section", STB_GLOBAL, STT_SECTION, 0, 0x200},
	};
	make_table(&t, syms, 3, false);
	void *addr;
	assert_int_equal(made_lookup(&t, "imported", &addr), SYMBOL_ABSENT);
	assert_int_equal(made_lookup(&t, "private", &addr), SYMBOL_ABSENT);
	assert_int_equal(made_lookup(&t, "section", &addr), SYMBOL_ABSENT);
	assert_null(addr);
}

static void test_indirect_tls_and_unique_are_asked(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {
		{"picked", STB_GLOBAL, STT_GNU_IFUNC, 0, 0x100},
		{"per_thread", STB_GLOBAL, STT_TLS, 0, 0x10},
		{"one_of", STB_GNU_UNIQUE, STT_OBJECT, 0, 0x200},
	};
	make_table(&t, syms, 3, false);
	void *addr;
	assert_int_equal(made_lookup(&t, "picked", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "per_thread", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "one_of", &addr), NEXT_SYMBOL_ASK);
	assert_null(addr);
}

static void test_several_versions_or_a_hidden_one_are_asked(void **state)
{
	(void)state;
	struct made_table t;
	/* cond_wait@OLD (hidden) and cond_wait@@NEW, as libc's
	 * pthread_cond_wait: glibc 2.36's dlsym gives the default, earlier
	 * ones the old version. */
	const struct made_symbol syms[] = {
		{"cond_wait", STB_GLOBAL, STT_FUNC, 0x8000 | 2, 0x100},
		{"cond_wait", STB_GLOBAL, STT_FUNC, 3, 0x200},
		{"gone", STB_GLOBAL, STT_FUNC, 0x8000 | 2, 0x300},
		{"twice", STB_GLOBAL, STT_FUNC, 2, 0x400},
		{"twice", STB_GLOBAL, STT_FUNC, 3, 0x500},
		{"single", STB_GLOBAL, STT_FUNC, 3, 0x600},
	};
	make_table(&t, syms, 6, true);
	void *addr;
	assert_int_equal(made_lookup(&t, "cond_wait", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "gone", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "twice", &addr), NEXT_SYMBOL_ASK);
	assert_null(addr);
	/* One version, not hidden: every release takes it. */
	assert_int_equal(made_lookup(&t, "single", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10600);
}

static void test_the_base_version_wins_when_first(void **state)
{
	(void)state;
	struct made_table t;
	/* Version index 1 (the object's base, "global"): taken as soon as
	 * seen, before a later versioned one of the same name; after one,
	 * releases differ (before 2.36 the versioned one was taken). */
	const struct made_symbol syms[] = {
		{"plain", STB_GLOBAL, STT_FUNC, 1, 0x100},
		{"plain", STB_GLOBAL, STT_FUNC, 2, 0x200},
		{"later", STB_GLOBAL, STT_FUNC, 2, 0x300},
		{"later", STB_GLOBAL, STT_FUNC, 1, 0x400},
	};
	make_table(&t, syms, 4, true);
	void *addr;
	assert_int_equal(made_lookup(&t, "plain", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10100);
	assert_int_equal(made_lookup(&t, "later", &addr), NEXT_SYMBOL_ASK);
}

static void test_hidden_and_internal_definitions_are_asked(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {
		{"inside", STB_GLOBAL, STT_FUNC, 0, 0x100},
		{"deeper", STB_GLOBAL, STT_FUNC, 0, 0x200},
		{"shown", STB_GLOBAL, STT_FUNC, 0, 0x300},
	};
	make_table(&t, syms, 3, false);
	t.symtab[1].st_other = STV_HIDDEN;
	t.symtab[2].st_other = STV_INTERNAL;
	t.symtab[3].st_other = STV_PROTECTED;
	void *addr;
	assert_int_equal(made_lookup(&t, "inside", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "deeper", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "shown", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10300);
}

static void test_the_bloom_filter_turns_names_away(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {{"present", STB_GLOBAL, STT_FUNC, 0, 0x100}};
	make_table(&t, syms, 1, false);
	void *addr;
	assert_int_equal(made_lookup(&t, "present", &addr), SYMBOL_FOUND);
	/* An empty filter: the symbol is there, the lookup never reaches it. */
	memset(&t.words[4], 0, sizeof(ElfW(Addr)));
	assert_int_equal(made_lookup(&t, "present", &addr), SYMBOL_ABSENT);
	/* No buckets at all. */
	make_table(&t, syms, 1, false);
	t.words[0] = 0;
	assert_int_equal(made_lookup(&t, "present", &addr), SYMBOL_ABSENT);
}

static void test_an_object_without_gnu_hash_is_not_read(void **state)
{
	(void)state;
	static const char strtab[] = "";
	static const ElfW(Sym) symtab[1];
	const ElfW(Dyn) dyn[] = {
		{DT_STRTAB, {(ElfW(Addr))strtab}},
		{DT_SYMTAB, {(ElfW(Addr))symtab}},
		{DT_NULL, {0}},
	};
	struct object_symbols o;
	assert_false(object_symbols_read(0, dyn, &o));
	assert_false(object_symbols_read(0, NULL, &o));
}

/* A list of three objects after self: one with a table, one without (a
 * library linked with --hash-style=sysv only), one with a table again. */
static void test_the_list_is_cut_at_an_object_without_gnu_hash(void **state)
{
	(void)state;
	static struct made_table first, last;
	const struct made_symbol in_first[] = {{"early", STB_GLOBAL, STT_FUNC, 0, 0x100}};
	const struct made_symbol in_last[] = {{"late", STB_GLOBAL, STT_FUNC, 0, 0x100}};
	make_table(&first, in_first, 1, false);
	make_table(&last, in_last, 1, false);
	ElfW(Dyn) dyn_first[4], dyn_last[4], dyn_sysv[4];
	made_dynamic(&first, dyn_first);
	made_dynamic(&last, dyn_last);
	made_dynamic(&last, dyn_sysv);
	dyn_sysv[0].d_tag = DT_HASH; /* a SysV hash table, no GNU one */
	struct link_map self = {0}, a = {0}, b = {0}, c = {0};
	self.l_next = &a;
	a.l_ld = dyn_first;
	a.l_addr = 0x1000;
	a.l_next = &b;
	b.l_ld = dyn_sysv;
	b.l_next = &c;
	c.l_ld = dyn_last;
	static struct next_objects list;
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 1);
	assert_true(list.cut);
	void *addr = NULL;
	assert_int_equal(next_symbol(&list, "early", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x1100);
	/* Past the cut: dlsym must say. */
	assert_int_equal(next_symbol(&list, "late", &addr), NEXT_SYMBOL_ASK);
	b.l_ld = dyn_last;
	b.l_next = NULL;
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 2);
	assert_false(list.cut);
	assert_int_equal(next_symbol(&list, "late", &addr), SYMBOL_FOUND);
	/* Nothing past libc is read. */
	a.l_name = (char *)"/lib/x86_64-linux-gnu/libc.so.6";
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 1);
	assert_true(list.cut);
	assert_int_equal(next_symbol(&list, "late", &addr), NEXT_SYMBOL_ASK);
	a.l_next = NULL;
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 1);
	assert_false(list.cut);
}

/* More objects than the list holds: cut at NEXT_OBJECTS_MAX. */
static void test_the_list_is_cut_past_its_room(void **state)
{
	(void)state;
	static struct made_table table;
	const struct made_symbol syms[] = {{"anything", STB_GLOBAL, STT_FUNC, 0, 0x100}};
	make_table(&table, syms, 1, false);
	ElfW(Dyn) dyn[4];
	made_dynamic(&table, dyn);
	static struct link_map maps[NEXT_OBJECTS_MAX + 2];
	for (unsigned i = 0; i < NEXT_OBJECTS_MAX + 2; i++) {
		maps[i].l_ld = dyn;
		maps[i].l_next = i + 1 < NEXT_OBJECTS_MAX + 2 ? &maps[i + 1] : NULL;
	}
	static struct next_objects list;
	next_objects_read(&maps[0], &list);
	assert_int_equal(list.count, NEXT_OBJECTS_MAX);
	assert_true(list.cut);
	maps[NEXT_OBJECTS_MAX].l_next = NULL;
	next_objects_read(&maps[0], &list);
	assert_int_equal(list.count, NEXT_OBJECTS_MAX);
	assert_false(list.cut);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_libc_name_as_dlsym_finds_it),
		cmocka_unit_test(test_every_original_the_shim_takes_is_found),
		cmocka_unit_test(test_a_name_nothing_defines_is_asked),
		cmocka_unit_test(test_symbol_hash_is_the_loaders),
		cmocka_unit_test(test_unversioned_global_and_weak_are_found),
		cmocka_unit_test(test_undefined_local_and_valueless_are_absent),
		cmocka_unit_test(test_indirect_tls_and_unique_are_asked),
		cmocka_unit_test(test_several_versions_or_a_hidden_one_are_asked),
		cmocka_unit_test(test_the_base_version_wins_when_first),
		cmocka_unit_test(test_hidden_and_internal_definitions_are_asked),
		cmocka_unit_test(test_the_bloom_filter_turns_names_away),
		cmocka_unit_test(test_an_object_without_gnu_hash_is_not_read),
		cmocka_unit_test(test_the_list_is_cut_at_an_object_without_gnu_hash),
		cmocka_unit_test(test_the_list_is_cut_past_its_room),
	};
	return cmocka_run_group_tests(tests, read_next, NULL);
}
