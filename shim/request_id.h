/*
 * request_id.h - validating inbound request ids and generating new ones.
 *
 * Pure logic. Generation is lock-free and makes no syscall: XXH3-128 over a
 * per-process random key and an atomic counter. Never allocates.
 */
#ifndef REQID_REQUEST_ID_H
#define REQID_REQUEST_ID_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQUEST_ID_MAX 128
#define GENERATED_ID_LEN 32

/* 1..128 bytes of [A-Za-z0-9._:-]: safe to place in JSON, logfmt and headers
 * without escaping, and impossible to use for log injection. */
bool request_id_is_valid(const char *s, size_t len);

/* Lowercase hex, 32 chars, not all zero. */
bool request_id_is_trace_id(const char *s, size_t len);

struct id_generator {
	uint8_t key[16];
	_Atomic uint64_t counter;
};

/* key: 16 random bytes (getrandom in the shim, fixed in tests). */
void id_generator_seed(struct id_generator *gen, const uint8_t key[16]);

/* Writes 32 lowercase hex chars (not NUL-terminated), never all zero. */
void id_generate(struct id_generator *gen, char out[GENERATED_ID_LEN]);

/* Writes 2*len lowercase hex chars for len bytes. */
void hex_encode(const uint8_t *bytes, size_t len, char *out);

#endif
