/*
 * http_response.c - response framing, to find where a response's header
 * block ends.
 *
 * One state machine per connection that takes its input in runs: each state
 * consumes as many bytes as it can in one step (SSE2 scans find the end of a
 * header name and of a line, "HTTP/1.x NNN" is checked whole, a header name
 * is compared, 8 bytes at a time, only with the names of interest its
 * length and first byte allow) and leaves the parser exactly as taking the
 * same bytes one at a time would, so any split of the input gives the same
 * points and the same state. Body bytes are skipped in bulk.
 *
 * Runs inside write hooks: no allocation, no I/O, no locks; bounded work per
 * byte; never reads outside the buffer it is given (a 16-byte load that
 * would pass its end is moved back to end with it).
 */
#include "http_response.h"

#include <emmintrin.h>
#include <string.h>

#include "http_chars.h"

enum response_state {
	R_START,          /* before a status line */
	R_VERSION,        /* token_len counts matched bytes of "HTTP/1.x " */
	R_STATUS,         /* token_len counts status digits */
	R_REASON,
	R_EXPECT_LF,      /* after CR: LF, then after_lf */
	R_HEADER_START,
	R_HEADER_NAME,
	R_HEADER_VALUE,
	R_BODY,
	R_CHUNK_SIZE,
	R_CHUNK_EXT,
	R_CHUNK_DATA,
	R_CHUNK_DATA_END,
	R_TRAILER_START,
	R_TRAILER_LINE,
	R_UNTIL_CLOSE,    /* body until the connection closes, or a tunnel */
	R_STOPPED,        /* bytes that do not parse: never add again */
};

enum { N_CONTENT_LENGTH = 1, N_TRANSFER_ENCODING = 2, N_HEADER = 4 };

static const char version_prefix[] = "HTTP/1.";
static const char content_length[] = "content-length";
static const char transfer_encoding[] = "transfer-encoding";

/* ---- state ------------------------------------------------------------- */

void http_response_init(struct http_response_parser *p, const char *header, size_t header_len)
{
	memset(p, 0, sizeof(*p));
	p->header = header;
	p->header_len = header ? (uint8_t)header_len : 0;
	p->state = R_START;
}

void http_response_expect_head(struct http_response_parser *p, bool head)
{
	p->head_request = head;
}

void http_response_added(struct http_response_parser *p)
{
	p->has_header = true;
}

void http_response_stop(struct http_response_parser *p)
{
	p->state = R_STOPPED;
}

bool http_response_stopped(const struct http_response_parser *p)
{
	return p->state == R_STOPPED || p->state == R_UNTIL_CLOSE;
}

static void begin_response(struct http_response_parser *p)
{
	p->has_header = false;
	p->chunked = false;
	p->has_length = false;
	p->status = 0;
	p->remaining = 0;
}

/* The 8 bytes of x with ASCII letters in lowercase, as http_lower does. */
static uint64_t lower8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101, high = 0x8080808080808080;
	uint64_t low7 = x & ~high;
	/* The high bit of each byte from 'A' (0x41) to 'Z' (0x5a): set by
	 * adding 0x3f, not by adding 0x25; no carry crosses a byte. Bytes from
	 * 0x80 on are left alone. */
	uint64_t upper = (low7 + 0x3f * ones) & ~(low7 + 0x25 * ones) & ~x & high;
	return x | upper >> 2;
}

/* b[0, n) equals name[0, n), ASCII case folded: 8 bytes at a time, the
 * last 8 read again from their end. */
static bool same_folded(const unsigned char *b, const char *name, size_t n)
{
	uint64_t x, y;
	if (n < 8) {
		for (size_t k = 0; k < n; k++)
			if (http_lower(b[k]) != http_lower((unsigned char)name[k]))
				return false;
		return true;
	}
	for (size_t k = 0;; k += 8) {
		if (k > n - 8)
			k = n - 8;
		memcpy(&x, b + k, 8);
		memcpy(&y, name + k, 8);
		if (lower8(x) != lower8(y))
			return false;
		if (k == n - 8)
			return true;
	}
}

/* The name_match of a header name's first byte c: the names of interest
 * that begin with it, case folded. */
