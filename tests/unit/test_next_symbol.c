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

/* next_symbol_hashed, the name hashed here. */
static enum symbol_found next_symbol(const struct next_objects *objects, const char *name,
				     const char *version, void **addr)
{
	return next_symbol_hashed(objects, name, symbol_hash(name), version, addr);
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

/* The name of the version of index ndx an object defines, NULL if none. */
static const char *version_name(const struct object_symbols *o, unsigned ndx)
{
	for (const ElfW(Verdef) *d = o->verdef; d;
	     d = d->vd_next ? (const ElfW(Verdef) *)((const char *)d + d->vd_next) : NULL)
		if ((d->vd_ndx & 0x7fff) == ndx)
			return o->strtab +
			       ((const ElfW(Verdaux) *)((const char *)d + d->vd_aux))->vda_name;
	return NULL;
}

/* Every global definition libc has, looked up in this process both ways
 * (the answers must be the same address): by name as dlsym does, or (with
 * versioned) by name and version as dlvsym does, each definition of a
 * version of its own. glibc 2.36 on x86_64: some 2,900 names, a few hundred
 * indirect (string functions) or only in old versions. */
static void compare_every_libc_definition(bool versioned, struct object_symbols *o)
{
	const struct link_map *libc = libc_map();
	assert_non_null(libc);
	assert_true(object_symbols_read(libc->l_addr, libc->l_ld, o));
	uint32_t count = symbol_count(o->gnu_hash);
	unsigned found = 0, asked = 0;
	for (uint32_t i = 1; i < count; i++) {
		const ElfW(Sym) *sym = &o->symtab[i];
		if (sym->st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym->st_info) == STB_LOCAL)
			continue;
		const char *name = o->strtab + sym->st_name, *version = NULL;
		if (versioned) {
			version = version_name(o, o->versym[i] & 0x7fff);
			if (!version || (o->versym[i] & 0x7fff) < 2)
				continue;
			assert_int_equal(version_index(o, version), o->versym[i] & 0x7fff);
		}
		void *addr = NULL;
		enum symbol_found r = next_symbol(&next, name, version, &addr);
		if (r == NEXT_SYMBOL_ASK) {
			asked++;
			continue;
		}
		assert_int_equal(r, SYMBOL_FOUND);
		void *want = version ? dlvsym(RTLD_NEXT, name, version) : dlsym(RTLD_NEXT, name);
		if (addr != want)
			fail_msg("%s@%s: %p, %s %p", name, version ? version : "", addr,
				 version ? "dlvsym" : "dlsym", want);
		found++;
	}
	assert_true(found > 1500);
	assert_true(asked < found / 2);
}

static void test_every_libc_name_as_dlsym_finds_it(void **state)
{
	(void)state;
	struct object_symbols o;
	compare_every_libc_definition(false, &o);
}

