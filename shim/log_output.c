/*
 * log_output.c - backlogs of enriched output for full non-blocking log
 * descriptors (see log_output.h).
 *
 * A small fixed table of backlogs, each claimed for one fd by CAS and worked
 * on under a try-lock; buffers are mmap'ed and kept. The common case (no
 * backlog anywhere) costs one atomic load per write. Must never block beyond
 * the bounded waits of log_output_settle, and never reorder bytes within
 * one descriptor.
 */
#include "log_output.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "fork_hot.h"
#include "large_table.h"
#include "map_once.h"
#include "raw_syscall.h"
#include "shim_init.h"

#define BACKLOGS 16
#define SETTLE_MS 1000

struct backlog {
	_Atomic int32_t fd1;     /* fd + 1; 0 when free */
	_Atomic uint32_t busy;
	struct log_sink sink;
	char *buf;
	size_t cap;
	size_t off;              /* bytes of buf already written */
	size_t len;
	char before;             /* the byte written before buf ('\n' if none) */
};

static struct backlog backlogs[BACKLOGS] LARGE_TABLE;
/* Backlogs in use, plus one once dying: nonzero sends writes the long way.
 * Read for every line: FORK_HOT, on the page a fork child writes anyway, so
 * a child's first line does not fault in a page of its own to read it. */
_Atomic uint32_t output_attention FORK_HOT;

#define DYING_BUDGET_MS 200
static _Atomic bool dying FORK_HOT;
static _Atomic int dying_budget_ms = DYING_BUDGET_MS;

void log_output_dying(void)
{
	if (!atomic_exchange(&dying, true)) {
		STATE_MADE(MADE_BACKLOGS);
		atomic_fetch_add(&output_attention, 1);
	}
}

/* While dying: waits for room on fd within what is left of the budget. */
static bool dying_room(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int budget = atomic_load(&dying_budget_ms);
	if (budget <= 0)
		return real.poll(&p, 1, 0) == 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool ready = real.poll(&p, 1, budget) == 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int spent = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	atomic_fetch_sub(&dying_budget_ms, spent);
	return ready;
}

static size_t dying_output(const struct log_sink *sink, const char *b, size_t n)
{
	size_t off = 0;
	while (off < n && !sink->message && dying_room(sink->fd)) {
		ssize_t r = real.write(sink->fd, b + off, n - off);
		if (r > 0)
			off += (size_t)r;
		else if (r < 0 && errno != EINTR && errno != EAGAIN)
			break;
	}
	return n; /* what does not fit is dropped: the process is going */
}

static bool backlog_lock(struct backlog *q)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&q->busy, &expected, 1,
						       memory_order_acquire, memory_order_relaxed);
}

static void backlog_unlock(struct backlog *q)
{
	atomic_store_explicit(&q->busy, 0, memory_order_release);
}

static struct backlog *find_backlog(int fd)
{
	if (atomic_load_explicit(&output_attention, memory_order_acquire) == 0)
		return NULL;
	for (int i = 0; i < BACKLOGS; i++)
		if (atomic_load_explicit(&backlogs[i].fd1, memory_order_acquire) == fd + 1)
			return &backlogs[i];
	return NULL;
}

static ssize_t sink_write(const struct log_sink *sink, const char *b, size_t n)
{
	if (sink->use_send)
		return real.send(sink->fd, b, n, sink->send_flags);
	return real.write(sink->fd, b, n);
}

/* ---- torn lines ---------------------------------------------------------
 * An error (a full disk, a file over its size limit) that cuts output
 * inside a line leaves a torn line at the end of the file. The next output
 * to that descriptor begins with a newline, so that no later line is
 * glued to the torn one: the file stays a file of lines. A few descriptors
 * at a time; past that, a torn line is left as it is. A fork child keeps
 * them too: in a regular file, whoever writes first ends the line, and the
 * other finds it ended (the byte before its write is a newline). */

