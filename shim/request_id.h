/*
 * request_id.h - validating inbound request ids and generating new ones.
 *
 * Pure logic. Generation is lock-free and makes no syscall: XXH3-128 over a
 * random key (one per process tree: fork children keep it and move their
 * counter far away instead) and an atomic counter. Never allocates.
 */
#ifndef REQID_REQUEST_ID_H
#define REQID_REQUEST_ID_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fork_hot.h"

#define REQUEST_ID_MAX 128
#define GENERATED_ID_LEN 32

/* 1..128 bytes of [A-Za-z0-9._:-]: safe to place in JSON, logfmt and headers
 * without escaping, and impossible to use for log injection. */
bool request_id_is_valid(const char *s, size_t len);

/* request_id_is_valid, placed with the start-up code (START_PATH). */
bool request_id_is_valid_at_start(const char *s, size_t len);

/* Lowercase hex, 32 chars, not all zero. */
bool request_id_is_trace_id(const char *s, size_t len);

struct id_generator {
	uint8_t key[16];
	_Atomic uint64_t counter;
};

/* key: 16 random bytes (getrandom in the shim, fixed in tests). */
void id_generator_seed(struct id_generator *gen, const uint8_t key[16]);

/* Takes count consecutive counter values for id_generate_at and returns the
 * first: what ids are made from is fixed now, the hashing can wait. */
static inline uint64_t id_reserve(struct id_generator *gen, unsigned count)
{
	return atomic_fetch_add_explicit(&gen->counter, count, memory_order_relaxed);
}

/* Writes the id of counter value n: 32 lowercase hex chars (not
 * NUL-terminated), never all zero. The same n gives the same id as long as
 * the key stays, in every thread and in fork children. */
void id_generate_at(const struct id_generator *gen, uint64_t n, char out[GENERATED_ID_LEN]);

/* id_generate_at of a fresh counter value. */
void id_generate(struct id_generator *gen, char out[GENERATED_ID_LEN]);

/* In a fork child (pid: its own): the key stays (ids reserved before the
 * fork are made the same as in the parent) and the counter jumps to a
 * place of its own, a hash of the key, the counter and the pid, which the
 * parent's and every other child's ids come nowhere near (64-bit places,
 * each process using a few billion at most). Two children of one parent
 * under one reused pid are told apart by the counter: the parent takes a
 * value of it (id_reserve) before each fork. */
void id_generator_after_fork(struct id_generator *gen, uint32_t pid) FORK_PATH;

/* Writes 2*len lowercase hex chars for len bytes. */
void hex_encode(const uint8_t *bytes, size_t len, char *out);

#endif
