/*
 * uv_server.c - adversarial event-loop server for reqid
 * (test_event_loops.py case 9): a libuv TCP service, ONE thread, uv_run.
 * libuv calls epoll_wait in uv__io_poll and every ready watcher's callback
 * through one call instruction there (w->cb); uv_write() writes at once
 * when it can, but its callback runs later from uv__run_pending, and timers
 * run from uv__run_timers, both after uv__io_poll returned.
 *
 * Lines (besides evloop.h's got and queue):
 *   conn=C readable            in the alloc callback, before each read()
 *   token=T respond / wrote    in the read callback, around uv_write()     handler
 *   token=T wdone N bytes      uv_write's callback                         deferred
 *   token=T tick               first uv_timer callback (delay >= 4), no I/O deferred
 *   token=T fire / fwrote      uv_timer callback, around uv_write()        deferred
 *   token=T fwdone N bytes     uv_write's callback after the timer's write deferred
 *   conn=C closed ...          uv_close's callback
 * /quit answers (written directly) and exits 0.
 *
 * Built with -luv (its own rule in the Makefile).
 */
#define _GNU_SOURCE /* accept4 in evloop.h */
#include <stddef.h>
#include <uv.h>

#include "evloop.h"

struct uconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wreq;
	int handles_open;
	struct evc c;
};

static uv_loop_t *loop;
static uv_tcp_t server;

static void process(struct uconn *u);

static void on_closed(uv_handle_t *h)
{
	struct uconn *u = h->data;

	if (--u->handles_open == 0) {
		lh_log("DEBUG", "conn=%u closed after %d requests", u->c.serial, u->c.nreq);
		free(u);
	}
}

static void close_conn(struct uconn *u)
{
	if (u->c.state == EVC_DEAD)
		return;
	u->c.state = EVC_DEAD;
	uv_read_stop((uv_stream_t *)&u->tcp);
	uv_timer_stop(&u->timer);
	uv_close((uv_handle_t *)&u->tcp, on_closed);
	uv_close((uv_handle_t *)&u->timer, on_closed);
}

static void on_write(uv_write_t *req, int status)
{
	struct uconn *u = req->data;

	if (u->c.state == EVC_DEAD)
		return;
	if (status < 0) {
		close_conn(u);
		return;
	}
	lh_log_2w("INFO", "token=%s %s %zu bytes", u->c.tok, u->c.after, u->c.out_len);
	u->c.state = EVC_READ;
	if (u->c.close_after)
		close_conn(u);
	else
		process(u); /* bytes of a next request may be in already */
}

/* uv_write of the current response, between the `before` and `mid` lines;
 * `after` is logged by on_write. */
static void respond(struct uconn *u, const char *before, const char *mid, const char *after)
{
	uv_buf_t b;

	lh_log_v("INFO", "token=%s %s", u->c.tok, before);
	u->c.out_len = lh_build_response(u->c.out, sizeof u->c.out, u->c.tok, u->c.close_after);
	u->c.after = after;
	u->c.state = EVC_WRITE;
	b = uv_buf_init(u->c.out, (unsigned)u->c.out_len);
	u->wreq.data = u;
	if (uv_write(&u->wreq, (uv_stream_t *)&u->tcp, &b, 1, on_write) != 0) {
		close_conn(u);
		return;
	}
	lh_log("INFO", "token=%s %s", u->c.tok, mid);
}

static void on_timer(uv_timer_t *t)
{
	struct uconn *u = t->data;

	if (u->c.state != EVC_WAIT)
		return;
	if (!u->c.mark && u->c.delay >= 4) { /* the tick: no I/O, timer again */
		u->c.mark = 1;
		lh_log("INFO", "token=%s tick", u->c.tok);
		uv_timer_start(&u->timer, on_timer, (uint64_t)(u->c.delay - u->c.delay / 2), 0);
		return;
	}
	respond(u, "fire", "fwrote", "fwdone");
}

/* Every whole request buffered, one at a time (the next after on_write). */
static void process(struct uconn *u)
{
	while (u->c.state == EVC_READ) {
		int rc = evc_take_request(&u->c);

		if (rc == 0)
			return;
		if (rc < 0) {
			close_conn(u);
			return;
		}
		if (u->c.delay >= 0 && u->c.delay <= 10000) {
			lh_log_2w("INFO", "token=%s queue delay=%ldms", u->c.tok, u->c.delay);
			u->c.state = EVC_WAIT;
			u->c.mark = 0;
			uv_timer_start(&u->timer, on_timer, (uint64_t)(u->c.delay >= 4 ?
								       u->c.delay / 2 :
								       u->c.delay), 0);
			return;
		}
		respond(u, "respond", "wrote", "wdone");
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct uconn *u = h->data;

	(void)suggested;
	evc_log_readable(&u->c);
	*buf = uv_buf_init(u->c.lc.buf + u->c.lc.len,
			   (unsigned)(sizeof u->c.lc.buf - u->c.lc.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct uconn *u = s->data;

	(void)buf;
	if (nread == 0)
		return; /* EAGAIN */
	if (nread < 0 || u->c.lc.len == sizeof u->c.lc.buf) {
		close_conn(u);
		return;
	}
	u->c.lc.len += (size_t)nread;
	process(u);
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct uconn *u;
	uv_os_fd_t fd;

	if (status < 0)
		return;
	u = calloc(1, sizeof *u);
	if (!u)
		return;
	uv_tcp_init(loop, &u->tcp);
	uv_timer_init(loop, &u->timer);
	u->tcp.data = u->timer.data = u;
	u->handles_open = 2;
	if (uv_accept(srv, (uv_stream_t *)&u->tcp) != 0 ||
	    uv_fileno((uv_handle_t *)&u->tcp, &fd) != 0) {
		u->c.state = EVC_READ;
		close_conn(u);
		return;
	}
	evc_init(&u->c, fd);
	evc_log_accepted(&u->c);
	uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
	int ready_fd = lh_begin(argc, argv, "uv_server"), port, rc, len;
	struct sockaddr_in sa;

	if (ready_fd < 0)
		return 2;
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	uv_ip4_addr("127.0.0.1", 0, &sa);
	rc = uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server, 512, on_connection);
	len = sizeof sa;
	if (rc == 0)
		rc = uv_tcp_getsockname(&server, (struct sockaddr *)&sa, &len);
	if (rc != 0) {
		lh_log("ERROR", "cannot listen: %s", uv_strerror(rc));
		return 1;
	}
	port = ntohs(sa.sin_port);
	lh_log("INFO", "listening on 127.0.0.1:%d (libuv %s)", port, uv_version_string());
	if (lh_report_port(ready_fd, port) < 0)
		return 1;
	return uv_run(loop, UV_RUN_DEFAULT);
}
