/*
 * resident_pages.c - which pages of the target's read-only file mappings
 * are resident before the injection touches any, for `reqid attach`
 * (reqid-inject -p): the shim notes the pages resident at attach so that
 * detach gives back the others (shim/resident_return.c), but by then the
 * injection has run libc and loader code in the target (pthread_create on
 * the borrowed thread, dlopen on the fresh one, whose symbol look-ups read
 * the program's and its libraries' symbol tables), and the kernel maps up
 * to 64 KiB of a file around each page touched. And a process that gave
 * up root cannot read its own pagemap: without this line the shim counts
 * every page of a mapping that held any as resident at attach (Apache's
 * children kept 36-68 KB of apache2's relocations, which the GOT patcher
 * read: a forked child maps its parent's file pages only as it touches
 * them). The line this makes is read before the first remote call, and
 * the shim counts as resident at attach only the pages of the mappings it
 * lists as resident then; libc's and the loader's come first, and
 * mappings past LINE_MAX_BYTES are left out (the shim's own note stands
 * for them).
 *
 * Reads /proc/PID/maps and /proc/PID/pagemap only; must never write to
 * the target. A page it cannot read counts as resident (kept).
 */
#include "resident_pages.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc_maps.h"

#define PAGE 4096u
#define PRESENT (1ull << 63)
/* Beyond this, the rest are left out (the shim's note stands for them):
 * with the other settings it must fit the shim's SETTINGS_MAX (8 KiB).
 * Apache's children (60 mappings, 1,423 pages) take 2 KB. */
#define LINE_MAX_BYTES 4096

/* Whether e is a read-only private file mapping. */
static int read_only_file(const struct maps_entry *e)
{
	return e->inode != 0 && e->perms[0] == 'r' && e->perms[1] == '-' && e->perms[3] == 'p';
}

/* Whether e is one of the C library or loader, which the injection runs. */
static int runs_injection(const struct maps_entry *e)
{
	const char *base = strrchr(e->path, '/');

	if (!base)
		return 0;
	base++;
	return strncmp(base, "libc.so.6", 9) == 0 || strncmp(base, "ld-linux", 8) == 0;
}

/* Appends "START-END:BITS" for e to line (its first *len bytes written,
 * the name first; room bytes); 0, or -1 if it does not fit. */
static int append_mapping(int pagemap, const struct maps_entry *e, char *line, size_t *len,
			  size_t room)
{
	size_t pages = (size_t)((e->end - e->start) / PAGE);
	size_t at = *len;
	int n = snprintf(line + at, room - at, "%s%llx-%llx:", line[at - 1] == '=' ? "" : ",",
			 (unsigned long long)e->start, (unsigned long long)e->end);

	if (n < 0 || (size_t)n >= room - at || (pages + 3) / 4 >= room - at - (size_t)n) {
		line[at] = '\0';
		return -1;
	}
	at += (size_t)n;
	uint64_t *entries = calloc(pages, sizeof *entries);
	ssize_t got = entries ? pread(pagemap, entries, pages * sizeof *entries,
				      (off_t)(e->start / PAGE * sizeof *entries)) : -1;
	size_t read_pages = got > 0 ? (size_t)got / sizeof *entries : 0;

	for (size_t first = 0; first < pages; first += 4) {
		unsigned digit = 0;

		for (size_t j = 0; j < 4 && first + j < pages; j++)
			if (first + j >= read_pages || (entries[first + j] & PRESENT))
				digit |= 1u << j;
		line[at++] = "0123456789abcdef"[digit];
	}
	free(entries);
	line[at] = '\0';
	*len = at;
	return 0;
}

char *resident_pages_line(pid_t pid)
{
	static const char name[] = "REQID_RESIDENT_BEFORE=";
	struct maps_reader maps;
	struct maps_entry e;
	char path[64], *line;
	size_t len = 0;
	int pagemap;

	snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap < 0)
		return NULL;
	line = malloc(LINE_MAX_BYTES);
	if (!line || maps_open(&maps, pid) < 0) {
		free(line);
		close(pagemap);
		return NULL;
	}
	memcpy(line, name, sizeof name);
	len = sizeof name - 1;
	/* libc's and the loader's first, then the others' while they fit. */
	for (int pass = 1; pass >= 0; pass--) {
		if (pass == 0 && maps_open(&maps, pid) < 0)
			break;
		while (maps_next(&maps, &e))
			if (read_only_file(&e) && runs_injection(&e) == pass &&
			    append_mapping(pagemap, &e, line, &len, LINE_MAX_BYTES) < 0)
				break;
		maps_close(&maps);
	}
	close(pagemap);
	return line;
}
