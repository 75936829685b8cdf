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

#endif
