/*
 * fault_writer.c - a legacy-style logging program for test_faults.py: it
 * runs one fault scenario (argv[1]) and records what its calls returned
 * (values, errno, ferror) as key=value lines in a results file (argv[2]).
 * The driver runs it bare and under libreqid.so and compares.
 *
 * It knows nothing of the shim and must never mention it, and never write
 * its observations to a log descriptor. Its log is fd 2 or a file under
 * argv[3], a directory the driver mounted as a small tmpfs for the
 * disk-full scenarios; those fill the disk with 200-byte lines, then free
 * space by deleting a filler file the program wrote first, and write one
 * more line.
 *
 * The paused-pipe scenario logs to a non-blocking pipe whose reader
 * stops for two seconds; the paused-syslog one calls syslog(3) while the
 * daemon stops reading /dev/log for two seconds (as rsyslog does when its
 * queue is full: its disk is), from a mount namespace of its own whose
 * /dev is an empty tmpfs holding only that socket. The EINTR storm serves
 * requests over a loopback connection of its own while a timer interrupts
 * it every 100 us; the reused-descriptor one has a thread blocked in a
 * read while another closes the connection and accepts the next one on
 * the same number; the dup2 race has threads
 * write lines to one descriptor number while another thread points that
 * number at one log file and then another.
 *
 *   fault_writer SCENARIO RESULTS [DIR]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static FILE *results;

static void die(const char *what)
{
	if (results) {
		fprintf(results, "fatal=%s errno=%d\n", what, errno);
		fflush(results);
	}
	_exit(99);
}

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(results, fmt, ap);
	va_end(ap);
	fflush(results);
}

#define LINE_LEN 200
#define FILLER_LEN 65536
#define MAX_LINES 100000

static char line[LINE_LEN + 1];
static char dir_log[4096], dir_filler[4096];

static void make_line(void)
{
	memset(line, 'a', LINE_LEN - 1);
	line[LINE_LEN - 1] = '\n';
}

/* The filler file that is deleted to make room again. */
static void write_filler(const char *dir)
{
	snprintf(dir_log, sizeof(dir_log), "%s/app.log", dir);
	snprintf(dir_filler, sizeof(dir_filler), "%s/filler", dir);
	int fd = open(dir_filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	static char zeros[FILLER_LEN];
	if (fd < 0 || write(fd, zeros, sizeof(zeros)) != (ssize_t)sizeof(zeros) || close(fd) != 0)
		die("filler");
}

/* What one write-like call returned, in words: "ok", "short" (a count
 * inside the bytes asked for) or the errno's name. */
static const char *outcome(ssize_t r, size_t n, int e)
{
	if (r == (ssize_t)n)
		return "ok";
	if (r >= 0)
		return "short";
	return e == ENOSPC ? "ENOSPC" : e == EPIPE ? "EPIPE" : e == EMFILE ? "EMFILE" : "other";
}

/* write() or writev() (the line in two pieces) until the disk is full. */
static void sc_full(bool vectored, const char *dir)
{
	write_filler(dir);
	int fd = open(dir_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 2) != 2)
		die("open log");
	close(fd);
	ssize_t r = LINE_LEN;
	int lines = 0;
	for (; lines < MAX_LINES && r == LINE_LEN; lines++) {
		errno = 0;
		if (vectored) {
			struct iovec iov[2] = {{line, 120}, {line + 120, LINE_LEN - 120}};
			r = writev(2, iov, 2);
		} else {
			r = write(2, line, LINE_LEN);
		}
	}
	record("first_failure=%s\n", outcome(r, LINE_LEN, errno));
	if (r >= 0)
		record("count=%zd\n", r);
	if (r >= 0) { /* a short count: the next write reports the error */
		errno = 0;
		r = write(2, line, LINE_LEN);
		record("then=%s\n", outcome(r, LINE_LEN, errno));
	}
	record("filled=%s\n", lines > 100 ? "yes" : "no");
	if (unlink(dir_filler) != 0)
		die("unlink filler");
	r = write(2, "after\n", 6);
	record("after=%s\n", outcome(r, 6, errno));
	record("close=%d\n", close(2));
}

