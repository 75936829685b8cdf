/*
 * log_semantics.c - a legacy-style test program for test_semantics.py: it
 * performs one logging scenario (argv[1]) with plain write/writev/_exit/fork
 * calls and records what the calls returned (values, errno) in a results
 * file (argv[2]) as key=value lines. The driver runs it with and without
 * libreqid.so and compares bytes, return values and errno.
 *
 * It knows nothing of the shim and must never mention it, never write to fd 1
 * or 2 through stdio (one scenario closes stdout with fclose), and never
 * write its observations to a log descriptor: results go only to the results
 * file. For a request context it accepts a loopback connection from itself
 * and reads an HTTP request head carrying "X-Request-ID: sem-1"; scenarios
 * that answer a request say so.
 *
 * The same source is also built with -O2 -D_FORTIFY_SOURCE=2, where read()
 * and recv() into a fixed-size buffer become __read_chk and __recv_chk (the
 * "fortify" scenario).
 *
 *   log_semantics SCENARIO RESULTS [ARGS...]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
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
	fputc('\n', results);
}

static const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case EAGAIN: return "EAGAIN";
	case EBADF: return "EBADF";
	case EINTR: return "EINTR";
	case EPIPE: return "EPIPE";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOTSOCK: return "ENOTSOCK";
	case 1234: return "1234";
	default: return "other";
	}
}

/* ---- a request of our own --------------------------------------------- */

static int listen_fd = -1, client_fd = -1, server_fd = -1;

static void send_request_to(int client, int server, const char *target, const char *id)
{
	char req[256], buf[512];
	size_t got = 0;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", target,
			 id);
	if (write(client, req, (size_t)n) != n)
		die("client write");
	while (got < (size_t)n) {
		ssize_t r = read(server, buf + got, sizeof(buf) - got);
		if (r <= 0)
			die("server read");
		got += (size_t)r;
	}
	if (got != (size_t)n || memcmp(buf, req, got) != 0)
		die("request bytes");
}

static void send_request(int client, int server, const char *id)
{
	send_request_to(client, server, "/x", id);
}

/* Accepts a loopback connection from ourselves. */
static void open_conn(int *client, int *server)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	if (listen_fd < 0) {
		listen_fd = socket(AF_INET, SOCK_STREAM, 0);
		if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(listen_fd, 4) < 0)
			die("listen");
	}
	if (getsockname(listen_fd, (struct sockaddr *)&a, &alen) < 0)
		die("getsockname");
	*client = socket(AF_INET, SOCK_STREAM, 0);
	if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	*server = accept(listen_fd, NULL, NULL);
	if (*server < 0)
		die("accept");
}

/* Accepts a loopback connection from ourselves and reads one request head
 * carrying id on it: the accepted side serves that request. */
static void open_request(const char *id, int *client, int *server)
{
	open_conn(client, server);
	send_request(*client, *server, id);
}

/* From here on this thread is serving request id. */
static void enter_request(const char *id)
{
	open_request(id, &client_fd, &server_fd);
}

/* Answers the request with an empty response and reads it on the client
 * side, up to its blank line (the shim may add a header to it). */
static void answer(int client, int server)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char buf[512];
	size_t got = 0;
	if (write(server, resp, sizeof(resp) - 1) != sizeof(resp) - 1)
		die("server write");
	while (got < 4 || memcmp(buf + got - 4, "\r\n\r\n", 4) != 0) {
		ssize_t r = read(client, buf + got, sizeof(buf) - got);
		if (r <= 0)
			die("client read");
		got += (size_t)r;
	}
}

/* ---- scenarios -------------------------------------------------------- */

static void sc_multiline(void)
{
	enter_request("sem-1");
	errno = 1234;
	ssize_t r = write(1, "a\nb\nc\n", 6);
	int e = errno;
	record("ret=%zd errno=%s", r, errno_name(e));
}

/* A program started for a request (REQID_REQUEST_ID set by its parent):
 * its own lines carry that id, but a writev of lines over several buffers
 * is a batch, and a write of two lines is its own. */
static void sc_exec_writev(void)
{
	struct iovec iov[2] = {
		{.iov_base = "a\n", .iov_len = 2},
		{.iov_base = "b\n", .iov_len = 2},
	};
	errno = 1234;
	ssize_t r1 = writev(1, iov, 2);
	ssize_t r2 = write(1, "c\nd\n", 4);
	ssize_t r3 = write(1, "e\n", 2);
	int e = errno;
	record("ret=%zd,%zd,%zd errno=%s", r1, r2, r3, errno_name(e));
}

static void sc_pieces(void)
{
	enter_request("sem-1");
	errno = 1234;
	ssize_t r1 = write(1, "par", 3);
	ssize_t r2 = write(1, "tial", 4);
	ssize_t r3 = write(1, " line\n", 6);
	int e = errno;
	record("ret=%zd,%zd,%zd errno=%s", r1, r2, r3, errno_name(e));
}

