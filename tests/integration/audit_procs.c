/*
 * audit_procs.c - programs test_audit.py runs under `reqid audit` for the
 * cases whose records are easy to lose or misfile: one scenario (argv[1])
 * each.
 *
 *   clone        the process logs, makes a child with a raw clone system
 *                call (no fork handlers run in it) that logs two lines and
 *                exits, then logs again; every line says which pid wrote it
 *   vfork        the same with a vfork child (which shares the parent's
 *                memory until it exits) that logs one line
 *   clone_fds    a raw clone child closes every descriptor above 2, puts
 *                a data file (argv[2], open for reading and writing, which
 *                it never writes) on numbers 900 to 1023, as a daemon that
 *                keeps its files at fixed numbers might, and logs one line
 *   held_killed  serves one request from a client it forked, answers it,
 *                logs a line after the answer (which the shim holds until
 *                it knows whose the line is) and is killed by SIGKILL
 *   no_memory    serves one request; after reading it and logging a line,
 *                caps its address space so that no more memory can be
 *                mapped, then logs a long line, a line in two pieces and a
 *                short line, and answers
 *
 * It plays a legacy program: it knows nothing of reqid and must never
 * mention it; it logs with write(2) on fd 2, one call per line (but the
 * line in two pieces). The test finds its log calls by their AUDIT markers,
 * which must stay on the lines of the calls.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	_exit(99);
}

/* Waits for child, which must exit with 0. */
static void reap(long child)
{
	int status;
	if (waitpid((pid_t)child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("waitpid");
}

/* A line of a string literal, written where LOG stands (its call site). */
#define LOG(text)                                                                    \
	do {                                                                         \
		if (write(2, text, sizeof text - 1) != (ssize_t)sizeof text - 1)     \
			die("write");                                                \
	} while (0)

/* The pid the kernel gives the calling process (glibc's getpid() is the
 * same call; this says so). */
static int kernel_pid(void)
{
	return (int)syscall(SYS_getpid);
}

static void log_pid(const char *who, const char *what)
{
	char line[128];
	int n = snprintf(line, sizeof line, "%s pid=%d %s\n", who, kernel_pid(), what);
	if (write(2, line, (size_t)n) != n) /* AUDIT clone */
		die("write");
}

static void sc_clone(void)
{
	log_pid("parent", "before");
	long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		die("clone");
	if (child == 0) {
		log_pid("child", "one");
		log_pid("child", "two");
		syscall(SYS_exit_group, 0);
	}
	reap(child);
	log_pid("parent", "after");
}

static void sc_vfork(void)
{
	log_pid("parent", "before");
	pid_t child = vfork();
	if (child < 0)
		die("vfork");
	if (child == 0) {
		log_pid("child", "one");
		_exit(0);
	}
	reap(child);
	log_pid("parent", "after");
}

static void sc_clone_fds(const char *data)
{
	log_pid("parent", "before");
	long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		die("clone");
	if (child == 0) {
		closefrom(3);
		int fd = open(data, O_RDWR);
		if (fd < 0)
			die("open");
		for (int n = 900; n < 1024; n++)
			if (dup2(fd, n) != n)
				die("dup2");
		log_pid("child", "one");
		syscall(SYS_exit_group, 0);
	}
	reap(child);
	log_pid("parent", "after");
}

/* The client: one request with X-Request-ID, then it reads to EOF. */
static void client(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		_exit(98);
	static const char req[] = "GET /req/p1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: id-p1\r\n\r\n";
	if (write(fd, req, sizeof req - 1) != (ssize_t)sizeof req - 1)
		_exit(98);
	char buf[512];
	while (read(fd, buf, sizeof buf) > 0)
		;
	_exit(0);
}

/* Forks the client, accepts its connection and reads its request's head;
 * returns the connection. */
static int accept_request(pid_t *client_pid)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
		die("listen");
	*client_pid = fork();
	if (*client_pid < 0)
		die("fork");
	if (*client_pid == 0)
		client(ntohs(a.sin_port));
	int conn = accept(lfd, NULL, NULL);
	if (conn < 0)
		die("accept");
	close(lfd);
	char head[1024];
	size_t have = 0;
	while (!memmem(head, have, "\r\n\r\n", 4)) {
		ssize_t r = read(conn, head + have, sizeof head - have);
		if (r <= 0)
			die("read");
		have += (size_t)r;
	}
	return conn;
}

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void sc_held_killed(void)
{
	pid_t client_pid;
	int conn = accept_request(&client_pid);
	LOG("request p1 read\n"); /* AUDIT read */
	if (write(conn, answer, sizeof answer - 1) != (ssize_t)sizeof answer - 1)
		die("answer");
	LOG("request p1 answered\n"); /* AUDIT held */
	kill(getpid(), SIGKILL);
}

static void sc_no_memory(void)
{
	pid_t client_pid;
	int conn = accept_request(&client_pid);
	LOG("request p1 read\n");
	static char big[20000];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\n';
	/* the current size, read from /proc, is the cap: any new mapping fails */
	FILE *st = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	if (!st || fscanf(st, "%lu", &pages) != 1)
		die("statm");
	fclose(st);
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) != 0)
		die("getrlimit");
	rl.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE);
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		die("setrlimit");
	if (write(2, big, sizeof big) != (ssize_t)sizeof big) /* AUDIT big */
		die("big");
	if (write(2, "pie", 3) != 3) /* AUDIT pieces */
		die("pie");
	if (write(2, "ces\n", 4) != 4)
		die("ces");
	LOG("short line\n"); /* AUDIT short */
	if (write(conn, answer, sizeof answer - 1) != (ssize_t)sizeof answer - 1)
		die("answer");
	close(conn);
	int status;
	if (waitpid(client_pid, &status, 0) != client_pid)
		die("waitpid");
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "clone_fds") == 0) {
		sc_clone_fds(argv[2]);
		return 0;
	}
	if (argc != 2)
		return 2;
	if (strcmp(argv[1], "clone") == 0)
		sc_clone();
	else if (strcmp(argv[1], "vfork") == 0)
		sc_vfork();
	else if (strcmp(argv[1], "held_killed") == 0)
		sc_held_killed();
	else if (strcmp(argv[1], "no_memory") == 0)
		sc_no_memory();
	else
		return 2;
	return 0;
}
