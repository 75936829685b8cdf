/*
 * fake_ssl.h - the fake TLS library of the unit tests that drive the
 * shim's TLS output (test_tls_output.c, test_client_tls_output.c), with
 * OpenSSL's rules: a write takes its bytes (all of them, or in partial
 * mode at most cap) or fails taking none, and the call after a failed one
 * must pass the same buffer and length (else "bad write retry", a test
 * failure). Included once per program.
 */
#ifndef REQID_TEST_FAKE_SSL_H
#define REQID_TEST_FAKE_SSL_H

#include <string.h>
#include <sys/types.h>

struct fake_ssl {
	char out[65536];
	size_t out_len;
	unsigned calls;
	uint64_t fail_mask;  /* call k (k < 64) fails if bit k is set */
	size_t cap;          /* partial mode: most bytes a call takes; 0: all */
	const void *pending; /* a failed call's buffer and length, NULL if none */
	size_t pending_len;
};

/* The library's write, as a struct tls_sender's send. */
static ssize_t fake_send(void *ctx, const void *buf, size_t n)
{
	struct fake_ssl *f = ctx;
	if (f->pending && (f->pending != buf || f->pending_len != n))
		fail_msg("bad write retry: %p/%zu after %p/%zu", buf, n, f->pending, f->pending_len);
	unsigned k = f->calls++;
	if (k < 64 && (f->fail_mask >> k & 1)) {
		f->pending = buf;
		f->pending_len = n;
		return -1;
	}
	f->pending = NULL;
	size_t take = f->cap && n > f->cap ? f->cap : n;
	assert_true(f->out_len + take <= sizeof(f->out));
	memcpy(f->out + f->out_len, buf, take);
	f->out_len += take;
	return (ssize_t)take;
}

#endif
