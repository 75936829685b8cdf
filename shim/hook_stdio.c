/*
 * hook_stdio.c - stdio output to log descriptors: the printf, puts, fputs,
 * fputc/putc/putchar and fwrite families (with their _unlocked and
 * _FORTIFY_SOURCE variants), dprintf, perror, the err/warn families,
 * error/error_at_line, and the main wide-character functions.
 *
 * glibc's stdio reaches the kernel through internal calls no write() hook
 * sees, and a fully buffered stream flushes long after the call, perhaps
 * while its thread serves another request. So the bytes of a call on a
 * stream whose fd is a log descriptor are enriched at the call, with the
 * calling thread's context, and the enriched lines are put into the stream
 * itself (under its lock), keeping their place among its other bytes. An
 * unfinished line waits in the shim until its newline, like one written
 * with write().
 *
 * Programs built with optimisation write characters with putc_unlocked and
 * friends expanded inline: straight into the stream's buffer, calling
 * __overflow only when it is full (or unbuffered, or line-buffered). The
 * shim remembers where the buffer's write pointer stood after its own last
 * write; bytes found past that point were put there directly, and are taken
 * back out and put through the line machinery before anything else touches
 * the stream (the next hooked call, __overflow, fflush, fclose, exit), so
 * bytes keep their order and lines their ids.
 *
 * Must never change what the program sees: return values, errno, ferror,
 * buffering mode. A stream that is not a log stream, a wide stream used with
 * a byte function (and the reverse), and calls from a signal handler inside
 * the shim go to glibc untouched.
 */
#include "hooks.h"
#include "large_table.h"
#include "raw_syscall.h"

#include <err.h>
#include <stdatomic.h>
#include <error.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <wchar.h>

/* glibc may define these as macros writing straight into the buffer; the
 * hooks below are the exported functions. */
#undef putc
#undef putchar
#undef putc_unlocked
#undef putchar_unlocked
#undef fputc_unlocked
#undef fwrite_unlocked
#undef fputs_unlocked
#undef flockfile
#undef funlockfile

#define TEXT_STACK 1024

/* A byte-oriented stream whose fd is a log descriptor, with the shim active
 * and not re-entered. */
static bool byte_log_stream(FILE *f)
{
	return f && shim.active && !thread_ctx.in_shim &&
	       (fd_class(fileno_unlocked(f)) & FD_LOG) && fwide(f, 0) <= 0;
}

/* A wide-oriented (or not yet oriented: the call orients it, as glibc's
 * would) stream whose fd is a log descriptor. */
static bool wide_log_stream(FILE *f)
{
	if (!f || !shim.active || thread_ctx.in_shim || !(fd_class(fileno_unlocked(f)) & FD_LOG))
		return false;
	int orientation = fwide(f, 0);
	return orientation > 0 || (orientation == 0 && fwide(f, 1) > 0);
}

/* ---- bytes written into a stream's buffer behind the shim's back -------- */

#define STREAM_MARKS 256

/* Where a stream's write pointer stood after the shim last wrote to it (or
 * a thread took its lock), and which thread, in which context, may have
 * written the bytes found past it. */
struct stream_mark {
	_Atomic(FILE *) stream;
	char *base;
	char *ptr;
	int32_t tid;
	uint32_t epoch;
};

static struct stream_mark marks[STREAM_MARKS] LARGE_TABLE;

/* Looks for none until a mark was made: every fclose asks, and on this
 * project's VM reading the marks' three pages costs them as writing does
 * (an nginx master's fcloses at start left them in each worker). A mark
 * is made under its stream's lock, after the flag: whoever asks about that
 * stream after taking the lock sees the flag. */
static struct stream_mark *find_mark(FILE *f, bool create)
{
	if (!create && !STATE_WAS_MADE(MADE_STREAM_MARKS))
		return NULL;
	for (int i = 0; i < STREAM_MARKS; i++)
		if (atomic_load_explicit(&marks[i].stream, memory_order_acquire) == f)
			return &marks[i];
	if (create)
		STATE_MADE(MADE_STREAM_MARKS); /* before the mark: a fork in between sees it */
	for (int i = 0; create && i < STREAM_MARKS; i++) {
		FILE *expected = NULL;
		if (atomic_compare_exchange_strong(&marks[i].stream, &expected, f)) {
			marks[i].base = marks[i].ptr = NULL;
			return &marks[i];
		}
	}
	return NULL;
}

