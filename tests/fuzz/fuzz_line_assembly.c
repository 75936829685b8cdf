/*
 * fuzz_line_assembly.c - libFuzzer target for line assembly (log_writer.c
 * and log_output.c, driven as plain functions): the input is a program of
 * operations on one thread, each taking a byte or a few: write a piece of
 * bytes (any, newlines included) to one of two log descriptors, switch the
 * thread's context (no request, certain of one of two requests, or in a
 * bracket, whose lines are held), release held lines under a request or
 * none, flush one descriptor, end the thread. The process exit flushes
 * the rest.
 *
 * The descriptors are memory: real.write and real.writev append to a
 * buffer per descriptor, each call taking all it is given or, when the
 * input says so, only part of it. Checks, per descriptor: every call the
 * "program" made returned its full count, and the output is exactly the
 * program's lines in the order it wrote them, each rendered by the line
 * format with no id or one of the two requests' ids, each ended by its
 * newline; a line unfinished at a flush of its descriptor comes out as a
 * line of its own, ended by a newline the shim adds, and one unfinished
 * when its thread ends or at the end as a line of its own without one.
 *
 * Links the shim's writer, output and request table with stand-ins for
 * what they call of the rest (log_writer_stand_ins.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "line_format.h"
#include "log_writer.h"
#include "request_table.h"

#include "../unit/log_writer_stand_ins.h"

/* ---- the descriptors ------------------------------------------------- */

#define FDS 2
#define OUT_MAX (1 << 20)

static const int fd_of[FDS] = {2, 5};
static char *out[FDS];
static size_t out_len[FDS];
static const uint8_t *cuts; /* bytes deciding how much each call takes */
static size_t cuts_left;

static int slot_of(int fd)
{
	return fd == fd_of[0] ? 0 : fd == fd_of[1] ? 1 : -1;
}

static size_t taken(size_t n)
{
	if (n == 0 || cuts_left == 0)
		return n;
	uint8_t c = *cuts++;
	cuts_left--;
	return c < 200 ? n : 1 + (size_t)c % n; /* now and then only part */
}

static ssize_t fake_write(int fd, const void *b, size_t n)
{
	int s = slot_of(fd);
	if (s < 0 || out_len[s] + n > OUT_MAX)
		abort();
	n = taken(n);
	memcpy(out[s] + out_len[s], b, n);
	out_len[s] += n;
	return (ssize_t)n;
}

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	size_t left = taken(total);
	ssize_t done = 0;
	for (int i = 0; i < iovcnt && left; i++) {
		size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
		int s = slot_of(fd);
		if (s < 0 || out_len[s] + k > OUT_MAX)
			abort();
		memcpy(out[s] + out_len[s], iov[i].iov_base, k);
		out_len[s] += k;
		left -= k;
		done += (ssize_t)k;
	}
	return done;
}

/* ---- the program, and what it wrote ---------------------------------- */

static char *wrote[FDS];
static size_t wrote_len[FDS];
/* Where the program's bytes to a descriptor may end a line without a
 * newline of its own: where the first flush there was of its descriptor
 * (CUT_ENDED: the shim ends the line) or of its thread (CUT_BARE). */
enum { CUT_NONE, CUT_BARE, CUT_ENDED };
static uint8_t *cut_at[FDS];

static void cut(int s, uint8_t how)
{
	if (cut_at[s][wrote_len[s]] == CUT_NONE)
		cut_at[s][wrote_len[s]] = how;
}
static uint64_t requests[2];
static char ids[2][REQUEST_ID_MAX + 1];

static void setup_once(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	stand_in_configure();
	real.write = fake_write;
	real.writev = fake_writev;
	for (int s = 0; s < FDS; s++) {
		out[s] = malloc(OUT_MAX);
		wrote[s] = malloc(OUT_MAX);
		cut_at[s] = calloc(OUT_MAX, 1);
	}
	static const char *const names[2] = {"req-one", "req-two"};
	for (int r = 0; r < 2; r++) {
		struct trace_plan plan;
		memset(&plan, 0, sizeof(plan));
		requests[r] = request_table_add(names[r], strlen(names[r]), NULL, 0, 0, &plan,
						NULL, 0, NULL);
		strcpy(ids[r], names[r]);
	}
}

