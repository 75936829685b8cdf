/*
 * stdio_semantics.c - a legacy-style test program for test_stdio.py: it
 * performs one stdio scenario (argv[1]) and records what the calls returned
 * (values, errno, ferror/feof, and the stream's buffering as
 * __fbufsize/__flbf/__fpending from <stdio_ext.h>) in a results file
 * (argv[2]) as key=value lines. The driver runs it with and without
 * libreqid.so and compares the results files (they must be identical) and
 * the output: each shimmed output line, decoded, must be the bare line.
 *
 * It knows nothing of the shim and must never mention it. Its observations
 * go only to the results file, written with write(2) on a descriptor that
 * is no log, never through the streams under test.
 *
 * __fpending is recorded as 0 or ">0" (the shim's lines are longer than the
 * program's, so the count differs by design; whether bytes are waiting does
 * not). After a call that leaves a line unfinished it is recorded on a line
 * of its own, "partial_pending", which the driver checks as a case of its
 * own.
 *
 * Built three ways by the driver: -O2 (putc_unlocked, putchar_unlocked and
 * fputc_unlocked expand inline and store straight into the buffer), -O0
 * (every call is a call), -O2 -D_FORTIFY_SOURCE=2 (printf and friends become
 * __printf_chk...).
 *
 *   stdio_semantics SCENARIO RESULTS [PATH]
 */
#define _GNU_SOURCE
#include <err.h>
#include <errno.h>
#include <error.h>
#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

static int results_fd = -1;

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(results_fd, buf, (size_t)n) != n)
		_exit(98);
}

static const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case EBADF: return "EBADF";
	case ENOSPC: return "ENOSPC";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case EILSEQ: return "EILSEQ";
	case 4321: return "4321";
	default: return "other";
	}
}

/* Buffering state of f: size, line-buffered flag, bytes waiting or not,
 * error and end-of-file flags. */
static void state(const char *what, FILE *f)
{
	record("%s.state bufsize=%zu lbf=%d pending=%s ferror=%d feof=%d", what, __fbufsize(f),
	       __flbf(f), __fpending(f) ? ">0" : "0", ferror(f) != 0, feof(f) != 0);
}

/* The same after a call that left a line unfinished: pending apart. */
static void state_partial(const char *what, FILE *f)
{
	record("%s.state bufsize=%zu lbf=%d ferror=%d feof=%d", what, __fbufsize(f), __flbf(f),
	       ferror(f) != 0, feof(f) != 0);
	record("%s.partial_pending=%s", what, __fpending(f) ? ">0" : "0");
}

/* Records the value a call returned and errno, then the stream's state. */
#define CALL(f, what, expr)                                                         \
	do {                                                                        \
		errno = 4321;                                                       \
		long long r_ = (long long)(expr);                                   \
		int e_ = errno;                                                     \
		record("%s.ret=%lld errno=%s", what, r_, errno_name(e_));           \
		state(what, f);                                                     \
	} while (0)

/* A call that leaves the stream's last line unfinished. */
#define CALLP(f, what, expr)                                                        \
	do {                                                                        \
		errno = 4321;                                                       \
		long long r_ = (long long)(expr);                                   \
		int e_ = errno;                                                     \
		record("%s.ret=%lld errno=%s", what, r_, errno_name(e_));           \
		state_partial(what, f);                                             \
	} while (0)

static int wrap_vfprintf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wrap_vfprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vfprintf(f, fmt, ap);
	va_end(ap);
	return n;
}

static int wrap_vprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int wrap_vprintf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

static int wrap_vdprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wrap_vdprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vdprintf(fd, fmt, ap);
	va_end(ap);
	return n;
}

static volatile int dyn_char = 0xE9; /* 'é' in Latin-1: a lone invalid UTF-8 byte */

/* Every byte-output call the README lists, on f, with lines whole, in
 * pieces, empty and long. */
