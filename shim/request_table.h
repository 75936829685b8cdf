/*
 * request_table.h - the ids of recent requests, named by a serial number,
 * and how many live requests share each request line.
 *
 * Threads and connections refer to a request by its 64-bit serial; its id,
 * request line ("GET /x HTTP/1.1", its first REQUEST_LINE_MAX bytes) and
 * trace (its plan, trace_context.h: the trace-id and span id it generates
 * are made when read) live in a ring of slots of 168 bytes. A slot holds
 * the id and the request line itself when together they take at most
 * REQUEST_INLINE_TEXT bytes, not counting an id that is the request's
 * trace-id (a generated id, or the trace-id of an inbound traceparent): it
 * is kept as the trace. A longer pair (a UUID id with a request line over
 * 60 bytes) goes whole into a second ring of REQUEST_LONG_SLOTS, shared by
 * the slots a multiple of REQUEST_LONG_SLOTS apart.
 *
 * The ring starts with REQUEST_RING_START slots (168 KiB) and grows, by
 * doubling up to REQUEST_SLOTS (2.6 MiB), only while more than half of its
 * slots are pinned: a process pays for the requests it has at once, not for
 * how many it has served. A connection pins its current request's slot
 * from the request's start until its response begins (conn_table.c), and
 * a thread of a process with threads the request its held lines wait
 * under (request_keep, log_writer.c). A new
 * request takes the next slot that is not pinned and holds no newer
 * request (its writer may have stalled a whole ring behind); a slot's
 * serial says which. So a request is kept while pinned, then until the ring comes
 * round to its slot again: at least half a ring of newer requests
 * (REQUEST_RING_START / 2, twice RECENT_REQUESTS: a buffered log's lines
 * come at most that late) after it was added. Only when more than half of
 * all REQUEST_SLOTS slots are pinned does a new request, after passing over
 * 64 pinned slots in a row, take the next one (no id for that request's
 * later lines, rather than none for the new one's). A long request is kept as long as its slot, unless a long
 * request in a slot sharing its long slot takes it once it is unpinned.
 * A reader that finds either slot reused gets nothing rather than another
 * request's: a request's id, request line and trace are read all or none.
 * Lock-free (a seqlock per slot, an atomic counter per request-line hash
 * bucket), no allocation: safe in hooks and signal handlers.
 */
#ifndef REQID_REQUEST_TABLE_H
#define REQID_REQUEST_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_parser.h"
#include "request_id.h"
#include "trace_context.h"
#include "tracestate.h"

#define REQUEST_SLOT_BITS 14
#define REQUEST_SLOTS (1u << REQUEST_SLOT_BITS) /* the most the ring grows to */
#define REQUEST_RING_START 1024u /* slots the ring starts with */
#define REQUEST_INLINE_TEXT 96 /* bytes of id and request line a slot holds */
#define REQUEST_LONG_SLOTS 4096
#define RECENT_REQUESTS 256
#define TRACESTATE_SLOTS 1024 /* a tracestate lives while 1023 newer ones do */

/* Stores a request's id (1..REQUEST_ID_MAX bytes), request line (line_len
 * at most REQUEST_LINE_MAX, may be 0) with its buckets (request_line_buckets:
 * the caller counts the line with them too), trace (NULL: none) and
 * tracestate (ts_len 0: none; normalised, at most TRACESTATE_MAX) and
 * returns its new serial; 0 (no id) only if every slot tried was being
 * written by a stalled writer. With pin (not NULL) the request is current
 * and unanswered on a connection: its slot is pinned before any other
 * thread can see it, so no newer request takes it while some slot is not
 * pinned, and *pin is what to give to request_unpin (0 with serial 0).
 * Every pin is given back once. */
uint64_t request_table_add(const char *id, size_t len, const char *line, size_t line_len,
			   uint32_t buckets, const struct trace_plan *trace, const char *ts,
			   size_t ts_len, uint32_t *pin) __attribute__((visibility("hidden")));

void request_unpin(uint32_t pinned) __attribute__((visibility("hidden")));

/* Keeps request serial's slot pinned while a thread holds log lines under
 * it, which may wait past the ring's turn (a thread descheduled between
 * its response and its next read while other threads start a ring of
 * requests): *pin is the thread's one such pin (0: none), moved here from
 * the slot it held; left alone if serial is no longer stored (its lines
 * then go out with no id, as they would have). request_unpin(*pin) ends
 * it. */
void request_keep(uint64_t serial, uint32_t *pin) __attribute__((visibility("hidden")));

/* The trace of request serial, its new parts made with gen (the generator
 * its plan took counter values from, or a fork child's copy of it); false
 * if it has none or is no longer stored. */
bool request_table_trace(uint64_t serial, const struct id_generator *gen, struct trace_ctx *out)
	__attribute__((visibility("hidden")));

