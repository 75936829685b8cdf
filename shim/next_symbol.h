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

/* symbol_hash of a string literal s shorter than SYMBOL_HASH_LITERAL_MAX,
 * as a constant expression: the compiler works out every name's hash, which
 * the loop above costs some 70 instructions a name at every start. The
 * hash is 5381 * 33^n plus each character times 33 to the power of its
 * distance from the end (modulo 2^32): term j is the character j places
 * before the end, and each factor a 33 for a character there is. */
#define SYMBOL_HASH_LITERAL_MAX 32
#define SYMBOL_HASH_LEN(s) (sizeof(s) - 1)
/* The character j places before the end of s (its first when there is none,
 * which SYMBOL_HASH_TERM then leaves out). */
#define SYMBOL_HASH_CHAR(s, j) \
	((uint32_t)(unsigned char)(s)[(j) < SYMBOL_HASH_LEN(s) ? SYMBOL_HASH_LEN(s) - 1 - (j) : 0])
#define SYMBOL_HASH_TERM(s, j, power) ((j) < SYMBOL_HASH_LEN(s) ? SYMBOL_HASH_CHAR(s, j) * (power) : 0u)
#define SYMBOL_HASH_FACTOR(s, j) ((j) < SYMBOL_HASH_LEN(s) ? 33u : 1u)
#define SYMBOL_HASH_LITERAL(s) \
	(5381u \
	* SYMBOL_HASH_FACTOR(s, 0) \
	* SYMBOL_HASH_FACTOR(s, 1) \
	* SYMBOL_HASH_FACTOR(s, 2) \
	* SYMBOL_HASH_FACTOR(s, 3) \
	* SYMBOL_HASH_FACTOR(s, 4) \
	* SYMBOL_HASH_FACTOR(s, 5) \
	* SYMBOL_HASH_FACTOR(s, 6) \
	* SYMBOL_HASH_FACTOR(s, 7) \
	* SYMBOL_HASH_FACTOR(s, 8) \
	* SYMBOL_HASH_FACTOR(s, 9) \
	* SYMBOL_HASH_FACTOR(s, 10) \
	* SYMBOL_HASH_FACTOR(s, 11) \
	* SYMBOL_HASH_FACTOR(s, 12) \
	* SYMBOL_HASH_FACTOR(s, 13) \
	* SYMBOL_HASH_FACTOR(s, 14) \
	* SYMBOL_HASH_FACTOR(s, 15) \
	* SYMBOL_HASH_FACTOR(s, 16) \
	* SYMBOL_HASH_FACTOR(s, 17) \
	* SYMBOL_HASH_FACTOR(s, 18) \
	* SYMBOL_HASH_FACTOR(s, 19) \
	* SYMBOL_HASH_FACTOR(s, 20) \
	* SYMBOL_HASH_FACTOR(s, 21) \
	* SYMBOL_HASH_FACTOR(s, 22) \
	* SYMBOL_HASH_FACTOR(s, 23) \
	* SYMBOL_HASH_FACTOR(s, 24) \
	* SYMBOL_HASH_FACTOR(s, 25) \
	* SYMBOL_HASH_FACTOR(s, 26) \
	* SYMBOL_HASH_FACTOR(s, 27) \
	* SYMBOL_HASH_FACTOR(s, 28) \
	* SYMBOL_HASH_FACTOR(s, 29) \
	* SYMBOL_HASH_FACTOR(s, 30) \
	* SYMBOL_HASH_FACTOR(s, 31) \
	+ SYMBOL_HASH_TERM(s, 0, 0x00000001u) \
	+ SYMBOL_HASH_TERM(s, 1, 0x00000021u) \
	+ SYMBOL_HASH_TERM(s, 2, 0x00000441u) \
	+ SYMBOL_HASH_TERM(s, 3, 0x00008c61u) \
	+ SYMBOL_HASH_TERM(s, 4, 0x00121881u) \
	+ SYMBOL_HASH_TERM(s, 5, 0x025528a1u) \
	+ SYMBOL_HASH_TERM(s, 6, 0x4cfa3cc1u) \
	+ SYMBOL_HASH_TERM(s, 7, 0xec41d4e1u) \
	+ SYMBOL_HASH_TERM(s, 8, 0x747c7101u) \
	+ SYMBOL_HASH_TERM(s, 9, 0x040a9121u) \
	+ SYMBOL_HASH_TERM(s, 10, 0x855cb541u) \
	+ SYMBOL_HASH_TERM(s, 11, 0x30f35d61u) \
	+ SYMBOL_HASH_TERM(s, 12, 0x4f5f0981u) \
	+ SYMBOL_HASH_TERM(s, 13, 0x3b4039a1u) \
	+ SYMBOL_HASH_TERM(s, 14, 0xa3476dc1u) \
	+ SYMBOL_HASH_TERM(s, 15, 0x0c3525e1u) \
	+ SYMBOL_HASH_TERM(s, 16, 0x92d9e201u) \
	+ SYMBOL_HASH_TERM(s, 17, 0xee162221u) \
	+ SYMBOL_HASH_TERM(s, 18, 0xb0da6641u) \
	+ SYMBOL_HASH_TERM(s, 19, 0xcc272e61u) \
	+ SYMBOL_HASH_TERM(s, 20, 0x510cfa81u) \
	+ SYMBOL_HASH_TERM(s, 21, 0x72ac4aa1u) \
	+ SYMBOL_HASH_TERM(s, 22, 0xc8359ec1u) \
	+ SYMBOL_HASH_TERM(s, 23, 0xcee976e1u) \
	+ SYMBOL_HASH_TERM(s, 24, 0xac185301u) \
	+ SYMBOL_HASH_TERM(s, 25, 0x2f22b321u) \
	+ SYMBOL_HASH_TERM(s, 26, 0x13791741u) \
	+ SYMBOL_HASH_TERM(s, 27, 0x829bff61u) \
	+ SYMBOL_HASH_TERM(s, 28, 0xd61beb81u) \
	+ SYMBOL_HASH_TERM(s, 29, 0x99995ba1u) \
	+ SYMBOL_HASH_TERM(s, 30, 0xccc4cfc1u) \
	+ SYMBOL_HASH_TERM(s, 31, 0x655ec7e1u))