static void set_context(uint8_t how)
{
	switch (how % 4) {
	case 0:
		thread_ctx.mode = CTX_NONE;
		thread_ctx.request = 0;
		break;
	case 1:
	case 2:
		thread_ctx.mode = CTX_CERTAIN;
		thread_ctx.request = requests[how % 4 - 1];
		break;
	default:
		thread_ctx.mode = CTX_BRACKET;
		thread_ctx.request = requests[how / 4 % 2];
		break;
	}
	thread_ctx.epoch++;
}

/* Whether descriptor s's output at *p is line, rendered as the line format
 * renders it with no id or one of the two requests' (the formatter is
 * fuzz_line_format's concern; this target's is which lines, in what
 * order, cut where), followed by a newline if the program ended it with
 * one. Advances *p past it. */
static int is_line(int s, const char **p, const char *line, size_t len, int newline)
{
	static char want[OUT_MAX + LINE_FIELDS_MAX];
	size_t left = (size_t)(out[s] + out_len[s] - *p);
	for (int r = -1; r < 2; r++) {
		char fields[LINE_FIELDS_MAX];
		size_t fields_len = r < 0 ? 0
				    : line_fields(&shim.style, ids[r], strlen(ids[r]), NULL,
						  fields);
		size_t n = line_format(&shim.style, fields, fields_len, line, len, want);
		if (newline)
			want[n++] = '\n';
		if (n <= left && memcmp(*p, want, n) == 0) {
			*p += n;
			return 1;
		}
	}
	return 0;
}

/* Checks descriptor s's output against what the program wrote to it: its
 * lines in order, each whole, once; a line without its newline only where
 * the program's bytes stopped unfinished (its end, or its thread's flush),
 * a newline the program did not write only where a flush of the
 * descriptor cut a line. */
static void check(int s)
{
	const char *p = out[s];
	size_t start = 0;
	while (start < wrote_len[s]) {
		size_t k = start;
		while (k < wrote_len[s] && !(k > start && cut_at[s][k]) && wrote[s][k] != '\n')
			k++;
		int newline = k < wrote_len[s] && !(k > start && cut_at[s][k]) && wrote[s][k] == '\n';
		int ended = k > start && cut_at[s][k] == CUT_ENDED;
		if (!is_line(s, &p, wrote[s] + start, k - start, newline || ended))
			abort(); /* a line lost, cut, out of order or wrongly tagged */
		start = k + newline;
	}
	if (p != out[s] + out_len[s])
		abort(); /* bytes the program did not write */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	memset(&thread_ctx, 0, sizeof(thread_ctx));
	thread_ctx.generation = ctx_generation;
	for (int s = 0; s < FDS; s++) {
		memset(cut_at[s], 0, wrote_len[s] + 1);
		out_len[s] = wrote_len[s] = 0;
	}
	/* The first quarter decides how much each output call takes. */
	cuts = data;
	cuts_left = size / 4;
	const uint8_t *p = data + size / 4, *end = data + size;
	while (p < end) {
		uint8_t op = *p++;
		int s = op >> 7;
		switch (op & 7) {
		case 0:
		case 1:
		case 2: { /* a piece of up to 63 bytes from the input */
			size_t n = (size_t)(op >> 1 & 63);
			if (n > (size_t)(end - p))
				n = (size_t)(end - p);
			if (wrote_len[s] + n > OUT_MAX / 4)
				return 0;
			struct log_sink sink = {.fd = fd_of[s]};
			struct iovec iov = {(void *)p, n};
			if (log_writev(&sink, &iov, 1) != (ssize_t)n)
				abort(); /* a blocking descriptor takes it all */
			memcpy(wrote[s] + wrote_len[s], p, n);
			wrote_len[s] += n;
			p += n;
			break;
		}
		case 3:
		case 4:
			set_context(op >> 3);
			break;
		case 5:
			log_release_held(op & 8 ? requests[op >> 4 & 1] : 0);
			break;
		case 6:
			log_flush_fd(fd_of[s]);
			cut(s, CUT_ENDED);
			break;
		default:
			log_flush_thread();
			cut(0, CUT_BARE);
			cut(1, CUT_BARE);
			break;
		}
	}
	log_flush_all();
	for (int s = 0; s < FDS; s++)
		check(s);
	return 0;
}
