/*
 * epoll_edges.c - edge-triggered epoll loops that must not hang under the
 * shim (test_epoll_edges.py). The kernel reports an edge once: an event the
 * shim kept back from a batch, unless given back to the kernel, would reach
 * only the same thread's next wait on the same instance, and each mode here
 * looks for it elsewhere.
 *
 *   epoll_edges MODE    exits 0 once both connections were served,
 *                       1 if a wait timed out (the hang), 2 on set-up errors
 *
 * Modes (two accepted connections with bytes pending, registered EPOLLET on
 * one instance, served by reading until EAGAIN):
 *   poll-epfd        poll() on the epoll fd, then epoll_wait(.., 0): an
 *                    epoll loop inside another loop
 *   poll-epfd-fortified  the same through __poll_chk, as _FORTIFY_SOURCE
 *                    builds call poll
 *   nested           the instance registered on an outer instance: wait on
 *                    the outer one, then epoll_wait(inner, .., 0)
 *   leader-follower  two threads take turns: the one that waited hands the
 *                    next wait to the other before it serves its events (an
 *                    eventfd wakes the last waiter once all are served)
 *   moved            while serving the first connection the program moves
 *                    the second to another descriptor number (F_DUPFD and
 *                    close): its registration lives on with the file
 * and two where an event must NOT reach the program:
 *   closed-deleted   after each batch, as an idle timer would, the program
 *                    deletes every connection it did not serve from the
 *                    instance and closes it: its next wait must not report
 *                    one (a loop that frees a connection's object between
 *                    waits would use it after free)
 *   closed           the same by close() alone, the last copy of the file
 *   closed-forked    the same by close() alone while a forked helper (as
 *                    for a CGI script) holds copies of the connections: the
 *                    kernel keeps the registration, for a file this
 *                    process no longer has
 * and four where the loop's epoll number comes to name another instance:
 * a first instance with two connections (data words 0 and 1, EPOLLET) is
 * replaced by a second one with two new connections and the same data
 * words, the program goes on waiting under the first one's number, and
 * after its first wait closes the first instance's connections (they are
 * another loop's, done with): an event of the second instance must not be
 * taken for one of theirs (a wrong id; and kept back for a descriptor
 * that then closes, it was lost: the hang).
 *   replaced-dup2    dup2(second, first), then close(second)
 *   replaced-dup3    the same with dup3(.., O_CLOEXEC)
 *   replaced-dupfd   close(first), then fcntl(second, F_DUPFD, first)
 *   replaced-create  close(first), then the second instance made on its
 *                    number by epoll_create1
 * It checks the program, not the ids: its only output is why it failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNS 2
#define IDLE 200
#define WAIT_MS 2000

static int server_fd[CONNS];
static int served;

static void fail_setup(const char *what)
{
	perror(what);
	exit(2);
}

/* Two loopback connections, both ends open, a request pending on each
 * server end (non-blocking); the server ends registered edge-triggered on a
 * new instance, their data words the connection's index, beside IDLE
 * eventfds that never become ready. Returns it. */
static int set_up(void)
{
	int ep = epoll_create1(0);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
		fail_setup("listen");
	if (ep < 0)
		fail_setup("epoll_create1");
	/* Idle registrations too: the instance's /proc fdinfo, which the shim
	 * may read to learn what the kernel still holds, takes many reads. */
	for (int k = 0; k < IDLE; k++) {
		int efd = eventfd(0, EFD_NONBLOCK);
		struct epoll_event idle = {.events = EPOLLIN | EPOLLET, .data.u64 = 1000 + (uint64_t)k};
		if (efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &idle) != 0)
			fail_setup("idle eventfd");
	}
	for (int i = 0; i < CONNS; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
			fail_setup("connect");
		server_fd[i] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (server_fd[i] < 0)
			fail_setup("accept4");
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = (uint64_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, server_fd[i], &ev) != 0)
			fail_setup("epoll_ctl");
		static const char request[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
		if (write(c, request, sizeof(request) - 1) != (ssize_t)sizeof(request) - 1)
			fail_setup("write");
	}
	/* Both requests arrived before the first wait: one batch holds both. */
	for (int i = 0; i < CONNS; i++) {
		struct pollfd p = {.fd = server_fd[i], .events = POLLIN};
		if (poll(&p, 1, WAIT_MS) != 1)
			fail_setup("poll");
	}
	return ep;
}

/* Reads connection i until EAGAIN. */
static void serve(int i)
{
	char buf[256];
	while (read(server_fd[i], buf, sizeof(buf)) > 0)
		;
	served++;
}

