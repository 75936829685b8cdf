/*
 * leaky.c - integration-test server for `reqid audit`: a legacy server with
 * the two request-id leaks audits exist to find, planted where the test
 * knows their lines (the LEAK markers below).
 *
 * One thread per keep-alive connection. Each request's id lives in a
 * thread-local, set from X-Request-ID, and every request line logs it as
 * "rid=...". The first leak: a request without X-Request-ID does not clear
 * it, so that request logs the previous request's id (remember_request_id,
 * log_handled). The second: each request hands an audit job to a pool of
 * one worker thread and waits for it; the worker logs with its own
 * thread-local, set by the first job it ran and never again (pool_worker).
 *
 * It plays a legacy server: it knows nothing of reqid, logs with write(2)
 * on fd 2 (legacy_http.h), and must never change where the markers are.
 * GET only; /quit answers and ends the process with exit(0).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>

#include "legacy_http.h"

static struct lh_threads th_state = LH_THREADS_INIT;

static __thread char current_rid[128]; /* the request this thread serves */

/* The audit pool: one worker, one job at a time. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static char job_token[64], job_rid[128];
static int job_pending, job_done;

static void remember_request_id(const char *value, size_t len)
{
	if (value && len > 0 && len < sizeof current_rid) {
		memcpy(current_rid, value, len);
		current_rid[len] = '\0';
	}
	/* no X-Request-ID: current_rid keeps the last request's (the leak) */
}

static void log_handled(const char *tok)
{
	lh_log("INFO", "token=%s handled rid=%s", tok, current_rid); /* LEAK stale */
}

static void *pool_worker(void *arg)
{
	static __thread char worker_rid[128];

	(void)arg;
	pthread_mutex_lock(&pool_mu);
	for (;;) {
		while (!job_pending)
			pthread_cond_wait(&pool_cv, &pool_mu);
		if (!worker_rid[0])
			memcpy(worker_rid, job_rid, sizeof worker_rid);
		lh_log("INFO", "token=%s audited rid=%s", job_token, worker_rid); /* LEAK pool */
		job_pending = 0;
		job_done = 1;
		pthread_cond_broadcast(&pool_cv);
	}
	return NULL;
}

static void audit_in_pool(const char *tok)
{
	pthread_mutex_lock(&pool_mu);
	snprintf(job_token, sizeof job_token, "%s", tok);
	memcpy(job_rid, current_rid, sizeof job_rid);
	job_pending = 1;
	job_done = 0;
	pthread_cond_broadcast(&pool_cv);
	while (!job_done)
		pthread_cond_wait(&pool_cv, &pool_mu);
	pthread_mutex_unlock(&pool_mu);
}

/* Reads one request head into buf; its length, 0 at EOF, -1 on error. */
static ssize_t read_head(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		ssize_t n;
		char *end = len >= 4 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;

		if (end)
			return end + 4 - buf;
		if (len == cap)
			return -1;
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return len == 0 && n == 0 ? 0 : -1;
		len += (size_t)n;
	}
}

static int handle_request(int fd, const char *head, size_t len)
{
	char path[256], tok[LH_TOKEN_MAX], resp[LH_RESPONSE_MAX];
	const char *line = memchr(head, '\n', len), *value = NULL;
	size_t vlen = 0, n;

	if (sscanf(head, "GET %255s HTTP/1.1", path) != 1 || !line)
		return -1;
	for (const char *p = line + 1; p < head + len;) {
		const char *eol = memchr(p, '\r', (size_t)(head + len - p));

		if (!eol || eol == p)
			break;
		lh_header_is(p, (size_t)(eol - p), "X-Request-ID", &value, &vlen);
		p = eol + 2;
	}
	if (lh_is_quit(path)) {
		n = lh_build_response(resp, sizeof resp, "quit", 1);
		lh_write_all(fd, resp, n, 0);
		return 1;
	}
	if (!lh_path_token(path, tok, sizeof tok))
		return -1;
	remember_request_id(value, vlen);
	log_handled(tok);
	audit_in_pool(tok);
	n = lh_build_response(resp, sizeof resp, tok, 0);
	return lh_write_all(fd, resp, n, 0);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, quit = 0;
	char head[4096];
	ssize_t len;

	/* A keep-alive client sends its next request only after the
	 * response: the buffer holds one head at a time. */
	while ((len = read_head(fd, head, sizeof head)) > 0) {
		int rc = handle_request(fd, head, (size_t)len);

		if (rc != 0) {
			quit = rc == 1;
			break;
		}
	}
	close(fd);
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
	int ready_fd = lh_begin(argc, argv, "leaky"), port;
	pthread_t worker;

	if (ready_fd < 0)
		return 2;
	th_state.listen_fd = lh_listen_or_log(&port);
	if (th_state.listen_fd < 0 || pthread_create(&worker, NULL, pool_worker, NULL) != 0)
		return 1;
	lh_log("INFO", "listening on 127.0.0.1:%d", port);
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	lh_threads_accept_loop(&th_state, start_thread);
	lh_threads_drain_exit(&th_state, NULL);
}
