/*
 * spawner.c - integration-test server for reqid: for each request it starts
 * a shell the way the request's path says (/HOW/TOKEN: fork-execve,
 * vfork-execv, clone-vm-execv, execvp, posix_spawn, posix_spawnp, system,
 * popen) and the
 * shell logs one line to stderr; popen's shell also prints a line the server
 * sends back as the response body. Serves one request per connection,
 * single-threaded; logs "parent" lines to fd 2 itself; /quit exits 0.
 *
 * It plays a legacy program that knows nothing of reqid: it must never
 * mention request ids. At start it runs one system() outside any request.
 * Prints its port on stdout once it listens.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void say(const char *text)
{
	if (write(2, text, strlen(text)) < 0)
		exit(3);
}

static void reap(pid_t pid)
{
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		say("spawner: child failed\n");
}

/* What a clone(CLONE_VM) child runs: closes its copy of the connection
 * (the parent's books on it stay open) and execs the shell. */
struct clone_exec {
	int conn;
	char **argv;
};

static int clone_child(void *arg)
{
	struct clone_exec *e = arg;
	close(e->conn);
	execv("/bin/sh", e->argv);
	_exit(127);
}

/* Starts the shell for how; returns the body to answer with. */
static void run(int conn, const char *how, const char *script, char *body, size_t size)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	pid_t pid;
	snprintf(body, size, "ran %s\n", how);
	if (strcmp(how, "fork-execve") == 0) {
		pid = fork();
		if (pid == 0) {
			execve("/bin/sh", argv, environ);
			_exit(127);
		}
		reap(pid);
	} else if (strcmp(how, "vfork-execv") == 0) {
		pid = vfork();
		if (pid == 0) {
			/* The connection is the parent's: the child's close of
			 * its copy must not end the parent's books on it. */
			close(conn);
			execv("/bin/sh", argv);
			_exit(127);
		}
		reap(pid);
	} else if (strcmp(how, "clone-vm-execv") == 0) {
		/* From a fork child, which has made no vfork child yet
		 * whatever this process did (the vfork-execv requests). */
		pid = fork();
		if (pid == 0) {
			static char stack[64 * 1024] __attribute__((aligned(16)));
			struct clone_exec e = {conn, argv};
			pid_t child = clone(clone_child, stack + sizeof(stack),
					    CLONE_VM | CLONE_VFORK | SIGCHLD, &e);
			int status;
			_exit(child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status)
				      ? WEXITSTATUS(status)
				      : 126);
		}
		reap(pid);
	} else if (strcmp(how, "execvp") == 0) {
		pid = fork();
		if (pid == 0) {
			execvp("sh", argv);
			_exit(127);
		}
		reap(pid);
	} else if (strcmp(how, "posix_spawn") == 0) {
		if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
			say("spawner: posix_spawn failed\n");
		reap(pid);
	} else if (strcmp(how, "posix_spawnp") == 0) {
		if (posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
			say("spawner: posix_spawnp failed\n");
		reap(pid);
	} else if (strcmp(how, "system") == 0) {
		if (system(script) != 0)
			say("spawner: system failed\n");
	} else if (strcmp(how, "popen") == 0) {
		FILE *p = popen(script, "r");
		if (!p || !fgets(body, (int)size, p) || pclose(p) != 0)
			say("spawner: popen failed\n");
	} else {
		snprintf(body, size, "unknown %s\n", how);
	}
}

static void serve(int conn)
{
	char req[4096], how[32], token[64], line[256], script[256], body[256], resp[512];
	size_t got = 0;
	while (got < sizeof(req) - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
		ssize_t r = read(conn, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			return;
		got += (size_t)r;
	}
	req[got] = '\0';
	if (strncmp(req, "GET /quit ", 10) == 0) {
		const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		if (write(conn, ok, sizeof(ok) - 1) < 0)
			exit(3);
		exit(0);
	}
	if (sscanf(req, "GET /%31[^/]/%63[^ ] ", how, token) != 2)
		return;
	snprintf(line, sizeof(line), "parent how=%s token=%s\n", how, token);
	say(line);
	if (strcmp(how, "popen") == 0)
		snprintf(script, sizeof(script),
			 "echo \"child how=%s token=%s\" >&2; echo \"out token=%s\"", how, token,
			 token);
	else
		snprintf(script, sizeof(script), "echo \"child how=%s token=%s\" >&2", how, token);
	run(conn, how, script, body, sizeof(body));
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 strlen(body), body);
	if (write(conn, resp, (size_t)n) < 0)
		say("spawner: write failed\n");
}

int main(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 64) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) != 0)
		return 2;
	if (system("echo \"child how=startup token=none\" >&2") != 0)
		say("spawner: system failed\n");
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int conn = accept(s, NULL, NULL);
		if (conn < 0)
			continue;
		serve(conn);
		close(conn);
	}
}
