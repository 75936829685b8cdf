/*
 * next_symbol.h - what dlsym(RTLD_NEXT, name) and dlvsym(RTLD_NEXT, name,
 * version) return to a library the program preloaded, found by reading
 * the GNU hash tables of the objects after it, as the loader does.
 *
 * dlsym pays for an error-catching frame, a search for its caller's object
 * and the loader's lock at every call: some 850 instructions, 100,000 for
 * the shim's originals in every process it starts in, and pages of the
 * loader's and libc's code a process would not otherwise touch. This reads
 * the same tables for about a third of that per name. Pure logic over
 * memory the loader has mapped: never allocates, takes no lock, never
 * writes, and answers NEXT_SYMBOL_ASK (ask dlsym) for any case it does not
 * reproduce exactly.
 */
#ifndef REQID_NEXT_SYMBOL_H
#define REQID_NEXT_SYMBOL_H

#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* One loaded object's dynamic symbol table, as its dynamic section gives it. */
struct object_symbols {
	ElfW(Addr) base;              /* the object's load bias */
	const uint32_t *gnu_hash;     /* DT_GNU_HASH */
	const ElfW(Sym) *symtab;
	const char *strtab;
	const ElfW(Half) *versym;     /* NULL: no versions */
	const ElfW(Verdef) *verdef;   /* the versions it defines; NULL: none */
	bool newest_default;          /* dlsym passes hidden versions by (glibc
					 2.36 and later; next_objects_read) */
};

/* The address a dynamic entry's d_ptr p names in an object loaded at base:
 * glibc rewrites most entries to absolute addresses when it loads an
 * object; the vDSO's and some others stay relative to base. */
uintptr_t dynamic_address(ElfW(Addr) base, ElfW(Addr) p);

/* Reads dyn (the object's PT_DYNAMIC, loaded at base). False when the
 * object has no GNU hash table or symbol table. */
bool object_symbols_read(ElfW(Addr) base, const ElfW(Dyn) *dyn, struct object_symbols *out);

/* The GNU hash of a symbol name (the loader's dl_new_hash). */
uint32_t symbol_hash(const char *name);

enum symbol_found {
	SYMBOL_ABSENT,  /* the object does not define it for an unversioned lookup */
	SYMBOL_FOUND,   /* *addr is its address */
	NEXT_SYMBOL_ASK /* not certain here (see object_symbol): ask dlsym */
};

/* The definition dlsym would take from this object for name (hash: its
 * symbol_hash): a global or weak definition of no version or of the base
 * one, else the name's one version when it has exactly one and it is not
 * hidden; with o->newest_default, hidden versions are passed by first.
 * NEXT_SYMBOL_ASK for several versions or, without newest_default, a
 * hidden one (glibc's releases choose differently among them), and for a
 * definition that is indirect, thread-local, absolute, GNU-unique, hidden
 * or internal. With a version (not NULL), the definition dlvsym would
 * take: of exactly that version, hidden or not; NEXT_SYMBOL_ASK in an
 * object without versions. */
enum symbol_found object_symbol(const struct object_symbols *o, const char *name, uint32_t hash,
				const char *version, void **addr);

/* The index (versym's) of the version the object defines under that name,
 * its base (the object's own name) aside; -1 when it defines none. */
int version_index(const struct object_symbols *o, const char *version);

/* Whether an object the loader names so is libc (the name, NULL for
 * none, ends in libc.so.6). Inline: start-up (START_PATH) and the
 * event-stack walker (LOOP_PATH) each keep it in their own window. */
static inline bool is_libc_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	return n >= 9 && strcmp(name + n - 9, "libc.so.6") == 0;
}

/* The objects after a library the program preloaded, in the loader's
 * order, up to libc: where dlsym(RTLD_NEXT) looks first for that library.
 * libc defines what the shim looks up; the objects after it, loaded last,
 * are not read (one a dlclose in another thread might be unmapping). */
#define NEXT_OBJECTS_MAX 64
struct next_objects {
	unsigned count;
	bool cut;	/* the list goes on past count: past libc, at an object
			   with no GNU hash table, or past NEXT_OBJECTS_MAX */
	struct object_symbols o[NEXT_OBJECTS_MAX];
};

/* Reads the tables of the objects after self in the loader's list. */
void next_objects_read(const struct link_map *self, struct next_objects *next);

/* dlsym(RTLD_NEXT, name), or with a version dlvsym(RTLD_NEXT, name,
 * version), for the library next was read after: the first definition in
 * those objects. NEXT_SYMBOL_ASK when object_symbol says so of the first
 * object with the name, or none of the objects read has it (dlsym may find
 * it past the cut, or say it is nowhere). */
enum symbol_found next_symbol(const struct next_objects *next, const char *name,
			      const char *version, void **addr);

#endif
