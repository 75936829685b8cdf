/*
 * log_writer.c - line assembly, holding and enriched output for log fds.
 *
 * A line slot belongs to one (thread, fd) pair and keeps, in one mmap'ed
 * buffer, the lines held for a bracket followed by the unfinished line.
 * Slots live in a fixed table; a thread remembers its own few in TLS. The
 * owner works on a slot under its busy flag, so process exit can flush the
 * slots of threads that are still running without tearing a line.
 *
 * Must never call malloc or stdio, never take a lock, and never report to the
 * application a count of bytes that differs from what reached the kernel
 * other than by whole pending lines (see log_writer.h).
 */
#include "log_writer.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "line_format.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

#define LINE_SLOTS 1024
#define STAGE_SIZE 2048
#define EAGAIN_WAIT_MS 1000

struct line_slot {
	_Atomic int32_t owner;   /* tid; 0 when free */
	_Atomic uint32_t busy;
	int fd;
	uint64_t partial_request; /* the thread's request when the partial line began */
	size_t held_len;          /* complete lines at the start of buf */
	size_t len;               /* held lines + the unfinished line */
	char *buf;
	size_t cap;
	char *scratch;            /* room to format lines too long for the stage */
	size_t scratch_cap;
};

static struct line_slot line_slots[LINE_SLOTS];

/* ---- buffers ----------------------------------------------------------- */

static bool reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t size = 4096;
	while (size < need) {
		if (size > SIZE_MAX / 2)
			return false;
		size *= 2;
	}
	void *p = *buf ? mremap(*buf, *cap, size, MREMAP_MAYMOVE)
		       : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	*buf = p;
	*cap = size;
	return true;
}

/* ---- slots ------------------------------------------------------------- */

static int32_t current_tid(void)
{
	if (thread_ctx.tid == 0)
		thread_ctx.tid = (int32_t)syscall(SYS_gettid);
	return thread_ctx.tid;
}

static bool slot_lock(struct line_slot *s)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&s->busy, &expected, 1,
						       memory_order_acquire, memory_order_relaxed);
}

static void slot_unlock(struct line_slot *s)
{
	atomic_store_explicit(&s->busy, 0, memory_order_release);
}

static struct line_slot *find_slot(int fd)
{
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (s->fd == fd)
			return s;
	}
	return NULL;
}

static struct line_slot *claim_slot(int fd)
{
	if (thread_ctx.slot_count == THREAD_SLOTS_MAX)
		return NULL;
	int32_t tid = current_tid();
	unsigned start = ((unsigned)tid * 31u + (unsigned)fd) % LINE_SLOTS;
	for (unsigned k = 0; k < LINE_SLOTS; k++) {
		unsigned i = (start + k) % LINE_SLOTS;
		struct line_slot *s = &line_slots[i];
		int32_t expected = 0;
		if (atomic_load_explicit(&s->owner, memory_order_relaxed) != 0 ||
		    !atomic_compare_exchange_strong(&s->owner, &expected, tid))
			continue;
		s->fd = fd;
		s->len = 0;
		s->held_len = 0;
		atomic_store_explicit(&s->busy, 1, memory_order_relaxed); /* caller is writing */
		thread_ctx.slots[thread_ctx.slot_count++] = (uint16_t)i;
		return s;
	}
	return NULL;
}

/* ---- output ------------------------------------------------------------ */

static ssize_t sink_write(const struct log_sink *sink, const char *b, size_t n)
{
	if (sink->use_send)
		return real.send(sink->fd, b, n, sink->send_flags);
	return real.write(sink->fd, b, n);
}

/* Writes all n bytes. Returns n, or the bytes written before an error (0
 * with errno set when nothing went out). Once part of a line is out, the
 * rest is finished through EINTR and EAGAIN so no line is torn. */