static void sc_writev(void)
{
	enter_request("sem-1");
	struct iovec iov[3] = {
		{.iov_base = "x\ny", .iov_len = 3},
		{.iov_base = "z\n", .iov_len = 2},
		{.iov_base = "w", .iov_len = 1},
	};
	errno = 1234;
	ssize_t r1 = writev(1, iov, 3);
	ssize_t r2 = write(1, "\n", 1);
	int e = errno;
	record("ret=%zd,%zd errno=%s", r1, r2, errno_name(e));
}

#define BIG_LINE (1024 * 1024)

static void sc_bigline(void)
{
	enter_request("sem-1");
	char *buf = malloc(BIG_LINE + 1);
	if (!buf)
		die("malloc");
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < BIG_LINE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)(0x20 + (x >> 32) % 95); /* printable ASCII */
	}
	buf[BIG_LINE] = '\n';
	errno = 1234;
	ssize_t r = write(1, buf, BIG_LINE + 1);
	int e = errno;
	record("ret=%zd errno=%s", r, errno_name(e));
	free(buf);
}

/* Quote, backslash, control bytes, DEL, a NUL, invalid and valid UTF-8. */
static const char escape_line[] =
	"q\"uote b\\ack \x01\x1f\x1b" "[0m del\x7f tab\t cr\r nul\0 end"
	" ff\xff fe\xfe lone\x80 bad2\xc3" "( trunc3\xe2\x82 surr\xed\xa0\x80"
	" big\xf4\x90\x80\x80 over\xc0\xaf ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 tail\n";

static void sc_escape(void)
{
	enter_request("sem-1");
	errno = 1234;
	ssize_t r = write(1, escape_line, sizeof(escape_line) - 1);
	int e = errno;
	record("ret=%zd errno=%s", r, errno_name(e));
}

static void sc_jsonobj(void)
{
	enter_request("sem-1");
	const char line[] = "{\"level\":\"info\",\"n\":1}\n";
	errno = 1234;
	ssize_t r = write(1, line, sizeof(line) - 1);
	int e = errno;
	record("ret=%zd errno=%s", r, errno_name(e));
}

#define THREADS 8
#define THREAD_LINES 2000

static _Atomic int thread_bad;

static void *thread_lines(void *arg)
{
	int t = (int)(intptr_t)arg;
	char pre[16], rest[64];
	for (int j = 0; j < THREAD_LINES; j++) {
		int a = snprintf(pre, sizeof(pre), "t%d-", t);
		int b = snprintf(rest, sizeof(rest), "%04d payload %d.%d end\n", j, t, j);
		if (write(1, pre, (size_t)a) != a)
			thread_bad++;
		if (write(1, rest, (size_t)b) != b)
			thread_bad++;
	}
	return NULL;
}

static void sc_threads(void)
{
	enter_request("sem-1");
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		if (pthread_create(&th[t], NULL, thread_lines, (void *)(intptr_t)t) != 0)
			die("pthread_create");
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	record("bad=%d", thread_bad);
}

/* argv: CTL_FD (driver writes a byte when it has drained fd 1), NOTE_FD
 * (we write a byte when a write to fd 1 failed). */
