/*
 * thread_pool.c - integration-test server for reqid: the main thread accepts
 * and pushes each fd into a bounded queue (mutex + condition variables); 8
 * worker threads (LEGACY_WORKERS=N for another number) pop fds, log
 * "worker N picked up a connection" (a line that must get no id) and serve
 * the connection themselves with recv()/send(), 3 log lines per request
 * ("start", "working", "done" after the response).
 *
 * It plays a legacy server that knows nothing of reqid: it must never use
 * stdio for logs (only legacy_http.h's LEGACY_LOG=stdio:... backends do),
 * never mention request ids, and never put "token=" in a line that is not
 * about one request. /quit answers 200 and ends with exit(0).
 */
#include "legacy_http.h"

#define WORKERS 8
#define QUEUE_CAP 64

/* busy: workers serving a connection. The queue is under th_state.mu too. */
static struct lh_threads th_state = LH_THREADS_INIT;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static int queue[QUEUE_CAP];
static int q_head, q_len; /* under th_state.mu */

static void log_start(void *arg, const char *tok, const struct lh_request *r)
{
	lh_log_2w("INFO", "token=%s start %s %s (worker %d)", tok, r->method, r->path,
		  *(const int *)arg);
}

static void log_working(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	lh_log("DEBUG", "token=%s working, content-length=%zu", tok, r->content_length);
}

static void log_done(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	(void)r;
	lh_log_v("INFO", "token=%s done \"200 OK\"", tok);
}

static const struct lh_request_logs request_logs = { log_start, log_working, log_done };

/* Serves one connection; returns 1 if it asked the server to quit. */
static int serve(int worker, int fd)
{
	struct lh_conn *c = malloc(sizeof *c);
	int quit;

	if (!c)
		return 0;
	quit = lh_serve_conn(c, fd, 1, &request_logs, &worker, NULL);
	free(c);
	return quit;
}

static void *worker_main(void *arg)
{
	int id = (int)(long)arg;

	for (;;) {
		int fd, quit;

		pthread_mutex_lock(&th_state.mu);
		while (q_len == 0)
			pthread_cond_wait(&not_empty, &th_state.mu);
		fd = queue[q_head];
		q_head = (q_head + 1) % QUEUE_CAP;
		q_len--;
		th_state.busy++;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&th_state.mu);

		lh_log_v("INFO", "worker %d picked up a connection (fd %d)", id, fd);
		quit = serve(id, fd);
		close(fd);
		lh_threads_conn_done(&th_state, quit);
	}
	return NULL;
}

/* The accept loop's hand-off: waits while the queue is full. */
static void enqueue(int fd)
{
	pthread_mutex_lock(&th_state.mu);
	while (q_len == QUEUE_CAP)
		pthread_cond_wait(&not_full, &th_state.mu);
	queue[(q_head + q_len) % QUEUE_CAP] = fd;
	q_len++;
	pthread_cond_signal(&not_empty);
	pthread_mutex_unlock(&th_state.mu);
}

static int queued(void)
{
	return q_len;
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "thread_pool"), port, i;
	const char *wanted = getenv("LEGACY_WORKERS");
	int workers = wanted && atoi(wanted) > 0 ? atoi(wanted) : WORKERS;

	if (ready_fd < 0)
		return 2;
	th_state.listen_fd = lh_listen_or_log(&port);
	if (th_state.listen_fd < 0)
		return 1;
	for (i = 1; i <= workers; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, worker_main, (void *)(long)i) != 0) {
			lh_log("ERROR", "cannot start worker %d", i);
			return 1;
		}
		pthread_detach(th);
	}
	lh_log("INFO", "listening on 127.0.0.1:%d with %d workers", port, workers);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	lh_threads_accept_loop(&th_state, enqueue);
	/* Let the workers finish the connections they hold before exiting. */
	lh_threads_drain_exit(&th_state, queued);
}
