/*
 * hook_ssl.c - the OpenSSL 3 (libssl.so.3) calls that move a server's
 * plaintext: SSL_read, SSL_read_ex, SSL_peek, SSL_peek_ex,
 * SSL_read_early_data, SSL_write, SSL_write_ex, SSL_write_early_data,
 * SSL_sendfile; and SSL_accept, SSL_connect, SSL_do_handshake, SSL_shutdown
 * and SSL_free for the socket I/O they make and the state they end. Writes
 * on an outbound connection (the client side) get the trace headers
 * (client_output.h).
 *
 * On an accepted connection the plaintext these calls carry is what a plain
 * connection's socket carries: requests read through them feed the
 * connection's parser, and responses written through them get the header.
 * The socket beneath then carries records, which the socket hooks leave
 * alone (conn_table.h). A connection is found with SSL_get_rfd/wfd, or, for
 * a library doing its I/O through the program's own BIO, from the socket
 * I/O its calls make on the calling thread (tls_bind.h). HTTP/2 chosen by
 * ALPN, and anything else that is not HTTP/1 inside TLS, loses the
 * connection: no id, no header.
 *
 * The shim does not link libssl: SSL is opaque, and the library's functions
 * are found once, where the program loaded it (python's _ssl loads it
 * privately, out of dlsym(RTLD_NEXT)'s reach). Must never change what the
 * program gets from these calls but for the added header (same plaintext,
 * return values, errno and error state), and never call the loader again
 * once the functions are found.
 */
#include "hooks.h"

#include "client_output.h"
#include "conn_output.h"
#include "raw_syscall.h"
#include "tls_bind.h"

#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

typedef struct ssl_st SSL;

/* OpenSSL's declarations, as its headers give them. */
int SSL_read(SSL *s, void *buf, int num);
int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes);
int SSL_peek(SSL *s, void *buf, int num);
int SSL_peek_ex(SSL *s, void *buf, size_t num, size_t *readbytes);
int SSL_read_early_data(SSL *s, void *buf, size_t num, size_t *readbytes);
int SSL_write(SSL *s, const void *buf, int num);
int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written);
int SSL_write_early_data(SSL *s, const void *buf, size_t num, size_t *written);
ssize_t SSL_sendfile(SSL *s, int fd, off_t offset, size_t size, int flags);
int SSL_accept(SSL *s);
int SSL_connect(SSL *s);
int SSL_do_handshake(SSL *s);
int SSL_shutdown(SSL *s);
void SSL_free(SSL *s);
int SSL_get_shutdown(const SSL *s);

#define SSL_CTRL_MODE 33
#define SSL_MODE_ENABLE_PARTIAL_WRITE 0x1L
#define SSL_READ_EARLY_DATA_ERROR 0
#define SSL_RECEIVED_SHUTDOWN 2

/* The library's functions the hooks call. */
struct ssl_functions {
	int (*read)(SSL *, void *, int);
	int (*read_ex)(SSL *, void *, size_t, size_t *);
	int (*peek)(SSL *, void *, int);
	int (*peek_ex)(SSL *, void *, size_t, size_t *);
	int (*read_early_data)(SSL *, void *, size_t, size_t *);
	int (*write)(SSL *, const void *, int);
	int (*write_ex)(SSL *, const void *, size_t, size_t *);
	int (*write_early_data)(SSL *, const void *, size_t, size_t *);
	ssize_t (*sendfile)(SSL *, int, off_t, size_t, int);
	int (*accept)(SSL *);
	int (*connect)(SSL *);
	int (*do_handshake)(SSL *);
	int (*shutdown)(SSL *);
	void (*free)(SSL *);
	int (*get_rfd)(const SSL *);
	int (*get_wfd)(const SSL *);
	long (*ctrl)(SSL *, int, long, void *);
	void (*alpn_selected)(const SSL *, const unsigned char **, unsigned *);
	int (*get_shutdown)(const SSL *);
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
	FIND(peek, "SSL_peek");
	FIND(peek_ex, "SSL_peek_ex");
	FIND(read_early_data, "SSL_read_early_data");
	FIND(write, "SSL_write");
	FIND(write_ex, "SSL_write_ex");
	FIND(write_early_data, "SSL_write_early_data");
	FIND(sendfile, "SSL_sendfile");
	FIND(accept, "SSL_accept");
	FIND(connect, "SSL_connect");
	FIND(do_handshake, "SSL_do_handshake");
	FIND(shutdown, "SSL_shutdown");
	FIND(free, "SSL_free");
	FIND(get_rfd, "SSL_get_rfd");
	FIND(get_wfd, "SSL_get_wfd");
	FIND(ctrl, "SSL_ctrl");
	FIND(alpn_selected, "SSL_get0_alpn_selected");
	FIND(get_shutdown, "SSL_get_shutdown");
	atomic_store_explicit(&ssl_found, true, memory_order_release);
	errno = saved;
}

