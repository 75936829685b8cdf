/*
 * target_libc.c - addresses of libc functions inside the target.
 *
 * Finds the target's libc.so.6 in /proc/PID/maps, reads the dynamic symbol
 * table of that very file (through /proc/PID/root, or /proc/PID/map_files
 * when the path does not lead to the mapped inode) and adds the load base;
 * also the address of the bytes of a `syscall; ret` in its executable
 * segment, where a borrowed thread makes a system call that leaves errno
 * alone (its result, or -errno, stays in rax).
 * Also where the loader's and the program's code lie (the mappings that
 * hold /proc/PID/auxv's AT_BASE and AT_ENTRY), which tell whether a
 * stopped thread is in the loader (borrow_point.c). A process with no
 * libc mapped is starting up, not a static binary, when it has a loader
 * (AT_BASE) or no auxiliary vector yet (the kernel is inside its execve):
 * said so, to be tried again.
 * Reads files only: must never touch the target, and never accept an
 * IFUNC symbol (its value is a resolver, not the function) or a
 * non-default symbol version.
 */
#include "target_libc.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "preflight.h"
#include "proc_maps.h"

#define NO_SIZE ((size_t)-1)

static const struct {
	const char *name;
	size_t offset, size_offset;
} wanted[] = {
	{ "dlopen", offsetof(struct libc_funcs, dlopen), NO_SIZE },
	{ "dlsym", offsetof(struct libc_funcs, dlsym), NO_SIZE },
	{ "dlerror", offsetof(struct libc_funcs, dlerror), NO_SIZE },
	{ "pthread_create", offsetof(struct libc_funcs, pthread_create), NO_SIZE },
	{ "pthread_detach", offsetof(struct libc_funcs, pthread_detach), NO_SIZE },
	{ "pthread_self", offsetof(struct libc_funcs, pthread_self), NO_SIZE },
	{ "pthread_attr_init", offsetof(struct libc_funcs, pthread_attr_init), NO_SIZE },
	{ "pthread_attr_setstack", offsetof(struct libc_funcs, pthread_attr_setstack), NO_SIZE },
	{ "__errno_location", offsetof(struct libc_funcs, errno_location), NO_SIZE },
	{ "__register_atfork", offsetof(struct libc_funcs, register_atfork), NO_SIZE },
	{ "fork", offsetof(struct libc_funcs, fork), offsetof(struct libc_funcs, fork_size) },
	{ "_Fork", offsetof(struct libc_funcs, fork_bare),
	  offsetof(struct libc_funcs, fork_bare_size) },
};
#define NWANTED (sizeof wanted / sizeof wanted[0])

static uint64_t *slot(struct libc_funcs *f, size_t j)
{
	return (uint64_t *)((char *)f + wanted[j].offset);
}

struct mapping {
	unsigned long start, end;
	unsigned long inode;
	char path[PATH_MAX];
};

/* AT_BASE (the loader's load address, 0 without one) and AT_ENTRY (the
 * program's entry point, 0 while the kernel has not yet written the
 * vector of a program it execs) from /proc/PID/auxv: 0, or -1. */
static int read_auxv(pid_t pid, uint64_t *base, uint64_t *entry)
{
	char path[64];
	uint64_t pair[2];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/auxv", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	*base = *entry = 0;
	while (fread(pair, sizeof pair, 1, f) == 1 && pair[0] != AT_NULL)
		if (pair[0] == AT_BASE)
			*base = pair[1];
		else if (pair[0] == AT_ENTRY)
			*entry = pair[1];
	fclose(f);
	return 0;
}

int target_code_find(pid_t pid, struct code_ranges *code)
{
	struct maps_reader maps;
	struct maps_entry e;
	uint64_t base, entry;
	unsigned long loader_inode = 0;
	dev_t loader_dev = 0;

	memset(code, 0, sizeof *code);
	if (read_auxv(pid, &base, &entry) < 0 || maps_open(&maps, pid) < 0)
		return -1;
	while (maps_next(&maps, &e)) {
		if (base && e.start == base && e.inode) {
			loader_inode = e.inode;
			loader_dev = e.dev;
		}
		if (e.perms[2] != 'x' || !e.inode)
			continue;
		if (e.inode == loader_inode && e.dev == loader_dev) {
			if (!code->loader_start)
				code->loader_start = e.start;
			code->loader_end = e.end;
		}
		if (entry >= e.start && entry < e.end) {
			code->program_start = e.start;
			code->program_end = e.end;
		}
	}
	return maps_close(&maps);
}

