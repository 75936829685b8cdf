/*
 * got_patch.c - rewriting the GOT entries of hooked functions in the
 * modules of a running process, and putting them back (see got_patch.h).
 *
 * An entry is patched only when the module bound the function the hook
 * calls (the definition after the shim, libc's), or has not bound it yet
 * (a lazy-binding stub inside the module): a module bound to another
 * definition (another interposer, RTLD_DEEPBIND), or to an older version
 * of the function than the hook calls, is left alone. Loader calls
 * (dlsym, dladdr) happen outside dl_iterate_phdr, each module held open
 * meanwhile. Attach patches every module; later passes (got_patch_since,
 * from the loader stubs, when the loader counts more modules loaded) only
 * those no earlier pass saw, or whose entry it patched no longer holds the
 * hook (another module loaded at the same place). Must never write an entry
 * it cannot restore, nor leave a page writable that was read-only.
 */
#include "got_patch.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "fork_hot.h"
#include "map_once.h"
#include "next_symbol.h"
#include "page_bytes.h"
#include "raw_syscall.h"
#include "shim_init.h"

/* More than any program has (nginx and its modules: some 500). */
#define GOT_ENTRIES_MAX 16384

struct got_entry {
	void **slot;
	void *original; /* what the loader binds the name to */
	void *hook;
	bool read_only; /* the loader made its page read-only (RELRO) */
	bool live;	/* found in a loaded module, still the hook, this pass */
};

static void *_Atomic entries_table;
static size_t entry_count;

/* Held while entries are written or put back (attach, detach, a loader
 * stub): the stubs only try it, attach and detach wait for it. A fork
 * child starts with it free (got_patch_after_fork), and reads it there:
 * FORK_HOT, on the page every child writes anyway. */
static _Atomic int patch_busy FORK_HOT;

static bool patch_trylock(void)
{
	int expected = 0;
	return atomic_compare_exchange_strong_explicit(&patch_busy, &expected, 1,
						       memory_order_acquire, memory_order_relaxed);
}

static void patch_lock(void)
{
	while (!patch_trylock())
		nanosleep(&(struct timespec){0, 100000}, NULL);
}

static void patch_unlock(void)
{
	atomic_store_explicit(&patch_busy, 0, memory_order_release);
}

void got_patch_after_fork(void)
{
	if (atomic_load_explicit(&patch_busy, memory_order_relaxed))
		atomic_store_explicit(&patch_busy, 0, memory_order_relaxed);
}

/* The loader's count of modules loaded, at the last pass. */
static unsigned long long seen_adds;

/* The shim's own module, for telling its functions from libc's. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

/* A module's dynamic tables, from its PT_DYNAMIC (addresses made absolute:
 * the loader relocates some of them in place, not all). */
struct module {
	ElfW(Addr) base;
	const ElfW(Sym) *symtab;
	const char *strtab;
	const ElfW(Half) *versym;
	const ElfW(Verneed) *verneed;
	const ElfW(Rela) *jmprel, *rela;
	size_t jmprel_size, rela_size;
	uintptr_t relro_start, relro_end; /* read-only after relocation */
	uintptr_t low, high;		  /* its mapped range (with holes) */
	const ElfW(Phdr) *phdr;		  /* its segments */
	ElfW(Half) phnum;
	uint64_t name_hash;
};

/* Whether address p lies in one of a module's loaded segments (not in the
 * holes between them, which may be unmapped). */
static bool in_segments(ElfW(Addr) base, const ElfW(Phdr) *phdr, ElfW(Half) phnum, uintptr_t p)
{
	for (int i = 0; i < phnum; i++) {
		uintptr_t start = base + phdr[i].p_vaddr;
		if (phdr[i].p_type == PT_LOAD && p >= start && p - start < phdr[i].p_memsz)
			return true;
	}
	return false;
}


/* A loaded module, as dl_iterate_phdr lists it; name is an offset into
 * the list's copy of the names. */
