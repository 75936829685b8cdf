/*
 * test_config.c - unit tests for shim/config.c: config_parse() defaults, every
 * REQID_* variable (valid values, boundaries, rejected values and their
 * warning bits, defaults kept on error, incl. REQID_FIELDS and
 * REQID_PROPAGATE) and config_warning_variable().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

/* ---- fake environment -------------------------------------------------- */

#define ENV_MAX 16
static const char *env_names[ENV_MAX];
static const char *env_values[ENV_MAX];
static int env_count;
static int env_lookups_unknown; /* lookups of names not starting REQID_ */

static void env_reset(void)
{
	env_count = 0;
	env_lookups_unknown = 0;
}

static void env_set(const char *name, const char *value)
{
	assert_true(env_count < ENV_MAX);
	env_names[env_count] = name;
	env_values[env_count] = value;
	env_count++;
}

static const char *fake_lookup(const char *name)
{
	if (strncmp(name, "REQID_", 6) != 0)
		env_lookups_unknown++;
	for (int i = env_count - 1; i >= 0; i--)
		if (strcmp(env_names[i], name) == 0)
			return env_values[i];
	return NULL;
}

/* Parse into a struct filled with garbage so defaults must be written. */
static unsigned parse(struct reqid_config *cfg)
{
	memset(cfg, 0xA5, sizeof *cfg);
	return config_parse(cfg, fake_lookup);
}

/* Parse with exactly one variable set. */
static unsigned parse1(struct reqid_config *cfg, const char *name, const char *value)
{
	env_reset();
	env_set(name, value);
	return parse(cfg);
}

static const char *const default_headers[] = {
	"x-request-id", "x-correlation-id", "x-trace-id", "traceparent",
};

static void assert_default_field(const struct reqid_config *cfg)
{
	assert_int_equal(cfg->field_len, 10);
	assert_string_equal(cfg->field, "request_id");
}

static void assert_default_headers(const struct reqid_config *cfg)
{
	assert_int_equal(cfg->header_count, 4);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(cfg->headers[i].name, default_headers[i]);
		assert_int_equal(cfg->headers[i].len, strlen(default_headers[i]));
	}
}

static void assert_default_fds(const struct reqid_config *cfg)
{
	assert_int_equal(cfg->log_fd_count, 2);
	assert_int_equal(cfg->log_fds[0], 1);
	assert_int_equal(cfg->log_fds[1], 2);
}

static void assert_default_fields(const struct reqid_config *cfg)
{
	assert_int_equal(cfg->field_count, 1);
	assert_int_equal(cfg->fields[0], FIELD_REQUEST_ID);
}

static void assert_all_defaults(const struct reqid_config *cfg)
{
	assert_false(cfg->disabled);
	assert_default_fields(cfg);
	assert_true(cfg->propagate);
	assert_true(cfg->event_stacks);
	assert_false(cfg->event_brackets);
	assert_int_equal(cfg->response_header_len, 12);
	assert_string_equal(cfg->response_header, "X-Request-ID");
	assert_int_equal(cfg->format, FORMAT_JSON);
	assert_default_field(cfg);
	assert_int_equal(cfg->outside_len, 0);
	assert_default_headers(cfg);
	assert_default_fds(cfg);
	assert_int_equal(cfg->log_path_count, 0);
	assert_int_equal(cfg->audit_dir_len, 0);
	assert_false(cfg->join_open);
	assert_false(cfg->proxy_protocol);
}

static void repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

/* ---- defaults ---------------------------------------------------------- */

static void test_defaults(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	assert_int_equal(parse(&cfg), 0);
	assert_all_defaults(&cfg);
	assert_int_equal(env_lookups_unknown, 0);
}

static void test_unrelated_variables_ignored(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_BOGUS", "1");
	env_set("PATH", "/usr/bin");
	assert_int_equal(parse(&cfg), 0);
	assert_all_defaults(&cfg);
}

/* ---- REQID_DISABLE ----------------------------------------------------- */

static void test_disable_true_values(void **state)
{
	(void)state;
	static const char *const yes[] = { "1", "true", "yes", "on", "TRUE", "Yes", "ON" };
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_DISABLE", yes[i]), 0);
		assert_true(cfg.disabled);
		assert_default_headers(&cfg);
	}
}

static void test_disable_false_values(void **state)
{
	(void)state;
	static const char *const no[] = { "0", "false", "no", "off", "", "FALSE", "No", "Off" };
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_DISABLE", no[i]), 0);
		assert_false(cfg.disabled);
	}
}