/* The mapping of libc.so.6 at file offset 0: its start is the load base. */
static int find_mapping(pid_t pid, struct mapping *m)
{
	struct maps_reader maps;
	uint64_t loader, entry;
	struct maps_entry e;
	int found = 0;

	if (maps_open(&maps, pid) < 0) {
		if (errno == EACCES || errno == EPERM)
			return fail_permission(pid, "cannot read its memory map");
		return fail("the target exited during attach");
	}
	while (!found && maps_next(&maps, &e)) {
		const char *base;

		if (e.offset != 0 || e.path[0] != '/')
			continue;
		base = strrchr(e.path, '/') + 1;
		if (strcmp(base, "libc.so.6") == 0 ||
		    strcmp(base, "libc.so.6 (deleted)") == 0) {
			m->start = e.start;
			m->end = e.end;
			m->inode = e.inode;
			snprintf(m->path, sizeof m->path, "%s", e.path);
			found = 1;
		}
	}
	if (maps_close(&maps) < 0 && (errno == EACCES || errno == EPERM))
		return fail_permission(pid, "cannot read its memory map");
	if (!found && read_auxv(pid, &loader, &entry) == 0 && (loader || !entry))
		return fail("process %d is starting up: %s; try again", (int)pid,
			    entry ? "its loader has not mapped libc.so.6 yet" :
			    "the kernel is still loading the program it execs");
	if (!found)
		return fail("process %d has no libc.so.6 mapped (a static binary, "
			    "or not glibc): nothing to call", (int)pid);
	return 0;
}

/* Opens the mapped file itself, not whatever its path names now. */
static int open_mapped(pid_t pid, const struct mapping *m)
{
	char path[sizeof m->path + 64];
	struct stat st;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid, m->path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == m->inode)
		return fd;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof path, "/proc/%d/map_files/%lx-%lx", (int)pid,
		 m->start, m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("cannot open the target's %s: %s", m->path,
			    strerror(errno));
	return fd;
}

static void *read_at(int fd, uint64_t offset, uint64_t size)
{
	void *p = size && size < (1u << 28) ? malloc(size) : NULL;

	if (p && pread(fd, p, size, (off_t)offset) != (ssize_t)size) {
		free(p);
		p = NULL;
	}
	return p;
}

/* Looks the wanted names up in the file's .dynsym; their file values go
 * to f, relative to the load base. */
