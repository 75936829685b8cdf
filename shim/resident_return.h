/*
 * resident_return.h - at detach, give back the file pages attach made
 * resident (see resident_return.c).
 *
 * Attach reads pages of the program's files that it had not touched: the
 * GOT patcher the dynamic sections, relocations and symbol tables of every
 * module, the unwinder their unwind tables, and the shim's own code and
 * libunwind's are mapped anew. They are clean and can be read again from
 * the file, but they count in the program's resident memory until the
 * kernel reclaims them. Only for the injector's thread: opens /proc files,
 * maps memory and may take a while; never from a hook.
 */
#ifndef REQID_RESIDENT_RETURN_H
#define REQID_RESIDENT_RETURN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Notes which pages of the process's read-only private file mappings are
 * resident now (replacing an earlier note), less those that before, the
 * value of a REQID_RESIDENT_BEFORE line (resident_return.c) or NULL, says
 * were not resident before the injection. Keeps errno. */
void resident_snapshot(const char *before) __attribute__((visibility("hidden")));

/* Drops every page of a read-only private file mapping that maps its file's
 * page (never a private copy) and was not resident at the snapshot, the
 * shim's own file's pages included but for its code, and forgets the
 * snapshot. Without a snapshot it does nothing. Keeps errno. */
void resident_return(void) __attribute__((visibility("hidden")));

/* Code that runs after the shim's own code pages were dropped: it lies in
 * a section of its own, whose pages are kept, and calls nothing outside
 * it (a page touched after its drop comes back with its neighbours: the
 * kernel maps up to 64 KB around a file page fault). */
#define RESIDENT_LAST_CODE __attribute__((section("reqid_last_text"), noinline))

/* Drops the shim's own code pages resident_return found resident, but for
 * those of RESIDENT_LAST_CODE (resident_late_drop, or a reconfigure whose
 * attach failed). */
void resident_return_own_code(void) __attribute__((visibility("hidden"))) RESIDENT_LAST_CODE;

/* Threads inside a wait a hook made (epoll, poll, select) of a process
 * `reqid attach` loaded the library into: the late drop drops the shim's
 * code once none is (resident_late_drop). Counted only there
 * (shim.loaded_by_attach): a preloaded library is never detached. */
extern _Atomic int hooked_waits __attribute__((visibility("hidden")));

/* Starts a thread of the process's own (raw clone, every signal blocked,
 * no libc) that waits for the calling thread to exit and then (bounded)
 * for no thread to be inside a hooked wait, drops the shim's own code
 * (resident_return_own_code), then the pages of libc's code that were not
 * resident at the snapshot and map their file's page, and exits: the
 * calling thread's way out (pthread_detach, start_thread's freeing of its
 * resources) runs libc code the program never ran, mapped again with its
 * neighbours after resident_return. Only after resident_return, by the
 * thread about to exit; when resident_return noted no libc code or a
 * thread of an earlier call still runs, it drops the shim's own code
 * itself and starts none. Keeps errno. */
void resident_late_drop(void) __attribute__((visibility("hidden"))) RESIDENT_LAST_CODE;

/* Waits (at most 100 ms) until the thread of an earlier resident_late_drop
 * has exited, telling it to wait no longer for hooked waits: before a
 * snapshot, and before threads are counted. */
void resident_late_drop_wait(void) __attribute__((visibility("hidden")));

/* Sets held[i] to whether page i of the count pages from addr (page
 * aligned) holds data: present, or swapped out (pagemap's bits 63 and
 * 62), which mincore calls not resident; where pagemap cannot be read (a
 * process that gave up root), as mincore says on a system without swap;
 * else every page, and every page when count is over PAGES_HELD_MAX. A
 * page neither holds only zeroes, and reading it would make it resident
 * (or map the zero page there). Only for detach's thread. Keeps errno. */
#define PAGES_HELD_MAX 16
void resident_pages_held(const void *addr, size_t count, bool *held)
	__attribute__((visibility("hidden")));

/* Forgets the snapshot (an attach that failed). */
void resident_forget(void) __attribute__((visibility("hidden")));

#endif
