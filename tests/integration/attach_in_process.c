/*
 * attach_in_process.c - the shim's side of attach and detach without
 * ptrace: this program dlopens libreqid.so itself (as reqid-inject makes a
 * running process do) and calls reqid_attach and reqid_detach, writing a log
 * line to fd 2 in each state (write, stdio, writev first called while
 * attached, a pointer to write taken while attached, called after
 * detach, and a line begun before detach and ended after it). test_attach.py builds it with lazy binding,
 * full RELRO (-z now), -fno-plt and without PIE, and checks stderr and the
 * results on stdout byte for byte.
 *
 * Must never write anything to fd 2 but the log lines under test.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef int (*entry_fn)(const char *);
typedef ssize_t (*write_fn)(int, const void *, size_t);

/* write as the program's GOT has it now: the address of a function is
 * read from its GLOB_DAT entry, once per call (not inlined, so the compiler
 * cannot keep an earlier read). */
static __attribute__((noinline)) write_fn bound_write(void)
{
	write_fn volatile f = write;
	return f;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	write_fn libc_write = (write_fn)dlsym(RTLD_DEFAULT, "write");
	write(2, "before\n", 7);
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	/* Loaded but not attached: the library passes everything through. */
	write(2, "loaded\n", 7);
	entry_fn attach = (entry_fn)dlsym(lib, "reqid_attach");
	entry_fn detach = (entry_fn)dlsym(lib, "reqid_detach");
	int *status = dlsym(lib, "reqid_attach_status");
	if (!attach || !detach || !status)
		return 1;
	int a1 = attach("REQID_LOG_FDS=2\nREQID_FIELD=rid\nREQID_OUTSIDE=out\n");
	write(2, "attached\n", 9);
	fprintf(stderr, "stdio attached\n");
	int redirected = bound_write() != libc_write;
	write_fn pointer = bound_write(); /* the hook, while attached */
	/* writev's first call: with lazy binding its entry was still the
	 * loader's stub at attach. */
	struct iovec line = {"writev attached\n", 16};
	writev(2, &line, 1);
	int a2 = attach("");
	int s1 = status[0];
	write(2, "half ", 5); /* a line detach cuts in two */
	int d1 = detach("");
	write(2, "a line\n", 7);
	write(2, "detached\n", 9);
	fprintf(stderr, "stdio detached\n");
	struct iovec after = {"writev detached\n", 16};
	writev(2, &after, 1);
	pointer(2, "pointer detached\n", 17);
	int restored = bound_write() == libc_write;
	int d2 = detach("");
	int bad = attach("REQID_FORMAT=yaml\n");
	int s2 = status[0];
	int a3 = attach("REQID_LOG_FDS=2\n");
	write(2, "again\n", 6);
	int d3 = detach("");
	printf("attach=%d twice=%d status=%d detach=%d redirected=%d restored=%d "
	       "detach_again=%d invalid=%d status=%d reattach=%d detach=%d\n",
	       a1, a2, s1, d1, redirected, restored, d2, bad, s2, a3, d3);
	return 0;
}