struct module_ref {
	ElfW(Addr) base;
	const ElfW(Phdr) *phdr;
	ElfW(Half) phnum;
	size_t name;
	uint64_t name_hash;
};

#define MODULES_MAX 1024
#define NAMES_SIZE (256 * 1024)

/* What a pass learned of a module, so that a later one passes it by while
 * it is the same module: where it is loaded, its name's hash, and one entry
 * the shim patched in it, still holding the hook (a module closed and
 * another loaded at its place has its entries unpatched). */
struct known_module {
	ElfW(Addr) base;
	uint64_t name_hash;
	void **probe;
	void *hook;
};

static size_t known_count;

struct module_list {
	size_t count, names_used;
	bool only_new;	/* pass by the modules known[] still describes */
	struct got_entry *table; /* a patch pass's entries, whose live marks it
				    sets; NULL for a restore */
	size_t learned_count;
	struct known_module learned[MODULES_MAX]; /* known[] after this pass */
	struct module_ref mod[MODULES_MAX];
	char names[NAMES_SIZE];
};

/* What the passes learned (known_count records) and the list of a pass,
 * mapped by the first pass as the entries are (map_once): a process no
 * one attached to carries neither. Used under the patcher's lock; the
 * list's pages are touched by the first pass and reused by the next ones;
 * detach empties both (got_restore_all). */
struct pass_tables {
	struct known_module known[MODULES_MAX];
	struct module_list list;
};
static struct pass_tables *_Atomic pass_tables;

static bool read_module(const struct module_ref *ref, struct module *m)
{
	memset(m, 0, sizeof(*m));
	m->base = ref->base;
	const ElfW(Dyn) *dyn = NULL;
	m->low = UINTPTR_MAX;
	m->phdr = ref->phdr;
	m->phnum = ref->phnum;
	m->name_hash = ref->name_hash;
	for (int i = 0; i < ref->phnum; i++) {
		const ElfW(Phdr) *ph = &ref->phdr[i];
		uintptr_t start = m->base + ph->p_vaddr;
		if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)start;
		if (ph->p_type == PT_GNU_RELRO) {
			m->relro_start = start & ~(uintptr_t)(PAGE_BYTES - 1);
			m->relro_end = (start + ph->p_memsz) & ~(uintptr_t)(PAGE_BYTES - 1);
		}
		if (ph->p_type == PT_LOAD) {
			if (start < m->low)
				m->low = start;
			if (start + ph->p_memsz > m->high)
				m->high = start + ph->p_memsz;
		}
	}
	if (!dyn)
		return false;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t p = dynamic_address(m->base, dyn->d_un.d_ptr);
		switch (dyn->d_tag) {
		case DT_SYMTAB: m->symtab = (const ElfW(Sym) *)p; break;
		case DT_STRTAB: m->strtab = (const char *)p; break;
		case DT_VERSYM: m->versym = (const ElfW(Half) *)p; break;
		case DT_VERNEED: m->verneed = (const ElfW(Verneed) *)p; break;
		case DT_JMPREL: m->jmprel = (const ElfW(Rela) *)p; break;
		case DT_RELA: m->rela = (const ElfW(Rela) *)p; break;
		case DT_PLTRELSZ: m->jmprel_size = dyn->d_un.d_val; break;
		case DT_RELASZ: m->rela_size = dyn->d_un.d_val; break;
		case DT_PLTREL:
			if (dyn->d_un.d_val != DT_RELA)
				return false;
			break;
		}
	}
	return m->symtab && m->strtab;
}

/* The version the module asks for symbol index sym, or NULL for none. */
static const char *wanted_version(const struct module *m, size_t sym)
{
	if (!m->versym || !m->verneed)
		return NULL;
	ElfW(Half) index = m->versym[sym] & 0x7fff;
	if (index <= 1)
		return NULL; /* local or global: no version */
	const ElfW(Verneed) *need = m->verneed;
	for (;;) {
		const ElfW(Vernaux) *aux = (const ElfW(Vernaux) *)((const char *)need + need->vn_aux);
		for (unsigned i = 0; i < need->vn_cnt; i++) {
			if (aux->vna_other == index)
				return m->strtab + aux->vna_name;
			aux = (const ElfW(Vernaux) *)((const char *)aux + aux->vna_next);
		}
		if (need->vn_next == 0)
			return NULL;
		need = (const ElfW(Verneed) *)((const char *)need + need->vn_next);
	}
}

