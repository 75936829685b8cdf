/*
 * large_table.h - where a large table goes of which a process touches only
 * a few pages (slots, caches, per-descriptor records): in a section of such
 * tables alone, after the library's other variables (shim/layout.ld).
 *
 * Spread among them, the small variables that outlive a detach (settings,
 * originals' pointers, generations, the fork and change counts) each
 * lay on a page of their own between two tables, and kept it resident
 * after detach; together they fill a few pages. Never for a small
 * variable, nor for one the fork-hot page holds (fork_hot.h).
 */
#ifndef REQID_LARGE_TABLE_H
#define REQID_LARGE_TABLE_H

#define LARGE_TABLE __attribute__((section(".bss.reqid_large")))

#endif