static void byte_calls(const char *p, FILE *f)
{
	char what[64], big[3000];
	size_t i;

	state(p, f);
#define W(name) (snprintf(what, sizeof what, "%s.%s", p, name), what)
	CALL(f, W("fprintf"), fprintf(f, "fprintf %d %s\n", 42, "whole"));
	CALL(f, W("vfprintf"), wrap_vfprintf(f, "vfprintf %05.1f|%-4s|\n", 3.25, "ab"));
	CALL(f, W("fprintf_empty"), fprintf(f, "%s", ""));
	CALLP(f, W("fprintf_piece1"), fprintf(f, "pieces: one "));
	CALLP(f, W("fputs_piece2"), fputs("two ", f));
	CALLP(f, W("fputc_piece3"), fputc('3', f));
	CALLP(f, W("putc_piece4"), putc(' ', f));
	CALLP(f, W("fwrite_piece5"), fwrite("four five", 1, 9, f));
	CALL(f, W("fputc_nl"), fputc('\n', f));
	CALL(f, W("fputs"), fputs("fputs line\n", f));
	CALL(f, W("fputs_empty"), fputs("", f));
	CALLP(f, W("fwrite_3x4"), fwrite("fwrite 3x4\n", 3, 4, f) /* 12 bytes: with NUL */);
	CALL(f, W("fputc_nl2"), fputc('\n', f));
	CALL(f, W("fwrite_size0"), fwrite("x", 0, 4, f));
	CALL(f, W("fwrite_count0"), fwrite("x", 1, 0, f));
	CALLP(f, W("fputc_high"), fputc(0x100 + dyn_char, f));
	CALL(f, W("fputc_nl3"), fputc('\n', f));
	CALLP(f, W("putc_unlocked"), putc_unlocked('u', f));
	CALLP(f, W("fputc_unlocked"), fputc_unlocked('v', f));
	CALL(f, W("fputs_unlocked"), fputs_unlocked(" unlocked\n", f));
	CALL(f, W("fwrite_unlocked"), fwrite_unlocked("fwrite_unlocked\n", 1, 16, f));
	CALL(f, W("fprintf_multi"), fprintf(f, "multi 1\nmulti 2\n\nmulti 4 %s\n", "end"));
	CALL(f, W("fprintf_m"), (errno = ENOENT, fprintf(f, "errno says %m\n")));
	for (i = 0; i < sizeof big - 2; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof big - 2] = '\n';
	big[sizeof big - 1] = '\0';
	CALL(f, W("fputs_big"), fputs(big, f));
	CALL(f, W("fprintf_big"), fprintf(f, "%.*s|%s", 2000, big, "tail\n"));
	flockfile(f);
	for (i = 0; i < 56; i++) /* two whole lines */
		putc_unlocked("locked run of putc_unlocked\n"[i % 28], f);
	funlockfile(f);
	state(W("locked_run"), f);
	CALL(f, W("fflush"), fflush(f));
#undef W
}

static void stdout_calls(const char *p)
{
	char what[64];

#define W(name) (snprintf(what, sizeof what, "%s.%s", p, name), what)
	CALL(stdout, W("printf"), printf("printf %d %c %s\n", -7, 'c', "x"));
	CALL(stdout, W("vprintf"), wrap_vprintf("vprintf %x\n", 0xbeef));
	CALLP(stdout, W("printf_piece"), printf("piece %s", "a "));
	CALLP(stdout, W("putchar_piece"), putchar('b'));
	CALLP(stdout, W("putchar_unlocked"), putchar_unlocked('c'));
	CALL(stdout, W("puts_end"), puts(" end"));
	CALL(stdout, W("puts"), puts("puts line"));
	CALL(stdout, W("puts_empty"), puts(""));
	CALL(stdout, W("putchar_nl"), putchar('\n'));
	CALL(stdout, W("printf_empty"), printf("%s", ""));
	CALL(stdout, W("dprintf1"), dprintf(1, "dprintf on fd 1 %d\n", 1));
	CALL(stdout, W("vdprintf1"), wrap_vdprintf(1, "vdprintf on fd 1 %s\n", "y"));
	CALL(stdout, W("dprintf1_piece"), dprintf(1, "dprintf piece "));
	CALL(stdout, W("dprintf1_end"), dprintf(1, "ends here\n"));
#undef W
}

/* stdout/stderr as the driver set them up; mode: "full" (as they are),
 * "line" or "none" (setvbuf), all three streams get the same calls. */
