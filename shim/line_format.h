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
 * The line passed in excludes its '\n'; the caller appends it when the
 * original line had one. Without an id, json drops the field ({"msg":...},
 * object lines unchanged), prefix writes {} and logfmt leaves the line alone.
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

struct line_style {
	enum log_format format;
	const char *field;
	size_t field_len;
	bool cee; /* syslog: json output starts with the CEE cookie "@cee:" */
};

/* True if line (without its newline) is exactly one JSON object, optionally
 * surrounded by spaces, tabs and a trailing CR. */
bool json_is_object_line(const char *line, size_t len);

/* Largest possible output for a line of len bytes and an id of id_len. */
static inline size_t line_format_bound(const struct line_style *style, size_t len, size_t id_len)
{
	return 6 * len + style->field_len + id_len + 40;
}

/* Writes the enriched line to out and returns its length. id may be NULL
 * (id_len 0) for a line outside any request. */
size_t line_format(const struct line_style *style, const char *id, size_t id_len,
		   const char *line, size_t len, char *out);

/* line_format, also telling whether the line held a '"' (only such a line
 * can quote a request line); found while escaping, at no extra pass for
 * json. */
size_t line_format_noting_quotes(const struct line_style *style, const char *id, size_t id_len,
				 const char *line, size_t len, char *out, bool *quoted);

/* Length of the header glibc's syslog() and most senders put before the
 * message in a datagram to /dev/log ("<PRI>TIMESTAMP TAG[PID]: "), or 0 if
 * msg does not start with one. */
size_t syslog_header_len(const char *msg, size_t len);

/* JSON-escapes len bytes into out (at most 6 bytes per input byte) and
 * returns the number of bytes written. */
size_t json_escape(const char *in, size_t len, char *out);

#endif