static size_t write_all(const struct log_sink *sink, const char *b, size_t n)
{
	size_t off = 0;
	int waited_ms = 0;
	while (off < n) {
		ssize_t r = sink_write(sink, b + off, n - off);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0) {
			errno = EIO;
			return off;
		}
		if (off == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == EWOULDBLOCK) && waited_ms < EAGAIN_WAIT_MS) {
			struct pollfd p = {.fd = sink->fd, .events = POLLOUT};
			real.poll(&p, 1, 100);
			waited_ms += 100;
			continue;
		}
		return off;
	}
	return off;
}

/* One call's output: enriched lines gathered in a stage so that several
 * short lines leave in one write of at most STAGE_SIZE bytes. */
struct writer {
	const struct log_sink *sink;
	struct line_slot *slot;    /* this thread's slot for sink->fd, if any */
	size_t committed;          /* input bytes whose output is out or buffered */
	size_t staged_input;       /* input bytes whose output sits in the stage */
	size_t staged;
	int error;                 /* errno of a failed write, 0 if none */
	uint64_t id_request;       /* cached id text for this request serial */
	size_t id_len;
	char id[REQUEST_ID_MAX];
	char stage[STAGE_SIZE];
};

static void writer_init(struct writer *w, const struct log_sink *sink)
{
	w->sink = sink;
	w->slot = find_slot(sink->fd);
	w->committed = 0;
	w->staged_input = 0;
	w->staged = 0;
	w->error = 0;
	w->id_request = UINT64_MAX;
	w->id_len = 0;
}

/* The id text for a request serial (0: outside any request). */
static void writer_id(struct writer *w, uint64_t request)
{
	if (w->id_request == request)
		return;
	w->id_request = request;
	w->id_len = request ? request_table_get(request, w->id) : 0;
	if (w->id_len == 0 && shim.config.outside_len) {
		memcpy(w->id, shim.config.outside, shim.config.outside_len);
		w->id_len = shim.config.outside_len;
	}
}

/* Writes the stage out. False if nothing of it went out (w->error set). */
static bool writer_flush(struct writer *w)
{
	if (w->staged == 0)
		return true;
	size_t out = write_all(w->sink, w->stage, w->staged);
	if (out == 0) {
		w->error = errno;
		w->staged = 0;
		w->staged_input = 0;
		return false;
	}
	w->committed += w->staged_input;
	w->staged = 0;
	w->staged_input = 0;
	return true;
}

/* Emits one line (without its newline; newline says whether it had one),
 * accounting input bytes of this call. False when the line did not go out. */
static bool writer_line(struct writer *w, uint64_t request, const char *line, size_t len,
			bool newline, size_t input)
{
	writer_id(w, request);
	size_t bound = line_format_bound(&shim.style, len, w->id_len) + 1;
	if (bound > STAGE_SIZE - w->staged && !writer_flush(w))
		return false;
	if (bound <= STAGE_SIZE) {
		size_t n = line_format(&shim.style, w->id, w->id_len, line, len, w->stage + w->staged);
		if (newline)
			w->stage[w->staged + n++] = '\n';
		w->staged += n;
		w->staged_input += input;
		return true;
	}
	/* Too long for the stage: format into the slot's scratch, one write. */
	const char *out = line;
	size_t n = len + newline;
	if (!w->slot)
		w->slot = claim_slot(w->sink->fd);
	if (w->slot && reserve(&w->slot->scratch, &w->slot->scratch_cap, bound)) {
		n = line_format(&shim.style, w->id, w->id_len, line, len, w->slot->scratch);
		if (newline)
			w->slot->scratch[n++] = '\n';
		out = w->slot->scratch;
	}
	/* Without scratch the line goes out as it came: unenriched, not lost. */
	if (write_all(w->sink, out, n) == 0) {
		w->error = errno;
		return false;
	}
	w->committed += input;
	return true;
}

/* ---- attribution ------------------------------------------------------- */

enum verdict { EMIT, HOLD };

/* What a complete line gets: started_request is the context when its first
 * byte was written (the current one for a line written whole). */