/* fprintf to a log file with the given buffering until the disk is full. */
static void sc_full_stdio(int mode, const char *dir)
{
	write_filler(dir);
	FILE *f = fopen(dir_log, "w");
	if (!f || setvbuf(f, NULL, mode, BUFSIZ) != 0)
		die("fopen");
	int r = LINE_LEN, lines = 0;
	for (; lines < MAX_LINES && r == LINE_LEN; lines++) {
		errno = 0;
		r = fprintf(f, "%.*s", LINE_LEN, line); /* not turned into fputs */
	}
	record("first_failure=%s errno=%s ferror=%d\n", r < 0 ? "EOF" : "short",
	       errno == ENOSPC ? "ENOSPC" : "other", ferror(f) != 0);
	record("filled=%s\n", lines > 100 ? "yes" : "no");
	clearerr(f);
	if (unlink(dir_filler) != 0)
		die("unlink filler");
	r = fprintf(f, "after\n");
	record("after=%d\n", r);
	record("fflush=%d ferror_after=%d\n", fflush(f), ferror(f) != 0);
	record("fclose=%d\n", fclose(f));
}

/* The log file is deleted, or renamed, while the program writes to it. */
static void sc_moved(bool rename_it, const char *dir)
{
	char path[4096], moved[4096];
	snprintf(path, sizeof(path), "%s/app.log", dir);
	snprintf(moved, sizeof(moved), "%s/app.log.1", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 2) != 2)
		die("open log");
	close(fd);
	record("before=%s\n", outcome(write(2, "one\n", 4), 4, errno));
	if ((rename_it ? rename(path, moved) : unlink(path)) != 0)
		die("move");
	record("after=%s\n", outcome(write(2, "two\n", 4), 4, errno));
	record("piece=%s\n", outcome(write(2, "thr", 3), 3, errno));
	record("rest=%s\n", outcome(write(2, "ee\n", 3), 3, errno));
}

/* fd 2 is a pipe whose reader takes one line and exits. */
static void sc_pipe_reader_exits(bool ignore)
{
	int p[2];
	if (pipe(p) != 0)
		die("pipe");
	pid_t reader = fork();
	if (reader == 0) {
		char b[64];
		close(p[1]);
		ssize_t got = 0;
		while (got < 4) {
			ssize_t r = read(p[0], b + got, sizeof(b) - (size_t)got);
			if (r <= 0)
				break;
			got += r;
		}
		_exit(0);
	}
	close(p[0]);
	if (dup2(p[1], 2) != 2)
		die("dup2");
	close(p[1]);
	if (ignore)
		signal(SIGPIPE, SIG_IGN);
	record("first=%s\n", outcome(write(2, "one\n", 4), 4, errno));
	if (waitpid(reader, NULL, 0) != reader)
		die("waitpid");
	errno = 0;
	ssize_t r = write(2, "two\n", 4);
	record("second=%s\n", outcome(r, 4, errno));
}

/* A non-blocking log pipe whose reader stops for two seconds: the program
 * writes numbered lines until the pipe is full, keeps trying every 10 ms
 * while the reader sleeps (every try must fail at once, EAGAIN), then lets
 * the reader go and writes the rest, waiting in poll() for room after an
 * EAGAIN, as a careful program does. The reader copies all it gets to
 * DIR/pipe.out. Records the lines written, the tries during the pause and
 * how many failed with EAGAIN, and the longest write call in ms. */
#define PAUSED_LINES 3000

