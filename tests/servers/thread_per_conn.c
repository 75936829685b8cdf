/*
 * thread_per_conn.c - integration-test server for reqid: an accept loop that
 * starts one detached pthread per connection; the thread serves keep-alive
 * requests one after another and logs 3 lines per request ("start",
 * "working", and "done" AFTER the response is written).
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs, never mention request ids, and never put "token=" in a line
 * that is not about one request. /quit answers 200 and ends with exit(0).
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "legacy_http.h"

static int listen_fd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int active;   /* connection threads alive, under mu */
static int quitting; /* /quit seen, under mu */

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, quit = 0, served = 0;
	struct lh_conn *c = malloc(sizeof *c);
	struct lh_request r;
	char tok[LH_TOKEN_MAX], resp[LH_RESPONSE_MAX];
	size_t n;

	if (!c) {
		close(fd);
		goto out;
	}
	lh_conn_init(c, fd, 0);
	while (lh_read_request(c, &r) == 1) {
		if (lh_is_quit(r.path)) {
			n = lh_build_response(resp, sizeof resp, "quit", 1);
			lh_write_all(fd, resp, n, 0);
			quit = 1;
			break;
		}
		if (!lh_path_token(r.path, tok, sizeof tok)) {
			n = lh_build_error(resp, sizeof resp);
			lh_write_all(fd, resp, n, 0);
			break;
		}
		served++;
		lh_log("INFO", "token=%s start %s %s", tok, r.method, r.path);
		lh_log_v("DEBUG", "token=%s working on \"%s\"\t(%zu body bytes, \\o/)", tok, r.path,
			 r.content_length);
		n = lh_build_response(resp, sizeof resp, tok, r.close);
		if (lh_write_all(fd, resp, n, 0) < 0)
			break;
		lh_log_2w("INFO", "token=%s done status=200 close=%d", tok, r.close);
		if (r.close)
			break;
	}
	close(fd);
	free(c);
	if (!quit)
		lh_log("DEBUG", "connection fd=%d closed after %d requests", fd, served);
out:
	pthread_mutex_lock(&mu);
	active--;
	if (quit && !quitting) {
		quitting = 1;
		shutdown(listen_fd, SHUT_RDWR); /* wakes the accept loop */
	}
	pthread_cond_broadcast(&idle_cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	int ready_fd = lh_ready_fd_arg(argc, argv), port, left;
	struct timespec deadline;
	pthread_attr_t attr;

	lh_name = "thread_per_conn";
	if (ready_fd < 0) {
		lh_usage(argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	listen_fd = lh_listen(&port);
	if (listen_fd < 0) {
		lh_log("ERROR", "cannot listen: %s", strerror(errno));
		return 1;
	}
	lh_log("INFO", "listening on 127.0.0.1:%d", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		pthread_t th;
		int fd = accept(listen_fd, NULL, NULL), q;

		if (fd < 0) {
			int err = errno;

			pthread_mutex_lock(&mu);
			q = quitting;
			pthread_mutex_unlock(&mu);
			if (q)
				break;
			if (err == EINTR || err == ECONNABORTED)
				continue;
			lh_log("ERROR", "accept failed: %s", strerror(err));
			usleep(10000);
			continue;
		}
		pthread_mutex_lock(&mu);
		active++;
		pthread_mutex_unlock(&mu);
		if (pthread_create(&th, &attr, serve, (void *)(intptr_t)fd) != 0) {
			lh_log("ERROR", "pthread_create failed");
			close(fd);
			pthread_mutex_lock(&mu);
			active--;
			pthread_mutex_unlock(&mu);
		}
	}
	/* Let connection threads finish their logging before exiting. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&mu);
	while (active > 0 && pthread_cond_timedwait(&idle_cv, &mu, &deadline) == 0)
		;
	left = active;
	pthread_mutex_unlock(&mu);
	lh_log("INFO", "shutting down, %d connections still open", left);
	close(listen_fd);
	exit(0);
}
