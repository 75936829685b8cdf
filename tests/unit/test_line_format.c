/*
 * test_line_format.c - unit tests for shim/line_format.c: json_escape()
 * (control chars, UTF-8 pass-through, invalid UTF-8 as \udcXX),
 * json_is_object_line(), format_for() in the json, prefix and logfmt styles
 * with and without an id, and bound_for() against random input; line_fields()
 * (request_id, trace_id, span_id in every order and format, fields without a
 * value left out) and line_format() with those rendered fields.
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

#include "line_format.h"

/* line_format with the fields rendered from a request id, as the shim does
 * once per request, and the bound for it. */
static size_t bound_for(const struct line_style *st, size_t len, size_t id_len)
{
	char id[REQUEST_ID_MAX], fields[LINE_FIELDS_MAX];
	memset(id, 'x', sizeof(id));
	return line_format_bound(len, line_fields(st, id, id_len, NULL, fields));
}

static size_t format_for(const struct line_style *st, const char *id, size_t id_len,
			 const char *line, size_t len, char *out)
{
	char fields[LINE_FIELDS_MAX];
	size_t n = line_fields(st, id, id_len, NULL, fields);
	return line_format(st, fields, n, line, len, out);
}

/* ---- helpers ----------------------------------------------------------- */

static const struct line_style style_json = { FORMAT_JSON, "request_id", 10, false, 1, {FIELD_REQUEST_ID} };
static const struct line_style style_prefix = { FORMAT_PREFIX, "request_id", 10, false, 1, {FIELD_REQUEST_ID} };
static const struct line_style style_logfmt = { FORMAT_LOGFMT, "request_id", 10, false, 1, {FIELD_REQUEST_ID} };
static const struct line_style style_cee = { FORMAT_JSON, "request_id", 10, true, 1, {FIELD_REQUEST_ID} };
static const struct line_style style_cee_prefix = { FORMAT_PREFIX, "request_id", 10, true, 1, {FIELD_REQUEST_ID} };

/* Prints bytes with C escapes for failure messages. */
static void print_bytes(const char *label, const char *s, size_t n)
{
	char buf[4096];
	size_t o = 0;
	for (size_t i = 0; i < n && o + 8 < sizeof buf; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	print_error("%s (%zu bytes): %s\n", label, n, buf);
}

static void assert_bytes(const char *got, size_t got_len, const char *want, size_t want_len)
{
	if (got_len != want_len || memcmp(got, want, want_len) != 0) {
		print_bytes("expected", want, want_len);
		print_bytes("actual  ", got, got_len);
		fail();
	}
}

/* Runs line_format into a heap buffer of exactly bound_for() bytes
 * (so ASan catches any overrun) and checks the result against want. */
static void check_fmt_n(const struct line_style *st, const char *id, size_t id_len,
			const char *line, size_t len, const char *want, size_t want_len)
{
	size_t bound = bound_for(st, len, id_len);
	char *out = malloc(bound ? bound : 1);
	assert_non_null(out);
	size_t n = format_for(st, id, id_len, line, len, out);
	if (n > bound)
		fail_msg("line_format returned %zu > bound %zu", n, bound);
	if (n != want_len || memcmp(out, want, want_len) != 0)
		print_bytes("input   ", line, len);
	assert_bytes(out, n, want, want_len);
	free(out);
}

static void check_fmt(const struct line_style *st, const char *id, const char *line,
		      const char *want)
{
	check_fmt_n(st, id, id ? strlen(id) : 0, line, strlen(line), want, strlen(want));
}

static void check_escape_n(const char *in, size_t len, const char *want, size_t want_len)
{
	char *out = malloc(6 * len + 16); /* json_escape may store 15 bytes past its output */
	assert_non_null(out);
	size_t n = json_escape(in, len, out);
	assert_true(n <= 6 * len);
	if (n != want_len || memcmp(out, want, want_len) != 0)
		print_bytes("input   ", in, len);
	assert_bytes(out, n, want, want_len);
	free(out);
}

static void check_escape(const char *in, const char *want)
{
	check_escape_n(in, strlen(in), want, strlen(want));
}

static void expect_object(const char *s, bool want)
{
	if (json_is_object_line(s, strlen(s)) != want) {
		print_bytes("line", s, strlen(s));
		fail_msg("json_is_object_line expected %s", want ? "true" : "false");
	}
}

/* Reference escaper: Unicode Table 3-7 well-formed sequences pass through,
 * every byte of anything else becomes \udcXX. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) need = 2;
	else if (c == 0xe0) { need = 3; lo = 0xa0; }
	else if (c >= 0xe1 && c <= 0xec) need = 3;
	else if (c == 0xed) { need = 3; hi = 0x9f; }
	else if (c >= 0xee && c <= 0xef) need = 3;
	else if (c == 0xf0) { need = 4; lo = 0x90; }
	else if (c >= 0xf1 && c <= 0xf3) need = 4;
	else if (c == 0xf4) { need = 4; hi = 0x8f; }
	else return 0;
	if (n < need)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

static size_t ref_escape(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c < 0x80) {
			switch (c) {
			case '"': out[o++] = '\\'; out[o++] = '"'; break;
			case '\\': out[o++] = '\\'; out[o++] = '\\'; break;
			case '\n': out[o++] = '\\'; out[o++] = 'n'; break;
			case '\r': out[o++] = '\\'; out[o++] = 'r'; break;
			case '\t': out[o++] = '\\'; out[o++] = 't'; break;
			case '\b': out[o++] = '\\'; out[o++] = 'b'; break;
			case '\f': out[o++] = '\\'; out[o++] = 'f'; break;
			default:
				if (c < 0x20 || c == 0x7f)
					o += (size_t)sprintf(out + o, "\\u%04x", c);
				else
					out[o++] = (char)c;
			}
			i++;
			continue;
		}
		size_t v = utf8_valid_len(s + i, len - i);
		if (v) {
			memcpy(out + o, s + i, v);
			o += v;
			i += v;
		} else {
			o += (size_t)sprintf(out + o, "\\udc%02x", c);
			i++;
		}
	}
	return o;
}

/* ---- json_escape ------------------------------------------------------- */

static void test_escape_ascii(void **state)
{
	(void)state;
	check_escape("", "");
	check_escape("hello world", "hello world");
	check_escape("\"", "\\\"");
	check_escape("\\", "\\\\");
	check_escape("\n", "\\n");
	check_escape("\r", "\\r");
	check_escape("\t", "\\t");
	check_escape("\b", "\\b");
	check_escape("\f", "\\f");
	check_escape("\x01", "\\u0001");
	check_escape("\x0b", "\\u000b");
	check_escape("\x1b[0m", "\\u001b[0m");
	check_escape("\x1f", "\\u001f");
	check_escape("\x7f", "\\u007f");
	check_escape("a\"b\\c\nd", "a\\\"b\\\\c\\nd");
	check_escape_n("\0", 1, "\\u0000", 6);
	check_escape_n("a\0b", 3, "a\\u0000b", 8);
	check_escape(" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~",
		     " !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~");
}

static void test_escape_all_ascii_bytes(void **state)
{
	(void)state;
	for (int c = 0; c < 0x80; c++) {
		char in = (char)c, want[8];
		size_t wn = ref_escape(&in, 1, want);
		check_escape_n(&in, 1, want, wn);
	}
}

static void test_escape_valid_utf8(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"\xc3\xa9",             /* U+00E9 */
		"\xc2\x80",             /* U+0080 */
		"\xdf\xbf",             /* U+07FF */
		"\xe0\xa0\x80",         /* U+0800 */
		"\xe2\x82\xac",         /* U+20AC */
		"\xed\x9f\xbf",         /* U+D7FF */
		"\xee\x80\x80",         /* U+E000 */
		"\xef\xbf\xbf",         /* U+FFFF */
		"\xf0\x90\x80\x80",     /* U+10000 */
		"\xf0\x9f\x98\x80",     /* U+1F600 */
		"\xf4\x8f\xbf\xbf",     /* U+10FFFF */
		"caf\xc3\xa9 \xe2\x82\xac 5",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		check_escape(ok[i], ok[i]);
}

static void test_escape_invalid_utf8(void **state)
{
	(void)state;
	check_escape("\x80", "\\udc80");
	check_escape("\xbf", "\\udcbf");
	check_escape("a\x80z", "a\\udc80z");
	check_escape("\xff", "\\udcff");
	check_escape("\xfe", "\\udcfe");
	check_escape("\xc0\x80", "\\udcc0\\udc80");          /* overlong NUL */
	check_escape("\xc1\xbf", "\\udcc1\\udcbf");          /* overlong */
	check_escape("\xe0\x80\x80", "\\udce0\\udc80\\udc80"); /* overlong */
	check_escape("\xe0\x9f\xbf", "\\udce0\\udc9f\\udcbf"); /* overlong */
	check_escape("\xed\xa0\x80", "\\udced\\udca0\\udc80"); /* surrogate */
	check_escape("\xed\xbf\xbf", "\\udced\\udcbf\\udcbf"); /* surrogate */
	check_escape("\xf0\x80\x80\x80", "\\udcf0\\udc80\\udc80\\udc80");
	check_escape("\xf0\x8f\xbf\xbf", "\\udcf0\\udc8f\\udcbf\\udcbf");
	check_escape("\xf4\x90\x80\x80", "\\udcf4\\udc90\\udc80\\udc80"); /* > U+10FFFF */
	check_escape("\xf5\x80\x80\x80", "\\udcf5\\udc80\\udc80\\udc80");
	check_escape("\xf8\x88\x80\x80\x80", "\\udcf8\\udc88\\udc80\\udc80\\udc80");
	/* truncated at the end */
	check_escape("\xc3", "\\udcc3");
	check_escape("\xe2\x82", "\\udce2\\udc82");
	check_escape("\xf0\x9f\x98", "\\udcf0\\udc9f\\udc98");
	check_escape("ok\xf0\x9f", "ok\\udcf0\\udc9f");
	/* truncated, then more text */
	check_escape("\xe2\x82" "A", "\\udce2\\udc82A");
	check_escape("\xc3" " ", "\\udcc3 ");
	check_escape("\xc3\"", "\\udcc3\\\"");
	check_escape("\xc3\n", "\\udcc3\\n");
	/* a bad lead does not swallow the valid sequence that follows */
	check_escape("\xe2\xc3\xa9", "\\udce2\xc3\xa9");
	check_escape("\xc3\xc3\xa9", "\\udcc3\xc3\xa9");
	check_escape("\xe2\x82\xe2\x82\xac", "\\udce2\\udc82\xe2\x82\xac");
	check_escape("\xf0\x9f\x98" "\xf0\x9f\x98\x80", "\\udcf0\\udc9f\\udc98\xf0\x9f\x98\x80");
	/* valid then invalid */
	check_escape("\xc3\xa9\xff", "\xc3\xa9\\udcff");
	/* continuation after a complete sequence */
	check_escape("\xc3\xa9\xa9", "\xc3\xa9\\udca9");
}

static void test_escape_matches_reference_random(void **state)
{
	(void)state;
	srand(20240601);
	/* bytes biased towards UTF-8 structure so valid and invalid sequences
	 * both occur often */
	static const unsigned char pool[] = {
		'a', ' ', '"', '\\', '\n', 0x01, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0,
		0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
	};
	char in[64], want[64 * 6], out[64 * 6 + 16];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rand() % 64);
		for (size_t i = 0; i < len; i++)
			in[i] = (rand() & 1) ? (char)pool[rand() % (int)sizeof pool]
					     : (char)(rand() & 0xff);
		size_t wn = ref_escape(in, len, want);
		size_t n = json_escape(in, len, out);
		if (n != wn || memcmp(out, want, wn) != 0) {
			print_bytes("input   ", in, len);
			assert_bytes(out, n, want, wn);
		}
	}
}