static long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void sc_pipe_paused(const char *dir)
{
	int p[2], go[2];
	if (pipe(p) != 0 || pipe(go) != 0)
		die("pipe");
	pid_t reader = fork();
	if (reader == 0) {
		char path[4096], b[4096];
		snprintf(path, sizeof(path), "%s/pipe.out", dir);
		int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		close(p[1]);
		close(go[1]);
		if (out < 0 || read(go[0], b, 1) != 1)
			_exit(1);
		ssize_t r;
		while ((r = read(p[0], b, sizeof(b))) > 0)
			if (write(out, b, (size_t)r) != r)
				_exit(1);
		_exit(0);
	}
	close(p[0]);
	close(go[0]);
	if (dup2(p[1], 2) != 2 || fcntl(2, F_SETFL, O_NONBLOCK) != 0)
		die("pipe setup");
	close(p[1]);
	char text[64];
	int n = 0, tries = 0, again = 0;
	long longest = 0;
	struct timespec t0, pause0;
	for (;;) { /* until the pipe is full */
		int len = snprintf(text, sizeof(text), "line %05d of a paused reader\n", n);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ssize_t r = write(2, text, (size_t)len);
		longest = ms_since(&t0) > longest ? ms_since(&t0) : longest;
		if (r == len) {
			n++;
			continue;
		}
		if (r >= 0 || errno != EAGAIN)
			die("filling the pipe");
		break;
	}
	record("filled=%s\n", n > 100 ? "yes" : "no");
	clock_gettime(CLOCK_MONOTONIC, &pause0);
	while (ms_since(&pause0) < 2000) {
		int len = snprintf(text, sizeof(text), "line %05d of a paused reader\n", n);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ssize_t r = write(2, text, (size_t)len);
		longest = ms_since(&t0) > longest ? ms_since(&t0) : longest;
		tries++;
		if (r == len)
			n++; /* room after all: counted, as the reader will get it */
		else if (r < 0 && errno == EAGAIN)
			again++;
		else
			die("paused write");
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	if (write(go[1], "g", 1) != 1)
		die("go");
	while (n < PAUSED_LINES) {
		int len = snprintf(text, sizeof(text), "line %05d of a paused reader\n", n);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ssize_t r = write(2, text, (size_t)len);
		longest = ms_since(&t0) > longest ? ms_since(&t0) : longest;
		if (r == len) {
			n++;
		} else if (r < 0 && errno == EAGAIN) {
			struct pollfd pf = {2, POLLOUT, 0};
			poll(&pf, 1, 1000);
		} else {
			die("draining write");
		}
	}
	close(2);
	int status;
	if (waitpid(reader, &status, 0) != reader || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("reader");
	record("lines=%d\n", n);
	record("paused_all_again=%s\n", tries > 50 && again == tries ? "yes" : "no");
	record("longest_write_under_100ms=%s\n", longest < 100 ? "yes" : "no");
}

#define SYSLOG_MESSAGES 3000

/* The syslog daemon: reads the first 100 messages, stops reading for two
 * seconds (the senders' queue fills), then reads the rest, each written to
 * out as a line. */
static void syslog_reader(int sock, int out)
{
	char b[4096];
	for (int n = 0; n < SYSLOG_MESSAGES; n++) {
		if (n == 100)
			nanosleep(&(struct timespec){2, 0}, NULL);
		ssize_t r = recv(sock, b, sizeof(b) - 1, 0);
		if (r <= 0)
			_exit(1);
		b[r] = '\n';
		if (write(out, b, (size_t)r + 1) != r + 1)
			_exit(1);
	}
	_exit(0);
}

static void sc_syslog_paused(const char *dir)
{
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0) {
		record("skipped=no mount namespace\n");
		return;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};
	int sock = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		die("/dev/log");
	char path[4096];
	snprintf(path, sizeof(path), "%s/syslog.out", dir);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		die("syslog.out");
	pid_t reader = fork();
	if (reader == 0)
		syslog_reader(sock, out);
	close(sock);
	close(out);
	openlog("fault_writer", 0, LOG_USER);
	long longest = 0;
	for (int n = 0; n < SYSLOG_MESSAGES; n++) {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		errno = 0;
		syslog(LOG_INFO, "message %05d of a paused daemon", n);
		if (errno != 0)
			die("syslog changed errno");
		longest = ms_since(&t0) > longest ? ms_since(&t0) : longest;
	}
	closelog();
	int status;
	if (waitpid(reader, &status, 0) != reader || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("reader");
	record("messages=%d\n", SYSLOG_MESSAGES);
	/* a call waited for the daemon, most of its pause */
	record("blocked=%s\n", longest >= 1000 ? "yes" : "no");
}

/* Every descriptor up to RLIMIT_NOFILE is taken: the program gets the
 * same number as bare, and its log still works. */
static void sc_nofile(void)
{
	struct rlimit rl = {64, 64};
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit");
	int opened = 0;
	while (open("/dev/null", O_RDONLY) >= 0)
		opened++;
	record("open=%s opened_to_limit=%s\n", errno == EMFILE ? "EMFILE" : "other",
	       fcntl(63, F_GETFD) >= 0 ? "yes" : "no");
	errno = 0;
	int d = dup(2);
	record("dup=%s\n", d < 0 && errno == EMFILE ? "EMFILE" : "other");
	record("write=%s\n", outcome(write(2, "full table\n", 11), 11, errno));
}

static int no_memory_go[2], no_memory_ready[2];

/* Writes the start of a line once memory is capped, and ends. */
static void *unfinished_line(void *arg)
{
	char c;
	(void)arg;
	if (write(no_memory_ready[1], "r", 1) != 1 || read(no_memory_go[0], &c, 1) != 1)
		die("read go");
	if (write(2, "thr", 3) != 3)
		die("write thr");
	return NULL;
}

/* The address space is capped so that no more memory can be mapped: a long
 * line, and a line written in pieces, still arrive whole and in order; a
 * thread that leaves a line unfinished when it ends is not waited for. */
static void sc_no_memory(void)
{
	pthread_t thread;
	char c;
	if (pipe(no_memory_go) != 0 || pipe(no_memory_ready) != 0 ||
	    pthread_create(&thread, NULL, unfinished_line, NULL) != 0 ||
	    read(no_memory_ready[0], &c, 1) != 1)
		die("thread");
	static char big[20000];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\n';
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) != 0)
		die("getrlimit");
	/* The current size, read from /proc, is the cap: any new mapping
	 * fails. Read again while a mapping still fits (memory something gave
	 * back between the read and the cap). */
	void *p = NULL;
	for (int tries = 0; tries < 10 && p != MAP_FAILED; tries++) {
		if (p)
			munmap(p, 1 << 20);
		FILE *st = fopen("/proc/self/statm", "r");
		unsigned long pages = 0;
		if (!st || fscanf(st, "%lu", &pages) != 1)
			die("statm");
		fclose(st);
		rl.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE);
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			die("setrlimit");
		p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	record("mmap=%s\n", p == MAP_FAILED ? "fails" : "works");
	record("big=%s\n", outcome(write(2, big, sizeof(big)), sizeof(big), errno));
	record("piece1=%s\n", outcome(write(2, "pie", 3), 3, errno));
	record("piece2=%s\n", outcome(write(2, "ces\n", 4), 4, errno));
	record("short=%s\n", outcome(write(2, "short line\n", 11), 11, errno));
	if (write(no_memory_go[1], "g", 1) != 1 || pthread_join(thread, NULL) != 0)
		die("join");
	record("end=%s\n", outcome(write(2, "end\n", 4), 4, errno));
}

