/*
 * head_store.h - room for the text of request heads that span reads.
 *
 * A connection keeps its parser's state in its conn_table entry (under a
 * hundred bytes) and its head's text (about 900 bytes: id candidates, the
 * traceparent, the request line, the tracestate) only while a head arrives
 * in more than one read: then it holds one slot of this store. Slots are
 * claimed lowest first from chunks mapped at first use, so resident memory
 * follows the heads being read at one time, not the connections open. A
 * descriptor holds at most one slot, so the store never runs out; only
 * mapping a chunk can fail.
 *
 * Lock-free (a bitmap of claims), no malloc: safe in hooks and signal
 * handlers. It must never hand one slot to two holders.
 */
#ifndef REQID_HEAD_STORE_H
#define REQID_HEAD_STORE_H

#include <stdint.h>

#include "conn_table.h"
#include "http_parser.h"

#define HEAD_SLOTS FD_LIMIT

/* A free slot, now the caller's: its number plus one (what
 * head_store_text and head_store_release take); 0 if its chunk could not
 * be mapped. Keeps errno. */
uint32_t head_store_claim(void) __attribute__((visibility("hidden")));

/* The HTTP_PARSER_TEXT_SIZE bytes of a claimed slot. */
char *head_store_text(uint32_t slot) __attribute__((visibility("hidden")));

/* Gives a claimed slot back. */
void head_store_release(uint32_t slot) __attribute__((visibility("hidden")));

#endif
