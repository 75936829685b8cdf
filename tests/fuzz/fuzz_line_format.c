/*
 * fuzz_line_format.c - libFuzzer target for line enrichment.
 *
 * Formats arbitrary bytes as a line in every format into a buffer of exactly
 * bound_for() bytes (ASan catches any overrun) and checks that json
 * output is one valid JSON object whose "msg" unescapes to the original
 * bytes, and that prefix/logfmt output ends with the original bytes. Never
 * prints on success.
 */
#include <stdbool.h>
#include <stdint.h>
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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	abort();
}

/* Inverts json_escape (including \udcXX for raw bytes); returns length. */
static size_t unescape(const char *s, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = (uint8_t)s[i];
			continue;
		}
		char e = s[++i];
		switch (e) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'u':
			if (!((s[i + 1] == '0' && s[i + 2] == '0') || (s[i + 1] == 'd' && s[i + 2] == 'c')))
				abort();
			out[o++] = (uint8_t)(hexval(s[i + 3]) << 4 | hexval(s[i + 4]));
			i += 4;
			break;
		default:
			abort();
		}
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char id[] = "0af7651916cd43dd8448eb211c80319c";
	for (int variant = 0; variant < 4; variant++) {
		/* json, prefix, logfmt, and json for syslog (the CEE cookie). */
		bool cee = variant == 3;
		struct line_style st = {cee ? FORMAT_JSON : (enum log_format)variant, "request_id", 10,
					cee, 1, {FIELD_REQUEST_ID}};
		const char *line = (const char *)data;
		size_t len = size;
		for (int with_id = 0; with_id < 2; with_id++) {
			size_t id_len = with_id ? sizeof(id) - 1 : 0;
			size_t bound = bound_for(&st, size, id_len);
			char *out = malloc(bound);
			size_t n = format_for(&st, with_id ? id : NULL, id_len, line, len, out);
			if (n > bound)
				abort();
			if (st.format == FORMAT_JSON) {
				const char *obj = out;
				const char *in = line;
				size_t in_len = len;
				if (cee) {
					if (n < 5 || memcmp(out, "@cee:", 5) != 0)
						abort();
					obj += 5;
					if (len >= 5 && memcmp(line, "@cee:", 5) == 0) {
						in += 5;
						in_len -= 5;
					}
				}
				size_t obj_len = n - (size_t)(obj - out);
				if (!json_is_object_line(obj, obj_len))
					abort();
				static const char msg[] = "\"msg\":\"";
				char *m = memmem(obj, obj_len, msg, sizeof(msg) - 1);
				if (m && !json_is_object_line(in, in_len)) {
					const char *start = m + sizeof(msg) - 1;
					size_t esc = (size_t)(obj + obj_len - 2 - start);
					uint8_t *back = malloc(esc + 1);
					if (unescape(start, esc, back) != in_len || memcmp(back, in, in_len))
						abort();
					free(back);
				}
			} else if (n < len || memcmp(out + n - len, line, len) != 0) {
				abort();
			}
			free(out);
		}
	}
	return 0;
}
