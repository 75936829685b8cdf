/*
 * fork_hot.h - where the globals go that a fork child, or its parent,
 * writes for every connection (the shim's pid and ids, request serials,
 * the count of copies of connections), or that every fork child reads
 * (the GOT patcher's lock, the attach generation, the first valid
 * request serial) and every line reads (whether output takes the long
 * way). A page the parent never touched costs a child a fault even to
 * read.
 *
 * After fork every page either process first writes is copied: a fault
 * and a copy each (about 10 us on this project's VM). Globals marked
 * FORK_HOT share one section, so the linker lays them side by side and a
 * child copies one page for all of them. Never mark anything large or
 * rarely written.
 *
 * FORK_HOT_FIRST puts the per-process state (shim_init.h: pid, id
 * generator), page-aligned, in a section whose name sorts first (the
 * library links with --sort-section=name), so the FORK_HOT globals follow
 * it on its page whatever the order of files. FORK_HOT_LAST puts the
 * descriptor flags (conn_table.h) right after them: their first entries,
 * the low descriptors (stdio, whose log flags every process sets at start;
 * a fork server's connection, which its child dup2()s onto 0 and 1), share
 * that page, and a child writing them or a process starting copies no page
 * more for them.
 *
 * START_WRITTEN marks small globals every process reads and then writes as
 * it starts: they go to .data, not .bss. .data is small and its page is
 * written by the loader anyway (it zeroes the rest of the page after
 * .data's bytes from the file), so they cost no fault of their own (in
 * .bss, two: the first read maps the zero page, the first store copies
 * it).
 */
#ifndef REQID_FORK_HOT_H
#define REQID_FORK_HOT_H

#define FORK_HOT __attribute__((section(".bss.reqid_fork_hot.1")))
#define FORK_HOT_FIRST __attribute__((section(".bss.reqid_fork_hot.0")))
#define FORK_HOT_LAST __attribute__((section(".bss.reqid_fork_hot.2")))
#define START_WRITTEN __attribute__((section(".data.reqid_start")))

/* The code a fork child runs in the shim's atfork handler, and at _exit:
 * FORK_PATH on a function's declaration puts it in a section the default
 * linker script places right after the cold start-up code, in the
 * library's first 64 KiB of code. A process maps code 64 KiB at a time, a
 * fault each, and a fork child maps it anew: spread over the files it is
 * defined in, this code cost a child three of them. */
#define FORK_PATH __attribute__((section(".text.hot.reqid_fork_path")))

/* The code every process runs in the shim's constructor: START_PATH puts
 * it with the constructor itself, in the section the default linker script
 * places first, so that start-up maps the library's first 64 KiB of code
 * and no other (it cost a second fault of its own). */
#define START_PATH __attribute__((section(".text.startup.reqid_start_path")))

#endif