static void sc_bytes(const char *mode)
{
	if (strcmp(mode, "line") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		setvbuf(stderr, NULL, _IOLBF, 0);
	} else if (strcmp(mode, "none") == 0) {
		setvbuf(stdout, NULL, _IONBF, 0);
	} else if (strcmp(mode, "big") == 0) {
		static char buf[1 << 16];
		setvbuf(stdout, buf, _IOFBF, sizeof buf);
	}
	state("stdout.start", stdout);
	state("stderr.start", stderr);
	byte_calls("stdout", stdout);
	stdout_calls("stdout");
	byte_calls("stderr", stderr);
	CALL(stderr, "stderr.dprintf2", dprintf(2, "dprintf on fd 2\n"));
	/* lines left in stdout's buffer go out at exit */
	CALL(stdout, "stdout.last", printf("last line, written at exit\n"));
}

/* A FILE opened by a path the driver made a log (REQID_LOG_PATHS). */
static void sc_file(const char *path, const char *mode)
{
	FILE *f = fopen(path, "a");

	record("fopen=%d", f != NULL);
	if (!f)
		return;
	if (strcmp(mode, "full") == 0)
		setvbuf(f, NULL, _IOFBF, 1 << 16);
	else if (strcmp(mode, "line") == 0)
		setvbuf(f, NULL, _IOLBF, 0);
	byte_calls("file", f);
	CALL(f, "file.last", fprintf(f, "last line, written by fclose\n"));
	errno = 4321;
	int r = fclose(f);
	record("fclose=%d errno=%s", r, errno_name(errno));
}

/* Wide output on stdout (mode "full"/"line") or stderr. */
static void sc_wide(const char *which)
{
	FILE *f = strcmp(which, "stderr") == 0 ? stderr : stdout;

	record("setlocale=%d", setlocale(LC_ALL, "C.UTF-8") != NULL);
	if (strcmp(which, "line") == 0)
		setvbuf(stdout, NULL, _IOLBF, 0);
	record("fwide=%d", fwide(f, 1));
	state("wide", f);
	CALL(f, "wide.fputws", fputws(L"fputws caf\u00e9 \u20ac \U0001F600\n", f));
	CALL(f, "wide.fwprintf", fwprintf(f, L"fwprintf %d %ls %lc\n", 12, L"\u00fcber", L'\u00df'));
	CALLP(f, "wide.fputws_piece", fputws(L"wide piece ", f));
	CALLP(f, "wide.fputwc", fputwc(L'\u00e9', f));
	CALLP(f, "wide.putwc", putwc(L'x', f));
	CALL(f, "wide.fputwc_nl", fputwc(L'\n', f));
	CALL(f, "wide.fwprintf_multi", fwprintf(f, L"wide 1\nwide 2 %s\n", "narrow arg"));
	CALL(f, "wide.fputws_empty", fputws(L"", f));
	if (f == stdout) {
		CALL(f, "wide.wprintf", wprintf(L"wprintf %5.2f\n", 2.5));
		CALLP(f, "wide.putwchar", putwchar(L'!'));
		CALL(f, "wide.putwchar_nl", putwchar(L'\n'));
	}
	/* a byte call on a wide stream fails the same way either way */
	CALL(f, "wide.fputs_on_wide", fputs("bytes on a wide stream\n", f));
	CALL(f, "wide.fflush", fflush(f));
	record("fwide_end=%d", fwide(f, 0));
}

/* stdout and stderr on /dev/full: every write fails with ENOSPC. */
static void sc_full(void)
{
	CALL(stdout, "full.printf", printf("printf into a full device\n"));
	CALL(stdout, "full.puts", puts("puts into a full device"));
	CALL(stdout, "full.fflush", fflush(stdout));
	CALL(stdout, "full.printf2", printf("again %d\n", 2));
	clearerr(stdout);
	state("full.clearerr", stdout);
	CALL(stderr, "full.fprintf", fprintf(stderr, "fprintf to unbuffered full %d\n", 1));
	CALL(stderr, "full.fputs", fputs("fputs to unbuffered full\n", stderr));
	CALL(stderr, "full.fputc", fputc('\n', stderr));
	CALL(stderr, "full.fwrite", fwrite("fwrite\n", 1, 7, stderr));
	CALL(stderr, "full.dprintf", dprintf(2, "dprintf to full\n"));
	errno = EACCES;
	perror("perror to full");
	record("full.perror errno=%s", errno_name(errno));
	state("full.perror", stderr);
	CALL(stdout, "full.fflush_end", fflush(stdout));
}

