/*
 * log_writer.c - line assembly, holding and enriched output for log fds.
 *
 * A line slot belongs to one (thread, fd, stdio stream or none) while it
 * has bytes pending, and keeps them in one mmap'ed buffer:
 *
 *   [held record][held record]...[record header + unfinished line]
 *
 * A held record is a complete line waiting for its thread's bracket to
 * resolve (thread_ctx.h), with the request it was held under and a per-thread
 * sequence number, so lines held for several fds go out in the order they
 * were written. The unfinished line reserves its header up front, so it
 * becomes a held record in place. Slots live in a fixed table and return to
 * it when empty; a thread remembers its few in TLS. The owner works on a slot
 * under its busy flag, so a close or dup2 of a descriptor, and process exit,
 * can flush the slots of threads that are still running without tearing a
 * line.
 *
 * Must never call malloc or stdio, never take a lock, and never report to the
 * application a count of bytes that differs from what reached the kernel
 * other than by whole pending lines (see log_writer.h).
 */
#include "log_writer.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "audit_log.h"
#include "call_chain.h"
#include "event_batch.h"
#include "fork_hot.h"
#include "large_table.h"
#include "line_format.h"
#include "log_order.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "shim_init.h"
#include "signal_frames.h"
#include "thread_ctx.h"

#define LINE_SLOTS 4096
#define STAGE_SIZE 2048
#define STAGE_LINES 64 /* lines in one stage, at most */
#define HELD_MAX (1u << 20) /* held bytes per slot before they go out unheld */

struct held_record {
	uint32_t seq;
	uint32_t len;     /* bytes of the line, its newline included */
	uint64_t request; /* the thread's request when the line was held; with
			     DECIDED set, the id it gets (0: none), decided at
			     a release that could not write it (a stream busy)
			     or by the event-loop rule; with BATCH_PENDING set,
			     a line of an event-loop batch written before the
			     batch's first I/O, from inside the call at site */
	uintptr_t site;   /* with BATCH_PENDING: the call the line was written
			     in; with NESTED: the key of the line's bracket;
			     with DECIDED: its owner (record_owner), if it
			     was held in a bracket */
	uint32_t depth;   /* with NESTED: the outer frames the key covers */
	uint32_t audit;   /* audit mode: the line's number (audit_log.h) */
};
#define RECORD sizeof(struct held_record)
#define DECIDED (1ull << 63)
#define BATCH_PENDING (1ull << 62)
#define BATCH_PROVEN (1ull << 61)
#define NESTED (1ull << 60) /* held under request as a nested bracket */
/* Serials stay below these bits: 2^46 sequence numbers, far beyond any
 * process's requests (request_table.h). */
_Static_assert(REQUEST_SLOT_BITS + 46 <= 60, "request serials stay below the record's flags");

/* record_tag for the records its flags do not decide: the id is the one
 * the line was held under only if it names that request. Out of line:
 * most records are decided by their flags. */
static __attribute__((noinline)) uint64_t record_tag_named(const struct held_record *r,
							   uint64_t request, const char *line,
							   size_t len)
{
	if (r->request & NESTED) /* its bracket did not close: only naming */
		return request_named_in(r->request & ~NESTED, line, len) ? r->request & ~NESTED : 0;
	if (r->request == request || (r->request && request_named_in(r->request, line, len)))
		return r->request;
	return 0;
}

/* The id a record gets when its thread's bracket resolves to request: the
 * request it was held under if the bracket closed on it, or if the line
 * itself names that request (its request line, shared by no other live
 * request: an access log line written after the response). A line the
 * event-loop rule proved keeps its request unless the batch was spoiled
 * since (event_batch.h); own says the releasing thread is the line's.
 * Inline: an event loop's release tags every line it holds. */
static inline __attribute__((always_inline)) uint64_t
record_tag(const struct held_record *r, uint64_t request, const char *line, size_t len, bool own)
{
	if (r->request & BATCH_PROVEN)
		return own && !thread_ctx.batch.spoiled ? r->request & ~BATCH_PROVEN : 0;
	if (r->request & DECIDED)
		return r->request & ~DECIDED;
	if (r->request & BATCH_PENDING)
		return 0; /* released before its batch's first I/O proved anything */
	if (r->request == request && !(r->request & NESTED))
		return r->request;
	return record_tag_named(r, request, line, len);
}

/* The request a held line was written under, by a thread in a bracket
 * (thread_ctx.h) that held it: a line that names another request gets no
 * id (format_named). 0 for the event-loop rules' lines. */
static uint64_t record_owner(const struct held_record *r)
{
	if (r->request & DECIDED)
		return r->site;
	if (r->request & (BATCH_PENDING | BATCH_PROVEN))
		return 0;
	return r->request & ~NESTED;
}

struct line_slot {
	_Atomic int32_t owner;    /* tid; 0 when free */
	_Atomic uint32_t busy;    /* the tid of the thread working on it; 0 */
	int fd;
	struct log_sink sink;     /* how the owner writes to fd */
	struct sockaddr_un addr;  /* sink.addr points here for held datagrams */
	uint64_t partial_request; /* the thread's request when the partial line began */
	size_t held_len;          /* bytes of held records at the start of buf */
	size_t len;               /* held records + the unfinished line's record */
	char *buf;
	size_t cap;
	char *scratch;            /* room to format lines too long for the stage */
	size_t scratch_cap;
	bool raw_partial;         /* an unfinished line went out as it came (no
				     memory to keep it): so does its rest */
};

static struct line_slot line_slots[LINE_SLOTS] LARGE_TABLE;
/* No slot at or above this index was ever claimed: walks over the table
 * (exit, fork) stop here, so they cost what was used, not LINE_SLOTS.
 * This, slot_homes and exit_draining are FORK_HOT: a fork child that
 * writes a partial line writes all three (its claim, its exit), and on a
 * page of .bss its parent wrote they cost it a copy of that page. */
static _Atomic unsigned slots_used FORK_HOT;
/* Threads that claimed a slot: each thread's claims start at the slot of
 * its rank (its home), within CLAIM_SPREAD slots of the table's start, so
 * the slots in use lie together on a few pages, the first ones; a fork
 * child keeps its parent thread's home, or takes the next rank. */
static _Atomic unsigned slot_homes FORK_HOT;
#define CLAIM_SPREAD 64

/* ---- slots ------------------------------------------------------------- */

/* Set for good once process exit (or an exec) drains every slot: a thread
 * that finds its slot busy then writes as if the shim were not there. */
static _Atomic bool exit_draining FORK_HOT;

static bool slot_lock(struct line_slot *s)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&s->busy, &expected, (uint32_t)ctx_tid(),
						       memory_order_acquire, memory_order_relaxed);
}

/* slot_lock for the slot's owner, waiting while another thread drains it (a
 * close or dup2 of its descriptor flushes every thread's lines for it: a
 * few writes). False, and the caller passes its call through, when this
 * thread holds it (a signal handler inside the writer), when process exit is
 * draining, or after a second. */
static LOOP_PATH bool slot_lock_waiting(struct line_slot *s)
{
	for (unsigned tries = 0; tries < 64 + 10000; tries++) {
		if (slot_lock(s))
			return true;
		uint32_t holder = atomic_load_explicit(&s->busy, memory_order_relaxed);
		if (holder == (uint32_t)thread_ctx.tid ||
		    atomic_load_explicit(&exit_draining, memory_order_relaxed))
			return false;
		if (tries < 64)
			raw_sched_yield();
		else
			syscall(SYS_nanosleep, &(struct timespec){0, 100000}, NULL);
	}
	return false;
}

static void slot_unlock(struct line_slot *s)
{
	atomic_store_explicit(&s->busy, 0, memory_order_release);
}

/* Locks s if it holds records (read under the lock: another thread's
 * drain may be emptying it). */
static bool slot_lock_holding(struct line_slot *s)
{
	if (!slot_lock(s))
		return false;
	if (s->held_len > 0)
		return true;
	slot_unlock(s);
	return false;
}

static bool has_partial(const struct line_slot *s)
{
	return s->len > s->held_len;
}

/* The thread's slot for a sink: one per fd for write()-like calls and one
 * per stdio stream, so a line begun with write() is never finished inside
 * a stream's buffer (or the reverse). */
static struct line_slot *find_slot(const struct log_sink *sink)
{
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (s->fd == sink->fd && s->sink.owner == sink->owner)
			return s;
	}
	return NULL;
}

/* The slot writes its lines the way the caller's sink does, keeping its
 * own copy of a datagram's destination. */