/* Log lines as servers write them: mostly plain text, a quote or another
 * byte to escape here and there, of every length up to 300, each escaped
 * into a buffer of exactly 6 bytes per input byte and the 16 more
 * json_escape may store past its output (the sanitizer build catches a
 * store beyond). */
static void test_escape_sparse_specials_random(void **state)
{
	(void)state;
	srand(20261205);
	static const unsigned char specials[] = {'"', '\\', '\n', '\t', 0x01, 0x7f, 0xc3, 0xa9, 0xff};
	char in[300], want[300 * 6];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rand() % 300);
		int every = 2 + rand() % 60;
		for (size_t i = 0; i < len; i++)
			in[i] = rand() % every ? (char)(' ' + rand() % 95 % 94)
					       : (char)specials[rand() % (int)sizeof specials];
		for (size_t i = 0; i < len; i++)
			if (in[i] == '"' && rand() % 2)
				in[i] = 'q'; /* fewer quotes: long plain runs too */
		size_t wn = ref_escape(in, len, want);
		char *out = malloc(6 * len + 16);
		assert_non_null(out);
		size_t n = json_escape(in, len, out);
		if (n != wn || memcmp(out, want, wn) != 0) {
			print_bytes("input   ", in, len);
			assert_bytes(out, n, want, wn);
		}
		free(out);
	}
}

/* Two marked bytes at every pair of places in lines of 1 to 100 bytes
 * (the blocks of 32, their edges, the tail copied apart): '"' and '\\'
 * in every order (the escaper's path for blocks whose only marked bytes
 * are those) and each with a byte that needs other care after it ('\n',
 * a UTF-8 sequence cut by the line's end or whole, a control byte: the
 * general path), checked against the reference escaper, with what
 * line_format_noting saw, in an output buffer of exactly the bound. */
static void test_escape_quotes_everywhere(void **state)
{
	(void)state;
	static const char pairs[][2] = {
		{'"', '"'}, {'"', '\\'}, {'\\', '"'}, {'\\', '\\'},
		{'"', '\n'}, {'\\', '\x01'}, {'"', '\xc3'}, {'\n', '"'}, {'\xe2', '\\'},
	};
	char in[100], want[100 * 6], noted[100 * 6 + 64];
	for (size_t len = 1; len <= sizeof(in); len++) {
		char *out = malloc(6 * len + 16);
		assert_non_null(out);
		for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
			for (size_t a = 0; a < len; a++) {
				for (size_t b = a; b < len; b++) {
					memset(in, 'x', len);
					in[a] = pairs[k][0];
					in[b] = pairs[k][1];
					if (b + 1 < len && (unsigned char)in[b] == 0xc3)
						in[b + 1] = (char)0xa9; /* whole, unless cut */
					size_t wn = ref_escape(in, len, want);
					size_t n = json_escape(in, len, out);
					if (n != wn || memcmp(out, want, wn) != 0) {
						print_bytes("input   ", in, len);
						assert_bytes(out, n, want, wn);
					}
					unsigned seen = 0;
					line_format_noting(&style_json, "", 0, in, len, noted, &seen, 0);
					assert_int_equal(seen & LINE_SAW_QUOTE,
							 memchr(in, '"', len) ? LINE_SAW_QUOTE : 0u);
				}
			}
		}
		free(out);
	}
}

/* ---- json_is_object_line ----------------------------------------------- */

