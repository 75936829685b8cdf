/*
 * map_once.h - a large table mapped the first time something needs it, so a
 * process pays memory only for the tables it uses (connection entries, the
 * epoll map, the outbound pool); and emptied at detach (table_release).
 *
 * Any thread may ask at once: each maps its own, the first to publish it
 * wins and the others unmap theirs. Never blocks and keeps errno; a failed
 * mapping is reported as NULL (the caller goes without the table).
 */
#ifndef REQID_MAP_ONCE_H
#define REQID_MAP_ONCE_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "page_bytes.h"

/* The table published in *slot, size bytes of zeroes mapped and published
 * first if there is none; NULL if mapping fails. */
static inline void *map_once(void *_Atomic *slot, size_t size)
{
	void *table = atomic_load_explicit(slot, memory_order_acquire);
	if (table)
		return table;
	int saved = errno;
	table = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (table == MAP_FAILED) {
		table = NULL;
	} else {
		void *published = NULL;
		if (!atomic_compare_exchange_strong_explicit(slot, &published, table,
							     memory_order_acq_rel,
							     memory_order_acquire)) {
			munmap(table, size); /* another thread's won */
			table = published;
		}
	}
	errno = saved;
	return table;
}

/* Empties a table whose zeroes mean empty (an attached process's tables,
 * at detach): the pages wholly inside it go back to the kernel, which
 * reads them as zeroes again and counts them resident no more; the bytes
 * at its ends on pages it shares are set to zero (and every byte, when the
 * kernel will not take its pages back). Not for a table a hook
 * could read as anything but empty once it is zero. Keeps errno. */
static inline void table_release(void *table, size_t size)
{
	int saved = errno;
	uintptr_t start = (uintptr_t)table, end = start + size;
	uintptr_t first = (start + PAGE_BYTES - 1) & ~(uintptr_t)(PAGE_BYTES - 1),
		  last = end & ~(uintptr_t)(PAGE_BYTES - 1);
	if (first >= last) {
		memset(table, 0, size);
	} else {
		memset(table, 0, first - start);
		/* Locked pages (mlockall) refuse MADV_DONTNEED: written over. */
		if (madvise((void *)first, last - first, MADV_DONTNEED) != 0)
			memset((void *)first, 0, last - first);
		memset((void *)last, 0, end - last);
	}
	errno = saved;
}

/* table_release for a table map_once mapped: its mapping ends on the page
 * its last byte is on, which holds nothing else, so that page goes back
 * too rather than having its bytes zeroed (which, on a kernel that maps no
 * shared zero page, gives a page never touched a page of its own). */
static inline void mapped_table_release(void *table, size_t size)
{
	table_release(table, (size + PAGE_BYTES - 1) & ~(size_t)(PAGE_BYTES - 1));
}

/* Puts a table whose zeroes mean empty, and which detach empties anyway
 * (its owner's release, at forget_attached_state), in a section of such
 * tables alone (shim/layout.ld: page-aligned, first and last byte on pages
 * of their own), which forget_attached_state then empties whole
 * (table_release): the pages at the tables' ends, shared with other tables
 * of the section only, go back too, rather than being zeroed and kept. No
 * table a hook reads as anything but empty once it is zero, and nothing
 * that must outlive detach (originals' pointers, GOT records, the attach
 * generation) ever goes here; the attach status does, whose zeroes say not
 * attached. */
#define DETACH_ZEROED __attribute__((section(".bss.reqid_detach_zeroed")))
extern char reqid_detach_zeroed_start[], reqid_detach_zeroed_end[]
	__attribute__((visibility("hidden")));

#endif