/*
 * fuzz_http_parser.c - libFuzzer target for the HTTP request-stream parser.
 *
 * The first input byte picks how the rest is cut into reads. Checks what
 * must hold for any bytes: feeding whole or in pieces reports the same
 * requests, header blocks and final id; every reported id is a valid one;
 * nothing reads or writes out of bounds (ASan). Never prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_parser.h"
#include "request_id.h"

struct totals {
	uint32_t started, completed;
	bool not_http, desync;
	uint8_t last_id_len;
	char last_id[REQUEST_ID_MAX];
};

static const char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

static void feed(struct http_parser *p, const uint8_t *d, size_t n, struct totals *t)
{
	struct http_feed_result r;
	http_parser_feed(p, (const char *)d, n, &r);
	t->started += r.requests_started;
	t->completed += r.headers_completed;
	t->not_http |= r.not_http;
	t->desync |= r.desync;
	if (r.headers_completed) {
		if (r.id_len && !request_id_is_valid(r.id, r.id_len))
			abort();
		t->last_id_len = r.id_len;
		memcpy(t->last_id, r.id, r.id_len);
	}
	if (r.headers_completed > r.requests_started + 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct reqid_config cfg;
	static struct header_matcher m;
	static bool ready;
	if (!ready) {
		config_parse(&cfg, no_env);
		header_matcher_init(&m, &cfg);
		ready = true;
	}
	if (size == 0)
		return 0;
	unsigned cut = data[0] % 17 + 1;
	data++;
	size--;

	struct http_parser whole, pieces;
	struct totals a = {0}, b = {0};
	http_parser_init(&whole, &m);
	http_parser_init(&pieces, &m);
	feed(&whole, data, size, &a);
	for (size_t off = 0; off < size; off += cut)
		feed(&pieces, data + off, size - off < cut ? size - off : cut, &b);

	if (a.started != b.started || a.completed != b.completed || a.not_http != b.not_http ||
	    a.desync != b.desync)
		abort();
	/* The id reported with the last header block is the same either way. */
	if (a.completed && (a.last_id_len != b.last_id_len ||
			    memcmp(a.last_id, b.last_id, a.last_id_len) != 0))
		abort();
	if (a.completed > a.started)
		abort();
	return 0;
}
