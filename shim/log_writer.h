/*
 * log_writer.h - enriching what the application writes to log descriptors.
 *
 * Splits the bytes into lines, gives each line the id its thread's context
 * allows (thread_ctx.h), formats it (line_format.h) and writes each output
 * line with one write() so lines from concurrent threads and processes never
 * interleave. A line written in several pieces is assembled per thread and fd
 * and tagged once; lines of any length pass whole.
 *
 * The application sees the return value and errno the kernel gave for its
 * own bytes: a write that went out in full returns the byte count asked for,
 * an error before any of its lines went out is returned as that error, and an
 * error after some lines went out is a short write covering those lines.
 * Bytes of an unfinished line, and lines held for a bracket, count as
 * written: they are in the shim's buffers and go out with their line.
 *
 * Async-signal-safe: no malloc, no stdio, no locks. Buffers for partial,
 * held and long lines are mmap'ed per slot and reused. A signal handler that
 * writes while the same thread is inside this code writes its bytes through
 * unchanged.
 */
#ifndef REQID_LOG_WRITER_H
#define REQID_LOG_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "log_output.h"

ssize_t log_writev(const struct log_sink *sink, const struct iovec *iov, int iovcnt)
	__attribute__((visibility("hidden")));

/* Writes the calling thread's held lines, in the order they were written:
 * those held under request get its id, the others none. */
void log_release_held(uint64_t request) __attribute__((visibility("hidden")));

/* The first I/O of the calling thread's event-loop batch is done: lines
 * held before it from inside the call at site are proven request's (0:
 * none), the others get no id; they go out at the thread's next release. */
void log_resolve_batch(uintptr_t site, uint64_t request) __attribute__((visibility("hidden")));

/* The calling thread's next I/O, on the connection and request its held
 * lines are bracketed by, has chain: lines held as nested brackets
 * (event_batch.h) get request's id if chain shares their frames, else
 * none. */
struct call_chain;
void log_resolve_nested(const struct call_chain *chain, uint64_t request)
	__attribute__((visibility("hidden")));

/* The calling thread's held syslog messages go out now (no bracket: they
 * keep an id only if they name their request). */
void log_release_syslog(void) __attribute__((visibility("hidden")));

/* The calling thread ends: its held and unfinished lines go out. */
void log_flush_thread(void) __attribute__((visibility("hidden")));

/* Log descriptor fd is being closed or replaced: every thread's lines for
 * it go out, an unfinished one ended as a line of its own, after the lines
 * the calling thread holds for other descriptors (if it has any for fd). */
void log_flush_fd(int fd) __attribute__((visibility("hidden")));

/* Bytes are about to reach log descriptor fd past the shim (sendfile or
 * splice onto it): every thread's lines for it go out first, an unfinished
 * one as the program wrote it, so that the file has the program's bytes in
 * the program's order (the rest of that line comes after them, a line of
 * its own). */
void log_flush_fd_plain(int fd) __attribute__((visibility("hidden"), cold));

/* The process exits, execs or dies: every thread's lines go out. Cold: once
 * per process, beside the start-up code (shim_init.h). */
void log_flush_all(void) __attribute__((visibility("hidden"), cold));

/* As log_flush_all, but an unfinished line goes out as the program wrote
 * it, unenriched: `reqid detach`, after which the program writes the rest
 * of it past the shim, and the line comes out plain and whole. */
void log_flush_all_plain(void) __attribute__((visibility("hidden"), cold));

/* Detach, after log_flush_all_plain: the buffers of empty slots give their
 * pages back (free ones claimed meanwhile, so that none is taken). */
void log_release_free_slots(void) __attribute__((visibility("hidden"), cold));

/* In a fork child: the parent's pending lines are the parent's to write. */
void log_forget_all(void) __attribute__((visibility("hidden"))) FORK_PATH;

#endif
