/*
 * resident_pages.h - which pages of the target's C library and loader are
 * resident before the injection touches any (see resident_pages.c).
 */
#ifndef REQID_INJECT_RESIDENT_PAGES_H
#define REQID_INJECT_RESIDENT_PAGES_H

#include <sys/types.h>

/* "REQID_RESIDENT_BEFORE=START-END:BITS,..." for each read-only private
 * file mapping in pid, those of libc.so.6 and of the loader (ld-linux*)
 * first, as many as fit in 4 KiB: START and END its addresses in hex, BITS
 * one hex digit for each four of its pages in order, page 4k+j resident
 * at bit j of digit k. Malloc'd; NULL when pid's pagemap or maps cannot be
 * read (nothing to tell). */
char *resident_pages_line(pid_t pid);

#endif