static void test_disable_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = { "2", "maybe", "yess", "10", "-1", "truex" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		/* Neither clearly on nor off: disabled, and reported. */
		assert_int_equal(parse1(&cfg, "REQID_DISABLE", bad[i]), WARN_DISABLE);
		assert_true(cfg.disabled);
	}
}

/* ---- REQID_FORMAT ------------------------------------------------------ */

static void test_format_valid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_FORMAT", "json"), 0);
	assert_int_equal(cfg.format, FORMAT_JSON);
	assert_int_equal(parse1(&cfg, "REQID_FORMAT", "prefix"), 0);
	assert_int_equal(cfg.format, FORMAT_PREFIX);
	assert_int_equal(parse1(&cfg, "REQID_FORMAT", "logfmt"), 0);
	assert_int_equal(cfg.format, FORMAT_LOGFMT);
}

static void test_format_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = { "xml", "", "jsonx", "prefi", "log", " json" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_FORMAT", bad[i]), WARN_FORMAT);
		assert_int_equal(cfg.format, FORMAT_JSON);
		assert_all_defaults(&cfg);
	}
}

/* ---- REQID_FIELD ------------------------------------------------------- */

static void test_field_valid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_FIELD", "rid"), 0);
	assert_int_equal(cfg.field_len, 3);
	assert_string_equal(cfg.field, "rid");

	assert_int_equal(parse1(&cfg, "REQID_FIELD", "a.b@c-d_E9"), 0);
	assert_int_equal(cfg.field_len, 10);
	assert_string_equal(cfg.field, "a.b@c-d_E9");

	assert_int_equal(parse1(&cfg, "REQID_FIELD", "x"), 0);
	assert_int_equal(cfg.field_len, 1);
	assert_string_equal(cfg.field, "x");

	/* case preserved */
	assert_int_equal(parse1(&cfg, "REQID_FIELD", "TraceID"), 0);
	assert_string_equal(cfg.field, "TraceID");
}

static void test_field_length_limits(void **state)
{
	(void)state;
	struct reqid_config cfg;
	char buf[80];
	repeat(buf, 'f', 63);
	assert_int_equal(parse1(&cfg, "REQID_FIELD", buf), 0);
	assert_int_equal(cfg.field_len, 63);
	assert_string_equal(cfg.field, buf);

	repeat(buf, 'f', 64);
	assert_int_equal(parse1(&cfg, "REQID_FIELD", buf), WARN_FIELD);
	assert_default_field(&cfg);

	assert_int_equal(parse1(&cfg, "REQID_FIELD", ""), WARN_FIELD);
	assert_default_field(&cfg);
}

static void test_field_invalid_chars(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"a b", "a\"b", "a=b", "a,b", "a\\b", "a\tb", "a/b", "a:b",
		"\xc3\xa9", "a\x7f", "{x}", " rid", "rid ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_FIELD", bad[i]), WARN_FIELD);
		assert_all_defaults(&cfg);
	}
}

/* ---- REQID_OUTSIDE ----------------------------------------------------- */

static void test_outside_valid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", "none"), 0);
	assert_int_equal(cfg.outside_len, 4);
	assert_string_equal(cfg.outside, "none");

	assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", "svc:boot-1.A_z"), 0);
	assert_int_equal(cfg.outside_len, 14);
	assert_string_equal(cfg.outside, "svc:boot-1.A_z");

	char buf[140];
	repeat(buf, 'o', 128);
	assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", buf), 0);
	assert_int_equal(cfg.outside_len, 128);
	assert_string_equal(cfg.outside, buf);
}

static void test_outside_empty_is_unset(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", ""), 0);
	assert_int_equal(cfg.outside_len, 0);
	assert_all_defaults(&cfg);
}

static void test_outside_invalid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	char buf[140];
	repeat(buf, 'o', 129);
	assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", buf), WARN_OUTSIDE);
	assert_int_equal(cfg.outside_len, 0);

	static const char *const bad[] = {
		"a b", "a\"b", "a=b", "a,b", "a/b", "a@b", "\xc3\xa9", "a\nb", " x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse1(&cfg, "REQID_OUTSIDE", bad[i]), WARN_OUTSIDE);
		assert_int_equal(cfg.outside_len, 0);
		assert_all_defaults(&cfg);
	}
}

/* ---- REQID_HEADERS ----------------------------------------------------- */

static void test_headers_single(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", "X-My-ID"), 0);
	assert_int_equal(cfg.header_count, 1);
	assert_int_equal(cfg.headers[0].len, 7);
	assert_string_equal(cfg.headers[0].name, "x-my-id");
}

