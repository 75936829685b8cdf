/*
 * fuzz_line_format.c - libFuzzer target for line enrichment.
 *
 * Formats arbitrary bytes as a line in every format into a buffer of exactly
 * line_format_bound() bytes (ASan catches any overrun) and checks that json
 * output is one valid JSON object whose "msg" unescapes to the original
 * bytes, and that prefix/logfmt output ends with the original bytes. Never
 * prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "line_format.h"

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
	const char *line = (const char *)data;
	for (int f = FORMAT_JSON; f <= FORMAT_LOGFMT; f++) {
		struct line_style st = {(enum log_format)f, "request_id", 10};
		for (int with_id = 0; with_id < 2; with_id++) {
			size_t id_len = with_id ? sizeof(id) - 1 : 0;
			size_t bound = line_format_bound(&st, size, id_len);
			char *out = malloc(bound);
			size_t n = line_format(&st, with_id ? id : NULL, id_len, line, size, out);
			if (n > bound)
				abort();
			if (f == FORMAT_JSON) {
				if (!json_is_object_line(out, n))
					abort();
				static const char msg[] = "\"msg\":\"";
				char *m = memmem(out, n, msg, sizeof(msg) - 1);
				if (m && !json_is_object_line(line, size)) {
					const char *start = m + sizeof(msg) - 1;
					size_t len = (size_t)(out + n - 2 - start);
					uint8_t *back = malloc(len + 1);
					if (unescape(start, len, back) != size || memcmp(back, data, size))
						abort();
					free(back);
				}
			} else if (n < size || memcmp(out + n - size, data, size) != 0) {
				abort();
			}
			free(out);
		}
	}
	return 0;
}