/* The caller holds f's lock: bytes up to the write pointer are accounted
 * for; bytes past it will be the calling thread's, in its context now. */
static void set_mark(FILE *f)
{
	struct stream_mark *m = find_mark(f, true);
	if (m) {
		m->base = f->_IO_write_base;
		m->ptr = f->_IO_write_ptr;
		m->tid = ctx_tid();
		m->epoch = thread_ctx.epoch;
	}
}

void stdio_note_write(FILE *f)
{
	set_mark(f);
}

static bool stream_put_locked(FILE *f, bool wide, const char *b, size_t n);

/* Takes back bytes the program put into f's buffer directly since its mark,
 * and writes them through the line machinery: with the calling thread's
 * context if it is the one that may have written them and its context has
 * not changed since, else without an id. A stream without a mark (the shim
 * never wrote to it) is left alone. The caller holds f's lock. */
static void reclaim(FILE *f)
{
	char *base = f->_IO_write_base, *cur = f->_IO_write_ptr;
	struct stream_mark *m = find_mark(f, false);
	if (!m || !base || cur <= base)
		return;
	char *start = base;
	if (m->base == base && m->ptr >= base && m->ptr <= cur)
		start = m->ptr;
	if (cur == start)
		return;
	size_t n = (size_t)(cur - start);
	char stack[TEXT_STACK];
	char *copy = n <= sizeof(stack) ? stack
					: mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED)
		return; /* they stay where they are, unenriched */
	memcpy(copy, start, n);
	f->_IO_write_ptr = start;
	bool own = m->tid == ctx_tid() && m->epoch == thread_ctx.epoch;
	uint64_t request = thread_ctx.request;
	uint8_t mode = thread_ctx.mode;
	if (!own) {
		thread_ctx.request = 0;
		thread_ctx.mode = CTX_NONE;
	}
	stream_put_locked(f, false, copy, n);
	if (!own) {
		thread_ctx.request = request;
		thread_ctx.mode = mode;
	}
	if (copy != stack)
		munmap(copy, n);
}

/* Puts n bytes the program wrote to f through the log writer, into f; the
 * caller holds f's lock. True if they all went in (or wait in the shim as an
 * unfinished line). */
/* glibc's FILE flags for an unbuffered and a line-buffered stream (libio.h). */
#define STREAM_UNBUFFERED 0x0002
#define STREAM_LINE_BUFFERED 0x0200

static bool stream_put_locked(FILE *f, bool wide, const char *b, size_t n)
{
	int saved = errno;
	/* The enriched lines go into the stream, in their place among its
	 * bytes (glibc writes them out at once if it is unbuffered or
	 * line-buffered). An unbuffered stream's bytes meet write()'s at the
	 * fd, so its unfinished line is the fd's, shared with write(); a
	 * buffered one keeps its unfinished line to itself, as glibc keeps it
	 * in the buffer. */
	bool unbuffered = !wide && (f->_flags & STREAM_UNBUFFERED);
	struct log_sink sink = {.fd = fileno_unlocked(f), .stream = f, .wide = wide,
				.owner = unbuffered ? NULL : f};
	struct iovec iov = {.iov_base = (void *)b, .iov_len = n};
	ssize_t r = log_path(&sink, &iov, 1);
	if (!wide)
		set_mark(f);
	if (r == (ssize_t)n)
		errno = saved;
	return r == (ssize_t)n;
}

static bool stream_put(FILE *f, bool wide, const char *b, size_t n)
{
	if (n == 0)
		return true;
	real.flockfile(f);
	if (!wide)
		reclaim(f);
	bool ok = stream_put_locked(f, wide, b, n);
	real.funlockfile(f);
	return ok;
}

/* A thread that writes a line with inline putc_unlocked under flockfile
 * takes the stream here: what others left in the buffer is taken back
 * first, and what follows is this thread's, in its current context. */
EXPORT void flockfile(FILE *f)
{
	REAL(flockfile)(f);
	if (byte_log_stream(f)) {
		reclaim(f);
		set_mark(f);
	}
}

/* ... and releases it here: its bytes are taken back now, before another
 * thread can touch the stream. */