/* Serves what a wait on ep that does not block returns. */
static void serve_ready(int ep)
{
	struct epoll_event ev[16];
	int n = epoll_wait(ep, ev, 16, 0);
	for (int k = 0; k < n; k++)
		serve((int)ev[k].data.u64);
}

static int hung(const char *where)
{
	printf("%s timed out with %d of %d connections served\n", where, served, CONNS);
	return 1;
}

static int poll_epfd(int ep)
{
	while (served < CONNS) {
		struct pollfd p = {.fd = ep, .events = POLLIN};
		if (poll(&p, 1, WAIT_MS) != 1)
			return hung("poll on the epoll fd");
		serve_ready(ep);
	}
	return 0;
}

/* What _FORTIFY_SOURCE makes of poll() on an array of known size whose
 * count the compiler cannot see (Debian builds with it): glibc's checked
 * entry point, called as such code calls it. */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);

static int poll_epfd_fortified(int ep)
{
	while (served < CONNS) {
		struct pollfd p[1] = {{.fd = ep, .events = POLLIN}};
		if (__poll_chk(p, 1, WAIT_MS, sizeof(p)) != 1)
			return hung("__poll_chk on the epoll fd");
		serve_ready(ep);
	}
	return 0;
}

static int nested(int ep)
{
	int outer = epoll_create1(0);
	struct epoll_event reg = {.events = EPOLLIN};
	if (outer < 0 || epoll_ctl(outer, EPOLL_CTL_ADD, ep, &reg) != 0)
		fail_setup("outer instance");
	while (served < CONNS) {
		struct epoll_event ready;
		if (epoll_wait(outer, &ready, 1, WAIT_MS) != 1)
			return hung("wait on the outer instance");
		serve_ready(ep);
	}
	return 0;
}

static int leader_ep;
static int all_served_fd; /* an eventfd on the instance: wakes the last waiter */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int waiting; /* a thread is inside the wait */
static int timed_out;

static void *take_turns(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&turn_lock);
	for (;;) {
		while (waiting && served < CONNS && !timed_out)
			pthread_cond_wait(&turn_changed, &turn_lock);
		if (served >= CONNS || timed_out)
			break;
		waiting = 1;
		pthread_mutex_unlock(&turn_lock);
		struct epoll_event ev[16];
		int n = epoll_wait(leader_ep, ev, 16, WAIT_MS);
		pthread_mutex_lock(&turn_lock);
		waiting = 0; /* the other thread leads now */
		timed_out |= n == 0 && served < CONNS;
		pthread_cond_broadcast(&turn_changed);
		pthread_mutex_unlock(&turn_lock);
		usleep(20000); /* serving takes a while */
		pthread_mutex_lock(&turn_lock);
		for (int k = 0; k < n; k++)
			if (ev[k].data.u64 < CONNS)
				serve((int)ev[k].data.u64);
		if (served == CONNS && eventfd_write(all_served_fd, 1) != 0)
			fail_setup("eventfd_write");
		pthread_cond_broadcast(&turn_changed);
	}
	pthread_mutex_unlock(&turn_lock);
	return NULL;
}

static int leader_follower(int ep)
{
	pthread_t t[2];
	leader_ep = ep;
	all_served_fd = eventfd(0, EFD_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = CONNS};
	if (all_served_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, all_served_fd, &ev) != 0)
		fail_setup("eventfd");
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, take_turns, NULL) != 0)
			fail_setup("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	return timed_out ? hung("a follower's wait") : 0;
}

static int moved(int ep)
{
	while (served < CONNS) {
		struct epoll_event ev[16];
		int n = epoll_wait(ep, ev, 16, WAIT_MS);
		if (n <= 0)
			return hung("epoll_wait");
		for (int k = 0; k < n; k++) {
			int i = (int)ev[k].data.u64;
			serve(i);
			if (served == 1) {
				int other = 1 - i;
				int to = fcntl(server_fd[other], F_DUPFD_CLOEXEC, 100);
				if (to < 0)
					fail_setup("F_DUPFD");
				close(server_fd[other]);
				server_fd[other] = to;
			}
		}
	}
	return 0;
}

