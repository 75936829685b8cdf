/*
 * conn_output.h - writing what the application writes on a connection, with
 * the request's id added to each response as a header (REQID_RESPONSE_HEADER,
 * default X-Request-ID) unless the response already has it.
 *
 * The application sees the return value it would see for its own bytes: a
 * write that went out returns its count; one cut short by the kernel
 * returns the count of its own bytes that went out. Header bytes the kernel
 * did not take yet are owed to the connection and go out first at its next
 * write, so the client always receives a well-formed response.
 */
#ifndef REQID_CONN_OUTPUT_H
#define REQID_CONN_OUTPUT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "insert_output.h"

/* A write-like call on connection fd, made as writev (use_send false) or as
 * sendmsg with flags (msg, if not NULL, gives the destination and ancillary
 * data). Returns what the application's call returns. */
ssize_t conn_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		    const struct msghdr *msg) __attribute__((visibility("hidden")));

/* Before sendfile on connection fd: owed header bytes go first. False (errno
 * set) if they could not all go out. After it: r body bytes went out. */
bool conn_output_before_sendfile(int fd) __attribute__((visibility("hidden")));
void conn_output_sendfile_done(int fd, ssize_t r) __attribute__((visibility("hidden")));

/* Whether connection fd's response has been written whole (or cannot be
 * followed, or responses are not followed at all: no header is added): an
 * end of file read now ends its request (conn_on_eof). One a client cut
 * short goes on: the server's lines about it are still the request's. */
bool conn_output_response_done(int fd) __attribute__((visibility("hidden")));

/* A write of n bytes (n > 0) the program makes through the TLS library on
 * connection fd, with the header added (insert_send_tls). Returns what the
 * program's call returns. */
ssize_t conn_output_tls(int fd, struct tls_sender *to, const void *buf, size_t n)
	__attribute__((visibility("hidden")));

/* Before SSL_sendfile on connection fd: header bytes still owed go first,
 * through to. False if they could not all go (the failed send is retried
 * as it was by the next call). After it: r body bytes went out. */
bool conn_output_tls_before_sendfile(int fd, struct tls_sender *to)
	__attribute__((visibility("hidden")));
void conn_output_tls_sendfile_done(int fd, ssize_t r) __attribute__((visibility("hidden")));

/* TLS object ssl, on connection fd, is freed: nothing is owed or retried
 * through it any more. Nothing changes unless ssl is the object that wrote
 * fd's current connection (a stale one's descriptor may be another
 * connection's by now). */
void conn_output_tls_end(int fd, const void *ssl) __attribute__((visibility("hidden")));

#endif