EXPORT void funlockfile(FILE *f)
{
	if (byte_log_stream(f))
		reclaim(f);
	REAL(funlockfile)(f);
}

/* The inline putc family calls this when the buffer has no room (always,
 * for unbuffered and line-buffered streams). */
EXPORT int __overflow(FILE *f, int c)
{
	if (!byte_log_stream(f) || c == EOF)
		return REAL(__overflow)(f, c);
	char b = (char)c;
	return stream_put(f, false, &b, 1) ? (unsigned char)c : EOF;
}

/* Takes f's lock for the shim's own work: waits at most a moment at exit
 * (glibc's exit flush does not wait either). */
static bool lock_stream(FILE *f, bool patient)
{
	for (int spin = 0; spin < (patient ? 1 : 1000); spin++) {
		if (patient) {
			real.flockfile(f);
			return true;
		}
		if (ftrylockfile(f) == 0)
			return true;
		raw_sched_yield();
	}
	return false;
}

/* Before the program flushes or closes a log stream, bytes it put into the
 * buffer directly go through the line machinery. */
static void reclaim_stream(FILE *f, bool patient)
{
	if (!byte_log_stream(f) || !lock_stream(f, patient))
		return;
	reclaim(f);
	real.funlockfile(f);
}

void stdio_reclaim_all(void)
{
	if (!STATE_WAS_MADE(MADE_STREAM_MARKS))
		return; /* no stream was ever marked: the marks' pages stay untouched */
	for (int i = 0; i < STREAM_MARKS; i++) {
		FILE *g = atomic_load_explicit(&marks[i].stream, memory_order_acquire);
		if (g)
			reclaim_stream(g, false);
	}
}

void stdio_forget_stream(FILE *f)
{
	reclaim_stream(f, true);
	struct stream_mark *m = find_mark(f, false);
	if (m)
		atomic_store_explicit(&m->stream, NULL, memory_order_release);
}

/* After a flush the buffer starts over: the mark moves with it. */
static void mark_after_flush(FILE *f)
{
	if (byte_log_stream(f) && find_mark(f, false) && lock_stream(f, true)) {
		set_mark(f);
		real.funlockfile(f);
	}
}

EXPORT FORK_PATH int fflush(FILE *f)
{
	int r;
	if (f) {
		reclaim_stream(f, true);
		r = REAL(fflush)(f);
		mark_after_flush(f);
		return r;
	}
	if (shim.active && !thread_ctx.in_shim)
		stdio_reclaim_all();
	r = REAL(fflush)(NULL);
	if (!STATE_WAS_MADE(MADE_STREAM_MARKS))
		return r;
	for (int i = 0; i < STREAM_MARKS; i++) {
		FILE *g = atomic_load_explicit(&marks[i].stream, memory_order_acquire);
		if (g && ftrylockfile(g) == 0) {
			if (byte_log_stream(g))
				set_mark(g);
			real.funlockfile(g);
		}
	}
	return r;
}

EXPORT int fflush_unlocked(FILE *f)
{
	if (f && byte_log_stream(f))
		reclaim(f);
	int r = REAL(fflush_unlocked)(f);
	if (f && byte_log_stream(f) && find_mark(f, false))
		set_mark(f);
	return r;
}

/* ---- formatted output -------------------------------------------------- */

int __printf_chk(int flag, const char *fmt, ...);
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...);
int __vprintf_chk(int flag, const char *fmt, va_list ap);
int __vfprintf_chk(FILE *f, int flag, const char *fmt, va_list ap);
int __dprintf_chk(int fd, int flag, const char *fmt, ...);
int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap);

static int format_into(char *buf, size_t size, int flag, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = flag > 0 ? LIBC(__vsnprintf_chk)(buf, size, flag, size, fmt, copy)
			 : LIBC(vsnprintf)(buf, size, fmt, copy);
	va_end(copy);
	return n;
}

/* Formats like vfprintf (flag > 0: like __vfprintf_chk) and hands the text
 * to put; returns what vfprintf returns. */