#define TORN_MAX 8

static _Atomic int32_t torn_fd1[TORN_MAX]; /* fd + 1; 0 when free */

/* The torn_fd1 entry of fd, or -1. */
static int torn_index(int fd)
{
	for (int i = 0; i < TORN_MAX; i++)
		if (atomic_load_explicit(&torn_fd1[i], memory_order_relaxed) == fd + 1)
			return i;
	return -1;
}

/* Entry i no longer names fd's torn line. */
static void torn_clear(int i, int fd)
{
	int32_t fd1 = fd + 1;
	if (atomic_compare_exchange_strong(&torn_fd1[i], &fd1, 0))
		atomic_fetch_sub_explicit(&output_attention, 1, memory_order_release);
}

/* Output to fd stopped after byte last of a line. */
static void note_torn(int fd, char last)
{
	if (last == '\n' || torn_index(fd) >= 0)
		return;
	STATE_MADE(MADE_BACKLOGS); /* a fork child recounts its attention */
	for (int i = 0; i < TORN_MAX; i++) {
		int32_t expected = 0;
		if (atomic_compare_exchange_strong(&torn_fd1[i], &expected, fd + 1)) {
			atomic_fetch_add_explicit(&output_attention, 1, memory_order_release);
			return;
		}
	}
}

/* Whether the byte before where the next write to fd goes is a newline: a
 * regular file whose torn line another process (a fork child, its parent)
 * or thread has ended already. */
