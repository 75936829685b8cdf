/*
 * tls_bind.c - SSL object to socket, in an open-addressing table keyed on
 * the object's address (see tls_bind.h). A slot is claimed with a
 * compare-and-swap of its key; a freed object's slot becomes a tombstone,
 * which a later object may claim. Lookups probe at most PROBES slots.
 */
#include "tls_bind.h"
#include "large_table.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define BINDS 4096 /* a power of two */
#define PROBES 32
#define GONE ((uintptr_t)1) /* a tombstone: no SSL object is at address 1 */

struct bind {
	_Atomic uintptr_t ssl;
	_Atomic int fd1; /* fd + 1; 0: not known yet */
};

static struct bind binds[BINDS] LARGE_TABLE;

static size_t home(uintptr_t key)
{
	return (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> 52) & (BINDS - 1);
}

/* ssl's slot, or NULL. */
static struct bind *find(uintptr_t key)
{
	for (size_t i = 0, at = home(key); i < PROBES; i++, at = (at + 1) & (BINDS - 1)) {
		uintptr_t k = atomic_load_explicit(&binds[at].ssl, memory_order_acquire);
		if (k == key)
			return &binds[at];
		if (k == 0)
			return NULL;
	}
	return NULL;
}

int tls_bind_fd(const void *ssl)
{
	struct bind *b = find((uintptr_t)ssl);
	return b ? atomic_load_explicit(&b->fd1, memory_order_relaxed) - 1 : -1;
}

void tls_bind_set(const void *ssl, int fd)
{
	uintptr_t key = (uintptr_t)ssl;
	struct bind *b = find(key);
	for (size_t i = 0, at = home(key); !b && i < PROBES; i++, at = (at + 1) & (BINDS - 1)) {
		uintptr_t k = atomic_load_explicit(&binds[at].ssl, memory_order_relaxed);
		if ((k == 0 || k == GONE) &&
		    atomic_compare_exchange_strong_explicit(&binds[at].ssl, &k, key,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			b = &binds[at];
	}
	if (b)
		atomic_store_explicit(&b->fd1, fd + 1, memory_order_relaxed);
}

/* Every slot of ssl goes (two threads that learnt it at once may have
 * claimed one each): an object allocated at its address later starts
 * unknown. */
void tls_bind_forget(const void *ssl)
{
	struct bind *b;
	while ((b = find((uintptr_t)ssl)) != NULL) {
		atomic_store_explicit(&b->fd1, 0, memory_order_relaxed);
		atomic_store_explicit(&b->ssl, GONE, memory_order_release);
	}
}
