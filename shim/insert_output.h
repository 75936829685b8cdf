/*
 * insert_output.h - writing an application's bytes on a socket with text
 * added at chosen offsets, and mapping what the kernel took back to the
 * application's own bytes.
 *
 * Shared by response headers on accepted connections (conn_output.c) and
 * trace headers on outbound requests (client_output.c). Added text the
 * kernel took only part of is owed: it goes out first at the next write, so
 * the peer always receives it whole. Never allocates; the piece array lives
 * on the stack, bounded by IOV_MAX.
 */
#ifndef REQID_INSERT_OUTPUT_H
#define REQID_INSERT_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define INSERT_POINTS_MAX 8

/* What one write adds: text[k] (len[k] bytes) before the application's byte
 * at offset at[k]; offsets ascending. */
struct insertion {
	size_t count;
	size_t at[INSERT_POINTS_MAX];
	const char *text[INSERT_POINTS_MAX];
	size_t len[INSERT_POINTS_MAX];
};

/* Added bytes not yet sent, in a buffer of cap bytes owned by the stream. */
struct owed_bytes {
	uint16_t *len;
	char *buf;
	size_t cap;
};

struct insert_result {
	size_t app;        /* the application's bytes the kernel took */
	bool after_added;  /* the last bytes it took were added text */
};

/* One writev (use_send false) or sendmsg with flags (msg, if not NULL, for
 * the destination and ancillary data) of the owed bytes, then the
 * application's bytes with the insertion, whose texts must each fit in the
 * owed buffer. When the pieces would not fit in one call (IOV_MAX) the
 * owed bytes go alone first and this write adds nothing. Returns the call's
 * result (< 0: errno set, nothing changed); on success fills res and
 * updates owed. */
ssize_t insert_send(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		    const struct msghdr *msg, const struct insertion *ins, struct owed_bytes *owed,
		    struct insert_result *res) __attribute__((visibility("hidden")));

/* The application's bytes as they came. */
ssize_t insert_send_plain(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
			  const struct msghdr *msg) __attribute__((visibility("hidden")));

/* Sends owed bytes with write until none are left. False (errno set) if
 * they could not all go out. */
bool insert_pay_owed(int fd, struct owed_bytes *owed) __attribute__((visibility("hidden")));

/* ---- through a TLS library ----------------------------------------------- */

/* How a TLS connection's plaintext goes out: send(ssl, buf, n) is the TLS
 * library's write, returning the bytes it took (> 0) or its failure (<= 0,
 * nothing taken). Unless partial (SSL_MODE_ENABLE_PARTIAL_WRITE) a send
 * takes all or nothing, and a failed one is retried by the program with
 * the same arguments; the library requires a failed send's retry to pass
 * the same buffer and length. */
struct tls_sender {
	ssize_t (*send)(void *ssl, const void *buf, size_t n);
	void *ssl;
	bool partial;
};

/* Where a stream written through a TLS library gets added text. plan: of
 * the n bytes at buf about to go, how many come before the next text,
 * which it writes to text (the owed buffer, empty then; *text_len its
 * length, 0 for none: then it returns n). advance: the first n of those
 * bytes went. added: the planned text went into the owed buffer. stop:
 * the stream cannot be followed any more (no text is planned again). */
struct tls_planner {
	size_t (*plan)(void *stream, const char *buf, size_t n, char *text, size_t *text_len);
	void (*advance)(void *stream, const char *buf, size_t n);
	void (*added)(void *stream);
	void (*stop)(void *stream);
	void *stream;
};

/* A write of n bytes (n > 0) the program makes through the TLS library,
 * with the planned texts added: its bytes and the texts go out as a series
 * of sends, each text always from the owed buffer, so that whatever send
 * fails is retried as it was. *sent (kept by the stream) is how many of
 * the program's bytes a failed write had already sent: its retry goes on
 * from there. Returns what the program's call returns: without partial
 * writes n, or the failing send's result; with them the count of the
 * program's bytes that went (> 0), or the failing send's result if none
 * did. */
ssize_t insert_send_tls(const struct tls_sender *to, const struct tls_planner *plan,
			struct owed_bytes *owed, uint32_t *sent, const void *buf, size_t n)
	__attribute__((visibility("hidden")));

/* Sends the owed bytes through to: false if they could not all go (the
 * failed send is retried as it was by the next call). */
bool insert_pay_owed_tls(const struct tls_sender *to, struct owed_bytes *owed)
	__attribute__((visibility("hidden")));

#endif
