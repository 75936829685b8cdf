/*
 * seq_copy.h - bytes into and out of a seqlocked slot (request_table.c).
 *
 * A reader may copy a slot while a writer rewrites it; it then finds the
 * slot's serial changed and throws its copy away. C11 allows such
 * concurrent access only through atomics, so both sides copy with relaxed
 * atomic loads and stores: a word at a time where the slot side is
 * 8-aligned and the length a multiple of 8, a byte at a time elsewhere. On
 * x86-64 these are plain moves, and ThreadSanitizer sees no data race.
 * Must never be used for anything but bytes under a seqlock, and never
 * orders anything by itself: the serial's acquire/release and the fences
 * around it do.
 */
#ifndef REQID_SEQ_COPY_H
#define REQID_SEQ_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t __attribute__((may_alias)) seq_word;

static inline int seq_words_fit(const void *slot_side, size_t n)
{
	return ((uintptr_t)slot_side & 7) == 0 && (n & 7) == 0;
}

/* Writes n bytes of src (private) into a slot at dst. */
static inline void seq_store(void *dst, const void *src, size_t n)
{
	if (seq_words_fit(dst, n)) {
		seq_word *d = dst;
#pragma GCC unroll 28
		for (size_t i = 0; i < n / 8; i++) {
			uint64_t w;
			memcpy(&w, (const char *)src + 8 * i, 8);
			__atomic_store_n(&d[i], w, __ATOMIC_RELAXED);
		}
		return;
	}
	unsigned char *d = dst;
	const unsigned char *s = src;
	for (size_t i = 0; i < n; i++)
		__atomic_store_n(&d[i], s[i], __ATOMIC_RELAXED);
}

/* Reads n bytes of a slot at src into dst (private). */
static inline void seq_load(void *dst, const void *src, size_t n)
{
	if (seq_words_fit(src, n)) {
		const seq_word *s = src;
#pragma GCC unroll 28
		for (size_t i = 0; i < n / 8; i++) {
			uint64_t w = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
			memcpy((char *)dst + 8 * i, &w, 8);
		}
		return;
	}
	const unsigned char *s = src;
	unsigned char *d = dst;
	for (size_t i = 0; i < n; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

#endif