static void test_headers_trim_and_lowercase(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", " X-A ,\tX-B\t, \t Traceparent"), 0);
	assert_int_equal(cfg.header_count, 3);
	assert_string_equal(cfg.headers[0].name, "x-a");
	assert_int_equal(cfg.headers[0].len, 3);
	assert_string_equal(cfg.headers[1].name, "x-b");
	assert_int_equal(cfg.headers[1].len, 3);
	assert_string_equal(cfg.headers[2].name, "traceparent");
	assert_int_equal(cfg.headers[2].len, 11);
}

static void test_headers_tchar(void **state)
{
	(void)state;
	struct reqid_config cfg;
	const char *all = "!#$%&'*+-.^_`|~09AZaz";
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", all), 0);
	assert_int_equal(cfg.header_count, 1);
	assert_string_equal(cfg.headers[0].name, "!#$%&'*+-.^_`|~09azaz");
	assert_int_equal(cfg.headers[0].len, strlen(all));
}

static void test_headers_max_count(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", "h1,h2,h3,h4,h5,h6,h7,h8"), 0);
	assert_int_equal(cfg.header_count, 8);
	for (int i = 0; i < 8; i++) {
		char want[16];
		snprintf(want, sizeof want, "h%d", i + 1);
		assert_string_equal(cfg.headers[i].name, want);
		assert_int_equal(cfg.headers[i].len, 2);
	}

	assert_int_equal(parse1(&cfg, "REQID_HEADERS", "h1,h2,h3,h4,h5,h6,h7,h8,h9"),
			 WARN_HEADERS);
	assert_all_defaults(&cfg);
}

static void test_headers_name_length(void **state)
{
	(void)state;
	struct reqid_config cfg;
	char buf[100];
	repeat(buf, 'H', 63);
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", buf), 0);
	assert_int_equal(cfg.header_count, 1);
	assert_int_equal(cfg.headers[0].len, 63);
	char low[100];
	repeat(low, 'h', 63);
	assert_string_equal(cfg.headers[0].name, low);

	repeat(buf, 'h', 64);
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", buf), WARN_HEADERS);
	assert_all_defaults(&cfg);

	/* a long name after a valid one still rejects the whole list */
	char list[120];
	snprintf(list, sizeof list, "x-ok,%s", buf);
	assert_int_equal(parse1(&cfg, "REQID_HEADERS", list), WARN_HEADERS);
	assert_all_defaults(&cfg);
}

static void test_headers_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", " ", "\t", ",", "a,,b", "a,", ",a", "a, ,b", "a b", "a:b",
		"a\"b", "a(b)", "a/b", "a;b", "a=b", "a@b", "a{b", "x-\xc3\xa9",
		"a\x7f", "a\x01", "a[b]", "a?b", "a\\b",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		unsigned w = parse1(&cfg, "REQID_HEADERS", bad[i]);
		if (w != WARN_HEADERS)
			print_error("REQID_HEADERS=\"%s\" returned %u\n", bad[i], w);
		assert_int_equal(w, WARN_HEADERS);
		assert_all_defaults(&cfg);
	}
}

/* ---- REQID_LOG_FDS ----------------------------------------------------- */

static void test_log_fds_valid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "3"), 0);
	assert_int_equal(cfg.log_fd_count, 1);
	assert_int_equal(cfg.log_fds[0], 3);

	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "2"), 0);
	assert_int_equal(cfg.log_fd_count, 1);
	assert_int_equal(cfg.log_fds[0], 2);

	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "1,2,7"), 0);
	assert_int_equal(cfg.log_fd_count, 3);
	assert_int_equal(cfg.log_fds[0], 1);
	assert_int_equal(cfg.log_fds[1], 2);
	assert_int_equal(cfg.log_fds[2], 7);

	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "0,1048575"), 0);
	assert_int_equal(cfg.log_fd_count, 2);
	assert_int_equal(cfg.log_fds[0], 0);
	assert_int_equal(cfg.log_fds[1], 1048575);
}

static void test_log_fds_empty_means_none(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", ""), 0);
	assert_int_equal(cfg.log_fd_count, 0);
}

static bool fds_contain(const struct reqid_config *cfg, int fd)
{
	for (int i = 0; i < cfg->log_fd_count; i++)
		if (cfg->log_fds[i] == fd)
			return true;
	return false;
}