static void test_object_line_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"{}",
		"{ }",
		"{\t}",
		" \t{}\t ",
		"{}\r",
		" {} \r",
		"{\"a\":1}",
		"{\"a\":1,\"b\":[true,null]}",
		"{ \"a\" : 1 }",
		"{ \"a\" : [ 1 , 2 ] , \"b\" : { } }",
		"{\"a\":{\"b\":{\"c\":[1,2,[3,[]]]}}}",
		"{\"s\":\"q\\\"q\\\\x\\u00e9\\n\\r\\t\\b\\f\\/\"}",
		"{\"s\":\"\\uD83D\\uDE00\"}",
		"{\"s\":\"\\\\\"}",
		"{\"s\":\"}\"}",
		"{\"s\":\"{\\\"not\\\":\\\"obj\\\"}\"}",
		"{\"n\":-1.5e+3}",
		"{\"n\":0}",
		"{\"n\":-0}",
		"{\"n\":0.5}",
		"{\"n\":1E5}",
		"{\"n\":1e-7}",
		"{\"n\":-0.0e0}",
		"{\"n\":123456789012345678901234567890}",
		"{\"t\":true,\"f\":false,\"z\":null}",
		"{\"a\":\"\"}",
		"{\"\":1}",
		"{\"a\":1,\"a\":2}",
		"{\"a\":[]}",
		"{\"a\":[{}]}",
		"{\"a\":[[],[[]],{}]}",
		"{\"\xc3\xa9\":\"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80\"}",
		"{\"level\":\"info\",\"msg\":\"started\",\"port\":8080}",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		expect_object(ok[i], true);
}

static void test_object_line_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", " ", "\t", "\r", "[]", "1", "\"s\"", "null", "true",
		"{", "}", "{{}}", "{foo}", "{a:1}", "{'a':1}", "{1:2}", "{,}",
		"{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
		"{\"a\":1}}", "{\"a\":1} trailing", "x{}", "{}x", "{} {}",
		"{\"a\":1}{\"b\":2}", "{\"a\":\"x", "{\"a\":\"x}", "{\"a\":1",
		"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":-}",
		"{\"a\":1e}", "{\"a\":1e+}", "{\"a\":--1}", "{\"a\":0x10}",
		"{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":undefined}",
		"{\"a\":tru}", "{\"a\":truee}", "{\"a\":True}", "{\"a\":nul}",
		"{\"a\":fals}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}",
		"{\"a\":[}", "{\"a\":{]}", "{\"a\":[[[1]]}", "{\"a\":[1]]}",
		"{\"a\":\"\\x\"}", "{\"a\":\"\\u00g0\"}", "{\"a\":\"\\u00e\"}",
		"{\"a\":\"\\\"}", "{\"a\":\"x\ty\"}", "{\"a\":\"x\x01y\"}",
		"{\"a\":'x'}", "{\"a\":1;}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_object(bad[i], false);
}

static void test_object_line_respects_len(void **state)
{
	(void)state;
	assert_true(json_is_object_line("{}garbage", 2));
	assert_true(json_is_object_line("{\"a\":1}}", 7));
	assert_false(json_is_object_line("{\"a\":1}", 6));
	assert_false(json_is_object_line("{}", 1));
	assert_false(json_is_object_line("{}", 0));
	assert_false(json_is_object_line("{\0}", 3));
}