static void slot_set_sink(struct line_slot *s, const struct log_sink *sink)
{
	s->sink = *sink;
	if (sink->addr) {
		memcpy(&s->addr, sink->addr, sink->addr_len);
		s->sink.addr = (const struct sockaddr *)&s->addr;
	}
}

/* Gives a locked slot of the thread's, empty, back to the table. */
static FORK_PATH void slot_give_back(struct line_slot *s)
{
	uint16_t index = (uint16_t)(s - line_slots);
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		if (thread_ctx.slots[i] == index) {
			thread_ctx.slots[i] = thread_ctx.slots[--thread_ctx.slot_count];
			break;
		}
	}
	atomic_store_explicit(&s->owner, 0, memory_order_release);
}

static bool slot_empty(const struct line_slot *s)
{
	return s->len == 0 && !s->raw_partial;
}

/* The thread has THREAD_SLOTS_MAX slots: one it keeps empty (slot_leave)
 * goes back to the table, if it has one. */
static __attribute__((noinline, cold)) void slot_evict_empty(void)
{
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (!slot_lock(s))
			continue;
		bool empty = slot_empty(s);
		if (empty)
			slot_give_back(s);
		slot_unlock(s);
		if (empty)
			return;
	}
}

/* Takes a free slot for (this thread, sink's fd), returned locked. */
static LOOP_PATH struct line_slot *claim_slot(const struct log_sink *sink)
{
	if (thread_ctx.slot_count == THREAD_SLOTS_MAX)
		slot_evict_empty();
	if (thread_ctx.slot_count == THREAD_SLOTS_MAX)
		return NULL;
	int32_t tid = ctx_tid();
	/* Marked before any slot is taken: a fork in between still resets it. */
	STATE_MADE(MADE_SLOTS);
	fatal_signal_flush_ensure();
	if (thread_ctx.slot_home == 0)
		thread_ctx.slot_home = (uint16_t)(atomic_fetch_add_explicit(&slot_homes, 1,
									    memory_order_relaxed) %
						      CLAIM_SPREAD + 1);
	unsigned start = thread_ctx.slot_home - 1u;
	for (unsigned k = 0; k < LINE_SLOTS; k++) {
		unsigned i = (start + k) % LINE_SLOTS;
		struct line_slot *s = &line_slots[i];
		int32_t expected = 0;
		/* The home is taken at once (usually free; a page no one wrote
		 * would cost a read's fault and then a write's); the rest are
		 * looked at before the lock-prefixed try. */
		if ((k > 0 && atomic_load_explicit(&s->owner, memory_order_relaxed) != 0) ||
		    !atomic_compare_exchange_strong(&s->owner, &expected, tid))
			continue;
		if (!slot_lock(s)) {
			/* Exit is still draining it for its previous owner. */
			atomic_store(&s->owner, 0);
			continue;
		}
		unsigned used = atomic_load_explicit(&slots_used, memory_order_relaxed);
		while (used <= i && !atomic_compare_exchange_weak(&slots_used, &used, i + 1))
			;
		__atomic_store_n(&s->fd, sink->fd, __ATOMIC_RELAXED); /* drain_all peeks */
		slot_set_sink(s, sink);
		s->len = 0;
		s->held_len = 0;
		s->raw_partial = false;
		thread_ctx.slots[thread_ctx.slot_count++] = (uint16_t)i;
		return s;
	}
	return NULL;
}

/* Unlocks a slot the thread holds; an empty one goes back to the table,
 * unless the thread serves several connections at once: an event loop
 * holds each access line it writes until its batch ends, in the same slot
 * every time, and keeps it (a few such threads, a few slots each; a claim
 * past THREAD_SLOTS_MAX takes one back, as do thread exit and the close of
 * its descriptor). */
static LOOP_PATH void slot_leave(struct line_slot *s)
{
	if (slot_empty(s) && !(thread_ctx.watch & WATCH_CONNS) &&
	    atomic_load_explicit(&s->owner, memory_order_relaxed) == thread_ctx.tid)
		slot_give_back(s);
	slot_unlock(s);
}

/* slot_leave, an empty slot going back to the table in any thread. */
static LOOP_PATH void slot_leave_for_good(struct line_slot *s)
{
	if (slot_empty(s) && atomic_load_explicit(&s->owner, memory_order_relaxed) == thread_ctx.tid)
		slot_give_back(s);
	slot_unlock(s);
}

/* Appends n bytes to s behind gap bytes left as they are, in one
 * reservation. */
static inline __attribute__((always_inline)) bool slot_append_after(struct line_slot *s,
								   size_t gap, const void *b,
								   size_t n)
{
	if (n > SIZE_MAX - gap - s->len ||
	    (s->len + gap + n > s->cap && !buffer_reserve(&s->buf, &s->cap, s->len + gap + n)))
		return false;
	memcpy(s->buf + s->len + gap, b, n);
	s->len += gap + n;
	return true;
}

static LOOP_PATH bool slot_append(struct line_slot *s, const void *b, size_t n)
{
	return slot_append_after(s, 0, b, n);
}

/* Appends a line's n bytes behind room for the header of its record, which
 * hold_record writes when the line is held (read by nothing before then). */
static LOOP_PATH bool slot_append_record(struct line_slot *s, const void *b, size_t n)
{
	return slot_append_after(s, RECORD, b, n);
}

/* Drops the first n bytes of s's held records (they went out); what
 * follows them moves to the start, if anything does. */
static inline void slot_drop_held(struct line_slot *s, size_t n)
{
	if (n < s->len)
		memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
	s->held_len -= n;
}

/* ---- output ------------------------------------------------------------ */

