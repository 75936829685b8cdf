/*
 * proc_maps.h - a process's mappings as /proc/PID/maps lists them (see
 * proc_maps.c).
 */
#ifndef REQID_INJECT_PROC_MAPS_H
#define REQID_INJECT_PROC_MAPS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* One line of the file. */
struct maps_entry {
	uint64_t start, end, offset;
	char perms[5];		/* "r-xp" */
	dev_t dev;
	unsigned long inode;	/* 0: no file */
	const char *path;	/* "" for none; valid until the next maps_next */
};

struct maps_reader {
	FILE *file;
	char *line;
	size_t cap;
};

/* Opens /proc/PID/maps: 0, or -1 with errno set. */
int maps_open(struct maps_reader *r, pid_t pid);

/* The next mapping, in the file's order, into e: 1, or 0 at the end or
 * when a read fails (maps_close tells). */
int maps_next(struct maps_reader *r, struct maps_entry *e);

/* Closes the file: 0, or -1 with errno set if a read failed. */
int maps_close(struct maps_reader *r);

/* Where the kernel started the main thread's stack, the address of argc
 * (/proc/PID/stat's startstack, field 28); 0 if unknown. */
uint64_t proc_start_stack(pid_t pid);

/* The end of pid's mapping that holds addr; 0 if none does. */
uint64_t proc_mapping_end(pid_t pid, uint64_t addr);

#endif