static void test_object_line_depth(void **state)
{
	(void)state;
	/* moderate nesting of arrays and objects is fine */
	char buf[512];
	size_t o = 0;
	o += (size_t)sprintf(buf + o, "{\"a\":");
	for (int i = 0; i < 20; i++)
		buf[o++] = '[';
	for (int i = 0; i < 20; i++)
		buf[o++] = ']';
	buf[o++] = '}';
	buf[o] = '\0';
	expect_object(buf, true);

	o = 0;
	for (int i = 0; i < 20; i++)
		o += (size_t)sprintf(buf + o, "{\"k\":");
	o += (size_t)sprintf(buf + o, "{}");
	for (int i = 0; i < 20; i++)
		buf[o++] = '}';
	buf[o] = '\0';
	expect_object(buf, true);

	/* unbalanced deep nesting is not an object */
	o = 0;
	o += (size_t)sprintf(buf + o, "{\"a\":");
	for (int i = 0; i < 20; i++)
		buf[o++] = '[';
	for (int i = 0; i < 19; i++)
		buf[o++] = ']';
	buf[o++] = '}';
	buf[o] = '\0';
	expect_object(buf, false);

	/* absurd nesting must not crash (result may be either) and still
	 * formats within the bound */
	enum { DEEP = 200000 };
	char *deep = malloc(2 * DEEP + 16);
	assert_non_null(deep);
	o = 0;
	o += (size_t)sprintf(deep + o, "{\"a\":");
	for (int i = 0; i < DEEP; i++)
		deep[o++] = '[';
	for (int i = 0; i < DEEP; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	(void)json_is_object_line(deep, o);
	size_t bound = bound_for(&style_json, o, 3);
	char *out = malloc(bound);
	assert_non_null(out);
	size_t n = format_for(&style_json, "abc", 3, deep, o, out);
	assert_true(n <= bound);
	free(out);
	free(deep);
}

/* ---- line_format: json ------------------------------------------------- */

static void test_json_plain(void **state)
{
	(void)state;
	check_fmt(&style_json, "abc", "hello", "{\"request_id\":\"abc\",\"msg\":\"hello\"}");
	check_fmt(&style_json, NULL, "hello", "{\"msg\":\"hello\"}");
	check_fmt(&style_json, "abc", "", "{\"request_id\":\"abc\",\"msg\":\"\"}");
	check_fmt(&style_json, NULL, "", "{\"msg\":\"\"}");
	check_fmt(&style_json, "abc", "x\r", "{\"request_id\":\"abc\",\"msg\":\"x\\r\"}");
	check_fmt(&style_json, "abc", "say \"hi\"\\\t",
		  "{\"request_id\":\"abc\",\"msg\":\"say \\\"hi\\\"\\\\\\t\"}");
	check_fmt(&style_json, "abc", "  indented  ",
		  "{\"request_id\":\"abc\",\"msg\":\"  indented  \"}");
	check_fmt(&style_json, "abc", "caf\xc3\xa9 \xff",
		  "{\"request_id\":\"abc\",\"msg\":\"caf\xc3\xa9 \\udcff\"}");
	check_fmt(&style_json, "4bf92f3577b34da6a3ce929d0e0e4736", "GET /",
		  "{\"request_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"msg\":\"GET /\"}");
	/* embedded NUL, explicit lengths */
	const char want[] = "{\"request_id\":\"abc\",\"msg\":\"a\\u0000b\"}";
	check_fmt_n(&style_json, "abc", 3, "a\0b", 3, want, sizeof want - 1);
	/* id_len is honoured, not strlen(id) */
	check_fmt_n(&style_json, "abcdef", 3, "hi", 2,
		    "{\"request_id\":\"abc\",\"msg\":\"hi\"}", 31);
	/* line len is honoured */
	check_fmt_n(&style_json, "abc", 3, "hello world", 5,
		    "{\"request_id\":\"abc\",\"msg\":\"hello\"}", 34);
}

static void test_json_object_line(void **state)
{
	(void)state;
	check_fmt(&style_json, "abc", "{\"a\":1,\"b\":[true,null]}",
		  "{\"request_id\":\"abc\",\"a\":1,\"b\":[true,null]}");
	check_fmt(&style_json, "abc", "{ \"a\" : 1 }",
		  "{\"request_id\":\"abc\", \"a\" : 1 }");
	check_fmt(&style_json, "abc", "{}", "{\"request_id\":\"abc\"}");
	check_fmt(&style_json, "abc", "{ }", "{\"request_id\":\"abc\" }");
	check_fmt(&style_json, "abc", "  {\"a\":1}  ", "  {\"request_id\":\"abc\",\"a\":1}  ");
	check_fmt(&style_json, "abc", "\t{\"a\":1}", "\t{\"request_id\":\"abc\",\"a\":1}");
	check_fmt(&style_json, "abc", "{\"a\":1}\r", "{\"request_id\":\"abc\",\"a\":1}\r");
	check_fmt(&style_json, "abc", " {\"a\":1} \r", " {\"request_id\":\"abc\",\"a\":1} \r");
	check_fmt(&style_json, "abc", "{\"s\":\"\xc3\xa9\\u00e9\"}",
		  "{\"request_id\":\"abc\",\"s\":\"\xc3\xa9\\u00e9\"}");
	/* an existing member of the same name is not touched */
	check_fmt(&style_json, "abc", "{\"request_id\":\"old\"}",
		  "{\"request_id\":\"abc\",\"request_id\":\"old\"}");
	/* object line shorter than its buffer */
	check_fmt_n(&style_json, "abc", 3, "{\"a\":1}xyz", 7,
		    "{\"request_id\":\"abc\",\"a\":1}", 26);
}

static void test_json_object_line_without_id(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"{\"a\":1}", "{}", "{ }", "  {\"a\":1}  ", "{\"a\":1}\r", "\t{\"a\":[1]} \r",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		check_fmt(&style_json, NULL, lines[i], lines[i]);
}

static void test_json_not_quite_object(void **state)
{
	(void)state;
	check_fmt(&style_json, "abc", "{foo}", "{\"request_id\":\"abc\",\"msg\":\"{foo}\"}");
	check_fmt(&style_json, "abc", "{\"a\":1} trailing",
		  "{\"request_id\":\"abc\",\"msg\":\"{\\\"a\\\":1} trailing\"}");
	check_fmt(&style_json, "abc", "{\"a\":}",
		  "{\"request_id\":\"abc\",\"msg\":\"{\\\"a\\\":}\"}");
	check_fmt(&style_json, "abc", "{\"a\":\"x",
		  "{\"request_id\":\"abc\",\"msg\":\"{\\\"a\\\":\\\"x\"}");
	check_fmt(&style_json, "abc", "[1,2]", "{\"request_id\":\"abc\",\"msg\":\"[1,2]\"}");
	check_fmt(&style_json, NULL, "{foo}", "{\"msg\":\"{foo}\"}");
	check_fmt(&style_json, NULL, "{\"a\":1} x", "{\"msg\":\"{\\\"a\\\":1} x\"}");
	/* a CR that is not last makes it plain text */
	check_fmt(&style_json, "abc", "{}\rx", "{\"request_id\":\"abc\",\"msg\":\"{}\\rx\"}");
}

/* ---- line_format: prefix and logfmt ------------------------------------ */

static void test_syslog_cee(void **state)
{
	(void)state;
	check_fmt(&style_cee, "abc", "disk full", "@cee:{\"request_id\":\"abc\",\"msg\":\"disk full\"}");
	check_fmt(&style_cee, NULL, "disk full", "@cee:{\"msg\":\"disk full\"}");
	check_fmt(&style_cee, "abc", "{\"a\":1}", "@cee:{\"request_id\":\"abc\",\"a\":1}");
	/* A message that already carries the cookie is enriched after it. */
	check_fmt(&style_cee, "abc", "@cee:{\"a\":1}", "@cee:{\"request_id\":\"abc\",\"a\":1}");
	check_fmt(&style_cee, NULL, "@cee:{\"a\":1}", "@cee:{\"a\":1}");
	check_fmt(&style_cee, "abc", "@cee: not json", "@cee:{\"request_id\":\"abc\",\"msg\":\" not json\"}");
	check_fmt(&style_cee, "abc", "", "@cee:{\"request_id\":\"abc\",\"msg\":\"\"}");
	/* The cookie is for json only. */
	check_fmt(&style_cee_prefix, "abc", "disk full", "{\"request_id\":\"abc\"} disk full");
}

static void test_syslog_header_len(void **state)
{
	(void)state;
	static const char glibc[] = "<14>Nov 21 05:56:30 app[123]: hello: world";
	assert_int_equal(syslog_header_len(glibc, strlen(glibc)), strlen("<14>Nov 21 05:56:30 app[123]: "));
	static const char nopid[] = "<191>Nov  1 00:00:00 app: x";
	assert_int_equal(syslog_header_len(nopid, strlen(nopid)), strlen("<191>Nov  1 00:00:00 app: "));
	static const char empty_msg[] = "<3>Nov 21 05:56:30 app: ";
	assert_int_equal(syslog_header_len(empty_msg, strlen(empty_msg)), strlen(empty_msg));
	assert_int_equal(syslog_header_len("hello: world", 12), 0);
	assert_int_equal(syslog_header_len("<>x: y", 6), 0);
	assert_int_equal(syslog_header_len("<1234>x: y", 10), 0);
	assert_int_equal(syslog_header_len("<14>no colon here", 17), 0);
	assert_int_equal(syslog_header_len("<14>a:b", 7), 0);
	assert_int_equal(syslog_header_len("<1", 2), 0);
}

static void test_prefix(void **state)
{
	(void)state;
	check_fmt(&style_prefix, "abc", "hello", "{\"request_id\":\"abc\"} hello");
	check_fmt(&style_prefix, NULL, "hello", "{} hello");
	check_fmt(&style_prefix, "abc", "{\"a\":1}", "{\"request_id\":\"abc\"} {\"a\":1}");
	/* the line itself is not escaped */
	check_fmt(&style_prefix, "abc", "a\"b\\c\td\xff",
		  "{\"request_id\":\"abc\"} a\"b\\c\td\xff");
	check_fmt_n(&style_prefix, "abcdef", 3, "hello!", 5,
		    "{\"request_id\":\"abc\"} hello", 26);
}

static void test_logfmt(void **state)
{
	(void)state;
	check_fmt(&style_logfmt, "abc", "hello", "request_id=abc hello");
	check_fmt(&style_logfmt, NULL, "hello", "hello");
	check_fmt(&style_logfmt, "abc", "level=info msg=\"x y\"",
		  "request_id=abc level=info msg=\"x y\"");
	check_fmt(&style_logfmt, "abc", "{\"a\":1}", "request_id=abc {\"a\":1}");
	check_fmt(&style_logfmt, NULL, "a\"b\xff\r", "a\"b\xff\r");
	check_fmt_n(&style_logfmt, "abcdef", 3, "hello!", 5, "request_id=abc hello", 20);
}

static void test_custom_field(void **state)
{
	(void)state;
	/* field_len is honoured: only "rid" of "ridXYZ" */
	const struct line_style j = { FORMAT_JSON, "ridXYZ", 3, false, 1, {FIELD_REQUEST_ID} };
	const struct line_style p = { FORMAT_PREFIX, "ridXYZ", 3, false, 1, {FIELD_REQUEST_ID} };
	const struct line_style l = { FORMAT_LOGFMT, "ridXYZ", 3, false, 1, {FIELD_REQUEST_ID} };
	check_fmt(&j, "abc", "hello", "{\"rid\":\"abc\",\"msg\":\"hello\"}");
	check_fmt(&j, "abc", "{\"a\":1}", "{\"rid\":\"abc\",\"a\":1}");
	check_fmt(&j, "abc", "{}", "{\"rid\":\"abc\"}");
	check_fmt(&j, NULL, "hello", "{\"msg\":\"hello\"}");
	check_fmt(&p, "abc", "hello", "{\"rid\":\"abc\"} hello");
	check_fmt(&p, NULL, "hello", "{} hello");
	check_fmt(&l, "abc", "hello", "rid=abc hello");
	check_fmt(&l, NULL, "hello", "hello");

	const struct line_style j2 = { FORMAT_JSON, "trace.id@x", 10, false, 1, {FIELD_REQUEST_ID} };
	check_fmt(&j2, "abc", "m", "{\"trace.id@x\":\"abc\",\"msg\":\"m\"}");
}

/* ---- line_fields: request_id, trace_id, span_id ------------------------ */

#define T_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define S_ID "00f067aa0ba902b7"

static struct trace_ctx make_trace(void)
{
	struct trace_ctx t;
	memset(&t, 0xA5, sizeof t);
	memcpy(t.trace_id, T_ID, 32);
	memcpy(t.span_id, S_ID, 16);
	t.flags = 0x03;
	return t;
}

static struct line_style style3(enum log_format format, const char *field, size_t field_len,
				const int *fields, size_t n)
{
	struct line_style st = { format, field, field_len, false, (uint8_t)n, {0} };
	for (size_t i = 0; i < n; i++)
		st.fields[i] = (uint8_t)fields[i];
	return st;
}

/* line_fields into a heap buffer of exactly LINE_FIELDS_MAX bytes (ASan
 * catches overruns), with a check that nothing past the length is written. */
static void check_fields(const struct line_style *st, const char *id, size_t id_len,
			 const struct trace_ctx *trace, const char *want)
{
	char *out = malloc(LINE_FIELDS_MAX);
	assert_non_null(out);
	memset(out, '#', LINE_FIELDS_MAX);
	size_t n = line_fields(st, id, id_len, trace, out);
	assert_true(n <= LINE_FIELDS_MAX);
	assert_bytes(out, n, want, strlen(want));
	for (size_t i = n; i < LINE_FIELDS_MAX; i++)
		if (out[i] != '#')
			fail_msg("line_fields wrote byte %zu past its length %zu", i, n);
	free(out);
}

static void test_fields_json_prefix(void **state)
{
	(void)state;
	const struct trace_ctx t = make_trace();
	const int R = FIELD_REQUEST_ID, T = FIELD_TRACE_ID, S = FIELD_SPAN_ID;
	const enum log_format formats[] = { FORMAT_JSON, FORMAT_PREFIX };
	for (size_t f = 0; f < 2; f++) {
		struct line_style st;
		st = style3(formats[f], "request_id", 10, (int[]){ R }, 1);
		check_fields(&st, "abc", 3, &t, "\"request_id\":\"abc\"");
		check_fields(&st, "abc", 3, NULL, "\"request_id\":\"abc\"");
		check_fields(&st, "abc", 0, &t, "");
		st = style3(formats[f], "request_id", 10, (int[]){ T }, 1);
		check_fields(&st, "abc", 3, &t, "\"trace_id\":\"" T_ID "\"");
		check_fields(&st, "abc", 3, NULL, "");
		st = style3(formats[f], "request_id", 10, (int[]){ S }, 1);
		check_fields(&st, "abc", 3, &t, "\"span_id\":\"" S_ID "\"");
		check_fields(&st, "abc", 3, NULL, "");
		st = style3(formats[f], "request_id", 10, (int[]){ T, S }, 2);
		check_fields(&st, "abc", 3, &t, "\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\"");
		check_fields(&st, "abc", 3, NULL, "");
		st = style3(formats[f], "request_id", 10, (int[]){ S, T }, 2);
		check_fields(&st, "abc", 3, &t, "\"span_id\":\"" S_ID "\",\"trace_id\":\"" T_ID "\"");
		st = style3(formats[f], "request_id", 10, (int[]){ R, T }, 2);
		check_fields(&st, "abc", 3, &t, "\"request_id\":\"abc\",\"trace_id\":\"" T_ID "\"");
		check_fields(&st, "abc", 3, NULL, "\"request_id\":\"abc\"");
		check_fields(&st, "abc", 0, &t, "\"trace_id\":\"" T_ID "\"");
		check_fields(&st, NULL, 0, NULL, "");
		st = style3(formats[f], "request_id", 10, (int[]){ T, R }, 2);
		check_fields(&st, "abc", 3, &t, "\"trace_id\":\"" T_ID "\",\"request_id\":\"abc\"");
		/* a field left out leaves no separator behind */
		check_fields(&st, "abc", 3, NULL, "\"request_id\":\"abc\"");
		check_fields(&st, "abc", 0, &t, "\"trace_id\":\"" T_ID "\"");
		st = style3(formats[f], "request_id", 10, (int[]){ R, T, S }, 3);
		check_fields(&st, "abc", 3, &t,
			     "\"request_id\":\"abc\",\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\"");
		check_fields(&st, "abc", 3, NULL, "\"request_id\":\"abc\"");
		check_fields(&st, "abc", 0, &t,
			     "\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\"");
		st = style3(formats[f], "request_id", 10, (int[]){ S, R, T }, 3);
		check_fields(&st, "abc", 3, &t,
			     "\"span_id\":\"" S_ID "\",\"request_id\":\"abc\",\"trace_id\":\"" T_ID "\"");
		check_fields(&st, "abc", 3, NULL, "\"request_id\":\"abc\"");
		st = style3(formats[f], "request_id", 10, (int[]){ S, T, R }, 3);
		check_fields(&st, "abc", 3, &t,
			     "\"span_id\":\"" S_ID "\",\"trace_id\":\"" T_ID "\",\"request_id\":\"abc\"");
		/* renamed request_id; id_len honoured */
		st = style3(formats[f], "ridXYZ", 3, (int[]){ T, R, S }, 3);
		check_fields(&st, "abcdef", 4, &t,
			     "\"trace_id\":\"" T_ID "\",\"rid\":\"abcd\",\"span_id\":\"" S_ID "\"");
		/* no fields at all */
		st = style3(formats[f], "request_id", 10, NULL, 0);
		check_fields(&st, "abc", 3, &t, "");
	}
}

static void test_fields_logfmt(void **state)
{
	(void)state;
	const struct trace_ctx t = make_trace();
	const int R = FIELD_REQUEST_ID, T = FIELD_TRACE_ID, S = FIELD_SPAN_ID;
	struct line_style st;
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ R }, 1);
	check_fields(&st, "abc", 3, &t, "request_id=abc");
	check_fields(&st, "abc", 0, &t, "");
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ T }, 1);
	check_fields(&st, "abc", 3, &t, "trace_id=" T_ID);
	check_fields(&st, "abc", 3, NULL, "");
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ S }, 1);
	check_fields(&st, "abc", 3, &t, "span_id=" S_ID);
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ T, S }, 2);
	check_fields(&st, "abc", 3, &t, "trace_id=" T_ID " span_id=" S_ID);
	check_fields(&st, "abc", 3, NULL, "");
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ S, R }, 2);
	check_fields(&st, "abc", 3, &t, "span_id=" S_ID " request_id=abc");
	check_fields(&st, "abc", 3, NULL, "request_id=abc");
	check_fields(&st, "abc", 0, &t, "span_id=" S_ID);
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ R, T, S }, 3);
	check_fields(&st, "abc", 3, &t, "request_id=abc trace_id=" T_ID " span_id=" S_ID);
	check_fields(&st, "abc", 3, NULL, "request_id=abc");
	check_fields(&st, "abc", 0, &t, "trace_id=" T_ID " span_id=" S_ID);
	check_fields(&st, "abc", 0, NULL, "");
	st = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ T, R, S }, 3);
	check_fields(&st, "abc", 3, &t, "trace_id=" T_ID " request_id=abc span_id=" S_ID);
	st = style3(FORMAT_LOGFMT, "req", 3, (int[]){ S, T, R }, 3);
	check_fields(&st, "abc", 3, &t, "span_id=" S_ID " trace_id=" T_ID " req=abc");
}