static void test_log_fds_duplicates_removed(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "2,2,1,2,1"), 0);
	assert_int_equal(cfg.log_fd_count, 2);
	assert_true(fds_contain(&cfg, 1));
	assert_true(fds_contain(&cfg, 2));

	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS", "5,5"), 0);
	assert_int_equal(cfg.log_fd_count, 1);
	assert_int_equal(cfg.log_fds[0], 5);
}

static void test_log_fds_max_count(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS",
				"0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"), 0);
	assert_int_equal(cfg.log_fd_count, 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(cfg.log_fds[i], i);

	assert_int_equal(parse1(&cfg, "REQID_LOG_FDS",
				"0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"),
			 WARN_LOG_FDS);
	assert_default_fds(&cfg);
}

static void test_log_fds_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"1048576", "-1", "a", "1,,2", "1,", ",1", ",", "0x1", "1a", "3.0",
		"99999999999999999999", "4294967297", "1;2", "1 2",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		unsigned w = parse1(&cfg, "REQID_LOG_FDS", bad[i]);
		if (w != WARN_LOG_FDS)
			print_error("REQID_LOG_FDS=\"%s\" returned %u\n", bad[i], w);
		assert_int_equal(w, WARN_LOG_FDS);
		assert_all_defaults(&cfg);
	}
}

/* ---- REQID_FIELDS ------------------------------------------------------ */

/* Parses REQID_FIELDS=v and expects no warning and exactly the fields given
 * (-1 ends the list). */
static void expect_fields(const char *v, int f0, int f1, int f2)
{
	struct reqid_config cfg;
	const int want[3] = { f0, f1, f2 };
	size_t n = 0;
	while (n < 3 && want[n] >= 0)
		n++;
	unsigned w = parse1(&cfg, "REQID_FIELDS", v);
	if (w != 0)
		fail_msg("REQID_FIELDS=\"%s\" returned %u", v, w);
	if (cfg.field_count != n)
		fail_msg("REQID_FIELDS=\"%s\": %u fields, want %zu", v, cfg.field_count, n);
	for (size_t i = 0; i < n; i++)
		if (cfg.fields[i] != want[i])
			fail_msg("REQID_FIELDS=\"%s\": field %zu is %u, want %d", v, i, cfg.fields[i],
				 want[i]);
	/* nothing else changes */
	assert_default_field(&cfg);
	assert_default_headers(&cfg);
	assert_true(cfg.propagate);
}

static void test_fields_valid(void **state)
{
	(void)state;
	const int R = FIELD_REQUEST_ID, T = FIELD_TRACE_ID, S = FIELD_SPAN_ID;
	assert_int_equal(R, 0);
	assert_int_equal(T, 1);
	assert_int_equal(S, 2);
	expect_fields("request_id", R, -1, -1);
	expect_fields("trace_id", T, -1, -1);
	expect_fields("span_id", S, -1, -1);
	expect_fields("trace_id,span_id", T, S, -1);
	expect_fields("span_id,trace_id", S, T, -1);
	expect_fields(" request_id , trace_id ", R, T, -1);
	expect_fields("\trequest_id\t,\t span_id", R, S, -1);
	expect_fields("trace_id,request_id", T, R, -1);
	/* all three in every order */
	expect_fields("request_id,trace_id,span_id", R, T, S);
	expect_fields("request_id,span_id,trace_id", R, S, T);
	expect_fields("trace_id,request_id,span_id", T, R, S);
	expect_fields("trace_id,span_id,request_id", T, S, R);
	expect_fields("span_id,request_id,trace_id", S, R, T);
	expect_fields("span_id,trace_id,request_id", S, T, R);
	expect_fields("  span_id ,trace_id,  request_id\t", S, T, R);
}

static void test_fields_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", " ", "foo", "trace_id,trace_id", "request_id,", ",", ",request_id",
		"request_id,,trace_id", "request_id,foo", "Request_ID", "TRACE_ID", "trace-id",
		"traceid", "span", "request_id trace_id", "request_id;trace_id",
		"span_id,trace_id,span_id", "request_id,trace_id,span_id,request_id",
		"request_id, ,trace_id", "request_ids", "request_i", "\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		unsigned w = parse1(&cfg, "REQID_FIELDS", bad[i]);
		if (w != WARN_FIELDS)
			print_error("REQID_FIELDS=\"%s\" returned %u\n", bad[i], w);
		assert_int_equal(w, WARN_FIELDS);
		assert_all_defaults(&cfg);
	}
}