static inline const struct ssl_functions *ssl_functions(void)
{
	if (unlikely(!atomic_load_explicit(&ssl_found, memory_order_acquire)))
		ssl_find();
	return &ssl;
}

/* Without the library's function the call cannot be made: its failure. */
static int no_library(int failure)
{
	errno = ENOSYS;
	return failure;
}

bool socket_is_ktls(int fd)
{
	char ulp[16] = "";
	socklen_t len = sizeof(ulp) - 1;
	int saved = errno;
	bool ktls = raw_getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &len) == 0 && strcmp(ulp, "tls") == 0;
	errno = saved;
	return ktls;
}

/* A call into the library on s begins: the socket I/O of this thread until
 * it ends is the library's (conn_socket_io). Returns whether it is the
 * outermost such call. */
static bool ssl_enter(void)
{
	if (thread_ctx.in_ssl)
		return false;
	thread_ctx.in_ssl = true;
	thread_ctx.ssl_io_conn = 0;
	return true;
}

/* The call that ssl_enter began ends. A library with a BIO of the
 * program's (no fd of its own) did its I/O on the one connection its call
 * touched, if it touched one: s is bound to it. Returns that connection's
 * fd, or -1. Keeps errno (the call's, which the program may read). */
static int ssl_leave(const struct ssl_functions *f, SSL *s, bool outer)
{
	if (!outer)
		return -1;
	thread_ctx.in_ssl = false;
	uint32_t conn = thread_ctx.ssl_io_conn;
	if (conn == 0 || conn == UINT32_MAX || !f->get_rfd)
		return -1;
	int saved = errno;
	bool own_fd = f->get_rfd(s) >= 0;
	if (!own_fd)
		tls_bind_set(s, (int)conn - 1);
	errno = saved;
	return own_fd ? -1 : (int)conn - 1;
}

/* The socket s reads (or writes) through: its own fd, else the one its
 * calls were seen to use (tls_bind.h); -1 if neither is known. */
static int ssl_fd(const struct ssl_functions *f, SSL *s, bool reading)
{
	int fd = reading ? f->get_rfd(s) : f->get_wfd(s);
	return fd >= 0 ? fd : tls_bind_fd(s);
}

