/*
 * fuzz_http_response.c - libFuzzer target for the response-stream parser
 * that finds where the shim's response header goes.
 *
 * The first input byte picks how the rest is cut into writes (low 6 bits:
 * the largest piece, pieces of varying size up to it), the header name
 * (bit 6: a longer one, compared in three 8-byte words, with '^' and '~'
 * that differ from each other only as cases do) and whether the first
 * response answers a HEAD request (bit 7). Checks what must hold for any
 * bytes: planning and advancing over the pieces finds the points one plan
 * over the whole buffer finds, as absolute offsets, and ends in the same
 * state; every point lies inside the buffer, just after a "\n" that ends a
 * header line, on a CR or LF; plan never modifies the parser; a smaller max
 * returns a prefix of the points; nothing reads or writes out of bounds
 * (ASan; each piece is written from a buffer of its own size). Never
 * prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_response.h"

static const char header[] = "X-Request-ID";
static const char long_header[] = "X-Correlation^Request~Id";

static void init(struct http_response_parser *p, bool head, bool long_name)
{
	memset(p, 0, sizeof *p);
	if (long_name)
		http_response_set_header(long_header, sizeof long_header - 1);
	else
		http_response_set_header(header, sizeof header - 1);
	http_response_init(p, true);
	http_response_expect_head(p, head);
}

/* plan that checks it leaves p alone. */
static size_t plan(const struct http_response_parser *p, const char *buf, size_t n,
		   size_t points[], size_t max)
{
	struct http_response_parser before;
	memcpy(&before, p, sizeof before);
	size_t k = http_response_plan(p, buf, n, points, max);
	if (memcmp(&before, p, sizeof before) != 0 || k > max)
		abort();
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned cut = (data[0] & 0x3f) + 1;
	bool head = (data[0] & 0x80) != 0;
	bool long_name = (data[0] & 0x40) != 0;
	uint32_t rng = data[0] * 2654435761u + 1;
	const char *buf = (const char *)data + 1;
	size--;

	/* at most one point per byte; +1 so the arrays are never empty */
	size_t *whole_pts = malloc((size + 1) * sizeof *whole_pts);
	size_t *piece_pts = malloc((size + 1) * sizeof *piece_pts);
	size_t *tmp = malloc((size + 1) * sizeof *tmp);
	if (!whole_pts || !piece_pts || !tmp)
		abort();

	struct http_response_parser whole, pieces;
	init(&whole, head, long_name);
	init(&pieces, head, long_name);

	size_t nwhole = plan(&whole, buf, size, whole_pts, size + 1);
	http_response_advance(&whole, buf, size);
	for (size_t i = 0; i < nwhole; i++) {
		size_t at = whole_pts[i];
		if (at >= size || at == 0 || buf[at - 1] != '\n' ||
		    (buf[at] != '\r' && buf[at] != '\n'))
			abort();
		if (i > 0 && at <= whole_pts[i - 1])
			abort();
	}

	/* a smaller max: a prefix of the same points */
	if (nwhole > 0) {
		struct http_response_parser fresh;
		init(&fresh, head, long_name);
		size_t max = nwhole - 1;
		if (plan(&fresh, buf, size, tmp, max) != max ||
		    memcmp(tmp, whole_pts, max * sizeof *tmp) != 0)
			abort();
	}

	size_t npieces = 0;
	for (size_t off = 0; off < size;) {
		rng = rng * 1103515245u + 12345u;
		size_t n = (rng >> 16) % cut + 1;
		if (n > size - off)
			n = size - off;
		/* each piece in a buffer of its own size: ASan sees any read
		 * past a write's end */
		char *piece = malloc(n);
		if (!piece)
			abort();
		memcpy(piece, buf + off, n);
		size_t k = plan(&pieces, piece, n, tmp, size + 1);
		for (size_t i = 0; i < k; i++) {
			if (tmp[i] >= n || npieces >= nwhole)
				abort();
			piece_pts[npieces++] = off + tmp[i];
		}
		http_response_advance(&pieces, piece, n);
		free(piece);
		off += n;
	}

	if (npieces != nwhole || memcmp(piece_pts, whole_pts, nwhole * sizeof *tmp) != 0)
		abort();
	if (http_response_stopped(&whole) != http_response_stopped(&pieces) ||
	    memcmp(&whole, &pieces, sizeof whole) != 0)
		abort();

	free(whole_pts);
	free(piece_pts);
	free(tmp);
	return 0;
}
