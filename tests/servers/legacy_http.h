/*
 * legacy_http.h - tiny HTTP/1.1 plumbing shared by the integration-test
 * servers in tests/servers/, written like old C code that has never heard of
 * reqid: fixed buffers, blocking reads, logs to fd 2 (or to syslog, a file
 * of its own, or through stdio, below). Also what the servers have in common around it
 * (start-up, the blocking keep-alive loop, accept errors, the threaded
 * servers' /quit and shutdown), so that each server file holds only its own
 * model: threads, a queue, fork, or epoll.
 *
 * Where log lines go is chosen at start-up by the environment variable
 * LEGACY_LOG, the way old daemons take it from their config file:
 *   unset, "stderr"  write(2)/writev(2) on fd 2, in the three styles below
 *   "syslog"         openlog(name, LOG_PID, LOG_USER), then one
 *                    syslog(LOG_INFO, "%s", line) per line (any style)
 *   "file:PATH"      open(PATH, O_WRONLY|O_APPEND|O_CREAT, 0644) once, then
 *                    the same writes as on fd 2 but on that descriptor;
 *                    SIGHUP reopens PATH (log rotation): the handler sets a
 *                    flag, the next line logged open()s PATH again, dup2()s
 *                    it onto the same descriptor number and close()s the
 *                    new one. A rwlock keeps whole lines (two write()s in
 *                    one style) out of the reopen's way.
 *   "devlog"         one RFC 3164 datagram per line,
 *                    "<14>Mmm dd hh:mm:ss NAME[PID]: line", sendto() on a
 *                    unix datagram socket addressed to /dev/log
 * and through stdio, each keeping the three styles (one call per line; the
 * line in two pieces, the second one ending it; two pieces at once):
 *   "stdio:stderr"   stderr as it is (unbuffered): fprintf(stderr, ...);
 *                    fprintf of the text without its '\n', then
 *                    fputc('\n', stderr); fputs(prefix) + fputs(text)
 *   "stdio:stdout-full"  setvbuf(stdout, buf, _IOFBF, 1 << 16) at start, a
 *                    static 64 KiB buffer (glibc ignores the size when buf is
 *                    NULL and takes st_blksize): one stream shared by all
 *                    threads, written out only when full and at exit();
 *                    printf(...); printf of the prefix, then puts(text);
 *                    fwrite(prefix) + fwrite(text)
 *   "stdio:stdout-line"  the same calls, stdout set to _IOLBF
 *   "stdio:putc"     stdout fully buffered (static 64 KiB buffer); every
 *                    line character by character with putc_unlocked(c,
 *                    stdout) under flockfile(stdout): glibc's inline macro at
 *                    -O2, which stores straight into the stream's buffer.
 *                    One locked run per line; the two-piece style locks each
 *                    piece on its own
 *   "stdio:file:PATH"  fopen(PATH, "a"), setvbuf(f, NULL, _IOFBF, 1 << 16),
 *                    then the calls of "stdio:stderr" on that FILE
 * Buffered stdio bytes reach the descriptor at exit(): every way out of a
 * server after /quit is exit(0). A forking server calls lh_before_fork()
 * first, so that a child does not inherit (and write out again) bytes still
 * in the parent's buffer.
 * An unknown value or a file that cannot be opened logs one ERROR line on fd
 * 2 and keeps logging there.
 *
 * LEGACY_FORK_STORM=N (microseconds) starts a thread that forks a child
 * every N us for the server's whole life, while it serves requests; each
 * child write()s one "fork storm child" line to fd 2, made by the thread
 * before the fork (a child of a threaded process may call only
 * async-signal-safe functions: another thread may have held gmtime's lock
 * at the fork), and _exit()s; the thread reaps it: a fork storm under load
 * (run_all.py). Only with the stderr backend, and only for the servers
 * whose other threads never fork (thread_per_conn, thread_pool).
 *
 * LEGACY_TRUTH=PATH appends one record per request the keep-alive loop
 * took, "TOKEN X-REQUEST-ID|- answered|unanswered\n" (unanswered: the
 * response could not be written, so no "done" line), with one write(2) to a
 * file the shim is not told is a log: the server's own account of what it
 * served, for an oracle that needs no unique URL (soak.py), as nginx's
 * $http_x_request_id in a second access log.
 *
 * The servers are the code under observation, so this file must never know
 * about request ids (beyond copying the header into that record), never
 * use stdio for output except through the "stdio:" backends (snprintf into
 * a stack buffer is fine) and never emit a line not ended by '\n'. Static
 * (inline, so unused ones do not warn) functions only.
 */