#define ID_RAW (UINT64_MAX - 1) /* id_request: no memory for the line, or
				   not a syslog message: it went out as it
				   came (the next line's writer_id resets it) */

/* One batch of output: enriched lines gathered in a stage so that several
 * short lines leave in one write of at most STAGE_SIZE bytes. */
#define OWNER_CURRENT UINT64_MAX /* writer.owner: see format_named */

struct writer {
	const struct log_sink *sink;
	enum output_mode mode;
	struct line_slot *slot;    /* this thread's slot for sink->fd, if any */
	size_t committed;          /* input bytes whose output is out or buffered */
	size_t staged_input;       /* input bytes whose output sits in the stage */
	size_t staged;
	unsigned stage_lines;      /* lines in the stage */
	int error;                 /* errno of a failed write, 0 if none */
	uint64_t id_request;       /* cached id text for this request serial
				      (ID_RAW: the last line went out as it
				      came, which its audit record says) */
	uint64_t owner;            /* of the held record being written
				      (record_owner); OWNER_CURRENT for the
				      lines of the program's current call */
	bool batch;                /* those lines are a batch (is_batch): the
				      thread's request says nothing of them */
	unsigned quoted_lines;     /* lines of a batch that quote a request line */
	bool several_lines;        /* the call's buffers hold between them two
				      lines, or a whole line and bytes after
				      it (is_batch) */
	size_t fields_len;             /* the fields of id_request's lines */
	char fields[LINE_FIELDS_MAX];
	char stage[STAGE_SIZE];
	uint32_t line_input[STAGE_LINES]; /* input bytes of each staged line */
};

static void writer_init(struct writer *w, const struct log_sink *sink, enum output_mode mode,
			struct line_slot *slot)
{
	w->sink = sink;
	w->mode = mode;
	w->slot = slot;
	w->committed = 0;
	w->staged_input = 0;
	w->staged = 0;
	w->stage_lines = 0;
	w->error = 0;
	w->id_request = UINT64_MAX;
	w->owner = OWNER_CURRENT;
	w->batch = false;
	w->quoted_lines = 0;
	w->several_lines = false;
	w->fields_len = 0;
}

/* The fields text for a request serial (0: outside any request). */
static inline void writer_id(struct writer *w, uint64_t request)
{
	if (w->id_request == request)
		return;
	w->id_request = request;
	if (request == 0 && shim.config.outside_len == 0) {
		w->fields_len = 0; /* the common line outside any request */
		return;
	}
	const struct line_style *style = w->sink->message ? &shim.syslog_style : &shim.style;
	char id[REQUEST_ID_MAX];
	struct trace_ctx trace;
	size_t id_len = request ? request_table_get(request, id) : 0;
	bool traced = id_len && shim.traced_fields && request_table_trace(request, &process.ids, &trace);
	if (id_len == 0 && shim.config.outside_len) {
		memcpy(id, shim.config.outside, shim.config.outside_len);
		id_len = shim.config.outside_len;
	}
	w->fields_len = line_fields(style, id, id_len, traced ? &trace : NULL, w->fields);
}

/* Only done bytes of a writer_put of n went out: errno says why. Output
 * that stands for its input byte for byte (raw) counts what went; an
 * enriched line cut short counts none of its input (log_output ends the
 * torn line it left before the fd's next output). */
static __attribute__((noinline, cold)) bool writer_failed(struct writer *w, size_t n,
							  size_t input, size_t done)
{
	w->error = errno;
	if (input == n)
		w->committed += done;
	return false;
}

/* Writes bytes that stand for input bytes of this batch. Inline, as
 * log_output's common case is: a line that goes out in one write calls
 * nothing but the write. */
static inline bool writer_put(struct writer *w, const char *b, size_t n, size_t input)
{
	size_t done = log_output(w->sink, b, n, w->mode);
	if (unlikely(done != n))
		return writer_failed(w, n, input, done);
	w->committed += input;
	return true;
}

/* Only done bytes of the stage went out: the input of each staged line
 * that went out whole counts as written, and no more. */
static __attribute__((noinline, cold)) bool stage_failed(struct writer *w, size_t done)
{
	w->error = errno;
	unsigned whole = 0;
	for (size_t i = 0; i < done; i++)
		whole += w->stage[i] == '\n';
	for (unsigned i = 0; i < whole && i < w->stage_lines; i++)
		w->committed += w->line_input[i];
	return false;
}

/* Writes the stage out. False if not all of it went out (w->error set). */
static inline LOOP_PATH bool writer_flush(struct writer *w)
{
	if (w->staged == 0)
		return true;
	size_t done = log_output(w->sink, w->stage, w->staged, w->mode);
	bool ok = likely(done == w->staged) ? (w->committed += w->staged_input, true)
					     : stage_failed(w, done);
	w->staged = 0;
	w->staged_input = 0;
	w->stage_lines = 0;
	return ok;
}

/* writer_flush for consume's rarer paths (an unfinished line, one that
 * completes a partial line, a held one): one copy, not one in consume for
 * each. */
static FORK_PATH __attribute__((noinline)) bool writer_flush_apart(struct writer *w)
{
	return writer_flush(w);
}

static bool writer_raw(struct writer *w, const char *b, size_t n);

/* For a syslog message, the part kept before the enriched text: "<pri>"
 * for syslog() messages, the "<PRI>TIMESTAMP TAG: " header of a datagram. */
static size_t message_head(const struct log_sink *sink, const char *line, size_t len)
{
	if (sink->message == MESSAGE_DATAGRAM)
		return syslog_header_len(line, len);
	const char *end = memchr(line, '>', len);
	return end ? (size_t)(end - line) + 1 : 0;
}

/* A syslog message: its head kept as it is, the rest enriched, sent on its
 * own. */
static bool writer_message(struct writer *w, const char *line, size_t len, size_t input)
{
	size_t head = message_head(w->sink, line, len);
	if (head == 0) { /* not a syslog message after all: as it came */
		w->id_request = ID_RAW;
		return writer_raw(w, line, len);
	}
	size_t bound = head + line_format_bound(len - head, w->fields_len);
	char *out = w->stage;
	if (!writer_flush(w))
		return false;
	if (bound > STAGE_SIZE) {
		if (!w->slot || !buffer_reserve(&w->slot->scratch, &w->slot->scratch_cap, bound)) {
			w->id_request = ID_RAW;
			return writer_raw(w, line, len);
		}
		out = w->slot->scratch;
	}
	memcpy(out, line, head);
	size_t n = head + line_format(&shim.syslog_style, w->fields, w->fields_len, line + head,
				      len - head, out + head);
	return writer_put(w, out, n, input);
}

/* What emit_line did. */
enum emitted {
	EMIT_FAILED, /* the line did not go out (w->error set) */
	EMIT_DONE,   /* it went out or sits in the stage */
	EMIT_SPLIT   /* (whole) the bytes held a newline: nothing of them done */
};

/* A line goes out as it came (emit_line had no memory for it). */
static __attribute__((noinline, cold)) enum emitted emit_raw(struct writer *w, const char *line,
							    size_t n, size_t input)
{
	w->id_request = ID_RAW;
	return writer_put(w, line, n, input) ? EMIT_DONE : EMIT_FAILED;
}

/* Formats line again into out, with request's id (0: none). */
static __attribute__((noinline, cold)) size_t format_as(struct writer *w, uint64_t request,
							 const char *line, size_t len, char *out)
{
	writer_id(w, request);
	return line_format(&shim.style, w->fields, w->fields_len, line, len, out);
}

/* Formats again a line that quotes the request line of named, another
 * request than request, the one it got by the other rules (0: none). An
 * access log line written after its request ended or in a batch gets
 * named if it came at named's place in the order its descriptor's lines
 * follow (placed: log_order.h), or, outside a batch, a thread agrees
 * (below): a batch is a buffer filled earlier, whoever flushes it (the
 * line may be a rewritten one that quotes the flushing thread's request
 * line). A line that had a request of its own (a thread certain of it, a
 * bracket that closed on it) gets none: one of the two is wrong, and which
 * is not known (the quote may be a client's header value that copies
 * another request's line). So does a line that another request than named
 * owns, though it got no id of its own: it may be that request's, quoting
 * a header. A held line is owned by the request it was held under, if its
 * bracket did not close on it (w->owner); a line the program writes now by
 * the thread's request if the thread is in a bracket of it outside an
 * event loop's batch (its lines get ids only by naming when it served
 * several connections at once, or in a multi-line write), or serves it
 * (after a lock wait, or in a multi-line write), or by the request a
 * boundary (a sleep, a wait) took it out of, until its next connection
 * I/O; none of these in an event loop's batch. Out of line: most lines name
 * their own request or none. */
static __attribute__((noinline, cold)) size_t
format_named(struct writer *w, uint64_t request, uint64_t named, uint64_t placed,
	     const char *line, size_t len, char *out)
{
	uint64_t owner = w->owner;
	if (owner == OWNER_CURRENT)
		owner = thread_ctx.batch.wait_depth != 0	 ? 0
			: thread_ctx.mode == CTX_BRACKET ? thread_ctx.request
			: thread_ctx.mode == CTX_NONE	 ? thread_ctx.left_request
							 : 0;
	bool serves = ctx_serves_own_request();
	bool other = request || (owner && owner != named) || (serves && thread_ctx.request != named);
	bool agreed = placed == named || (!w->batch && (owner == named || serves));
	return format_as(w, other || !agreed ? 0 : named, line, len, out);
}

/* A line (formatted into out: n bytes, with request's id) that has a
 * quote: if it quotes a request line, it takes its place in its
 * descriptor's order of access lines (log_order.h), and is formatted again
 * if that line says its id is another's or none. Returns its length. Out
 * of line, with the order's code: most lines quote no request line. */
static LOOP_PATH __attribute__((noinline)) size_t
quoted_line(struct writer *w, uint64_t request, const char *line, size_t len, char *out, size_t n)
{
	uint32_t quoted;
	if (!request_line_quoted(line, len, &quoted))
		return n;
	bool flushed;
	uint64_t placed = log_order_line(w->sink->fd, quoted, w->batch && ++w->quoted_lines == 2,
					    &flushed);
	uint64_t named = quoted ? request_named_with(line, len, quoted) : 0;
	/* A buffer's line, whoever writes it (log_order_line): as a
	 * batch's, named only where its place agrees. */
	if (unlikely(flushed)) {
		uint64_t id = named && placed == named ? named : 0;
		return id == request ? n : format_as(w, id, line, len, out);
	}
	/* The rules gave it a request whose line is not the one it quotes: a
	 * buffered log's line of the request before, flushed alone while the
	 * next one is served (nginx with lines longer than half its
	 * buffer=). */
	if (request && !named && unlikely(!request_line_is(request, quoted)))
		return format_as(w, 0, line, len, out);
	if (named && named != request)
		return format_named(w, request, named, placed, line, len, out);
	return n;
}

/* Emits one line (without its newline; newline says whether it had one),
 * standing for input bytes of this batch. With whole, the line's bytes
 * are not known to be free of newlines, and line_format_escapes_whole
 * holds for them: the escaper finds out, and a line that had one is left
 * undone (EMIT_SPLIT). Inlined where consume emits a complete line, the
 * path every line takes; writer_line is the same for the other callers. */
static inline __attribute__((always_inline)) enum emitted
emit_line(struct writer *w, uint64_t request, const char *line, size_t len, bool newline,
	  size_t input, bool whole)
{
	writer_id(w, request);
	if (unlikely(w->sink->message))
		return writer_message(w, line, len, input) ? EMIT_DONE : EMIT_FAILED;
	size_t bound = line_format_bound(len, LINE_FIELDS_MAX) + 1;
	if (unlikely(bound > STAGE_SIZE - w->staged || w->stage_lines == STAGE_LINES) &&
	    !writer_flush(w))
		return EMIT_FAILED;
	char *out = w->stage + w->staged;
	if (bound > STAGE_SIZE) {
		/* Too long for the stage: format into the slot's scratch. */
		if (!w->slot && w->mode == OUTPUT_APP)
			w->slot = claim_slot(w->sink);
		if (!w->slot || !buffer_reserve(&w->slot->scratch, &w->slot->scratch_cap, bound))
			/* No memory for it: the line goes out as it came, not lost. */
			return whole ? EMIT_SPLIT : emit_raw(w, line, len + newline, input);
		out = w->slot->scratch;
	}
	unsigned seen;
	size_t n = line_format_noting(&shim.style, w->fields, w->fields_len, line, len, out, &seen,
				      whole ? LINE_SAW_NEWLINE : 0);
	if (whole && (seen & LINE_SAW_NEWLINE))
		return EMIT_SPLIT;
	if (seen & LINE_SAW_QUOTE)
		n = quoted_line(w, request, line, len, out, n);
	if (newline)
		out[n++] = '\n';
	if (out != w->stage + w->staged)
		return writer_put(w, out, n, input) ? EMIT_DONE : EMIT_FAILED;
	w->line_input[w->stage_lines++] = (uint32_t)input;
	w->staged += n;
	w->staged_input += input;
	return EMIT_DONE;
}

static LOOP_PATH bool writer_line(struct writer *w, uint64_t request, const char *line, size_t len,
				  bool newline, size_t input)
{
	return emit_line(w, request, line, len, newline, input, false) == EMIT_DONE;
}

/* emit_line of a complete line, its newline had, for consume's other
 * paths than the usual one (several lines, a line without a slot to keep
 * it): one copy of it, not one in consume for each. */
static FORK_PATH __attribute__((noinline)) enum emitted
emit_line_apart(struct writer *w, uint64_t request, const char *line, size_t len, size_t input)
{
	return emit_line(w, request, line, len, true, input, false);
}

/* The id the line w emitted last went out with (0: none, or it went out as
 * it came), for its audit record. */
static uint64_t emitted_id(const struct writer *w)
{
	return w->id_request == ID_RAW ? 0 : w->id_request;
}

/* No buffer room for bytes: they go out as they came after what is staged. */
static bool writer_raw(struct writer *w, const char *b, size_t n)
{
	return writer_flush(w) && writer_put(w, b, n, n);
}

/* Writes n bytes of held records from buf, each tagged with request if it
 * was held under it; inline_lines: with emit_line inlined (an event loop's
 * release, which writes every line it holds), else by writer_line. */
static inline __attribute__((always_inline)) void
records_out(struct writer *w, const char *buf, size_t n, uint64_t request, bool inline_lines)
{
	bool own = w->slot &&
		   atomic_load_explicit(&w->slot->owner, memory_order_relaxed) == thread_ctx.tid;
	bool newline = !w->sink->message;
	uint64_t current = w->owner;
	for (size_t pos = 0; pos < n;) {
		struct held_record r;
		memcpy(&r, buf + pos, RECORD);
		const char *line = buf + pos + RECORD;
		w->owner = record_owner(&r);
		uint64_t tag = record_tag(&r, request, line, r.len - 1, own);
		if (inline_lines)
			emit_line(w, tag, line, r.len - 1, newline, 0, false);
		else
			writer_line(w, tag, line, r.len - 1, newline, 0);
		if (unlikely(r.audit))
			audit_line_decided(r.audit, emitted_id(w));
		pos += RECORD + r.len;
	}
	w->owner = current;
}

static LOOP_PATH void writer_records(struct writer *w, const char *buf, size_t n, uint64_t request)
{
	records_out(w, buf, n, request, false);
}

/* Writes the records at the start of s that a release already decided,
 * before anything newer; the caller may write to s's sink. Returns false
 * if they could not all go out. Out of line: most writes find no held
 * line before them. */
static FORK_PATH __attribute__((noinline)) bool writer_decided(struct writer *w, struct line_slot *s)
{
	size_t pos = 0;
	while (pos < s->held_len) {
		struct held_record r;
		memcpy(&r, s->buf + pos, RECORD);
		if (!(r.request & DECIDED))
			break;
		uint64_t current = w->owner;
		w->owner = record_owner(&r);
		bool out = writer_line(w, r.request & ~DECIDED, s->buf + pos + RECORD, r.len - 1,
				       !w->sink->message, 0);
		w->owner = current;
		if (!out || !writer_flush(w))
			break;
		uint64_t id = emitted_id(w);
		if (unlikely(r.audit))
			audit_line_decided(r.audit, id);
		pos += RECORD + r.len;
	}
	slot_drop_held(s, pos);
	return s->held_len == 0 || !(((struct held_record *)s->buf)->request & DECIDED);
}

/* ---- attribution ------------------------------------------------------- */

/* What a complete line gets. EMIT: written now with request's id (0:
 * none). HOLD: kept until the thread's bracket resolves. HOLD_DECIDED:
 * request's id, but kept behind the lines the thread holds. HOLD_PROVEN: the
 * event-loop rule gives it request's id, kept so that I/O of the same
 * handler call on another connection can still take the id back.
 * HOLD_BATCH: written in an event-loop batch before its first I/O, from
 * inside the call at site: kept until that I/O shows whether site is the
 * handler call. HOLD_NESTED: a nested bracket (event_batch.h), closed only
 * by I/O that shares the line's depth outer frames (hashed in site). */
enum verdict { EMIT, HOLD, HOLD_DECIDED, HOLD_PROVEN, HOLD_BATCH, HOLD_NESTED };

struct line_verdict {
	enum verdict kind;
	uint64_t request;
	uintptr_t site;
	uint32_t depth;
};

/* The event-loop rules for a line, if one applies (v->kind set). Kept out
 * of line: most lines are no event loop's. */
static LOOP_PATH __attribute__((noinline)) bool judge_loop(struct line_verdict *v)
{
	CALL_CHAIN(chain);
	call_chain_take(&chain, batch_chain_memo());
	if (thread_ctx.batch.conn) {
		if (thread_ctx.batch.site && (v->request = batch_line_request(&chain)) != 0) {
			/* Held so that the handler's later I/O on another
			 * connection can take the id back, unless another thread
			 * could write a line that must come after it meanwhile. */
			if (!atomic_load_explicit(&process.threaded, memory_order_relaxed))
				v->kind = HOLD_PROVEN;
			else
				v->kind = thread_ctx.held ? HOLD_DECIDED : EMIT;
			return true;
		}
		if (!thread_ctx.batch.io_seen && (v->site = batch_line_site(&chain)) != 0) {
			v->kind = HOLD_BATCH;
			return true;
		}
	}
	int depth;
	uint64_t key;
	if (shim.config.event_brackets && thread_ctx.mode == CTX_BRACKET && thread_ctx.request &&
	    (thread_ctx.watch & WATCH_CONNS) && (depth = batch_nested_depth(&chain, &key)) != 0) {
		v->kind = HOLD_NESTED;
		v->site = (uintptr_t)key;
		v->depth = (uint32_t)depth;
		return true;
	}
	return false;
}

/* Fills v for a complete line: started_request is the context when its
 * first byte was written (the current one for a line written whole). v's
 * site and depth are set only for the kinds that use them. */
static inline __attribute__((always_inline)) void judge(uint64_t started_request,
							struct line_verdict *v)
{
	v->kind = EMIT;
	v->request = 0;
	v->site = 0;
	v->depth = 0;
	/* A signal handler's line is not the interrupted request's. */
	if (started_request != thread_ctx.request || thread_ctx.foreign_lines ||
	    in_signal_handler())
		return;
	bool loop = unlikely(thread_ctx.batch.wait_depth != 0);
	if (loop) {
		/* An event loop: its rules first. */
		struct line_verdict proof = {.kind = EMIT};
		if (judge_loop(&proof)) {
			*v = proof;
			return;
		}
	}
	if (thread_ctx.mode == CTX_BRACKET) {
		if (!(thread_ctx.watch & (WATCH_CONNS | WATCH_UNSEEN)))
			v->kind = HOLD;
	} else if (thread_ctx.mode == CTX_CERTAIN || unlikely(shim.exec_request)) {
		v->request = ctx_certain_request(); /* else none, without a call */
	}
	if (loop && v->kind == EMIT && thread_ctx.held)
		v->kind = HOLD_DECIDED; /* lines a batch holds go out first */
}

/* Whether a line, the one a line of an earlier write left unfinished, is
 * pending on w's slot: the write's first newline ends that one. */
static bool line_pending(const struct writer *w)
{
	return w->slot && (has_partial(w->slot) || w->slot->raw_partial);
}

/* Whether buf, written by w's call, is a batch: the flush of a buffer the
 * program filled earlier (a buffered access log, an interpreter's
 * block-buffered stdout), whose lines may be any requests'. Then only a
 * line that names its request gets an id. It is one when it holds two or
 * more lines, or a whole line and bytes after it (or the call's other
 * buffers make it so: a writev of a line per iovec): a buffer that filled
 * up exactly goes out as the lines before and the text of the line being
 * printed, its newline to come in the next flush (CPython's 8 KiB). A
 * write that only ends the line pending and begins another (a program
 * that writes each message's newline first) is none.
 * Such a write is a batch from any thread, one certain of its request
 * too: a buffer fills up and is flushed while the thread serves a request,
 * with lines of the requests before it (CPython's print() to a file,
 * flushed by a pool thread that has just read its next request), and
 * nothing in the write tells that from a message of several lines (a
 * stack trace), which so gets no id. A stdio call's bytes are the call's
 * own (enriched at the call, never a flush), and a process started for a
 * request (exec_request) writes its own lines: there a certain thread's
 * lines are its own, unless one of them names another request (which then
 * gets no id either: format_named), or two of them quote a request line (a
 * request has one access line: a buffer of them); their writev of lines
 * over several buffers is a batch (the quotes are looked for in one). */
static FORK_PATH __attribute__((noinline)) bool lines_are_batch(const struct writer *w,
								 const char *buf, size_t n);

static bool is_batch(const struct writer *w, const char *buf, size_t n, const char *first)
{
	const char *end = buf + n;
	if (!w->several_lines &&
	    (!first || first + 1 >= end ||
	     (line_pending(w) && !memchr(first + 1, '\n', (size_t)(end - first - 1)))))
		return false;
	return lines_are_batch(w, buf, n);
}

/* is_batch for a write of more than one line. Out of line: most writes
 * hold one. */
static FORK_PATH __attribute__((noinline)) bool lines_are_batch(const struct writer *w,
								 const char *buf, size_t n)
{
	const char *end = buf + n;
	if ((thread_ctx.mode == CTX_CERTAIN && !w->sink->stream) || w->several_lines ||
	    ctx_certain_request() == 0)
		return true;
	unsigned quoting = 0;
	for (const char *p = buf; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		uint32_t buckets;
		if (request_line_quoted(p, (size_t)(nl - p), &buckets)) {
			if (++quoting == 2)
				return true;
			uint64_t named = buckets ? request_named_with(p, (size_t)(nl - p), buckets) : 0;
			if (named && named != thread_ctx.request)
				return true;
		}
		p = nl + 1;
	}
	return false;
}

/* Makes the record whose header starts at offset at a held line: held
 * under the thread's request, or (decided) to be written with request's
 * id after the lines held before it. */
static inline __attribute__((always_inline)) void record_held(struct line_slot *s, size_t at,
								const struct line_verdict *vp)
{
	struct line_verdict v = *vp;
	struct held_record r = {
		.seq = thread_ctx.held_seq++,
		.len = (uint32_t)(s->len - at - RECORD),
		.request = thread_ctx.request,
	};
	if (v.kind == HOLD_DECIDED) {
		r.request = v.request | DECIDED;
	} else if (v.kind == HOLD_PROVEN) {
		r.request = v.request | BATCH_PROVEN;
	} else if (v.kind == HOLD_BATCH) {
		r.request = BATCH_PENDING;
		r.site = v.site;
	} else if (v.kind == HOLD_NESTED) {
		r.request = thread_ctx.request | NESTED;
		r.site = v.site;
		r.depth = v.depth;
	}
	/* A single-threaded loop serving several connections keeps its
	 * batch's lines to the batch's end (thread_ctx.h has no brackets for
	 * it): no other thread's line can be due after them meanwhile. */
	if ((v.kind == HOLD_PROVEN || v.kind == HOLD_BATCH) && (thread_ctx.watch & WATCH_CONNS) &&
	    !atomic_load_explicit(&process.threaded, memory_order_relaxed))
		thread_ctx.batch.holding = true;
	if (unlikely(shim.audit)) {
		r.audit = audit_held_number();
		audit_line(AUDIT_HELD, 0, thread_ctx.request, r.audit, s->buf + at + RECORD,
			   r.len - 1);
	}
	memcpy(s->buf + at, &r, RECORD);
	s->held_len = s->len;
	thread_ctx.held = true;
	/* Other threads may start a ring of requests before this one's
	 * lines go; a single thread releases them at its next request's read
	 * or its event batch's end, far less than a ring later. */
	uint64_t under = v.kind == HOLD_DECIDED || v.kind == HOLD_PROVEN ? v.request
			 : v.kind == HOLD_BATCH ? 0 : thread_ctx.request;
	if (under && atomic_load_explicit(&process.threaded, memory_order_relaxed))
		request_keep(under, &thread_ctx.held_pin);
}

static LOOP_PATH __attribute__((noinline)) void hold_record(struct line_slot *s, size_t at,
							    struct line_verdict v)
{
	record_held(s, at, &v);
}

/* The thread holds no lines: the request they were held under may go. */
static inline void held_pin_drop(void)
{
	uint32_t pin = thread_ctx.held_pin;
	if (unlikely(pin) && !thread_ctx.held) {
		/* Cleared first: a signal handler that holds a line meanwhile
		 * pins its request anew, and keeps that pin. */
		thread_ctx.held_pin = 0;
		request_unpin(pin);
	}
}

/* Audit mode: the verdict of a line the program's current call wrote,
 * which w just sent out (with w->id_request's id, unless it went out as it
 * came); ctx is the thread's request the line was judged under. */
static __attribute__((noinline, cold)) void audit_emitted(struct writer *w, uint64_t ctx,
							  bool batch, const char *line, size_t len)
{
	bool raw = w->id_request == ID_RAW;
	uint64_t request = emitted_id(w);
	enum audit_verdict v = raw	       ? AUDIT_RAW
			       : request ? AUDIT_TAGGED
			       : batch	 ? AUDIT_BATCH
			       : ctx	 ? AUDIT_UNPROVEN
					 : AUDIT_OUTSIDE;
	audit_line(v, request, ctx, 0, line, len);
}

static void audit_now(struct writer *w, bool batch, const char *line, size_t len)
{
	audit_emitted(w, thread_ctx.request, batch, line, len);
}

/* Audit mode: each line of n bytes that went out as they came, a last one
 * without its newline too (what follows it is a line of its own to the
 * shim). */
static __attribute__((noinline, cold)) void audit_raw(const char *b, size_t n)
{
	for (size_t pos = 0; pos < n;) {
		const char *nl = memchr(b + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (b + pos)) : n - pos;
		audit_line(AUDIT_RAW, 0, thread_ctx.request, 0, b + pos, len);
		pos += len + (nl != NULL);
	}
}

/* The lines s holds go out now, without an id (those a release decided
 * with theirs), ahead of anything the caller writes next. Out of line:
 * only a slot past HELD_MAX or out of memory gets here. */
static FORK_PATH __attribute__((noinline)) void held_out_now(struct writer *w, struct line_slot *s)
{
	if (!writer_flush(w))
		return;
	struct writer out;
	writer_init(&out, w->sink, w->mode, s);
	writer_records(&out, s->buf, s->held_len, 0);
	writer_flush(&out);
	slot_drop_held(s, s->held_len);
}

/* Past HELD_MAX a thread that never reaches its bracket would hold without
 * bound: its held lines on this fd go out now. */
static void cap_held(struct writer *w, struct line_slot *s)
{
	if (s->held_len > HELD_MAX)
		held_out_now(w, s);
}

/* What hold_line did with a complete line. */
enum held_line {
	HELD,       /* it is held */
	NOT_HELD,   /* no slot or no memory to keep it: the lines the slot
		       held went out, and it goes out now without an id */
	HOLD_FAILED /* the lines staged before it did not go out */
};

/* Holds a complete line of n bytes (its newline included) as v says in
 * w's slot, claimed if need be. Its bytes count as written now: the lines
 * staged before them go out first, as for an unfinished line. One call for
 * all of it: an event loop holds every access line it writes. */
static LOOP_PATH __attribute__((noinline)) enum held_line
hold_line(struct writer *w, const char *b, size_t n, const struct line_verdict *v)
{
	if (!writer_flush(w))
		return HOLD_FAILED;
	struct line_slot *s = w->slot ? w->slot : (w->slot = claim_slot(w->sink));
	if (!s)
		return NOT_HELD;
	size_t at = s->len;
	if (!slot_append_after(s, RECORD, b, n)) {
		held_out_now(w, s);
		return NOT_HELD;
	}
	record_held(s, at, v);
	w->committed += n;
	cap_held(w, s);
	return HELD;
}

/* A line judged to go out now waits behind the lines its slot holds (a
 * batch, or a line of no request, after lines a bracket keeps): the same
 * descriptor gets one thread's lines in the order it wrote them. */
static void keep_order(const struct line_slot *s, struct line_verdict *v)
{
	if (v->kind == EMIT && s && s->held_len)
		v->kind = HOLD_DECIDED;
}

/* No memory to keep an unfinished line: the lines held before it go out
 * now without an id, then what the slot has of it and its new bytes as they
 * came, and unless they ended it, its rest will follow as it comes
 * (raw_partial), so that its bytes stay in order and no part of it is
 * enriched as a line of its own. */
static __attribute__((noinline, cold)) bool give_up_partial(struct writer *w, struct line_slot *s,
							 const char *b, size_t n, bool ended)
{
	if (!writer_flush(w))
		return false;
	size_t start = s->held_len + RECORD;
	writer_records(w, s->buf, s->held_len, 0);
	if (unlikely(shim.audit)) /* the line once, by its first bytes */
		audit_line(AUDIT_RAW, 0, thread_ctx.request, 0,
			   s->len > start ? s->buf + start : b,
			   s->len > start ? s->len - start : n - ended);
	bool ok = writer_flush(w) &&
		  (s->len <= start || writer_put(w, s->buf + start, s->len - start, 0)) &&
		  writer_put(w, b, n, n);
	s->len = s->held_len = 0;
	s->raw_partial = !ended;
	return ok;
}

/* A syslog message is one whole "line" whatever bytes it holds. It is held
 * like a line (with a newline appended to its record) or sent at once. Out
 * of line, and of the fork child's window (a fork server's children log by
 * writes; is_batch takes the room). */
static __attribute__((noinline)) LOOP_PATH bool consume_message(struct writer *w, const char *buf,
								  size_t n)
{
	struct line_verdict v;
	judge(thread_ctx.request, &v);
	keep_order(w->slot, &v);
	uint64_t request = v.request;
	if (v.kind != EMIT && n < UINT32_MAX) {
		struct line_slot *s = w->slot ? w->slot : (w->slot = claim_slot(w->sink));
		size_t at = s ? s->len : 0;
		if (s && slot_append_record(s, buf, n) && slot_append(s, "\n", 1)) {
			hold_record(s, at, v);
			w->committed += n;
			return true;
		}
		if (s) {
			s->len = at;
			held_out_now(w, s);
		}
		request = 0;
	}
	if (!writer_line(w, request, buf, n, false, n))
		return false;
	if (unlikely(shim.audit))
		audit_now(w, false, buf, n);
	return true;
}

/* Consumes one run of input bytes. False when output failed: stop there. */
static bool consume(struct writer *w, const char *buf, size_t n)
{
	size_t pos = 0;
	if (w->slot && w->slot->held_len && thread_ctx.mode != CTX_BRACKET &&
	    !writer_decided(w, w->slot)) {
		/* still blocked: keep order, lose the id */
		if (unlikely(shim.audit))
			audit_raw(buf, n);
		return writer_raw(w, buf, n);
	}
	if (w->sink->message)
		return consume_message(w, buf, n);
	if (buf[n - 1] == '\n' && !(w->slot && (w->slot->len || w->slot->raw_partial)) &&
	    likely(thread_ctx.batch.wait_depth == 0) && !w->several_lines &&
	    line_format_escapes_whole(&shim.style, buf, n - 1)) {
		/* The write most lines come in: one whole line, outside an
		 * event loop (whose rules take the line's call chain once),
		 * escaped whole. The escaper meets any other newline in it,
		 * so the line is not searched for one first. */
		struct line_verdict v;
		judge(thread_ctx.request, &v);
		if (v.kind == EMIT) {
			enum emitted e = emit_line(w, v.request, buf, n - 1, true, n, true);
			if (e != EMIT_SPLIT) {
				if (e == EMIT_DONE && unlikely(shim.audit))
					audit_now(w, false, buf, n - 1);
				return e == EMIT_DONE;
			}
		}
	}
	const char *nl = memchr(buf, '\n', n);
	bool batch = is_batch(w, buf, n, nl);
	w->batch = batch;
	for (bool first = true; pos < n; first = false) {
		if (!first)
			nl = memchr(buf + pos, '\n', n - pos);
		size_t seg = nl ? (size_t)(nl - (buf + pos)) + 1 : n - pos;
		struct line_slot *s = w->slot;
		uint64_t request;

		if (s && s->raw_partial) {
			/* The rest of a line that went out as it came. */
			if (!writer_raw(w, buf + pos, seg))
				return false;
			s->raw_partial = !nl;
			pos += seg;
			continue;
		}

		if (!nl) {
			/* An unfinished line: keep it, behind a header for its
			 * record, until its newline comes. */
			/* Its bytes count as written now: the staged lines
			 * before them go out first, so that a failed write
			 * never counts later bytes and not earlier ones. */
			if (!writer_flush_apart(w))
				return false;
			if (!s)
				s = w->slot = claim_slot(w->sink);
			if (!s) {
				/* No slot to keep it in: it goes out now as a
				 * line of its own, and its rest will too. */
				struct line_verdict v;
				judge(thread_ctx.request, &v);
				if (emit_line_apart(w, v.kind == EMIT ? v.request : 0, buf + pos, seg,
						    seg) != EMIT_DONE)
					return false;
				if (unlikely(shim.audit))
					audit_now(w, false, buf + pos, seg);
				return true;
			}
			size_t at = s->len;
			if (!has_partial(s))
				s->partial_request = thread_ctx.request;
			if (has_partial(s) ? slot_append(s, buf + pos, seg)
					   : slot_append_record(s, buf + pos, seg)) {
				w->committed += seg;
				return true;
			}
			s->len = at;
			return give_up_partial(w, s, buf + pos, seg, false);
		}

		if (s && has_partial(s)) {
			/* Completes a line begun by earlier writes. */
			size_t before = s->len;
			if (!slot_append(s, buf + pos, seg)) {
				if (!give_up_partial(w, s, buf + pos, seg, true))
					return false;
				pos += seg;
				continue;
			}
			const char *line = s->buf + s->held_len + RECORD;
			size_t len = s->len - s->held_len - RECORD - 1;
			struct line_verdict v = {.kind = EMIT};
			if (!batch)
				judge(s->partial_request, &v);
			keep_order(s, &v);
			request = v.request;
			if (v.kind != EMIT) {
				if (!writer_flush_apart(w)) { /* as for an unfinished line */
					s->len = before;
					return false;
				}
				hold_record(s, s->held_len, v);
				w->committed += seg;
				cap_held(w, s);
			} else {
				if (!writer_line(w, request, line, len, true, seg) || !writer_flush_apart(w)) {
					s->len = before;
					return false;
				}
				if (unlikely(shim.audit))
					audit_now(w, batch, line, len);
				s->len = s->held_len;
			}
			pos += seg;
			continue;
		}

		struct line_verdict v;
		if (batch) {
			/* a batch's lines get ids only by naming */
			v = (struct line_verdict){.kind = EMIT};
		} else {
			judge(thread_ctx.request, &v);
		}
		keep_order(s, &v);
		request = v.request;
		if (v.kind != EMIT && seg < UINT32_MAX) {
			enum held_line held = hold_line(w, buf + pos, seg, &v);
			if (held == HOLD_FAILED)
				return false;
			if (held == HELD) {
				pos += seg;
				continue;
			}
			request = 0; /* cannot hold it: it goes out without an id */
		}
		if (emit_line_apart(w, request, buf + pos, seg - 1, seg) != EMIT_DONE)
			return false;
		if (unlikely(shim.audit))
			audit_now(w, batch, buf + pos, seg - 1);
		pos += seg;
	}
	return true;
}

/* Whether iov's buffers hold between them two newlines, or (no line
 * pending before them) one with bytes after it (is_batch). */
static bool several_lines(const struct iovec *iov, int iovcnt, bool pending)
{
	bool found = false;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue; /* its base may be NULL */
		const char *p = iov[i].iov_base, *end = p + iov[i].iov_len;
		if (found && (pending ? memchr(p, '\n', iov[i].iov_len) != NULL : p < end))
			return true;
		const char *nl = memchr(p, '\n', iov[i].iov_len);
		if (!nl)
			continue;
		if (nl + 1 < end && (!pending || memchr(nl + 1, '\n', (size_t)(end - nl - 1))))
			return true;
		found = true;
	}
	return false;
}

