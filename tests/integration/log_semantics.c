/*
 * log_semantics.c - a legacy-style test program for test_semantics.py: it
 * performs one logging scenario (argv[1]) with plain write/writev/_exit/fork
 * calls and records what the calls returned (values, errno) in a results
 * file (argv[2]) as key=value lines. The driver runs it with and without
 * libreqid.so and compares bytes, return values and errno.
 *
 * It knows nothing of the shim and must never mention it, never use stdio on
 * fd 1 or 2, and never write its observations to a log descriptor: results go
 * only to the results file. For a request context it accepts a loopback
 * connection from itself and reads an HTTP request head carrying
 * "X-Request-ID: sem-1", then never writes to that connection.
 *
 *   log_semantics SCENARIO RESULTS [ARGS...]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	case 1234: return "1234";
	default: return "other";
	}
}

/* ---- a request of our own --------------------------------------------- */

static int listen_fd = -1, client_fd = -1, server_fd = -1;

static void send_request(int client, int server, const char *id)
{
	char req[256], buf[512];
	size_t got = 0;
	int n = snprintf(req, sizeof(req), "GET /x HTTP/1.1\r\nX-Request-ID: %s\r\n\r\n", id);
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

/* Accepts a loopback connection from ourselves and reads one request head
 * carrying id on it: the accepted side serves that request. */
static void open_request(const char *id, int *client, int *server)
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
	send_request(*client, *server, id);
}

/* From here on this thread is serving request id. */
static void enter_request(const char *id)
{
	open_request(id, &client_fd, &server_fd);
}

static void answer(int client, int server)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	char buf[128];
	if (write(server, resp, sizeof(resp) - 1) != sizeof(resp) - 1)
		die("server write");
	if (read(client, buf, sizeof(buf)) != sizeof(resp) - 1)
		die("client read");
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

static void put_line(const char *line)
{
	size_t n = strlen(line);
	if (write(1, line, n) != (ssize_t)n)
		die("log write");
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

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	results = fopen(argv[2], "w");
	if (!results)
		return 2;
	const char *s = argv[1];
	if (!strcmp(s, "multiline"))
		sc_multiline();
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
	else {
		record("unknown scenario %s", s);
		fclose(results);
		return 2;
	}
	if (fclose(results) != 0)
		return 3;
	return 0;
}
