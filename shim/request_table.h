/*
 * request_table.h - the ids of recent requests, named by a serial number.
 *
 * Threads and connections refer to a request by its 64-bit serial; the id
 * text lives in a fixed ring of slots. A slot is reused only after
 * REQUEST_SLOTS newer requests, and a reader that finds the slot reused gets
 * no id rather than another request's. Lock-free (a seqlock per slot), no
 * allocation: safe in hooks and signal handlers.
 */
#ifndef REQID_REQUEST_TABLE_H
#define REQID_REQUEST_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request_id.h"

#define REQUEST_SLOTS 16384

/* Stores id and returns its new serial; 0 (no id) only if every slot tried
 * was being written by a stalled writer. */
uint64_t request_table_add(const char *id, size_t len) __attribute__((visibility("hidden")));

/* Copies the id of request serial into out; 0 if it is no longer stored. */
size_t request_table_get(uint64_t serial, char out[REQUEST_ID_MAX])
	__attribute__((visibility("hidden")));

#endif
