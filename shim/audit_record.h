/*
 * audit_record.h - the text of the records `reqid audit` reads back: one
 * record a line, fields separated by tabs, built in a caller's buffer.
 *
 * Text from the program (its log lines, paths) is escaped so that a record
 * stays one line whatever it holds: backslash, tab, CR, LF and the other
 * control bytes become \\, \t, \r, \n and \xHH; other bytes pass as they
 * are. A record that does not fit its buffer is cut and marked overflowed,
 * never written past the end. Pure logic: no allocation, no I/O.
 */
#ifndef REQID_AUDIT_RECORD_H
#define REQID_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct audit_record {
	char *buf;
	size_t cap, len;
	bool overflow; /* something did not fit: the record is cut */
};

void audit_record_start(struct audit_record *r, char *buf, size_t cap, char kind);

/* A tab, then the field (audit_field_*). */
void audit_field_raw(struct audit_record *r, const char *s, size_t n);
void audit_field_u64(struct audit_record *r, uint64_t v);
/* Escaped text, at most max bytes of it (then "..." marks the cut). */
void audit_field_text(struct audit_record *r, const char *s, size_t n, size_t max);
/* Addresses in hex, comma-separated. */
void audit_field_addresses(struct audit_record *r, void *const *addrs, int count);

/* Ends the record with its newline (in its last byte if it was cut);
 * returns its length, 0 only for a buffer of no bytes. */
size_t audit_record_end(struct audit_record *r);

#endif
