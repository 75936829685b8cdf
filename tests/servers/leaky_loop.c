/*
 * leaky_loop.c - integration-test server for `reqid audit`: a legacy
 * single-threaded event loop with the leak the audit's single-threaded rule
 * exists for, planted where the test knows its line (the LEAK marker).
 *
 * One thread polls the listener and every connection. A request read on a
 * ready connection is logged, quoting its request line as access logs do
 * ("got": the shim gives it its id by that), and not answered there: it is
 * parked, and the loop's next turn polls without waiting; when nothing is
 * ready, the loop does its idle work, which finishes the parked request: it
 * logs "finished" and writes the answer (finish_parked). That line is
 * written while the request is in flight, but by an event loop (a thread
 * that waits on several descriptors) after a poll that returned nothing:
 * nothing proves it the request's, and it goes out without an id (the
 * leak). Lines for audit_drive.py's 7 requests on two connections and its
 * /quit: 3 accepted, 7 got, 7 finished, 2 closed.
 *
 * It plays a legacy server: it knows nothing of reqid, logs with write(2)
 * on fd 2 (legacy_http.h), and must never change where the marker is.
 * GET only, keep-alive; /quit answers and ends the process with exit(0).
 */
#include <poll.h>

#include "legacy_http.h"

#define MAX_CONNS 64

static struct lh_conn *conns[MAX_CONNS];
static int nconns;

/* The parked request: its connection and token (none: conn NULL). */
static struct lh_conn *parked;
static char parked_tok[LH_TOKEN_MAX];
static int parked_close;

static void drop_conn(int i)
{
	lh_log("INFO", "closed fd=%d", conns[i]->fd);
	close(conns[i]->fd);
	free(conns[i]);
	conns[i] = conns[--nconns];
}

static void answer(struct lh_conn *c, const char *word, int close_conn)
{
	char out[LH_RESPONSE_MAX];
	size_t n = lh_build_response(out, sizeof out, word, close_conn);

	if (lh_write_all(c->fd, out, n, 0) < 0)
		lh_log("ERROR", "write failed: %s", strerror(errno));
}

/* Idle work: the parked request is finished and answered. */
static void finish_parked(void)
{
	lh_log("INFO", "token=%s finished", parked_tok); /* LEAK loop */
	answer(parked, parked_tok, parked_close);
	parked = NULL;
}

/* Reads what a ready connection has; parks a whole request. Returns 0 to
 * keep the connection, -1 to drop it. */
static int conn_ready(struct lh_conn *c)
{
	struct lh_request r;
	char tok[LH_TOKEN_MAX];
	ssize_t n = lh_fill(c);
	int rc;

	if (n <= 0)
		return -1;
	rc = lh_parse(c, &r);
	if (rc == 0)
		return 0;
	if (rc < 0 || strcmp(r.method, "GET") != 0)
		return -1;
	if (lh_is_quit(r.path)) {
		answer(c, "quit", 1);
		exit(0);
	}
	if (!lh_path_token(r.path, tok, sizeof tok))
		return -1;
	lh_log("INFO", "\"%s %s HTTP/1.1\" got", r.method, r.path);
	parked = c;
	snprintf(parked_tok, sizeof parked_tok, "%s", tok);
	parked_close = r.close;
	return 0;
}

static void accept_one(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	struct lh_conn *c;

	if (fd < 0)
		return;
	c = nconns < MAX_CONNS ? malloc(sizeof *c) : NULL;
	if (!c) {
		close(fd);
		return;
	}
	lh_conn_init(c, fd, 0);
	conns[nconns++] = c;
	lh_log("INFO", "accepted fd=%d", fd);
}

int main(int argc, char **argv)
{
	struct pollfd pfd[MAX_CONNS + 1];
	int ready_fd = lh_begin(argc, argv, "leaky_loop"), lfd, port, i, n;

	if (ready_fd < 0)
		return 2;
	lfd = lh_listen_or_log(&port);
	if (lfd < 0 || lh_report_port(ready_fd, port) < 0)
		return 1;
	for (;;) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < nconns; i++) { /* the parked one waits: no POLLIN */
			pfd[i + 1].fd = conns[i]->fd;
			pfd[i + 1].events = conns[i] == parked ? 0 : POLLIN;
		}
		n = poll(pfd, (nfds_t)nconns + 1, parked ? 0 : -1);
		if (n < 0 && errno != EINTR)
			return 1;
		if (n == 0 && parked) {
			finish_parked();
			continue;
		}
		for (i = nconns; i >= 1; i--)
			if (pfd[i].revents && conns[i - 1] != parked && conn_ready(conns[i - 1]) < 0)
				drop_conn(i - 1);
		if (pfd[0].revents)
			accept_one(lfd);
	}
}