static atomic_long interrupted;

static void on_timer(int sig)
{
	(void)sig;
	atomic_fetch_add(&interrupted, 1);
}

/* Reads until buf holds an HTTP head (and, with body, the 2-byte body). */
static size_t read_message(int fd, char *buf, size_t cap, bool body)
{
	size_t have = 0;
	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (end && (!body || have >= (size_t)(end + 4 - buf) + 2))
			return have;
		ssize_t r = read(fd, buf + have, cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		have += (size_t)r;
	}
}

static void write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("write");
		b += r;
		n -= (size_t)r;
	}
}

/* A loopback listener on a port of its own; *a gets its address. */
static int listen_loopback(struct sockaddr_in *a)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t alen = sizeof(*a);
	*a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (lfd < 0 || bind(lfd, (struct sockaddr *)a, sizeof(*a)) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)a, &alen) != 0)
		die("listen");
	return lfd;
}

static int connect_to(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof(*a)) != 0)
		die("connect");
	return fd;
}

/* 2000 requests on one keep-alive connection, each logged, under a timer
 * that interrupts every 100 us (no SA_RESTART): every call may fail with
 * EINTR and is retried, as careful programs do. */
static void sc_eintr(void)
{
	struct sockaddr_in a;
	int lfd = listen_loopback(&a);
	int client = connect_to(&a);
	int server;
	while ((server = accept(lfd, NULL, NULL)) < 0)
		if (errno != EINTR)
			die("accept");
	struct sigaction sa = {.sa_handler = on_timer};
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 100}, {0, 100}};
	setitimer(ITIMER_REAL, &it, NULL);
	static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		char req[128], buf[4096], line[64];
		int n = snprintf(req, sizeof(req),
				 "GET /same HTTP/1.1\r\nHost: x\r\nX-Request-ID: r-%d\r\n\r\n", i);
		write_all(client, req, (size_t)n);
		size_t got = read_message(server, buf, sizeof(buf), false);
		if (got != (size_t)n || memcmp(buf, req, got) != 0)
			bad++;
		n = snprintf(line, sizeof(line), "handled r-%d\n", i);
		write_all(2, line, (size_t)n);
		write_all(server, response, sizeof(response) - 1);
		got = read_message(client, buf, sizeof(buf), true);
		if (got < 6 || memcmp(buf + got - 6, "\r\n\r\nok", 6) != 0 ||
		    memcmp(buf, "HTTP/1.1 200", 12) != 0)
			bad++;
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	record("bad=%d interrupted=%s\n", bad, atomic_load(&interrupted) > 100 ? "many" : "few");
}

