/*
 * client_output.h - outbound HTTP requests carrying the trace of the request
 * being served: on a TCP connection the process opened with connect(),
 * each HTTP/1.x request written while the writing thread is certain of its
 * request gets "traceparent" (with "tracestate" when one came in) and the
 * id header (REQID_RESPONSE_HEADER, default X-Request-ID) before the end of
 * its header block, unless the application sent them itself.
 *
 * The application sees the return values its own bytes would get; added
 * bytes the kernel did not take are owed and go out first at the next
 * write. A connection whose bytes stop parsing as HTTP requests, or that
 * two threads write at once, is left alone from then on.
 */
#ifndef REQID_CLIENT_OUTPUT_H
#define REQID_CLIENT_OUTPUT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "insert_output.h"

#define CLIENT_SLOTS 1024 /* outbound connections tracked at once */

/* fd was connected (or is connecting) to addr: a TCP stream becomes an
 * outbound connection if a slot is free. */
void client_connected(int fd, const struct sockaddr *addr) __attribute__((visibility("hidden")));

/* fd is closed or replaced: its slot goes back. */
void client_forget(int fd) __attribute__((visibility("hidden")));

/* A write-like call on outbound connection fd (see conn_output.h for the
 * arguments). Returns what the application's call returns. */
ssize_t client_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		      const struct msghdr *msg) __attribute__((visibility("hidden")));

/* sendfile on outbound connection fd: owed bytes go first (false, errno
 * set, if they cannot); the bytes it sends go unseen, so the connection is
 * left alone from then on. */
bool client_before_sendfile(int fd) __attribute__((visibility("hidden")));

/* A write of n bytes (n > 0) the program makes through the TLS library on
 * outbound connection fd, with the trace headers added (insert_send_tls).
 * From the first such write the socket's own bytes are records, never
 * parsed (as they are from a first write that begins a TLS handshake).
 * Returns what the program's call returns. */
ssize_t client_output_tls(int fd, struct tls_sender *to, const void *buf, size_t n)
	__attribute__((visibility("hidden")));

/* TLS object ssl, on outbound connection fd, is freed: nothing is owed or
 * retried through it any more. Nothing changes unless ssl is the object
 * that wrote fd's current connection (a stale one's descriptor may be
 * another connection's by now). */
void client_output_tls_end(int fd, const void *ssl) __attribute__((visibility("hidden")));

#endif