/* The shim's function of that name (or its loader stub), or NULL if it
 * does not hook it. */
static void *hook_for(void *self, const char *name)
{
	void *f = dlsym(self, name);
	Dl_info di;
	if (!f || !LIBC(dladdr)(f, &di) || di.dli_fbase != (void *)__ehdr_start)
		return loader_stub(name, dlsym(RTLD_NEXT, name));
	return f;
}

/* Writes value into slot, making its page writable for the write if the
 * loader had made it read-only. */
static bool write_slot(const struct got_entry *e, void *value)
{
	bool read_only = e->read_only;
	void *start = (void *)((uintptr_t)e->slot & ~(uintptr_t)(PAGE_BYTES - 1));
	if (read_only && raw_syscall3(SYS_mprotect, (long)start, PAGE_BYTES, PROT_READ | PROT_WRITE) != 0)
		return false;
	__atomic_store_n(e->slot, value, __ATOMIC_RELEASE);
	if (read_only)
		raw_syscall3(SYS_mprotect, (long)start, PAGE_BYTES, PROT_READ);
	return true;
}

static bool in_relro(const struct module *m, const void *slot)
{
	return (uintptr_t)slot >= m->relro_start && (uintptr_t)slot < m->relro_end;
}

struct patch_run {
	void *self;
	struct got_entry *table;
	struct module_list *list;
	int patched;
};

static void patch_relocations(struct patch_run *run, const struct module *m,
			      const ElfW(Rela) *rel, size_t size, unsigned type)
{
	for (size_t i = 0; i < size / sizeof(*rel); i++) {
		if (ELF64_R_TYPE(rel[i].r_info) != type)
			continue;
		size_t sym = ELF64_R_SYM(rel[i].r_info);
		if (sym == 0 || m->symtab[sym].st_shndx != SHN_UNDEF)
			continue;
		const char *name = m->strtab + m->symtab[sym].st_name;
		void *hook = hook_for(run->self, name);
		if (!hook)
			continue;
		void **slot = (void **)(m->base + rel[i].r_offset);
		void *bound = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
		if (bound == hook) {
			run->patched++;
			continue;
		}
		/* What the hook calls: the definition after the shim (libc's),
		 * never a program's own PLT entry, which is what the global
		 * scope gives for a function a non-PIE program takes the
		 * address of. */
		const char *version = wanted_version(m, sym);
		void *original = dlsym(RTLD_NEXT, name);
		if (version && dlvsym(RTLD_NEXT, name, version) != original)
			continue; /* an older version than the hook calls */
		bool lazy_stub = (uintptr_t)bound >= m->low && (uintptr_t)bound < m->high;
		if (!original || (bound != original && !lazy_stub))
			continue;
		if (entry_count == GOT_ENTRIES_MAX)
			return;
		struct got_entry *e = &run->table[entry_count];
		*e = (struct got_entry){slot, original, hook, in_relro(m, slot), true};
		if (write_slot(e, hook)) {
			entry_count++;
			run->patched++;
		}
	}
}

/* m's entries are patched, and what was learned of m kept for the next
 * pass. */
static void patch_module(const struct module *m, void *arg)
{
	struct patch_run *run = arg;
	size_t first = entry_count;
	patch_relocations(run, m, m->jmprel, m->jmprel_size, R_X86_64_JUMP_SLOT);
	patch_relocations(run, m, m->rela, m->rela_size, R_X86_64_GLOB_DAT);
	/* Kept only with an entry to tell it by: one with none (or one the
	 * full table left unfinished) is walked again by later passes, as a
	 * library rebuilt and loaded again at the same place must be. */
	struct module_list *list = run->list;
	if (entry_count > first && entry_count < GOT_ENTRIES_MAX &&
	    list->learned_count < MODULES_MAX)
		list->learned[list->learned_count++] = (struct known_module){
			m->base, m->name_hash, run->table[first].slot, run->table[first].hook};
}