static void test_fields_with_field_name(void **state)
{
	(void)state;
	/* REQID_FIELD renames request_id; REQID_FIELDS orders the fields */
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_FIELD", "rid");
	env_set("REQID_FIELDS", "span_id,request_id");
	assert_int_equal(parse(&cfg), 0);
	assert_string_equal(cfg.field, "rid");
	assert_int_equal(cfg.field_len, 3);
	assert_int_equal(cfg.field_count, 2);
	assert_int_equal(cfg.fields[0], FIELD_SPAN_ID);
	assert_int_equal(cfg.fields[1], FIELD_REQUEST_ID);

	/* one bad, one good: only the bad one is reported */
	env_reset();
	env_set("REQID_FIELD", "a b");
	env_set("REQID_FIELDS", "trace_id");
	assert_int_equal(parse(&cfg), WARN_FIELD);
	assert_default_field(&cfg);
	assert_int_equal(cfg.field_count, 1);
	assert_int_equal(cfg.fields[0], FIELD_TRACE_ID);
	env_reset();
	env_set("REQID_FIELD", "rid");
	env_set("REQID_FIELDS", "rid");
	assert_int_equal(parse(&cfg), WARN_FIELDS);
	assert_string_equal(cfg.field, "rid");
	assert_default_fields(&cfg);
}

/* ---- REQID_PROPAGATE --------------------------------------------------- */

static void test_propagate_values(void **state)
{
	(void)state;
	static const char *const on[] = { "1", "true", "yes", "on", "TRUE", "Yes", "oN" };
	static const char *const off[] = { "0", "false", "no", "off", "", "FALSE", "No", "OFF" };
	for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_PROPAGATE", on[i]), 0);
		assert_true(cfg.propagate);
		assert_false(cfg.disabled);
	}
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_PROPAGATE", off[i]), 0);
		assert_false(cfg.propagate);
		/* only propagation is off */
		assert_false(cfg.disabled);
		assert_default_fields(&cfg);
		assert_default_headers(&cfg);
	}
}

static void test_propagate_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = { "2", "maybe", "yess", "-1", "offf", " on", "on ", "y" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		/* reported, and propagation goes off: the side that changes
		 * least */
		assert_int_equal(parse1(&cfg, "REQID_PROPAGATE", bad[i]), WARN_PROPAGATE);
		assert_false(cfg.propagate);
		cfg.propagate = true;
		assert_all_defaults(&cfg);
	}
}

static void test_event_stacks_values(void **state)
{
	(void)state;
	static const char *const on[] = { "1", "true", "yes", "on", "ON" };
	static const char *const off[] = { "0", "false", "no", "off", "", "Off" };
	for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_EVENT_STACKS", on[i]), 0);
		assert_all_defaults(&cfg);
	}
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_EVENT_STACKS", off[i]), 0);
		assert_false(cfg.event_stacks);
		/* only the event-loop rule is off */
		cfg.event_stacks = true;
		assert_all_defaults(&cfg);
	}
}

static void test_event_stacks_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = { "2", "stack", " on", "of" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		/* reported, and the rule goes off: fewer ids, never other ones */
		assert_int_equal(parse1(&cfg, "REQID_EVENT_STACKS", bad[i]), WARN_EVENT_STACKS);
		assert_false(cfg.event_stacks);
		cfg.event_stacks = true;
		assert_all_defaults(&cfg);
	}
}

static void test_event_brackets_values(void **state)
{
	(void)state;
	static const char *const on[] = { "1", "true", "yes", "on", "ON" };
	static const char *const off[] = { "0", "false", "no", "off", "" };
	for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_EVENT_BRACKETS", on[i]), 0);
		assert_true(cfg.event_brackets);
		/* only nested brackets are on */
		cfg.event_brackets = false;
		assert_all_defaults(&cfg);
	}
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		struct reqid_config cfg;
		assert_int_equal(parse1(&cfg, "REQID_EVENT_BRACKETS", off[i]), 0);
		assert_all_defaults(&cfg);
	}
	static const char *const bad[] = { "2", "nested", " on" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reqid_config cfg;
		/* reported, and they stay off: fewer ids, never other ones */
		assert_int_equal(parse1(&cfg, "REQID_EVENT_BRACKETS", bad[i]), WARN_EVENT_BRACKETS);
		assert_all_defaults(&cfg);
	}
}

/* REQID_AUDIT_DIR: an absolute path of at most CONFIG_MAX_AUDIT_DIR bytes
 * without control characters; empty is off; anything else is reported and
 * leaves audit off. */