static uint8_t first_byte_names(const struct http_response_parser *p, unsigned char c)
{
	c = http_lower(c);
	return (uint8_t)((c == 'c' ? N_CONTENT_LENGTH : 0) | (c == 't' ? N_TRANSFER_ENCODING : 0) |
			 (p->header_len && c == http_lower((unsigned char)p->header[0]) ? N_HEADER : 0));
}

/* The n bytes at b, all token characters, continue the header name read so
 * far (token_len bytes): the name_match bits, as taking them one at a time
 * would leave them, of the names of interest the name is still a prefix of.
 * whole: the name ends there, so only names of exactly its length are left
 * (the ':' that follows would rule the others out). */
static uint8_t name_match_after(const struct http_response_parser *p, const unsigned char *b,
				size_t n, bool whole)
{
	size_t pos = p->token_len, end = pos + n;
	uint8_t m = p->name_match;
	/* Lengths first: they rule out most names without reading a byte. */
	if (whole ? end != 14 : end > 14)
		m &= (uint8_t)~N_CONTENT_LENGTH;
	if (whole ? end != 17 : end > 17)
		m &= (uint8_t)~N_TRANSFER_ENCODING;
	if (whole ? end != p->header_len : end > p->header_len)
		m &= (uint8_t)~N_HEADER;
	if ((m & N_CONTENT_LENGTH) && !same_folded(b, content_length + pos, n))
		m &= (uint8_t)~N_CONTENT_LENGTH;
	if ((m & N_TRANSFER_ENCODING) && !same_folded(b, transfer_encoding + pos, n))
		m &= (uint8_t)~N_TRANSFER_ENCODING;
	if ((m & N_HEADER) && !same_folded(b, p->header + pos, n))
		m &= (uint8_t)~N_HEADER;
	return m;
}

/* The token characters from s[i] on continue the header name: takes them
 * and returns where they end (n, or the byte that ends the name). */
static size_t name_bytes(struct http_response_parser *p, const unsigned char *s, size_t i,
			 size_t n)
{
	size_t end = http_token_end(s, i, n);
	if (p->name_match)
		p->name_match = name_match_after(p, s + i, end - i, end < n && s[end] == ':');
	size_t len = p->token_len + (end - i);
	p->token_len = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
	return end;
}

/* The ':' after a header name (name_match: the name of interest it is). */
static void begin_value(struct http_response_parser *p)
{
	if (p->name_match & N_HEADER)
		p->has_header = true;
	p->value_len = 0;
	p->value_overflow = false;
	p->state = R_HEADER_VALUE;
}

/* A byte of a framing header's value (not CR or LF). */
static void value_byte(struct http_response_parser *p, unsigned char c)
{
	if (p->name_match & N_TRANSFER_ENCODING) {
		/* Only the last coding matters: keep the tail, spaces dropped
		 * ("gzip, chunked" -> "gzip,chunked"). */
		if (c != ' ' && c != '\t') {
			if (p->value_len == sizeof(p->value)) {
				memmove(p->value, p->value + 1, sizeof(p->value) - 1);
				p->value_len--;
			}
			p->value[p->value_len++] = (char)http_lower(c);
		}
	} else if (p->value_len == 0 && (c == ' ' || c == '\t')) {
		/* leading OWS */
	} else if (p->value_len < sizeof(p->value)) {
		p->value[p->value_len++] = (char)c;
	} else {
		p->value_overflow = true;
	}
}

/* A framing header's value ended. False if it makes no sense. */
static bool finish_value(struct http_response_parser *p)
{
	size_t n = p->value_len;
	while (n > 0 && (p->value[n - 1] == ' ' || p->value[n - 1] == '\t'))
		n--;
	if (p->name_match & N_CONTENT_LENGTH) {
		uint64_t v = 0;
		if (n == 0 || p->value_overflow)
			return false;
		for (size_t i = 0; i < n; i++) {
			if (p->value[i] < '0' || p->value[i] > '9' || v > UINT64_MAX / 10 - 1)
				return false;
			v = v * 10 + (uint64_t)(p->value[i] - '0');
		}
		p->has_length = true;
		p->remaining = v;
	} else if (p->name_match & N_TRANSFER_ENCODING) {
		p->chunked = n >= 7 && memcmp(p->value + n - 7, "chunked", 7) == 0 &&
			     (n == 7 || p->value[n - 8] == ',');
	}
	return true;
}

