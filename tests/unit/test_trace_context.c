/*
 * test_trace_context.c - unit tests for shim/trace_context.c: where
 * trace_plan_start takes a request's trace-id and flags from (an inbound
 * traceparent with unknown flag bits cleared, else a 32-lowercase-hex request
 * id, else a new id), the span ids trace_ctx_from_plan and span_id_generate
 * make (exact values from a seeded generator, format, never all zero,
 * distinct), and the exact bytes of traceparent_format.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_context.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT "00f067aa0ba902b7"
#define OTHER "0af7651916cd43dd8448eb211c80319c"

static const uint8_t key_a[16] = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
};

/* A request's trace with its new parts made at once: what the shim reads
 * for a request it planned with these arguments. */
static void start_trace(struct trace_ctx *t, const struct traceparent *inbound, const char *id,
			size_t id_len, bool id_generated, struct id_generator *gen)
{
	struct trace_plan p;
	trace_plan_start(&p, inbound, id, id_len, id_generated, gen);
	trace_ctx_from_plan(t, &p, gen);
}

/* The id a generator seeded with key_a makes as its n-th (0-based). */
static void nth_id(uint64_t n, char out[GENERATED_ID_LEN])
{
	struct id_generator g;
	id_generator_seed(&g, key_a);
	atomic_store(&g.counter, n);
	id_generate(&g, out);
}

static bool all_zero(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '0')
			return false;
	return true;
}

/* The span id the n-th generated id gives: its first half, or its second
 * half when the first is all zero. */
static void nth_span(uint64_t n, char out[16])
{
	char id[GENERATED_ID_LEN];
	nth_id(n, id);
	memcpy(out, all_zero(id, 16) ? id + 16 : id, 16);
}

static void assert_lower_hex_nonzero(const char *s, size_t n)
{
	bool nonzero = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			fail_msg("byte %zu of \"%.*s\" is not lowercase hex", i, (int)n, s);
		nonzero |= c != '0';
	}
	assert_true(nonzero);
}

static void make_inbound(struct traceparent *tp, const char *trace, const char *parent,
			 uint8_t flags)
{
	memset(tp, 0, sizeof *tp);
	tp->version = 0;
	memcpy(tp->trace_id, trace, 32);
	memcpy(tp->parent_id, parent, 16);
	tp->flags = flags;
}

static uint64_t counter(struct id_generator *g)
{
	return atomic_load(&g->counter);
}

/* ---- trace_plan_start, trace_ctx_from_plan ----------------------------- */

static void test_inbound_flags_masked(void **state)
{
	(void)state;
	static const struct { uint8_t in, want; } cases[] = {
		{ 0x00, 0x00 }, { 0x01, 0x01 }, { 0x02, 0x02 }, { 0x03, 0x03 },
		{ 0xff, 0x03 }, { 0xfc, 0x00 }, { 0x81, 0x01 }, { 0x06, 0x02 }, { 0x04, 0x00 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct id_generator gen;
		struct traceparent in;
		struct trace_ctx t;
		char span[16];
		id_generator_seed(&gen, key_a);
		make_inbound(&in, TRACE, PARENT, cases[i].in);
		memset(&t, 0xA5, sizeof t);
		/* the inbound traceparent wins over a hex request id */
		start_trace(&t, &in, OTHER, 32, true, &gen);
		assert_memory_equal(t.trace_id, TRACE, 32);
		if (t.flags != cases[i].want)
			fail_msg("inbound flags 0x%02x gave 0x%02x, want 0x%02x", cases[i].in,
				 t.flags, cases[i].want);
		/* a new span, not the inbound parent: the generator's next id */
		nth_span(0, span);
		assert_memory_equal(t.span_id, span, 16);
		assert_memory_not_equal(t.span_id, PARENT, 16);
		assert_int_equal(counter(&gen), 1);
	}
	/* with no request id at all */
	struct id_generator gen;
	struct traceparent in;
	struct trace_ctx t;
	id_generator_seed(&gen, key_a);
	make_inbound(&in, OTHER, PARENT, 0x01);
	start_trace(&t, &in, NULL, 0, false, &gen);
	assert_memory_equal(t.trace_id, OTHER, 32);
	assert_int_equal(t.flags, 0x01);
	assert_int_equal(counter(&gen), 1);
}

static void test_hex_request_id(void **state)
{
	(void)state;
	static const char *const ids[] = {
		OTHER, TRACE, "00000000000000000000000000000001",
		"ffffffffffffffffffffffffffffffff", "10000000000000000000000000000000",
	};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		for (int generated = 0; generated < 2; generated++) {
			struct id_generator gen;
			struct trace_ctx t;
			char span[16];
			id_generator_seed(&gen, key_a);
			memset(&t, 0xA5, sizeof t);
			start_trace(&t, NULL, ids[i], 32, generated, &gen);
			assert_memory_equal(t.trace_id, ids[i], 32);
			assert_int_equal(t.flags, generated ? 0x03 : 0x01);
			nth_span(0, span);
			assert_memory_equal(t.span_id, span, 16);
			assert_int_equal(counter(&gen), 1);
		}
	}
	/* only id_len bytes count: a hex prefix of a longer buffer */
	struct id_generator gen;
	struct trace_ctx t;
	id_generator_seed(&gen, key_a);
	start_trace(&t, NULL, OTHER "-and-more", 32, false, &gen);
	assert_memory_equal(t.trace_id, OTHER, 32);
	assert_int_equal(t.flags, 0x01);
}

