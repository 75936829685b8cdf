/*
 * line_format.h - turning one log line into its enriched form.
 *
 * Pure logic: JSON validation of lines that already are objects, JSON string
 * escaping (lossless: invalid UTF-8 bytes become \udcXX, the surrogateescape
 * convention), and the three output formats. Never allocates; the caller
 * provides an output buffer of at least line_format_bound() bytes.
 *
 *   json   {"request_id":"ID","msg":"<escaped line>"}      plain text
 *          {"request_id":"ID", <the object's own members>}  JSON object line
 *   prefix {"request_id":"ID"} <line>
 *   logfmt request_id=ID <line>
 *
 * The fields (REQID_FIELDS: request_id, trace_id, span_id, in the order
 * given) are rendered once per request by line_fields, and every line of
 * the request reuses that text. The line passed in excludes its '\n'; the
 * caller appends it when the original line had one. Without fields, json
 * writes {"msg":...} (object lines unchanged), prefix writes {} and logfmt
 * leaves the line alone.
 *
 * For syslog messages (style.cee) json output is "@cee:{...}", the cookie
 * rsyslog's mmjsonparse looks for; a message that already carries the
 * cookie is enriched after it.
 */
#ifndef REQID_LINE_FORMAT_H
#define REQID_LINE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "trace_context.h"

struct line_style {
	enum log_format format;
	const char *field; /* name of the request_id field */
	size_t field_len;
	bool cee; /* syslog: json output starts with the CEE cookie "@cee:" */
	uint8_t field_count;
	uint8_t fields[CONFIG_MAX_FIELDS]; /* enum log_field, in output order */
};

/* Longest rendered fields: every field, the longest name and id. */
#define LINE_FIELDS_MAX (CONFIG_MAX_FIELD + REQUEST_ID_MAX + 8 + 32 + 7 + 16 + 3 * 7)

/* Renders the fields a request's lines carry: for json and prefix
 * "name":"value" members joined by ',', for logfmt name=value pairs joined
 * by ' '. A field without a value (id_len 0, trace NULL) is left out.
 * Returns the length; 0 when the lines carry nothing. */
size_t line_fields(const struct line_style *style, const char *id, size_t id_len,
		   const struct trace_ctx *trace, char out[LINE_FIELDS_MAX]);

/* True if line (without its newline) is exactly one JSON object, optionally
 * surrounded by spaces, tabs and a trailing CR. */
bool json_is_object_line(const char *line, size_t len);

/* Largest possible output for a line of len bytes with fields_len bytes of
 * rendered fields. */
static inline size_t line_format_bound(size_t len, size_t fields_len)
{
	return 6 * len + fields_len + 40;
}

/* Writes the enriched line to out and returns its length. fields is
 * line_fields' text (fields_len 0 for a line outside any request). */
size_t line_format(const struct line_style *style, const char *fields, size_t fields_len,
		   const char *line, size_t len, char *out);

/* What line_format_noting saw in a line. */
enum line_saw {
	LINE_SAW_QUOTE = 1,   /* a '"' (only such a line can quote a request line) */
	LINE_SAW_NEWLINE = 2  /* a '\n'; looked for only in a line escaped whole */
};

/* line_format, also setting *seen (line_saw's bits) as it formats: found
 * while escaping, at no extra pass for json. A message the json format
 * escapes is escaped only up to the first byte it saw one of stop's in,
 * and what is in out then is no line (LINE_SAW_NEWLINE: a write taken as
 * one line, line_format_escapes_whole, that holds several is split, not
 * escaped whole first); 0: all of it. */
size_t line_format_noting(const struct line_style *style, const char *fields, size_t fields_len,
			  const char *line, size_t len, char *out, unsigned *seen, unsigned stop);

/* Whether a line starting with byte c may be a JSON object line, which the
 * json format enriches in place instead of escaping it. */
static inline bool line_may_be_object(char c)
{
	return c == '{' || c == ' ' || c == '\t';
}

/* Whether line_format escapes all of line as the json format's message,
 * so that LINE_SAW_NEWLINE tells whether it held a newline. */
static inline bool line_format_escapes_whole(const struct line_style *style, const char *line,
					     size_t len)
{
	return style->format == FORMAT_JSON && !style->cee &&
	       (len == 0 || !line_may_be_object(line[0]));
}

/* Length of the header glibc's syslog() and most senders put before the
 * message in a datagram to /dev/log ("<PRI>TIMESTAMP TAG[PID]: "), or 0 if
 * msg does not start with one. */
size_t syslog_header_len(const char *msg, size_t len);

/* JSON-escapes len bytes into out (at most 6 bytes per input byte) and
 * returns the number of bytes written. out must have room for 16 bytes
 * more: a vector stored there may reach up to 15 bytes past the last byte
 * written (line_format_bound has room for them). */
size_t json_escape(const char *in, size_t len, char *out);

/* Finds out now whether the escaping can use AVX2 (it asks glibc once): a
 * server that listens asks before it forks its children, which inherit the
 * answer rather than each mapping the libc code that gives it. */
void line_format_prepare(void);

#endif
