/*
 * shim_init.c - start-up, shut-down and fork handling for libreqid.so.
 *
 * Resolves the original libc functions, reads the REQID_* settings, seeds the
 * id generator and marks the log descriptors. If anything here fails the
 * shim stays inactive and every hook passes its call through untouched.
 * Must never allocate: it may run inside another library's constructor.
 */
#include "shim_init.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit_log.h"
#include "call_chain.h"
#include "conn_table.h"
#include "epoll_map.h"
#include "event_batch.h"
#include "fork_hot.h"
#include "got_patch.h"
#include "large_table.h"
#include "log_writer.h"
#include "next_symbol.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "thread_ctx.h"

/* Written whole at start: in .data, whose page the loader writes anyway. */
struct real_functions real START_WRITTEN;
/* Everything but the log paths at its end (which a process without
 * REQID_LOG_PATHS never touches) is written at start: first in .bss (the
 * library links without crtbeginS, whose exit flag, written at exit,
 * shared that page). */
struct shim_state shim;
/* First of the FORK_HOT globals: with them and the low descriptors' flags,
 * on the page of .data (fork_hot.h). A cache line of its own start: the
 * id counter is written for every id, the table of libc's functions
 * before it read by every hook. */
struct process_state process FORK_HOT_FIRST __attribute__((aligned(64)));

/* The library's handle for libc (fork handlers are registered under it),
 * as crtbeginS defines it: the library links without the start files
 * (the Makefile's -nostartfiles). */
void *__dso_handle HIDDEN = &__dso_handle;

static _Atomic bool real_ready START_WRITTEN; /* read first: not in .bss */
static bool real_complete START_WRITTEN;
static __thread bool resolving __attribute__((tls_model("initial-exec")));

/* Whether entry begins with name followed by '=' or (with bare) ends
 * there; past the name if so, else NULL. */
static START_PATH const char *entry_value(const char *entry, const char *name, bool bare)
{
	while (*name && *entry == *name)
		entry++, name++;
	return !*name && (*entry == '=' || (bare && !*entry)) ? entry : NULL;
}

/* The first entry of environ for name, past the name: at its '='; NULL if
 * none. Read here: libc's getenv is a page of libc's code (a fault on this
 * VM) that a process which never calls it would not touch. */
static START_PATH const char *environment_entry(const char *name)
{
	const char *e = NULL;
	for (char **entry = environ; entry && *entry && !e; entry++)
		e = entry_value(*entry, name, false);
	return e;
}

/* The entries of environ that begin "REQID_", in its order, found in one
 * pass over it: start-up asks for some twenty settings, and a scan of the
 * whole environment for each cost some 500 instructions in a shell's forty
 * variables. Made on the constructor's stack, for the environ it was read
 * from (set_log_ids makes another, or points its REQID_LOG_IDS slot at a
 * new entry: that setting is never asked for after it); more than fit:
 * environ is scanned. */
#define SETTING_ENTRIES_MAX 32
struct setting_entries {
	char **from;
	unsigned count;
	bool overflow; /* more than fit: not used */
	const char *entry[SETTING_ENTRIES_MAX];
};
static struct setting_entries *start_settings START_WRITTEN; /* NULL outside shim_start */
static const char setting_prefix[] = "REQID_";

static START_PATH void setting_entries_read(struct setting_entries *s)
{
	s->from = environ;
	s->count = 0;
	s->overflow = false;
	for (char **entry = environ; entry && *entry; entry++) {
		const char *e = *entry;
		if (e[0] != 'R' || strncmp(e, setting_prefix, sizeof(setting_prefix) - 1) != 0)
			continue;
		if (s->count == SETTING_ENTRIES_MAX) {
			s->overflow = true;
			return;
		}
		s->entry[s->count++] = e;
	}
}

/* getenv(name). */
static START_PATH const char *environment(const char *name)
{
	struct setting_entries *s = start_settings;
	if (s && s->from != environ)
		setting_entries_read(s);
	const char *e = NULL;
	if (s && !s->overflow && memcmp(name, setting_prefix, sizeof(setting_prefix) - 1) == 0) {
		for (unsigned i = 0; i < s->count && !e; i++)
			e = entry_value(s->entry[i], name, false);
	} else {
		e = environment_entry(name);
	}
	return e ? e + 1 : NULL;
}

/* The loader's debugging record, whose list of the loaded objects starts
 * with the program (loaded_objects). Not an import of _r_debug, which
 * alone made the library need ld.so by name and a version of it (some
 * 1,400 instructions of the loader's at every start): start-up finds it
 * where the loader points the program's DT_DEBUG entry at it
 * (debug_record_at_start); a hook that runs before that, or a program
 * without that entry, asks dlsym. */
static const struct r_debug *loader_debug START_WRITTEN;

/* The program's DT_DEBUG record, found through the auxiliary vector that
 * follows the environment the process started with: envp only when it is
 * that environment (the array right after argv on the initial stack; not
 * an environ a constructor before this one replaced, nor a dlopen's).
 * The program's load bias as the loader takes it: from PT_PHDR, else 0.
 * NULL where any of it is missing. */
static START_PATH const struct r_debug *debug_record_at_start(int argc, char **argv, char **envp)
{
	if (argc < 0 || !argv || !envp || envp != argv + argc + 1)
		return NULL;
	char **end = envp;
	while (*end)
		end++;
	const ElfW(Phdr) *phdr = NULL;
	size_t phnum = 0;
	for (const ElfW(auxv_t) *a = (const ElfW(auxv_t) *)(end + 1); a->a_type != AT_NULL; a++) {
		if (a->a_type == AT_PHDR)
			phdr = (const ElfW(Phdr) *)a->a_un.a_val;
		else if (a->a_type == AT_PHNUM)
			phnum = a->a_un.a_val;
	}
	ElfW(Addr) bias = 0, dynamic = 0;
	for (size_t i = 0; phdr && i < phnum; i++) {
		if (phdr[i].p_type == PT_PHDR)
			bias = (ElfW(Addr))phdr - phdr[i].p_vaddr;
		else if (phdr[i].p_type == PT_DYNAMIC)
			dynamic = phdr[i].p_vaddr;
	}
	if (!dynamic)
		return NULL;
	for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(bias + dynamic); d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_DEBUG)
			return (const struct r_debug *)d->d_un.d_ptr;
	return NULL;
}

