/*
 * next_symbol.c - dlsym(RTLD_NEXT, name) and dlvsym(RTLD_NEXT, name,
 * version) for a preloaded library, from the GNU hash tables of the
 * objects after it (see next_symbol.h).
 *
 * Follows glibc's do_lookup_x and check_match: the Bloom filter, the
 * bucket, the chain, then the symbol's kind, binding, visibility and
 * version. An unversioned lookup (dlsym) of a name of several versions
 * takes its one version that is not hidden, as glibc 2.36 and later do
 * (the objects' newest_default); earlier releases took a name's first
 * version of index 2, hidden or not, and there it answers only for a name
 * of no version or of exactly one, not hidden. Must never allocate, lock
 * or write, and never answer where the loader might answer otherwise: it
 * says NEXT_SYMBOL_ASK instead.
 */
#include "next_symbol.h"

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "fork_hot.h"

START_PATH uintptr_t dynamic_address(ElfW(Addr) base, ElfW(Addr) p)
{
	return p < base ? base + p : p;
}

START_PATH bool object_symbols_read(ElfW(Addr) base, const ElfW(Dyn) *dyn,
				    struct object_symbols *out)
{
	memset(out, 0, sizeof(*out));
	out->base = base;
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t p = dynamic_address(base, dyn->d_un.d_ptr);
		switch (dyn->d_tag) {
		case DT_GNU_HASH: out->gnu_hash = (const uint32_t *)p; break;
		case DT_SYMTAB: out->symtab = (const ElfW(Sym) *)p; break;
		case DT_STRTAB: out->strtab = (const char *)p; break;
		case DT_VERSYM: out->versym = (const ElfW(Half) *)p; break;
		case DT_VERDEF: out->verdef = (const ElfW(Verdef) *)p; break;
		}
	}
	return out->gnu_hash && out->symtab && out->strtab;
}

START_PATH uint32_t symbol_hash(const char *name)
{
	uint32_t h = 5381;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = h * 33 + *c;
	return h;
}

/* The SysV ELF hash of a name, which a version definition carries. */
static START_PATH uint32_t elf_hash(const char *name)
{
	uint32_t h = 0;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		h = (h << 4) + *c;
		h ^= (h >> 24) & 0xf0;
	}
	return h & 0x0fffffff;
}

START_PATH int version_index(const struct object_symbols *o, const char *version)
{
	const uint32_t hash = elf_hash(version);
	const ElfW(Verdef) *d = o->verdef;
	/* The names compared only where the hashes agree, as the loader
	 * does: each is a page of the object's strings to map. */
	for (unsigned n = 0; d && n < 0x8000; n++) {
		const ElfW(Verdaux) *aux = (const ElfW(Verdaux) *)((const char *)d + d->vd_aux);
		if (d->vd_version == VER_DEF_CURRENT && !(d->vd_flags & VER_FLG_BASE) &&
		    d->vd_hash == hash && d->vd_cnt > 0 &&
		    strcmp(o->strtab + aux->vda_name, version) == 0)
			return d->vd_ndx & 0x7fff;
		if (d->vd_next == 0)
			break;
		d = (const ElfW(Verdef) *)((const char *)d + d->vd_next);
	}
	return -1;
}

/* The kinds of symbol the loader looks at (its ALLOWED_STT). */
#define LOOKED_AT ((1u << STT_NOTYPE) | (1u << STT_OBJECT) | (1u << STT_FUNC) | \
		   (1u << STT_COMMON) | (1u << STT_TLS) | (1u << STT_GNU_IFUNC))

/* The definition dlsym would take from this object for name (hash: its
 * symbol_hash): a global or weak definition of no version or of the base
 * one, else the name's one version when it has exactly one and it is not
 * hidden; with o->newest_default, hidden versions are passed by first.
 * NEXT_SYMBOL_ASK for several versions or, without newest_default, a
 * hidden one (glibc's releases choose differently among them), and for a
 * definition that is indirect, thread-local, absolute, GNU-unique, hidden
 * or internal. With a version (not NULL), the definition dlvsym would
 * take: of exactly that version, hidden or not; NEXT_SYMBOL_ASK in an
 * object without versions.
 * Inlined into next_symbol_hashed: a call's saved registers and moved
 * arguments were a fifth of a lookup's instructions. */