/* Every ordered choice of fields, every format, with and without id and
 * trace, against the pieces written out by hand. */
static void test_fields_every_order(void **state)
{
	(void)state;
	const struct trace_ctx t = make_trace();
	static const char *const json_piece[] = {
		"\"rid\":\"my-id\"", "\"trace_id\":\"" T_ID "\"", "\"span_id\":\"" S_ID "\"",
	};
	static const char *const logfmt_piece[] = {
		"rid=my-id", "trace_id=" T_ID, "span_id=" S_ID,
	};
	const enum log_format formats[] = { FORMAT_JSON, FORMAT_PREFIX, FORMAT_LOGFMT };
	size_t checked = 0;
	for (int n = 0; n <= 3; n++) {
		for (int a = 0; a < 3; a++)
			for (int b = 0; b < 3; b++)
				for (int c = 0; c < 3; c++) {
					int order[3] = { a, b, c };
					if ((n > 1 && a == b) || (n > 2 && (a == c || b == c)))
						continue;
					if ((n < 3 && c != 0) || (n < 2 && b != 0) || (n < 1 && a != 0))
						continue;
					for (size_t f = 0; f < 3; f++)
						for (int with_id = 0; with_id < 2; with_id++)
							for (int with_trace = 0; with_trace < 2; with_trace++) {
								struct line_style st = style3(
									formats[f], "rid", 3, order, (size_t)n);
								char want[400] = "";
								bool logfmt = formats[f] == FORMAT_LOGFMT;
								for (int i = 0; i < n; i++) {
									if (order[i] == FIELD_REQUEST_ID && !with_id)
										continue;
									if (order[i] != FIELD_REQUEST_ID && !with_trace)
										continue;
									if (want[0])
										strcat(want, logfmt ? " " : ",");
									strcat(want, (logfmt ? logfmt_piece
											     : json_piece)[order[i]]);
								}
								check_fields(&st, "my-id", with_id ? 5 : 0,
									     with_trace ? &t : NULL, want);
								checked++;
							}
				}
	}
	/* 1 + 3 + 6 + 6 orders, 3 formats, 4 combinations */
	assert_int_equal(checked, 16 * 3 * 4);
}