/* The blank line after the headers: where the body starts, if any. */
static uint8_t after_headers(struct http_response_parser *p)
{
	if (p->status < 200)
		return p->status == 101 ? R_UNTIL_CLOSE : R_START; /* interim response */
	bool head = p->head_request;
	p->head_request = false;
	if (head || p->status == 204 || p->status == 304)
		return R_START;
	if (p->chunked) {
		p->remaining = 0;
		p->token_len = 0;
		return R_CHUNK_SIZE;
	}
	if (p->has_length)
		return p->remaining ? R_BODY : R_START;
	return R_UNTIL_CLOSE;
}

/* "HTTP/1.x NNN" at s (12 bytes): the status; -1 if not that. */
static int status_of(const unsigned char *s)
{
	if (memcmp(s, version_prefix, sizeof(version_prefix) - 1) != 0 || s[7] < '0' ||
	    s[7] > '9' || s[8] != ' ')
		return -1;
	int status = 0;
	for (size_t k = 9; k < 12; k++) {
		if (s[k] < '0' || s[k] > '9')
			return -1;
		status = status * 10 + (s[k] - '0');
	}
	return status;
}

/* The CR or LF at s[i] ends a line; next is the state after it. Takes the
 * LF of a CRLF along when it is there; a CR waits in R_EXPECT_LF for it
 * otherwise. Returns the offset after what it took. */
static size_t end_line(struct http_response_parser *p, const unsigned char *s, size_t i,
		       size_t n, uint8_t next)
{
	p->after_lf = next;
	if (s[i] == '\n') {
		p->state = next;
		return i + 1;
	}
	if (i + 1 < n && s[i + 1] == '\n') {
		p->state = next;
		return i + 2;
	}
	p->state = R_EXPECT_LF;
	return i + 1;
}

/* ---- the parser -------------------------------------------------------- */