static bool in_module(const struct dl_phdr_info *info, uintptr_t p)
{
	return in_segments(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, p);
}

/* The record of an earlier pass that still describes the module, or NULL. */
static const struct known_module *still_known(const struct dl_phdr_info *info, uint64_t hash)
{
	const struct pass_tables *pass = atomic_load_explicit(&pass_tables, memory_order_relaxed);
	for (size_t i = 0; i < known_count; i++) {
		const struct known_module *k = &pass->known[i];
		if (k->base == info->dlpi_addr && k->name_hash == hash &&
		    in_module(info, (uintptr_t)k->probe) &&
		    __atomic_load_n(k->probe, __ATOMIC_ACQUIRE) == k->hook)
			return k;
	}
	return NULL;
}

/* dl_iterate_phdr's callback runs holding a loader lock, so no module it
 * lists is unmapped meanwhile: it reads them, and copies what it is given,
 * but calls nothing of the loader (no dlsym, dladdr or dlopen: a thread
 * inside dlopen or dlclose waits for that lock holding the other). The
 * loader, vdso and the shim itself are left out. */
static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct module_list *list = arg;
	size_t len = strlen(info->dlpi_name) + 1;
	if (info->dlpi_addr == (ElfW(Addr))__ehdr_start ||
	    info->dlpi_addr == (ElfW(Addr))LIBC(getauxval)(AT_BASE) ||
	    info->dlpi_addr == (ElfW(Addr))LIBC(getauxval)(AT_SYSINFO_EHDR))
		return 0;
	for (size_t i = 0; list->table && i < entry_count; i++) {
		struct got_entry *e = &list->table[i];
		if (in_module(info, (uintptr_t)e->slot) &&
		    __atomic_load_n(e->slot, __ATOMIC_ACQUIRE) == e->hook)
			e->live = true;
	}
	uint64_t hash = XXH3_64bits(info->dlpi_name, len);
	const struct known_module *k = list->only_new ? still_known(info, hash) : NULL;
	if (k) {
		if (list->learned_count < MODULES_MAX)
			list->learned[list->learned_count++] = *k;
		return 0;
	}
	if (list->count == MODULES_MAX || list->names_used + len > NAMES_SIZE)
		return 0;
	struct module_ref *ref = &list->mod[list->count++];
	*ref = (struct module_ref){info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum,
				  list->names_used, hash};
	memcpy(list->names + list->names_used, info->dlpi_name, len);
	list->names_used += len;
	return 0;
}

static struct module_list *list_made(struct pass_tables *pass, bool only_new,
				     struct got_entry *table)
{
	struct module_list *list = &pass->list;
	list->count = list->names_used = list->learned_count = 0;
	list->only_new = only_new;
	list->table = table;
	return list;
}

/* Calls fn for every module loaded now (but the loader, vdso, the shim and,
 * if list->only_new, those an earlier pass saw), each held open meanwhile
 * by dlopen(RTLD_NOLOAD): one being loaded is waited for until it is
 * relocated, one closed since it was listed is skipped. */
static void each_module(struct module_list *list, void (*fn)(const struct module *, void *),
			void *arg)
{
	dl_iterate_phdr(collect_module, list);
	for (size_t i = 0; i < list->count; i++) {
		const struct module_ref *ref = &list->mod[i];
		const char *name = list->names + ref->name;
		void *held = dlopen(name[0] ? name : NULL, RTLD_LAZY | RTLD_NOLOAD);
		struct link_map *lm;
		struct module m;
		if (!held)
			continue;
		if (LIBC(dlinfo)(held, RTLD_DI_LINKMAP, &lm) == 0 && lm->l_addr == ref->base &&
		    read_module(ref, &m))
			fn(&m, arg);
		LIBC(dlclose)(held);
	}
}