static void test_other_ids_get_new_trace(void **state)
{
	(void)state;
	static const struct { const char *id; size_t len; } ids[] = {
		{ "0AF7651916CD43DD8448EB211C80319C", 32 }, /* uppercase */
		{ "0af7651916cd43dd8448eb211c80319C", 32 }, /* one uppercase */
		{ "0af7651916cd43dd8448eb211c80319", 31 },  /* short */
		{ OTHER "0", 33 },                          /* long */
		{ "00000000000000000000000000000000", 32 }, /* all zero */
		{ "0af7651916cd43dd8448eb211c80319g", 32 }, /* not hex */
		{ "0af7651916cd43dd-448eb211c80319c", 32 },
		{ "abc", 3 },
		{ "req-1", 5 },
		{ OTHER, 0 },
		{ NULL, 0 },
	};
	char want_trace[GENERATED_ID_LEN], want_span[16];
	nth_id(0, want_trace);
	nth_span(1, want_span);
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		for (int generated = 0; generated < 2; generated++) {
			struct id_generator gen;
			struct trace_ctx t;
			id_generator_seed(&gen, key_a);
			memset(&t, 0xA5, sizeof t);
			start_trace(&t, NULL, ids[i].id, ids[i].len, generated, &gen);
			/* a new trace-id (the generator's next id), sampled and
			 * random whoever generated the request id */
			assert_memory_equal(t.trace_id, want_trace, 32);
			assert_int_equal(t.flags, 0x03);
			assert_memory_equal(t.span_id, want_span, 16);
			assert_int_equal(counter(&gen), 2);
			assert_lower_hex_nonzero(t.trace_id, 32);
		}
	}
}

static void test_span_per_call(void **state)
{
	(void)state;
	enum { N = 2000 };
	static char spans[N][16];
	struct id_generator gen;
	struct traceparent in;
	id_generator_seed(&gen, key_a);
	make_inbound(&in, TRACE, PARENT, 0x01);
	for (size_t i = 0; i < N; i++) {
		struct trace_ctx t;
		/* all three sources, in turn */
		if (i % 3 == 0)
			start_trace(&t, &in, NULL, 0, false, &gen);
		else if (i % 3 == 1)
			start_trace(&t, NULL, OTHER, 32, true, &gen);
		else
			start_trace(&t, NULL, "x", 1, false, &gen);
		assert_lower_hex_nonzero(t.span_id, 16);
		memcpy(spans[i], t.span_id, 16);
	}
	for (size_t i = 0; i < N; i++)
		for (size_t j = i + 1; j < N; j++)
			if (memcmp(spans[i], spans[j], 16) == 0)
				fail_msg("span %zu and %zu are both %.16s", i, j, spans[i]);
}