static int formatted(int flag, const char *fmt, va_list ap, bool (*put)(void *, const char *, size_t),
		     void *to)
{
	char stack[TEXT_STACK];
	int saved = errno;
	int n = format_into(stack, sizeof(stack), flag, fmt, ap);
	if (n < 0)
		return n;
	char *text = stack;
	size_t size = (size_t)n + 1;
	if (size > sizeof(stack)) {
		text = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (text == MAP_FAILED) {
			errno = ENOMEM;
			return -1;
		}
		errno = saved; /* for %m */
		format_into(text, size, flag, fmt, ap);
	}
	errno = saved;
	bool ok = put(to, text, (size_t)n);
	if (text != stack)
		munmap(text, size);
	return ok ? n : -1;
}

static bool put_stream(void *f, const char *b, size_t n)
{
	return stream_put(f, false, b, n);
}

static bool put_fd(void *fdp, const char *b, size_t n)
{
	struct log_sink sink = {.fd = *(int *)fdp};
	struct iovec iov = {.iov_base = (void *)b, .iov_len = n};
	return log_path(&sink, &iov, 1) == (ssize_t)n;
}

EXPORT int vfprintf(FILE *f, const char *fmt, va_list ap)
{
	if (!byte_log_stream(f))
		return REAL(vfprintf)(f, fmt, ap);
	return formatted(0, fmt, ap, put_stream, f);
}

EXPORT int vprintf(const char *fmt, va_list ap)
{
	return vfprintf(stdout, fmt, ap);
}

