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

/* A write-like call on connection fd, made as writev (use_send false) or as
 * sendmsg with flags (msg, if not NULL, gives the destination and ancillary
 * data). Returns what the application's call returns. */
ssize_t conn_output(int fd, const struct iovec *iov, int iovcnt, int flags, bool use_send,
		    const struct msghdr *msg) __attribute__((visibility("hidden")));

/* Before sendfile on connection fd: owed header bytes go first. False (errno
 * set) if they could not all go out. After it: r body bytes went out. */
bool conn_output_before_sendfile(int fd) __attribute__((visibility("hidden")));
void conn_output_sendfile_done(int fd, ssize_t r) __attribute__((visibility("hidden")));

#endif
