/* first_use.c - drives the shim's lazily found originals and its
 * epoll lookup memo where they could go wrong: a first use on a small
 * signal stack while the interrupted code is in malloc, in a vfork child,
 * in a raw fork or clone child, beside a thread that dlopens and dlcloses
 * a library in a loop; epoll data words reused by other descriptors, dup2
 * onto a registered descriptor, a changed mask, a thread started after the
 * memo filled. It prints only what must be the same with and without the
 * shim (return values, errno, bytes); test_first_use.py compares.
 * It must never print timing or counts that vary from run to run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Hooked calls a process makes for the first time, their results kept
 * (a handler on a small stack makes them; formatting them takes more). */
struct uses {
	int pipe, pair, dup, dup2, dup3, fl, dupfd, shut, poll, revents, ctl, wait, events;
	int e_again, bad, e_bad, closes;
	ssize_t send, recv, again;
	unsigned long long word;
	char b[4];
};

static void make_first_uses(struct uses *u)
{
	int p[2], s[2];
	u->pipe = pipe2(p, O_CLOEXEC);
	u->pair = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s);
	int d = dup(p[1]);
	u->dup = d >= 0;
	u->dup2 = dup2(p[1], 40);
	u->dup3 = dup3(p[1], 41, O_CLOEXEC);
	u->fl = fcntl(41, F_GETFD);
	int fdup = fcntl(p[1], F_DUPFD_CLOEXEC, 50);
	u->dupfd = fdup >= 50;
	u->send = send(s[0], "ab", 2, 0);
	u->recv = recv(s[1], u->b, sizeof(u->b), MSG_DONTWAIT);
	errno = 0;
	u->again = recv(s[1], u->b + 2, 1, MSG_DONTWAIT);
	u->e_again = errno;
	u->shut = shutdown(s[0], SHUT_WR);
	struct pollfd pf = {.fd = s[1], .events = POLLIN};
	u->poll = poll(&pf, 1, 0);
	u->revents = pf.revents;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
	u->ctl = epoll_ctl(ep, EPOLL_CTL_ADD, s[1], &ev);
	struct epoll_event got[2];
	u->wait = epoll_wait(ep, got, 2, 0);
	u->word = u->wait > 0 ? got[0].data.u64 : 0;
	u->events = u->wait > 0 ? (int)got[0].events : 0;
	errno = 0;
	u->bad = close(1000);
	u->e_bad = errno;
	u->closes = close(d) + close(40) + close(41) + close(fdup) + close(ep) + close(p[0]) +
		    close(p[1]) + close(s[0]) + close(s[1]);
}

static int format_uses(const struct uses *u, char *out, size_t size)
{
	return snprintf(out, size,
			"pipe %d pair %d dup %d dup2 %d dup3 %d fl %d dupfd %d send %zd recv %zd "
			"%.2s again %zd/%d shut %d poll %d/%x ctl %d wait %d/%llu/%x bad %d/%d "
			"closes %d\n",
			u->pipe, u->pair, u->dup, u->dup2, u->dup3, u->fl, u->dupfd, u->send, u->recv,
			u->b, u->again, u->e_again, u->shut, u->poll, u->revents, u->ctl, u->wait,
			u->word, u->events, u->bad, u->e_bad, u->closes);
}

static int first_uses(char *out, size_t size)
{
	struct uses u = {0};
	make_first_uses(&u);
	return format_uses(&u, out, size);
}

static void say(const char *line)
{
	if (write(1, line, strlen(line)) < 0)
		_exit(3);
}

/* First uses in a handler on a small alternate stack, while the
 * interrupted code is in malloc and free. */
static struct uses handler_uses;
static volatile sig_atomic_t handled;

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	if (!handled)
		make_first_uses(&handler_uses);
	handled = 1;
	errno = saved;
}

/* With depth set, prints how many bytes of the signal stack the handler
 * used instead (the stack filled with a pattern first). */
