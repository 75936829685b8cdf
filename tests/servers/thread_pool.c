/*
 * thread_pool.c - integration-test server for reqid: the main thread accepts
 * and pushes each fd into a bounded queue (mutex + condition variables); 8
 * worker threads pop fds, log "worker N picked up a connection" (a line that
 * must get no id) and serve the connection themselves with recv()/send(),
 * 3 log lines per request ("start", "working", "done" after the response).
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs, never mention request ids, and never put "token=" in a line
 * that is not about one request. /quit answers 200 and ends with exit(0).
 */
#include <pthread.h>
#include <signal.h>

#include "legacy_http.h"

#define WORKERS 8
#define QUEUE_CAP 64

static int listen_fd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int queue[QUEUE_CAP];
static int q_head, q_len; /* under mu */
static int busy;          /* workers serving a connection, under mu */
static int quitting;      /* under mu */

/* Serves one connection; returns 1 if it asked the server to quit. */
static int serve(int worker, int fd)
{
	struct lh_conn *c = malloc(sizeof *c);
	struct lh_request r;
	char tok[LH_TOKEN_MAX], resp[LH_RESPONSE_MAX];
	int quit = 0;
	size_t n;

	if (!c)
		return 0;
	lh_conn_init(c, fd, 1);
	while (lh_read_request(c, &r) == 1) {
		if (lh_is_quit(r.path)) {
			n = lh_build_response(resp, sizeof resp, "quit", 1);
			lh_write_all(fd, resp, n, 1);
			quit = 1;
			break;
		}
		if (!lh_path_token(r.path, tok, sizeof tok)) {
			n = lh_build_error(resp, sizeof resp);
			lh_write_all(fd, resp, n, 1);
			break;
		}
		lh_log_2w("INFO", "token=%s start %s %s (worker %d)", tok, r.method, r.path, worker);
		lh_log("DEBUG", "token=%s working, content-length=%zu", tok, r.content_length);
		n = lh_build_response(resp, sizeof resp, tok, r.close);
		if (lh_write_all(fd, resp, n, 1) < 0)
			break;
		lh_log_v("INFO", "token=%s done \"200 OK\"", tok);
		if (r.close)
			break;
	}
	free(c);
	return quit;
}

static void *worker_main(void *arg)
{
	int id = (int)(long)arg;

	for (;;) {
		int fd, quit;

		pthread_mutex_lock(&mu);
		while (q_len == 0)
			pthread_cond_wait(&not_empty, &mu);
		fd = queue[q_head];
		q_head = (q_head + 1) % QUEUE_CAP;
		q_len--;
		busy++;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&mu);

		lh_log_v("INFO", "worker %d picked up a connection (fd %d)", id, fd);
		quit = serve(id, fd);
		close(fd);

		pthread_mutex_lock(&mu);
		busy--;
		if (quit && !quitting) {
			quitting = 1;
			shutdown(listen_fd, SHUT_RDWR); /* wakes the accept loop */
		}
		pthread_cond_broadcast(&idle_cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int ready_fd = lh_ready_fd_arg(argc, argv), port, i, left;
	struct timespec deadline;

	lh_name = "thread_pool";
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
	for (i = 1; i <= WORKERS; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, worker_main, (void *)(long)i) != 0) {
			lh_log("ERROR", "cannot start worker %d", i);
			return 1;
		}
		pthread_detach(th);
	}
	lh_log("INFO", "listening on 127.0.0.1:%d with %d workers", port, WORKERS);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
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
		while (q_len == QUEUE_CAP)
			pthread_cond_wait(&not_full, &mu);
		queue[(q_head + q_len) % QUEUE_CAP] = fd;
		q_len++;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&mu);
	}
	/* Let the workers finish the connections they hold before exiting. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&mu);
	while ((busy > 0 || q_len > 0) &&
	       pthread_cond_timedwait(&idle_cv, &mu, &deadline) == 0)
		;
	left = busy + q_len;
	pthread_mutex_unlock(&mu);
	lh_log("INFO", "shutting down, %d connections still open", left);
	close(listen_fd);
	exit(0);
}