#define REUSE_ROUNDS 200

struct stale_reader {
	int fd, round;
	_Atomic pid_t tid;
};

/* Blocks in read on the connection, which the main thread closes meanwhile;
 * gets the old client's request and logs it. */
static void *stale_read(void *arg)
{
	struct stale_reader *sr = arg;
	char buf[4096], msg[128];
	atomic_store(&sr->tid, gettid());
	size_t got = read_message(sr->fd, buf, sizeof(buf), false);
	int n = snprintf(msg, sizeof(msg), "stale read of %d bytes, round %d\n", (int)got, sr->round);
	write_all(2, msg, (size_t)n);
	return NULL;
}

/* Whether thread tid is inside read(fd): /proc shows its system call. */
static bool blocked_in_read(pid_t tid, int fd)
{
	char path[64], text[128], want[32];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	int pfd = open(path, O_RDONLY);
	if (pfd < 0)
		die("open syscall");
	ssize_t n = read(pfd, text, sizeof(text) - 1);
	close(pfd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	int w = snprintf(want, sizeof(want), "%d 0x%x ", SYS_read, fd);
	return strncmp(text, want, (size_t)w) == 0;
}

/* A thread is blocked in read on a connection when the main thread closes
 * the descriptor and accepts a new connection, which gets the same number.
 * The kernel goes on reading the old connection for the blocked read: when
 * the old client sends a request, the reader gets it (and logs), then the
 * new client sends its own, which the main thread reads, logs and answers. */
static void sc_reused_fd(void)
{
	struct sockaddr_in a;
	int lfd = listen_loopback(&a);
	int same = 0, answered = 0, headed = 0;
	for (int round = 0; round < REUSE_ROUNDS; round++) {
		char req[128], buf[4096], msg[128];
		int old_client = connect_to(&a);
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			die("accept");
		struct stale_reader sr = {.fd = fd, .round = round};
		pthread_t reader;
		if (pthread_create(&reader, NULL, stale_read, &sr) != 0)
			die("pthread_create");
		pid_t tid;
		while ((tid = atomic_load(&sr.tid)) == 0 || !blocked_in_read(tid, fd))
			sched_yield();
		int new_client = connect_to(&a); /* before the close: not on fd */
		close(fd);
		int again = accept(lfd, NULL, NULL);
		same += again == fd;
		int n = snprintf(req, sizeof(req),
				 "GET /same HTTP/1.1\r\nHost: x\r\nX-Request-ID: old-%d\r\n\r\n", round);
		write_all(old_client, req, (size_t)n);
		pthread_join(reader, NULL);
		n = snprintf(req, sizeof(req),
			     "GET /same HTTP/1.1\r\nHost: x\r\nX-Request-ID: new-%d\r\n\r\n", round);
		write_all(new_client, req, (size_t)n);
		read_message(again, buf, sizeof(buf), false);
		n = snprintf(msg, sizeof(msg), "serving round %d\n", round);
		write_all(2, msg, (size_t)n);
		static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		write_all(again, response, sizeof(response) - 1);
		size_t got = read_message(new_client, buf, sizeof(buf), true);
		answered += got >= 6 && memcmp(buf + got - 6, "\r\n\r\nok", 6) == 0;
		n = snprintf(req, sizeof(req), "\r\nX-Request-ID: new-%d\r\n", round);
		headed += memmem(buf, got, req, (size_t)n) != NULL; /* added by the shim */
		close(again);
		close(new_client);
		close(old_client);
	}
	close(lfd);
	record("same_fd=%d answered=%d headed=%d\n", same, answered, headed);
}

#define RACE_THREADS 4
#define RACE_LINES 5000
#define RACE_FD 10

static atomic_int race_ok, race_ebadf, race_other;

static void *race_writer(void *arg)
{
	int t = (int)(long)arg;
	for (int i = 0; i < RACE_LINES; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "t%d n%d\n", t, i);
		ssize_t r = write(RACE_FD, line, (size_t)n);
		if (r == n)
			atomic_fetch_add(&race_ok, 1);
		else if (r < 0 && errno == EBADF)
			atomic_fetch_add(&race_ebadf, 1);
		else
			atomic_fetch_add(&race_other, 1);
	}
	return NULL;
}