static void test_audit_dir_values(void **state)
{
	(void)state;
	struct reqid_config cfg;
	char longest[CONFIG_MAX_AUDIT_DIR + 2];
	assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", "/tmp/reqid-audit.Xq1"), 0);
	assert_int_equal(cfg.audit_dir_len, 20);
	assert_string_equal(cfg.audit_dir, "/tmp/reqid-audit.Xq1");
	cfg.audit_dir_len = 0;
	assert_all_defaults(&cfg);
	assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", "/a dir/with spaces"), 0);
	assert_string_equal(cfg.audit_dir, "/a dir/with spaces");
	longest[0] = '/';
	repeat(longest + 1, 'd', CONFIG_MAX_AUDIT_DIR - 1);
	assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", longest), 0);
	assert_int_equal(cfg.audit_dir_len, CONFIG_MAX_AUDIT_DIR);
	assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", ""), 0);
	assert_all_defaults(&cfg);
	repeat(longest + 1, 'd', CONFIG_MAX_AUDIT_DIR);
	static const char *const bad[] = { "relative/dir", "/tab\there", "/new\nline", "/del\x7f" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", bad[i]), WARN_AUDIT_DIR);
		assert_all_defaults(&cfg);
	}
	assert_int_equal(parse1(&cfg, "REQID_AUDIT_DIR", longest), WARN_AUDIT_DIR);
	assert_all_defaults(&cfg);
	assert_string_equal(config_warning_variable(WARN_AUDIT_DIR), "REQID_AUDIT_DIR");
}

/* REQID_JOIN_OPEN: a switch, off by default; an unclear value leaves it
 * off (fewer ids, never other ones) and is reported. */
static void test_join_open_values(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_JOIN_OPEN", "1"), 0);
	assert_true(cfg.join_open);
	cfg.join_open = false;
	assert_all_defaults(&cfg);
	assert_int_equal(parse1(&cfg, "REQID_JOIN_OPEN", "off"), 0);
	assert_all_defaults(&cfg);
	assert_int_equal(parse1(&cfg, "REQID_JOIN_OPEN", "sometimes"), WARN_JOIN_OPEN);
	assert_all_defaults(&cfg);
	assert_string_equal(config_warning_variable(WARN_JOIN_OPEN), "REQID_JOIN_OPEN");
}

/* REQID_PROXY_PROTOCOL: a switch, off by default (a PROXY header then
 * loses its connection); an unclear value leaves it off and is reported. */
static void test_proxy_protocol_values(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_PROXY_PROTOCOL", "on"), 0);
	assert_true(cfg.proxy_protocol);
	cfg.proxy_protocol = false;
	assert_all_defaults(&cfg);
	assert_int_equal(parse1(&cfg, "REQID_PROXY_PROTOCOL", "0"), 0);
	assert_all_defaults(&cfg);
	assert_int_equal(parse1(&cfg, "REQID_PROXY_PROTOCOL", "maybe"), WARN_PROXY_PROTOCOL);
	assert_all_defaults(&cfg);
	assert_string_equal(config_warning_variable(WARN_PROXY_PROTOCOL), "REQID_PROXY_PROTOCOL");
}

/* ---- combinations and names -------------------------------------------- */

static void test_all_valid_together(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_DISABLE", "no");
	env_set("REQID_FORMAT", "logfmt");
	env_set("REQID_FIELD", "trace");
	env_set("REQID_OUTSIDE", "-");
	env_set("REQID_HEADERS", "X-Req");
	env_set("REQID_LOG_FDS", "9");
	assert_int_equal(parse(&cfg), 0);
	assert_false(cfg.disabled);
	assert_int_equal(cfg.format, FORMAT_LOGFMT);
	assert_string_equal(cfg.field, "trace");
	assert_int_equal(cfg.field_len, 5);
	assert_string_equal(cfg.outside, "-");
	assert_int_equal(cfg.outside_len, 1);
	assert_int_equal(cfg.header_count, 1);
	assert_string_equal(cfg.headers[0].name, "x-req");
	assert_int_equal(cfg.log_fd_count, 1);
	assert_int_equal(cfg.log_fds[0], 9);
}

static void test_all_invalid_together(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_DISABLE", "perhaps");
	env_set("REQID_FORMAT", "xml");
	env_set("REQID_FIELD", "a b");
	env_set("REQID_OUTSIDE", "a b");
	env_set("REQID_HEADERS", "a,,b");
	env_set("REQID_LOG_FDS", "x");
	env_set("REQID_LOG_PATHS", "a::b");
	assert_int_equal(parse(&cfg), WARN_DISABLE | WARN_FORMAT | WARN_FIELD |
					      WARN_OUTSIDE | WARN_HEADERS | WARN_LOG_FDS |
					      WARN_LOG_PATHS);
	/* Every other setting keeps its default; the unclear REQID_DISABLE
	 * switches the shim off. */
	assert_true(cfg.disabled);
	cfg.disabled = false;
	assert_all_defaults(&cfg);
}