static void test_fields_longest(void **state)
{
	(void)state;
	/* the longest name, the longest id, and the trace: within
	 * LINE_FIELDS_MAX, and the whole line within its bound */
	const struct trace_ctx t = make_trace();
	char name[CONFIG_MAX_FIELD + 1], id[REQUEST_ID_MAX + 1];
	memset(name, 'f', CONFIG_MAX_FIELD);
	name[CONFIG_MAX_FIELD] = '\0';
	memset(id, 'i', REQUEST_ID_MAX);
	id[REQUEST_ID_MAX] = '\0';
	const enum log_format formats[] = { FORMAT_JSON, FORMAT_PREFIX, FORMAT_LOGFMT };
	for (size_t f = 0; f < 3; f++) {
		for (int cee = 0; cee < 2; cee++) {
			struct line_style st = style3(formats[f], name, CONFIG_MAX_FIELD,
						      (int[]){ FIELD_SPAN_ID, FIELD_REQUEST_ID,
							       FIELD_TRACE_ID }, 3);
			st.cee = cee;
			char want[LINE_FIELDS_MAX + 1];
			if (formats[f] == FORMAT_LOGFMT)
				snprintf(want, sizeof want, "span_id=" S_ID " %s=%s trace_id=" T_ID,
					 name, id);
			else
				snprintf(want, sizeof want,
					 "\"span_id\":\"" S_ID "\",\"%s\":\"%s\",\"trace_id\":\"" T_ID "\"",
					 name, id);
			check_fields(&st, id, REQUEST_ID_MAX, &t, want);

			char fields[LINE_FIELDS_MAX];
			size_t fl = line_fields(&st, id, REQUEST_ID_MAX, &t, fields);
			static const char *const lines[] = { "\x01\x01\x01\x01", "{}", "{ \"a\":1 }",
							     "", "@cee:{}" };
			for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
				size_t len = strlen(lines[l]);
				size_t bound = line_format_bound(len, fl);
				char *out = malloc(bound);
				assert_non_null(out);
				size_t n = line_format(&st, fields, fl, lines[l], len, out);
				assert_true(n <= bound);
				free(out);
			}
		}
	}
}

/* line_format with fields rendered by line_fields, into a buffer of
 * exactly the bound. */
static void check_line(const struct line_style *st, const char *id,
		       const struct trace_ctx *trace, const char *line, const char *want)
{
	char fields[LINE_FIELDS_MAX];
	size_t fl = line_fields(st, id, id ? strlen(id) : 0, trace, fields);
	size_t len = strlen(line), bound = line_format_bound(len, fl);
	char *out = malloc(bound);
	assert_non_null(out);
	size_t n = line_format(st, fields, fl, line, len, out);
	assert_true(n <= bound);
	if (n != strlen(want) || memcmp(out, want, n) != 0)
		print_bytes("input   ", line, len);
	assert_bytes(out, n, want, strlen(want));
	free(out);
}

static void test_format_with_trace_fields(void **state)
{
	(void)state;
	const struct trace_ctx t = make_trace();
	const int R = FIELD_REQUEST_ID, T = FIELD_TRACE_ID, S = FIELD_SPAN_ID;
	struct line_style j = style3(FORMAT_JSON, "request_id", 10, (int[]){ R, T, S }, 3);
	struct line_style p = style3(FORMAT_PREFIX, "request_id", 10, (int[]){ R, T, S }, 3);
	struct line_style l = style3(FORMAT_LOGFMT, "request_id", 10, (int[]){ R, T, S }, 3);
	struct line_style c = style3(FORMAT_JSON, "request_id", 10, (int[]){ R, T, S }, 3);
	c.cee = true;
#define ALL3 "\"request_id\":\"abc\",\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\""

	/* a plain line */
	check_line(&j, "abc", &t, "hello \"x\"", "{" ALL3 ",\"msg\":\"hello \\\"x\\\"\"}");
	check_line(&p, "abc", &t, "hello \"x\"", "{" ALL3 "} hello \"x\"");
	check_line(&l, "abc", &t, "hello \"x\"",
		   "request_id=abc trace_id=" T_ID " span_id=" S_ID " hello \"x\"");
	check_line(&c, "abc", &t, "hello", "@cee:{" ALL3 ",\"msg\":\"hello\"}");
	/* a JSON object line */
	check_line(&j, "abc", &t, "{\"level\":\"info\",\"n\":1}",
		   "{" ALL3 ",\"level\":\"info\",\"n\":1}");
	check_line(&j, "abc", &t, " { \"a\" : [1] } \r", " {" ALL3 ", \"a\" : [1] } \r");
	check_line(&j, "abc", &t, "{}", "{" ALL3 "}");
	check_line(&j, "abc", &t, "{ }", "{" ALL3 " }");
	check_line(&c, "abc", &t, "@cee:{\"a\":1}", "@cee:{" ALL3 ",\"a\":1}");
	check_line(&p, "abc", &t, "{\"a\":1}", "{" ALL3 "} {\"a\":1}");
	check_line(&l, "abc", &t, "{\"a\":1}",
		   "request_id=abc trace_id=" T_ID " span_id=" S_ID " {\"a\":1}");

	/* without the trace: only the id */
	check_line(&j, "abc", NULL, "hello", "{\"request_id\":\"abc\",\"msg\":\"hello\"}");
	check_line(&j, "abc", NULL, "{\"a\":1}", "{\"request_id\":\"abc\",\"a\":1}");
	check_line(&p, "abc", NULL, "hello", "{\"request_id\":\"abc\"} hello");
	check_line(&l, "abc", NULL, "hello", "request_id=abc hello");
	/* without the id: only the trace */
	check_line(&j, NULL, &t, "hello",
		   "{\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\",\"msg\":\"hello\"}");
	check_line(&j, NULL, &t, "{\"a\":1}",
		   "{\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\",\"a\":1}");
	check_line(&p, NULL, &t, "hello",
		   "{\"trace_id\":\"" T_ID "\",\"span_id\":\"" S_ID "\"} hello");
	check_line(&l, NULL, &t, "hello", "trace_id=" T_ID " span_id=" S_ID " hello");
	/* neither: nothing added */
	check_line(&j, NULL, NULL, "hello", "{\"msg\":\"hello\"}");
	check_line(&j, NULL, NULL, "{\"a\":1}", "{\"a\":1}");
	check_line(&p, NULL, NULL, "hello", "{} hello");
	check_line(&l, NULL, NULL, "hello", "hello");
	check_line(&c, NULL, NULL, "{\"a\":1}", "@cee:{\"a\":1}");

	/* trace fields only, in the other order, renamed id unused */
	struct line_style j2 = style3(FORMAT_JSON, "rid", 3, (int[]){ S, T }, 2);
	check_line(&j2, "abc", &t, "x",
		   "{\"span_id\":\"" S_ID "\",\"trace_id\":\"" T_ID "\",\"msg\":\"x\"}");
	check_line(&j2, "abc", NULL, "x", "{\"msg\":\"x\"}");
	struct line_style l2 = style3(FORMAT_LOGFMT, "rid", 3, (int[]){ T, R }, 2);
	check_line(&l2, "abc", &t, "x", "trace_id=" T_ID " rid=abc x");
	check_line(&l2, "abc", NULL, "x", "rid=abc x");
#undef ALL3
}

