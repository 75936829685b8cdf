/*
 * audit_log.h - the side channel of `reqid audit`: what the shim decided
 * for every log line, and when each request began and ended, appended to
 * a file of the process's own in REQID_AUDIT_DIR (audit.PID), never to
 * anything of the program's.
 *
 * Records (audit_record.h), each with the process id, a token of the
 * process image (new in each exec'ed program and fork child, a raw clone
 * or vfork child included: the pid is checked at every record) and
 * CLOCK_MONOTONIC nanoseconds: I (an image's first record) and M (one per
 * executable mapping, from /proc/self/maps: start, end, file offset, path;
 * written again when a line's return address is in none of them); S
 * (request serial and id began), R (its response began) and E (it ended:
 * the next request on its connection began, or the connection closed); L
 * (a line: thread,
 * number, verdict, the id it got, the thread's request, the return
 * addresses of the write, the line's text); D (the id a held line got
 * when its thread's bracket resolved). Only in audit mode (shim.audit);
 * `reqid run` and attach never write any.
 *
 * Async-signal-safe: system calls and stack buffers only; keeps errno.
 * Never blocks on a lock; records of two threads never interleave (one
 * write each, O_APPEND).
 */
#ifndef REQID_AUDIT_LOG_H
#define REQID_AUDIT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a line's verdict was. */
enum audit_verdict {
	AUDIT_TAGGED,	/* it carries request's id */
	AUDIT_OUTSIDE,	/* its thread was in no request */
	AUDIT_UNPROVEN, /* its thread was in a request, but no rule proved the
			   line that request's (a bracket, an event loop) */
	AUDIT_BATCH,	/* a flush of several lines: only one naming its
			   request gets an id */
	AUDIT_HELD,	/* held until its thread's bracket resolves (D) */
	AUDIT_RAW,	/* went out as it came, unenriched: no memory or line
			   slot for it, its stream blocked, not a syslog
			   message */
};

/* Line text of len bytes, written by the program's current call, got
 * request's id (0: none); ctx is the thread's request then. held: the
 * number to give its D record, 0 for a line decided now. */
void audit_line(enum audit_verdict verdict, uint64_t request, uint64_t ctx, uint32_t held,
		const char *text, size_t len) __attribute__((visibility("hidden")));

/* A number for a line about to be held (never 0). */
uint32_t audit_held_number(void) __attribute__((visibility("hidden")));

/* Held line number got request's id (0: none). */
void audit_line_decided(uint32_t number, uint64_t request) __attribute__((visibility("hidden")));

void audit_request_started(uint64_t serial, const char *id, size_t id_len)
	__attribute__((visibility("hidden")));
void audit_request_ended(uint64_t serial) __attribute__((visibility("hidden")));
void audit_request_answered(uint64_t serial) __attribute__((visibility("hidden")));

/* Opens the audit file at start-up, before the program can drop its
 * privileges: workers that setuid to another user can no longer open a
 * file in the audit directory, but write on through the descriptor they
 * inherited, as do their fork children. */
void audit_open(void) __attribute__((visibility("hidden")));

/* Whether fd is the audit file (the program closing it: audit_fd_closing). */
bool audit_is_channel(int fd) __attribute__((visibility("hidden")));
void audit_fd_closing(void) __attribute__((visibility("hidden")));

/* In a fork child: its records go on into the same file under its own
 * pid, after its own module map. */
void audit_after_fork(void) __attribute__((visibility("hidden")));

#endif