FORK_PATH ssize_t log_writev(const struct log_sink *sink, const struct iovec *iov, int iovcnt)
{
	struct writer w;
	int saved = errno;
	ctx_current();
	struct line_slot *s = find_slot(sink);
	if (s && !slot_lock_waiting(s)) {
		/* Process exit is flushing this thread's lines: stay out of it. */
		if (sink->use_send) {
			struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
			return real.sendmsg(sink->fd, &m, sink->send_flags);
		}
		return real.writev(sink->fd, iov, iovcnt);
	}
	if (s)
		slot_set_sink(s, sink);
	writer_init(&w, sink, OUTPUT_APP, s);
	w.several_lines = iovcnt > 1 && several_lines(iov, iovcnt, line_pending(&w));
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len && !consume(&w, iov[i].iov_base, iov[i].iov_len))
			break;
	writer_flush(&w);
	if (w.slot)
		slot_leave(w.slot);
	/* A short count after an error is a count for write(); a stream's
	 * caller reports it as an error (-1 and errno), as stdio would. */
	if (unlikely(w.error) && (w.committed == 0 || sink->stream)) {
		errno = w.error;
		return w.committed ? (ssize_t)w.committed : -1;
	}
	errno = saved;
	return (ssize_t)w.committed;
}

/* ---- pending lines ----------------------------------------------------- */

