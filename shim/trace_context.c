/*
 * trace_context.c - a request's W3C trace: trace-id and flags, span ids,
 * outbound traceparent values.
 *
 * Pure logic on callers' buffers; never allocates, never writes outside them.
 */
#include "trace_context.h"

#include <string.h>

static bool all_zero(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return false;
	return true;
}

void span_id_generate(struct id_generator *gen, char out[16])
{
	char id[GENERATED_ID_LEN];
	id_generate(gen, id);
	/* The 32 chars are never all zero, so one half is not. */
	memcpy(out, all_zero(id, 16) ? id + 16 : id, 16);
}

void trace_ctx_start(struct trace_ctx *t, const struct traceparent *inbound, const char *id,
		     size_t id_len, bool id_generated, struct id_generator *gen)
{
	if (inbound) {
		memcpy(t->trace_id, inbound->trace_id, sizeof(t->trace_id));
		t->flags = inbound->flags & TRACE_FLAGS_KNOWN;
	} else if (request_id_is_trace_id(id, id_len)) {
		memcpy(t->trace_id, id, sizeof(t->trace_id));
		t->flags = TRACE_FLAG_SAMPLED | (id_generated ? TRACE_FLAG_RANDOM : 0);
	} else {
		id_generate(gen, t->trace_id);
		t->flags = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;
	}
	span_id_generate(gen, t->span_id);
}

void traceparent_format(const struct trace_ctx *t, const char parent_id[16],
			char out[TRACEPARENT_LEN])
{
	static const char digits[] = "0123456789abcdef";
	memcpy(out, "00-", 3);
	memcpy(out + 3, t->trace_id, 32);
	out[35] = '-';
	memcpy(out + 36, parent_id, 16);
	out[52] = '-';
	out[53] = digits[t->flags >> 4];
	out[54] = digits[t->flags & 15];
}
