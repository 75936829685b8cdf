/*
 * thread_ctx.c - the per-thread attribution state machine (see thread_ctx.h).
 *
 * Called at the entry and exit of connection I/O hooks and from wait hooks.
 * Must stay async-signal-safe: TLS only, plus log_writer for held lines.
 */
#include "thread_ctx.h"

#include "log_writer.h"

__thread struct thread_ctx thread_ctx __attribute__((tls_model("initial-exec")));

static void release_held(uint64_t request)
{
	thread_ctx.held = false;
	log_release_held(request);
}

void ctx_boundary(void)
{
	if (thread_ctx.held)
		release_held(0);
	thread_ctx.request = 0;
	thread_ctx.mode = CTX_NONE;
}

void ctx_other_io(void)
{
	ctx_boundary();
}

void ctx_before_conn_io(int fd)
{
	if (!thread_ctx.held)
		return;
	uint64_t r = thread_ctx.request;
	bool same = thread_ctx.mode == CTX_BRACKET && r != 0 && conn_request(fd) == r;
	release_held(same ? r : 0);
}

void ctx_after_conn_io(int fd, bool wrote)
{
	uint32_t conn = (uint32_t)fd + 1;
	if (thread_ctx.last_conn != 0 && thread_ctx.last_conn != conn)
		ctx_mark_event_loop();
	thread_ctx.last_conn = conn;
	uint64_t r = conn_request(fd);
	if (r == 0) {
		thread_ctx.request = 0;
		thread_ctx.mode = CTX_NONE;
		return;
	}
	thread_ctx.request = r;
	bool certain = !wrote && !thread_ctx.event_loop && !conn_table[fd].responded;
	thread_ctx.mode = certain ? CTX_CERTAIN : CTX_BRACKET;
}

void ctx_mark_event_loop(void)
{
	thread_ctx.event_loop = true;
	if (thread_ctx.mode == CTX_CERTAIN)
		thread_ctx.mode = CTX_BRACKET;
}

void ctx_conn_closing(int fd)
{
	ctx_before_conn_io(fd);
	if (thread_ctx.request != 0 && thread_ctx.request == conn_request(fd))
		ctx_boundary();
	if (thread_ctx.last_conn == (uint32_t)fd + 1)
		thread_ctx.last_conn = 0;
}

uint64_t ctx_certain_request(void)
{
	if (thread_ctx.mode != CTX_CERTAIN)
		return 0;
	uint64_t r = thread_ctx.request;
	return conn_request((int)thread_ctx.last_conn - 1) == r ? r : 0;
}