/* How slot_drain treats the unfinished line at the end of a slot. */
enum partial_line {
	PARTIAL_KEEP,     /* stays in the slot */
	PARTIAL_LINE,     /* goes out as a line of its own (at exit and exec
			     without a newline, as the program left it) */
	PARTIAL_ENDED,    /* the same, ended with a newline: its descriptor
			     is closed or replaced, and the program may write
			     the rest through a copy of the same file (PHP's
			     php://stderr is a dup of 2 closed at once), which
			     begins a line of its own: one physical line must
			     not hold two enriched lines */
	PARTIAL_PLAIN     /* goes out as it came: the program writes the rest
			     past the shim (`reqid detach`), or bytes reach
			     the descriptor past it (sendfile, splice) */
};

/* Writes a locked slot's held records (tagged if held under request) and
 * its unfinished line as partial says (a line of its own gets
 * partial_request's id). Write errors drop the lines: the application was
 * told long ago that they were written. */
static LOOP_PATH void slot_drain(struct line_slot *s, uint64_t request, enum partial_line partial,
		       uint64_t partial_request)
{
	struct writer w;
	bool with_partial = partial != PARTIAL_KEEP;
	writer_init(&w, &s->sink, OUTPUT_FINAL, s);
	writer_records(&w, s->buf, s->held_len, request);
	if ((partial == PARTIAL_LINE || partial == PARTIAL_ENDED) && s->raw_partial)
		writer_raw(&w, "\n", 1); /* ends the line that went out as it came */
	if (with_partial && has_partial(s)) {
		const char *line = s->buf + s->held_len + RECORD;
		size_t len = s->len - s->held_len - RECORD;
		if (partial == PARTIAL_PLAIN) {
			writer_raw(&w, line, len);
		} else if (writer_line(&w, partial_request, line, len,
				       partial == PARTIAL_ENDED && !s->sink.message, 0) &&
			   unlikely(shim.audit)) {
			audit_emitted(&w, s->partial_request, false, line, len);
		}
	}
	writer_flush(&w);
	if (with_partial) {
		s->len = 0;
		s->raw_partial = false; /* what follows begins a line of its own */
	} else {
		slot_drop_held(s, s->held_len);
	}
	s->held_len = 0;
}

