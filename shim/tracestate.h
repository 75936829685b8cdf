/*
 * tracestate.h - validating and normalising a W3C Trace Context tracestate
 * header value.
 *
 * Pure logic on the caller's buffers. Never allocates, never does I/O, never
 * reads or writes outside the lengths it is given.
 */
#ifndef REQID_TRACESTATE_H
#define REQID_TRACESTATE_H

#include <stddef.h>

#define TRACESTATE_MAX 512 /* bytes of combined tracestate the shim keeps */
#define TRACESTATE_MEMBERS_MAX 32

/*
 * in: a combined tracestate value (several header lines already joined with
 * ','), len bytes, len <= TRACESTATE_MAX. Validates it member by member per
 * the W3C Trace Context editor's draft and writes the normalised list to out
 * (which has room for len bytes): members joined by ',' with no optional
 * whitespace, empty members dropped, order kept, and of members with the
 * same key only the first.
 * A key is 1..256 chars: a lowercase letter or digit, then lowercase letters,
 * digits, '_', '-', '*', '/' and '@' (any number, anywhere but first). A
 * value is 1..256 chars of 0x20..0x7e but ',' and '=', not ending in a space.
 * Returns the normalised length (0 when there are no members), or -1 when the
 * whole tracestate must be dropped: any member invalid, more than 32
 * non-empty members (repeated keys count), or len > TRACESTATE_MAX. After -1
 * the contents of out are unspecified. Never reads past in[len-1], never
 * writes past out[len-1].
 */
int tracestate_normalize(const char *in, size_t len, char *out);

#endif