EXPORT int fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vfprintf(f, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vfprintf(stdout, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int __vfprintf_chk(FILE *f, int flag, const char *fmt, va_list ap)
{
	if (!byte_log_stream(f))
		return REAL(__vfprintf_chk)(f, flag, fmt, ap);
	return formatted(flag, fmt, ap, put_stream, f);
}

EXPORT int __vprintf_chk(int flag, const char *fmt, va_list ap)
{
	return __vfprintf_chk(stdout, flag, fmt, ap);
}

EXPORT int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = __vfprintf_chk(f, flag, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int __printf_chk(int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = __vfprintf_chk(stdout, flag, fmt, ap);
	va_end(ap);
	return n;
}

/* dprintf writes to an fd through glibc-internal calls: a log fd gets the
 * write() treatment. */
static bool log_fd(int fd)
{
	return shim.active && !thread_ctx.in_shim && (fd_class(fd) & FD_LOG);
}

EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
	if (!log_fd(fd))
		return REAL(vdprintf)(fd, fmt, ap);
	return formatted(0, fmt, ap, put_fd, &fd);
}

EXPORT int dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vdprintf(fd, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
	if (!log_fd(fd))
		return REAL(__vdprintf_chk)(fd, flag, fmt, ap);
	return formatted(flag, fmt, ap, put_fd, &fd);
}

EXPORT int __dprintf_chk(int fd, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = __vdprintf_chk(fd, flag, fmt, ap);
	va_end(ap);
	return n;
}

/* ---- strings, characters, blocks --------------------------------------- */

EXPORT int fputs(const char *s, FILE *f)
{
	if (!byte_log_stream(f))
		return REAL(fputs)(s, f);
	return stream_put(f, false, s, strlen(s)) ? 1 : EOF;
}

EXPORT int fputs_unlocked(const char *s, FILE *f)
{
	if (!byte_log_stream(f))
		return REAL(fputs_unlocked)(s, f);
	return stream_put(f, false, s, strlen(s)) ? 1 : EOF;
}

EXPORT int puts(const char *s)
{
	if (!byte_log_stream(stdout))
		return REAL(puts)(s);
	size_t n = strlen(s);
	flockfile(stdout);
	bool ok = stream_put(stdout, false, s, n) && stream_put(stdout, false, "\n", 1);
	real.funlockfile(stdout);
	return ok ? (n + 1 > INT_MAX ? INT_MAX : (int)(n + 1)) : EOF;
}

static int put_char(int c, FILE *f)
{
	char b = (char)c;
	return stream_put(f, false, &b, 1) ? (unsigned char)c : EOF;
}

EXPORT int fputc(int c, FILE *f)
{
	return byte_log_stream(f) ? put_char(c, f) : REAL(fputc)(c, f);
}

EXPORT int fputc_unlocked(int c, FILE *f)
{
	return byte_log_stream(f) ? put_char(c, f) : REAL(fputc_unlocked)(c, f);
}

EXPORT int putc(int c, FILE *f)
{
	return byte_log_stream(f) ? put_char(c, f) : REAL(putc)(c, f);
}

EXPORT int putc_unlocked(int c, FILE *f)
{
	return byte_log_stream(f) ? put_char(c, f) : REAL(putc_unlocked)(c, f);
}

int _IO_putc(int c, FILE *f);
EXPORT int _IO_putc(int c, FILE *f)
{
	return byte_log_stream(f) ? put_char(c, f) : REAL(_IO_putc)(c, f);
}

EXPORT int putchar(int c)
{
	return byte_log_stream(stdout) ? put_char(c, stdout) : REAL(putchar)(c);
}

EXPORT int putchar_unlocked(int c)
{
	return byte_log_stream(stdout) ? put_char(c, stdout) : REAL(putchar_unlocked)(c);
}

static size_t put_block(const void *p, size_t size, size_t count, FILE *f)
{
	if (size == 0 || count == 0)
		return 0;
	if (count > SIZE_MAX / size)
		return 0;
	bool had_error = ferror(f);
	if (stream_put(f, false, p, size * count))
		return count;
	/* glibc's fwrite reports the whole count when what failed is the
	 * flush a line-buffered stream makes after a line (ferror tells). */
	return (f->_flags & STREAM_LINE_BUFFERED) && !had_error && ferror(f) ? count : 0;
}

EXPORT size_t fwrite(const void *p, size_t size, size_t count, FILE *f)
{
	if (!byte_log_stream(f))
		return REAL(fwrite)(p, size, count, f);
	return put_block(p, size, count, f);
}

EXPORT size_t fwrite_unlocked(const void *p, size_t size, size_t count, FILE *f)
{
	if (!byte_log_stream(f))
		return REAL(fwrite_unlocked)(p, size, count, f);
	return put_block(p, size, count, f);
}

/* ---- messages built from errno and the program name --------------------- */

/* Puts the pieces of one message into stderr as glibc would write them.
 * False if a write failed (errno tells why). */
static bool stderr_message(const char *a, const char *b, const char *c, const char *d)
{
	const char *parts[] = {a, b, c, d};
	bool ok = true;
	flockfile(stderr);
	for (size_t i = 0; i < 4; i++)
		if (parts[i])
			ok &= stream_put(stderr, false, parts[i], strlen(parts[i]));
	real.funlockfile(stderr);
	return ok;
}

EXPORT void perror(const char *s)
{
	if (!byte_log_stream(stderr)) {
		REAL(perror)(s);
		return;
	}
	int saved = errno;
	char buf[256];
	const char *what = LIBC(strerror_r)(saved, buf, sizeof(buf));
	bool prefix = s && *s;
	if (stderr_message(prefix ? s : NULL, prefix ? ": " : NULL, what, "\n"))
		errno = saved;
}

/* libc's variables of err(), warn() and error() (loader_variable): where
 * each is, found at its first use; NULL if libc has none. */
#define STDIO_VARIABLE(type, name)                                \
	static type *name##_at(void)                              \
	{                                                         \
		static void *_Atomic cache;                       \
		return (type *)loader_variable(&cache, #name);    \
	}
STDIO_VARIABLE(char *, program_invocation_name)
STDIO_VARIABLE(char *, program_invocation_short_name)
typedef void (*progname_printer)(void);
STDIO_VARIABLE(progname_printer, error_print_progname)
STDIO_VARIABLE(unsigned int, error_message_count)
STDIO_VARIABLE(int, error_one_per_line)
#undef STDIO_VARIABLE

/* vwarn/vwarnx: "progname: " fmt [": " strerror(errno)] "\n". */
static void warn_message(const char *fmt, va_list ap, bool with_errno)
{
	int saved = errno;
	char err_buf[256];
	const char *what = with_errno ? LIBC(strerror_r)(saved, err_buf, sizeof(err_buf)) : NULL;
	flockfile(stderr);
	char **short_name = program_invocation_short_name_at();
	stderr_message(short_name ? *short_name : NULL, ": ", NULL, NULL);
	if (fmt) {
		errno = saved;
		vfprintf(stderr, fmt, ap);
		if (with_errno)
			stderr_message(": ", NULL, NULL, NULL);
	}
	stderr_message(what, "\n", NULL, NULL);
	real.funlockfile(stderr);
	errno = saved;
}

EXPORT void vwarn(const char *fmt, va_list ap)
{
	if (!byte_log_stream(stderr))
		REAL(vwarn)(fmt, ap);
	else
		warn_message(fmt, ap, true);
}

EXPORT void vwarnx(const char *fmt, va_list ap)
{
	if (!byte_log_stream(stderr))
		REAL(vwarnx)(fmt, ap);
	else
		warn_message(fmt, ap, false);
}

EXPORT void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

EXPORT void warnx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
}

EXPORT void verr(int status, const char *fmt, va_list ap)
{
	vwarn(fmt, ap);
	exit(status);
}

EXPORT void verrx(int status, const char *fmt, va_list ap)
{
	vwarnx(fmt, ap);
	exit(status);
}

EXPORT void err(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(status, fmt, ap);
}

EXPORT void errx(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verrx(status, fmt, ap);
}

/* error() and error_at_line() have no va_list twins in glibc, so they are
 * written here for every stream, the way glibc writes them: stdout flushed,
 * "progname: " (or error_print_progname()), the message, ": strerror" for
 * errnum, newline, stderr flushed, exit if status. */
static void error_common(int status, int errnum, const char *file, unsigned line,
			 const char *fmt, va_list ap)
{
	int saved = errno;
	fflush(stdout);
	flockfile(stderr);
	progname_printer *print_progname = error_print_progname_at();
	char **name = program_invocation_name_at();
	if (print_progname && *print_progname)
		(*print_progname)();
	else
		fprintf(stderr, file ? "%s:" : "%s: ", name && *name ? *name : "");
	if (file)
		fprintf(stderr, "%s:%u: ", file, line);
	errno = saved;
	vfprintf(stderr, fmt, ap);
	unsigned int *count = error_message_count_at();
	if (count)
		++*count;
	if (errnum) {
		char buf[256];
		fprintf(stderr, ": %s", LIBC(strerror_r)(errnum, buf, sizeof(buf)));
	}
	putc('\n', stderr);
	fflush(stderr);
	real.funlockfile(stderr);
	errno = saved;
	if (status)
		exit(status);
}

/* For a stderr that is not a byte log stream, glibc's own error() gets the
 * message formatted here (it has no va_list form to pass ap to). */
static void message_text(char *buf, size_t size, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	LIBC(vsnprintf)(buf, size, fmt, copy);
	va_end(copy);
}

EXPORT void error(int status, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!byte_log_stream(stderr)) {
		char text[TEXT_STACK * 4];
		message_text(text, sizeof(text), fmt, ap);
		va_end(ap);
		REAL(error)(status, errnum, "%s", text);
		return;
	}
	error_common(status, errnum, NULL, 0, fmt, ap);
	va_end(ap);
}

EXPORT void error_at_line(int status, int errnum, const char *file, unsigned line,
			  const char *fmt, ...)
{
	static const char *last_file;
	static unsigned last_line;
	if (!byte_log_stream(stderr)) {
		char text[TEXT_STACK * 4];
		va_list ap;
		va_start(ap, fmt);
		message_text(text, sizeof(text), fmt, ap);
		va_end(ap);
		REAL(error_at_line)(status, errnum, file, line, "%s", text);
		return;
	}
	int *one_per_line = error_one_per_line_at();
	if (one_per_line && *one_per_line) {
		if (last_line == line && last_file &&
		    (last_file == file || (file && strcmp(last_file, file) == 0)))
			return;
		last_file = file;
		last_line = line;
	}
	va_list ap;
	va_start(ap, fmt);
	error_common(status, errnum, file, line, fmt, ap);
	va_end(ap);
}

/* ---- wide characters --------------------------------------------------- */

/* Converts wide text to the locale's multibyte form and puts it through the
 * log writer; the output is converted back for the wide stream. False if it
 * cannot be converted (the caller then lets glibc handle the call). */
static bool wide_put(FILE *f, const wchar_t *ws, size_t wn, bool *ok)
{
	char stack[TEXT_STACK];
	mbstate_t state = {0};
	const wchar_t *src = ws;
	int saved = errno;
	size_t n = LIBC(wcsnrtombs)(NULL, &src, wn, 0, &state);
	errno = saved;
	if (n == (size_t)-1)
		return false;
	char *b = n < sizeof(stack) ? stack
				    : mmap(NULL, n + 1, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return false;
	src = ws;
	memset(&state, 0, sizeof(state));
	LIBC(wcsnrtombs)(b, &src, wn, n + 1, &state);
	*ok = stream_put(f, true, b, n);
	if (b != stack)
		munmap(b, n + 1);
	return true;
}

EXPORT int fputws(const wchar_t *ws, FILE *f)
{
	bool ok;
	if (!wide_log_stream(f))
		return REAL(fputws)(ws, f);
	/* wcslen's count, made here: a function taken from libc costs every
	 * starting process some 800 instructions of the loader's. */
	size_t n = 0;
	while (ws[n])
		n++;
	if (!wide_put(f, ws, n, &ok))
		return REAL(fputws)(ws, f);
	return ok ? 1 : -1;
}

EXPORT wint_t fputwc(wchar_t wc, FILE *f)
{
	bool ok;
	if (!wide_log_stream(f) || !wide_put(f, &wc, 1, &ok))
		return REAL(fputwc)(wc, f);
	return ok ? (wint_t)wc : WEOF;
}

EXPORT wint_t putwc(wchar_t wc, FILE *f)
{
	return fputwc(wc, f);
}

EXPORT wint_t putwchar(wchar_t wc)
{
	return fputwc(wc, stdout);
}

/* vswprintf does not say how long its output would be: the buffer doubles
 * until it fits (up to 1 Mi wide characters). */
#define WIDE_TEXT_MAX (1 << 20)

EXPORT int vfwprintf(FILE *f, const wchar_t *fmt, va_list ap)
{
	wchar_t stack[TEXT_STACK];
	bool ok;
	if (wide_log_stream(f)) {
		int saved = errno;
		wchar_t *text = stack;
		size_t size = TEXT_STACK;
		for (;;) {
			va_list copy;
			va_copy(copy, ap);
			errno = saved;
			int n = LIBC(vswprintf)(text, size, fmt, copy);
			va_end(copy);
			if (n >= 0) {
				bool put = wide_put(f, text, (size_t)n, &ok);
				if (text != stack)
					munmap(text, size * sizeof(wchar_t));
				if (put) {
					if (ok)
						errno = saved;
					return ok ? n : -1;
				}
				break;
			}
			if (text != stack)
				munmap(text, size * sizeof(wchar_t));
			size *= 2;
			text = size <= WIDE_TEXT_MAX
				       ? mmap(NULL, size * sizeof(wchar_t), PROT_READ | PROT_WRITE,
					      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
				       : MAP_FAILED;
			if (text == MAP_FAILED)
				break;
		}
		errno = saved;
	}
	return REAL(vfwprintf)(f, fmt, ap);
}

EXPORT int vwprintf(const wchar_t *fmt, va_list ap)
{
	return vfwprintf(stdout, fmt, ap);
}

EXPORT int fwprintf(FILE *f, const wchar_t *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vfwprintf(f, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int wprintf(const wchar_t *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vfwprintf(stdout, fmt, ap);
	va_end(ap);
	return n;
}

int __vfwprintf_chk(FILE *f, int flag, const wchar_t *fmt, va_list ap);
int __fwprintf_chk(FILE *f, int flag, const wchar_t *fmt, ...);
int __vwprintf_chk(int flag, const wchar_t *fmt, va_list ap);
int __wprintf_chk(int flag, const wchar_t *fmt, ...);

/* The _FORTIFY_SOURCE forms: enriched like the plain ones (the text is
 * formatted with vswprintf, which does the %n checks of its own). */
EXPORT int __vfwprintf_chk(FILE *f, int flag, const wchar_t *fmt, va_list ap)
{
	if (!wide_log_stream(f) && real.__vfwprintf_chk)
		return real.__vfwprintf_chk(f, flag, fmt, ap);
	return vfwprintf(f, fmt, ap);
}

EXPORT int __vwprintf_chk(int flag, const wchar_t *fmt, va_list ap)
{
	return __vfwprintf_chk(stdout, flag, fmt, ap);
}

EXPORT int __fwprintf_chk(FILE *f, int flag, const wchar_t *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = __vfwprintf_chk(f, flag, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int __wprintf_chk(int flag, const wchar_t *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = __vfwprintf_chk(stdout, flag, fmt, ap);
	va_end(ap);
	return n;
}
