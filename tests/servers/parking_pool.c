/*
 * parking_pool.c - integration-test server for a pool that parks requests,
 * as Varnish's waiting list does: worker P reads a request and, without
 * answering it, goes back to its task queue, where it then runs a task for
 * another request (a fetch from a downstream server); worker Q answers the
 * parked request later. It knows nothing of reqid: test_parking.py checks
 * that the shim gives none of P's later work the parked request's id.
 *
 *     parking_pool DOWNSTREAM_PORT
 *
 * Listens on 127.0.0.1 twice (P's port and Q's), prints "<P port> <Q port>"
 * on stdout, then takes one command a line on stdin, answering each with a
 * line on stdout once it is done, so the test orders everything:
 *   park     P accepts a connection on its port, reads one request head
 *            and parks it (no answer): "parked"
 *   fetch    Q accepts a connection on its port and reads one request
 *            head, then hands P a fetch task and waits for it: P writes
 *            "fetch <path>" to stderr (its log) and sends the downstream
 *            "GET /down<path> HTTP/1.1" (its answer must be "HTTP/1.1 200
 *            OK\r\nContent-Length: 2\r\n\r\nok"); then Q writes "answer
 *            <path>" to stderr and answers: "fetched"
 *   release  Q writes "parked <path>" to stderr for each parked request
 *            and answers it: "released"
 * Every answer is "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection:
 * close\r\n\r\nok", and the connection is closed after it. End of input
 * ends the server (exit 0; 1 on any error).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PATH_MAX_LEN 64
#define PARKED_MAX 16

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int listen_any(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		die("listen");
	*port = ntohs(a.sin_port);
	return fd;
}

/* Reads a request head from fd (one read call at a time, to its blank line)
 * and stores its path. */
static void read_head(int fd, char path[PATH_MAX_LEN])
{
	char buf[4096];
	size_t n = 0;
	while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			die("read request");
		n += (size_t)r;
		if (n == sizeof(buf) - 1)
			die("request too long");
	}
	buf[n] = '\0';
	if (sscanf(buf, "GET %63s HTTP/1.1", path) != 1)
		die("request line");
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r <= 0)
			die("write");
		p += r;
		n -= (size_t)r;
	}
}

static void log_line(const char *what, const char *path)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %s\n", what, path);
	write_all(2, line, (size_t)n);
}

static void answer(int fd)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
	write_all(fd, resp, sizeof(resp) - 1);
	if (close(fd) != 0)
		die("close");
}

/* One worker's task queue: one task at a time, under the pool's lock. */
enum task { TASK_NONE, TASK_PARK, TASK_FETCH, TASK_SERVE, TASK_RELEASE };

struct worker {
	pthread_cond_t wake;
	enum task task;
	char path[PATH_MAX_LEN]; /* TASK_FETCH: the request's path */
	int listener;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done; /* tasks finished, for the main thread and for Q */
static struct worker park_worker = {.wake = PTHREAD_COND_INITIALIZER};
static struct worker serve_worker = {.wake = PTHREAD_COND_INITIALIZER};
static int downstream_port;
static int parked_fd[PARKED_MAX];
static char parked_path[PARKED_MAX][PATH_MAX_LEN];
static int parked;

/* Gives w a task and waits until tasks more have finished (w's, and those
 * it runs on other workers first). */
static void run_task(struct worker *w, enum task t, int tasks)
{
	pthread_mutex_lock(&lock);
	int before = done;
	w->task = t;
	pthread_cond_signal(&w->wake);
	while (done < before + tasks)
		pthread_cond_wait(&done_cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void task_done(void)
{
	pthread_mutex_lock(&lock);
	done++;
	pthread_cond_broadcast(&done_cond);
	pthread_mutex_unlock(&lock);
}

static void fetch(const char *path)
{
	log_line("fetch", path);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)downstream_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("connect downstream");
	char req[160];
	int n = snprintf(req, sizeof(req), "GET /down%s HTTP/1.1\r\nHost: downstream\r\n\r\n", path);
	write_all(fd, req, (size_t)n);
	static const char want[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	char got[sizeof(want)];
	size_t have = 0;
	while (have < sizeof(want) - 1) {
		ssize_t r = read(fd, got + have, sizeof(want) - 1 - have);
		if (r <= 0)
			die("read downstream");
		have += (size_t)r;
	}
	if (memcmp(got, want, sizeof(want) - 1) != 0)
		die("downstream answer");
	close(fd);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (w->task == TASK_NONE)
			pthread_cond_wait(&w->wake, &lock);
		enum task t = w->task;
		w->task = TASK_NONE;
		pthread_mutex_unlock(&lock);
		char path[PATH_MAX_LEN];
		if (t == TASK_PARK) {
			int fd = accept(w->listener, NULL, NULL);
			if (fd < 0 || parked == PARKED_MAX)
				die("accept");
			read_head(fd, parked_path[parked]);
			parked_fd[parked++] = fd;
			task_done();
		} else if (t == TASK_FETCH) {
			fetch(w->path);
			task_done();
		} else if (t == TASK_SERVE) {
			int fd = accept(w->listener, NULL, NULL);
			if (fd < 0)
				die("accept");
			read_head(fd, path);
			pthread_mutex_lock(&lock);
			snprintf(park_worker.path, sizeof(park_worker.path), "%s", path);
			pthread_mutex_unlock(&lock);
			run_task(&park_worker, TASK_FETCH, 1);
			log_line("answer", path);
			answer(fd);
			task_done();
		} else {
			for (int i = 0; i < parked; i++) {
				log_line("parked", parked_path[i]);
				answer(parked_fd[i]);
			}
			parked = 0;
			task_done();
		}
		pthread_mutex_lock(&lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	downstream_port = atoi(argv[1]);
	int park_port, serve_port;
	park_worker.listener = listen_any(&park_port);
	serve_worker.listener = listen_any(&serve_port);
	pthread_t t;
	if (pthread_create(&t, NULL, work, &park_worker) || pthread_create(&t, NULL, work, &serve_worker))
		die("pthread_create");
	printf("%d %d\n", park_port, serve_port);
	fflush(stdout);
	char cmd[32];
	while (fgets(cmd, sizeof(cmd), stdin)) {
		if (!strcmp(cmd, "park\n")) {
			run_task(&park_worker, TASK_PARK, 1);
			puts("parked");
		} else if (!strcmp(cmd, "fetch\n")) {
			run_task(&serve_worker, TASK_SERVE, 2); /* and P's fetch */
			puts("fetched");
		} else if (!strcmp(cmd, "release\n")) {
			run_task(&serve_worker, TASK_RELEASE, 1);
			puts("released");
		} else {
			return 1;
		}
		fflush(stdout);
	}
	return 0;
}