static void sc_nonblock(int ctl_fd, int note_fd)
{
	enter_request("sem-1");
	int fl = fcntl(1, F_GETFL);
	if (fl < 0 || fcntl(1, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
	char line[64];
	int i = 0, n;
	ssize_t r;
	for (;; i++) {
		n = snprintf(line, sizeof(line), "nb line %06d\n", i);
		errno = 1234;
		r = write(1, line, (size_t)n);
		if (r != n)
			break;
		if (i > 10000000)
			die("pipe never filled");
	}
	int e = errno;
	record("fail_ret=%zd fail_errno=%s", r, errno_name(e));
	record("failed_at=%d", i);
	fflush(results);
	char c = 'E';
	if (write(note_fd, &c, 1) != 1 || read(ctl_fd, &c, 1) != 1)
		die("handshake");
	int retries = 0;
	do {
		retries++;
		errno = 1234;
		r = write(1, line, (size_t)n);
	} while (r < 0 && errno == EAGAIN && retries < 1000000);
	record("retry_ret=%zd retry_errno=%s", r, errno_name(errno));
	/* 50 more lines, then the driver sees EOF */
	int bad = 0;
	for (int k = 1; k <= 50; k++) {
		n = snprintf(line, sizeof(line), "nb line %06d\n", i + k);
		do {
			r = write(1, line, (size_t)n);
		} while (r < 0 && errno == EAGAIN);
		if (r != n)
			bad++;
	}
	record("last=%d bad=%d", i + 50, bad);
}

/* how: exit, _exit or close; where: req or noreq. */
static void sc_partial(const char *how, const char *where)
{
	if (strcmp(where, "req") == 0)
		enter_request("sem-1");
	errno = 1234;
	ssize_t r = write(1, "no newline at end", 17);
	int e = errno;
	record("ret=%zd errno=%s", r, errno_name(e));
	if (strcmp(how, "close") == 0) {
		errno = 1234;
		int c = close(1);
		record("close=%d errno=%s", c, errno_name(errno));
	}
	fflush(results);
	if (strcmp(how, "_exit") == 0)
		_exit(0);
	exit(0);
}

static void sc_outside(void)
{
	errno = 1234;
	ssize_t r1 = write(1, "plain line\n", 11);
	ssize_t r2 = write(1, "{\"level\":\"info\",\"n\":1}\n", 23);
	int e = errno;
	record("ret=%zd,%zd errno=%s", r1, r2, errno_name(e));
}

static void sc_ebadf(void)
{
	enter_request("sem-1");
	if (close(2) != 0)
		die("close 2");
	errno = 0;
	ssize_t r1 = write(2, "x\n", 2);
	int e1 = errno;
	struct iovec iov = {.iov_base = "y\n", .iov_len = 2};
	errno = 0;
	ssize_t r2 = writev(2, &iov, 1);
	int e2 = errno;
	record("write=%zd/%s writev=%zd/%s", r1, errno_name(e1), r2, errno_name(e2));
}

#define SIG_MAIN_LINES 20000
static volatile sig_atomic_t sig_hits;

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	if (write(1, "SIGLINE\n", 8) == 8)
		sig_hits++;
	errno = saved;
}

static void sc_signal(void)
{
	enter_request("sem-1");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		die("sigaction");
	struct itimerval it = {.it_interval = {0, 50}, .it_value = {0, 50}};
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		die("setitimer");
	int bad = 0;
	char num[16];
	for (int i = 0; i < SIG_MAIN_LINES; i++) {
		int n = snprintf(num, sizeof(num), "%06d", i);
		if (write(1, "main-", 5) != 5)
			bad++;
		if (write(1, num, (size_t)n) != n)
			bad++;
		if (i % 100 == 0)
			raise(SIGALRM); /* certainly between two pieces */
		if (write(1, " end\n", 5) != 5)
			bad++;
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	record("bad=%d hits=%d", bad, (int)sig_hits);
}

static void sc_fork(void)
{
	enter_request("sem-1");
	ssize_t r1 = write(1, "abc", 3);
	fflush(results); /* the child must not flush our results twice */
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (write(1, "child\n", 6) != 6)
			exit(3);
		exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	ssize_t r2 = write(1, "def\n", 4);
	record("ret=%zd,%zd child=%d", r1, r2, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* A thread started during request 1 outlives it: once the connection has
 * moved on to request 2, its lines must not carry request 1's id. */
static int wake[2], ready[2];

static void put_fd(int fd, const char *line)
{
	size_t n = strlen(line);
	if (write(fd, line, n) != (ssize_t)n)
		die("log write");
}

static void put_line(const char *line)
{
	put_fd(1, line);
}

static void *helper_thread(void *arg)
{
	char c;
	(void)arg;
	put_line("helper during request 1\n");
	if (write(ready[1], "r", 1) != 1 || read(wake[0], &c, 1) != 1)
		die("helper pipes");
	put_line("helper after request 1 ended\n");
	return NULL;
}

static void sc_stale_helper(void)
{
	pthread_t t;
	char c;
	enter_request("sem-1");
	if (pipe(wake) || pipe(ready) || pthread_create(&t, NULL, helper_thread, NULL))
		die("helper");
	if (read(ready[0], &c, 1) != 1)
		die("ready");
	answer(client_fd, server_fd);
	send_request(client_fd, server_fd, "sem-2");
	put_line("main serving request 2\n");
	if (write(wake[1], "w", 1) != 1 || pthread_join(t, NULL))
		die("join");
	record("done");
}

/* One thread reads two connections' requests with no wait in between (a
 * busy-polling loop): a line it then writes may be for either, so it must
 * carry neither id. */
static void sc_two_conns(void)
{
	int cx, sx, cy, sy;
	open_request("sem-x", &cx, &sx);
	open_request("sem-y", &cy, &sy);
	put_line("line for x\n");
	answer(cx, sx);
	record("done");
}

/* A client's header value, logged in quotes, copies the request line of
 * another request (one answered before): a line quoting it alone is not
 * named after that request while the thread is certain of its own (it gets
 * no id: which of the two is wrong is not known), nor in a write of two
 * lines or after a lock wait, where the thread's lines get ids only by
 * naming; a line quoting its own request line too, quoted or bare, names
 * neither (the thread's own request stands; after the connection closed,
 * the line gets none). A line quoting a request line that is no request's
 * the shim saw is not the thread's request's either, and a write of two
 * lines that both quote the thread's own request line is a buffer's
 * flush (a request has one access line). */
static void sc_forged_quote(void)
{
	int cv, sv, ca, sa;
	sem_t lock;
	if (sem_init(&lock, 0, 1) != 0)
		die("sem_init");
	open_conn(&cv, &sv);
	send_request_to(cv, sv, "/victim", "sem-v");
	put_line("serving \"GET /victim HTTP/1.1\"\n");
	answer(cv, sv);
	close(sv);
	close(cv);
	open_conn(&ca, &sa);
	send_request_to(ca, sa, "/attacker", "sem-a");
	put_line("handling ua=\"GET /victim HTTP/1.1\" path=/attacker\n");
	put_line("ua=\"GET /victim HTTP/1.1\" req=\"GET /attacker HTTP/1.1\"\n");
	put_line("req=\"GET /attacker HTTP/1.1\"\n");
	put_line("two: ua=\"GET /victim HTTP/1.1\"\nand \"GET /attacker HTTP/1.1\"\n");
	put_line("other \"GET /elsewhere?x=1 HTTP/1.1\"\n");
	put_line("flushed \"GET /attacker HTTP/1.1\" 1\nflushed \"GET /attacker HTTP/1.1\" 2\n");
	if (sem_wait(&lock) != 0)
		die("sem_wait");
	put_line("locked: ua=\"GET /victim HTTP/1.1\"\n");
	put_line("locked: \"GET /attacker HTTP/1.1\"\n");
	sem_post(&lock);
	answer(ca, sa);
	close(sa);
	close(ca);
	put_line("ua=\"GET /victim HTTP/1.1\" req=[GET /attacker HTTP/1.1] 200\n");
	put_line("\"GET /attacker HTTP/1.1\" 200\n");
	sem_destroy(&lock);
	record("done");
}

/* A thread that wrote part of its response (in a bracket: its lines are
 * held until its next I/O on the connection) holds a line quoting another
 * request's line, then meets a boundary (a lock wait) that releases its
 * held lines with no request: that line gets no id, not the other
 * request's; a held line quoting its own request line keeps its id. So
 * for the lines it writes after the boundary, before its next I/O. */
static void sc_forged_held(void)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
	int cv, sv, ca, sa;
	sem_t lock;
	if (sem_init(&lock, 0, 1) != 0)
		die("sem_init");
	open_conn(&cv, &sv);
	send_request_to(cv, sv, "/victim", "sem-v");
	answer(cv, sv);
	close(sv);
	close(cv);
	open_conn(&ca, &sa);
	send_request_to(ca, sa, "/attacker", "sem-a");
	if (write(sa, head, sizeof head - 1) != sizeof head - 1)
		die("server write");
	put_line("held ua=\"GET /victim HTTP/1.1\"\n");
	put_line("held \"GET /attacker HTTP/1.1\"\n");
	if (sem_wait(&lock) != 0)
		die("sem_wait");
	sem_post(&lock);
	put_line("after ua=\"GET /victim HTTP/1.1\"\n");
	put_line("after \"GET /attacker HTTP/1.1\"\n");
	if (write(sa, "ok", 2) != 2)
		die("server write");
	close(sa);
	close(ca);
	sem_destroy(&lock);
	record("done");
}

/* A worker answers connection x in full, gives it to an epoll instance to
 * watch, then takes up y's request (a pool whose keep-alive connections go
 * back to a listener between requests): it serves one connection at a
 * time, and y's line is y's ("parked"). Any step short of that leaves it
 * serving both at once, and y's line without an id: x not given to epoll
 * ("unparked"), x's response written only in part ("half"), a second
 * request on x read with the first ("pipelined"), a second request on x
 * read after the answer and only an empty write made to it ("zerowrite"),
 * a thread that waited on the epoll instance itself, which then held x
 * alone ("waited": an event loop whose second connection just came). */
static void sc_turns(const char *mode)
{
	static const char head_only[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	int cx, sx, cy, sy;
	if (!strcmp(mode, "pipelined")) {
		static const char two[] = "GET /x HTTP/1.1\r\nX-Request-ID: sem-x1\r\n\r\n"
					  "GET /x HTTP/1.1\r\nX-Request-ID: sem-x2\r\n\r\n";
		char buf[sizeof(two)];
		size_t got = 0;
		open_conn(&cx, &sx);
		if (write(cx, two, sizeof(two) - 1) != sizeof(two) - 1)
			die("client write");
		while (got < sizeof(two) - 1) {
			ssize_t r = read(sx, buf + got, sizeof(buf) - got);
			if (r <= 0)
				die("server read");
			got += (size_t)r;
		}
	} else {
		open_request("sem-x", &cx, &sx);
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = sx};
	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll");
	if (!strcmp(mode, "waited")) {
		struct epoll_event got;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, sx, &ev) != 0 || epoll_wait(ep, &got, 1, 0) < 0)
			die("epoll wait");
	}
	if (!strcmp(mode, "half")) {
		if (write(sx, head_only, sizeof(head_only) - 1) != sizeof(head_only) - 1)
			die("server write");
	} else {
		answer(cx, sx);
	}
	if (!strcmp(mode, "zerowrite")) {
		send_request(cx, sx, "sem-x2");
		if (write(sx, "", 0) != 0)
			die("empty write");
	}
	if (strcmp(mode, "unparked") != 0 &&
	    epoll_ctl(ep, !strcmp(mode, "waited") ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sx, &ev) != 0)
		die("epoll park");
	open_request("sem-y", &cy, &sy);
	put_line("line for y\n");
	answer(cy, sy);
	record("done");
}

/* ---- review fixes ----------------------------------------------------- */

static const char ok_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static void read_exactly(int fd, char *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			die("read_exactly");
		got += (size_t)r;
	}
}

/* Connection A is answered through stdio and closed with fclose (glibc
 * closes the fd inside, where no hook sees a close()); B's request is read
 * next, then a data file opened for B gets A's old number. */
static void sc_fd_reuse(const char *upload)
{
	int ca, a, cb, b;
	char buf[128];
	open_conn(&ca, &a);
	open_conn(&cb, &b);
	send_request(ca, a, "sem-1");
	put_line("handling A\n");
	FILE *f = fdopen(a, "w");
	if (!f || fputs(ok_resp, f) == EOF)
		die("fdopen");
	errno = 1234;
	int fc = fclose(f);
	record("fclose=%d errno=%s", fc, errno_name(errno));
	read_exactly(ca, buf, sizeof(ok_resp) - 1);
	send_request(cb, b, "sem-2");
	put_line("handling B\n");
	int up = open(upload, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (up < 0)
		die("open upload");
	record("reused=%d", up == a);
	ssize_t w1 = write(up, "chunk1", 6);
	put_line("B: stored chunk 1\n");
	ssize_t w2 = write(up, "chunk2", 6);
	if (close(up) != 0)
		die("close upload");
	record("chunks=%zd,%zd", w1, w2);
	answer(cb, b);
	put_line("B done\n");
	if (close(b) != 0)
		die("close b");
	put_line("idle\n");
}

/* stdout closed with fclose; a data file opened next gets fd 1. */
static void sc_fclose_stdout(const char *data)
{
	errno = 1234;
	int fc = fclose(stdout);
	int e = errno;
	int fd = open(data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open data");
	errno = 1234;
	ssize_t r1 = write(fd, "record-1\n", 9);
	ssize_t r2 = write(fd, "\x01\x02no-newline", 12);
	int e2 = errno;
	int c = close(fd);
	record("fclose=%d/%s fd=%d ret=%zd,%zd errno=%s close=%d", fc, errno_name(e), fd, r1, r2,
	       errno_name(e2), c);
}

/* Built with _FORTIFY_SOURCE=2, read() and recv() of want bytes (a run-time
 * value, as a legacy server's configured buffer size) into fixed-size
 * buffers are __read_chk and __recv_chk. Two keep-alive requests. */
static void read_head_chk(int s, size_t n, size_t want, bool use_recv)
{
	char head[512], acc[512];
	for (size_t got = 0; got < n;) {
		ssize_t r = use_recv ? recv(s, head, want, 0) : read(s, head, want);
		if (r <= 0 || got + (size_t)r > sizeof(acc))
			die("fortified read");
		memcpy(acc + got, head, (size_t)r);
		got += (size_t)r;
	}
}

static void sc_fortify(size_t want)
{
	int c, s;
	char req[256];
	open_conn(&c, &s);
	int n = snprintf(req, sizeof(req), "GET /1 HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", "sem-1");
	if (write(c, req, (size_t)n) != n)
		die("client write");
	read_head_chk(s, (size_t)n, want, false);
	put_line("handling 1\n");
	answer(c, s);
	put_line("1 done\n");
	n = snprintf(req, sizeof(req), "GET /2 HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", "sem-2");
	if (write(c, req, (size_t)n) != n)
		die("client write");
	read_head_chk(s, (size_t)n, want, true);
	put_line("handling 2\n");
	answer(c, s);
	put_line("2 done\n");
	if (close(s) != 0)
		die("close");
	record("done");
}

/* The body of a request skipped with recv(MSG_TRUNC) and no buffer: the
 * bytes are consumed unseen. */
static void sc_trunc(void)
{
	static const char head[] =
		"POST /up HTTP/1.1\r\nX-Request-ID: sem-1\r\nContent-Length: 5\r\n\r\n";
	char buf[sizeof(head)];
	int c, s;
	open_conn(&c, &s);
	if (write(c, head, sizeof(head) - 1) != sizeof(head) - 1 || write(c, "hello", 5) != 5)
		die("client write");
	read_exactly(s, buf, sizeof(head) - 1);
	put_line("got head\n");
	errno = 1234;
	ssize_t r = recv(s, NULL, 5, MSG_TRUNC);
	int e = errno;
	record("trunc=%zd errno=%s", r, errno_name(e));
	put_line("body skipped\n");
	answer(c, s);
	send_request(c, s, "sem-2");
	put_line("next request\n");
	answer(c, s);
}

/* CGI / inetd: a child's stdout is the client connection. */
static void sc_cgi(void)
{
	char buf[256];
	size_t got = 0;
	enter_request("sem-1");
	fflush(results);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (dup2(server_fd, 1) != 1)
			_exit(126);
		execl("/bin/sh", "sh", "-c", "echo 'HTTP/1.0 200 OK'; echo; echo hello", (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (close(server_fd) != 0)
		die("close");
	for (;;) {
		ssize_t r = read(client_fd, buf + got, sizeof(buf) - got);
		if (r < 0)
			die("client read");
		if (r == 0 || (got += (size_t)r) == sizeof(buf))
			break;
	}
	char hex[2 * sizeof(buf) + 1];
	for (size_t i = 0; i < got; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)buf[i]);
	hex[2 * got] = '\0';
	record("child=%d client=%s", WIFEXITED(status) ? WEXITSTATUS(status) : -1, hex);
}

/* A worker started lazily while request A is served takes jobs from a pipe;
 * B's handler thread is started after the main thread answered A. */
static int jobs[2], job_done[2], job_a, job_cb, job_b;
static atomic_int worker_started;

static void *job_worker(void *arg)
{
	char tok[64], line[128];
	(void)arg;
	put_line("worker: started\n");
	worker_started = 1;
	for (;;) {
		ssize_t n = read(jobs[0], tok, sizeof(tok) - 1);
		if (n <= 0)
			return NULL;
		tok[n] = '\0';
		snprintf(line, sizeof(line), "worker: processing job for %s\n", tok);
		put_line(line);
		if (write(job_done[1], "d", 1) != 1)
			die("job_done");
	}
}

static void *job_handler_b(void *arg)
{
	char buf[256], c;
	(void)arg;
	/* the client already sent B's head */
	read_exactly(job_b, buf, strlen("GET /x HTTP/1.1\r\nX-Request-ID: sem-2\r\n\r\n"));
	put_line("B: start\n");
	if (write(jobs[1], "sem-2", 5) != 5 || read(job_done[0], &c, 1) != 1)
		die("job");
	put_line("B: job done\n");
	answer(job_cb, job_b);
	return NULL;
}

static void sc_job_thread(void)
{
	int ca;
	pthread_t worker, handler;
	char req[] = "GET /x HTTP/1.1\r\nX-Request-ID: sem-2\r\n\r\n";
	if (pipe(jobs) || pipe(job_done))
		die("pipe");
	open_conn(&ca, &job_a);
	open_conn(&job_cb, &job_b);
	if (write(job_cb, req, sizeof(req) - 1) != sizeof(req) - 1)
		die("client write");
	send_request(ca, job_a, "sem-1");
	put_line("A: start\n");
	if (pthread_create(&worker, NULL, job_worker, NULL))
		die("pthread_create");
	while (!worker_started)
		; /* no call the shim sees: the main thread stays on A */
	answer(ca, job_a); /* A stays open (keep-alive) */
	if (pthread_create(&handler, NULL, job_handler_b, NULL) || pthread_join(handler, NULL))
		die("handler");
	if (close(jobs[1]) || pthread_join(worker, NULL))
		die("worker");
	record("done");
}

/* how: abort or term. A line held after the response, then death. The
 * fatal signals' dispositions are recorded first: before any line is
 * pending they are the defaults, as bare. */
static void sc_die(const char *how)
{
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM};
	char seen[64] = "";
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction old;
		sigaction(fatal[i], NULL, &old);
		strcat(seen, old.sa_handler == SIG_DFL ? " dfl" : " set");
	}
	record("dispositions:%s", seen);
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	enter_request("sem-1");
	put_line("start\n");
	answer(client_fd, server_fd);
	put_line("done status=200\n");
	record("dying");
	fflush(results);
	if (strcmp(how, "abort") == 0)
		abort();
	raise(SIGTERM);
	die("still alive");
}

/* where: req or noreq. An unfinished line when the process execs. */
static void sc_exec_partial(const char *where)
{
	if (strcmp(where, "req") == 0)
		enter_request("sem-1");
	errno = 1234;
	ssize_t r = write(1, "pending", 7);
	record("ret=%zd errno=%s", r, errno_name(errno));
	fflush(results);
	execl("/bin/true", "true", (char *)NULL);
	die("execl");
}

/* Lines held after the response, alternately on fds 1 and 2 (the driver
 * points both at one file). */
static void sc_two_log_fds(void)
{
	enter_request("sem-1");
	answer(client_fd, server_fd);
	put_fd(1, "1 access: GET /x 200\n");
	put_fd(2, "2 warn: slow response\n");
	put_fd(1, "3 access: bytes=38\n");
	put_fd(2, "4 info: done\n");
	if (close(server_fd) != 0)
		die("close");
	record("done");
}

/* After the response, a line held on fd 2, then lines through copies of
 * fd 2 each closed at once (PHP's php://stderr), one of them in two
 * pieces through two copies (the driver points fds 1 and 2 at one file). */
static void sc_dup_close(void)
{
	static const char *const pieces[] = {"2 on a copy\n", "3 begun, ", "ended\n"};
	enter_request("sem-1");
	answer(client_fd, server_fd);
	put_fd(2, "1 first, on fd 2\n");
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		int copy = dup(2);
		if (copy < 0 || write(copy, pieces[i], strlen(pieces[i])) != (ssize_t)strlen(pieces[i]) ||
		    close(copy) != 0)
			die("copy");
	}
	put_fd(2, "4 last, on fd 2\n");
	if (close(server_fd) != 0)
		die("close");
	record("done");
}

/* A 200 KB line to an empty non-blocking pipe that nobody reads (it fills
 * in the middle of the line), another line, then the driver drains. */
static void sc_big_nonblock(int ctl_fd, int note_fd)
{
	enum { BIG = 200000 };
	enter_request("sem-1");
	int fl = fcntl(1, F_GETFL);
	if (fl < 0 || fcntl(1, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
	char *big = malloc(BIG + 1);
	if (!big)
		die("malloc");
	memset(big, 'a', BIG);
	big[BIG] = '\n';
	errno = 1234;
	ssize_t r1 = write(1, big, BIG + 1);
	int e1 = errno;
	errno = 1234;
	ssize_t r2 = write(1, "next\n", 5);
	int e2 = errno;
	record("big_ret=%zd big_errno=%s next_ret=%zd next_errno=%s", r1, errno_name(e1), r2,
	       errno_name(e2));
	fflush(results);
	char c = 'E';
	if (write(note_fd, &c, 1) != 1 || read(ctl_fd, &c, 1) != 1)
		die("handshake");
	ssize_t r;
	int retries = 0;
	do {
		retries++;
		errno = 1234;
		r = write(1, "next\n", 5);
	} while (r < 0 && errno == EAGAIN && retries < 100000000);
	record("retry_ret=%zd retry_errno=%s", r, errno_name(errno));
	free(big);
}

/* Invalid arguments on log fd 2 (a regular file, O_APPEND set here). */
static void sc_bad_args(void)
{
	static struct iovec many[IOV_MAX + 1];
	for (int i = 0; i <= IOV_MAX; i++)
		many[i] = (struct iovec){.iov_base = "x", .iov_len = 1};
	many[IOV_MAX].iov_base = "\n";
	int fl = fcntl(2, F_GETFL);
	if (fl < 0 || fcntl(2, F_SETFL, fl | O_APPEND) < 0)
		die("fcntl");
	struct iovec *volatile no_iov = NULL; /* hidden from -Wnonnull */
	ssize_t r;
	errno = 0;
	r = writev(2, no_iov, 1);
	record("writev_null=%zd/%s", r, errno_name(errno));
	errno = 0;
	r = writev(2, many, IOV_MAX + 1);
	record("writev_many=%zd/%s", r, errno_name(errno));
	errno = 0;
	r = sendmsg(2, NULL, 0);
	record("sendmsg_null=%zd/%s", r, errno_name(errno));
	errno = 0;
	r = send(2, "x\n", 2, 0);
	record("send_line=%zd/%s", r, errno_name(errno));
	errno = 0;
	r = send(2, "partial", 7, 0);
	record("send_partial=%zd/%s", r, errno_name(errno));
	errno = 0;
	r = pwrite(2, "x\n", 2, -1);
	record("pwrite_neg=%zd/%s", r, errno_name(errno));
}

/* Run with fd 2 closed: errno as main found it. */
static int errno_at_main;

/* Bytes malloc had taken from the system when main began (0: nothing,
 * the shim's start included, had allocated). */
static size_t arena_at_main;

/* Whether environ was, when main began, the array exec gave the program
 * (after argv's NULL; main's envp is environ as start-up left it): no
 * start-up code had put a copy in its place. */
static bool environ_kept_at_main;

/* What the program found at start: that allocation, and the log files its
 * environment names for its children. */
static void sc_start_env(void)
{
	char ids[1100];
	const char *given = getenv("REQID_LOG_IDS");
	snprintf(ids, sizeof(ids), "%s", given ? given : "-");
	/* The environment the shim set without malloc stays the program's
	 * to change: glibc's setenv and unsetenv work on it. */
	const char *path = getenv("PATH");
	bool changed = setenv("REQID_T30", "x", 1) == 0 && unsetenv("REQID_LOG_IDS") == 0 &&
		       strcmp(getenv("REQID_T30"), "x") == 0 && !getenv("REQID_LOG_IDS") &&
		       (path ? getenv("PATH") && strcmp(getenv("PATH"), path) == 0 : !getenv("PATH"));
	record("arena=%zu log_ids=%s changed=%s environ_kept=%s", arena_at_main, ids,
	       changed ? "yes" : "no", environ_kept_at_main ? "yes" : "no");
}

static void sc_errno_start(void)
{
	errno = 0;
	ssize_t r = write(1, "x\n", 2);
	record("errno_at_main=%d results_fd=%d write=%zd/%s", errno_at_main, fileno(results), r,
	       errno_name(errno));
}

int main(int argc, char **argv)
{
	errno_at_main = errno;
	arena_at_main = mallinfo2().arena;
	environ_kept_at_main = environ == argv + argc + 1;
	if (argc < 3)
		return 2;
	results = fopen(argv[2], "w");
	if (!results)
		return 2;
	const char *s = argv[1];
	if (!strcmp(s, "multiline"))
		sc_multiline();
	else if (!strcmp(s, "exec_writev"))
		sc_exec_writev();
	else if (!strcmp(s, "pieces"))
		sc_pieces();
	else if (!strcmp(s, "writev"))
		sc_writev();
	else if (!strcmp(s, "bigline"))
		sc_bigline();
	else if (!strcmp(s, "escape"))
		sc_escape();
	else if (!strcmp(s, "jsonobj"))
		sc_jsonobj();
	else if (!strcmp(s, "threads"))
		sc_threads();
	else if (!strcmp(s, "nonblock") && argc == 5)
		sc_nonblock(atoi(argv[3]), atoi(argv[4]));
	else if (!strcmp(s, "partial") && argc == 5)
		sc_partial(argv[3], argv[4]);
	else if (!strcmp(s, "outside"))
		sc_outside();
	else if (!strcmp(s, "ebadf"))
		sc_ebadf();
	else if (!strcmp(s, "signal"))
		sc_signal();
	else if (!strcmp(s, "fork"))
		sc_fork();
	else if (!strcmp(s, "stale_helper"))
		sc_stale_helper();
	else if (!strcmp(s, "two_conns"))
		sc_two_conns();
	else if (!strcmp(s, "forged_quote"))
		sc_forged_quote();
	else if (!strcmp(s, "forged_held"))
		sc_forged_held();
	else if (!strcmp(s, "turns") && argc == 4)
		sc_turns(argv[3]);
	else if (!strcmp(s, "fd_reuse") && argc == 4)
		sc_fd_reuse(argv[3]);
	else if (!strcmp(s, "fclose_stdout") && argc == 4)
		sc_fclose_stdout(argv[3]);
	else if (!strcmp(s, "fortify") && argc == 4)
		sc_fortify((size_t)atoi(argv[3]));
	else if (!strcmp(s, "trunc"))
		sc_trunc();
	else if (!strcmp(s, "cgi"))
		sc_cgi();
	else if (!strcmp(s, "job_thread"))
		sc_job_thread();
	else if (!strcmp(s, "die") && argc == 4)
		sc_die(argv[3]);
	else if (!strcmp(s, "exec_partial") && argc == 4)
		sc_exec_partial(argv[3]);
	else if (!strcmp(s, "two_log_fds"))
		sc_two_log_fds();
	else if (!strcmp(s, "dup_close"))
		sc_dup_close();
	else if (!strcmp(s, "big_nonblock") && argc == 5)
		sc_big_nonblock(atoi(argv[3]), atoi(argv[4]));
	else if (!strcmp(s, "bad_args"))
		sc_bad_args();
	else if (!strcmp(s, "errno_start"))
		sc_errno_start();
	else if (!strcmp(s, "start_env"))
		sc_start_env();
	else {
		record("unknown scenario %s", s);
		fclose(results);
		return 2;
	}
	if (fclose(results) != 0)
		return 3;
	return 0;
}
