/*
 * proc_maps.c - reads a process's mappings from /proc/PID/maps, one line
 * at a time, for the parts of reqid-inject that look for a mapping (libc,
 * a previous injection's pages, the file behind an address), and where
 * the main thread's stack started (/proc/PID/stat). Reads those files
 * only; a line it cannot parse is passed over, never guessed at.
 */
#include "proc_maps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int maps_open(struct maps_reader *r, pid_t pid)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	r->file = fopen(path, "re");
	r->line = NULL;
	r->cap = 0;
	return r->file ? 0 : -1;
}

int maps_next(struct maps_reader *r, struct maps_entry *e)
{
	while (getline(&r->line, &r->cap, r->file) > 0) {
		char *line = r->line;
		unsigned maj, min;
		int at = 0;

		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &e->start, &e->end, e->perms,
			   &e->offset, &maj, &min, &e->inode, &at) != 7 || !at)
			continue;
		e->dev = makedev(maj, min);
		e->path = line + at;
		return 1;
	}
	return 0;
}

int maps_close(struct maps_reader *r)
{
	int err = ferror(r->file) ? errno : 0;

	fclose(r->file);
	free(r->line);
	if (!err)
		return 0;
	errno = err;
	return -1;
}

/* Where the kernel started the main thread's stack (/proc/PID/stat's
 * startstack, field 28), 0 if unknown. */
uint64_t proc_start_stack(pid_t pid)
{
	char path[64], text[1024];
	uint64_t at = 0;
	ssize_t n;
	char *p;
	int fd, field;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = 0;
	p = strrchr(text, ')');	/* the name before it may hold anything */
	for (field = 2; p && field < 28; field++)
		p = strchr(p + 1, ' ');
	if (p)
		at = strtoull(p + 1, NULL, 10);
	return at;
}

uint64_t proc_mapping_end(pid_t pid, uint64_t addr)
{
	struct maps_reader maps;
	struct maps_entry e;
	uint64_t end = 0;

	if (maps_open(&maps, pid) < 0)
		return 0;
	while (!end && maps_next(&maps, &e))
		if (e.start <= addr && addr < e.end)
			end = e.end;
	maps_close(&maps);
	return end;
}