static inline __attribute__((always_inline)) enum symbol_found
symbol_in(const struct object_symbols *o, const char *name, uint32_t hash, const char *version,
	  void **addr)
{
	const uint32_t nbuckets = o->gnu_hash[0], symoffset = o->gnu_hash[1];
	const uint32_t bloom_size = o->gnu_hash[2], bloom_shift = o->gnu_hash[3];
	const ElfW(Addr) *bloom = (const ElfW(Addr) *)(o->gnu_hash + 4);
	const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size);
	const uint32_t *chain = buckets + nbuckets;
	const unsigned bits = sizeof(ElfW(Addr)) * 8;
	if (nbuckets == 0 || bloom_size == 0)
		return SYMBOL_ABSENT;
	ElfW(Addr) word = bloom[(hash / bits) & (bloom_size - 1)];
	ElfW(Addr) mask = ((ElfW(Addr))1 << (hash % bits)) |
			  ((ElfW(Addr))1 << ((hash >> bloom_shift) % bits));
	if ((word & mask) != mask)
		return SYMBOL_ABSENT;
	uint32_t index = buckets[hash % nbuckets];
	if (index < symoffset)
		return SYMBOL_ABSENT;
	/* dlvsym takes the definition of that version only; an object
	 * without versions, any definition (the loader's rule), which this
	 * leaves to the loader. */
	int wanted = -1;
	if (version) {
		if (!o->versym)
			return NEXT_SYMBOL_ASK;
		if ((wanted = version_index(o, version)) < 0)
			return SYMBOL_ABSENT;
	}
	/* A name of several versions, or of one hidden version, is dlsym's
	 * to answer before glibc 2.36, which took the first version of index
	 * 2 (the oldest, even a hidden one); 2.36 passes hidden ones by and
	 * takes the one left. */
	const ElfW(Sym) *chosen = NULL;
	unsigned versioned = 0;
	bool hidden = false;
	/* The symbol itself is read only where the chain's hash agrees: most
	 * entries of a chain are other names. */
	for (;; index++) {
		uint32_t chained = chain[index - symoffset];
		if (((chained ^ hash) >> 1) != 0) {
			if (chained & 1)
				break;
			continue;
		}
		const ElfW(Sym) *sym = &o->symtab[index];
		unsigned type = ELF64_ST_TYPE(sym->st_info);
		if (!(sym->st_value == 0 && sym->st_shndx != SHN_ABS && type != STT_TLS) &&
		    sym->st_shndx != SHN_UNDEF && (LOOKED_AT & (1u << type)) &&
		    strcmp(o->strtab + sym->st_name, name) == 0) {
			ElfW(Half) v = o->versym ? o->versym[index] : 0;
			if (version) {
				if ((v & 0x7fff) == wanted) {
					chosen = sym;
					break;
				}
			} else if ((v & 0x7fff) < 2) {
				if (versioned)
					return NEXT_SYMBOL_ASK;
				chosen = sym;
				break;
			} else if (!(o->newest_default && (v & 0x8000))) {
				hidden |= (v & 0x8000) != 0;
				if (versioned++ == 0)
					chosen = sym;
			}
		}
		if (chained & 1)
			break;
	}
	if (versioned > 1 || hidden)
		return NEXT_SYMBOL_ASK;
	if (!chosen)
		return SYMBOL_ABSENT;
	unsigned bind = ELF64_ST_BIND(chosen->st_info);
	unsigned type = ELF64_ST_TYPE(chosen->st_info);
	unsigned visibility = ELF64_ST_VISIBILITY(chosen->st_other);
	if (bind != STB_GLOBAL && bind != STB_WEAK) {
		if (bind == STB_LOCAL)
			return SYMBOL_ABSENT;
		return NEXT_SYMBOL_ASK; /* STB_GNU_UNIQUE: the loader's table */
	}
	/* Hidden and internal definitions the loader passes by; indirect
	 * ones need their resolver run; TLS and absolute ones are no address
	 * in the object. */
	if (visibility == STV_HIDDEN || visibility == STV_INTERNAL || type == STT_GNU_IFUNC ||
	    type == STT_TLS || chosen->st_shndx == SHN_ABS)
		return NEXT_SYMBOL_ASK;
	*addr = (void *)(o->base + chosen->st_value);
	return SYMBOL_FOUND;
}

START_PATH void next_objects_read(const struct link_map *self, struct next_objects *next)
{
	next->count = 0;
	next->cut = false;
	for (const struct link_map *l = self->l_next; l; l = l->l_next) {
		if (next->count == NEXT_OBJECTS_MAX ||
		    !object_symbols_read(l->l_addr, l->l_ld, &next->o[next->count])) {
			next->cut = true;
			return;
		}
		next->count++;
		if (is_libc_name(l->l_name)) {
			next->cut = l->l_next != NULL;
			/* The loader is libc's release: from 2.36, which
			 * added that version, dlsym takes default versions. */
			bool newest = version_index(&next->o[next->count - 1], "GLIBC_2.36") >= 0;
			for (unsigned i = 0; i < next->count; i++)
				next->o[i].newest_default = newest;
			return;
		}
	}
}

START_PATH enum symbol_found next_symbol_among(const struct object_symbols *o, unsigned count,
					       const char *name, uint32_t hash, const char *version,
					       void **addr)
{
	for (unsigned i = 0; i < count; i++) {
		enum symbol_found found = symbol_in(&o[i], name, hash, version, addr);
		if (found != SYMBOL_ABSENT)
			return found;
	}
	return NEXT_SYMBOL_ASK;
}

START_PATH enum symbol_found next_symbol_hashed(const struct next_objects *next, const char *name,
						uint32_t hash, const char *version, void **addr)
{
	return next_symbol_among(next->o, next->count, name, hash, version, addr);
}

START_PATH enum symbol_found next_symbol_walk(const struct link_map *self, const char *name,
					      uint32_t hash, bool newest_default, void **addr)
{
	unsigned count = 0;
	for (const struct link_map *l = self->l_next; l; l = l->l_next) {
		struct object_symbols o;
		if (count++ == NEXT_OBJECTS_MAX || !object_symbols_read(l->l_addr, l->l_ld, &o))
			return NEXT_SYMBOL_ASK;
		o.newest_default = newest_default;
		enum symbol_found found = symbol_in(&o, name, hash, NULL, addr);
		if (found != SYMBOL_ABSENT || is_libc_name(l->l_name))
			return found == SYMBOL_ABSENT ? NEXT_SYMBOL_ASK : found;
	}
	return NEXT_SYMBOL_ASK;
}