static int sigalt(size_t stack_size, bool depth)
{
	stack_t st = {.ss_sp = malloc(stack_size), .ss_size = stack_size};
	memset(st.ss_sp, 0xa5, stack_size);
	if (sigaltstack(&st, NULL) != 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_ONSTACK | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {.it_value = {0, 2000}};
	setitimer(ITIMER_REAL, &it, NULL);
	void *kept[64] = {0};
	unsigned x = 1;
	while (!handled) {
		x = x * 1103515245u + 12345u;
		unsigned i = (x >> 8) % 64;
		free(kept[i]);
		kept[i] = malloc((x >> 16) % 4000 + 1);
	}
	for (int i = 0; i < 64; i++)
		free(kept[i]);
	char line[512];
	if (depth) {
		size_t untouched = 0;
		while (untouched < stack_size && ((unsigned char *)st.ss_sp)[untouched] == 0xa5)
			untouched++;
		snprintf(line, sizeof(line), "%zu\n", stack_size - untouched);
	} else {
		format_uses(&handler_uses, line, sizeof(line));
	}
	say(line);
	return 0;
}

/* The first fork made in a handler on the alternate stack (the shim's
 * atfork handler finds every original left there): prints how many bytes
 * of the stack the handler used, and the child's status. */
static volatile pid_t forked = -2;

static void on_fork_signal(int sig)
{
	(void)sig;
	int saved = errno;
	pid_t pid = fork();
	if (pid == 0)
		_exit(5);
	forked = pid;
	errno = saved;
}

static int sigfork_depth(void)
{
	size_t stack_size = 65536;
	stack_t st = {.ss_sp = malloc(stack_size), .ss_size = stack_size};
	memset(st.ss_sp, 0xa5, stack_size);
	if (sigaltstack(&st, NULL) != 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_fork_signal, .sa_flags = SA_ONSTACK};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	int status = -1;
	if (forked > 0)
		waitpid(forked, &status, 0);
	size_t untouched = 0;
	while (untouched < stack_size && ((unsigned char *)st.ss_sp)[untouched] == 0xa5)
		untouched++;
	char line[64];
	snprintf(line, sizeof(line), "%zu %d\n", stack_size - untouched, status);
	say(line);
	return 0;
}

/* First uses in a vfork child (dup2, close, fcntl, execve), then in
 * posix_spawn's child (file actions). */
static int vfork_child(void)
{
	int p[2];
	if (pipe(p) != 0)
		return 1;
	pid_t pid = vfork();
	if (pid == 0) {
		if (dup2(p[1], 1) != 1 || close(p[0]) != 0 || close(p[1]) != 0 ||
		    fcntl(1, F_GETFD) != 0)
			_exit(9);
		char *argv[] = {"/bin/echo", "vfork child", NULL};
		execve(argv[0], argv, environ);
		_exit(8);
	}
	close(p[1]);
	char buf[64] = {0};
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	char line[160];
	snprintf(line, sizeof(line), "vfork read %zd '%.*s' status %d\n", n, (int)(n > 0 ? n - 1 : 0),
		 buf, status);
	say(line);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = {"/bin/sh", "-c", "echo spawned >&2", NULL};
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	waitpid(pid, &status, 0);
	snprintf(line, sizeof(line), "spawn %d status %d\n", rc, status);
	say(line);
	return 0;
}

/* First uses in children that no atfork handler saw being made: a raw
 * fork system call, and clone with a stack of its own sharing nothing. */
static char clone_stack[64 * 1024];

static int clone_body(void *arg)
{
	char line[512];
	int len = first_uses(line, sizeof(line));
	line[len - 1] = '\0';
	FILE *f = fopen("/dev/null", "w");
	int rc = f ? fprintf(f, "x%d", 1) : -1;
	int c = f ? fclose(f) : -1;
	char out[600];
	snprintf(out, sizeof(out), "%s %s fprintf %d fclose %d\n", (const char *)arg, line, rc, c);
	say(out);
	return 0;
}

static int raw_children(void)
{
	long pid = syscall(SYS_fork);
	if (pid == 0)
		_exit(clone_body("raw fork"));
	int status;
	waitpid((pid_t)pid, &status, 0);
	pid = clone(clone_body, clone_stack + sizeof(clone_stack), SIGCHLD, "clone");
	waitpid((pid_t)pid, &status, 0);
	pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(clone_body("raw clone"));
	waitpid((pid_t)pid, &status, 0);
	return clone_body("parent") != 0;
}

/* A fork child made after the program turned rdtsc off with a raw
 * prctl(PR_SET_TSC) system call (no libc call the shim could see), the
 * first fork before it: a shim that timed its fork children with the
 * counter would kill the second. Neither child nor the parent reads a
 * clock (libc's may fault there too). */
static int tsc_off(void)
{
	int status[2] = {-1, -1};
	for (int i = 0; i < 2; i++) {
		if (i == 1 && syscall(SYS_prctl, PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		waitpid(pid, &status[i], 0);
	}
	char line[64];
	snprintf(line, sizeof(line), "tsc children %d %d\n", status[0], status[1]);
	say(line);
	return 0;
}

/* First uses while another thread dlopens and dlcloses a library. */
static atomic_bool stop_loading;
static const char *library;

static void *load_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_loading)) {
		void *h = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
		if (h)
			dlclose(h);
	}
	return NULL;
}

