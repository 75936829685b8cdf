/*
 * audit_log.c - writing `reqid audit`'s records (see audit_log.h).
 *
 * The file is opened by the first record of a process image, with a raw
 * system call (no hook sees it), and moved up to a high descriptor number,
 * out of the program's way; a program that closes that number (a daemon
 * closing every descriptor) makes the next record open it again. Must
 * never write to a descriptor that is not the audit file, never allocate,
 * never change errno.
 */
#include "audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "audit_record.h"
#include "call_chain.h"
#include "request_table.h"
#include "shim_init.h"
#include "thread_ctx.h"

/* Text of a line kept in its record, and frames of its call site: a
 * record is built on the stack of the hook that writes it, which may be a
 * signal handler's on a small alternate stack, so it stays near 3 KiB. */
#define TEXT_MAX 512
#define FRAMES_MAX 24
#define RECORD_SIZE (TEXT_MAX * 4 + FRAMES_MAX * 17 + 256)
/* The audit file is moved to a descriptor at or above this. */
#define CHANNEL_FLOOR 900

static _Atomic int channel = -1;
static _Atomic bool map_written;
static _Atomic uint32_t held_numbers;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void start(struct audit_record *r, char *buf, size_t cap, char kind)
{
	audit_record_start(r, buf, cap, kind);
	audit_field_u64(r, (uint64_t)shim.pid);
	audit_field_u64(r, now_ns());
}

/* The audit file, opened if it is not; -1 if it cannot be. */
static int channel_fd(void)
{
	int fd = atomic_load_explicit(&channel, memory_order_acquire);
	if (fd >= 0)
		return fd;
	/* REQID_AUDIT_DIR/audit.PID */
	char path[CONFIG_MAX_AUDIT_DIR + 32], digits[16];
	size_t n = shim.config.audit_dir_len, d = 0;
	memcpy(path, shim.config.audit_dir, n);
	memcpy(path + n, "/audit.", 7);
	n += 7;
	for (unsigned pid = (unsigned)getpid(); d == 0 || pid; pid /= 10)
		digits[d++] = (char)('0' + pid % 10);
	while (d)
		path[n++] = digits[--d];
	path[n] = '\0';
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, CHANNEL_FLOOR);
	if (high >= 0) {
		syscall(SYS_close, fd);
		fd = high;
	}
	int none = -1;
	if (!atomic_compare_exchange_strong(&channel, &none, fd)) {
		syscall(SYS_close, fd); /* another thread's won */
		fd = none;
	}
	return fd;
}

static void emit(struct audit_record *r)
{
	size_t n = audit_record_end(r);
	int fd = channel_fd();
	if (n && fd >= 0)
		syscall(SYS_write, fd, r->buf, n);
}

/* I, then an M record for each executable mapping with a path. */
static void write_map(void)
{
	char buf[2048], rec[768];
	struct audit_record r;
	start(&r, rec, sizeof(rec), 'I');
	emit(&r);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t have = 0;
	for (;;) {
		ssize_t got = syscall(SYS_read, fd, buf + have, sizeof(buf) - have);
		if (got <= 0)
			break;
		have += (size_t)got;
		size_t line = 0;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\n')
				continue;
			/* "start-end perms offset dev inode   path" */
			char *l = buf + line, *end = buf + i;
			char *f[6];
			int nf = 0;
			for (char *p = l; p < end && nf < 6;) {
				while (p < end && *p == ' ')
					p++;
				f[nf++] = p;
				while (p < end && (nf == 6 || *p != ' '))
					p++;
			}
			if (nf == 6 && f[1][2] == 'x' && f[5][0] == '/') {
				char *dash = f[0];
				while (*dash != '-')
					dash++;
				start(&r, rec, sizeof(rec), 'M');
				audit_field_raw(&r, f[0], (size_t)(dash - f[0]));
				audit_field_raw(&r, dash + 1, (size_t)(f[1] - 1 - dash - 1));
				audit_field_raw(&r, f[2], (size_t)(f[3] - 1 - f[2]));
				audit_field_text(&r, f[5], (size_t)(end - f[5]), 512);
				emit(&r);
			}
			line = i + 1;
		}
		memmove(buf, buf + line, have - line);
		have -= line;
		if (have == sizeof(buf))
			have = 0; /* a line longer than the buffer: dropped */
	}
	syscall(SYS_close, fd);
}

static void map_once_per_image(void)
{
	bool no = false;
	if (!atomic_load_explicit(&map_written, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&map_written, &no, true))
		write_map();
}

static void put_id(struct audit_record *r, uint64_t request)
{
	char id[REQUEST_ID_MAX];
	size_t n = request ? request_table_get(request, id) : 0;
	audit_field_u64(r, request);
	audit_field_text(r, id, n, REQUEST_ID_MAX);
}

void audit_line(enum audit_verdict verdict, uint64_t request, uint64_t ctx, uint32_t held,
		const char *text, size_t len)
{
	static const char *const names[] = {"tagged", "outside", "unproven", "batch", "held"};
	int saved = errno;
	map_once_per_image();
	struct call_chain chain;
	call_chain_take(&chain);
	char buf[RECORD_SIZE];
	struct audit_record r;
	start(&r, buf, sizeof(buf), 'L');
	audit_field_u64(&r, (uint64_t)ctx_tid());
	audit_field_u64(&r, held);
	audit_field_raw(&r, names[verdict], __builtin_strlen(names[verdict]));
	put_id(&r, request);
	audit_field_u64(&r, ctx);
	audit_field_addresses(&r, chain.frames, chain.count < FRAMES_MAX ? chain.count : FRAMES_MAX);
	audit_field_text(&r, text, len, TEXT_MAX);
	emit(&r);
	errno = saved;
}

uint32_t audit_held_number(void)
{
	uint32_t n = atomic_fetch_add_explicit(&held_numbers, 1, memory_order_relaxed) + 1;
	return n ? n : 1;
}

void audit_line_decided(uint32_t number, uint64_t request)
{
	int saved = errno;
	char buf[512];
	struct audit_record r;
	start(&r, buf, sizeof(buf), 'D');
	audit_field_u64(&r, number);
	put_id(&r, request);
	emit(&r);
	errno = saved;
}

void audit_request_started(uint64_t serial, const char *id, size_t id_len)
{
	int saved = errno;
	map_once_per_image();
	char buf[512];
	struct audit_record r;
	start(&r, buf, sizeof(buf), 'S');
	audit_field_u64(&r, serial);
	audit_field_text(&r, id, id_len, REQUEST_ID_MAX);
	emit(&r);
	errno = saved;
}

void audit_request_ended(uint64_t serial)
{
	int saved = errno;
	char buf[128];
	struct audit_record r;
	start(&r, buf, sizeof(buf), 'E');
	audit_field_u64(&r, serial);
	emit(&r);
	errno = saved;
}

bool audit_is_channel(int fd)
{
	return fd >= 0 && fd == atomic_load_explicit(&channel, memory_order_relaxed);
}

void audit_fd_closing(void)
{
	atomic_store_explicit(&channel, -1, memory_order_release);
}

void audit_after_fork(void)
{
	atomic_store_explicit(&map_written, false, memory_order_relaxed);
}
