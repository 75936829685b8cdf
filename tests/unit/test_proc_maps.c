/*
 * test_proc_maps.c - unit tests for reqid-inject's reader of
 * /proc/PID/maps and of where the main thread's stack started
 * (inject/proc_maps.c), on this process's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../inject/proc_maps.h"

/* The entry of this process's mapping that starts at addr; its path
 * copied to path. Fails the test if there is none. */
static struct maps_entry entry_at(const void *addr, char *path, size_t size)
{
	struct maps_reader maps;
	struct maps_entry e, found = {0};
	int seen = 0;

	assert_int_equal(maps_open(&maps, getpid()), 0);
	while (maps_next(&maps, &e)) {
		if (e.start != (uintptr_t)addr)
			continue;
		found = e;
		snprintf(path, size, "%s", e.path);
		seen++;
	}
	assert_int_equal(maps_close(&maps), 0);
	assert_int_equal(seen, 1);
	found.path = path;
	return found;
}

/* A page of a file, mapped at an offset; its name has a space, and once
 * unlinked, the kernel's " (deleted)" after it. */
static void test_a_file_mapping(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	char name[] = "/tmp/test proc_maps XXXXXX", path[4096], deleted[sizeof name + 16];
	int fd = mkstemp(name);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 3 * page), 0);
	assert_int_equal(fstat(fd, &st), 0);
	char *p = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, fd, 2 * page);
	assert_true(p != MAP_FAILED);
	struct maps_entry e = entry_at(p, path, sizeof path);
	assert_int_equal(e.end, (uintptr_t)p + (uintptr_t)page);
	assert_string_equal(e.perms, "r--p");
	assert_int_equal(e.offset, 2 * page);
	assert_int_equal(e.dev, st.st_dev);
	assert_int_equal(e.inode, st.st_ino);
	assert_string_equal(e.path, name);
	assert_int_equal(unlink(name), 0);
	snprintf(deleted, sizeof deleted, "%s (deleted)", name);
	assert_string_equal(entry_at(p, path, sizeof path).path, deleted);
	munmap(p, (size_t)page);
	close(fd);
}

/* Anonymous memory: no file, an empty path. Made between two pages of
 * another protection, so that it is a mapping of its own. */
static void test_an_anonymous_mapping(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	char path[64];
	char *p = mmap(NULL, 4 * (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p + page, 2 * (size_t)page, PROT_READ | PROT_WRITE), 0);
	struct maps_entry e = entry_at(p + page, path, sizeof path);
	assert_int_equal(e.end, (uintptr_t)p + 3 * (uintptr_t)page);
	assert_string_equal(e.perms, "rw-p");
	assert_int_equal(e.offset, 0);
	assert_int_equal(e.dev, 0);
	assert_int_equal(e.inode, 0);
	assert_string_equal(e.path, "");
	munmap(p, 4 * (size_t)page);
}

static void test_a_process_that_is_not_there(void **state)
{
	(void)state;
	struct maps_reader maps;

	errno = 0;
	assert_int_equal(maps_open(&maps, -1), -1);
	assert_int_equal(errno, ENOENT);
}

/* Where this process's main thread's stack started: in the [stack]
 * mapping, argc there (a cmocka test runs with at least its name). */
static void test_start_stack(void **state)
{
	struct maps_reader maps;
	struct maps_entry e;
	uint64_t at = proc_start_stack(getpid());
	int inside = 0;

	(void)state;
	assert_true(at != 0);
	assert_int_equal(maps_open(&maps, getpid()), 0);
	while (maps_next(&maps, &e))
		if (strcmp(e.path, "[stack]") == 0 && at >= e.start && at < e.end)
			inside = 1;
	assert_int_equal(maps_close(&maps), 0);
	assert_true(inside);
	assert_true(*(const long *)(uintptr_t)at >= 1);
	assert_int_equal(proc_start_stack(-1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_file_mapping),
		cmocka_unit_test(test_an_anonymous_mapping),
		cmocka_unit_test(test_a_process_that_is_not_there),
		cmocka_unit_test(test_start_stack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
