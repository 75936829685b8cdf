/*
 * log_writer_stand_ins.h - what log_writer.c and log_output.c call of the
 * rest of the shim, for the programs that drive them as plain functions
 * (test_log_slots.c, fuzz_line_assembly.c): the shim's globals, a thread's
 * id and certain request as thread_ctx.c gives them, and the event-loop,
 * unwinding and audit parts off (their calls never happen, or abort), as in
 * a process that never waits on epoll. Included once per program.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit_log.h"
#include "call_chain.h"
#include "event_batch.h"
#include "log_writer.h"
#include "request_table.h"
#include "shim_init.h"
#include "signal_frames.h"
#include "thread_ctx.h"

struct shim_state shim;
struct process_state process;
struct real_functions real;
_Atomic bool fatal_flush_installed;

void install_fatal_signal_flush(void)
{
	fatal_flush_installed = true;
}
__thread struct thread_ctx thread_ctx __attribute__((tls_model("initial-exec")));
uint32_t ctx_generation;

void ctx_start_afresh(void)
{
	thread_ctx.generation = ctx_generation;
}

int32_t ctx_tid_fetch(void)
{
	thread_ctx.tid = (int32_t)syscall(SYS_gettid);
	return thread_ctx.tid;
}

uint64_t ctx_certain_request(void)
{
	return thread_ctx.mode == CTX_CERTAIN ? thread_ctx.request : 0;
}

bool ctx_serves_own_request(void)
{
	return thread_ctx.mode == CTX_CERTAIN && !(thread_ctx.watch & WATCH_INHERITED) &&
	       thread_ctx.request != 0;
}

void stdio_note_write(FILE *f)
{
	(void)f;
}

__thread const struct call_chain *call_chain_lender;

void call_chain_take(struct call_chain *chain, struct chain_memo *memo)
{
	(void)memo;
	chain->count = 0;
	chain->frames = chain->own;
}

struct chain_memo *batch_chain_memo(void)
{
	return NULL;
}

uintptr_t batch_line_site(const struct call_chain *chain)
{
	(void)chain;
	return 0;
}

uint64_t batch_line_request(const struct call_chain *chain)
{
	(void)chain;
	return 0;
}

int batch_nested_depth(const struct call_chain *chain, uint64_t *key)
{
	(void)chain;
	*key = 0;
	return 0;
}

uint64_t batch_nested_key(const struct call_chain *chain, int depth)
{
	(void)chain;
	(void)depth;
	return 0;
}

void audit_line(enum audit_verdict verdict, uint64_t request, uint64_t ctx, uint32_t held,
		const char *text, size_t len)
{
	(void)verdict;
	(void)request;
	(void)ctx;
	(void)held;
	(void)text;
	(void)len;
	abort();
}

void audit_line_decided(uint32_t number, uint64_t request)
{
	(void)number;
	(void)request;
	abort();
}

uint32_t audit_held_number(void)
{
	abort();
}

static const char *stand_in_environment(const char *name)
{
	(void)name;
	return NULL;
}

/* The configuration and line style start-up makes with no REQID_* set. */
static void stand_in_configure(void)
{
	config_parse(&shim.config, stand_in_environment);
	shim.style.format = shim.config.format;
	shim.style.field = shim.config.field;
	shim.style.field_len = shim.config.field_len;
	shim.style.field_count = shim.config.field_count;
	memcpy(shim.style.fields, shim.config.fields, sizeof(shim.style.fields));
	shim.syslog_style = shim.style;
	shim.syslog_style.cee = true;
	shim.active = true;
}
