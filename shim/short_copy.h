/*
 * short_copy.h - copies of at most 128 bytes (a request line, a header
 * value, an id) without a call to memcpy, for the parser's and the request
 * table's hot paths.
 *
 * Reads exactly the source's n bytes and writes exactly the destination's
 * n: never a byte outside either, whatever the buffers around them. Must
 * never be given more than 128 bytes.
 */
#ifndef REQID_SHORT_COPY_H
#define REQID_SHORT_COPY_H

#include <emmintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copies 16 bytes k times from s to d. */
static inline __attribute__((always_inline)) void
move_blocks(unsigned char *restrict d, const unsigned char *restrict s, unsigned k)
{
	for (unsigned b = 0; b < k; b++)
		_mm_storeu_si128((__m128i *)(d + 16 * b),
				 _mm_loadu_si128((const __m128i *)(s + 16 * b)));
}

/* Copies n <= 128 bytes (a request line, a captured value, an id) without
 * a call: one, two or four 16-byte moves from the start and as many ending
 * at n (they overlap rather than pass it), or for fewer than 16 bytes two
 * moves of 8, 4 or 2 bytes that overlap. Exactly src[0, n) is read and
 * dst[0, n) written. */
static inline __attribute__((always_inline)) void
copy_bytes(void *restrict dst, const void *restrict src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	if (n >= 16) {
		if (n <= 32) {
			move_blocks(d, s, 1);
			move_blocks(d + n - 16, s + n - 16, 1);
		} else if (n <= 64) {
			move_blocks(d, s, 2);
			move_blocks(d + n - 32, s + n - 32, 2);
		} else {
			move_blocks(d, s, 4);
			move_blocks(d + n - 64, s + n - 64, 4);
		}
	} else if (n >= 8) {
		uint64_t head, tail;
		memcpy(&head, s, 8);
		memcpy(&tail, s + n - 8, 8);
		memcpy(d, &head, 8);
		memcpy(d + n - 8, &tail, 8);
	} else if (n >= 4) {
		uint32_t head, tail;
		memcpy(&head, s, 4);
		memcpy(&tail, s + n - 4, 4);
		memcpy(d, &head, 4);
		memcpy(d + n - 4, &tail, 4);
	} else if (n >= 2) {
		uint16_t head, tail;
		memcpy(&head, s, 2);
		memcpy(&tail, s + n - 2, 2);
		memcpy(d, &head, 2);
		memcpy(d + n - 2, &tail, 2);
	} else if (n == 1) {
		d[0] = s[0];
	}
}

#endif