#ifndef LEGACY_HTTP_H
#define LEGACY_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h> /* snprintf/vsnprintf; output only in the stdio backends */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LH_BUF_SIZE 16384
#define LH_LOG_MAX 1024
#define LH_TOKEN_MAX 64
#define LH_RESPONSE_MAX 256

/* One parsed request head. */
struct lh_request {
	char method[16];
	char path[512];
	int close;             /* the client sent Connection: close */
	size_t content_length;
	char x_request_id[128]; /* for LEGACY_TRUTH only; "" when absent */
};

/* Per-connection read state. Bytes past the current request stay in buf for
 * the next request on a keep-alive connection. */
struct lh_conn {
	int fd;
	int use_recv;          /* read with recv() instead of read() */
	int have_head;         /* head parsed, body still being discarded */
	size_t len;            /* bytes held in buf */
	size_t skip;           /* body bytes still to discard */
	struct lh_request cur;
	char buf[LH_BUF_SIZE];
};

static const char *lh_name = "server";

static inline void lh_conn_init(struct lh_conn *c, int fd, int use_recv)
{
	c->fd = fd;
	c->use_recv = use_recv;
	c->have_head = 0;
	c->len = 0;
	c->skip = 0;
}

/* ---- logging: always whole lines ------------------------------------- */

enum { LH_TO_STDERR, LH_TO_SYSLOG, LH_TO_FILE, LH_TO_DEVLOG, LH_TO_STDIO };

/* LEGACY_LOG=stdio:...: which calls write the lines. */
enum { LH_STDIO_FILE,   /* fprintf/fputc/fputs on lh_stdio_fp */
       LH_STDIO_STDOUT, /* printf/puts/fwrite on stdout */
       LH_STDIO_PUTC }; /* putc_unlocked on stdout under flockfile */

static int lh_log_to = LH_TO_STDERR;
static int lh_log_fd = 2;               /* stderr, or the log file */
static const char *lh_log_path;         /* LEGACY_LOG=file:PATH */
static volatile sig_atomic_t lh_hup;    /* SIGHUP seen: reopen lh_log_path */
static pthread_rwlock_t lh_log_lock;    /* file: read per line, write to reopen */
static int lh_devlog_fd = -1;           /* LEGACY_LOG=devlog */
static struct sockaddr_un lh_devlog_addr;
static int lh_stdio_how = LH_STDIO_FILE; /* LEGACY_LOG=stdio:... */
static FILE *lh_stdio_fp;                /* stderr or the fopen()ed file */
static char lh_stdout_buf[1 << 16];      /* stdout's buffer, full or putc */

static inline size_t lh_log_prefix(char *out, size_t cap, const char *level)
{
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] pid=%d tid=%ld ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000L, level, lh_name, (int)getpid(),
		     (long)syscall(SYS_gettid));
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Formats the message part plus its '\n' into out; returns its length. */
static inline size_t lh_log_body(char *out, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(out, cap - 1, fmt, ap);

	if (n < 0)
		n = 0;
	if ((size_t)n > cap - 2)
		n = (int)(cap - 2);
	out[n++] = '\n';
	return (size_t)n;
}