/* Threads write lines to RACE_FD while the main thread points it at one
 * log file, then the other, then closes it, over and over. */
static void sc_dup2_race(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/a.log", dir);
	int fa = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	snprintf(path, sizeof(path), "%s/b.log", dir);
	int fb = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fa < 0 || fb < 0 || dup2(fa, RACE_FD) != RACE_FD)
		die("open logs");
	pthread_t th[RACE_THREADS];
	for (long t = 0; t < RACE_THREADS; t++)
		pthread_create(&th[t], NULL, race_writer, (void *)t);
	for (int i = 0; i < 3000; i++) {
		if (dup2(i % 2 ? fa : fb, RACE_FD) != RACE_FD)
			die("dup2");
		if (i % 7 == 0)
			close(RACE_FD);
	}
	for (int t = 0; t < RACE_THREADS; t++)
		pthread_join(th[t], NULL);
	record("ok=%d other=%d\n", atomic_load(&race_ok), atomic_load(&race_other));
	record("total=%d\n", atomic_load(&race_ok) + atomic_load(&race_ebadf) +
				   atomic_load(&race_other));
}

static void *thread_logs(void *arg)
{
	(void)arg;
	write_all(2, "from the thread\n", 16);
	return NULL;
}

/* Threads cannot be made (a stack no mapping can hold): pthread_create
 * reports it every time, and a thread made afterwards works. */
static void sc_thread_fail(void)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (pthread_attr_setstacksize(&attr, (size_t)1 << 46) != 0)
		die("stacksize");
	int failed = 0, code = 0;
	for (int i = 0; i < 1000; i++) {
		pthread_t t;
		int r = pthread_create(&t, &attr, thread_logs, NULL);
		if (r != 0) {
			failed++;
			code = r;
		} else {
			pthread_join(t, NULL);
		}
	}
	record("failed=%d code=%s\n", failed, code == EAGAIN ? "EAGAIN" : code == ENOMEM ? "ENOMEM" : "other");
	pthread_t t;
	record("then=%d\n", pthread_create(&t, NULL, thread_logs, NULL));
	pthread_join(t, NULL);
}

/* One write() of two lines to a disk with room for the first (enriched or
 * not) and part of the second; space comes back and the program writes
 * what the count said was not written. */