/* ---- random valid objects ---------------------------------------------- */

static size_t gen_ws(char *b)
{
	size_t n = (size_t)(rand() % 3);
	for (size_t i = 0; i < n; i++)
		b[i] = (rand() & 1) ? ' ' : '\t';
	return n;
}

static size_t gen_string(char *b)
{
	static const char *const parts[] = {
		"a", "Z", "0", " ", "\\\"", "\\\\", "\\/", "\\n", "\\t", "\\u00e9",
		"\\uD83D\\uDE00", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "{", "}",
		"[", "]", ":", ",", "'",
	};
	size_t o = 0;
	b[o++] = '"';
	int n = rand() % 5;
	for (int i = 0; i < n; i++) {
		const char *s = parts[rand() % (int)(sizeof parts / sizeof parts[0])];
		size_t l = strlen(s);
		memcpy(b + o, s, l);
		o += l;
	}
	b[o++] = '"';
	return o;
}

static size_t gen_value(char *b, int depth);

static size_t gen_object(char *b, int depth)
{
	size_t o = 0;
	b[o++] = '{';
	o += gen_ws(b + o);
	int n = depth > 3 ? 0 : rand() % 4;
	for (int i = 0; i < n; i++) {
		if (i) {
			b[o++] = ',';
			o += gen_ws(b + o);
		}
		o += gen_string(b + o);
		o += gen_ws(b + o);
		b[o++] = ':';
		o += gen_ws(b + o);
		o += gen_value(b + o, depth + 1);
		o += gen_ws(b + o);
	}
	b[o++] = '}';
	return o;
}

static size_t gen_value(char *b, int depth)
{
	static const char *const scalars[] = {
		"0", "-1", "1.5", "-1.5e+3", "2E-2", "1e10", "true", "false", "null",
		"123456789",
	};
	int kind = rand() % (depth > 3 ? 2 : 4);
	size_t o = 0;
	if (kind == 0) {
		const char *s = scalars[rand() % (int)(sizeof scalars / sizeof scalars[0])];
		o = strlen(s);
		memcpy(b, s, o);
	} else if (kind == 1) {
		o = gen_string(b);
	} else if (kind == 2) {
		o = gen_object(b, depth);
	} else {
		b[o++] = '[';
		o += gen_ws(b + o);
		int n = rand() % 4;
		for (int i = 0; i < n; i++) {
			if (i) {
				b[o++] = ',';
				o += gen_ws(b + o);
			}
			o += gen_value(b + o, depth + 1);
			o += gen_ws(b + o);
		}
		b[o++] = ']';
	}
	return o;
}

static void test_random_valid_objects(void **state)
{
	(void)state;
	srand(4242);
	static char line[1 << 16], want[1 << 17];
	for (int iter = 0; iter < 3000; iter++) {
		size_t lead = gen_ws(line);
		size_t body_start = lead;
		size_t o = lead + gen_object(line + lead, 0);
		size_t body_end = o;
		o += gen_ws(line + o);
		if (rand() % 4 == 0)
			line[o++] = '\r';
		assert_true(o < sizeof line);
		if (!json_is_object_line(line, o)) {
			print_bytes("line", line, o);
			fail_msg("generated valid object rejected");
		}
		/* expected: '{' + field + (',' if non-empty) + rest */
		size_t w = 0;
		memcpy(want, line, body_start + 1);
		w = body_start + 1;
		w += (size_t)sprintf(want + w, "\"request_id\":\"abc\"");
		size_t k = body_start + 1;
		while (line[k] == ' ' || line[k] == '\t')
			k++;
		if (line[k] != '}')
			want[w++] = ',';
		memcpy(want + w, line + body_start + 1, o - body_start - 1);
		w += o - body_start - 1;
		check_fmt_n(&style_json, "abc", 3, line, o, want, w);
		check_fmt_n(&style_json, NULL, 0, line, o, line, o);

		/* chopping the last byte of the object makes it invalid */
		if (json_is_object_line(line, body_end - 1)) {
			print_bytes("line", line, body_end - 1);
			fail_msg("truncated object accepted");
		}
	}
}

/* ---- bound ------------------------------------------------------------- */

static void check_bound(const struct line_style *st, const char *id, size_t id_len,
			const char *line, size_t len)
{
	size_t bound = bound_for(st, len, id_len);
	char *out = malloc(bound ? bound : 1);
	assert_non_null(out);
	size_t n = format_for(st, id, id_len, line, len, out);
	if (n > bound) {
		print_bytes("line", line, len);
		fail_msg("format %d id_len %zu len %zu: output %zu > bound %zu",
			 (int)st->format, id_len, len, n, bound);
	}
	free(out);
}

