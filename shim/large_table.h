/*
 * large_table.h - where a large table goes of which a process touches only
 * a few pages (slots, caches, per-descriptor records), and one only some
 * programs use (full-pipe backlogs, posix_spawn's environment, system()'s
 * saved signal actions): in a section of such tables alone, after the
 * library's other variables (shim/layout.ld).
 *
 * Spread among them, the small variables that outlive a detach (settings,
 * originals' pointers, generations, the fork and change counts) each
 * lay on a page of their own between two tables, and kept it resident
 * after detach; together they fill most of one page after the shim's
 * settings, conn_chunks' first entry with them (BSS_TAIL: the .bss before
 * this section ended at 0x117f40 in a build of 2026-12-07 night, that
 * entry at 0x113f40: 192 bytes more of small variables put it on a page of
 * its own, which test_attach's nginx kept_rss shows). Never for a small
 * variable every process writes, nor for one the fork-hot page holds
 * (fork_hot.h).
 */
#ifndef REQID_LARGE_TABLE_H
#define REQID_LARGE_TABLE_H

#define LARGE_TABLE __attribute__((section(".bss.reqid_large")))

/* A table of which a process writes its first entry only (conn_chunks: the
 * chunk of fds below 512), at the end of .bss, right after the small
 * variables (the linker sorts .bss.* after .bss; LARGE_TABLE's section is
 * page-aligned, which would give that entry a page of its own): its first
 * entry shares their page, where in .bss's middle it kept a page of the
 * shim's settings resident after detach, one whose bytes (the unused log
 * path globs) nothing else writes. */
#define BSS_TAIL __attribute__((section(".bss.reqid_tail")))

#endif