static void sc_full_two_lines(const char *dir)
{
	char path[4096], filler[4096];
	static char buf[8192], init[3801], zeros[4096];
	snprintf(path, sizeof(path), "%s/app.log", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	memset(init, 'i', sizeof(init) - 1);
	init[sizeof(init) - 1] = '\n';
	if (fd < 0 || write(fd, init, sizeof(init)) != (ssize_t)sizeof(init))
		die("init");
	int ff = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	while (write(ff, zeros, sizeof(zeros)) > 0)
		;
	while (write(ff, zeros, 1) > 0)
		;
	close(ff);
	/* 4096 - 3801 = 295 bytes of room: line 1 takes 264 bytes, or 275
	 * enriched ({"msg":"..."} adds 11) */
	size_t len1 = 263, n = len1 + 1 + 101;
	memset(buf, 'a', len1);
	buf[len1] = '\n';
	memset(buf + len1 + 1, 'b', 100);
	buf[n - 1] = '\n';
	errno = 0;
	ssize_t r = write(fd, buf, n);
	record("first=%s count=%zd\n", outcome(r, n, errno), r);
	if (unlink(filler) != 0)
		die("unlink");
	size_t done = r > 0 ? (size_t)r : 0;
	while (done < n && (r = write(fd, buf + done, n - done)) > 0)
		done += (size_t)r;
	record("rest=%s\n", done == n ? "written" : "not");
	close(fd);
}

/* A line torn by a full disk; space comes back; a fork child writes a
 * line, then the parent. */
static void sc_full_fork(const char *dir)
{
	write_filler(dir);
	int fd = open(dir_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open");
	while (write(fd, line, LINE_LEN) == LINE_LEN)
		;
	if (unlink(dir_filler) != 0)
		die("unlink");
	pid_t child = fork();
	if (child == 0) {
		_exit(write(fd, "child line\n", 11) == 11 ? 0 : 1);
	}
	int status;
	waitpid(child, &status, 0);
	record("child=%d parent=%s\n", WEXITSTATUS(status),
	       outcome(write(fd, "parent line\n", 12), 12, errno));
	close(fd);
}

/* A line torn by write() on fd 2; space comes back; the next line goes
 * through stderr, then one through write() again. */
static void sc_full_then_stdio(const char *dir)
{
	write_filler(dir);
	int fd = open(dir_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 2) != 2)
		die("open");
	close(fd);
	while (write(2, line, LINE_LEN) == LINE_LEN)
		;
	if (unlink(dir_filler) != 0)
		die("unlink");
	record("fprintf=%d\n", fprintf(stderr, "via stdio\n"));
	record("write=%s\n", outcome(write(2, "via write\n", 10), 10, errno));
}

/* fwrite of a line to a line-buffered stream on a full disk: glibc's
 * fwrite gives the whole count and shows the failed flush in ferror. */
static void sc_full_fwrite_line(const char *dir)
{
	write_filler(dir);
	FILE *f = fopen(dir_log, "w");
	if (!f || setvbuf(f, NULL, _IOLBF, BUFSIZ) != 0 || fwrite("start ", 1, 6, f) != 6)
		die("fopen");
	static char zeros[4096];
	int ff = open(dir_filler, O_WRONLY | O_APPEND);
	while (write(ff, zeros, sizeof(zeros)) > 0)
		;
	close(ff);
	errno = 0;
	size_t r = fwrite("hello\n", 1, 6, f);
	record("fwrite=%zu errno=%s ferror=%d\n", r, errno == ENOSPC ? "ENOSPC" : "other",
	       ferror(f) != 0);
}

/* One thread leaves a line unfinished on six log files at once, more than
 * the shim keeps per thread, then finishes each. */
static void sc_many_unfinished(const char *dir)
{
	int fds[6];
	for (int i = 0; i < 6; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/f%d.log", dir, i);
		fds[i] = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fds[i] < 0 || write(fds[i], "start of line, ", 15) != 15)
			die("start");
	}
	for (int i = 0; i < 6; i++)
		if (write(fds[i], "rest of line\n", 13) != 13)
			die("rest");
	record("written=6\n");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	results = fopen(argv[2], "w");
	if (!results)
		return 2;
	make_line();
	const char *sc = argv[1], *dir = argc > 3 ? argv[3] : NULL;
	if (!strcmp(sc, "full_write") && dir)
		sc_full(false, dir);
	else if (!strcmp(sc, "full_writev") && dir)
		sc_full(true, dir);
	else if (!strcmp(sc, "full_stdio_full") && dir)
		sc_full_stdio(_IOFBF, dir);
	else if (!strcmp(sc, "full_stdio_line") && dir)
		sc_full_stdio(_IOLBF, dir);
	else if (!strcmp(sc, "full_stdio_none") && dir)
		sc_full_stdio(_IONBF, dir);
	else if (!strcmp(sc, "deleted") && dir)
		sc_moved(false, dir);
	else if (!strcmp(sc, "renamed") && dir)
		sc_moved(true, dir);
	else if (!strcmp(sc, "pipe_default"))
		sc_pipe_reader_exits(false);
	else if (!strcmp(sc, "pipe_ignored"))
		sc_pipe_reader_exits(true);
	else if (!strcmp(sc, "nofile"))
		sc_nofile();
	else if (!strcmp(sc, "no_memory"))
		sc_no_memory();
	else if (!strcmp(sc, "full_two_lines") && dir)
		sc_full_two_lines(dir);
	else if (!strcmp(sc, "full_fork") && dir)
		sc_full_fork(dir);
	else if (!strcmp(sc, "full_then_stdio") && dir)
		sc_full_then_stdio(dir);
	else if (!strcmp(sc, "full_fwrite_line") && dir)
		sc_full_fwrite_line(dir);
	else if (!strcmp(sc, "many_unfinished") && dir)
		sc_many_unfinished(dir);
	else if (!strcmp(sc, "thread_fail"))
		sc_thread_fail();
	else if (!strcmp(sc, "eintr"))
		sc_eintr();
	else if (!strcmp(sc, "reused_fd"))
		sc_reused_fd();
	else if (!strcmp(sc, "dup2_race") && dir)
		sc_dup2_race(dir);
	else if (!strcmp(sc, "pipe_paused") && dir)
		sc_pipe_paused(dir);
	else if (!strcmp(sc, "syslog_paused") && dir)
		sc_syslog_paused(dir);
	else
		return 2;
	record("done=1\n");
	return 0;
}