/* The closing modes: del, whether connections are deleted before close. */
static int close_unserved(int ep, int del)
{
	int done[CONNS] = {0}, closed[CONNS] = {0}, settled = 0;
	struct epoll_event ev[16];
	while (settled < CONNS) {
		int n = epoll_wait(ep, ev, 16, WAIT_MS);
		if (n <= 0)
			return hung("epoll_wait");
		for (int k = 0; k < n; k++) {
			int i = (int)ev[k].data.u64;
			if (closed[i]) {
				printf("an event for connection %d, closed before this wait\n", i);
				return 1;
			}
			if (!done[i]) {
				serve(i);
				done[i] = 1;
				settled++;
			}
		}
		for (int i = 0; i < CONNS; i++) {
			if (done[i] || closed[i])
				continue;
			if (del && epoll_ctl(ep, EPOLL_CTL_DEL, server_fd[i], NULL) != 0)
				fail_setup("EPOLL_CTL_DEL");
			close(server_fd[i]);
			closed[i] = 1;
			settled++;
		}
	}
	int n = epoll_wait(ep, ev, 16, 0);
	if (n != 0) {
		printf("the last wait returned %d, expected 0 (first: connection %d)\n", n,
		       n > 0 ? (int)ev[0].data.u64 : -1);
		return 1;
	}
	return 0;
}

static int closed_deleted(int ep)
{
	return close_unserved(ep, 1);
}

static int closed_alone(int ep)
{
	return close_unserved(ep, 0);
}

static int closed_forked(int ep)
{
	int hold[2];
	if (pipe(hold) != 0)
		fail_setup("pipe");
	pid_t helper = fork();
	if (helper < 0)
		fail_setup("fork");
	if (helper == 0) { /* keeps its copies until the parent is done */
		char c;
		close(hold[1]);
		_exit(read(hold[0], &c, 1) < 0);
	}
	close(hold[0]);
	int rc = close_unserved(ep, 0);
	close(hold[1]);
	waitpid(helper, NULL, 0);
	return rc;
}

enum replace_by { BY_DUP2, BY_DUP3, BY_DUPFD, BY_CREATE };

/* The replaced modes (the header comment): ep is the first instance. */
static int replaced(int ep, enum replace_by by)
{
	int first_conns[CONNS];
	memcpy(first_conns, server_fd, sizeof(first_conns));
	/* The first instance's loop runs a while: its requests are read. */
	struct epoll_event ev[16];
	for (int n = epoll_wait(ep, ev, 16, WAIT_MS), k = 0; k < n; k++)
		serve((int)ev[k].data.u64);
	served = 0;
	if (by == BY_CREATE) {
		close(ep);
		if (set_up() != ep)
			fail_setup("the second instance not on the first one's number");
	} else {
		int second = set_up();
		int onto = by == BY_DUP2   ? dup2(second, ep)
			   : by == BY_DUP3 ? dup3(second, ep, O_CLOEXEC)
					   : (close(ep), fcntl(second, F_DUPFD, ep));
		if (onto != ep)
			fail_setup("replacing the instance");
		close(second);
	}
	int waits = 0;
	while (served < CONNS) {
		int n = epoll_wait(ep, ev, 16, WAIT_MS);
		if (n <= 0)
			return hung("epoll_wait");
		for (int k = 0; k < n; k++)
			serve((int)ev[k].data.u64);
		if (++waits == 1)
			for (int i = 0; i < CONNS; i++)
				close(first_conns[i]);
	}
	return 0;
}

static int replaced_dup2(int ep)
{
	return replaced(ep, BY_DUP2);
}

static int replaced_dup3(int ep)
{
	return replaced(ep, BY_DUP3);
}

static int replaced_dupfd(int ep)
{
	return replaced(ep, BY_DUPFD);
}

static int replaced_create(int ep)
{
	return replaced(ep, BY_CREATE);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int ep);
	} modes[] = {
		{"poll-epfd", poll_epfd},
		{"poll-epfd-fortified", poll_epfd_fortified},
		{"nested", nested},
		{"leader-follower", leader_follower},
		{"moved", moved},
		{"closed-deleted", closed_deleted},
		{"closed", closed_alone},
		{"closed-forked", closed_forked},
		{"replaced-dup2", replaced_dup2},
		{"replaced-dup3", replaced_dup3},
		{"replaced-dupfd", replaced_dupfd},
		{"replaced-create", replaced_create},
	};
	for (size_t m = 0; argc == 2 && m < sizeof(modes) / sizeof(modes[0]); m++)
		if (strcmp(argv[1], modes[m].name) == 0)
			return modes[m].run(set_up());
	fprintf(stderr, "usage: epoll_edges poll-epfd|poll-epfd-fortified|nested|leader-follower|"
			"moved|closed-deleted|closed|closed-forked|replaced-dup2|replaced-dup3|"
			"replaced-dupfd|replaced-create\n");
	return 2;
}