static enum verdict judge(uint64_t started_request, uint64_t *request)
{
	*request = 0;
	if (started_request != thread_ctx.request)
		return EMIT;
	if (thread_ctx.mode == CTX_BRACKET)
		return HOLD;
	*request = ctx_certain_request();
	return EMIT;
}

static bool slot_append(struct line_slot *s, const char *b, size_t n)
{
	if (n > SIZE_MAX - s->len || !reserve(&s->buf, &s->cap, s->len + n))
		return false;
	memcpy(s->buf + s->len, b, n);
	s->len += n;
	return true;
}

static void mark_held(void)
{
	thread_ctx.held = true;
}

/* No buffer room for a line: its bytes go out as they came, unenriched but
 * not lost, after what is staged. */
static bool writer_raw(struct writer *w, const char *b, size_t n)
{
	if (!writer_flush(w))
		return false;
	if (write_all(w->sink, b, n) == 0) {
		w->error = errno;
		return false;
	}
	w->committed += n;
	return true;
}

/* Consumes one run of input bytes. False when output failed: stop there. */
static bool consume(struct writer *w, const char *buf, size_t n)
{
	size_t pos = 0;
	while (pos < n) {
		const char *nl = memchr(buf + pos, '\n', n - pos);
		size_t seg = nl ? (size_t)(nl - (buf + pos)) + 1 : n - pos;
		struct line_slot *s = w->slot;
		bool continues = s && s->len > s->held_len;
		uint64_t request;

		if (!nl) {
			/* An unfinished line: keep it until its newline comes. */
			if (!s)
				s = w->slot = claim_slot(w->sink->fd);
			if (s && !continues)
				s->partial_request = thread_ctx.request;
			if (s && slot_append(s, buf + pos, seg)) {
				w->committed += seg;
				return true;
			}
			return writer_raw(w, buf + pos, seg);
		}

		if (continues) {
			/* Completes a line begun by earlier writes. */
			size_t before = s->len;
			if (!slot_append(s, buf + pos, seg)) {
				if (!writer_raw(w, buf + pos, seg))
					return false;
				pos += seg;
				continue;
			}
			if (judge(s->partial_request, &request) == HOLD) {
				s->held_len = s->len;
				mark_held();
				w->committed += seg;
			} else {
				const char *line = s->buf + s->held_len;
				size_t len = s->len - s->held_len - 1;
				if (!writer_line(w, request, line, len, true, seg) || !writer_flush(w)) {
					s->len = before;
					return false;
				}
				s->len = s->held_len;
			}
			pos += seg;
			continue;
		}

		if (judge(thread_ctx.request, &request) == HOLD) {
			if (!s)
				s = w->slot = claim_slot(w->sink->fd);
			if (s && slot_append(s, buf + pos, seg)) {
				s->held_len = s->len;
				mark_held();
				w->committed += seg;
				pos += seg;
				continue;
			}
			request = 0; /* cannot hold it: it goes out without an id */
		}
		if (!writer_line(w, request, buf + pos, seg - 1, true, seg))
			return false;
		pos += seg;
	}
	return true;
}

static ssize_t writer_finish(struct writer *w)
{
	writer_flush(w);
	if (w->committed == 0 && w->error) {
		errno = w->error;
		return -1;
	}
	return (ssize_t)w->committed;
}

/* Takes the thread's slot for the writer's fd. False if process exit is
 * flushing it right now: the caller then passes the bytes through. */
static bool writer_enter(struct writer *w)
{
	return !w->slot || slot_lock(w->slot);
}

static void writer_leave(struct writer *w)
{
	if (w->slot)
		slot_unlock(w->slot);
}

