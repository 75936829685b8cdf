/*
 * traceparent.h - parsing a W3C Trace Context traceparent header value.
 *
 * Pure logic, never allocates. Follows the spec's rules: lowercase hex only,
 * version ff invalid, all-zero trace-id or parent-id invalid, version 00
 * exactly 55 chars, higher versions at least 55 chars with '-' after the
 * flags when longer; surrounding spaces and tabs are ignored.
 */
#ifndef REQID_TRACEPARENT_H
#define REQID_TRACEPARENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct traceparent {
	uint8_t version;
	char trace_id[32];
	char parent_id[16];
	uint8_t flags;
};

bool traceparent_parse(const char *value, size_t len, struct traceparent *out);

/* The value of lowercase hex digit c; -1 for any other byte. */
int hex_digit(char c);

#endif
