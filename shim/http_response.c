/*
 * http_response.c - response framing, to find where a response's header
 * block ends.
 *
 * One byte-driven state machine per connection, body bytes skipped in bulk.
 * Runs inside write hooks: no allocation, no I/O, no locks, bounded work per
 * byte.
 */
#include "http_response.h"

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

/* The offset of the first CR or LF at or after i; n if none. */
static size_t line_end(const unsigned char *s, size_t i, size_t n)
{
	while (i < n && s[i] != '\r' && s[i] != '\n')
		i++;
	return i;
}

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

static bool name_still(const char *name, size_t name_len, uint16_t pos, unsigned char c)
{
	return pos < name_len && http_lower(c) == http_lower((unsigned char)name[pos]);
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

/* A CR or LF ends a line: the state after it (and after the LF of CRLF). */
static void end_of_line(struct http_response_parser *p, unsigned char c, uint8_t next)
{
	p->state = c == '\r' ? R_EXPECT_LF : next;
	p->after_lf = next;
}

static size_t scan(struct http_response_parser *p, const char *buf, size_t n, size_t points[],
		   size_t max)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t count = 0;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		switch (p->state) {
		case R_START:
			begin_response(p);
			p->state = R_VERSION;
			p->token_len = 0;
			break;
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
			} else if (c == ' ') {
				p->state = R_REASON;
			} else if (c == '\r' || c == '\n') {
				end_of_line(p, c, R_HEADER_START);
			} else {
				goto stop;
			}
			i++;
			break;
		case R_REASON:
			i = line_end(s, i, n);
			if (i < n)
				end_of_line(p, s[i++], R_HEADER_START);
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
				end_of_line(p, c, after_headers(p));
			} else if (http_is_tchar(c)) {
				p->name_match = (uint8_t)((name_still(content_length, 14, 0, c) ? N_CONTENT_LENGTH : 0) |
							  (name_still(transfer_encoding, 17, 0, c) ? N_TRANSFER_ENCODING : 0) |
							  (name_still(p->header, p->header_len, 0, c) ? N_HEADER : 0));
				p->token_len = 1;
				p->state = R_HEADER_NAME;
			} else {
				goto stop;
			}
			i++;
			break;
		case R_HEADER_NAME:
			if (c == ':') {
				uint16_t len = p->token_len;
				p->name_match &= (uint8_t)(((len == 14) ? N_CONTENT_LENGTH : 0) |
							   ((len == 17) ? N_TRANSFER_ENCODING : 0) |
							   ((len == p->header_len) ? N_HEADER : 0));
				if (p->name_match & N_HEADER)
					p->has_header = true;
				p->value_len = 0;
				p->value_overflow = false;
				p->state = R_HEADER_VALUE;
			} else if (p->name_match == 0 && http_is_tchar(c)) {
				/* No name of interest: skip to the colon. */
				size_t j = i + 1;
				while (j < n && http_is_tchar(s[j]))
					j++;
				size_t len = p->token_len + (j - i);
				p->token_len = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
				i = j;
				break;
			} else if (http_is_tchar(c)) {
				uint16_t pos = p->token_len;
				if (!name_still(content_length, 14, pos, c))
					p->name_match &= (uint8_t)~N_CONTENT_LENGTH;
				if (!name_still(transfer_encoding, 17, pos, c))
					p->name_match &= (uint8_t)~N_TRANSFER_ENCODING;
				if (!name_still(p->header, p->header_len, pos, c))
					p->name_match &= (uint8_t)~N_HEADER;
				if (p->token_len < UINT16_MAX)
					p->token_len++;
			} else {
				goto stop;
			}
			i++;
			break;
		case R_HEADER_VALUE:
			if (!(p->name_match & (N_CONTENT_LENGTH | N_TRANSFER_ENCODING))) {
				i = line_end(s, i, n);
				if (i < n)
					end_of_line(p, s[i++], R_HEADER_START);
				break;
			}
			if (c == '\r' || c == '\n') {
				if ((p->name_match & (N_CONTENT_LENGTH | N_TRANSFER_ENCODING)) &&
				    !finish_value(p))
					goto stop;
				end_of_line(p, c, R_HEADER_START);
			} else if (p->name_match & N_TRANSFER_ENCODING) {
				/* Only the last coding matters: keep the tail, spaces
				 * dropped ("gzip, chunked" -> "gzip,chunked"). */
				if (c != ' ' && c != '\t') {
					if (p->value_len == sizeof(p->value)) {
						memmove(p->value, p->value + 1, sizeof(p->value) - 1);
						p->value_len--;
					}
					p->value[p->value_len++] = (char)http_lower(c);
				}
			} else if (p->name_match & N_CONTENT_LENGTH) {
				if (p->value_len == 0 && (c == ' ' || c == '\t')) {
					/* leading OWS */
				} else if (p->value_len < sizeof(p->value)) {
					p->value[p->value_len++] = (char)c;
				} else {
					p->value_overflow = true;
				}
			}
			i++;
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
			} else if (p->token_len > 0 && (c == ';' || c == ' ' || c == '\t')) {
				p->state = R_CHUNK_EXT;
			} else if (p->token_len > 0 && (c == '\r' || c == '\n')) {
				end_of_line(p, c, p->remaining ? R_CHUNK_DATA : R_TRAILER_START);
			} else {
				goto stop;
			}
			i++;
			break;
		}
		case R_CHUNK_EXT:
			if (c == '\n')
				p->state = p->remaining ? R_CHUNK_DATA : R_TRAILER_START;
			i++;
			break;
		case R_CHUNK_DATA: {
			i += http_take_body(&p->remaining, n - i);
			if (p->remaining == 0)
				p->state = R_CHUNK_DATA_END;
			break;
		}
		case R_CHUNK_DATA_END:
			if (c != '\r' && c != '\n')
				goto stop;
			end_of_line(p, c, R_CHUNK_SIZE);
			p->token_len = 0;
			p->remaining = 0;
			i++;
			break;
		case R_TRAILER_START:
			if (c == '\r' || c == '\n')
				end_of_line(p, c, R_START);
			else
				p->state = R_TRAILER_LINE;
			i++;
			break;
		case R_TRAILER_LINE:
			if (c == '\n')
				p->state = R_TRAILER_START;
			i++;
			break;
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