/* A plan made at a request's start hashes nothing; the trace made from it
 * is start_trace's, at every read. A given span id comes back as it
 * was given. */
static void test_plan_then_trace(void **state)
{
	(void)state;
	struct id_generator planned, started;
	id_generator_seed(&planned, key_a);
	id_generator_seed(&started, key_a);
	struct trace_plan p;
	struct trace_ctx from_plan, again, want;
	trace_plan_start(&p, NULL, "req-1", 5, false, &planned);
	assert_true(p.new_trace_id);
	assert_int_equal(counter(&planned), 2);
	trace_ctx_from_plan(&from_plan, &p, &planned);
	trace_ctx_from_plan(&again, &p, &planned);
	start_trace(&want, NULL, "req-1", 5, false, &started);
	assert_memory_equal(&from_plan, &want, sizeof(want));
	assert_memory_equal(&again, &want, sizeof(want));

	struct trace_plan filled;
	trace_plan_start(&filled, NULL, "req-2", 5, false, &planned);
	trace_ctx_from_plan(&want, &filled, &planned);
	trace_plan_fill(&filled, &planned);
	assert_false(filled.new_trace_id);
	assert_true(filled.span_given);
	static const uint8_t key_b[16] = {9};
	struct id_generator other_key;
	id_generator_seed(&other_key, key_b);
	trace_ctx_from_plan(&from_plan, &filled, &other_key);
	assert_memory_equal(&from_plan, &want, sizeof(want));

	trace_plan_start(&p, NULL, OTHER, 32, true, &planned);
	assert_false(p.new_trace_id);
	assert_int_equal(counter(&planned), 5);
	trace_plan_give_span(&p, "0123456789abcdef");
	trace_ctx_from_plan(&from_plan, &p, &planned);
	assert_memory_equal(from_plan.trace_id, OTHER, 32);
	assert_memory_equal(from_plan.span_id, "0123456789abcdef", 16);
	assert_int_equal(from_plan.flags, TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM);
}

/* ---- span_id_generate -------------------------------------------------- */

static void test_span_id_generate_exact(void **state)
{
	(void)state;
	struct id_generator gen;
	id_generator_seed(&gen, key_a);
	for (uint64_t n = 0; n < 1000; n++) {
		char out[18], want[16];
		memset(out, '#', sizeof out);
		span_id_generate(&gen, out);
		/* exactly 16 bytes written */
		assert_int_equal(out[16], '#');
		assert_int_equal(out[17], '#');
		nth_span(n, want);
		assert_memory_equal(out, want, 16);
		/* the n-th id's first half (its second half is only used when
		 * the first is all zero, which no seed found makes happen) */
		char id[GENERATED_ID_LEN];
		nth_id(n, id);
		assert_memory_equal(out, id, 16);
		assert_int_equal(counter(&gen), n + 1);
	}
}

static int cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void test_span_id_never_zero(void **state)
{
	(void)state;
	static const uint8_t key_zero[16];
	enum { N = 200000 };
	char *all = malloc((size_t)N * 16);
	assert_non_null(all);
	const uint8_t *keys[] = { key_a, key_zero };
	for (size_t k = 0; k < 2; k++) {
		struct id_generator gen;
		id_generator_seed(&gen, keys[k]);
		for (size_t i = 0; i < N; i++) {
			span_id_generate(&gen, all + i * 16);
			assert_lower_hex_nonzero(all + i * 16, 16);
		}
		/* distinct, too */
		qsort(all, N, 16, cmp16);
		for (size_t i = 1; i < N; i++)
			if (memcmp(all + (i - 1) * 16, all + i * 16, 16) == 0)
				fail_msg("span id %.16s made twice", all + i * 16);
	}
	/* counters near the top of the range */
	struct id_generator gen;
	id_generator_seed(&gen, key_a);
	atomic_store(&gen.counter, UINT64_MAX - 100);
	for (int i = 0; i < 200; i++) {
		char span[16];
		span_id_generate(&gen, span);
		assert_lower_hex_nonzero(span, 16);
	}
	free(all);
}

/* ---- traceparent_format ------------------------------------------------ */