/* A stream opened read-only on a log path: writes fail with EBADF. */
static void sc_readonly(const char *path)
{
	FILE *f = fopen(path, "r");

	record("fopen=%d", f != NULL);
	if (!f)
		return;
	CALL(f, "ro.fprintf", fprintf(f, "read-only %d\n", 1));
	CALL(f, "ro.fputs", fputs("read-only\n", f));
	CALL(f, "ro.fputc", fputc('\n', f));
	CALL(f, "ro.fwrite", fwrite("x\n", 1, 2, f));
	CALL(f, "ro.fflush", fflush(f));
	fclose(f);
}

static void vwarn_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vwarn_wrap(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

static void vwarnx_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vwarnx_wrap(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
}

static void custom_progname(void)
{
	fprintf(stderr, "custom-progname> ");
}

/* The messages glibc builds from errno and the program name, on stderr,
 * with a stdout line still buffered before each error() (which flushes
 * stdout first). */
static void sc_messages(void)
{
	state("msg.start", stderr);
	errno = ENOENT;
	warn("warn %d", 1);
	record("warn errno=%s", errno_name(errno));
	errno = EACCES;
	warnx("warnx %s", "two");
	record("warnx errno=%s", errno_name(errno));
	errno = EPERM;
	vwarn_wrap("vwarn %c", '3');
	record("vwarn errno=%s", errno_name(errno));
	vwarnx_wrap("vwarnx %05d", 4);
	errno = EINVAL;
	warn(NULL);
	record("warn_null errno=%s", errno_name(errno));
	warnx("warnx with\nan embedded newline");
	printf("stdout line before error()\n");
	state("msg.stdout_before_error", stdout);
	errno = EACCES;
	error(0, ENOENT, "error %s", "five");
	record("error errno=%s count=%u", errno_name(errno), error_message_count);
	state("msg.stdout_after_error", stdout);
	error(0, 0, "error without errnum %d", 6);
	error_at_line(0, EPERM, "file.c", 42, "error_at_line %s", "seven");
	error_one_per_line = 1;
	error_at_line(0, 0, "same.c", 7, "once per line: first");
	error_at_line(0, 0, "same.c", 7, "once per line: suppressed");
	error_at_line(0, 0, "same.c", 8, "once per line: other line");
	error_one_per_line = 0;
	record("error_at_line count=%u", error_message_count);
	error_print_progname = custom_progname;
	error(0, EINVAL, "with error_print_progname");
	error_print_progname = NULL;
	errno = ENOSPC;
	perror("perror");
	record("perror errno=%s", errno_name(errno));
	errno = EBADF;
	perror(NULL);
	errno = EILSEQ;
	perror("");
	record("perror_empty errno=%s", errno_name(errno));
	state("msg.end", stderr);
	fprintf(stderr, "after messages\n");
}

/* The exiting ones: the driver checks the exit status too. */
static void sc_exit(const char *how)
{
	record("start");
	printf("stdout line before %s\n", how);
	errno = ENOENT;
	if (strcmp(how, "err") == 0)
		err(3, "err %s", "exits 3");
	if (strcmp(how, "errx") == 0)
		errx(4, "errx %s", "exits 4");
	if (strcmp(how, "error") == 0)
		error(5, EACCES, "error %s", "exits 5");
	if (strcmp(how, "error_at_line") == 0)
		error_at_line(6, 0, "f.c", 1, "error_at_line %s", "exits 6");
	record("did not exit");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	results_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (results_fd < 0)
		return 2;
	const char *sc = argv[1], *arg = argc > 3 ? argv[3] : "";
	if (strcmp(sc, "bytes") == 0)
		sc_bytes(arg);
	else if (strcmp(sc, "file") == 0 && argc > 4)
		sc_file(arg, argv[4]);
	else if (strcmp(sc, "wide") == 0)
		sc_wide(arg);
	else if (strcmp(sc, "full") == 0)
		sc_full();
	else if (strcmp(sc, "readonly") == 0)
		sc_readonly(arg);
	else if (strcmp(sc, "messages") == 0)
		sc_messages();
	else if (strcmp(sc, "exit") == 0)
		sc_exit(arg);
	else
		return 2;
	record("end");
	return 0;
}