static inline void lh_write_fd(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static inline void lh_write_stderr(const char *p, size_t len)
{
	lh_write_fd(2, p, len);
}

/* One line, one write(2) on fd, whatever the backend (set-up problems). */
__attribute__((format(printf, 3, 4)))
static inline void lh_log_fd_line(int fd, const char *level, const char *fmt, ...)
{
	char line[LH_LOG_MAX];
	size_t n = lh_log_prefix(line, sizeof line, level);
	va_list ap;

	va_start(ap, fmt);
	n += lh_log_body(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	lh_write_fd(fd, line, n);
}

static void lh_on_hup(int sig)
{
	(void)sig;
	lh_hup = 1;
}

/* LEGACY_LOG=file: a SIGHUP since the last line reopens the file onto the
 * same descriptor number, as old daemons do after logrotate's rename. */
static inline void lh_reopen_if_asked(void)
{
	int fd, err;

	if (!lh_hup)
		return;
	pthread_rwlock_wrlock(&lh_log_lock);
	if (lh_hup) {
		lh_hup = 0;
		fd = open(lh_log_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
		err = errno;
		if (fd >= 0 && fd != lh_log_fd) {
			dup2(fd, lh_log_fd);
			close(fd);
		} else if (fd < 0) {
			lh_log_fd_line(lh_log_fd, "ERROR", "cannot reopen log file %s: %s",
				       lh_log_path, strerror(err));
		}
	}
	pthread_rwlock_unlock(&lh_log_lock);
}

/* Before writing one line to lh_log_fd: returns the fd to write to. */
static inline int lh_line_begin(void)
{
	if (lh_log_to == LH_TO_FILE) {
		lh_reopen_if_asked();
		pthread_rwlock_rdlock(&lh_log_lock);
	}
	return lh_log_fd;
}

static inline void lh_line_end(void)
{
	if (lh_log_to == LH_TO_FILE)
		pthread_rwlock_unlock(&lh_log_lock);
}

/* One message (line without '\n') to syslog(3) or as a datagram to /dev/log;
 * p[len] (the line's '\n') is overwritten with its terminating NUL. */
static inline void lh_message(char *p, size_t len)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char dgram[LH_LOG_MAX + 512];
	struct tm tm;
	time_t now;
	int n;

	p[len] = '\0';
	if (lh_log_to == LH_TO_SYSLOG) {
		syslog(LOG_INFO, "%s", p);
		return;
	}
	now = time(NULL);
	localtime_r(&now, &tm);
	n = snprintf(dgram, sizeof dgram, "<%d>%s %2d %02d:%02d:%02d %s[%d]: %.*s",
		     LOG_USER | LOG_INFO, months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, lh_name, (int)getpid(), (int)len, p);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof dgram)
		n = (int)sizeof dgram - 1;
	while (sendto(lh_devlog_fd, dgram, (size_t)n, 0, (struct sockaddr *)&lh_devlog_addr,
		      sizeof lh_devlog_addr) < 0 && errno == EINTR)
		;
}

/* ---- stdio backends -------------------------------------------------- */

/* p[0..len) character by character, inline putc_unlocked, stdout locked. */
static inline void lh_putc_run(const char *p, size_t len)
{
	size_t i;

	flockfile(stdout);
	for (i = 0; i < len; i++)
		putc_unlocked(p[i], stdout);
	funlockfile(stdout);
}

/* One call per line: the whole line (len bytes, '\n' included). */
static inline void lh_stdio_line(const char *line, size_t len)
{
	switch (lh_stdio_how) {
	case LH_STDIO_FILE:
		fprintf(lh_stdio_fp, "%.*s", (int)len, line);
		break;
	case LH_STDIO_STDOUT:
		printf("%.*s", (int)len, line);
		break;
	default:
		lh_putc_run(line, len);
	}
}

/* Two pieces, the second one ending the line: head (hn bytes), then body
 * (bn bytes, its '\n' included; body[bn - 1] may be overwritten). */
static inline void lh_stdio_2w(const char *head, size_t hn, char *body, size_t bn)
{
	switch (lh_stdio_how) {
	case LH_STDIO_FILE:
		fprintf(lh_stdio_fp, "%.*s%.*s", (int)hn, head, (int)(bn - 1), body);
		fputc('\n', lh_stdio_fp);
		break;
	case LH_STDIO_STDOUT:
		printf("%.*s", (int)hn, head);
		body[bn - 1] = '\0';
		puts(body); /* adds the '\n' back */
		break;
	default:
		lh_putc_run(head, hn);
		lh_putc_run(body, bn);
	}
}

/* Both pieces at once (the writev() style); head and body are
 * NUL-terminated, body ends with '\n'. */
static inline void lh_stdio_v(const char *head, size_t hn, const char *body, size_t bn)
{
	size_t i;

	switch (lh_stdio_how) {
	case LH_STDIO_FILE:
		fputs(head, lh_stdio_fp);
		fputs(body, lh_stdio_fp);
		break;
	case LH_STDIO_STDOUT:
		fwrite(head, 1, hn, stdout);
		fwrite(body, 1, bn, stdout);
		break;
	default:
		flockfile(stdout);
		for (i = 0; i < hn; i++)
			putc_unlocked(head[i], stdout);
		for (i = 0; i < bn; i++)
			putc_unlocked(body[i], stdout);
		funlockfile(stdout);
	}
}

/* LEGACY_LOG=stdio:WHAT; returns what went wrong, or NULL. */
static inline const char *lh_stdio_setup(const char *what, int *err)
{
	if (strcmp(what, "stderr") == 0) {
		lh_stdio_fp = stderr;
		lh_stdio_how = LH_STDIO_FILE;
	} else if (strcmp(what, "stdout-full") == 0 || strcmp(what, "putc") == 0) {
		if (setvbuf(stdout, lh_stdout_buf, _IOFBF, sizeof lh_stdout_buf) != 0)
			return "cannot make stdout fully buffered";
		lh_stdio_fp = stdout;
		lh_stdio_how = what[0] == 'p' ? LH_STDIO_PUTC : LH_STDIO_STDOUT;
	} else if (strcmp(what, "stdout-line") == 0) {
		if (setvbuf(stdout, NULL, _IOLBF, 1 << 16) != 0)
			return "cannot make stdout line buffered";
		lh_stdio_fp = stdout;
		lh_stdio_how = LH_STDIO_STDOUT;
	} else if (strncmp(what, "file:", 5) == 0 && what[5]) {
		lh_stdio_fp = fopen(what + 5, "a");
		if (!lh_stdio_fp) {
			*err = errno;
			return "cannot open the log file";
		}
		if (setvbuf(lh_stdio_fp, NULL, _IOFBF, 1 << 16) != 0)
			return "cannot make the log file fully buffered";
		lh_stdio_how = LH_STDIO_FILE;
	} else {
		return "unknown LEGACY_LOG value, logging to stderr";
	}
	lh_log_to = LH_TO_STDIO;
	return NULL;
}

/* A forking server calls this right before fork(): bytes still in a stdio
 * buffer would otherwise be written out by the parent and every child. */
static inline void lh_before_fork(void)
{
	if (lh_log_to == LH_TO_STDIO)
		fflush(lh_stdio_fp);
}

static int lh_truth_fd = -1; /* LEGACY_TRUTH */

/* The LEGACY_TRUTH record of one request the keep-alive loop took. */
static inline void lh_truth(const char *tok, const struct lh_request *r, int answered)
{
	char rec[LH_TOKEN_MAX + sizeof r->x_request_id + 32];
	int n;

	if (lh_truth_fd < 0)
		return;
	n = snprintf(rec, sizeof rec, "%s %s %s\n", tok, r->x_request_id[0] ? r->x_request_id : "-",
		     answered ? "answered" : "unanswered");
	lh_write_fd(lh_truth_fd, rec, (size_t)n);
}

/* Reads LEGACY_LOG and sets the backend up; called once by lh_begin(). */
static inline void lh_log_setup(void)
{
	const char *truth = getenv("LEGACY_TRUTH");
	const char *v = getenv("LEGACY_LOG");
	const char *problem = NULL;
	int err = 0;

	if (truth && *truth)
		lh_truth_fd = open(truth, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (!v || !*v || strcmp(v, "stderr") == 0)
		return;
	if (strcmp(v, "syslog") == 0) {
		openlog(lh_name, LOG_PID, LOG_USER);
		lh_log_to = LH_TO_SYSLOG;
	} else if (strcmp(v, "devlog") == 0) {
		lh_devlog_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (lh_devlog_fd < 0) {
			problem = "cannot create the /dev/log socket";
			err = errno;
		} else {
			memset(&lh_devlog_addr, 0, sizeof lh_devlog_addr);
			lh_devlog_addr.sun_family = AF_UNIX;
			strcpy(lh_devlog_addr.sun_path, "/dev/log");
			lh_log_to = LH_TO_DEVLOG;
		}
	} else if (strncmp(v, "file:", 5) == 0 && v[5]) {
		int fd = open(v + 5, O_WRONLY | O_APPEND | O_CREAT, 0644);
		pthread_rwlockattr_t attr;
		struct sigaction sa;

		if (fd < 0) {
			problem = "cannot open the log file";
			err = errno;
		} else {
			lh_log_fd = fd;
			lh_log_path = v + 5;
			lh_log_to = LH_TO_FILE;
			pthread_rwlockattr_init(&attr);
			/* a reopen must not wait behind a stream of lines */
			pthread_rwlockattr_setkind_np(&attr,
						      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
			pthread_rwlock_init(&lh_log_lock, &attr);
			pthread_rwlockattr_destroy(&attr);
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = lh_on_hup;
			sigemptyset(&sa.sa_mask);
			sa.sa_flags = SA_RESTART;
			sigaction(SIGHUP, &sa, NULL);
		}
	} else if (strncmp(v, "stdio:", 6) == 0) {
		problem = lh_stdio_setup(v + 6, &err);
	} else {
		problem = "unknown LEGACY_LOG value, logging to stderr";
	}
	if (problem)
		lh_log_fd_line(2, "ERROR", "%s (LEGACY_LOG=%s)%s%s", problem, v, err ? ": " : "",
			       err ? strerror(err) : "");
}

/* The usual way: one line, one write(2). */
__attribute__((format(printf, 2, 3)))
static inline void lh_log(const char *level, const char *fmt, ...)
{
	char line[LH_LOG_MAX];
	size_t n = lh_log_prefix(line, sizeof line, level);
	va_list ap;

	va_start(ap, fmt);
	n += lh_log_body(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	if (lh_log_to == LH_TO_SYSLOG || lh_log_to == LH_TO_DEVLOG) {
		lh_message(line, n - 1);
		return;
	}
	if (lh_log_to == LH_TO_STDIO) {
		lh_stdio_line(line, n);
		return;
	}
	lh_write_fd(lh_line_begin(), line, n);
	lh_line_end();
}

/* One line as a writev() of two iovecs: prefix, then message + '\n'. */
__attribute__((format(printf, 2, 3)))
static inline void lh_log_v(const char *level, const char *fmt, ...)
{
	char head[256], body[LH_LOG_MAX];
	struct iovec iov[2];
	va_list ap;
	int fd;

	iov[0].iov_base = head;
	iov[0].iov_len = lh_log_prefix(head, sizeof head, level);
	va_start(ap, fmt);
	iov[1].iov_base = body;
	iov[1].iov_len = lh_log_body(body, sizeof body, fmt, ap);
	va_end(ap);
	if (lh_log_to == LH_TO_SYSLOG || lh_log_to == LH_TO_DEVLOG) {
		char line[sizeof head + sizeof body];

		memcpy(line, head, iov[0].iov_len);
		memcpy(line + iov[0].iov_len, body, iov[1].iov_len - 1);
		lh_message(line, iov[0].iov_len + iov[1].iov_len - 1);
		return;
	}
	if (lh_log_to == LH_TO_STDIO) {
		body[iov[1].iov_len] = '\0'; /* lh_log_body leaves room */
		lh_stdio_v(head, iov[0].iov_len, body, iov[1].iov_len);
		return;
	}
	fd = lh_line_begin();
	for (;;) {
		ssize_t n = writev(fd, iov, 2);

		if (n < 0 && errno == EINTR)
			continue;
		if (n >= 0 && (size_t)n < iov[0].iov_len + iov[1].iov_len) {
			/* short writev: finish the rest the slow way */
			size_t done = (size_t)n;

			if (done < iov[0].iov_len) {
				lh_write_fd(fd, head + done, iov[0].iov_len - done);
				done = 0;
			} else {
				done -= iov[0].iov_len;
			}
			lh_write_fd(fd, body + done, iov[1].iov_len - done);
		}
		break;
	}
	lh_line_end();
}

/* One line as two write() calls: the prefix without newline, then the
 * message with it (like code that prints a header then the text). */
__attribute__((format(printf, 2, 3)))
static inline void lh_log_2w(const char *level, const char *fmt, ...)
{
	char head[256], body[LH_LOG_MAX];
	size_t hn = lh_log_prefix(head, sizeof head, level), bn;
	va_list ap;
	int fd;

	va_start(ap, fmt);
	bn = lh_log_body(body, sizeof body, fmt, ap);
	va_end(ap);
	if (lh_log_to == LH_TO_SYSLOG || lh_log_to == LH_TO_DEVLOG) {
		char line[sizeof head + sizeof body];

		memcpy(line, head, hn);
		memcpy(line + hn, body, bn - 1);
		lh_message(line, hn + bn - 1);
		return;
	}
	if (lh_log_to == LH_TO_STDIO) {
		lh_stdio_2w(head, hn, body, bn);
		return;
	}
	fd = lh_line_begin();
	lh_write_fd(fd, head, hn);
	lh_write_fd(fd, body, bn);
	lh_line_end();
}

/* ---- sockets --------------------------------------------------------- */

/* A listening unix-domain stream socket at path (unlinked first, so a
 * stale socket file from an earlier run does not make bind() fail). */
static inline int lh_listen_unix(const char *path)
{
	struct sockaddr_un sa;
	size_t len = strlen(path);
	int fd;

	if (len == 0 || len >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len + 1);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 512) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A listening TCP socket on 127.0.0.1, port chosen by the kernel, or port N
 * when LEGACY_PORT=N is set (a client that knocks before the server starts
 * must know it); or, when LEGACY_LISTEN_UNIX=<path> is set, a unix-domain
 * stream socket at <path>, with port 0 reported. */
static inline int lh_listen(int *port_out)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int one = 1;
	const char *unix_path = getenv("LEGACY_LISTEN_UNIX");
	const char *fixed_port = getenv("LEGACY_PORT");
	int fd;

	if (unix_path) {
		fd = lh_listen_unix(unix_path);
		if (fd >= 0)
			*port_out = 0;
		return fd;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(fixed_port ? (uint16_t)atoi(fixed_port) : 0);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port_out = ntohs(sa.sin_port);
	return fd;
}

/* Writes "<port>\n" to ready_fd and closes it: the harness's handshake. */
static inline int lh_report_port(int ready_fd, int port)
{
	char msg[16];
	int n = snprintf(msg, sizeof msg, "%d\n", port);
	ssize_t w;

	do
		w = write(ready_fd, msg, (size_t)n);
	while (w < 0 && errno == EINTR);
	close(ready_fd);
	return w == n ? 0 : -1;
}

/* Parses "NAME --ready-fd N"; returns N or -1. */
static inline int lh_ready_fd_arg(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--ready-fd") == 0) {
		char *end;
		long v = strtol(argv[2], &end, 10);

		if (*argv[2] && !*end && v >= 0 && v < 65536)
			return (int)v;
	}
	return -1;
}

static inline void lh_usage(const char *prog)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "usage: %s --ready-fd N\n", prog);

	lh_write_stderr(msg, (size_t)n);
}

/* Writes all of buf; send() with MSG_NOSIGNAL when use_send. */
static inline int lh_write_all(int fd, const char *buf, size_t len, int use_send)
{
	while (len > 0) {
		ssize_t n = use_send ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- HTTP parsing ---------------------------------------------------- */

static inline void lh_consume(struct lh_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static inline int lh_header_is(const char *line, size_t len, const char *name, const char **value,
			size_t *vlen)
{
	size_t nl = strlen(name);

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return 0;
	line += nl + 1;
	len -= nl + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*value = line;
	*vlen = len;
	return 1;
}

/* Parses the head in buf[0..head_len) into r. Returns 0, or -1 if bad. */
static inline int lh_parse_head(const char *buf, size_t head_len, struct lh_request *r)
{
	const char *p = buf, *end = buf + head_len, *eol, *sp1, *sp2;

	memset(r, 0, sizeof *r);
	eol = memchr(p, '\r', (size_t)(end - p));
	if (!eol)
		return -1;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || (size_t)(sp1 - p) >= sizeof r->method)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || (size_t)(sp2 - sp1 - 1) >= sizeof r->path)
		return -1;
	memcpy(r->method, p, (size_t)(sp1 - p));
	memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	if (eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -1;
	p = eol + 2;
	while (p < end) {
		const char *v;
		size_t vl;

		eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol || eol == p)
			break;
		if (lh_header_is(p, (size_t)(eol - p), "Content-Length", &v, &vl)) {
			size_t i, cl = 0;

			if (vl == 0 || vl > 9)
				return -1;
			for (i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				cl = cl * 10 + (size_t)(v[i] - '0');
			}
			r->content_length = cl;
		} else if (lh_header_is(p, (size_t)(eol - p), "Connection", &v, &vl)) {
			if (vl == 5 && strncasecmp(v, "close", 5) == 0)
				r->close = 1;
		} else if (lh_header_is(p, (size_t)(eol - p), "X-Request-ID", &v, &vl)) {
			if (vl < sizeof r->x_request_id)
				memcpy(r->x_request_id, v, vl);
		}
		p = eol + 2;
	}
	return 0;
}

/* Tries to take one whole request (head parsed, body read and discarded)
 * from the bytes already buffered. Returns 1 and fills *out when one is
 * complete, 0 when more bytes are needed, -1 on a malformed request. */
static inline int lh_parse(struct lh_conn *c, struct lh_request *out)
{
	size_t n;

	if (!c->have_head) {
		size_t i, head_len = 0;

		for (i = 0; i + 3 < c->len; i++) {
			if (c->buf[i] == '\r' && c->buf[i + 1] == '\n' && c->buf[i + 2] == '\r' &&
			    c->buf[i + 3] == '\n') {
				head_len = i + 4;
				break;
			}
		}
		if (!head_len)
			return c->len == sizeof c->buf ? -1 : 0;
		if (lh_parse_head(c->buf, head_len, &c->cur) < 0)
			return -1;
		lh_consume(c, head_len);
		c->skip = c->cur.content_length;
		c->have_head = 1;
	}
	n = c->skip < c->len ? c->skip : c->len;
	lh_consume(c, n);
	c->skip -= n;
	if (c->skip > 0)
		return 0;
	c->have_head = 0;
	*out = c->cur;
	return 1;
}

/* One read()/recv() into the buffer. Returns bytes read, 0 at EOF, -1 on
 * error (errno set; EAGAIN for a non-blocking socket with nothing yet). */
static inline ssize_t lh_fill(struct lh_conn *c)
{
	ssize_t n;

	if (c->len == sizeof c->buf) {
		errno = ENOBUFS;
		return -1;
	}
	do {
		if (c->use_recv)
			n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
		else
			n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

/* Blocking: reads until one whole request is in. Returns 1 with *r filled,
 * 0 on a clean EOF between requests, -1 on error or EOF mid-request. */
static inline int lh_read_request(struct lh_conn *c, struct lh_request *r)
{
	for (;;) {
		int rc = lh_parse(c, r);
		ssize_t n;

		if (rc != 0)
			return rc;
		n = lh_fill(c);
		if (n == 0)
			return (c->len == 0 && !c->have_head) ? 0 : -1;
		if (n < 0)
			return -1;
	}
}

/* "/req/<token>[?...]": copies the token, returns its length, or 0. */
static inline size_t lh_path_token(const char *path, char *tok, size_t cap)
{
	size_t n = 0;

	if (strncmp(path, "/req/", 5) != 0)
		return 0;
	path += 5;
	while ((path[n] >= 'a' && path[n] <= 'z') || (path[n] >= 'A' && path[n] <= 'Z') ||
	       (path[n] >= '0' && path[n] <= '9')) {
		if (n + 1 >= cap)
			return 0;
		tok[n] = path[n];
		n++;
	}
	if (path[n] != '\0' && path[n] != '?')
		return 0;
	tok[n] = '\0';
	return n;
}

static inline int lh_is_quit(const char *path)
{
	return strcmp(path, "/quit") == 0;
}

/* Value of integer query parameter name, or -1 when absent/invalid. */
static inline long lh_query_long(const char *path, const char *name)
{
	const char *q = strchr(path, '?');
	size_t nl = strlen(name);

	while (q) {
		q++;
		if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
			char *end;
			long v = strtol(q + nl + 1, &end, 10);

			if (end != q + nl + 1 && (*end == '\0' || *end == '&'))
				return v;
			return -1;
		}
		q = strchr(q, '&');
	}
	return -1;
}

/* "HTTP/1.1 200 OK" with body "ok <word>\n"; returns the length. */
static inline size_t lh_build_response(char *out, size_t cap, const char *word, int close_conn)
{
	char body[LH_TOKEN_MAX + 8];
	int bl = snprintf(body, sizeof body, "ok %s\n", word);
	int n = snprintf(out, cap, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s", bl,
			 close_conn ? "Connection: close\r\n" : "", body);

	return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static inline size_t lh_build_error(char *out, size_t cap)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbad\n");

	return n < 0 ? 0 : (size_t)n;
}

/* ---- server skeleton ------------------------------------------------- */

static inline void *lh_fork_storm(void *arg)
{
	struct timespec pause = { 0, (long)(uintptr_t)arg * 1000 };

	for (unsigned n = 0;; n++) {
		char line[LH_LOG_MAX], text[32];
		size_t len = lh_log_prefix(line, sizeof line - sizeof text, "INFO");
		int more = snprintf(text, sizeof text, "fork storm child %u\n", n);
		pid_t child;

		if (more > 0 && (size_t)more < sizeof text) {
			memcpy(line + len, text, (size_t)more);
			len += (size_t)more;
		}
		child = fork();
		if (child == 0) {
			if (write(2, line, len) < 0)
				_exit(1);
			_exit(0);
		}
		if (child > 0)
			while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
				;
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* The start of every main(): names the log lines, reads "--ready-fd N",
 * ignores SIGPIPE, sets up the log backend (LEGACY_LOG) and starts the fork
 * storm (LEGACY_FORK_STORM). Returns N, or -1 after the usage line (exit
 * status 2). */
static inline int lh_begin(int argc, char **argv, const char *name)
{
	int ready_fd = lh_ready_fd_arg(argc, argv);
	const char *storm = getenv("LEGACY_FORK_STORM");
	pthread_t t;

	lh_name = name;
	if (ready_fd < 0) {
		lh_usage(argv[0]);
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	lh_log_setup();
	if (storm && pthread_create(&t, NULL, lh_fork_storm, (void *)(uintptr_t)atoi(storm)) == 0)
		pthread_detach(t);
	return ready_fd;
}

/* lh_listen(), logging why it failed. */
static inline int lh_listen_or_log(int *port_out)
{
	int fd = lh_listen(port_out);

	if (fd < 0)
		lh_log("ERROR", "cannot listen: %s", strerror(errno));
	return fd;
}

/* A blocking accept() failed with err and the server is not stopping: the
 * caller retries; EINTR and ECONNABORTED at once, anything else is logged
 * and retried after 10 ms. */
static inline void lh_accept_failed(int err)
{
	if (err == EINTR || err == ECONNABORTED)
		return;
	lh_log("ERROR", "accept failed: %s", strerror(err));
	usleep(10000);
}

/* The three lines a server logs about one request: start and working before
 * the response is written, done after it. Each server words them its own way
 * and picks its own lh_log* style for each; arg is passed through. */
struct lh_request_logs {
	void (*start)(void *arg, const char *tok, const struct lh_request *r);
	void (*working)(void *arg, const char *tok, const struct lh_request *r);
	void (*done)(void *arg, const char *tok, const struct lh_request *r);
};

/* The blocking keep-alive loop: reads requests on fd one after another into
 * c (the caller's storage) and answers each, with read()/write(), or
 * recv()/send(MSG_NOSIGNAL) when use_socket_calls. /quit gets a 200 with
 * Connection: close and ends the loop, returning 1; a path that is not
 * /req/<token> gets a 400 and ends it. Otherwise the request is counted in
 * *served (when not NULL), "start" and "working" are logged, the response is
 * written, then "done" is logged; Connection: close, a failed write, EOF or
 * a read error end the loop, returning 0. fd is left open for the caller. */
static inline int lh_serve_conn(struct lh_conn *c, int fd, int use_socket_calls,
				const struct lh_request_logs *logs, void *arg, int *served)
{
	struct lh_request r;
	char tok[LH_TOKEN_MAX], resp[LH_RESPONSE_MAX];
	size_t n;

	lh_conn_init(c, fd, use_socket_calls);
	while (lh_read_request(c, &r) == 1) {
		if (lh_is_quit(r.path)) {
			n = lh_build_response(resp, sizeof resp, "quit", 1);
			lh_write_all(fd, resp, n, use_socket_calls);
			return 1;
		}
		if (!lh_path_token(r.path, tok, sizeof tok)) {
			n = lh_build_error(resp, sizeof resp);
			lh_write_all(fd, resp, n, use_socket_calls);
			break;
		}
		if (served)
			(*served)++;
		logs->start(arg, tok, &r);
		logs->working(arg, tok, &r);
		n = lh_build_response(resp, sizeof resp, tok, r.close);
		if (lh_write_all(fd, resp, n, use_socket_calls) < 0) {
			lh_truth(tok, &r, 0);
			break;
		}
		logs->done(arg, tok, &r);
		lh_truth(tok, &r, 1);
		if (r.close)
			break;
	}
	return 0;
}

/* ---- threaded servers: busy count, /quit, shutdown --------------------- */

/* What the threaded servers keep under one mutex: how many connections are
 * being served, and whether /quit was seen. A server may keep more of its
 * own state (a queue) under mu. */
struct lh_threads {
	pthread_mutex_t mu;
	pthread_cond_t idle_cv; /* broadcast whenever a connection is done */
	int busy;               /* connections being served, under mu */
	int quitting;           /* /quit seen, under mu */
	int listen_fd;
};

#define LH_THREADS_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, -1 }

/* A connection is done; quit says it asked for /quit, which (the first time)
 * shuts the listener down to wake the accept loop. */
static inline void lh_threads_conn_done(struct lh_threads *t, int quit)
{
	pthread_mutex_lock(&t->mu);
	t->busy--;
	if (quit && !t->quitting) {
		t->quitting = 1;
		shutdown(t->listen_fd, SHUT_RDWR); /* wakes the accept loop */
	}
	pthread_cond_broadcast(&t->idle_cv);
	pthread_mutex_unlock(&t->mu);
}

/* Serves connection fd on a detached thread of its own (serve gets the fd
 * as its argument and ends with lh_threads_conn_done); 0, or -1 (fd closed,
 * an ERROR line logged) if the thread could not start. */
static inline int lh_threads_start(struct lh_threads *t, void *(*serve)(void *), int fd)
{
	pthread_attr_t detached;
	pthread_t th;
	int rc;

	pthread_mutex_lock(&t->mu);
	t->busy++;
	pthread_mutex_unlock(&t->mu);
	pthread_attr_init(&detached);
	pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &detached, serve, (void *)(intptr_t)fd);
	pthread_attr_destroy(&detached);
	if (rc == 0)
		return 0;
	lh_log("ERROR", "pthread_create failed");
	close(fd);
	pthread_mutex_lock(&t->mu);
	t->busy--;
	pthread_mutex_unlock(&t->mu);
	return -1;
}

/* Accepts until /quit shut the listener down, handing each fd to take(). */
static inline void lh_threads_accept_loop(struct lh_threads *t, void (*take)(int fd))
{
	for (;;) {
		int fd = accept(t->listen_fd, NULL, NULL), q;

		if (fd < 0) {
			int err = errno;

			pthread_mutex_lock(&t->mu);
			q = t->quitting;
			pthread_mutex_unlock(&t->mu);
			if (q)
				break;
			lh_accept_failed(err);
			continue;
		}
		take(fd);
	}
}

/* Gives the connections still being served (busy, plus queued() more when
 * not NULL, called under mu) up to 20 s to finish their logging, then logs
 * how many are left and exits. */
__attribute__((noreturn))
static inline void lh_threads_drain_exit(struct lh_threads *t, int (*queued)(void))
{
	struct timespec deadline;
	int left;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&t->mu);
	while (t->busy + (queued ? queued() : 0) > 0 &&
	       pthread_cond_timedwait(&t->idle_cv, &t->mu, &deadline) == 0)
		;
	left = t->busy + (queued ? queued() : 0);
	pthread_mutex_unlock(&t->mu);
	lh_log("INFO", "shutting down, %d connections still open", left);
	close(t->listen_fd);
	exit(0);
}

#endif