static void test_mixed_valid_invalid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_FORMAT", "prefix");
	env_set("REQID_FIELD", "bad field");
	env_set("REQID_LOG_FDS", "3,4");
	env_set("REQID_HEADERS", "a b");
	assert_int_equal(parse(&cfg), WARN_FIELD | WARN_HEADERS);
	assert_int_equal(cfg.format, FORMAT_PREFIX);
	assert_default_field(&cfg);
	assert_default_headers(&cfg);
	assert_int_equal(cfg.log_fd_count, 2);
	assert_int_equal(cfg.log_fds[0], 3);
	assert_int_equal(cfg.log_fds[1], 4);
}

static void test_log_paths_valid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", "/var/log/app.log"), 0);
	assert_int_equal(cfg.log_path_count, 1);
	assert_string_equal(cfg.log_paths[0], "/var/log/app.log");

	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", "/a/*.log:/b/[0-9]?.txt:rel.log"), 0);
	assert_int_equal(cfg.log_path_count, 3);
	assert_string_equal(cfg.log_paths[0], "/a/*.log");
	assert_string_equal(cfg.log_paths[1], "/b/[0-9]?.txt");
	assert_string_equal(cfg.log_paths[2], "rel.log");

	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", ""), 0);
	assert_int_equal(cfg.log_path_count, 0);
}

static void test_log_paths_limits(void **state)
{
	(void)state;
	struct reqid_config cfg;
	char list[17 * 3 + 1], longest[CONFIG_MAX_LOG_PATH + 2];

	for (int i = 0; i < 17; i++)
		memcpy(list + 3 * i, "/x:", 3);
	list[16 * 3 - 1] = '\0'; /* 16 patterns */
	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", list), 0);
	assert_int_equal(cfg.log_path_count, 16);
	assert_string_equal(cfg.log_paths[15], "/x");
	list[16 * 3 - 1] = ':';
	list[17 * 3 - 1] = '\0'; /* 17 patterns */
	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", list), WARN_LOG_PATHS);
	assert_int_equal(cfg.log_path_count, 0);

	memset(longest, 'a', CONFIG_MAX_LOG_PATH);
	longest[CONFIG_MAX_LOG_PATH] = '\0';
	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", longest), 0);
	assert_int_equal(strlen(cfg.log_paths[0]), CONFIG_MAX_LOG_PATH);
	longest[CONFIG_MAX_LOG_PATH] = 'a';
	longest[CONFIG_MAX_LOG_PATH + 1] = '\0';
	assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", longest), WARN_LOG_PATHS);
	assert_int_equal(cfg.log_path_count, 0);
}

static void test_log_paths_invalid(void **state)
{
	(void)state;
	struct reqid_config cfg;
	static const char *const bad[] = {":", "/a::/b", "/a:", ":/a"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse1(&cfg, "REQID_LOG_PATHS", bad[i]), WARN_LOG_PATHS);
		assert_int_equal(cfg.log_path_count, 0);
	}
}

static void test_reparse_resets(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_FORMAT", "logfmt");
	env_set("REQID_HEADERS", "a");
	env_set("REQID_DISABLE", "1");
	assert_int_equal(config_parse(&cfg, fake_lookup), 0);
	env_reset();
	assert_int_equal(config_parse(&cfg, fake_lookup), 0);
	assert_all_defaults(&cfg);
}

static void test_warning_variable_names(void **state)
{
	(void)state;
	assert_string_equal(config_warning_variable(WARN_FORMAT), "REQID_FORMAT");
	assert_string_equal(config_warning_variable(WARN_FIELD), "REQID_FIELD");
	assert_string_equal(config_warning_variable(WARN_HEADERS), "REQID_HEADERS");
	assert_string_equal(config_warning_variable(WARN_LOG_FDS), "REQID_LOG_FDS");
	assert_string_equal(config_warning_variable(WARN_OUTSIDE), "REQID_OUTSIDE");
	assert_string_equal(config_warning_variable(WARN_DISABLE), "REQID_DISABLE");
	assert_string_equal(config_warning_variable(WARN_LOG_PATHS), "REQID_LOG_PATHS");
	assert_string_equal(config_warning_variable(WARN_RESPONSE_HEADER),
			    "REQID_RESPONSE_HEADER");
	assert_string_equal(config_warning_variable(WARN_FIELDS), "REQID_FIELDS");
	assert_string_equal(config_warning_variable(WARN_PROPAGATE), "REQID_PROPAGATE");
	assert_string_equal(config_warning_variable(WARN_EVENT_STACKS), "REQID_EVENT_STACKS");
	assert_string_equal(config_warning_variable(WARN_EVENT_BRACKETS), "REQID_EVENT_BRACKETS");
	/* the new bits are distinct from the others */
	assert_int_equal(WARN_FIELDS, 1 << 8);
	assert_int_equal(WARN_PROPAGATE, 1 << 9);
	assert_int_equal(WARN_EVENT_STACKS, 1 << 10);
	assert_int_equal(WARN_EVENT_BRACKETS, 1 << 11);
	/* not one bit: no name */
	assert_string_equal(config_warning_variable(0), "REQID_?");
	assert_string_equal(config_warning_variable(1 << 15), "REQID_?");
	assert_string_equal(config_warning_variable(WARN_FIELDS | WARN_PROPAGATE), "REQID_?");
}