static bool ended_already(int fd)
{
	struct stat st;
	if (raw_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	int fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
	off_t at = fl >= 0 && (fl & O_APPEND) ? st.st_size : raw_syscall3(SYS_lseek, fd, 0, SEEK_CUR);
	if (at <= 0)
		return false;
	/* a log is often open for writing only: read it through a new
	 * descriptor (raw calls: the shim's own open must not be taken for
	 * the program's) */
	char path[32], last;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int rd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (rd < 0)
		return false;
	bool ended = syscall(SYS_pread64, rd, &last, 1, at - 1) == 1 && last == '\n';
	syscall(SYS_close, rd);
	return ended;
}

/* Ends sink's torn line, entry i: false (errno set) if the newline could
 * not be written. */
static bool end_torn(const struct log_sink *sink, int i)
{
	ssize_t r = 1;
	if (!ended_already(sink->fd)) {
		do
			r = sink_write(sink, "\n", 1);
		while (r < 0 && errno == EINTR);
	}
	if (r != 1) {
		if (r == 0)
			errno = EIO;
		return false;
	}
	torn_clear(i, sink->fd);
	return true;
}

/* Before output to sink's fd: ends its torn line, if it has one. False
 * (errno set) if the newline could not be written: nothing may go out
 * after the torn line until it can. */
static bool mend_torn(const struct log_sink *sink)
{
	int i = torn_index(sink->fd);
	return i < 0 || end_torn(sink, i);
}

/* fd is closed or replaced: its torn line is ended if the file takes a
 * newline now, and forgotten. */
static void forget_torn(int fd)
{
	struct log_sink sink = {.fd = fd};
	int i = torn_index(fd);
	if (i >= 0 && !end_torn(&sink, i))
		torn_clear(i, fd);
}

/* Converts bytes (multibyte text in the locale) back to wide characters for
 * a wide-oriented stream. Returns the bytes written. */
static size_t wide_write(FILE *f, const char *b, size_t n)
{
	wchar_t chunk[256];
	mbstate_t state = {0};
	size_t done = 0;
	while (done < n) {
		const char *src = b + done;
		size_t got = mbsnrtowcs(chunk, &src, n - done, 255, &state);
		if (got == (size_t)-1)
			return done;
		if (src == NULL) { /* stopped at a NUL byte */
			chunk[got] = L'\0';
			if ((real.fputws_unlocked)(chunk, f) < 0 || (real.fputwc_unlocked)(L'\0', f) == WEOF)
				return done;
			done += strlen(b + done) + 1;
			continue;
		}
		chunk[got] = L'\0';
		if ((real.fputws_unlocked)(chunk, f) < 0)
			return done;
		done = (size_t)(src - b);
	}
	return done;
}

/* One message: "<pri>text" for syslog(), a datagram for the syslog socket. */
static size_t message_output(const struct log_sink *sink, const char *b, size_t n)
{
	if (sink->message == MESSAGE_DATAGRAM) {
		ssize_t r = real.sendto(sink->fd, b, n, sink->send_flags, sink->addr, sink->addr_len);
		return r < 0 ? 0 : n;
	}
	int pri = 0;
	size_t i = 1;
	while (i < n && b[i] >= '0' && b[i] <= '9')
		pri = pri * 10 + (b[i++] - '0');
	if (n < 2 || b[0] != '<' || i >= n || b[i] != '>')
		return 0;
	real.syslog(pri, "%.*s", (int)(n - i - 1), b + i + 1);
	return n;
}

/* glibc's FILE flag for a stream's error indicator (libio.h). */
#define STREAM_ERR_SEEN 0x0020

/* Into the stream's buffer, under its lock: the caller's (an application
 * call in progress) or taken here for the shim's own lines (if another
 * thread holds it, the lines go straight to the fd). */
static size_t stream_output(const struct log_sink *sink, const char *b, size_t n,
			    enum output_mode mode)
{
	FILE *f = sink->stream;
	if (mode != OUTPUT_APP) {
		bool locked = ftrylockfile(f) == 0;
		for (int spin = 0; !locked && mode == OUTPUT_FINAL && spin < 1000; spin++) {
			raw_sched_yield();
			locked = ftrylockfile(f) == 0;
		}
		if (!locked && mode == OUTPUT_BACKGROUND) {
			errno = EBUSY;
			return 0;
		}
		if (!locked) {
			struct log_sink direct = {.fd = sink->fd};
			return log_output(&direct, b, n, mode);
		}
	}
	/* glibc's fwrite reports a whole count when the flush it makes after
	 * a line (line-buffered) fails: the stream's error flag, cleared for
	 * the call and then put back as it was, tells. */
	int had_error = f->_flags & STREAM_ERR_SEEN;
	f->_flags &= ~STREAM_ERR_SEEN;
	size_t written = sink->wide ? wide_write(f, b, n) : (real.fwrite_unlocked)(b, 1, n, f);
	bool failed = f->_flags & STREAM_ERR_SEEN;
	f->_flags |= had_error;
	if (failed && written == n)
		written = 0;
	if (!sink->wide)
		stdio_note_write(f);
	if (mode != OUTPUT_APP)
		real.funlockfile(f);
	return written;
}

LOOP_PATH bool buffer_reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t size = *cap ? *cap : 4096;
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

void buffer_release(char *buf, size_t cap)
{
	if (buf)
		table_release(buf, cap);
}

static bool append(struct backlog *q, const char *b, size_t n)
{
	if (q->off > 0 && q->off == q->len)
		q->off = q->len = 0;
	if (n > SIZE_MAX - q->len || !buffer_reserve(&q->buf, &q->cap, q->len + n))
		return false;
	memcpy(q->buf + q->len, b, n);
	q->len += n;
	return true;
}

/* Writes as much of the backlog as the fd takes now. True when empty. */
static bool pay(struct backlog *q)
{
	while (q->off < q->len) {
		ssize_t r = sink_write(&q->sink, q->buf + q->off, q->len - q->off);
		if (r > 0) {
			q->off += (size_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return false;
		} else {
			/* a real error: the rest cannot be written */
			note_torn(q->sink.fd, q->off ? q->buf[q->off - 1] : q->before);
			q->off = q->len;
		}
	}
	return true;
}

/* Frees a backlog the caller holds locked and found empty. */
static void release(struct backlog *q)
{
	q->off = q->len = 0;
	atomic_store_explicit(&q->fd1, 0, memory_order_release);
	atomic_fetch_sub_explicit(&output_attention, 1, memory_order_release);
	backlog_unlock(q);
}

/* Writes what the locked backlog q takes now, then frees it if that
 * emptied it (true), or unlocks it. */
static bool pay_and_unlock(struct backlog *q)
{
	if (pay(q)) {
		release(q);
		return true;
	}
	backlog_unlock(q);
	return false;
}

/* Queues b behind a new backlog for sink's fd; before is the byte written
 * just before b. False if no backlog is free. */
static bool start_backlog(const struct log_sink *sink, const char *b, size_t n, char before)
{
	STATE_MADE(MADE_BACKLOGS); /* before the claim: a fork in between resets it */
	fatal_signal_flush_ensure();
	for (int i = 0; i < BACKLOGS; i++) {
		struct backlog *q = &backlogs[i];
		int32_t expected = 0;
		if (atomic_load_explicit(&q->fd1, memory_order_relaxed) != 0 ||
		    !atomic_compare_exchange_strong(&q->fd1, &expected, sink->fd + 1))
			continue;
		if (!backlog_lock(q)) {
			atomic_store(&q->fd1, 0);
			continue;
		}
		atomic_fetch_add_explicit(&output_attention, 1, memory_order_release);
		q->sink = *sink;
		q->off = q->len = 0;
		q->before = before;
		if (!append(q, b, n)) {
			release(q);
			return false;
		}
		backlog_unlock(q);
		return true;
	}
	return false;
}

/* Last resort when no backlog is free: wait for room, up to SETTLE_MS. */
static size_t wait_and_write(const struct log_sink *sink, const char *b, size_t n, size_t off)
{
	for (int waited = 0; off < n && waited < SETTLE_MS; waited += 10) {
		struct pollfd p = {.fd = sink->fd, .events = POLLOUT};
		real.poll(&p, 1, 10);
		ssize_t r = sink_write(sink, b + off, n - off);
		if (r > 0)
			off += (size_t)r;
		else if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			break;
	}
	return off;
}

/* Older bytes wait for the fd: they go first. Returns true when the caller
 * may write now; otherwise *result is what log_output returns. */
static bool behind_backlog(struct backlog *q, const struct log_sink *sink, const char *b,
			   size_t n, enum output_mode mode, size_t *result)
{
	if (!backlog_lock(q)) {
		errno = EAGAIN;
		*result = 0;
		return false;
	}
	if (pay(q)) {
		release(q);
		return true;
	}
	if (mode == OUTPUT_BACKGROUND) {
		bool queued = append(q, b, n);
		backlog_unlock(q);
		*result = queued ? n : wait_and_write(sink, b, n, 0);
		return false;
	}
	backlog_unlock(q);
	errno = EAGAIN;
	*result = 0;
	return false;
}

size_t log_output_slow(const struct log_sink *sink, const char *b, size_t n, enum output_mode mode,
		       ssize_t first)
{
	size_t off = 0, result;
	ssize_t r = first;
	if (first == OUTPUT_NOT_TRIED) {
		if (unlikely(atomic_load_explicit(&dying, memory_order_relaxed)))
			return dying_output(sink, b, n);
		if (!sink->message &&
		    unlikely(atomic_load_explicit(&output_attention, memory_order_acquire) != 0) &&
		    !mend_torn(sink))
			return 0;
		if (sink->stream)
			return stream_output(sink, b, n, mode);
		if (sink->message)
			return message_output(sink, b, n);
		if (unlikely(atomic_load_explicit(&output_attention, memory_order_acquire) != 0)) {
			struct backlog *q = find_backlog(sink->fd);
			if (q && !behind_backlog(q, sink, b, n, mode, &result))
				return result;
		}
		r = sink_write(sink, b, n);
	}
	for (; r != (ssize_t)(n - off); r = sink_write(sink, b + off, n - off)) {
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0)
			errno = EIO;
		else if (errno == EINTR && (off > 0 || mode == OUTPUT_BACKGROUND))
			continue;
		bool full = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
		if (!full && off > 0)
			note_torn(sink->fd, b[off - 1]);
		if (!full || (off == 0 && mode == OUTPUT_APP))
			return off;
		/* Part of a line went out, or these are the shim's own lines:
		 * queue the rest. */
		if (start_backlog(sink, b + off, n - off, off ? b[off - 1] : '\n'))
			return n;
		return wait_and_write(sink, b, n, off);
	}
	return n;
}

FORK_PATH void log_output_settle(int fd)
{
	/* Every log descriptor's close comes here: a process that never tore
	 * a line or made a backlog (a fork child serving one connection) does
	 * not read their tables, whose page it would fault in to find them
	 * empty. */
	if (!STATE_WAS_MADE(MADE_BACKLOGS))
		return;
	forget_torn(fd);
	struct backlog *q = find_backlog(fd);
	if (!q || !backlog_lock(q))
		return;
	for (int waited = 0; !pay(q) && waited < SETTLE_MS; waited += 10) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		real.poll(&p, 1, 10);
	}
	release(q);
}