ssize_t log_writev(const struct log_sink *sink, const struct iovec *iov, int iovcnt)
{
	struct writer w;
	int saved = errno;
	writer_init(&w, sink);
	if (!writer_enter(&w))
		return sink->use_send ? real.sendmsg(sink->fd, &(struct msghdr){
						.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt},
					      sink->send_flags)
				      : real.writev(sink->fd, iov, iovcnt);
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len && !consume(&w, iov[i].iov_base, iov[i].iov_len))
			break;
	ssize_t r = writer_finish(&w);
	writer_leave(&w);
	if (r >= 0)
		errno = saved;
	return r;
}

ssize_t log_write(const struct log_sink *sink, const void *buf, size_t n)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	return log_writev(sink, &iov, 1);
}

/* ---- pending lines ----------------------------------------------------- */

/* Writes a slot's held lines with request's id (0: none) and, if
 * with_partial, its unfinished line with partial_request's id. The caller
 * holds the slot's busy flag. Write errors drop the lines: the application
 * was told long ago that they were written. */
static void slot_drain(struct line_slot *s, uint64_t request, bool with_partial,
		       uint64_t partial_request)
{
	const struct log_sink sink = {.fd = s->fd};
	struct writer w;
	writer_init(&w, &sink);
	w.slot = s;
	size_t pos = 0;
	while (pos < s->held_len) {
		const char *nl = memchr(s->buf + pos, '\n', s->held_len - pos);
		size_t len = (size_t)(nl - (s->buf + pos));
		writer_line(&w, request, s->buf + pos, len, true, len + 1);
		pos += len + 1;
	}
	if (with_partial && s->len > s->held_len)
		writer_line(&w, partial_request, s->buf + s->held_len, s->len - s->held_len,
			    false, s->len - s->held_len);
	writer_flush(&w);
	if (with_partial) {
		s->len = 0;
	} else {
		memmove(s->buf, s->buf + s->held_len, s->len - s->held_len);
		s->len -= s->held_len;
	}
	s->held_len = 0;
}

/* The id the calling thread's unfinished line in s gets when forced out. */
static uint64_t own_partial_request(const struct line_slot *s)
{
	uint64_t request;
	if (judge(s->partial_request, &request) == HOLD)
		return 0;
	return request;
}

void log_release_held(uint64_t request)
{
	int saved = errno;
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (s->held_len == 0 || !slot_lock(s))
			continue;
		slot_drain(s, request, false, 0);
		slot_unlock(s);
	}
	errno = saved;
}

void log_flush_thread(void)
{
	int saved = errno;
	for (uint8_t i = 0; i < thread_ctx.slot_count; i++) {
		struct line_slot *s = &line_slots[thread_ctx.slots[i]];
		if (!slot_lock(s))
			continue;
		slot_drain(s, 0, true, own_partial_request(s));
		atomic_store_explicit(&s->owner, 0, memory_order_release);
		slot_unlock(s);
	}
	thread_ctx.slot_count = 0;
	thread_ctx.held = false;
	errno = saved;
}

/* Drains every owned slot that matches fd (any fd when fd < 0). */
static void drain_all(int fd)
{
	int32_t tid = current_tid();
	for (unsigned i = 0; i < LINE_SLOTS; i++) {
		struct line_slot *s = &line_slots[i];
		int32_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
		if (owner == 0 || (fd >= 0 && s->fd != fd) || !slot_lock(s))
			continue;
		if (s->len > 0)
			slot_drain(s, 0, true, owner == tid ? own_partial_request(s) : 0);
		slot_unlock(s);
	}
}

void log_flush_fd(int fd)
{
	int saved = errno;
	drain_all(fd);
	errno = saved;
}

void log_flush_all(void)
{
	int saved = errno;
	drain_all(-1);
	thread_ctx.held = false;
	errno = saved;
}

void log_forget_all(void)
{
	for (unsigned i = 0; i < LINE_SLOTS; i++) {
		struct line_slot *s = &line_slots[i];
		atomic_store_explicit(&s->owner, 0, memory_order_relaxed);
		atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
		s->len = 0;
		s->held_len = 0;
	}
	thread_ctx.slot_count = 0;
	thread_ctx.held = false;
	thread_ctx.tid = 0;
}