/* The id the calling thread's unfinished line in s gets when forced out. */
static LOOP_PATH uint64_t own_partial_request(const struct line_slot *s)
{
	struct line_verdict v;
	judge(s->partial_request, &v);
	if (v.kind == HOLD_PROVEN && thread_ctx.batch.spoiled)
		return 0;
	return v.kind == EMIT || v.kind == HOLD_DECIDED || v.kind == HOLD_PROVEN ? v.request : 0;
}

/* Writes the records of count locked slots, merged by sequence number:
 * one writer at a time, flushed whenever the next line is for another fd.
 * written[k]: the bytes at the start of held[k] that went out (a record a
 * stream's busy lock kept is kept, with the id decided now, and so is what
 * comes after it there). */
static LOOP_PATH __attribute__((noinline)) void
write_merged(struct line_slot *const *held, unsigned count, size_t *written, uint64_t request)
{
	size_t next[THREAD_SLOTS_MAX] = {0};
	bool blocked[THREAD_SLOTS_MAX] = {false};
	struct writer w;
	struct line_slot *current = NULL;
	for (;;) {
		unsigned pick = count;
		struct held_record best = {0}, r;
		for (unsigned k = 0; k < count; k++) {
			if (next[k] >= held[k]->held_len)
				continue;
			memcpy(&r, held[k]->buf + next[k], RECORD);
			if (pick == count || (int32_t)(r.seq - best.seq) < 0) {
				pick = k;
				best = r;
			}
		}
		if (pick == count)
			break;
		if (current != held[pick]) {
			if (current)
				writer_flush(&w);
			current = held[pick];
			writer_init(&w, &current->sink, OUTPUT_BACKGROUND, current);
		}
		struct line_slot *s = current;
		bool sent = !blocked[pick];
		if (sent) {
			writer_records(&w, s->buf + next[pick], RECORD + best.len, request);
			/* A stream goes record by record: its lock may be busy. */
			sent = likely(!s->sink.stream) || writer_flush(&w) || w.error != EBUSY;
		}
		if (unlikely(!sent)) {
			/* Keep it, with the id decided now, for the next chance. */
			uint64_t owner = record_owner(&best);
			best.request = record_tag(&best, request, s->buf + next[pick] + RECORD,
						  best.len - 1, true) | DECIDED;
			best.site = owner;
			memcpy(s->buf + next[pick], &best, RECORD);
			blocked[pick] = true;
		} else {
			written[pick] = next[pick] + RECORD + best.len;
		}
		next[pick] += RECORD + best.len;
	}
	if (current)
		writer_flush(&w);
}

