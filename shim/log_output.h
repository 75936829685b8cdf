/*
 * log_output.h - writing enriched bytes to a log descriptor without ever
 * tearing a line.
 *
 * When a non-blocking log descriptor fills up in the middle of a line, the
 * rest of that line is queued for the descriptor (its "backlog") instead of
 * being dropped or waited for. Whatever is written to that descriptor next
 * goes out after the backlog: the application's own writes get EAGAIN until
 * the backlog has drained, as they would from a full pipe; lines the shim
 * releases on its own join the backlog. Backlogs are written out at close and
 * at exit.
 *
 * Async-signal-safe: no malloc, no locks a signal handler could wait on (a
 * busy backlog is treated as full).
 */
#ifndef REQID_LOG_OUTPUT_H
#define REQID_LOG_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fork_hot.h"
#include "shim_init.h"

/* Messages (not lines) go to syslog: one per output, never batched. */
enum message_kind {
	MESSAGE_NONE,
	MESSAGE_SYSLOG,   /* "<pri>text": passed to glibc's syslog() */
	MESSAGE_DATAGRAM, /* a whole datagram for the syslog socket */
};

/* Pseudo fd of the line slots holding syslog() messages. */
#define SYSLOG_SLOT_FD (-2)

/* Where a log descriptor's output goes: the fd itself (write, or send with
 * the caller's flags), the stdio stream the program wrote to (so enriched
 * lines keep their place among the stream's buffered bytes), or syslog. */
struct log_sink {
	int fd;
	int send_flags;  /* for send/sendto/sendmsg */
	bool use_send;
	bool wide;       /* stream is wide-oriented: output converted back */
	uint8_t message; /* enum message_kind */
	socklen_t addr_len; /* datagrams: where to (0: the connected peer) */
	const struct sockaddr *addr;
	FILE *stream;    /* the application holds its lock while the shim writes */
	FILE *owner;     /* the stdio stream whose unfinished line this is (NULL:
			    the fd's, shared with write()) */
};

/* How log_output treats a descriptor that has no room, or a stream whose
 * lock another thread holds. */
enum output_mode {
	OUTPUT_APP,        /* the application's write (it holds the stream's
			      lock): report EAGAIN if nothing went out */
	OUTPUT_BACKGROUND, /* lines the shim releases: queue what cannot go out
			      now; a busy stream fails with EBUSY (the caller
			      keeps the lines) */
	OUTPUT_FINAL,      /* lines written at close or exit: as BACKGROUND, but
			      a stream still busy after a short wait is
			      bypassed for its fd */
};

#define OUTPUT_NOT_TRIED (-2)

extern _Atomic uint32_t output_attention __attribute__((visibility("hidden")));

/* log_output past its first write (its result in first), or from the start
 * (first OUTPUT_NOT_TRIED). */
size_t log_output_slow(const struct log_sink *sink, const char *b, size_t n, enum output_mode mode,
		       ssize_t first) __attribute__((visibility("hidden")));

/* Writes n bytes (whole output lines) to sink. Returns n when they all went
 * out or were queued; 0 with errno set when nothing went out and nothing was
 * queued; a count between when an error (not EAGAIN) cut the output short.
 * The common case, a plain fd with no backlog anywhere taking it all in one
 * write, stays inline. */
static inline size_t log_output(const struct log_sink *sink, const char *b, size_t n,
				enum output_mode mode)
{
	if (__builtin_expect(atomic_load_explicit(&output_attention, memory_order_relaxed) == 0 &&
				     !sink->stream && !sink->message && !sink->use_send, 1)) {
		ssize_t r = real.write(sink->fd, b, n);
		if (__builtin_expect(r == (ssize_t)n, 1))
			return n;
		return log_output_slow(sink, b, n, mode, r);
	}
	return log_output_slow(sink, b, n, mode, OUTPUT_NOT_TRIED);
}

/* Writes fd's backlog, waiting up to about a second for room; then drops
 * what is left. For close and exit. */
void log_output_settle(int fd) __attribute__((visibility("hidden")));

/* Writes what fd's backlog can without waiting, and frees it if it
 * empties: bytes are about to reach fd past the shim, which stays open. */
void log_output_pay(int fd) __attribute__((visibility("hidden"), cold));

/* Writes what each backlog can without waiting and frees the ones that
 * empty; true when no backlog is left (`reqid detach` waits for that: once
 * the shim is out, nothing would write them). */
bool log_output_drain(void) __attribute__((visibility("hidden")));

/* Every backlog, as log_output_settle. */
void log_output_settle_all(void) __attribute__((visibility("hidden")));

/* The process is dying of a fatal signal: from now on output never blocks
 * (each write waits for room within a small shared budget, else is
 * dropped), stdio streams are bypassed for their fds (nothing will flush
 * them), and syslog messages are dropped. */
void log_output_dying(void) __attribute__((visibility("hidden")));

/* In a fork child: the parent's backlogs are the parent's to write. */
void log_output_forget_all(void) __attribute__((visibility("hidden"))) FORK_PATH;

/* Grows an mmap'ed buffer to at least need bytes (powers of two from 4 KiB).
 * False if the memory cannot be had; the buffer is then unchanged. */
bool buffer_reserve(char **buf, size_t *cap, size_t need) __attribute__((visibility("hidden")));

/* Gives the pages of a buffer buffer_reserve grew back to the kernel,
 * keeping it mapped and its size (its bytes read as zeroes after). */
void buffer_release(char *buf, size_t cap) __attribute__((visibility("hidden")));

#endif
