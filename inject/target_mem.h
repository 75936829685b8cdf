/*
 * target_mem.h - reading and writing the target's memory (see target_mem.c).
 */
#ifndef REQID_INJECT_TARGET_MEM_H
#define REQID_INJECT_TARGET_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opens /proc/PID/mem for reading and writing; -1 after fail(). */
int target_mem_open(pid_t pid);

/* Copy len bytes; 0, or -1 with errno set (EIO: the address is not
 * mapped, ESRCH/0 bytes: the target is gone). */
int target_mem_read(int mem, uint64_t addr, void *buf, size_t len);
int target_mem_write(int mem, uint64_t addr, const void *buf, size_t len);

#endif
