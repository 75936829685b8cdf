/*
 * preflight.h - the refusals made before touching a process (see
 * preflight.c).
 */
#ifndef REQID_INJECT_PREFLIGHT_H
#define REQID_INJECT_PREFLIGHT_H

#include <sys/types.h>

/* 0 if PID looks injectable: it exists, is not traced, stopped or under
 * seccomp, and runs an x86_64 executable; else -1 after fail(). */
int preflight(pid_t pid);

/* Records why tracing PID was refused (`what` says which step) and how to
 * allow it; returns -1. */
int fail_permission(pid_t pid, const char *what);

/* The process tracing thread tid (/proc/TID/status), 0 if none or unknown. */
long tracer_of(pid_t tid);

/* fail_permission for a PTRACE_SEIZE of thread tid of PID: names tid's
 * tracer if it has one (another thread's may have gone already). */
int fail_seize(pid_t pid, pid_t tid);

#endif
