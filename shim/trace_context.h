/*
 * trace_context.h - the W3C trace a request belongs to: choosing its
 * trace-id and flags from what came in, its span id, and the traceparent an
 * outbound request carries.
 *
 * Pure logic: no allocation, no I/O, no libc interposition.
 */
#ifndef REQID_TRACE_CONTEXT_H
#define REQID_TRACE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request_id.h"
#include "traceparent.h"

#define TRACEPARENT_LEN 55     /* version 00: "00-" 32 "-" 16 "-" 2 */
#define TRACE_FLAG_SAMPLED 0x01
#define TRACE_FLAG_RANDOM 0x02 /* the trace-id's right 7 bytes are random */
#define TRACE_FLAGS_KNOWN (TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM)

struct trace_ctx {
	char trace_id[32];
	char span_id[16]; /* the request's own span */
	uint8_t flags;
};

/* A request's trace as decided when the request starts, before its new
 * parts are made: the trace-id taken from what came in, or the counter
 * values (id_reserve) its new trace-id and span id are made from when
 * someone asks (trace_ctx_from_plan). Making them costs two hashes; most
 * requests never need them (no traced log fields, no outbound call). */
struct trace_plan {
	char trace_id[32];  /* unless new_trace_id */
	uint64_t counter;   /* a new trace-id's, and the span id's is the next;
			       else the span id's; with span_given, the span
			       id's 8 bytes */
	uint8_t flags;
	bool new_trace_id;
	bool span_given;
};

/* Where a request's trace comes from, in this order: the inbound
 * traceparent (inbound not NULL: exactly one valid one came), its flags
 * carried with unknown bits cleared; else the request id when it is 32
 * lowercase hex and not all zero (sampled, and random if the shim generated
 * that id); else a new trace-id (sampled, random). The span id is new.
 * Takes the counter values and hashes nothing. */
void trace_plan_start(struct trace_plan *p, const struct traceparent *inbound, const char *id,
		      size_t id_len, bool id_generated, struct id_generator *gen);

/* The span id is span_id (16 lowercase hex), not a new one. */
void trace_plan_give_span(struct trace_plan *p, const char span_id[16]);

/* Makes p's new parts now (a shim whose log lines carry the trace reads it
 * for every line): p then holds its trace-id and span id themselves. */
void trace_plan_fill(struct trace_plan *p, const struct id_generator *gen);

/* The trace p stands for, its new parts made: the same from every thread
 * and process that shares gen's key. */
void trace_ctx_from_plan(struct trace_ctx *t, const struct trace_plan *p,
			 const struct id_generator *gen);

/* A new span id: 16 lowercase hex, never all zero. */
void span_id_generate(struct id_generator *gen, char out[16]);

/* "00-<trace-id>-<parent-id>-<flags>": TRACEPARENT_LEN bytes. */
void traceparent_format(const struct trace_ctx *t, const char parent_id[16],
			char out[TRACEPARENT_LEN]);

#endif
