/*
 * fork_per_conn.c - integration-test server for reqid: the parent accepts and
 * forks; the child serves the connection keep-alive, 3 log lines per request
 * ("start", "working", "done" after the response), and exit(0)s at EOF. The
 * parent reaps children with waitpid(WNOHANG). On /quit the child signals the
 * parent with SIGUSR1, installed without SA_RESTART, so the parent's accept
 * fails with EINTR; the parent then reaps every child and calls exit(0).
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs (only legacy_http.h's LEGACY_LOG=stdio:... backends do),
 * never mention request ids, and never put "token=" in a line that is not
 * about one request. With a stdio backend, lh_before_fork() empties the log
 * stream's buffer before each fork().
 *
 * FORK_PER_CONN_WITH=_Fork makes the children with glibc's _Fork(), which
 * runs no atfork handler (what a server that forks in a signal handler
 * calls): the shim's handlers must run around it all the same.
 */
#define _GNU_SOURCE /* _Fork */
#include <sys/wait.h>

#include "legacy_http.h"

static volatile sig_atomic_t quit_flag;
static volatile sig_atomic_t in_accept;   /* main loop is calling accept() */
static volatile sig_atomic_t hit_accept;  /* SIGUSR1 came while it was */
static int listen_fd = -1;

static void on_usr1(int sig)
{
	(void)sig;
	quit_flag = 1;
	hit_accept = in_accept;
	/* Also covers the signal landing just before accept() is entered:
	 * accept on a shut-down listener fails at once. Async-signal-safe. */
	shutdown(listen_fd, SHUT_RDWR);
}

static void log_start(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log_v("INFO", "token=%s start %s %s in child %d", tok, r->method, r->path,
		 (int)getpid());
}

static void log_working(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	(void)r;
	lh_log_2w("DEBUG", "token=%s working", tok);
}

static void log_done(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	(void)r;
	lh_log("INFO", "token=%s done", tok);
}

static const struct lh_request_logs request_logs = { log_start, log_working, log_done };

static void child_serve(int fd)
{
	static struct lh_conn c;
	int served = 0;

	if (lh_serve_conn(&c, fd, 0, &request_logs, NULL, &served)) {
		/* /quit, answered: tell the parent */
		close(fd);
		kill(getppid(), SIGUSR1);
		exit(0);
	}
	close(fd);
	lh_log("DEBUG", "child %d exiting after %d requests", (int)getpid(), served);
	exit(0);
}

static int reap(int options)
{
	int status, reaped = 0;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &status, options);
		if (pid > 0) {
			reaped++;
			continue;
		}
		if (pid < 0 && errno == EINTR)
			continue;
		return reaped; /* 0 with WNOHANG, or ECHILD */
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "fork_per_conn"), port, forked = 0;
	struct sigaction sa;
	const char *with = getenv("FORK_PER_CONN_WITH");
	pid_t (*make_child)(void) = with && strcmp(with, "_Fork") == 0 ? _Fork : fork;

	if (ready_fd < 0)
		return 2;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: accept must see EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	listen_fd = lh_listen_or_log(&port);
	if (listen_fd < 0)
		return 1;
	lh_log("INFO", "listening on 127.0.0.1:%d, one process per connection", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		int fd, err;
		pid_t pid;

		in_accept = 1;
		fd = accept(listen_fd, NULL, NULL);
		err = errno;
		in_accept = 0;
		reap(WNOHANG);
		if (fd < 0) {
			if (quit_flag && err == EINTR) {
				lh_log("INFO", "accept failed with EINTR: quit requested after %d children, reaping",
				       forked);
				break;
			}
			if (quit_flag && !hit_accept) {
				/* rare: the signal came before accept() was entered */
				lh_log("INFO", "SIGUSR1 arrived outside accept (then %s): quit requested after %d children, reaping",
				       strerror(err), forked);
				break;
			}
			if (quit_flag) {
				lh_log("INFO", "accept interrupted by SIGUSR1 failed with %s, not EINTR: quit requested after %d children, reaping",
				       strerror(err), forked);
				break;
			}
			lh_accept_failed(err);
			continue;
		}
		if (quit_flag) {
			close(fd);
			lh_log("INFO", "quit requested after %d children (accept not interrupted), reaping",
			       forked);
			break;
		}
		lh_before_fork(); /* stdio backends: nothing buffered for the child */
		pid = make_child();
		if (pid == 0) {
			close(listen_fd);
			signal(SIGUSR1, SIG_DFL);
			child_serve(fd);
		}
		if (pid < 0)
			lh_log("ERROR", "fork failed: %s", strerror(errno));
		else
			forked++;
		close(fd);
	}
	reap(0);
	lh_log("INFO", "all children reaped, shutting down");
	close(listen_fd);
	exit(0);
}