static size_t scan(struct http_response_parser *p, const char *buf, size_t n, size_t points[],
		   size_t max)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t count = 0;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		switch (p->state) {
		case R_START: {
			begin_response(p);
			int status = n - i >= 12 ? status_of(s + i) : -1;
			if (status >= 0) {
				/* The usual case: version and status at once. */
				p->status = (uint16_t)status;
				p->token_len = 3;
				p->state = R_STATUS;
				i += 12;
			} else {
				p->token_len = 0;
				p->state = R_VERSION;
			}
			break;
		}
		case R_VERSION:
			if (p->token_len < sizeof(version_prefix) - 1) {
				if (c != (unsigned char)version_prefix[p->token_len])
					goto stop;
			} else if (p->token_len == sizeof(version_prefix) - 1) {
				if (c < '0' || c > '9')
					goto stop;
			} else if (c == ' ') {
				p->state = R_STATUS;
				p->token_len = 0;
				i++;
				break;
			} else {
				goto stop;
			}
			p->token_len++;
			i++;
			break;
		case R_STATUS:
			if (p->token_len < 3) {
				if (c < '0' || c > '9')
					goto stop;
				p->status = (uint16_t)(p->status * 10 + (c - '0'));
				p->token_len++;
				i++;
			} else if (c == ' ') {
				p->state = R_REASON;
				i++;
			} else if (c == '\r' || c == '\n') {
				i = end_line(p, s, i, n, R_HEADER_START);
			} else {
				goto stop;
			}
			break;
		case R_REASON:
			i = http_scan(s, i, n, http_eol_bytes);
			if (i < n)
				i = end_line(p, s, i, n, R_HEADER_START);
			break;
		case R_EXPECT_LF:
			if (c != '\n')
				goto stop;
			p->state = p->after_lf;
			i++;
			break;
		case R_HEADER_START:
			if (c == '\r' || c == '\n') {
				if (p->status >= 200 && !p->has_header && p->header_len && count < max)
					points[count++] = i;
				i = end_line(p, s, i, n, after_headers(p));
				break;
			}
			if (!http_is_tchar(c))
				goto stop;
			p->name_match = first_byte_names(p, c);
			p->token_len = 0;
			p->state = R_HEADER_NAME;
			/* fall through */
		case R_HEADER_NAME:
			i = name_bytes(p, s, i, n);
			if (i == n)
				break;
			if (s[i] != ':')
				goto stop;
			begin_value(p);
			i++;
			/* fall through */
		case R_HEADER_VALUE:
			if (!(p->name_match & (N_CONTENT_LENGTH | N_TRANSFER_ENCODING))) {
				/* A value nobody reads: skip to the end of its line. */
				i = http_scan(s, i, n, http_eol_bytes);
			} else {
				for (; i < n && s[i] != '\r' && s[i] != '\n'; i++)
					value_byte(p, s[i]);
				if (i < n && !finish_value(p))
					goto stop;
			}
			if (i < n)
				i = end_line(p, s, i, n, R_HEADER_START);
			break;
		case R_BODY: {
			i += http_take_body(&p->remaining, n - i);
			if (p->remaining == 0)
				p->state = R_START;
			break;
		}
		case R_CHUNK_SIZE: {
			int d = http_hex_digit(c);
			if (d >= 0 && p->token_len < 16) {
				p->remaining = p->remaining << 4 | (uint64_t)d;
				p->token_len++;
				i++;
			} else if (p->token_len > 0 && (c == ';' || c == ' ' || c == '\t')) {
				p->state = R_CHUNK_EXT;
				i++;
			} else if (p->token_len > 0 && (c == '\r' || c == '\n')) {
				i = end_line(p, s, i, n, p->remaining ? R_CHUNK_DATA : R_TRAILER_START);
			} else {
				goto stop;
			}
			break;
		}
		case R_CHUNK_EXT: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return count;
			p->state = p->remaining ? R_CHUNK_DATA : R_TRAILER_START;
			i = (size_t)(lf - s) + 1;
			break;
		}
		case R_CHUNK_DATA: {
			i += http_take_body(&p->remaining, n - i);
			if (p->remaining == 0)
				p->state = R_CHUNK_DATA_END;
			break;
		}
		case R_CHUNK_DATA_END:
			if (c != '\r' && c != '\n')
				goto stop;
			p->token_len = 0;
			p->remaining = 0;
			i = end_line(p, s, i, n, R_CHUNK_SIZE);
			break;
		case R_TRAILER_START:
			if (c == '\r' || c == '\n') {
				i = end_line(p, s, i, n, R_START);
			} else {
				p->state = R_TRAILER_LINE;
				i++;
			}
			break;
		case R_TRAILER_LINE: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return count;
			p->state = R_TRAILER_START;
			i = (size_t)(lf - s) + 1;
			break;
		}
		default: /* R_UNTIL_CLOSE, R_STOPPED */
			return count;
		}
	}
	return count;
stop:
	p->state = R_STOPPED;
	return count;
}

size_t http_response_scan(struct http_response_parser *p, const char *buf, size_t n,
			  size_t points[], size_t max)
{
	return scan(p, buf, n, points, max);
}

size_t http_response_plan(const struct http_response_parser *p, const char *buf, size_t n,
			  size_t points[], size_t max)
{
	struct http_response_parser copy = *p;
	return scan(&copy, buf, n, points, max);
}

void http_response_advance(struct http_response_parser *p, const char *buf, size_t n)
{
	scan(p, buf, n, NULL, 0);
}

void http_response_skip(struct http_response_parser *p, uint64_t n)
{
	if (n == 0 || http_response_stopped(p))
		return;
	if (p->state == R_BODY && n <= p->remaining) {
		p->remaining -= n;
		if (p->remaining == 0)
			p->state = R_START;
	} else if (p->state == R_CHUNK_DATA && n <= p->remaining) {
		p->remaining -= n;
		if (p->remaining == 0)
			p->state = R_CHUNK_DATA_END;
	} else {
		p->state = R_STOPPED;
	}
}