static void test_bound_random(void **state)
{
	(void)state;
	srand(12345);
	char long_id[129];
	memset(long_id, 'i', 128);
	long_id[128] = '\0';
	char long_field[64];
	memset(long_field, 'f', 63);
	long_field[63] = '\0';
	const struct line_style styles[] = {
		style_json, style_prefix, style_logfmt,
		{ FORMAT_JSON, long_field, 63, false, 1, {FIELD_REQUEST_ID} },
		{ FORMAT_PREFIX, long_field, 63, false, 1, {FIELD_REQUEST_ID} },
		{ FORMAT_LOGFMT, long_field, 63, false, 1, {FIELD_REQUEST_ID} },
		{ FORMAT_JSON, "r", 1, false, 1, {FIELD_REQUEST_ID} },
	};
	const char *ids[] = { NULL, "abc", long_id };
	const size_t id_lens[] = { 0, 3, 128 };
	static const char json_pool[] = "{}[]\":,\\ \t\r0123456789abcdefnultrue-+.eE";
	static char line[5000];
	for (size_t len = 0; len <= 4096; len += (len < 300 ? 1 : 97)) {
		for (int trial = 0; trial < 3; trial++) {
			int mode = rand() % 4;
			for (size_t i = 0; i < len; i++) {
				switch (mode) {
				case 0: line[i] = (char)(rand() & 0xff); break;
				case 1: line[i] = (char)(rand() % 0x20); break; /* worst case */
				case 2: line[i] = json_pool[rand() % (int)(sizeof json_pool - 1)]; break;
				default: line[i] = (char)(0x80 + rand() % 0x80); break;
				}
			}
			if (mode == 2 && len >= 2) {
				line[0] = '{';
				line[len - 1] = '}';
			}
			for (size_t s = 0; s < sizeof styles / sizeof styles[0]; s++)
				for (size_t i = 0; i < 3; i++)
					check_bound(&styles[s], ids[i], id_lens[i], line, len);
		}
	}
	/* fixed worst cases */
	memset(line, 0x01, 4096);
	for (size_t s = 0; s < sizeof styles / sizeof styles[0]; s++)
		for (size_t i = 0; i < 3; i++) {
			check_bound(&styles[s], ids[i], id_lens[i], line, 4096);
			check_bound(&styles[s], ids[i], id_lens[i], "{}", 2);
			check_bound(&styles[s], ids[i], id_lens[i], "{ }", 3);
			check_bound(&styles[s], ids[i], id_lens[i], "", 0);
			check_bound(&styles[s], ids[i], id_lens[i], "\xff", 1);
		}
}

static void test_plain_matches_reference_random(void **state)
{
	(void)state;
	/* random lines that cannot be objects (first byte is not space, tab or
	 * '{') must come out as {"request_id":"abc","msg":"<ref escape>"} */
	srand(777);
	char line[200], want[200 * 6 + 64];
	for (int iter = 0; iter < 5000; iter++) {
		size_t len = 1 + (size_t)(rand() % 199);
		for (size_t i = 0; i < len; i++)
			line[i] = (char)(rand() & 0xff);
		if (line[0] == '{' || line[0] == ' ' || line[0] == '\t')
			line[0] = 'x';
		size_t w = (size_t)sprintf(want, "{\"request_id\":\"abc\",\"msg\":\"");
		w += ref_escape(line, len, want + w);
		want[w++] = '"';
		want[w++] = '}';
		check_fmt_n(&style_json, "abc", 3, line, len, want, w);
	}
}

/* ---- what line_format_noting sees --------------------------------------- */

/* seen's bits for a line in every style, and line_format_escapes_whole:
 * where it holds, LINE_SAW_NEWLINE is exactly whether the line held a
 * newline at any place (the log writer takes a write as one line on it). */
static void test_noting_seen(void **state)
{
	(void)state;
	const struct line_style *styles[] = { &style_json, &style_prefix, &style_logfmt, &style_cee };
	static const char *const lines[] = {
		"", "plain", "say \"hi\"", "a\nb", "\n", "x\n", "\"\n\"",
		"{\"k\":1}", "{\"k\":\n1}", " {\"k\":1}", "\t{\"k\":1}", "{not json\n",
		"@cee: x\n", "@cee:{\"k\":1}", " leading space\n",
		"0123456789012345678901234567890123456789012345678901234567890123456789\n",
		"0123456789012345678901234567890123456789012345678901234567890123456789\"x",
		"01234567890123456789012345678901234567890123456789\n0123456789012345678",
	};
	char out[4096];
	for (size_t k = 0; k < sizeof(styles) / sizeof(styles[0]); k++) {
		for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
			const char *line = lines[i];
			size_t len = strlen(line);
			unsigned seen = 99;
			size_t n = line_format_noting(styles[k], "\"request_id\":\"r\"", 16, line, len,
						      out, &seen, 0);
			assert_int_equal(n, line_format(styles[k], "\"request_id\":\"r\"", 16, line,
							len, out));
			bool quote = memchr(line, '"', len) != NULL;
			bool newline = memchr(line, '\n', len) != NULL;
			bool whole = line_format_escapes_whole(styles[k], line, len);
			assert_int_equal(whole, styles[k] == &style_json &&
							(len == 0 || (line[0] != '{' && line[0] != ' ' &&
								      line[0] != '\t')));
			if (whole)
				assert_int_equal(seen, (quote ? LINE_SAW_QUOTE : 0u) |
							       (newline ? LINE_SAW_NEWLINE : 0u));
			else if (quote)
				assert_true(seen & LINE_SAW_QUOTE);
			else
				assert_int_equal(seen & LINE_SAW_QUOTE, 0);
			/* Stopped at a newline the escaper met: it was seen;
			 * without one, the same line. */
			char stopped[4096];
			unsigned seen_stopped = 99;
			size_t n_stopped = line_format_noting(styles[k], "\"request_id\":\"r\"", 16,
							      line, len, stopped, &seen_stopped,
							      LINE_SAW_NEWLINE);
			if (seen & LINE_SAW_NEWLINE) {
				assert_true(seen_stopped & LINE_SAW_NEWLINE);
			} else {
				assert_int_equal(seen_stopped, seen);
				assert_bytes(stopped, n_stopped, out, n);
			}
		}
	}
}

/* A newline found at every place of lines of 1 to 130 bytes (the run
 * copiers' blocks, their tails and the bytes after them), and none where
 * there is none; asked to stop at one, the escaper goes no further. */
static void test_noting_newline_everywhere(void **state)
{
	(void)state;
	char line[131], out[1024];
	for (size_t len = 1; len <= 130; len++) {
		memset(line, 'a', len);
		unsigned seen = 99;
		line_format_noting(&style_json, "", 0, line, len, out, &seen, 0);
		assert_int_equal(seen, 0);
		for (size_t at = 0; at < len; at++) {
			memset(line, 'a', len);
			line[at] = '\n';
			/* {"msg":" and "}, the line with its newline as \n */
			size_t n = line_format_noting(&style_json, "", 0, line, len, out, &seen, 0);
			assert_int_equal(seen, LINE_SAW_NEWLINE);
			assert_int_equal(n, len + 11);
			/* stopped after the newline's escape */
			n = line_format_noting(&style_json, "", 0, line, len, out, &seen,
					       LINE_SAW_NEWLINE);
			assert_int_equal(seen, LINE_SAW_NEWLINE);
			assert_int_equal(n, at + 12);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_ascii),
		cmocka_unit_test(test_escape_all_ascii_bytes),
		cmocka_unit_test(test_escape_valid_utf8),
		cmocka_unit_test(test_escape_invalid_utf8),
		cmocka_unit_test(test_escape_matches_reference_random),
		cmocka_unit_test(test_escape_sparse_specials_random),
		cmocka_unit_test(test_escape_quotes_everywhere),
		cmocka_unit_test(test_object_line_valid),
		cmocka_unit_test(test_object_line_invalid),
		cmocka_unit_test(test_object_line_respects_len),
		cmocka_unit_test(test_object_line_depth),
		cmocka_unit_test(test_json_plain),
		cmocka_unit_test(test_json_object_line),
		cmocka_unit_test(test_json_object_line_without_id),
		cmocka_unit_test(test_json_not_quite_object),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_logfmt),
		cmocka_unit_test(test_syslog_cee),
		cmocka_unit_test(test_syslog_header_len),
		cmocka_unit_test(test_custom_field),
		cmocka_unit_test(test_fields_json_prefix),
		cmocka_unit_test(test_fields_logfmt),
		cmocka_unit_test(test_fields_every_order),
		cmocka_unit_test(test_fields_longest),
		cmocka_unit_test(test_format_with_trace_fields),
		cmocka_unit_test(test_random_valid_objects),
		cmocka_unit_test(test_bound_random),
		cmocka_unit_test(test_plain_matches_reference_random),
		cmocka_unit_test(test_noting_seen),
		cmocka_unit_test(test_noting_newline_everywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