/* The loader's list of the loaded objects, the program first; NULL if not
 * found. dlsym only where start-up did not find the record: from
 * real_resolve (a hook before the constructor: resolving is set) or the
 * constructor. */
static START_PATH const struct link_map *loaded_objects(void)
{
	const struct r_debug *r = loader_debug;
	if (!r)
		loader_debug = r = dlsym(RTLD_DEFAULT, "_r_debug");
	return r ? r->r_map : NULL;
}

/* The library's entry in the loader's list when it came in with the
 * program (LD_PRELOAD or /etc/ld.so.preload), not later by dlopen (`reqid
 * attach`): the loader lists preloaded libraries before libc, and later
 * ones after it. NULL when dlopened. */
static START_PATH const struct link_map *preloaded_self(void)
{
	extern const char __ehdr_start[] HIDDEN;
	for (const struct link_map *l = loaded_objects(); l; l = l->l_next) {
		if (l->l_addr == (ElfW(Addr))__ehdr_start)
			return l;
		if (is_libc_name(l->l_name))
			return NULL;
	}
	return NULL;
}

/* Whether what dlsym answers is what the loader's tables say: not with an
 * audit module loaded (LD_AUDIT, or the program's own DT_AUDIT or
 * DT_DEPAUDIT, which glibc 2.32 and later load), whose la_symbind may bind
 * dlsym's answer elsewhere; not with LD_DYNAMIC_WEAK (the loader passes
 * weak definitions by); not when the environment cannot be read yet (a
 * hook in the program's preinit code). */
static START_PATH bool lookups_as_read(void)
{
	/* The loader takes these with a value or without '='. One pass: most
	 * entries are turned away at their first byte. */
	if (!environ)
		return false;
	for (char **entry = environ; *entry; entry++) {
		const char *e = *entry;
		if (e[0] == 'L' && e[1] == 'D' && e[2] == '_' &&
		    (entry_value(e + 3, "DYNAMIC_WEAK", true) || entry_value(e + 3, "AUDIT", true)))
			return false;
	}
	const struct link_map *program = loaded_objects();
	for (const ElfW(Dyn) *d = program ? program->l_ld : NULL; d && d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_AUDIT || d->d_tag == DT_DEPAUDIT)
			return false;
	return program != NULL;
}

/* Each original the hooks call and each libc function the shim calls, in
 * REAL_FUNCTIONS' then LIBC_CALLS' order, the order of struct
 * real_functions (entry i is slot i): its name's hash (worked out by the
 * compiler), where its name starts in original_names and whether the shim
 * needs it. The names are one string, each after the one before, laid out
 * as struct original_names: no pointer for the loader to relocate. */
