/*
 * hook_loader.c - dlopen, dlmopen, dlsym and dlvsym in an attached process,
 * so that modules the program loads after attach are redirected too.
 *
 * Only `reqid attach` points calls here (got_patch.c, through
 * loader_stub); these are not exports: under `reqid run` the loader binds
 * every module to the shim by itself. Each stub has the modules loaded
 * since the last look patched (got_patch_since), then jumps to libc's
 * function with the arguments and the caller's return address as they
 * came: these functions answer by who calls them (dlopen searches the
 * caller's RUNPATH and loads into its namespace, dlsym(RTLD_NEXT) starts
 * after the caller), so a wrapper that called them would change their
 * answers. A module dlopen loads is patched at the next of these calls on
 * any thread, normally the dlsym that finds its functions.
 *
 * Must never change an argument, a return value or errno, and never wait
 * for a lock (got_patch_since only tries its own).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "got_patch.h"
#include "shim_init.h"
#include "thread_ctx.h"

/* libc's functions, where each stub jumps. */
void *loader_real_dlopen __attribute__((visibility("hidden")));
void *loader_real_dlmopen __attribute__((visibility("hidden")));
void *loader_real_dlsym __attribute__((visibility("hidden")));
void *loader_real_dlvsym __attribute__((visibility("hidden")));

void loader_call_starting(void) __attribute__((visibility("hidden"), used));

/* Called by every stub before it jumps on: new modules are patched, unless
 * the shim is detached or the call comes from inside the shim (libunwind,
 * from a hook). */
void loader_call_starting(void)
{
	if (!shim.attached || !shim.active || thread_ctx.in_shim)
		return;
	int saved = errno;
	got_patch_since();
	errno = saved;
}

/* Each stub keeps the (at most three) argument registers around the call,
 * the stack aligned for it, and leaves with a jump, not a call: the
 * function finds the caller's return address where the caller put it. */
#define LOADER_STUB(name)                                            \
	__asm__(".text\n"                                            \
		".p2align 4\n"                                       \
		".hidden loader_stub_" #name "\n"                    \
		".type loader_stub_" #name ", @function\n"           \
		"loader_stub_" #name ":\n"                           \
		"	endbr64\n"                                   \
		"	push %rdi\n"                                 \
		"	push %rsi\n"                                 \
		"	push %rdx\n"                                 \
		"	call loader_call_starting\n"                 \
		"	pop %rdx\n"                                  \
		"	pop %rsi\n"                                  \
		"	pop %rdi\n"                                  \
		"	jmp *loader_real_" #name "(%rip)\n"          \
		".size loader_stub_" #name ", .-loader_stub_" #name "\n")

LOADER_STUB(dlopen);
LOADER_STUB(dlmopen);
LOADER_STUB(dlsym);
LOADER_STUB(dlvsym);

extern char loader_stub_dlopen[], loader_stub_dlmopen[], loader_stub_dlsym[],
	loader_stub_dlvsym[];

static const struct {
	const char *name;
	char *stub;
	void **real;
} stubs[] = {
	{"dlopen", loader_stub_dlopen, &loader_real_dlopen},
	{"dlmopen", loader_stub_dlmopen, &loader_real_dlmopen},
	{"dlsym", loader_stub_dlsym, &loader_real_dlsym},
	{"dlvsym", loader_stub_dlvsym, &loader_real_dlvsym},
};

void *loader_stub(const char *name, void *target)
{
	for (size_t i = 0; i < sizeof(stubs) / sizeof(stubs[0]); i++) {
		if (strcmp(name, stubs[i].name) != 0)
			continue;
		if (!target)
			return NULL;
		__atomic_store_n(stubs[i].real, target, __ATOMIC_RELEASE);
		return stubs[i].stub;
	}
	return NULL;
}
