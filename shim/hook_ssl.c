/*
 * hook_ssl.c - SSL_read, SSL_read_ex, SSL_write and SSL_write_ex of OpenSSL
 * 3 (libssl.so.3), for servers that terminate TLS themselves.
 *
 * On an accepted connection the plaintext these calls carry is what a plain
 * connection's socket carries: requests read through them feed the
 * connection's parser, and responses written through them get the header.
 * The socket beneath then carries records, which the socket hooks leave
 * alone (conn_table.h). The shim does not link libssl: SSL is opaque, and
 * the library's functions are found once, where the program loaded it
 * (python's _ssl loads it privately, out of dlsym(RTLD_NEXT)'s reach).
 *
 * Must never change what the program gets from these calls but for the
 * added header (same plaintext, return values, errno and error state), and
 * never call the loader again once the functions are found.
 */
#include "hooks.h"

#include "conn_output.h"

#include <dlfcn.h>

typedef struct ssl_st SSL;

/* OpenSSL's declarations, as its headers give them. */
int SSL_read(SSL *s, void *buf, int num);
int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes);
int SSL_write(SSL *s, const void *buf, int num);
int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written);

#define SSL_CTRL_MODE 33
#define SSL_MODE_ENABLE_PARTIAL_WRITE 0x1L

/* The library's functions the hooks call. */
struct ssl_functions {
	int (*read)(SSL *, void *, int);
	int (*read_ex)(SSL *, void *, size_t, size_t *);
	int (*write)(SSL *, const void *, int);
	int (*write_ex)(SSL *, const void *, size_t, size_t *);
	int (*get_rfd)(const SSL *);
	int (*get_wfd)(const SSL *);
	long (*ctrl)(SSL *, int, long, void *);
};

static struct ssl_functions ssl;
static _Atomic bool ssl_found;

/* name in the libssl the program uses: the next definition after the shim,
 * or, for a library loaded privately, in the loaded libssl.so.3 itself. */
static void *ssl_function(void *lib, const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	return f || !lib ? f : dlvsym(lib, name, "OPENSSL_3.0.0");
}

#define FIND(field, name) \
	__atomic_store_n((void **)&ssl.field, ssl_function(lib, name), __ATOMIC_RELAXED)

/* Finds the functions the first time a hook runs (the program has loaded
 * libssl by then: it calls into it). Threads that meet here store the same
 * values. */
static __attribute__((noinline, cold)) void ssl_find(void)
{
	int saved = errno;
	void *lib = dlopen("libssl.so.3", RTLD_LAZY | RTLD_NOLOAD);
	FIND(read, "SSL_read");
	FIND(read_ex, "SSL_read_ex");
	FIND(write, "SSL_write");
	FIND(write_ex, "SSL_write_ex");
	FIND(get_rfd, "SSL_get_rfd");
	FIND(get_wfd, "SSL_get_wfd");
	FIND(ctrl, "SSL_ctrl");
	atomic_store_explicit(&ssl_found, true, memory_order_release);
	errno = saved;
}

static inline const struct ssl_functions *ssl_functions(void)
{
	if (unlikely(!atomic_load_explicit(&ssl_found, memory_order_acquire)))
		ssl_find();
	return &ssl;
}

/* The accepted connection an SSL call on s reads (or writes) through,
 * marked as a TLS connection and the thread's context told of the I/O about
 * to happen on it; -1 if it is none. */
static int tls_conn(const struct ssl_functions *f, SSL *s, bool reading)
{
	if (!shim.active || !f->get_rfd || !f->get_wfd || !f->ctrl)
		return -1;
	int saved = errno;
	int fd = reading ? f->get_rfd(s) : f->get_wfd(s);
	errno = saved;
	if (!(fd_class(fd) & FD_CONN))
		return -1;
	conn_tls_begin(fd);
	ctx_before_conn_io(fd);
	return fd;
}

/* After an SSL read call on connection fd gave n bytes of plaintext. */
static void tls_read_done(int fd, const void *buf, size_t n)
{
	int saved = errno;
	conn_on_tls_read(fd, buf, n);
	ctx_after_conn_io(fd, false, n > 0);
	errno = saved;
}

/* After an SSL write call on connection fd returned r. */
static void tls_write_done(int fd, ssize_t r)
{
	int saved = errno;
	if (r > 0)
		conn_on_tls_write(fd);
	ctx_after_conn_io(fd, true, r > 0);
	errno = saved;
}

/* Whether s may take part of a write (SSL_MODE_ENABLE_PARTIAL_WRITE). */
static bool partial_writes(const struct ssl_functions *f, SSL *s)
{
	return (f->ctrl(s, SSL_CTRL_MODE, 0, NULL) & SSL_MODE_ENABLE_PARTIAL_WRITE) != 0;
}

/* Without the library's function the call cannot be made: its failure. */
static int no_library(int failure)
{
	errno = ENOSYS;
	return failure;
}

EXPORT int SSL_read(SSL *s, void *buf, int num)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->read))
		return no_library(-1);
	int fd = tls_conn(f, s, true);
	if (fd < 0)
		return f->read(s, buf, num);
	int r = f->read(s, buf, num);
	tls_read_done(fd, buf, r > 0 ? (size_t)r : 0);
	return r;
}

EXPORT int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->read_ex))
		return no_library(0);
	int fd = tls_conn(f, s, true);
	if (fd < 0)
		return f->read_ex(s, buf, num, readbytes);
	int r = f->read_ex(s, buf, num, readbytes);
	tls_read_done(fd, buf, r > 0 ? *readbytes : 0);
	return r;
}

static ssize_t send_write(void *s, const void *buf, size_t n)
{
	return ssl.write(s, buf, (int)n);
}

static ssize_t send_write_ex(void *s, const void *buf, size_t n)
{
	size_t written = 0;
	int ok = ssl.write_ex(s, buf, n, &written);
	return ok > 0 ? (ssize_t)written : ok;
}

EXPORT int SSL_write(SSL *s, const void *buf, int num)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->write))
		return no_library(-1);
	int fd = num > 0 ? tls_conn(f, s, false) : -1;
	if (fd < 0)
		return f->write(s, buf, num);
	struct tls_sender to = {send_write, s, partial_writes(f, s)};
	ssize_t r = conn_output_tls(fd, &to, buf, (size_t)num);
	tls_write_done(fd, r);
	return (int)r;
}

EXPORT int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->write_ex))
		return no_library(0);
	int fd = num > 0 && num <= INT_MAX ? tls_conn(f, s, false) : -1;
	if (fd < 0)
		return f->write_ex(s, buf, num, written);
	struct tls_sender to = {send_write_ex, s, partial_writes(f, s)};
	ssize_t r = conn_output_tls(fd, &to, buf, num);
	tls_write_done(fd, r);
	if (r <= 0)
		return (int)r;
	*written = (size_t)r;
	return 1;
}