/* Whether s speaks HTTP/2 (ALPN chose "h2"). */
static bool speaks_h2(const struct ssl_functions *f, const SSL *s)
{
	const unsigned char *proto = NULL;
	unsigned len = 0;
	f->alpn_selected(s, &proto, &len);
	return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

/* The accepted connection an SSL call on s reads (or writes) through,
 * marked as a TLS connection and the thread's context told of the I/O about
 * to happen on it; -1 if it is none (or not known yet). */
static int tls_conn(const struct ssl_functions *f, SSL *s, bool reading)
{
	if (!shim.active || !f->get_rfd || !f->get_wfd || !f->ctrl || !f->alpn_selected)
		return -1;
	int saved = errno;
	int fd = ssl_fd(f, s, reading);
	errno = saved;
	if (!(fd_class(fd) & FD_CONN))
		return -1;
	conn_tls_begin(fd);
	if (speaks_h2(f, s))
		conn_lose_to_h2(fd);
	ctx_before_conn_io(fd);
	return fd;
}

/* After an SSL read call on s gave n bytes of plaintext from connection fd
 * (-1: not known before the call; learnt, if the call showed it). Peeked
 * bytes come again: they are not parsed. A read that gave nothing because
 * the peer's close_notify came is end of file (conn_on_eof); the socket
 * hooks see an end of file the socket gives. */
static void tls_read_done(const struct ssl_functions *f, SSL *s, int fd, int learnt,
			  const void *buf, size_t n, bool peeked)
{
	int saved = errno;
	if (fd < 0 && fd_class(learnt) & FD_CONN) {
		fd = learnt;
		conn_tls_begin(fd);
		ctx_before_conn_io(fd);
	}
	if (fd >= 0) {
		if (n > 0 && speaks_h2(f, s))
			conn_lose_to_h2(fd);
		else if (!peeked)
			conn_on_tls_read(fd, buf, n);
		if (n == 0 && !peeked && f->get_shutdown &&
		    (f->get_shutdown(s) & SSL_RECEIVED_SHUTDOWN) && conn_output_response_done(fd))
			conn_on_eof(fd);
		ctx_after_conn_io(fd, false, n > 0);
	}
	errno = saved;
}

/* After an SSL write call on connection fd returned r. */
static void tls_write_done(int fd, ssize_t r)
{
	int saved = errno;
	if (r > 0) {
		int32_t reader = conn_on_tls_write(fd);
		if (unlikely(reader != 0))
			ctx_response_began(fd, reader);
	}
	ctx_after_conn_io(fd, true, r > 0);
	errno = saved;
}

/* Whether s may take part of a write (SSL_MODE_ENABLE_PARTIAL_WRITE). */
static bool partial_writes(const struct ssl_functions *f, SSL *s)
{
	return (f->ctrl(s, SSL_CTRL_MODE, 0, NULL) & SSL_MODE_ENABLE_PARTIAL_WRITE) != 0;
}

/* ---- reading ------------------------------------------------------------ */

enum read_call { READ, READ_EX, PEEK, PEEK_EX, READ_EARLY_DATA };

/* The library's read call of that kind; *out is what it says of the bytes
 * it gave (for SSL_read and SSL_peek, its positive result). */
static int read_call(const struct ssl_functions *f, enum read_call call, SSL *s, void *buf,
		     size_t num, size_t *out)
{
	int r;
	switch (call) {
	case READ:
	case PEEK:
		r = (call == READ ? f->read : f->peek)(s, buf, (int)num);
		if (r > 0)
			*out = (size_t)r;
		return r;
	case READ_EX:
	case PEEK_EX:
		return (call == READ_EX ? f->read_ex : f->peek_ex)(s, buf, num, out);
	case READ_EARLY_DATA:
		break;
	}
	return f->read_early_data(s, buf, num, out);
}

/* A read of the program's through the library: nread (NULL for SSL_read
 * and SSL_peek) gets what the library says. A result > 0 (for early data,
 * SSL_READ_EARLY_DATA_SUCCESS or _FINISH) gave *nread bytes. */
static int tls_read(const struct ssl_functions *f, enum read_call call, SSL *s, void *buf,
		    size_t num, size_t *nread)
{
	size_t n = 0, *out = nread ? nread : &n;
	if (!shim.active)
		return read_call(f, call, s, buf, num, out);
	int fd = tls_conn(f, s, true);
	bool outer = ssl_enter();
	int r = read_call(f, call, s, buf, num, out);
	int learnt = ssl_leave(f, s, outer);
	tls_read_done(f, s, fd, learnt, buf, r > 0 ? *out : 0, call == PEEK || call == PEEK_EX);
	return r;
}

EXPORT int SSL_read(SSL *s, void *buf, int num)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->read))
		return no_library(-1);
	return tls_read(f, READ, s, buf, (size_t)num, NULL);
}

EXPORT int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->read_ex))
		return no_library(0);
	return tls_read(f, READ_EX, s, buf, num, readbytes);
}

EXPORT int SSL_peek(SSL *s, void *buf, int num)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->peek))
		return no_library(-1);
	return tls_read(f, PEEK, s, buf, (size_t)num, NULL);
}

EXPORT int SSL_peek_ex(SSL *s, void *buf, size_t num, size_t *readbytes)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->peek_ex))
		return no_library(0);
	return tls_read(f, PEEK_EX, s, buf, num, readbytes);
}

EXPORT int SSL_read_early_data(SSL *s, void *buf, size_t num, size_t *readbytes)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->read_early_data))
		return no_library(SSL_READ_EARLY_DATA_ERROR);
	return tls_read(f, READ_EARLY_DATA, s, buf, num, readbytes);
}

/* ---- writing ------------------------------------------------------------ */

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

static ssize_t send_write_early_data(void *s, const void *buf, size_t n)
{
	size_t written = 0;
	int ok = ssl.write_early_data(s, buf, n, &written);
	return ok > 0 ? (ssize_t)written : ok;
}

/* The outbound connection an SSL write on s goes to, the thread's context
 * told of it; -1 if it is none. */
static int tls_client(const struct ssl_functions *f, SSL *s)
{
	if (!shim.active || !f->get_rfd || !f->get_wfd || !f->ctrl)
		return -1;
	int saved = errno;
	int fd = ssl_fd(f, s, false);
	errno = saved;
	if (!(fd_class(fd) & FD_CLIENT) || !f->alpn_selected || speaks_h2(f, s))
		return -1;
	note_client_io(fd);
	return fd;
}

