/*
 * bench_process.c - the process-level operations bench_process.py times,
 * with and without the shim. Knows nothing of the shim.
 *
 * usage:
 *   bench_process fork N OUT      N times fork(), _exit(0) in the child,
 *                                 waitpid() in the parent
 *   bench_process thread N OUT    N times pthread_create() + pthread_join()
 *   bench_process spawn N LIB OUT N pairs of posix_spawn(/usr/bin/env
 *                                 /bin/true) + waitpid(), one with env
 *                                 {PATH}, one with {PATH, LD_PRELOAD=LIB},
 *                                 alternating which goes first
 *   bench_process firstsec PORT MS CONNS PATH OUT
 *                                 CONNS threads each GET PATH with
 *                                 Connection: close, in a loop, from before
 *                                 the server listens until MS ms after the
 *                                 first connect succeeded; prints "ready" on
 *                                 stdout once the threads run
 *
 * OUT gets one line per sample: nanoseconds for fork and thread; "bare NS"
 * or "shim NS" for spawn; for firstsec a first line "t0 NS" (CLOCK_MONOTONIC
 * of the first connect that succeeded), then "START_NS LATENCY_NS OK" per
 * request (OK 0: refused, reset, timed out or not a 200). Results go to a
 * file, not stdout: shimmed, stdout is a log descriptor.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 5

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	return f;
}

static void one_fork(void)
{
	pid_t pid = fork();
	if (pid < 0)
		exit(1);
	if (pid == 0)
		_exit(0);
	int status;
	if (waitpid(pid, &status, 0) != pid || status != 0)
		exit(1);
}

static void *thread_body(void *arg)
{
	return arg;
}

static void one_thread(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, thread_body, NULL) != 0 || pthread_join(t, NULL) != 0)
		exit(1);
}

static int run_loop(void (*op)(void), long n, const char *out)
{
	FILE *f = open_out(out);
	for (int i = 0; i < WARMUP; i++)
		op();
	for (long i = 0; i < n; i++) {
		int64_t t = now_ns();
		op();
		fprintf(f, "%lld\n", (long long)(now_ns() - t));
	}
	return fclose(f) == 0 ? 0 : 1;
}

static int64_t one_spawn(char *const *envp)
{
	static char *const argv[] = {"/usr/bin/env", "/bin/true", NULL};
	int64_t t = now_ns();
	pid_t pid;
	int status;
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp) != 0)
		exit(1);
	if (waitpid(pid, &status, 0) != pid || status != 0)
		exit(1);
	return now_ns() - t;
}

static int run_spawn(long n, const char *lib, const char *out)
{
	static char path[4096], preload[4096];
	snprintf(path, sizeof(path), "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
	char *bare[] = {path, NULL};
	char *shim[] = {path, preload, NULL};
	FILE *f = open_out(out);
	for (int i = 0; i < WARMUP; i++)
		one_spawn(bare), one_spawn(shim);
	for (long i = 0; i < n; i++) {
		int shim_first = i & 1;
		for (int k = 0; k < 2; k++) {
			int shimmed = k ^ !shim_first;
			int64_t ns = one_spawn(shimmed ? shim : bare);
			fprintf(f, "%s %lld\n", shimmed ? "shim" : "bare", (long long)ns);
		}
	}
	return fclose(f) == 0 ? 0 : 1;
}

/* ---- firstsec: a client that is already knocking when the server starts */

struct sample {
	int64_t start, latency;
	int ok;
};

struct client {
	pthread_t thread;
	int id;
	struct sample *samples;
	long count, cap;
};

static struct sockaddr_in server_addr;
static int64_t window_ns, give_up_at;
static int64_t t0; /* start of the first connect that succeeded; 0: none yet */

static const char *get_path;

/* One request on connected socket s; X-Request-ID on every other one. */
static int get(int s, int id, long i)
{
	char req[512], buf[4096];
	int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n",
			   get_path);
	len += i % 2 ? snprintf(req + len, sizeof(req) - len, "\r\n")
		     : snprintf(req + len, sizeof(req) - len, "X-Request-ID: first-%d-%ld\r\n\r\n", id, i);
	if (send(s, req, len, MSG_NOSIGNAL) != len)
		return 0;
	ssize_t r, total = 0;
	int status_ok = 0;
	while ((r = read(s, buf, sizeof(buf))) > 0) {
		if (total == 0)
			status_ok = r >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
		total += r;
	}
	return r == 0 && status_ok;
}

static int connect_timed(struct timeval tv)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		exit(1);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&server_addr, sizeof(server_addr)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

static void record(struct client *c, int64_t start, int ok)
{
	if (c->count == c->cap)
		return;
	c->samples[c->count++] = (struct sample){start, now_ns() - start, ok};
}

static void *client_loop(void *arg)
{
	struct client *c = arg;
	struct timeval tv = {.tv_sec = 5};
	for (long i = 0;; i++) {
		int64_t start = now_ns();
		int64_t first = __atomic_load_n(&t0, __ATOMIC_ACQUIRE);
		if ((first && start >= first + window_ns) || (!first && start > give_up_at))
			break;
		int s = connect_timed(tv);
		if (s < 0) {
			first = __atomic_load_n(&t0, __ATOMIC_ACQUIRE);
			if (!first || start < first) {
				usleep(200); /* not listening yet: knock again */
				continue;
			}
			record(c, start, 0);
			continue;
		}
		int64_t none = 0;
		__atomic_compare_exchange_n(&t0, &none, start, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		int ok = get(s, c->id, i);
		close(s);
		record(c, start, ok);
	}
	return NULL;
}

static int run_firstsec(int port, long ms, int conns, const char *path, const char *out)
{
	get_path = path;
	server_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	window_ns = ms * 1000000;
	give_up_at = now_ns() + 20 * (int64_t)1000000000;
	struct client *cs = calloc(conns, sizeof(*cs));
	for (int i = 0; i < conns; i++) {
		cs[i] = (struct client){.id = i, .cap = 1000000};
		cs[i].samples = malloc(cs[i].cap * sizeof(struct sample));
		if (!cs[i].samples || pthread_create(&cs[i].thread, NULL, client_loop, &cs[i]) != 0)
			return 1;
	}
	printf("ready\n");
	fflush(stdout);
	FILE *f = open_out(out);
	for (int i = 0; i < conns; i++)
		pthread_join(cs[i].thread, NULL);
	fprintf(f, "t0 %lld\n", (long long)t0);
	for (int i = 0; i < conns; i++)
		for (long k = 0; k < cs[i].count; k++)
			fprintf(f, "%lld %lld %d\n", (long long)cs[i].samples[k].start,
				(long long)cs[i].samples[k].latency, cs[i].samples[k].ok);
	return fclose(f) == 0 && t0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "fork") == 0)
		return run_loop(one_fork, atol(argv[2]), argv[3]);
	if (argc == 4 && strcmp(argv[1], "thread") == 0)
		return run_loop(one_thread, atol(argv[2]), argv[3]);
	if (argc == 5 && strcmp(argv[1], "spawn") == 0)
		return run_spawn(atol(argv[2]), argv[3], argv[4]);
	if (argc == 7 && strcmp(argv[1], "firstsec") == 0)
		return run_firstsec(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), argv[5], argv[6]);
	fprintf(stderr, "usage: bench_process fork|thread N OUT | spawn N LIB OUT | "
			"firstsec PORT MS CONNS PATH OUT\n");
	return 2;
}