static int read_symbols(int fd, const char *path, struct libc_funcs *f)
{
	Elf64_Ehdr eh;
	Elf64_Shdr *sh = NULL, *dynsym = NULL, *strtab, *versym = NULL;
	Elf64_Sym *syms = NULL;
	Elf64_Half *vers = NULL;
	char *strs = NULL;
	size_t i, j, nsyms;
	int rc = -1;

	if (pread(fd, &eh, sizeof eh, 0) != sizeof eh ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_DYN ||
	    eh.e_shentsize != sizeof *sh || eh.e_shnum == 0)
		return fail("the target's %s is not a 64-bit shared object with "
			    "section headers", path);
	sh = read_at(fd, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof *sh);
	if (!sh)
		goto unreadable;
	for (i = 0; i < eh.e_shnum; i++) {
		if (sh[i].sh_type == SHT_DYNSYM)
			dynsym = &sh[i];
		else if (sh[i].sh_type == SHT_GNU_versym)
			versym = &sh[i];
	}
	if (!dynsym || dynsym->sh_link >= eh.e_shnum)
		goto unreadable;
	strtab = &sh[dynsym->sh_link];
	nsyms = dynsym->sh_size / sizeof *syms;
	syms = read_at(fd, dynsym->sh_offset, dynsym->sh_size);
	strs = read_at(fd, strtab->sh_offset, strtab->sh_size);
	if (versym)
		vers = read_at(fd, versym->sh_offset, versym->sh_size);
	if (!syms || !strs || !strtab->sh_size ||
	    (versym && (!vers || versym->sh_size < nsyms * sizeof *vers)))
		goto unreadable;
	strs[strtab->sh_size - 1] = 0;

	memset(f, 0, sizeof *f);
	for (i = 0; i < nsyms; i++) {
		const Elf64_Sym *s = &syms[i];
		int type = ELF64_ST_TYPE(s->st_info);

		if (s->st_shndx == SHN_UNDEF || s->st_name >= strtab->sh_size ||
		    (vers && vers[i] & 0x8000))
			continue;
		for (j = 0; j < NWANTED; j++) {
			if (strcmp(strs + s->st_name, wanted[j].name) != 0)
				continue;
			if (type != STT_FUNC) {
				fail("%s in the target's %s is not a plain "
				     "function (ELF symbol type %d)",
				     wanted[j].name, path, type);
				goto out;
			}
			*slot(f, j) = s->st_value;
			if (wanted[j].size_offset != NO_SIZE)
				*(uint64_t *)((char *)f + wanted[j].size_offset) = s->st_size;
		}
	}
	for (j = 0; j < NWANTED; j++) {
		if (*slot(f, j))
			continue;
		if (j == 0)
			fail("the target's %s exports no dlopen: glibc 2.34 or "
			     "later is needed", path);
		else
			fail("the target's %s exports no %s", path,
			     wanted[j].name);
		goto out;
	}
	rc = 0;
	goto out;
unreadable:
	fail("cannot read the dynamic symbols of the target's %s", path);
out:
	free(sh);
	free(syms);
	free(strs);
	free(vers);
	return rc;
}

/* Sets f->syscall_ret to the file address of the first `syscall; ret`
 * (0f 05 c3) in an executable segment, and f->restore_rt to that of the
 * signal return code (48 c7 c0 0f 00 00 00 0f 05), if there is one. */
static int find_syscall_ret(int fd, const char *path, struct libc_funcs *f)
{
	static const unsigned char syscall_ret[] = { 0x0f, 0x05, 0xc3 };
	static const unsigned char restore_rt[] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00,
						    0x00, 0x00, 0x0f, 0x05 };
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	size_t i;

	if (pread(fd, &eh, sizeof eh, 0) != sizeof eh || eh.e_phentsize != sizeof *ph ||
	    !(ph = read_at(fd, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof *ph)))
		return fail("cannot read the program headers of the target's %s", path);
	for (i = 0; i < eh.e_phnum && !f->syscall_ret; i++) {
		unsigned char *code, *at;

		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		code = read_at(fd, ph[i].p_offset, ph[i].p_filesz);
		at = code ? memmem(code, ph[i].p_filesz, syscall_ret, sizeof syscall_ret) : NULL;
		if (at)
			f->syscall_ret = ph[i].p_vaddr + (uint64_t)(at - code);
		at = code ? memmem(code, ph[i].p_filesz, restore_rt, sizeof restore_rt) : NULL;
		if (at && !f->restore_rt)
			f->restore_rt = ph[i].p_vaddr + (uint64_t)(at - code);
		free(code);
	}
	free(ph);
	return f->syscall_ret ? 0 : fail("the target's %s holds no `syscall; ret` in its "
					 "code", path);
}

int target_libc_find(pid_t pid, struct libc_funcs *f)
{
	struct mapping m;
	size_t j;
	int fd, rc;

	if (find_mapping(pid, &m) < 0 || (fd = open_mapped(pid, &m)) < 0)
		return -1;
	rc = read_symbols(fd, m.path, f);
	if (rc == 0)
		rc = find_syscall_ret(fd, m.path, f);
	close(fd);
	for (j = 0; rc == 0 && j < NWANTED; j++)
		*slot(f, j) += m.start;
	if (rc == 0)
		f->syscall_ret += m.start;
	if (rc == 0 && f->restore_rt)
		f->restore_rt += m.start;
	return rc;
}