LOOP_PATH void log_output_settle_all(void)
{
	if (!STATE_WAS_MADE(MADE_BACKLOGS))
		return; /* no backlog was ever made */
	for (int i = 0; i < BACKLOGS; i++) {
		int32_t fd1 = atomic_load_explicit(&backlogs[i].fd1, memory_order_acquire);
		if (fd1 > 0)
			log_output_settle(fd1 - 1);
	}
}

void log_output_pay(int fd)
{
	if (!STATE_WAS_MADE(MADE_BACKLOGS))
		return;
	struct backlog *q = find_backlog(fd);
	if (!q || !backlog_lock(q))
		return;
	if (atomic_load_explicit(&q->fd1, memory_order_relaxed) == fd + 1)
		pay_and_unlock(q);
	else
		backlog_unlock(q);
}

bool log_output_drain(void)
{
	if (!STATE_WAS_MADE(MADE_BACKLOGS))
		return true;
	bool empty = true;
	for (int i = 0; i < BACKLOGS; i++) {
		struct backlog *q = &backlogs[i];
		if (atomic_load_explicit(&q->fd1, memory_order_acquire) == 0)
			continue;
		if (!backlog_lock(q)) {
			empty = false; /* a writer is at it */
		} else if (atomic_load_explicit(&q->fd1, memory_order_relaxed) == 0) {
			backlog_unlock(q);
		} else if (!pay_and_unlock(q)) {
			empty = false;
		}
	}
	return empty;
}

/* In a forked child: only backlogs in use are written, so the pages of
 * the others stay shared with the parent. */
void log_output_forget_all(void)
{
	if (!STATE_WAS_MADE(MADE_BACKLOGS))
		return;
	for (int i = 0; i < BACKLOGS; i++) {
		if (!atomic_load_explicit(&backlogs[i].fd1, memory_order_relaxed) &&
		    !atomic_load_explicit(&backlogs[i].busy, memory_order_relaxed) &&
		    !backlogs[i].off && !backlogs[i].len)
			continue;
		backlogs[i].off = backlogs[i].len = 0;
		atomic_store_explicit(&backlogs[i].busy, 0, memory_order_relaxed);
		atomic_store_explicit(&backlogs[i].fd1, 0, memory_order_relaxed);
	}
	/* what needs attention now: the torn lines, kept */
	uint32_t torn = 0;
	for (int i = 0; i < TORN_MAX; i++)
		torn += atomic_load_explicit(&torn_fd1[i], memory_order_relaxed) != 0;
	if (atomic_load_explicit(&output_attention, memory_order_relaxed) != torn)
		atomic_store_explicit(&output_attention, torn, memory_order_relaxed);
}
