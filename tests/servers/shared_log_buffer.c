/*
 * shared_log_buffer.c - integration-test server for reqid: an access log
 * kept as Apache's "BufferedLogs On" keeps it. One detached thread per
 * connection serves keep-alive requests; after each response it appends
 * the request's access line to one 4 KiB buffer shared by every thread
 * (under a mutex) and, when the line does not fit, first writes the buffer
 * out to the log (LEGACY_LOG=file:PATH) with one write(): the lines of
 * whichever requests filled it, from the thread of the next. The line is
 * "GET <path> HTTP/1.1" 200 key=<hash of its X-Request-ID> pad=<P...>,
 * 3,000 bytes of pad when the hash ends in 3, 6 or 9 (then a flush may
 * hold that one line alone). /quit writes what the buffer holds and exits.
 * OTHER_LOGS=N: first opens N other logs (other-NN.log beside the access
 * log) and keeps them open, never writing to them, as a server with a log
 * for each of N virtual hosts does.
 * ROTATE_EVERY=N: every N access lines the buffer is written out and the
 * log opened again on its descriptor number, as at log rotation: by
 * close() and open() (ROTATE_BY=reopen), or by open(), dup2() onto the
 * number and close() of the new descriptor (ROTATE_BY=dup2).
 *
 * It plays a legacy server that knows nothing of reqid: it never writes a
 * request's id itself, only the test's hash of it.
 */
#include <limits.h>
#include <stdint.h>

#include "legacy_http.h"

#define LOG_BUFFER 4096
#define PAD 3000

static struct lh_threads th_state = LH_THREADS_INIT;
static pthread_mutex_t buffer_mu = PTHREAD_MUTEX_INITIALIZER;
static char buffer[LOG_BUFFER];
static size_t buffered;
static unsigned long lines_logged, rotate_every;
static int rotate_by_dup2;

/* FNV-1a of s: the key the test computes from the id it sent. */
static uint32_t key_of(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void flush_buffer(void)
{
	if (buffered)
		lh_write_all(lh_log_fd, buffer, buffered, 0);
	buffered = 0;
}

/* ROTATE_EVERY: the log opened again on lh_log_fd, the buffer empty. */
static void rotate(void)
{
	int fd;

	if (rotate_by_dup2) {
		fd = open(lh_log_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0 || dup2(fd, lh_log_fd) < 0)
			exit(3);
		close(fd);
		return;
	}
	close(lh_log_fd);
	fd = open(lh_log_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd != lh_log_fd) /* the lowest free number: the one just closed */
		exit(3);
}

/* At exit (/quit): what the buffer holds goes out, as Apache's does. */
static void flush_at_exit(void)
{
	pthread_mutex_lock(&buffer_mu);
	flush_buffer();
	pthread_mutex_unlock(&buffer_mu);
}

static void log_nothing(void *arg, const char *tok, const struct lh_request *r)
{
	(void)arg;
	(void)tok;
	(void)r;
}

static void log_access(void *arg, const char *tok, const struct lh_request *r)
{
	static const char pad[PAD + 1] = { [0 ... PAD - 1] = 'P' };
	char line[LOG_BUFFER];
	uint32_t key = key_of(r->x_request_id);
	int n;

	(void)arg;
	(void)tok;
	n = snprintf(line, sizeof line, "\"%s %s HTTP/1.1\" 200 key=%08x pad=%s\n", r->method,
		     r->path, key, key % 10 % 3 == 0 && key % 10 ? pad : "P");
	if (n <= 0 || (size_t)n >= sizeof line)
		return;
	pthread_mutex_lock(&buffer_mu);
	if (buffered + (size_t)n > LOG_BUFFER)
		flush_buffer();
	memcpy(buffer + buffered, line, (size_t)n);
	buffered += (size_t)n;
	if (rotate_every && ++lines_logged % rotate_every == 0) {
		flush_buffer();
		rotate();
	}
	pthread_mutex_unlock(&buffer_mu);
}

static const struct lh_request_logs request_logs = { log_nothing, log_nothing, log_access };

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, quit = 0;
	struct lh_conn *c = malloc(sizeof *c);

	if (c) {
		quit = lh_serve_conn(c, fd, 0, &request_logs, NULL, NULL);
		free(c);
	}
	close(fd);
	lh_threads_conn_done(&th_state, quit);
	return NULL;
}

static void start_thread(int fd)
{
	lh_threads_start(&th_state, serve, fd);
}

/* OTHER_LOGS=N: N logs beside LEGACY_LOG's file, opened before it. */
static void open_other_logs(void)
{
	const char *n = getenv("OTHER_LOGS"), *log = getenv("LEGACY_LOG");
	const char *slash = log ? strrchr(log, '/') : NULL;
	char path[PATH_MAX];

	if (!n || !slash || strncmp(log, "file:", 5) != 0)
		return;
	for (int i = 0; i < atoi(n); i++) {
		snprintf(path, sizeof path, "%.*s/other-%02d.log", (int)(slash - log - 5), log + 5, i);
		if (open(path, O_WRONLY | O_APPEND | O_CREAT, 0644) < 0)
			exit(2);
	}
}

int main(int argc, char **argv)
{
	int ready_fd, port;

	open_other_logs();
	ready_fd = lh_begin(argc, argv, "shared_log_buffer");
	if (ready_fd < 0)
		return 2;
	th_state.listen_fd = lh_listen_or_log(&port);
	if (th_state.listen_fd < 0)
		return 1;
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	if (getenv("ROTATE_EVERY")) {
		rotate_every = strtoul(getenv("ROTATE_EVERY"), NULL, 10);
		rotate_by_dup2 = getenv("ROTATE_BY") && strcmp(getenv("ROTATE_BY"), "dup2") == 0;
	}
	atexit(flush_at_exit);
	lh_threads_accept_loop(&th_state, start_thread);
	lh_threads_drain_exit(&th_state, NULL);
}
