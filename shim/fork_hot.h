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
 * shim/layout.ld puts these sections right after .data, on the page the
 * loader writes as it maps the library (zeroing it past .data's bytes): a
 * process starting writes them without a fault of its own. FORK_HOT_FIRST
 * puts the per-process state (shim_init.h: pid, id generator) first, the
 * FORK_HOT globals follow, and FORK_HOT_LAST puts the descriptor flags
 * (conn_table.h) right after them: their first entries, the low
 * descriptors (stdio, whose log flags every process sets at start; a fork
 * server's connection, which its child dup2()s onto 0 and 1), share that
 * page, and a child writing them or a process starting copies no page
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

/* The code a fork child runs for the connection it serves: the atfork
 * handler, the hooks a request's reads, writes, sendfile, log lines, dup2,
 * open, close and exec go through with the logic under them, and _exit.
 * A process maps code 64 KiB at a time, aligned, a fault each, and a fork
 * child maps it anew (on this project's VM a fault costs 9-15 us); spread
 * over the library, this code cost a busybox httpd child four windows and
 * the PLT's. FORK_PATH on a function's
 * definition puts it in a section that shim/layout.ld places alone on a
 * 64 KiB boundary, so the child maps it with one fault; the link fails if
 * it outgrows the window. Mark only what such a child runs: the calls of
 * a long-lived server (epoll, accept, what listen prepares) stay out
 * (LOOP_PATH marks those), and so do the TLS and client sides. */
#define FORK_PATH __attribute__((section(".text.hot.reqid_fork_path")))

/* FORK_PATH code that a fork child runs for some requests only: a
 * response or request head in an unusual form (parsed byte by byte), and
 * exec (once, as the child leaves). shim/layout.ld puts it after the rest
 * of the window: in a child that runs none of it, the code it does run
 * spans fewer of the window's 4 KiB pages, and on this project's VM the
 * first touch of each costs a fork child some 4-5 us even where fork
 * copied its page entry. */
#define FORK_PATH_LATE __attribute__((section(".text.hot.reqid_fork_path_late")))

/* The code a long-lived server runs for its connections and requests
 * that a fork child does not: accept and the batch it opens, the epoll
 * calls with the epoll map and event queue, the event-stack walker with
 * the CFI it reads, and the lines an event loop holds until their request
 * is known (their slots, their order, the request line they quote).
 * Spread over the library (in the rest of its code, next to attach, GOT
 * patching, audit, exec, syslog, the printf family and start-up), an
 * nginx worker holding 10,000 connections mapped all three of the
 * library's other 64 KiB windows for some 34 KB of it. LOOP_PATH puts it
 * in a section that shim/layout.ld places alone on a 64 KiB boundary,
 * next to FORK_PATH's window: such a server maps two windows of code,
 * this one and the fork child's (whose hooks it runs too); the link fails
 * if it outgrows its window. GCC splits no cold part off a function with
 * a section of its own, so an error path stays in the window too. Mark
 * only what such a server runs per connection, request or line, or once
 * as it starts serving (its epoll set, the fatal-signal flush the first
 * held line installs), and what a fork server's child runs beyond
 * FORK_PATH's full window (its line slots' drain at exit, _Fork's and
 * vfork's hooks: fork_copies_code copies both windows' entries to it):
 * never what only start-up, attach or audit run, nor what FORK_PATH marks
 * already. Each such function starts a
 * 64-byte cache line: a function's first bytes run on every call, the
 * previous function's last ones seldom (GCC puts the cold blocks last), so
 * a request fills fewer lines (nginx under callgrind --cache-sim: 3.5
 * fewer first-level instruction-cache misses a request for some 2.5 KB of
 * the window). */
#define LOOP_PATH __attribute__((section(".text.hot.reqid_loop_path"), aligned(64)))

/* The code every process runs in the shim's constructor: START_PATH puts
 * it with the constructor itself, in the section the default linker script
 * places first, in the library's first 64 KiB of code, so that start-up
 * maps that window and no other (it cost a second fault of its own). */
#define START_PATH __attribute__((section(".text.startup.reqid_start_path")))

/* A fork child maps anew every page of a file's private mapping that the
 * fork did not copy, a fault each 64 KiB of code it runs, and fork copies
 * a mapping's page entries only if the mapping holds an anonymous page;
 * each copied entry costs the fork and the child's exit again (some 0.12
 * us a fork and exit here), whether the child runs that code or not.
 * Called as a process that accepted a connection forks for the first time
 * (conn_table.c's accepted_fork_prepare: a fork server's parent, before
 * its first child; not if it has threads): the library's last two windows
 * of code (LOOP_PATH's and FORK_PATH's) become a mapping of their own,
 * which gets one by a write of its first byte, the byte that is there,
 * through /proc/self/mem: from then on its children find mapped what
 * their parent mapped of those windows, and nothing of the rest (start-up,
 * attach, the headers: a child that binds a symbol lazily or drains
 * lines at exit maps the first window then, a fault). A process that never
 * forks after accepting (a pre-forked worker, nginx's worker) never pays
 * it (when it wrote two pages, it cost such a worker's first request some
 * 100 us). Called once per process; a failure leaves the mapping as it
 * was. */
void fork_copies_code(void) __attribute__((visibility("hidden")));

/* The shim's atfork prepare handler: fork_copies_code, at the first fork of
 * a process that accepted a connection. */
void accepted_fork_prepare(void) __attribute__((visibility("hidden")));

/* The shim's handlers around a fork (shim_init.c), which glibc runs for
 * fork() as atfork handlers, and the _Fork hook (hook_process.c) itself:
 * before_fork in the parent, after_fork_child in the child's one thread. */
void before_fork(void) __attribute__((visibility("hidden")));
void after_fork_child(void) __attribute__((visibility("hidden")));

#endif