static void check_format(const char *trace, uint8_t flags, const char *parent,
			 const char *want)
{
	struct trace_ctx t;
	memset(&t, 0xA5, sizeof t);
	memcpy(t.trace_id, trace, 32);
	memcpy(t.span_id, "ffffffffffffffff", 16); /* never the parent written */
	t.flags = flags;
	char out[TRACEPARENT_LEN + 2];
	memset(out, '#', sizeof out);
	traceparent_format(&t, parent, out);
	assert_int_equal(strlen(want), TRACEPARENT_LEN);
	if (memcmp(out, want, TRACEPARENT_LEN) != 0)
		fail_msg("traceparent_format gave \"%.55s\", want \"%s\"", out, want);
	assert_int_equal(out[TRACEPARENT_LEN], '#');
	assert_int_equal(out[TRACEPARENT_LEN + 1], '#');
}

static void test_traceparent_format_exact(void **state)
{
	(void)state;
	assert_int_equal(TRACEPARENT_LEN, 55);
	check_format(TRACE, 0x01, PARENT, "00-" TRACE "-" PARENT "-01");
	check_format(TRACE, 0x00, PARENT, "00-" TRACE "-" PARENT "-00");
	check_format(TRACE, 0x02, PARENT, "00-" TRACE "-" PARENT "-02");
	check_format(TRACE, 0x03, PARENT, "00-" TRACE "-" PARENT "-03");
	check_format(OTHER, 0x03, "b7ad6b7169203331", "00-" OTHER "-b7ad6b7169203331-03");
	/* both digits, lowercase */
	check_format(TRACE, 0x0a, PARENT, "00-" TRACE "-" PARENT "-0a");
	check_format(TRACE, 0x10, PARENT, "00-" TRACE "-" PARENT "-10");
	check_format(TRACE, 0xab, PARENT, "00-" TRACE "-" PARENT "-ab");
	check_format(TRACE, 0xff, PARENT, "00-" TRACE "-" PARENT "-ff");
	for (unsigned f = 0; f < 256; f++) {
		char want[TRACEPARENT_LEN + 1];
		snprintf(want, sizeof want, "00-%s-%s-%02x", TRACE, PARENT, f);
		check_format(TRACE, (uint8_t)f, PARENT, want);
	}
}

static void test_start_then_format_round_trip(void **state)
{
	(void)state;
	/* what goes out parses back to the trace that came in, with a new
	 * parent-id and the known flags */
	struct id_generator gen;
	struct traceparent in, back;
	struct trace_ctx t;
	id_generator_seed(&gen, key_a);
	make_inbound(&in, TRACE, PARENT, 0xfd);
	start_trace(&t, &in, NULL, 0, false, &gen);
	char parent[16], out[TRACEPARENT_LEN];
	span_id_generate(&gen, parent);
	traceparent_format(&t, parent, out);
	assert_true(traceparent_parse(out, sizeof out, &back));
	assert_int_equal(back.version, 0);
	assert_memory_equal(back.trace_id, TRACE, 32);
	assert_memory_equal(back.parent_id, parent, 16);
	assert_int_equal(back.flags, 0x01);
	char want_parent[16];
	nth_span(1, want_parent);
	assert_memory_equal(parent, want_parent, 16);

	/* a generated trace too */
	start_trace(&t, NULL, "not-hex", 7, true, &gen);
	traceparent_format(&t, t.span_id, out);
	assert_true(traceparent_parse(out, sizeof out, &back));
	assert_memory_equal(back.trace_id, t.trace_id, 32);
	assert_memory_equal(back.parent_id, t.span_id, 16);
	assert_int_equal(back.flags, 0x03);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inbound_flags_masked),
		cmocka_unit_test(test_hex_request_id),
		cmocka_unit_test(test_other_ids_get_new_trace),
		cmocka_unit_test(test_span_per_call),
		cmocka_unit_test(test_plan_then_trace),
		cmocka_unit_test(test_span_id_generate_exact),
		cmocka_unit_test(test_span_id_never_zero),
		cmocka_unit_test(test_traceparent_format_exact),
		cmocka_unit_test(test_start_then_format_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