/* log_release_held; with plain_only, only the lines held for plain
 * descriptors: not those of syslog messages or stdio streams, whose
 * writing takes libc's locks (a close in a signal handler calls this). */
static LOOP_PATH __attribute__((noinline)) void
release_held_sinks(uint64_t request, bool plain_only)
{
	int saved = errno;
	struct line_slot *held[THREAD_SLOTS_MAX];
	size_t written[THREAD_SLOTS_MAX] = {0};
	unsigned count = 0;

	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (plain_only && (s->sink.message || s->sink.stream)) {
			/* Unlocked: a drain on another thread may be emptying it. */
			thread_ctx.held |= __atomic_load_n(&s->held_len, __ATOMIC_RELAXED) > 0;
			continue;
		}
		if (slot_lock_holding(s))
			held[count++] = s;
	}
	if (count == 1 && !held[0]->sink.stream) {
		/* One slot's records (an event loop's access log): their order
		 * is the slot's, and no stream lock can keep one back, so the
		 * merge would write them all, in place, with one writer. */
		struct line_slot *s = held[0];
		struct writer w;
		writer_init(&w, &s->sink, OUTPUT_BACKGROUND, s);
		records_out(&w, s->buf, s->held_len, request, true);
		writer_flush(&w);
		written[0] = s->held_len;
	} else if (count > 0) {
		write_merged(held, count, written, request);
	}
	for (unsigned k = 0; k < count; k++) {
		struct line_slot *s = held[k];
		slot_drop_held(s, written[k]);
		thread_ctx.held |= s->held_len > 0;
		slot_leave(s);
	}
	held_pin_drop();
	errno = saved;
}

LOOP_PATH void log_release_held(uint64_t request)
{
	release_held_sinks(request, false);
}

/* What a held record becomes once an event-loop rule has decided it. */
struct decision {
	uint64_t request;
	uintptr_t site;                 /* log_resolve_batch */
	const struct call_chain *chain; /* log_resolve_nested */
};

/* Rewrites each of the calling thread's held records in place: decide
 * returns whether it changed the record. */