enum symbol_found {
	SYMBOL_ABSENT,  /* the object does not define it for an unversioned lookup */
	SYMBOL_FOUND,   /* *addr is its address */
	NEXT_SYMBOL_ASK /* not certain here (see next_symbol.c's symbol_in): ask dlsym */
};

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
 * version), for the library next was read after, given name's symbol_hash:
 * the first definition in those objects. NEXT_SYMBOL_ASK when
 * next_symbol.c's symbol_in says so of the first object with the name, or
 * none of the objects read has it (dlsym may find it past the cut, or say
 * it is nowhere). */
enum symbol_found next_symbol_hashed(const struct next_objects *next, const char *name,
				     uint32_t hash, const char *version, void **addr);

/* next_symbol_hashed for the count objects at o (in the loader's order,
 * as next_objects_read reads them): NEXT_SYMBOL_ASK when none has name. */
enum symbol_found next_symbol_among(const struct object_symbols *o, unsigned count,
				    const char *name, uint32_t hash, const char *version,
				    void **addr);

/* next_symbol_hashed(list, name, hash, NULL, addr) for the list
 * next_objects_read(self, list) would make, read one object at a time: a
 * few hundred bytes of stack, where a hook finding an original at its
 * first call may run on a signal's small stack. newest_default: what
 * next_objects_read found of libc (a caller that saw it once passes it).
 * The same answers, NEXT_SYMBOL_ASK included. */
enum symbol_found next_symbol_walk(const struct link_map *self, const char *name, uint32_t hash,
				   bool newest_default, void **addr);

#endif