/* A handle on the shim itself: dlsym through it finds the shim's exports
 * first, then its dependencies' (which hook_for tells apart). */
static void *self_handle(void)
{
	Dl_info di;
	if (!LIBC(dladdr)((void *)got_patch_all, &di) || !di.dli_fname)
		return NULL;
	return dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD);
}

static int count_adds(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof(info->dlpi_adds))
		*(unsigned long long *)arg = info->dlpi_adds;
	return 1; /* the first module says it */
}

static unsigned long long modules_loaded(void)
{
	unsigned long long adds = 0;
	dl_iterate_phdr(count_adds, &adds);
	return adds;
}

/* A pass over the loaded modules, under the patcher's lock: every one
 * (attach), or those loaded since the last pass (only_new); entries of
 * modules gone are dropped on the way. */
static int patch_pass(bool only_new)
{
	struct patch_run run = {self_handle(), NULL, NULL, 0};
	run.table = map_once(&entries_table, GOT_ENTRIES_MAX * sizeof(struct got_entry));
	struct pass_tables *pass = map_once((void *_Atomic *)&pass_tables, sizeof(*pass));
	if (!run.self || !run.table || !pass) {
		if (run.self)
			LIBC(dlclose)(run.self);
		return -1;
	}
	run.list = list_made(pass, only_new, run.table);
	seen_adds = modules_loaded(); /* one loaded during the pass: the next finds it */
	size_t before = entry_count;
	for (size_t i = 0; i < before; i++)
		run.table[i].live = false;
	each_module(run.list, patch_module, &run);
	LIBC(dlclose)(run.self); /* the RTLD_NOLOAD reference only */
	size_t kept = 0;
	for (size_t i = 0; i < entry_count; i++)
		if (i >= before || run.table[i].live)
			run.table[kept++] = run.table[i];
	entry_count = kept;
	memcpy(pass->known, run.list->learned, run.list->learned_count * sizeof(pass->known[0]));
	known_count = run.list->learned_count;
	return run.patched;
}

int got_patch_all(void)
{
	patch_lock();
	int patched = patch_pass(false);
	patch_unlock();
	return patched;
}

void got_patch_since(void)
{
	if (modules_loaded() == __atomic_load_n(&seen_adds, __ATOMIC_RELAXED) || !patch_trylock())
		return;
	/* Re-checked under the lock: a detach that ran since restored the
	 * entries, and a pass now would patch them again for good. */
	if (__atomic_load_n(&shim.attached, __ATOMIC_ACQUIRE))
		patch_pass(true);
	patch_unlock();
}

struct restore_run {
	struct got_entry *table;
	int restored;
};

/* Entries are put back module by module, only in modules still loaded: a
 * module closed since attach took its entries with it. */
static void restore_module(const struct module *m, void *arg)
{
	struct restore_run *run = arg;
	for (size_t i = 0; i < entry_count; i++) {
		struct got_entry *e = &run->table[i];
		if (!in_segments(m->base, m->phdr, m->phnum, (uintptr_t)e->slot) ||
		    __atomic_load_n(e->slot, __ATOMIC_ACQUIRE) != e->hook)
			continue;
		if (write_slot(e, e->original))
			run->restored++;
	}
}

int got_restore_all(void)
{
	patch_lock();
	struct restore_run run = {atomic_load_explicit(&entries_table, memory_order_acquire), 0};
	/* Entries were made only by a pass that had its tables. */
	struct pass_tables *pass = atomic_load_explicit(&pass_tables, memory_order_acquire);
	if (run.table && pass)
		each_module(list_made(pass, false, NULL), restore_module, &run);
	entry_count = 0;
	known_count = 0;
	if (pass)
		mapped_table_release(pass, sizeof(*pass));
	if (run.table)
		table_release(run.table, GOT_ENTRIES_MAX * sizeof(struct got_entry));
	patch_unlock();
	return run.restored;
}