static void rewrite_held(bool (*decide)(struct held_record *, const struct decision *),
			 const struct decision *d)
{
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (!slot_lock_holding(s))
			continue;
		for (size_t pos = 0; pos < s->held_len;) {
			struct held_record r;
			memcpy(&r, s->buf + pos, RECORD);
			if (decide(&r, d))
				memcpy(s->buf + pos, &r, RECORD);
			pos += RECORD + r.len;
		}
		slot_unlock(s);
	}
}

static bool decide_pending(struct held_record *r, const struct decision *d)
{
	if (!(r->request & BATCH_PENDING))
		return false;
	bool proven = d->request != 0 && d->site != 0 && r->site == d->site;
	r->request = proven ? d->request | BATCH_PROVEN : DECIDED;
	r->site = 0; /* no owner */
	return true;
}

void log_resolve_batch(uintptr_t site, uint64_t request)
{
	const struct decision d = {.request = request, .site = site};
	rewrite_held(decide_pending, &d);
}

static bool decide_nested(struct held_record *r, const struct decision *d)
{
	if (!(r->request & NESTED) || (r->request & DECIDED) || (r->request & ~NESTED) != d->request)
		return false;
	bool closed = d->chain->count > (int)r->depth &&
		      batch_nested_key(d->chain, (int)r->depth) == r->site;
	r->request = DECIDED | (closed ? d->request : 0);
	r->site = d->request; /* its owner */
	return true;
}

void log_resolve_nested(const struct call_chain *chain, uint64_t request)
{
	const struct decision d = {.request = request, .chain = chain};
	rewrite_held(decide_nested, &d);
}

void log_release_syslog(void)
{
	const struct log_sink sink = {.fd = SYSLOG_SLOT_FD, .message = MESSAGE_SYSLOG};
	struct line_slot *s = find_slot(&sink);
	if (s && slot_lock_holding(s)) {
		slot_drain(s, 0, PARTIAL_KEEP, 0);
		slot_leave(s);
	}
}

void log_flush_thread(void)
{
	int saved = errno;
	log_release_held(0);
	while (thread_ctx.slot_count > 0) {
		struct line_slot *s = &line_slots[thread_ctx.slots[0]];
		if (slot_lock_waiting(s)) {
			slot_drain(s, 0, PARTIAL_LINE, own_partial_request(s));
			slot_leave_for_good(s);
		} else {
			/* Exit is draining it: let go of it. */
			thread_ctx.slots[0] = thread_ctx.slots[--thread_ctx.slot_count];
		}
	}
	thread_ctx.held = false;
	held_pin_drop();
	errno = saved;
}

/* Drains every owned slot that matches fd (any fd when fd < 0). With
 * what it calls, LOOP_PATH: a fork server's child that drains its lines at
 * exit finds them in the windows its parent's fork copied (fork_hot.h). */
static LOOP_PATH void drain_all(int fd, enum partial_line partial)
{
	if (!STATE_WAS_MADE(MADE_SLOTS))
		return; /* no slot was ever claimed: its pages stay untouched */
	int32_t tid = ctx_tid();
	unsigned used = atomic_load_explicit(&slots_used, memory_order_acquire);
	for (unsigned i = 0; i < used; i++) {
		struct line_slot *s = &line_slots[i];
		int32_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
		if (owner == 0 || (fd >= 0 && __atomic_load_n(&s->fd, __ATOMIC_RELAXED) != fd) ||
		    !slot_lock(s))
			continue;
		if (fd >= 0 && s->fd != fd) { /* taken for another fd meanwhile */
			slot_unlock(s);
			continue;
		}
		if (s->len > 0 || s->raw_partial)
			slot_drain(s, 0, partial, owner == tid ? own_partial_request(s) : 0);
		if (owner == tid)
			slot_leave_for_good(s);
		else
			slot_unlock(s);
	}
}

/* Whether the calling thread has bytes pending for fd. */
static __attribute__((noinline, cold)) bool thread_pending_for(int fd)
{
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		const struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (s->fd == fd && (__atomic_load_n(&s->len, __ATOMIC_RELAXED) > 0 ||
				    __atomic_load_n(&s->raw_partial, __ATOMIC_RELAXED)))
			return true;
	}
	return false;
}

/* The calling thread's lines held for plain descriptors go out now, with
 * the ids decided so far (log_flush_fd). */
static __attribute__((noinline, cold)) void release_before_close(void)
{
	thread_ctx.held = false;
	thread_ctx.in_shim = true;
	release_held_sinks(0, true);
	thread_ctx.in_shim = false;
}

static inline __attribute__((always_inline)) void flush_fd(int fd, enum partial_line partial)
{
	int saved = errno;
	/* What the thread holds for other descriptors came before what it has
	 * for fd, which goes out now: it goes out first, in order (with the
	 * ids decided so far), as a copy of the same log would have it. Plain
	 * descriptors' lines only: a signal handler may be closing fd. */
	if (unlikely(thread_ctx.held) && !thread_ctx.in_shim && thread_pending_for(fd))
		release_before_close();
	drain_all(fd, partial);
	/* A descriptor that stays open (bytes reach it past the shim) keeps
	 * what is queued behind a full pipe: paid if it can be now, never
	 * waited for (its writes may not block) nor dropped, as a closed
	 * one's is after a second. */
	if (partial == PARTIAL_PLAIN)
		log_output_pay(fd);
	else
		log_output_settle(fd);
	errno = saved;
}

FORK_PATH void log_flush_fd(int fd)
{
	flush_fd(fd, PARTIAL_ENDED);
}

void log_flush_fd_plain(int fd)
{
	flush_fd(fd, PARTIAL_PLAIN);
}

static LOOP_PATH void flush_all(enum partial_line partial)
{
	int saved = errno;
	log_release_held(0);
	drain_all(-1, partial);
	thread_ctx.held = false;
	held_pin_drop();
	log_output_settle_all();
	errno = saved;
}

LOOP_PATH void log_flush_all(void)
{
	atomic_store_explicit(&exit_draining, true, memory_order_relaxed);
	flush_all(PARTIAL_LINE);
}

void log_flush_all_plain(void)
{
	flush_all(PARTIAL_PLAIN);
}

/* Slots claimed at least once (a process that never claimed one walks
 * none). */
static inline unsigned slots_ever_used(void)
{
	return STATE_WAS_MADE(MADE_SLOTS) ? atomic_load_explicit(&slots_used, memory_order_relaxed)
					  : 0;
}

void log_release_free_slots(void)
{
	unsigned used = slots_ever_used();
	int32_t tid = ctx_tid();
	for (unsigned i = 0; i < used; i++) {
		struct line_slot *s = &line_slots[i];
		/* A free slot with no buffers has nothing to give back: left
		 * unwritten, its page stays untouched (claims spread over the
		 * first CLAIM_SPREAD slots, a few pages of which most are
		 * never claimed). One claimed right after this read is the
		 * claimer's, as one claimed after the loop is. */
		if (atomic_load_explicit(&s->owner, memory_order_acquire) == 0 && !s->buf &&
		    !s->scratch)
			continue;
		/* A free slot is claimed meanwhile, so that none is taken; one
		 * a thread keeps (slot_leave) is used under its lock only, and
		 * its buffers stay mapped: only their pages go. */
		int32_t expected = 0;
		bool claimed = atomic_compare_exchange_strong(&s->owner, &expected, tid);
		if (slot_lock(s)) {
			if (s->len == 0 && s->held_len == 0) {
				buffer_release(s->buf, s->cap);
				buffer_release(s->scratch, s->scratch_cap);
			}
			slot_unlock(s);
		}
		if (claimed)
			atomic_store_explicit(&s->owner, 0, memory_order_release);
	}
}

/* In a forked child: only slots something holds are written, so the pages
 * of free ones stay shared with the parent. */
void log_forget_all(void)
{
	unsigned used = slots_ever_used();
	for (unsigned i = 0; i < used; i++) {
		struct line_slot *s = &line_slots[i];
		if (!atomic_load_explicit(&s->owner, memory_order_relaxed) &&
		    !atomic_load_explicit(&s->busy, memory_order_relaxed) && !s->len && !s->held_len)
			continue;
		atomic_store_explicit(&s->owner, 0, memory_order_relaxed);
		atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
		s->len = 0;
		s->held_len = 0;
		s->raw_partial = false;
	}
	thread_ctx.slot_count = 0;
	thread_ctx.held = false;
	thread_ctx.held_pin = 0; /* a pin in the parent's table, copied */
	thread_ctx.tid = 0;
	log_output_forget_all();
}
