/*
 * page_bytes.h - the size of a page: 4 KiB, the only one x86_64 has, and
 * the shim is x86_64 only (raw_syscall.h). One constant for the tables
 * laid out in whole pages, the rounding for mprotect and the pagemap's
 * index alike: a table's layout is fixed at build, so the size must never
 * be read from the running system for some uses and not others.
 */
#ifndef REQID_PAGE_BYTES_H
#define REQID_PAGE_BYTES_H

#define PAGE_BYTES 4096u

#endif
