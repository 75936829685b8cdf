/*
 * thread_per_conn.c - integration-test server for reqid: an accept loop that
 * starts one detached pthread per connection; the thread serves keep-alive
 * requests one after another and logs 3 lines per request ("start",
 * "working", and "done" AFTER the response is written).
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs (only legacy_http.h's LEGACY_LOG=stdio:... backends do),
 * never mention request ids, and never put "token=" in a line that is not
 * about one request. /quit answers 200 and ends with exit(0).
 */
#include <stdint.h>

#include "legacy_http.h"

static struct lh_threads th_state = LH_THREADS_INIT;

static void log_start(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log("INFO", "token=%s start %s %s", tok, r->method, r->path);
}

static void log_working(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log_v("DEBUG", "token=%s working on \"%s\"\t(%zu body bytes, \\o/)", tok, r->path,
		 r->content_length);
}

static void log_done(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log_2w("INFO", "token=%s done status=200 close=%d", tok, r->close);
}

static const struct lh_request_logs request_logs = { log_start, log_working, log_done };

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, quit = 0, served = 0;
	struct lh_conn *c = malloc(sizeof *c);

	if (!c) {
		close(fd);
		goto out;
	}
	quit = lh_serve_conn(c, fd, 0, &request_logs, NULL, &served);
	close(fd);
	free(c);
	if (!quit)
		lh_log("DEBUG", "connection fd=%d closed after %d requests", fd, served);
out:
	lh_threads_conn_done(&th_state, quit);
	return NULL;
}

/* One detached thread per accepted connection. */
static void start_thread(int fd)
{
	lh_threads_start(&th_state, serve, fd);
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "thread_per_conn"), port;

	if (ready_fd < 0)
		return 2;
	th_state.listen_fd = lh_listen_or_log(&port);
	if (th_state.listen_fd < 0)
		return 1;
	lh_log("INFO", "listening on 127.0.0.1:%d", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	lh_threads_accept_loop(&th_state, start_thread);
	/* Let connection threads finish their logging before exiting. */
	lh_threads_drain_exit(&th_state, NULL);
}
