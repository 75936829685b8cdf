/*
 * got_patch.h - pointing calls a running program has already bound at the
 * shim's hooks, and back (used by `reqid attach` and `reqid detach`).
 *
 * A library loaded with dlopen interposes nothing: the program's calls
 * were bound to libc when it started. got_patch_all rewrites, in every
 * module but the loader and the shim, each GOT entry (JUMP_SLOT and
 * GLOB_DAT relocations) of a function the shim exports to the shim's
 * function; got_restore_all writes back the function the hook calls
 * (dlsym/dlvsym with RTLD_NEXT: libc's), never the old GOT value (it may
 * be a lazy-binding stub).
 * The set of hooked functions is the shim's own export list
 * (shim/exports.map): no second list; besides them only the four loader
 * functions whose stubs patch the modules loaded later (hook_loader.c).
 *
 * Never called from a hook or a signal handler: it takes the loader's locks
 * and maps memory (got_patch_since: from a loader stub only).
 */
#ifndef REQID_GOT_PATCH_H
#define REQID_GOT_PATCH_H

#include <stddef.h>

#include "fork_hot.h"

/* Patches every loaded module; returns how many entries now point at the
 * shim, or -1 if the list of patched entries could not be kept (nothing is
 * patched then). Entries patched already are counted, not patched twice. */
int got_patch_all(void) __attribute__((visibility("hidden")));

/* Puts back every entry got_patch_all changed that still points at the
 * shim; returns how many. */
int got_restore_all(void) __attribute__((visibility("hidden")));

/* If modules were loaded since got_patch_all or the last call, patches
 * them, and forgets the entries of modules closed since. Only tries the
 * patcher's lock: while another thread patches or restores it does
 * nothing (the next call finds the modules). For the loader stubs
 * (hook_loader.c) of an attached process. */
void got_patch_since(void) __attribute__((visibility("hidden")));

/* In a fork child: a pass the parent was in is not the child's. */
void got_patch_after_fork(void) __attribute__((visibility("hidden"))) FORK_PATH;

/* hook_loader.c: the stub that stands for loader function name (dlopen,
 * dlmopen, dlsym, dlvsym) in an attached process, jumping to target; NULL
 * for any other name or a NULL target. */
void *loader_stub(const char *name, void *target) __attribute__((visibility("hidden")));

#endif