static void test_new_warnings_together(void **state)
{
	(void)state;
	struct reqid_config cfg;
	env_reset();
	env_set("REQID_FIELDS", "request_id,");
	env_set("REQID_PROPAGATE", "sometimes");
	env_set("REQID_FORMAT", "xml");
	assert_int_equal(parse(&cfg), WARN_FIELDS | WARN_PROPAGATE | WARN_FORMAT);
	assert_false(cfg.propagate);
	cfg.propagate = true;
	assert_all_defaults(&cfg);

	/* and valid together */
	env_reset();
	env_set("REQID_FIELDS", "trace_id,span_id,request_id");
	env_set("REQID_PROPAGATE", "off");
	assert_int_equal(parse(&cfg), 0);
	assert_int_equal(cfg.field_count, 3);
	assert_int_equal(cfg.fields[0], FIELD_TRACE_ID);
	assert_int_equal(cfg.fields[1], FIELD_SPAN_ID);
	assert_int_equal(cfg.fields[2], FIELD_REQUEST_ID);
	assert_false(cfg.propagate);

	/* a re-parse without them restores the defaults */
	env_reset();
	assert_int_equal(config_parse(&cfg, fake_lookup), 0);
	assert_all_defaults(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unrelated_variables_ignored),
		cmocka_unit_test(test_disable_true_values),
		cmocka_unit_test(test_disable_false_values),
		cmocka_unit_test(test_disable_invalid),
		cmocka_unit_test(test_format_valid),
		cmocka_unit_test(test_format_invalid),
		cmocka_unit_test(test_field_valid),
		cmocka_unit_test(test_field_length_limits),
		cmocka_unit_test(test_field_invalid_chars),
		cmocka_unit_test(test_outside_valid),
		cmocka_unit_test(test_outside_empty_is_unset),
		cmocka_unit_test(test_outside_invalid),
		cmocka_unit_test(test_headers_single),
		cmocka_unit_test(test_headers_trim_and_lowercase),
		cmocka_unit_test(test_headers_tchar),
		cmocka_unit_test(test_headers_max_count),
		cmocka_unit_test(test_headers_name_length),
		cmocka_unit_test(test_headers_invalid),
		cmocka_unit_test(test_log_fds_valid),
		cmocka_unit_test(test_log_fds_empty_means_none),
		cmocka_unit_test(test_log_fds_duplicates_removed),
		cmocka_unit_test(test_log_fds_max_count),
		cmocka_unit_test(test_log_fds_invalid),
		cmocka_unit_test(test_all_valid_together),
		cmocka_unit_test(test_all_invalid_together),
		cmocka_unit_test(test_mixed_valid_invalid),
		cmocka_unit_test(test_log_paths_valid),
		cmocka_unit_test(test_log_paths_limits),
		cmocka_unit_test(test_log_paths_invalid),
		cmocka_unit_test(test_reparse_resets),
		cmocka_unit_test(test_warning_variable_names),
		cmocka_unit_test(test_fields_valid),
		cmocka_unit_test(test_fields_invalid),
		cmocka_unit_test(test_fields_with_field_name),
		cmocka_unit_test(test_propagate_values),
		cmocka_unit_test(test_propagate_invalid),
		cmocka_unit_test(test_event_stacks_values),
		cmocka_unit_test(test_event_stacks_invalid),
		cmocka_unit_test(test_event_brackets_values),
		cmocka_unit_test(test_audit_dir_values),
		cmocka_unit_test(test_join_open_values),
		cmocka_unit_test(test_proxy_protocol_values),
		cmocka_unit_test(test_new_warnings_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
