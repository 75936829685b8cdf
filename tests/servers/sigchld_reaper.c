/*
 * sigchld_reaper.c - integration-test server whose SIGCHLD handler logs the
 * child it reaped, from inside the handler, while the thread already serves
 * the next request (test_signal_lines.py). Such a line is not that
 * request's: it must get no id.
 *
 *     sigchld_reaper plain|info|sysv|altstack|nested|longjmp
 *
 * The handler installed with signal(), sigaction() with SA_SIGINFO, or
 * sysv_signal() (which it installs again each run); altstack: run on a
 * sigaltstack (SA_ONSTACK); nested: it raises SIGUSR1 first, whose handler
 * logs "nested"; longjmp: it leaves by siglongjmp after logging. Prints its port, serves one keep-alive connection. For
 * each request: reads its head, unblocks SIGCHLD, so that the handler runs
 * now, with this request's head read, and reaps the child of the request
 * before (writing "reaped pid=N" to fd 2); blocks it again; logs "request
 * PATH" to fd 2; forks a child that exits at once and waits until it has
 * (waitid WNOWAIT: SIGCHLD now pending); answers. At the client's EOF the
 * last child is reaped the same way, then it prints "done own handler=1"
 * if sigaction names its handler as SIGCHLD's, and exits.
 * No timing: the handler runs at the same point every time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "one_connection.h"

static void say_reaped(pid_t pid)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "reaped pid=%d\n", (int)pid);
	if (write(2, line, (size_t)n) != n)
		_exit(3);
}

static int sysv;   /* SA_RESETHAND: the handler installs itself again */
static int nested; /* it raises SIGUSR1 first */
static int jumps;  /* it leaves by siglongjmp */
static sigjmp_buf back;
static char *alt_stack;

static void say_nested(int sig)
{
	(void)sig;
	if (write(2, "nested\n", 7) != 7)
		_exit(3);
}

static void reap(int sig)
{
	int saved = errno;
	if (alt_stack) {
		char here;
		if (&here < alt_stack || &here >= alt_stack + SIGSTKSZ * 4)
			_exit(5);
	}
	if (nested)
		raise(SIGUSR1);
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		say_reaped(pid);
	if (sysv)
		sysv_signal(sig, reap);
	errno = saved;
	if (jumps)
		siglongjmp(back, 1);
}

static void reap_info(int sig, siginfo_t *info, void *context)
{
	(void)context;
	if (sig != SIGCHLD || info->si_signo != SIGCHLD)
		_exit(4);
	reap(sig);
}

static void run_pending_handler(void)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigsetjmp(back, 1) == 0)
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
	sigprocmask(SIG_BLOCK, &chld, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	if (!strcmp(argv[1], "plain")) {
		signal(SIGCHLD, reap);
	} else if (!strcmp(argv[1], "info")) {
		struct sigaction sa = {.sa_sigaction = reap_info, .sa_flags = SA_SIGINFO | SA_RESTART};
		sigaction(SIGCHLD, &sa, NULL);
	} else if (!strcmp(argv[1], "sysv")) {
		sysv = 1;
		sysv_signal(SIGCHLD, reap);
	} else if (!strcmp(argv[1], "altstack")) {
		stack_t ss = {.ss_sp = alt_stack = malloc(SIGSTKSZ * 4), .ss_size = SIGSTKSZ * 4};
		struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_ONSTACK | SA_RESTART};
		if (!alt_stack || sigaltstack(&ss, NULL) != 0 || sigaction(SIGCHLD, &sa, NULL) != 0)
			return 1;
	} else if (!strcmp(argv[1], "nested") || !strcmp(argv[1], "longjmp")) {
		nested = argv[1][0] == 'n';
		jumps = !nested;
		signal(SIGUSR1, say_nested);
		signal(SIGCHLD, reap);
	} else {
		return 2;
	}
	int c;
	if (!accept_one_connection(&c))
		return 1;
	char head[4096];
	for (;;) {
		size_t n = 0;
		while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
			ssize_t r = read(c, head + n, sizeof(head) - 1 - n);
			if (r <= 0)
				goto eof;
			n += (size_t)r;
		}
		head[n] = '\0';
		run_pending_handler();
		char path[256] = "?";
		sscanf(head, "GET %255s", path);
		char line[300];
		int k = snprintf(line, sizeof(line), "request %s\n", path);
		if (write(2, line, (size_t)k) != k)
			return 1;
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		siginfo_t si;
		if (pid < 0 || waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0)
			return 1;
		static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
		if (write(c, answer, sizeof(answer) - 1) != (ssize_t)sizeof(answer) - 1)
			return 1;
	}
eof:
	run_pending_handler();
	struct sigaction now;
	if (sigaction(SIGCHLD, NULL, &now) != 0)
		return 1;
	printf("done own handler=%d\n", now.sa_handler == reap || now.sa_sigaction == reap_info);
	return 0;
}
