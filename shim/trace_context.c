/*
 * trace_context.c - a request's W3C trace: trace-id and flags, span ids,
 * outbound traceparent values.
 *
 * Pure logic on callers' buffers; never allocates, never writes outside them.
 */
#include "trace_context.h"

#include <string.h>

#include "fork_hot.h"

static bool all_zero(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return false;
	return true;
}

/* The span id of counter value n: 16 hex of the id made from it. The 32
 * chars are never all zero, so one half is not. */
static void span_id_at(const struct id_generator *gen, uint64_t n, char out[16])
{
	char id[GENERATED_ID_LEN];
	id_generate_at(gen, n, id);
	memcpy(out, all_zero(id, 16) ? id + 16 : id, 16);
}

void span_id_generate(struct id_generator *gen, char out[16])
{
	span_id_at(gen, id_reserve(gen, 1), out);
}

FORK_PATH void
trace_plan_start(struct trace_plan *p, const struct traceparent *inbound, const char *id,
		 size_t id_len, bool id_generated, struct id_generator *gen)
{
	p->new_trace_id = false;
	p->span_given = false;
	if (inbound) {
		memcpy(p->trace_id, inbound->trace_id, sizeof(p->trace_id));
		p->flags = inbound->flags & TRACE_FLAGS_KNOWN;
	} else if (id_len == GENERATED_ID_LEN && request_id_is_trace_id(id, id_len)) {
		memcpy(p->trace_id, id, sizeof(p->trace_id));
		p->flags = TRACE_FLAG_SAMPLED | (id_generated ? TRACE_FLAG_RANDOM : 0);
	} else {
		p->new_trace_id = true;
		p->flags = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;
	}
	p->counter = id_reserve(gen, p->new_trace_id ? 2 : 1);
}

void trace_plan_give_span(struct trace_plan *p, const char span_id[16])
{
	uint8_t bytes[8];
	for (int i = 0; i < 8; i++)
		bytes[i] = (uint8_t)(hex_digit(span_id[2 * i]) << 4 | hex_digit(span_id[2 * i + 1]));
	memcpy(&p->counter, bytes, sizeof(bytes));
	p->span_given = true;
}

void trace_ctx_from_plan(struct trace_ctx *t, const struct trace_plan *p,
			 const struct id_generator *gen)
{
	if (p->new_trace_id)
		id_generate_at(gen, p->counter, t->trace_id);
	else
		memcpy(t->trace_id, p->trace_id, sizeof(t->trace_id));
	t->flags = p->flags;
	if (p->span_given) {
		uint8_t bytes[8];
		memcpy(bytes, &p->counter, sizeof(bytes));
		hex_encode(bytes, sizeof(bytes), t->span_id);
	} else {
		span_id_at(gen, p->counter + p->new_trace_id, t->span_id);
	}
}

void trace_plan_fill(struct trace_plan *p, const struct id_generator *gen)
{
	struct trace_ctx t;
	trace_ctx_from_plan(&t, p, gen);
	memcpy(p->trace_id, t.trace_id, sizeof(p->trace_id));
	p->new_trace_id = false;
	trace_plan_give_span(p, t.span_id);
}

FORK_PATH void traceparent_format(const struct trace_ctx *t, const char parent_id[16],
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