struct original_entry {
	uint32_t hash;
	uint16_t name;
	bool needed;
};
#define ORIGINAL_FITS(name, ret, params, needed) \
	_Static_assert(sizeof(#name) <= SYMBOL_HASH_LITERAL_MAX, #name ": name too long to hash here");
REAL_FUNCTIONS(ORIGINAL_FITS)
LIBC_CALLS(ORIGINAL_FITS)
#undef ORIGINAL_FITS
#define ORIGINAL_NAME_FIELD(name, ret, params, needed) char name[sizeof(#name)];
struct original_names {
	REAL_FUNCTIONS(ORIGINAL_NAME_FIELD) LIBC_CALLS(ORIGINAL_NAME_FIELD)
};
#undef ORIGINAL_NAME_FIELD
#define ORIGINAL_NAME(name, ret, params, needed) #name,
static const struct original_names original_names = {REAL_FUNCTIONS(ORIGINAL_NAME)
							     LIBC_CALLS(ORIGINAL_NAME)};
#undef ORIGINAL_NAME
#define ORIGINAL_ENTRY(name, ret, params, needed) \
	{SYMBOL_HASH_LITERAL(#name), offsetof(struct original_names, name), needed},
static const struct original_entry original_entries[] = {
	REAL_FUNCTIONS(ORIGINAL_ENTRY) LIBC_CALLS(ORIGINAL_ENTRY)};
#undef ORIGINAL_ENTRY
#define ORIGINALS (sizeof(original_entries) / sizeof(original_entries[0]))
_Static_assert(sizeof(struct real_functions) == ORIGINALS * sizeof(void (*)(void)),
	       "struct real_functions: one function pointer per original, in order");
_Static_assert(sizeof(struct original_names) <= UINT16_MAX, "original_names outgrew its offsets");

/* The originals found at start when the others wait for their first use:
 * those the shim calls directly (real.fn, not REAL(fn)), or whose absence
 * it reads as libc lacking them (system() asks whether posix_spawn is
 * there, the printf and syslog hooks which variant is), the reads and
 * writes of the hooks' fast paths, which most processes make, and
 * __register_atfork, which start-up calls (found with the others, some 270
 * instructions; on its own at its first use, some 870). The two condition
 * variable waits are found by version where the others are all found at
 * start (real_resolve). */
static const uint8_t start_slots[] = {
	REAL_SLOT(read), REAL_SLOT(readv), REAL_SLOT(write), REAL_SLOT(writev),
	REAL_SLOT(recv), REAL_SLOT(recvfrom), REAL_SLOT(recvmsg), REAL_SLOT(send),
	REAL_SLOT(sendto), REAL_SLOT(sendmsg), REAL_SLOT(poll), REAL_SLOT(flockfile),
	REAL_SLOT(funlockfile), REAL_SLOT(fwrite_unlocked), REAL_SLOT(fputws_unlocked),
	REAL_SLOT(fputwc_unlocked), REAL_SLOT(syslog), REAL_SLOT(vsyslog),
	REAL_SLOT(__vsyslog_chk), REAL_SLOT(__vfwprintf_chk), REAL_SLOT(posix_spawn),
	REAL_SLOT(__register_atfork),
};
_Static_assert(ORIGINALS <= 256, "start_slots: a slot is a byte");

/* The originals left for their first use (real_resolve_slot): set at start
 * when the loader's tables answer for every name as dlsym would (a
 * preloaded library, libc reached, glibc 2.36 or later); each slot found
 * nowhere then gets its bit in real_absent, so that it is looked up once.
 * A fork child inherits every one: the atfork prepare handler finds them
 * all before the first fork (resolve_before_fork). */
static bool real_lazy START_WRITTEN;
static _Atomic uint64_t real_absent[(ORIGINALS + 63) / 64];

static START_PATH void slot_set(unsigned slot, void *addr)
{
	memcpy((char *)&real + slot * sizeof(void (*)(void)), &addr, sizeof(addr));
}

static START_PATH void *slot_get(unsigned slot)
{
	void *addr;
	memcpy(&addr, (const char *)&real + slot * sizeof(void (*)(void)), sizeof(addr));
	return addr;
}

/* dlsym(RTLD_NEXT) of entry slot's name: from the tables in after, else
 * (after NULL, or not certain there) from dlsym. */
static START_PATH void *original_find(const struct next_objects *after, unsigned slot)
{
	const struct original_entry *e = &original_entries[slot];
	const char *name = (const char *)&original_names + e->name;
	void *addr;
	if (!after || next_symbol_hashed(after, name, e->hash, NULL, &addr) != SYMBOL_FOUND)
		addr = dlsym(RTLD_NEXT, name);
	return addr;
}

/* dlvsym(RTLD_NEXT, name, version) (hash: name's symbol_hash): read from
 * the loader's tables (next_symbol.h) when next lists the objects after
 * the preloaded library and the answer is certain, from dlvsym otherwise,
 * found here as an original (one of LINKED_CALLS: called from here, where
 * its first use, by real_resolve, would find none). */
static START_PATH void *original_version(const struct next_objects *next, const char *name,
					 uint32_t hash, const char *version)
{
	void *addr;
	if (next && next_symbol_hashed(next, name, hash, version, &addr) == SYMBOL_FOUND)
		return addr;
	void *(*versioned)(void *, const char *, const char *) = real.dlvsym;
	if (!versioned) {
		versioned = original_find(next, REAL_SLOT(dlvsym));
		slot_set(REAL_SLOT(dlvsym), versioned);
	}
	return versioned ? versioned(RTLD_NEXT, name, version) : NULL;
}

START_PATH bool real_resolve(void)
{
	if (atomic_load_explicit(&real_ready, memory_order_acquire))
		return true;
	if (resolving)
		return false;
	resolving = true;
	bool complete = true;
	const struct link_map *self = lookups_as_read() ? preloaded_self() : NULL;
	struct next_objects next;
	if (self)
		next_objects_read(self, &next);
	const struct next_objects *after = self ? &next : NULL;
	/* newest_default is set only where libc was reached, from 2.36: no
	 * name of this list is dlsym's to answer there, and every needed one
	 * is in every such libc. */
	bool lazy = after && next.count > 0 && next.o[next.count - 1].newest_default;
	if (lazy) {
		/* The condition variable waits wait for their first use too:
		 * there the tables give a name's one version that is not
		 * hidden, the current one (2.3.2), as dlvsym of it would (two
		 * versioned look-ups fewer at every start, some 940
		 * instructions). */
		for (size_t i = 0; i < sizeof(start_slots); i++) {
			void *addr = original_find(after, start_slots[i]);
			slot_set(start_slots[i], addr);
			complete &= !original_entries[start_slots[i]].needed || addr != NULL;
		}
	} else {
		const unsigned cond_wait = REAL_SLOT(pthread_cond_wait);
		const unsigned cond_timedwait = REAL_SLOT(pthread_cond_timedwait);
		/* The current versions: dlsym could hand back the 2.2.5 compat
		 * ones. */
		void *wait = original_version(after, "pthread_cond_wait",
					      SYMBOL_HASH_LITERAL("pthread_cond_wait"), "GLIBC_2.3.2");
		void *timedwait = original_version(after, "pthread_cond_timedwait",
						   SYMBOL_HASH_LITERAL("pthread_cond_timedwait"),
						   "GLIBC_2.3.2");
		if (!wait || !timedwait) {
			wait = original_find(after, cond_wait);
			timedwait = original_find(after, cond_timedwait);
		}
		slot_set(cond_wait, wait);
		slot_set(cond_timedwait, timedwait);
		complete = wait && timedwait;
		for (unsigned i = 0; i < ORIGINALS; i++) {
			if (i == cond_wait || i == cond_timedwait)
				continue;
			void *addr = original_find(after, i);
			slot_set(i, addr);
			complete &= !original_entries[i].needed || addr != NULL;
		}
	}
	/* Incomplete (a libc without some needed function): hooks still pass
	 * calls to what was found, or use raw syscalls, but the shim stays
	 * inactive. */
	real_lazy = lazy;
	real_complete = complete;
	atomic_store_explicit(&real_ready, true, memory_order_release);
	resolving = false;
	return true;
}

/* A slot left for its first use, found from the tables one object at a
 * time (a hook may run on a signal's small stack): pure reads, so a hook
 * re-entered meanwhile (a signal, or dlsym calling one) finds its own;
 * dlsym, where the tables are not certain, once per thread at a time.
 * Threads racing for a slot write the same address. */
static START_PATH bool real_resolve_slot(unsigned slot)
{
	if (!atomic_load_explicit(&real_ready, memory_order_acquire) && !real_resolve())
		return false;
	if (!real_lazy || slot >= ORIGINALS)
		return true;
	const struct original_entry *e = &original_entries[slot];
	const char *name = (const char *)&original_names + e->name;
	const struct link_map *self = preloaded_self();
	void *addr;
	if (!self || next_symbol_walk(self, name, e->hash, true, &addr) != SYMBOL_FOUND) {
		/* Read only here: its page is one a process that never
		 * misses a name never touches. */
		if ((atomic_load_explicit(&real_absent[slot / 64], memory_order_relaxed) >>
		     (slot % 64)) & 1)
			return true;
		if (resolving)
			return false;
		resolving = true;
		addr = dlsym(RTLD_NEXT, name);
		resolving = false;
	}
	slot_set(slot, addr);
	if (!addr)
		atomic_fetch_or_explicit(&real_absent[slot / 64], (uint64_t)1 << (slot % 64),
					 memory_order_relaxed);
	return true;
}

#define REAL_RESOLVER(name, ret, params, needed) \
	START_PATH bool real_resolve_##name(void) { return real_resolve_slot(REAL_SLOT(name)); }
REAL_FUNCTIONS(REAL_RESOLVER)
LIBC_CALLS(REAL_RESOLVER)
#undef REAL_RESOLVER

/* LINKED_CALLS (shim_init.h): each call of the shim's of NAME reaches
 * __wrap_NAME, which calls the original found as REAL finds one. Those a
 * fork child or an event loop may run are with the fork child's code. */
#define WRAPPED(name, ret, params, needed) ret __wrap_##name params;
LINKED_CALLS(WRAPPED)
#undef WRAPPED

FORK_PATH_LATE void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *(*fn)(void *, size_t, int, int, int, off_t) = LIBC(mmap);
	return fn ? fn(addr, len, prot, flags, fd, off)
		  : (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

FORK_PATH_LATE int __wrap_munmap(void *addr, size_t len)
{
	int (*fn)(void *, size_t) = LIBC(munmap);
	return fn ? fn(addr, len) : (int)syscall(SYS_munmap, addr, len);
}

/* Only buffer_reserve (LOOP_PATH) grows a mapping: its window, not the
 * fork child's. */
LOOP_PATH void *__wrap_mremap(void *old, size_t old_len, size_t len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *to = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	void *(*fn)(void *, size_t, size_t, int, ...) = LIBC(mremap);
	return fn ? fn(old, old_len, len, flags, to)
		  : (void *)syscall(SYS_mremap, old, old_len, len, flags, to);
}

FORK_PATH_LATE int __wrap_madvise(void *addr, size_t len, int advice)
{
	int (*fn)(void *, size_t, int) = LIBC(madvise);
	return fn ? fn(addr, len, advice) : (int)syscall(SYS_madvise, addr, len, advice);
}

FORK_PATH_LATE int __wrap_clock_gettime(clockid_t clock, struct timespec *ts)
{
	int (*fn)(clockid_t, struct timespec *) = LIBC(clock_gettime);
	return fn ? fn(clock, ts) : (int)syscall(SYS_clock_gettime, clock, ts);
}

int __wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int (*fn)(int, unsigned long, ...) = LIBC(ioctl);
	return fn ? fn(fd, request, arg) : (int)syscall(SYS_ioctl, fd, request, arg);
}

int __wrap_fileno(FILE *f)
{
	int (*fn)(FILE *) = LIBC(fileno);
	if (fn)
		return fn(f);
	errno = EBADF;
	return -1;
}

int __wrap_fileno_unlocked(FILE *f)
{
	int (*fn)(FILE *) = LIBC(fileno_unlocked);
	if (fn)
		return fn(f);
	errno = EBADF;
	return -1;
}

int __wrap_ferror(FILE *f)
{
	int (*fn)(FILE *) = LIBC(ferror);
	return fn ? fn(f) : 0;
}

int __wrap_ftrylockfile(FILE *f)
{
	int (*fn)(FILE *) = LIBC(ftrylockfile);
	return fn ? fn(f) : -1;
}

int __wrap_fwide(FILE *f, int mode)
{
	int (*fn)(FILE *, int) = LIBC(fwide);
	return fn ? fn(f, mode) : 0;
}

size_t __wrap_mbsnrtowcs(wchar_t *dst, const char **src, size_t n, size_t len, mbstate_t *ps)
{
	size_t (*fn)(wchar_t *, const char **, size_t, size_t, mbstate_t *) = LIBC(mbsnrtowcs);
	if (fn)
		return fn(dst, src, n, len, ps);
	errno = EILSEQ;
	return (size_t)-1;
}

int __wrap_snprintf(char *s, size_t n, const char *format, ...)
{
	int (*fn)(char *, size_t, const char *, va_list) = LIBC(vsnprintf);
	if (!fn)
		return -1;
	va_list ap;
	va_start(ap, format);
	int r = fn(s, n, format, ap);
	va_end(ap);
	return r;
}

void *__wrap_malloc(size_t n)
{
	void *(*fn)(size_t) = LIBC(malloc);
	return fn ? fn(n) : NULL;
}

void __wrap_free(void *p)
{
	void (*fn)(void *) = LIBC(free);
	if (fn)
		fn(p);
}

void __wrap_exit(int status)
{
	void (*fn)(int) = LIBC(exit);
	if (fn)
		fn(status);
	raw_syscall3(SYS_exit_group, status, 0, 0);
	__builtin_unreachable();
}

/* dlopen finds the object its caller is in (for its search path and
 * namespace): called from here, that is still the shim. */
void *__wrap_dlopen(const char *file, int mode)
{
	void *(*fn)(const char *, int) = LIBC(dlopen);
	return fn ? fn(file, mode) : NULL;
}

int __wrap_dl_iterate_phdr(int (*callback)(struct dl_phdr_info *, size_t, void *), void *data)
{
	int (*fn)(int (*)(struct dl_phdr_info *, size_t, void *), void *) = LIBC(dl_iterate_phdr);
	return fn ? fn(callback, data) : 0;
}

pthread_t __wrap_pthread_self(void)
{
	pthread_t (*fn)(void) = LIBC(pthread_self);
	return fn ? fn() : 0;
}

int __wrap_pthread_getattr_np(pthread_t thread, pthread_attr_t *attr)
{
	int (*fn)(pthread_t, pthread_attr_t *) = LIBC(pthread_getattr_np);
	return fn ? fn(thread, attr) : ENOSYS;
}

int __wrap_pthread_attr_getstack(const pthread_attr_t *attr, void **low, size_t *size)
{
	int (*fn)(const pthread_attr_t *, void **, size_t *) = LIBC(pthread_attr_getstack);
	return fn ? fn(attr, low, size) : ENOSYS;
}

int __wrap_pthread_attr_destroy(pthread_attr_t *attr)
{
	int (*fn)(pthread_attr_t *) = LIBC(pthread_attr_destroy);
	return fn ? fn(attr) : 0;
}

void *loader_variable(void *_Atomic *cache, const char *name)
{
	void *addr = atomic_load_explicit(cache, memory_order_acquire);
	if (!addr) {
		int saved = errno;
		addr = dlsym(RTLD_DEFAULT, name);
		atomic_store_explicit(cache, addr, memory_order_release);
		errno = saved;
	}
	return addr;
}

/* A thread's cancellation buffers (pthread_cleanup_push and pop): the
 * pthread_create and system() hooks push one only once they called libc's
 * function, which found these too; a cancellation unwinds from its
 * buffer with __pthread_unwind_next, which never returns (the thread
 * ends, as when it found nothing to unwind to). */
void __wrap___pthread_register_cancel(__pthread_unwind_buf_t *buf)
{
	void (*fn)(__pthread_unwind_buf_t *) = LIBC(__pthread_register_cancel);
	if (fn)
		fn(buf);
}

void __wrap___pthread_unregister_cancel(__pthread_unwind_buf_t *buf)
{
	void (*fn)(__pthread_unwind_buf_t *) = LIBC(__pthread_unregister_cancel);
	if (fn)
		fn(buf);
}

void __wrap___pthread_unwind_next(__pthread_unwind_buf_t *buf)
{
	void (*fn)(__pthread_unwind_buf_t *) = LIBC(__pthread_unwind_next);
	if (fn)
		fn(buf);
	raw_syscall3(SYS_exit, 0, 0, 0);
	__builtin_unreachable();
}

/* The loader's record of the processor's features (CPU_FEATURE_ACTIVE);
 * without it (glibc before 2.33) a record of none. */
FORK_PATH_LATE const struct cpuid_feature *__wrap___x86_get_cpuid_feature_leaf(unsigned int leaf)
{
	static const struct cpuid_feature no_features;
	const struct cpuid_feature *(*fn)(unsigned int) = LIBC(__x86_get_cpuid_feature_leaf);
	return fn ? fn(leaf) : &no_features;
}

/* dlvsym finds the object its caller is in (for RTLD_NEXT): called from
 * here, that is still the shim. */
void *__wrap_dlvsym(void *handle, const char *name, const char *version)
{
	void *(*fn)(void *, const char *, const char *) = LIBC(dlvsym);
	return fn ? fn(handle, name, version) : NULL;
}

/* syscall(): made here as libc makes it (six arguments, whatever the
 * call passed, and errno), with no import nor look-up. */
long __wrap_syscall(long number, ...);
long __wrap_syscall(long number, ...)
{
	va_list ap;
	va_start(ap, number);
	long a[6];
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	register long r10 __asm__("r10") = a[3];
	register long r8 __asm__("r8") = a[4];
	register long r9 __asm__("r9") = a[5];
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(number), "D"(a[0]), "S"(a[1]), "d"(a[2]), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* The objects resolve_before_fork reads the tables of at once, on the
 * stack of a thread calling fork (perhaps in a signal handler): past
 * them (or before libc), each slot is found alone (real_resolve_slot). */
#define FORK_OBJECTS_MAX 8

/* The parent's atfork prepare handler: every slot still left is found
 * before the first fork, once (real_lazy is cleared), so that no fork
 * child maps the tables and this code to find one, each child anew. */
static START_PATH void resolve_before_fork(void)
{
	if (!real_lazy || resolving)
		return;
	struct object_symbols objects[FORK_OBJECTS_MAX];
	unsigned count = 0;
	bool libc = false;
	const struct link_map *self = preloaded_self();
	for (const struct link_map *l = self ? self->l_next : NULL;
	     l && !libc && count < FORK_OBJECTS_MAX; l = l->l_next) {
		if (!object_symbols_read(l->l_addr, l->l_ld, &objects[count]))
			break;
		objects[count++].newest_default = true;
		libc = is_libc_name(l->l_name);
	}
	for (unsigned i = 0; i < ORIGINALS; i++) {
		if (slot_get(i))
			continue;
		const struct original_entry *e = &original_entries[i];
		const char *name = (const char *)&original_names + e->name;
		void *addr;
		if (libc && next_symbol_among(objects, count, name, e->hash, NULL, &addr) ==
				    SYMBOL_FOUND)
			slot_set(i, addr);
		else
			real_resolve_slot(i);
	}
	real_lazy = false;
}

static void say(const char *a, const char *b)
{
	char line[160];
	size_t n = 0;
	for (const char *s = a; *s && n < sizeof(line) - 2; s++)
		line[n++] = *s;
	for (const char *s = b; s && *s && n < sizeof(line) - 2; s++)
		line[n++] = *s;
	line[n++] = '\n';
	if (real.write)
		real.write(2, line, n);
}

/* The key made directly: libc's getrandom is a page of libc's code that
 * most programs never run. */
static START_PATH void seed_ids(void)
{
	uint8_t key[16];
	if (raw_syscall3(SYS_getrandom, (long)key, sizeof(key), GRND_NONBLOCK) !=
	    (long)sizeof(key)) {
		/* No entropy yet: pid, time and addresses still separate processes. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)raw_getpid();
		uint64_t b = (uint64_t)(uintptr_t)&ts ^ ((uint64_t)(uintptr_t)key << 17) ^
			     ((uint64_t)raw_getpid() << 40);
		memcpy(key, &a, 8);
		memcpy(key + 8, &b, 8);
	}
	id_generator_seed(&process.ids, key);
}

/* The offset from the thread pointer of the tid glibc keeps in a thread's
 * descriptor (its struct pthread, at the thread pointer on x86_64), which
 * the kernel writes in a fork child before fork returns there (glibc's
 * fork asks it to with CLONE_CHILD_SETTID): as glibc publishes it for
 * debuggers (libthread_db reads _thread_db_pthread_tid: the field's size
 * in bits, its count and its offset). Trusted only if the calling
 * thread's field holds the tid the kernel gives that thread; 0 otherwise,
 * and on another libc or architecture: the child asks the kernel. */
static uint16_t tid_field_find(void)
{
#if defined(__x86_64__)
	const struct link_map *l = loaded_objects();
	while (l && !is_libc_name(l->l_name))
		l = l->l_next;
	struct object_symbols libc;
	void *addr;
	if (!l || !object_symbols_read(l->l_addr, l->l_ld, &libc) ||
	    next_symbol_among(&libc, 1, "_thread_db_pthread_tid",
			      SYMBOL_HASH_LITERAL("_thread_db_pthread_tid"), "GLIBC_PRIVATE",
			      &addr) != SYMBOL_FOUND)
		return 0;
	uint32_t desc[3]; /* bits, count, offset */
	memcpy(desc, addr, sizeof(desc));
	if (desc[0] != 32 || desc[2] == 0 || desc[2] % 4 || desc[2] > UINT16_MAX - 4)
		return 0;
	int32_t tid;
	memcpy(&tid, (const char *)__builtin_thread_pointer() + desc[2], sizeof(tid));
	return tid == (int32_t)raw_syscall3(SYS_gettid, 0, 0, 0) ? (uint16_t)desc[2] : 0;
#else
	return 0;
#endif
}

/* What a fork child reads in place of a system call: where its pid lies
 * (tid_field_find). Learnt by the parent once, at its first fork: a
 * process that never forks pays nothing, a fork child that forks inherits
 * it. */
static void fork_facts_learn(void)
{
	process.tid_offset = tid_field_find();
	process.fork_facts_learned = true;
}

/* The fork child's pid: its one thread's tid, which the kernel wrote in
 * its thread descriptor (tid_field_find) as fork made it; asked of the
 * kernel (a system call, 0.5-1 us at a fork child's start here) where that
 * is not known. */
static FORK_PATH pid_t fork_child_pid(void)
{
	int32_t tid = 0;
	if (process.tid_offset)
		memcpy(&tid, (const char *)__builtin_thread_pointer() + process.tid_offset,
		       sizeof(tid));
	return tid > 0 ? tid : raw_getpid();
}

/* The parent has no handler: every page it writes at fork would be copied
 * at its next write (fork made them copy-on-write).
 * The thread's tid is its pid, cached here and not asked for (a system
 * call, 2-3 us on this project's VM, at a fork child's first line): glibc
 * runs atfork child handlers only in a fork() child, never in a vfork or
 * clone child, and only in the thread that called fork, the child's one
 * thread, whose tid the kernel makes the child's pid. log_forget_all
 * writes the tid already (the thread's TLS page is copied anyway). */
FORK_PATH void after_fork_child(void)
{
	process.pid = fork_child_pid();
	atomic_store_explicit(&process.threaded, false, memory_order_relaxed);
	atomic_store_explicit(&memory_shared, false, memory_order_relaxed);
	id_generator_after_fork(&process.ids, (uint32_t)process.pid);
	log_forget_all();
	thread_ctx.tid = process.pid;
	request_table_after_fork();
	epoll_map_after_fork();
	got_patch_after_fork();
	batch_forget();
	if (shim.audit)
		audit_after_fork();
}

bool is_stream_socket(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);
	return raw_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

bool is_accepted_socket(int fd)
{
	int domain = 0;
	socklen_t len = sizeof(domain);
	if (raw_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || !is_stream_socket(fd))
		return false;
	if (domain == AF_INET || domain == AF_INET6)
		return true;
	if (domain != AF_UNIX)
		return false;
	/* A unix stream socket whose own end has a name came from a listener;
	 * journald's stdout stream and socketpairs are unnamed on this side. */
	struct sockaddr_un addr;
	len = sizeof(addr);
	return raw_getsockname(fd, (struct sockaddr *)&addr, &len) == 0 &&
	       len > offsetof(struct sockaddr_un, sun_path);
}

/* fd's file's identity; *is_socket (if not NULL) says whether it is a
 * socket. raw_fstat: libc's wrapper lies on pages of libc's (two faults on
 * this VM) a process that never calls fstat would not touch. */
static START_PATH bool fd_identity(int fd, uint64_t *dev, uint64_t *ino, bool *is_socket)
{
	struct stat st;
	if (raw_fstat(fd, &st) != 0)
		return false;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	if (is_socket)
		*is_socket = S_ISSOCK(st.st_mode);
	return true;
}

/* The longest ids start-up sets: one "dev:ino" of 16 hex digits each,
 * comma before, per configured log descriptor, and the NUL. */
#define START_LOG_IDS_SIZE (CONFIG_MAX_LOG_FDS * (1 + 16 + 1 + 16) + 1)
_Static_assert(START_LOG_IDS_SIZE <= LOG_IDS_SIZE, "START_LOG_IDS_SIZE: more than LOG_IDS_SIZE");

/* The entry set_log_ids puts in place of an inherited one: in .data, on
 * the page the loader writes anyway (fork_hot.h); sized for start-up's
 * ids, not LOG_IDS_SIZE, so that the FORK_HOT globals after .data leave
 * more low descriptors' flags on that page. */
static char log_ids_entry[sizeof(LOG_IDS_VARIABLE "=") + START_LOG_IDS_SIZE] START_WRITTEN;

/* The environ set_log_ids makes when the variable was not inherited: a
 * page of .bss of its own, which only such a process touches (one fault,
 * as a mapping's page cost, without the mmap and the page of the library's
 * code __wrap_mmap lies on). An environment too large for it gets a
 * mapping. */
#define ENVIRON_PAGE_BYTES 4096
static char environ_page[ENVIRON_PAGE_BYTES] __attribute__((aligned(ENVIRON_PAGE_BYTES)))
LARGE_TABLE;

/* Sets REQID_LOG_IDS to ids without allocating: a program's first
 * allocation sets up malloc (a getrandom, two brk, page faults), which
 * setenv would make every process a shimmed parent did not start pay.
 * Inherited once, as by a program a shimmed parent exec'ed with other logs
 * (a CGI script, whose stdout is the server's pipe), the variable's slot
 * in environ points at log_ids_entry: no system call and no new page (a
 * mapping of its own cost such a process a mmap and a page fault). Else
 * the new environ is environ_page (or, too large, one mapping): the
 * array, then the entry's text. glibc's setenv copies an array it did not
 * make into one of its own, and unsetenv edits it in place; it is never
 * unmapped (getenv may be reading it). No memory: the environment stays
 * as it was. */
static START_PATH void set_log_ids(const char *ids)
{
	static const char name_eq[] = LOG_IDS_VARIABLE "=";
	size_t n = 0, copies = 0, first = 0, len = strlen(ids);
	for (; environ && environ[n]; n++)
		if (strncmp(environ[n], name_eq, sizeof(name_eq) - 1) == 0 && copies++ == 0)
			first = n;
	if (copies == 1) {
		memcpy(log_ids_entry, name_eq, sizeof(name_eq) - 1);
		memcpy(log_ids_entry + sizeof(name_eq) - 1, ids, len + 1);
		environ[first] = log_ids_entry;
		return;
	}
	size_t array = (n + 2) * sizeof(char *);
	size_t size = array + sizeof(name_eq) + len;
	char **env = (char **)environ_page;
	if (size > sizeof(environ_page) &&
	    (env = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) ==
		    MAP_FAILED)
		return;
	char *entry = (char *)env + array;
	memcpy(entry, name_eq, sizeof(name_eq) - 1);
	memcpy(entry + sizeof(name_eq) - 1, ids, len + 1);
	/* The first copy of the variable (getenv's) becomes the entry, and
	 * any later copy goes. */
	size_t k = 0;
	bool placed = false;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], name_eq, sizeof(name_eq) - 1) != 0)
			env[k++] = environ[i];
		else if (!placed)
			env[k++] = entry, placed = true;
	}
	if (!placed)
		env[k++] = entry;
	env[k] = NULL;
	environ = env;
}

/* The configured log descriptors that are open, are not connections handed
 * over by a parent, and (if the exec'ing parent said which files were its
 * logs) are one of those files. Their identities go into REQID_LOG_IDS for
 * children the exec hooks cannot see into (a vfork child adds only the
 * files on its log descriptors opened by a log path); skipped when the
 * environment already says exactly this, as it does in a program a
 * shimmed parent exec'ed with the same logs. */
static START_PATH void mark_log_fds(bool attached)
{
	const char *inherited = attached ? NULL : environment(LOG_IDS_VARIABLE);
	char ids[START_LOG_IDS_SIZE] = "";
	size_t len = 0;
	for (uint8_t i = 0; i < shim.config.log_fd_count; i++) {
		int fd = shim.config.log_fds[i];
		uint64_t dev, ino;
		bool is_socket;
		/* Only a socket can be a connection: a file, pipe or terminal
		 * costs no more system calls. */
		struct fd_state *st;
		if (!fd_identity(fd, &dev, &ino, &is_socket) || (is_socket && is_accepted_socket(fd)))
			continue;
		if (inherited && !log_ids_contain(inherited, dev, ino))
			continue;
		if (!(st = fd_state_made(fd)))
			continue;
		atomic_fetch_or(&st->flags, FD_LOG);
		if (!log_ids_contain(ids, dev, ino))
			len = log_ids_append(ids, len, sizeof(ids), dev, ino);
	}
	if (!attached && (!inherited || strcmp(inherited, ids) != 0))
		set_log_ids(ids);
}

/* A program exec'ed for a request (REQID_REQUEST_ID, set by a shimmed
 * parent) writes its lines with that request's id until it serves
 * connections of its own. */
static START_PATH void adopt_exec_request(void)
{
	const char *id = environment(REQUEST_VARIABLE);
	if (!id || !request_id_is_valid_at_start(id, strlen(id)))
		return;
	/* Its trace, as the parent passed it: the parent's span is the
	 * program's too; a missing or invalid one starts a new trace. */
	const char *tp = environment(TRACEPARENT_VARIABLE);
	const char *ts = environment(TRACESTATE_VARIABLE);
	struct traceparent parent;
	struct trace_plan trace;
	bool valid = tp && traceparent_parse(tp, strlen(tp), &parent);
	trace_plan_start(&trace, valid ? &parent : NULL, id, strlen(id), false, &process.ids);
	if (valid)
		trace_plan_give_span(&trace, parent.parent_id);
	char state[TRACESTATE_MAX];
	int ts_len = valid && ts && strlen(ts) <= TRACESTATE_MAX
			     ? tracestate_normalize(ts, strlen(ts), state) : 0;
	uint32_t pin; /* the process's request, pinned for its life */
	shim.exec_request = request_table_add(id, strlen(id), NULL, 0, 0, &trace, state,
					      ts_len > 0 ? (size_t)ts_len : 0, &pin);
}

FORK_PATH_LATE size_t current_log_ids(char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int fd = 0; fd < LOG_IDS_SCAN; fd++) {
		uint64_t dev, ino;
		if ((fd_class(fd) & FD_LOG) && fd_identity(fd, &dev, &ino, NULL) &&
		    !log_ids_contain(buf, dev, ino))
			len = log_ids_append(buf, len, size, dev, ino);
	}
	return len;
}

/* What pthread_atfork does (its libc_nonshared.a stub, which the linker
 * puts at the far end of the library's code, where it cost a process a
 * page of its own at start). */
bool fork_handlers_add(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	int (*fn)(void (*)(void), void (*)(void), void (*)(void), void *) = LIBC(__register_atfork);
	return fn && fn(prepare, parent, child, __dso_handle) == 0;
}

/* The parent's atfork prepare handler: each fork takes one value of the
 * parent's id counter, so that two children under one reused pid start
 * from different counters (id_generator_after_fork; glibc holds its atfork
 * lock from here until the fork's handlers are done, so every fork's child
 * sees a value of its own). The originals still left are found, and a
 * process that accepted a connection copies the library's code pages,
 * once each, and installs the fatal-signal handlers, so that no child does
 * either (a child per connection that writes a partial line made twelve
 * sigaction calls and touched a fresh stack page). */
void before_fork(void)
{
	id_reserve(&process.ids, 1);
	if (!process.fork_facts_learned)
		fork_facts_learn();
	resolve_before_fork();
	accepted_fork_prepare();
	if (__atomic_load_n(&shim.accepted, __ATOMIC_RELAXED))
		fatal_signal_flush_ensure();
}

bool fork_handler_registered(void)
{
	static bool registered START_WRITTEN;
	if (!registered)
		registered = fork_handlers_add(before_fork, NULL, after_fork_child);
	return registered;
}

START_PATH unsigned shim_activate(config_lookup lookup, bool attached)
{
	if (!real_resolve() || !real_complete)
		return ACTIVATE_NO_LIBC;
	unsigned warnings = config_parse(&shim.config, lookup);
	if (warnings && attached)
		return warnings;
	for (unsigned bit = 1; bit != 0; bit <<= 1)
		if (warnings & bit)
			say("reqid: ignoring invalid ", config_warning_variable(bit));
	if (shim.config.disabled)
		return 0;
	header_matcher_init(&shim.matcher, &shim.config);
	http_response_set_header(shim.config.response_header, shim.config.response_header_len);
	shim.style.format = shim.config.format;
	shim.style.field = shim.config.field;
	shim.style.field_len = shim.config.field_len;
	shim.style.field_count = shim.config.field_count;
	memcpy(shim.style.fields, shim.config.fields, sizeof(shim.style.fields));
	shim.traced_fields = false;
	for (uint8_t i = 0; i < shim.config.field_count; i++)
		shim.traced_fields |= shim.config.fields[i] != FIELD_REQUEST_ID;
	shim.syslog_style = shim.style;
	shim.syslog_style.cee = true;
	seed_ids();
	if (!fork_handler_registered())
		return ACTIVATE_NO_LIBC;
	mark_log_fds(attached);
	if (!attached)
		adopt_exec_request();
	process.pid = raw_getpid();
	/* At start the handlers for fatal signals wait until a line may be
	 * pending or a thread starts (fatal_signal_flush_ensure); attached,
	 * the program's threads run already: they go in now. */
	if (attached) {
		atomic_store(&fatal_flush_installed, false);
		install_fatal_signal_flush();
	}
	/* Audit records name every line's call site: the unwinder is loaded
	 * now, while the program has one thread. */
	shim.audit = shim.config.audit_dir_len > 0 && !attached;
	if (shim.audit) {
		call_chain_load(true);
		audit_open();
	}
	shim.active = true;
	return 0;
}

/* Started by `reqid attach`, the library waits for reqid_attach
 * (attach.c) and its settings: the program's environment is not its. */
__attribute__((constructor)) static void shim_start(int argc, char **argv, char **envp)
{
	int saved = errno;
	if (!loader_debug)
		loader_debug = debug_record_at_start(argc, argv, envp);
	if (preloaded_self()) {
		struct setting_entries settings;
		setting_entries_read(&settings);
		start_settings = &settings;
		shim_activate(environment, false);
		start_settings = NULL;
	}
	errno = saved;
}

/* A process that never made a line slot, an output backlog or a stdio
 * stream mark (reclaimed stdio bytes make slots) has no line pending: it
 * makes no system call and runs no more of the library's code at exit than
 * this (a fault per 64 KiB of code). */
__attribute__((destructor)) static void shim_stop(void)
{
	if (!shim.active ||
	    !STATE_WAS_MADE(MADE_SLOTS | MADE_BACKLOGS | MADE_STREAM_MARKS) ||
	    raw_getpid() != process.pid)
		return;
	stdio_reclaim_all();
	if (!STATE_WAS_MADE(MADE_SLOTS | MADE_BACKLOGS))
		return;
	log_flush_all();
	ctx_boundary();
}

FORK_PATH bool config_is_log_fd(int fd)
{
	for (uint8_t i = 0; i < shim.config.log_fd_count; i++)
		if (shim.config.log_fds[i] == fd)
			return true;
	return false;
}
