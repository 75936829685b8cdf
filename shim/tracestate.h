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
 * W3C Trace Context and writes the normalised list to out (which has room for
 * len bytes): members joined by ',' with no optional whitespace, empty members
 * dropped, order kept.
 * Returns the normalised length (0 when there are no members), or -1 when the
 * whole tracestate must be dropped: any member invalid, more than 32 members,
 * a key that appears twice, or len > TRACESTATE_MAX. After -1 the contents of
 * out are unspecified. Never reads past in[len-1], never writes past
 * out[len-1].
 */
int tracestate_normalize(const char *in, size_t len, char *out);

#endif