static int dl_loop(const char *lib)
{
	library = lib;
	pthread_t t;
	pthread_create(&t, NULL, load_loop, NULL);
	char line[512];
	int len = first_uses(line, sizeof(line));
	line[len - 1] = '\0';
	FILE *f = fopen("/dev/null", "w");
	int rc = f ? fprintf(f, "%s", "y") + fputs("z", f) + fputc('w', f) : -1;
	rc += f ? fclose(f) : -1;
	atomic_store(&stop_loading, true);
	pthread_join(t, NULL);
	char out[600];
	snprintf(out, sizeof(out), "dl %s stdio %d\n", line, rc);
	say(out);
	return 0;
}

/* Epoll: each case returns what epoll_wait gave (count, words, masks). */
static void say_wait(const char *what, int ep, int max)
{
	struct epoll_event got[8];
	int n = epoll_wait(ep, got, max, 0);
	char line[256];
	int len = snprintf(line, sizeof(line), "%s: %d", what, n);
	/* The kernel's order for ready descriptors is the order they became
	 * ready; the cases make them ready in order. */
	for (int i = 0; i < n; i++)
		len += snprintf(line + len, sizeof(line) - len, " %llu/%x",
				(unsigned long long)got[i].data.u64, got[i].events);
	snprintf(line + len, sizeof(line) - len, "\n");
	say(line);
}

static void *nothing(void *arg)
{
	return arg;
}

static int epoll_words(void)
{
	int ep = epoll_create1(0);
	int a[2], b[2], c[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, a);
	socketpair(AF_UNIX, SOCK_STREAM, 0, b);
	socketpair(AF_UNIX, SOCK_STREAM, 0, c);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.u64 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev);
	ev.data.u64 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, b[0], &ev);
	ev.data.u64 = 3;
	epoll_ctl(ep, EPOLL_CTL_ADD, c[0], &ev);
	char buf[16];
	for (int round = 0; round < 3; round++) {
		send(a[1], "a", 1, 0);
		send(b[1], "b", 1, 0);
		send(c[1], "c", 1, 0);
		say_wait("three ready", ep, 8);
		/* Read one at a time, as a loop handling one event would. */
		say_wait("one of three", ep, 1);
		recv(a[0], buf, sizeof(buf), 0);
		recv(b[0], buf, sizeof(buf), 0);
		recv(c[0], buf, sizeof(buf), 0);
		say_wait("none", ep, 8);
	}
	/* b's number closed and reused with the same word. */
	int b_fd = b[0];
	close(b[0]);
	int s[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, s);
	if (s[0] != b_fd)
		dup2(s[0], b_fd), close(s[0]);
	ev.data.u64 = 2;
	ev.events = EPOLLIN | EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_ADD, b_fd, &ev);
	send(a[1], "a", 1, 0);
	send(s[1], "s", 1, 0);
	send(c[1], "c", 1, 0);
	say_wait("reused word", ep, 8);
	say_wait("reused word again", ep, 8);
	/* dup2 of another socket onto a registered number: its registration
	 * goes with the file it had (the last reference closed). */
	int d[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, d);
	dup2(d[0], c[0]);
	close(d[0]);
	send(d[1], "d", 1, 0);
	send(a[1], "a", 1, 0);
	say_wait("dup2 onto registered", ep, 8);
	/* A mask changed: a's word now wants EPOLLOUT edge-triggered. */
	ev.data.u64 = 1;
	ev.events = EPOLLOUT | EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev);
	say_wait("mod to out", ep, 8);
	say_wait("mod to out again", ep, 8);
	/* A thread started after the memo filled. */
	pthread_t t;
	pthread_create(&t, NULL, nothing, NULL);
	pthread_join(t, NULL);
	send(s[1], "s", 1, 0);
	ev.data.u64 = 1;
	ev.events = EPOLLIN;
	epoll_ctl(ep, EPOLL_CTL_MOD, a[0], &ev);
	say_wait("after a thread", ep, 8);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "sigalt"))
		return sigalt(argc > 2 ? (size_t)atol(argv[2]) : 8192, false);
	if (!strcmp(argv[1], "sigdepth"))
		return sigalt(65536, true);
	if (!strcmp(argv[1], "sigforkdepth"))
		return sigfork_depth();
	if (!strcmp(argv[1], "vfork"))
		return vfork_child();
	if (!strcmp(argv[1], "raw"))
		return raw_children();
	if (!strcmp(argv[1], "dl"))
		return dl_loop(argc > 2 ? argv[2] : "libm.so.6");
	if (!strcmp(argv[1], "plain")) {
		char line[512];
		first_uses(line, sizeof(line));
		say(line);
		return 0;
	}
	if (!strcmp(argv[1], "epoll"))
		return epoll_words();
	if (!strcmp(argv[1], "tsc"))
		return tsc_off();
	return 2;
}
