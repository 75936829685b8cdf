/*
 * prefork.c - benchmark server for reqid: a pre-forking server in the old
 * style (Apache's prefork, many CGI-era daemons). The parent listens, then
 * forks PREFORK_WORKERS children (default 2) and only waits for them; each
 * child blocks in accept() on the shared listener and serves the connection
 * keep-alive, 2 log lines per request ("took" before the response, in two
 * writes, "answered" after it). bench_process.py starts it while clients
 * already knock, to see what a worker's start costs the first requests it
 * takes.
 *
 * On /quit the child that answers it signals the parent with SIGTERM. The
 * parent's SIGTERM handler sends SIGTERM to every child it forked (kill() is
 * async-signal-safe; SIGTERM is blocked while a child is forked and
 * recorded, and a parent told to stop forks no more);
 * the parent reaps them all and calls exit(0). A child, holding no state,
 * dies of it.
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs (only legacy_http.h's LEGACY_LOG=stdio:... backends do),
 * never mention request ids, and never put "token=" in a line that is not
 * about one request.
 */
#include "legacy_http.h"

#define MAX_WORKERS 64

static pid_t workers_forked[MAX_WORKERS];
static volatile sig_atomic_t forked_count, stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	for (int i = 0; i < forked_count; i++)
		kill(workers_forked[i], SIGTERM);
}

/* One line before the response in two writes, one after it: a worker's pid
 * on each, as a pre-forked server's log tells its workers apart. */
static void log_taken(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log_2w("INFO", "token=%s worker %d took %s %s", tok, (int)getpid(), r->method, r->path);
}

static void log_answered(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log_v("INFO", "token=%s worker %d answered, close=%d", tok, (int)getpid(), r->close);
}

static void log_nothing(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	(void)tok;
	(void)r;
}

static const struct lh_request_logs request_logs = { log_taken, log_nothing, log_answered };

static void worker_loop(int listen_fd)
{
	static struct lh_conn c;

	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);

		if (fd < 0) {
			lh_accept_failed(errno);
			continue;
		}
		if (lh_serve_conn(&c, fd, 0, &request_logs, NULL, NULL)) {
			close(fd);
			kill(getppid(), SIGTERM);
			exit(0);
		}
		close(fd);
	}
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "prefork"), port, listen_fd, workers = 2;
	const char *wanted = getenv("PREFORK_WORKERS");
	struct sigaction sa;

	if (ready_fd < 0)
		return 2;
	if (wanted && atoi(wanted) > 0 && atoi(wanted) <= MAX_WORKERS)
		workers = atoi(wanted);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	listen_fd = lh_listen_or_log(&port);
	if (listen_fd < 0)
		return 1;
	lh_log("INFO", "listening on 127.0.0.1:%d, %d pre-forked workers", port, workers);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		sigset_t term, old;
		pid_t pid;

		/* SIGTERM held from the test to the record: the handler either
		 * sees the new child or runs before the test stops the forking */
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, &old);
		if (stopping || forked_count == workers) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			break;
		}
		pid = fork();
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			sigprocmask(SIG_SETMASK, &old, NULL);
			worker_loop(listen_fd);
		}
		if (pid > 0)
			workers_forked[forked_count++] = pid;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (pid < 0) {
			lh_log("ERROR", "fork failed: %s", strerror(errno));
			break;
		}
	}
	while (waitpid(-1, NULL, 0) > 0)
		;
	lh_log("INFO", "workers gone, shutting down");
	close(listen_fd);
	exit(0);
}