/* Every versioned definition in libc, name and version, both ways. */
static void test_every_libc_version_as_dlvsym_finds_it(void **state)
{
	(void)state;
	struct object_symbols o;
	compare_every_libc_definition(true, &o);
	assert_non_null(o.verdef);
	void *addr;
	assert_int_equal(next_symbol(&next, "read", "GLIBC_0.0", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(version_index(&o, "libc.so.6"), -1);
}

static void test_every_original_the_shim_takes_is_found(void **state)
{
	(void)state;
#define LOOK_UP(name, ret, params, needed)                                        \
	{                                                                          \
		void *addr = NULL;                                                 \
		enum symbol_found r = next_symbol(&next, #name, NULL, &addr);             \
		void *want = dlsym(RTLD_NEXT, #name);                              \
		if (want ? (r == SYMBOL_FOUND && addr != want) || r == SYMBOL_ABSENT \
			 : r != NEXT_SYMBOL_ASK)                                   \
			fail_msg("%s: %d %p, dlsym %p", #name, (int)r, addr, want); \
		found += r == SYMBOL_FOUND;                                        \
		total++;                                                           \
	}
	unsigned found = 0, total = 0;
	REAL_FUNCTIONS(LOOK_UP)
	LIBC_CALLS(LOOK_UP)
#undef LOOK_UP
	/* From glibc 2.36 every one is read from the tables; before,
	 * dlsym answers for names of several versions (pthread_cond_wait,
	 * posix_spawn and a few more). */
	if (next.o[next.count - 1].newest_default)
		assert_int_equal(found, total);
	else
		assert_true(found + 12 >= total);
	/* The current condition variables, which dlsym's choice among
	 * releases is no guide to. */
	void *addr = NULL;
	assert_int_equal(next_symbol(&next, "pthread_cond_wait", "GLIBC_2.3.2", &addr),
			 SYMBOL_FOUND);
	assert_ptr_equal(addr, dlvsym(RTLD_NEXT, "pthread_cond_wait", "GLIBC_2.3.2"));
}

/* next_symbol_walk, one object at a time, answers as the list does for
 * every name libc defines (addresses and NEXT_SYMBOL_ASK alike), and for
 * one nothing defines. */
static void test_the_walk_answers_as_the_list(void **state)
{
	(void)state;
	const struct link_map *libc = libc_map();
	struct object_symbols o;
	assert_true(object_symbols_read(libc->l_addr, libc->l_ld, &o));
	bool newest = next.o[next.count - 1].newest_default;
	uint32_t count = symbol_count(o.gnu_hash);
	unsigned found = 0, asked = 0;
	for (uint32_t i = 1; i < count; i++) {
		const char *name = o.strtab + o.symtab[i].st_name;
		void *listed = NULL, *walked = NULL;
		enum symbol_found by_list = next_symbol(&next, name, NULL, &listed);
		enum symbol_found by_walk = next_symbol_walk(program_or_vdso(), name,
							     symbol_hash(name), newest, &walked);
		if (by_list != by_walk || listed != walked)
			fail_msg("%s: list %d %p, walk %d %p", name, (int)by_list, listed,
				 (int)by_walk, walked);
		found += by_walk == SYMBOL_FOUND;
		asked += by_walk == NEXT_SYMBOL_ASK;
	}
	assert_true(found > 1500);
	assert_true(asked > 0);
	void *addr = NULL;
	assert_int_equal(next_symbol_walk(program_or_vdso(), "reqid_no_such_function",
					  symbol_hash("reqid_no_such_function"), newest, &addr),
			 NEXT_SYMBOL_ASK);
	assert_null(addr);
}

static void test_libc_of_2_36_takes_default_versions(void **state)
{
	(void)state;
	const struct link_map *libc = libc_map();
	struct object_symbols o;
	assert_true(object_symbols_read(libc->l_addr, libc->l_ld, &o));
	assert_int_equal(next.o[next.count - 1].newest_default,
			 version_index(&o, "GLIBC_2.36") >= 0);
	assert_true(version_index(&o, "GLIBC_2.2.5") >= 2);
}

static void test_a_name_nothing_defines_is_asked(void **state)
{
	(void)state;
	void *addr = NULL;
	assert_int_equal(next_symbol(&next, "reqid_no_such_function", NULL, &addr),
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

/* The compiler's hash of a literal is the loop's, for every original the
 * shim resolves and for names of every length up to the longest it takes. */
static void test_symbol_hash_literal_is_symbol_hash(void **state)
{
	(void)state;
	assert_int_equal(SYMBOL_HASH_LITERAL(""), symbol_hash(""));
	assert_int_equal(SYMBOL_HASH_LITERAL("read"), 0x7c9d4d41u);
	assert_int_equal(SYMBOL_HASH_LITERAL("\xff\x80z"), symbol_hash("\xff\x80z"));
	_Static_assert(sizeof("abcdefghijklmnopqrstuvwxyz_0123") == SYMBOL_HASH_LITERAL_MAX,
		       "the longest name taken");
	assert_int_equal(SYMBOL_HASH_LITERAL("abcdefghijklmnopqrstuvwxyz_0123"),
			 symbol_hash("abcdefghijklmnopqrstuvwxyz_0123"));
#define SAME_HASH(name, ret, params, needed) \
	assert_int_equal(SYMBOL_HASH_LITERAL(#name), symbol_hash(#name));
	REAL_FUNCTIONS(SAME_HASH)
	LIBC_CALLS(SAME_HASH)
#undef SAME_HASH
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
	size_t strtab_used;
	struct {
		ElfW(Verdef) def;
		ElfW(Verdaux) aux;
	} verdef[4];
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
	t->strtab_used = str;
	memcpy(&t->words[4], &bloom, sizeof(bloom));
	t->words[4 + 2] = count ? 1 : 0; /* the bucket: symbol 1 */
	t->o.base = 0x10000;
	t->o.gnu_hash = t->words;
	t->o.symtab = t->symtab;
	t->o.strtab = t->strtab;
	t->o.versym = with_versions ? t->versym : NULL;
}

/* The System V ABI's ELF hash, as its text gives it. */
static ElfW(Word) sysv_hash(const char *name)
{
	ElfW(Word) h = 0, g;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		h = (h << 4) + *c;
		if ((g = h & 0xf0000000))
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

/* Gives a made table its versions: index 1 its base (the object's own
 * name), then 2, 3, ... the names given, each a Verdef and its Verdaux as
 * the linker lays them out. */
static void made_versions(struct made_table *t, const char *const *names, unsigned count)
{
	assert_true(count < 4);
	for (unsigned i = 0; i <= count; i++) {
		const char *name = i == 0 ? "libmade.so" : names[i - 1];
		size_t n = strlen(name) + 1;
		memcpy(t->strtab + t->strtab_used, name, n);
		ElfW(Verdef) *d = &t->verdef[i].def;
		d->vd_version = VER_DEF_CURRENT;
		d->vd_flags = i == 0 ? VER_FLG_BASE : 0;
		d->vd_ndx = (ElfW(Half))(i + 1);
		d->vd_cnt = 1;
		d->vd_hash = sysv_hash(name);
		d->vd_aux = sizeof(t->verdef[i].def);
		d->vd_next = i < count ? sizeof(t->verdef[i]) : 0;
		t->verdef[i].aux.vda_name = (ElfW(Word))t->strtab_used;
		t->strtab_used += n;
	}
	t->o.verdef = &t->verdef[0].def;
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

/* next_symbol over the made table, then an object that defines name (at
 * version, if one is given) plainly at NEXT_DEFINITION: SYMBOL_ABSENT when
 * the lookup went on past the made table to that object (addr NULL). */
#define NEXT_DEFINITION ((void *)0x20100)
static enum symbol_found made_lookup_version(const struct made_table *t, const char *name,
					     const char *version, void **addr)
{
	static struct made_table after;
	static struct next_objects list;
	const struct made_symbol plain = {name, STB_GLOBAL, STT_FUNC, version ? 2 : 0, 0x100};
	make_table(&after, &plain, 1, version != NULL);
	if (version)
		made_versions(&after, &version, 1);
	after.o.base = 0x20000;
	list.count = 2;
	list.o[0] = t->o;
	list.o[1] = after.o;
	*addr = NULL;
	enum symbol_found found = next_symbol(&list, name, version, addr);
	if (found != SYMBOL_FOUND || *addr != NEXT_DEFINITION)
		return found;
	*addr = NULL;
	return SYMBOL_ABSENT;
}

static enum symbol_found made_lookup(const struct made_table *t, const char *name, void **addr)
{
	return made_lookup_version(t, name, NULL, addr);
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

/* cond_wait@OLD (hidden) and cond_wait@@NEW, as libc's pthread_cond_wait,
 * a name with only a hidden version, one with two not hidden, and one with
 * one version. */
static const struct made_symbol several_versions[] = {
	{"cond_wait", STB_GLOBAL, STT_FUNC, 0x8000 | 2, 0x100},
	{"cond_wait", STB_GLOBAL, STT_FUNC, 3, 0x200},
	{"gone", STB_GLOBAL, STT_FUNC, 0x8000 | 2, 0x300},
	{"twice", STB_GLOBAL, STT_FUNC, 2, 0x400},
	{"twice", STB_GLOBAL, STT_FUNC, 3, 0x500},
	{"single", STB_GLOBAL, STT_FUNC, 3, 0x600},
};

static void test_several_versions_or_a_hidden_one_are_asked(void **state)
{
	(void)state;
	struct made_table t;
	/* glibc 2.36's dlsym gives cond_wait's default, earlier ones the old
	 * version. */
	make_table(&t, several_versions, 6, true);
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

/* glibc 2.36 and later: dlsym passes hidden versions by and takes the
 * one left; two left is still the loader's to settle. */
static void test_newest_default_passes_hidden_versions_by(void **state)
{
	(void)state;
	struct made_table t;
	make_table(&t, several_versions, 6, true);
	t.o.newest_default = true;
	void *addr;
	assert_int_equal(made_lookup(&t, "cond_wait", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10200);
	/* Only a hidden version: not here for dlsym (the next object is). */
	assert_int_equal(made_lookup(&t, "gone", &addr), SYMBOL_ABSENT);
	assert_int_equal(made_lookup(&t, "twice", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(made_lookup(&t, "single", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10600);
}

/* dlvsym: the definition of exactly that version, hidden or not. */
static void test_a_named_version_takes_its_own_definition(void **state)
{
	(void)state;
	struct made_table t;
	const struct made_symbol syms[] = {
		{"cond_wait", STB_GLOBAL, STT_FUNC, 0x8000 | 2, 0x100},
		{"cond_wait", STB_GLOBAL, STT_FUNC, 3, 0x200},
		{"plain", STB_GLOBAL, STT_FUNC, 1, 0x300},
		{"indirect", STB_GLOBAL, STT_GNU_IFUNC, 2, 0x400},
	};
	const char *const versions[] = {"OLD", "NEW"};
	make_table(&t, syms, 4, true);
	made_versions(&t, versions, 2);
	assert_int_equal(version_index(&t.o, "OLD"), 2);
	assert_int_equal(version_index(&t.o, "NEW"), 3);
	assert_int_equal(version_index(&t.o, "libmade.so"), -1);
	assert_int_equal(version_index(&t.o, "NEWER"), -1);
	void *addr = NULL;
	assert_int_equal(made_lookup_version(&t, "cond_wait", "OLD", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10100);
	assert_int_equal(made_lookup_version(&t, "cond_wait", "NEW", &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x10200);
	/* A version the object does not define, or not for this name. */
	assert_int_equal(made_lookup_version(&t, "cond_wait", "NEWER", &addr), SYMBOL_ABSENT);
	assert_int_equal(made_lookup_version(&t, "plain", "OLD", &addr),
			 SYMBOL_ABSENT);
	assert_int_equal(made_lookup_version(&t, "indirect", "OLD", &addr),
			 NEXT_SYMBOL_ASK);
	/* An object without versions: the loader takes any definition. */
	t.o.versym = NULL;
	assert_int_equal(made_lookup_version(&t, "plain", "OLD", &addr),
			 NEXT_SYMBOL_ASK);
}

/* The rule follows libc's release, read from the versions it defines. */
static void test_a_libc_defining_glibc_2_36_sets_newest_default(void **state)
{
	(void)state;
	static struct made_table before, libc;
	const struct made_symbol syms[] = {{"f", STB_GLOBAL, STT_FUNC, 2, 0x100}};
	const char *const old[] = {"GLIBC_2.2.5", "GLIBC_2.35"};
	const char *const now[] = {"GLIBC_2.2.5", "GLIBC_2.36"};
	make_table(&before, syms, 1, true);
	ElfW(Dyn) dyn_before[4], dyn_libc[6];
	made_dynamic(&before, dyn_before);
	struct link_map self = {0}, a = {0}, b = {0};
	self.l_next = &a;
	a.l_ld = dyn_before;
	a.l_next = &b;
	b.l_ld = dyn_libc;
	b.l_name = (char *)"/lib/x86_64-linux-gnu/libc.so.6";
	static struct next_objects list;
	for (int round = 0; round < 2; round++) {
		make_table(&libc, syms, 1, true);
		made_versions(&libc, round ? now : old, 2);
		made_dynamic(&libc, dyn_libc);
		dyn_libc[3] = (ElfW(Dyn)){DT_VERSYM, {(ElfW(Addr))libc.versym}};
		dyn_libc[4] = (ElfW(Dyn)){DT_VERDEF, {(ElfW(Addr))libc.o.verdef}};
		dyn_libc[5] = (ElfW(Dyn)){DT_NULL, {0}};
		next_objects_read(&self, &list);
		assert_int_equal(list.count, 2);
		assert_false(list.cut);
		assert_int_equal(list.o[0].newest_default, round == 1);
		assert_int_equal(list.o[1].newest_default, round == 1);
	}
	void *addr = NULL;
	assert_int_equal(next_symbol(&list, "f", "GLIBC_2.2.5", &addr), NEXT_SYMBOL_ASK);
	assert_int_equal(next_symbol(&list, "f", NULL, &addr), SYMBOL_FOUND);
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
	assert_int_equal(next_symbol(&list, "early", NULL, &addr), SYMBOL_FOUND);
	assert_ptr_equal(addr, (void *)0x1100);
	/* Past the cut: dlsym must say. */
	assert_int_equal(next_symbol(&list, "late", NULL, &addr), NEXT_SYMBOL_ASK);
	b.l_ld = dyn_last;
	b.l_next = NULL;
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 2);
	assert_false(list.cut);
	assert_int_equal(next_symbol(&list, "late", NULL, &addr), SYMBOL_FOUND);
	/* Nothing past libc is read. */
	a.l_name = (char *)"/lib/x86_64-linux-gnu/libc.so.6";
	next_objects_read(&self, &list);
	assert_int_equal(list.count, 1);
	assert_true(list.cut);
	assert_int_equal(next_symbol(&list, "late", NULL, &addr), NEXT_SYMBOL_ASK);
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
		cmocka_unit_test(test_every_libc_version_as_dlvsym_finds_it),
		cmocka_unit_test(test_every_original_the_shim_takes_is_found),
		cmocka_unit_test(test_libc_of_2_36_takes_default_versions),
		cmocka_unit_test(test_a_name_nothing_defines_is_asked),
		cmocka_unit_test(test_symbol_hash_is_the_loaders),
		cmocka_unit_test(test_symbol_hash_literal_is_symbol_hash),
		cmocka_unit_test(test_unversioned_global_and_weak_are_found),
		cmocka_unit_test(test_undefined_local_and_valueless_are_absent),
		cmocka_unit_test(test_indirect_tls_and_unique_are_asked),
		cmocka_unit_test(test_several_versions_or_a_hidden_one_are_asked),
		cmocka_unit_test(test_the_base_version_wins_when_first),
		cmocka_unit_test(test_newest_default_passes_hidden_versions_by),
		cmocka_unit_test(test_a_named_version_takes_its_own_definition),
		cmocka_unit_test(test_a_libc_defining_glibc_2_36_sets_newest_default),
		cmocka_unit_test(test_the_walk_answers_as_the_list),
		cmocka_unit_test(test_hidden_and_internal_definitions_are_asked),
		cmocka_unit_test(test_the_bloom_filter_turns_names_away),
		cmocka_unit_test(test_an_object_without_gnu_hash_is_not_read),
		cmocka_unit_test(test_the_list_is_cut_at_an_object_without_gnu_hash),
		cmocka_unit_test(test_the_list_is_cut_past_its_room),
	};
	return cmocka_run_group_tests(tests, read_next, NULL);
}
