/*
 * head_store.c - slots for the text of request heads that span reads (see
 * head_store.h).
 *
 * One bit per slot says it is claimed; a claim sets the lowest clear bit
 * with a compare-and-swap, so slots low in the store are reused first and
 * the chunks above the busiest moment are never touched. Never blocks,
 * never allocates with malloc.
 */
#include "head_store.h"

#include <stdatomic.h>

#include "large_table.h"
#include "map_once.h"

#define STORE_CHUNK 64 /* slots per mapped chunk: one word of claim bits */

static _Atomic uint64_t claimed[HEAD_SLOTS / STORE_CHUNK] LARGE_TABLE;
static void *_Atomic chunks[HEAD_SLOTS / STORE_CHUNK] LARGE_TABLE;

uint32_t head_store_claim(void)
{
	for (uint32_t w = 0; w < HEAD_SLOTS / STORE_CHUNK; w++) {
		uint64_t bits = atomic_load_explicit(&claimed[w], memory_order_relaxed);
		while (bits != UINT64_MAX) {
			if (!map_once(&chunks[w], STORE_CHUNK * HTTP_PARSER_TEXT_SIZE))
				return 0;
			uint64_t bit = ~bits & (bits + 1); /* the lowest clear bit */
			if (atomic_compare_exchange_weak_explicit(&claimed[w], &bits, bits | bit,
								  memory_order_acquire,
								  memory_order_relaxed))
				return w * STORE_CHUNK + (uint32_t)__builtin_ctzll(bit) + 1;
		}
	}
	return 0;
}

char *head_store_text(uint32_t slot)
{
	uint32_t n = slot - 1;
	char *chunk = atomic_load_explicit(&chunks[n / STORE_CHUNK], memory_order_acquire);
	return chunk + (size_t)(n % STORE_CHUNK) * HTTP_PARSER_TEXT_SIZE;
}

void head_store_release(uint32_t slot)
{
	uint32_t n = slot - 1;
	atomic_fetch_and_explicit(&claimed[n / STORE_CHUNK], ~(UINT64_C(1) << (n % STORE_CHUNK)),
				  memory_order_release);
}