/* A write of the program's through the library, made by send: its n bytes
 * (0 < n <= INT_MAX) with the response header added on an accepted
 * connection, the trace headers on an outbound one. Returns what send
 * returned for them (conn_output_tls, client_output_tls). */
static ssize_t tls_write(const struct ssl_functions *f, SSL *s,
			 ssize_t (*send)(void *, const void *, size_t), const void *buf, size_t n)
{
	int fd = tls_conn(f, s, false);
	int client = fd < 0 ? tls_client(f, s) : -1;
	bool outer = ssl_enter();
	ssize_t r;
	if (fd >= 0 || client >= 0) {
		struct tls_sender to = {send, s, partial_writes(f, s)};
		r = fd >= 0 ? conn_output_tls(fd, &to, buf, n) : client_output_tls(client, &to, buf, n);
	} else {
		r = send(s, buf, n);
	}
	ssl_leave(f, s, outer);
	if (fd >= 0)
		tls_write_done(fd, r);
	return r;
}

EXPORT int SSL_write(SSL *s, const void *buf, int num)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->write))
		return no_library(-1);
	if (!shim.active || num <= 0)
		return f->write(s, buf, num);
	return (int)tls_write(f, s, send_write, buf, (size_t)num);
}

/* SSL_write_ex and SSL_write_early_data: 1 and the count, or 0. */
static int tls_write_counted(const struct ssl_functions *f, SSL *s,
			     ssize_t (*send)(void *, const void *, size_t), const void *buf,
			     size_t num, size_t *written)
{
	ssize_t r = tls_write(f, s, send, buf, num);
	if (r <= 0)
		return (int)r;
	*written = (size_t)r;
	return 1;
}

EXPORT int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->write_ex))
		return no_library(0);
	if (!shim.active || num == 0 || num > INT_MAX)
		return f->write_ex(s, buf, num, written);
	return tls_write_counted(f, s, send_write_ex, buf, num, written);
}

EXPORT int SSL_write_early_data(SSL *s, const void *buf, size_t num, size_t *written)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->write_early_data))
		return no_library(0);
	if (!shim.active || num == 0 || num > INT_MAX)
		return f->write_early_data(s, buf, num, written);
	return tls_write_counted(f, s, send_write_early_data, buf, num, written);
}

/* File bytes sent by kernel TLS: body bytes, after any header bytes still
 * owed. */
EXPORT ssize_t SSL_sendfile(SSL *s, int fd, off_t offset, size_t size, int flags)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->sendfile))
		return no_library(-1);
	if (!shim.active)
		return f->sendfile(s, fd, offset, size, flags);
	int conn = f->write_ex ? tls_conn(f, s, false) : -1;
	bool outer = ssl_enter();
	ssize_t r = -1;
	struct tls_sender to = {send_write_ex, s, false};
	if (conn < 0 || conn_output_tls_before_sendfile(conn, &to))
		r = f->sendfile(s, fd, offset, size, flags);
	ssl_leave(f, s, outer);
	if (conn >= 0) {
		int saved = errno;
		conn_output_tls_sendfile_done(conn, r);
		errno = saved;
		tls_write_done(conn, r);
	}
	return r;
}

/* ---- the rest of a connection's life --------------------------------------- */

/* Calls whose socket I/O (the handshake, close_notify) is the library's. */
#define SOCKET_CALL(name, field)                                           \
	EXPORT int name(SSL *s)                                            \
	{                                                                  \
		const struct ssl_functions *f = ssl_functions();           \
		if (unlikely(!f->field))                                   \
			return no_library(-1);                             \
		if (!shim.active)                                          \
			return f->field(s);                                \
		bool outer = ssl_enter();                                  \
		int r = f->field(s);                                       \
		ssl_leave(f, s, outer);                                    \
		return r;                                                  \
	}

SOCKET_CALL(SSL_accept, accept)
SOCKET_CALL(SSL_connect, connect)
SOCKET_CALL(SSL_do_handshake, do_handshake)
SOCKET_CALL(SSL_shutdown, shutdown)

/* What was kept for s (owed header bytes, a write to retry, its socket)
 * goes with it. */
EXPORT void SSL_free(SSL *s)
{
	const struct ssl_functions *f = ssl_functions();
	if (unlikely(!f->free))
		return;
	if (s && shim.active && f->get_wfd) {
		int saved = errno;
		int fd = ssl_fd(f, s, false);
		if ((fd_class(fd) & FD_CONN) && conn_is_tls(fd))
			conn_output_tls_end(fd, s);
		else if (fd_class(fd) & FD_CLIENT)
			client_output_tls_end(fd, s);
		tls_bind_forget(s);
		errno = saved;
	}
	f->free(s);
}
