/*
 * tls_bind.h - which socket a TLS library's SSL object does its I/O on,
 * for programs whose library reads and writes through a BIO of their own
 * (SSL_get_fd says -1): learnt from the socket I/O its calls make on the
 * calling thread (hook_ssl.c), kept until SSL_free.
 *
 * A fixed table, lock-free: never allocates or blocks. A full table learns
 * nothing more (those SSL objects stay untracked).
 */
#ifndef REQID_TLS_BIND_H
#define REQID_TLS_BIND_H

/* The socket ssl was seen doing I/O on, or -1. */
int tls_bind_fd(const void *ssl) __attribute__((visibility("hidden")));

/* ssl does its I/O on fd. */
void tls_bind_set(const void *ssl, int fd) __attribute__((visibility("hidden")));

/* ssl is being freed. */
void tls_bind_forget(const void *ssl) __attribute__((visibility("hidden")));

#endif