/* Copies the tracestate of request serial into out and returns its length;
 * 0 if it had none or it is no longer stored. */
size_t request_table_tracestate(uint64_t serial, char out[TRACESTATE_MAX])
	__attribute__((visibility("hidden")));

/* The buckets of request serial's request line (request_line_buckets of
 * the line as it came); 0 if it had none or is no longer stored. */
uint32_t request_table_line_buckets(uint64_t serial) __attribute__((visibility("hidden")));

/* Whether request serial may be the one a log line quoting a request line
 * with buckets (request_line_quoted) quotes: its line as it came, or as a
 * format of the path alone logs it, has those buckets, or it has no line
 * kept or is no longer stored (nothing says otherwise). */
bool request_line_is(uint64_t serial, uint32_t buckets) __attribute__((visibility("hidden")));

/* Copies the id of request serial into out; 0 if it is no longer stored. */
size_t request_table_get(uint64_t serial, char out[REQUEST_ID_MAX])
	__attribute__((visibility("hidden")));

/* The hash buckets of a request line, one per table (what the live counts
 * count). */
uint32_t request_line_buckets(const char *line, size_t len) __attribute__((visibility("hidden")));

/* A request with a request line in bucket became current on its connection
 * (it counts from then on), or stopped being current (it still counts until
 * RECENT_REQUESTS more requests have ended: a buffered access log names
 * requests after they ended). */
void request_line_started(uint32_t buckets, uint64_t serial) __attribute__((visibility("hidden")));
void request_line_ended(uint32_t buckets) __attribute__((visibility("hidden")));

/* The buckets of a request line counted as an unseen stream (a line a
 * server may log as another request's, http_request_line_logging), not in
 * its buckets: request_streams_unseen(1) at its start, and
 * request_line_ended(REQUEST_LINE_UNSEEN) ends that stream. Request line
 * buckets are below 2^31. */
#define REQUEST_LINE_UNSEEN (UINT32_MAX - 1)

/* delta (1 or -1) more open streams whose requests are not counted: a
 * connection whose bytes are no longer parsed (conn_table.h). While there
 * is one, a line quoting a request line may be one of its requests',
 * however few were counted: no line names a request then. One that ends
 * (or is seen again) counts until RECENT_REQUESTS more ends, as an ended
 * request does: a buffered log writes its requests' lines after it. */
void request_streams_unseen(int delta) __attribute__((visibility("hidden")));

/* No line is named by its request line from paused until a call with
 * paused false (attach and detach, while the GOT changes: nested pauses
 * count), whatever ends meanwhile. */
void request_naming_paused(bool paused) __attribute__((visibility("hidden")));

/* Whether line (a log line) names request serial: it contains the request's
 * request line, and no other counted request of this process has a request
 * line in the same bucket of one of the tables, and no stream is unseen. */
bool request_named_in(uint64_t serial, const char *line, size_t len)
	__attribute__((visibility("hidden")));

/* Whether a log line quotes a request line (http_find_request_line); its
 * buckets (request_line_buckets) in *buckets, 0 for one no request keeps
 * (REQUEST_LINE_MAX bytes or more). */
bool request_line_quoted(const char *line, size_t len, uint32_t *buckets)
	__attribute__((visibility("hidden")));

/* The request a log line names by the request line it quotes (an access
 * log line), if exactly one counted request has that request line; else 0. */
uint64_t request_named_by(const char *line, size_t len) __attribute__((visibility("hidden")));

/* The same, for a line whose quoted request line has buckets (not 0). */
uint64_t request_named_with(const char *line, size_t len, uint32_t buckets)
	__attribute__((visibility("hidden")));

/* Maps the rings now if no request has yet (a process accepting its first
 * connection): a fork server's children then inherit them rather than each
 * mapping its own. Without them (mapping failed) requests get no id. */
void request_tables_ready(void) __attribute__((visibility("hidden")));

/* In a fork child (its atfork handler): its next request goes to the
 * ring's slot on the page the child writes anyway (fork_hot.h), unless a
 * connection of its parent's has that slot pinned. */
void request_table_after_fork(void) __attribute__((visibility("hidden")));

/* Every request added so far is forgotten: its serial finds nothing (a
 * process `reqid attach` attaches to again: a thread's context from the
 * earlier attach may still name one). */
void request_table_forget_all(void) __attribute__((visibility("hidden")));

/* After request_table_forget_all at detach: the rings and line counts are
 * emptied and their pages given back (a slot read as zeroes is no
 * request's; a line count that a late end takes below zero only makes its
 * bucket look shared), and no stream counts as unseen (every connection
 * was forgotten first). */
void request_table_release(void) __attribute__((visibility("hidden")));

#endif
