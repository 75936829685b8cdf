/*
 * audit_log.c - writing `reqid audit`'s records (see audit_log.h).
 *
 * The file is opened when the shim starts in a process image (audit_open:
 * a server that drops its privileges later keeps it), else by its first
 * record, with a raw system call (no hook sees it), and moved up to a high
 * descriptor number, out of the program's way (or just under
 * RLIMIT_NOFILE; without a free high number there are no records); a
 * program that closes that number (a daemon closing every descriptor)
 * makes the next record open it again.
 * Records stop short of RLIMIT_FSIZE, whose SIGXFSZ would kill the
 * program. On a signal handler's alternate stack a line's record is small
 * and has no return addresses. Every record names its process image (a
 * token new in each image and fork child; a pid the kernel gives that is
 * not the shim's is a child no fork handler ran in, a raw clone's or a
 * vfork's, and gets a token and mappings of its own), so that records a
 * thread wrote before the image's mappings, or after a pid came back, stay
 * apart. Such a child never opens the file (a vfork child would leave its
 * descriptor number to the parent, in whose table it is not the file) and
 * writes only while the descriptor is still the file. Must never write to
 * a descriptor that is not the audit file, never allocate, never change
 * errno.
 */
#include "audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "audit_record.h"
#include "call_chain.h"
#include "fork_hot.h"
#include "large_table.h"
#include "raw_syscall.h"
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
static _Atomic bool channel_refused; /* no room for it: no records */
static _Atomic uint32_t held_numbers;

/* A process image the records name: its pid, its token (0 until its first
 * record) and whether its mappings were written. */
struct image {
	_Atomic int pid;
	_Atomic uint64_t token;
	_Atomic bool map_written;
};
/* home: the process the shim started in, or the fork child it became
 * (audit_after_fork). other: a child no fork handler ran in, whose pid the
 * kernel gives differs from home's (checked at every record): a raw
 * clone's, with memory of its own, whose process.pid and cached tids are its
 * parent's; or a vfork child's, which shares its parent's memory until it
 * exits or execs: so home is never changed for it, and the parent finds
 * its image as it left it. */
static struct image home, other;

/* Executable mappings the last M records named: a return address outside
 * them (a library loaded since) makes the next line write them again. */
#define RANGES_MAX 512
static struct {
	uintptr_t start, end;
} ranges[RANGES_MAX] LARGE_TABLE;
static _Atomic int range_count;
static _Atomic bool map_writing;

/* RLIMIT_FSIZE when the file was opened (RLIM_INFINITY: none). */
static uint64_t size_limit;
/* The file's identity, for a child no fork handler ran in: it may have
 * closed the descriptor without the shim's knowing (close's hook keeps
 * the books of the shim's own process only), and have another file there. */
static uint64_t channel_dev, channel_ino;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* An image's token: time and addresses, new in each image. */
static uint64_t token(struct image *img)
{
	uint64_t t = atomic_load_explicit(&img->token, memory_order_relaxed);
	if (t)
		return t;
	t = now_ns() ^ ((uint64_t)(uintptr_t)&t << 16) ^
	    ((uint64_t)atomic_load_explicit(&img->pid, memory_order_relaxed) << 40);
	uint64_t none = 0;
	if (!atomic_compare_exchange_strong(&img->token, &none, t | 1))
		return none;
	return t | 1;
}

/* img stands for the process pid from now on, which has written nothing. */
static void new_image(struct image *img, int pid)
{
	atomic_store_explicit(&img->token, 0, memory_order_relaxed);
	atomic_store_explicit(&img->map_written, false, memory_order_relaxed);
	atomic_store_explicit(&map_writing, false, memory_order_relaxed);
	atomic_store_explicit(&img->pid, pid, memory_order_relaxed);
}

/* The image a record of the calling process names: one system call. */
static struct image *own_image(void)
{
	int pid = (int)syscall(SYS_getpid);
	if (pid == atomic_load_explicit(&home.pid, memory_order_relaxed))
		return &home;
	if (pid != atomic_load_explicit(&other.pid, memory_order_relaxed))
		new_image(&other, pid);
	return &other;
}

/* The calling thread's tid: in other, the cached one may be a thread's of
 * the parent. */
static uint64_t record_tid(const struct image *img)
{
	return img == &home ? (uint64_t)ctx_tid() : (uint64_t)syscall(SYS_gettid);
}

static void start(struct audit_record *r, struct image *img, char *buf, size_t cap, char kind)
{
	audit_record_start(r, buf, cap, kind);
	audit_field_u64(r, (uint64_t)atomic_load_explicit(&img->pid, memory_order_relaxed));
	audit_field_u64(r, token(img));
	audit_field_u64(r, now_ns());
}

/* The audit file, opened if it is not; -1 if it cannot be. */
static int channel_fd(void)
{
	int fd = atomic_load_explicit(&channel, memory_order_acquire);
	if (fd >= 0 || atomic_load_explicit(&channel_refused, memory_order_relaxed))
		return fd;
	/* REQID_AUDIT_DIR/audit.PID */
	char path[CONFIG_MAX_AUDIT_DIR + 32], digits[16];
	size_t n = shim.config.audit_dir_len, d = 0;
	memcpy(path, shim.config.audit_dir, n);
	memcpy(path + n, "/audit.", 7);
	n += 7;
	for (unsigned pid = (unsigned)raw_getpid(); d == 0 || pid; pid /= 10)
		digits[d++] = (char)('0' + pid % 10);
	while (d)
		path[n++] = digits[--d];
	path[n] = '\0';
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* Up high, or just under the descriptor limit; never on a low number
	 * the program may be about to open (its output could land here). */
	struct rlimit rl;
	int high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, CHANNEL_FLOOR);
	if (high < 0 && syscall(SYS_getrlimit, RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 64 &&
	    rl.rlim_cur <= CHANNEL_FLOOR)
		high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, (int)rl.rlim_cur - 16);
	syscall(SYS_close, fd);
	if (high < 0) {
		atomic_store_explicit(&channel_refused, true, memory_order_relaxed);
		return -1;
	}
	fd = high;
	size_limit = syscall(SYS_getrlimit, RLIMIT_FSIZE, &rl) == 0 ? (uint64_t)rl.rlim_cur
								     : RLIM_INFINITY;
	struct stat st;
	if (syscall(SYS_fstat, fd, &st) == 0) {
		channel_dev = (uint64_t)st.st_dev;
		channel_ino = (uint64_t)st.st_ino;
	}
	int none = -1;
	if (!atomic_compare_exchange_strong(&channel, &none, fd)) {
		syscall(SYS_close, fd); /* another thread's won */
		fd = none;
	}
	return fd;
}

/* Bytes kept free below RLIMIT_FSIZE: other processes share the file. */
#define SIZE_MARGIN (256 * 1024)

static void emit(const struct image *img, struct audit_record *r)
{
	size_t n = audit_record_end(r);
	int fd = img == &home ? channel_fd() : atomic_load_explicit(&channel, memory_order_acquire);
	if (!n || fd < 0)
		return;
	struct stat st;
	if (img != &home && (syscall(SYS_fstat, fd, &st) != 0 || (uint64_t)st.st_dev != channel_dev ||
			     (uint64_t)st.st_ino != channel_ino))
		return; /* not the audit file any more */
	if (size_limit != RLIM_INFINITY &&
	    (syscall(SYS_fstat, fd, &st) != 0 || (uint64_t)st.st_size + n + SIZE_MARGIN > size_limit)) {
		atomic_store_explicit(&channel_refused, true, memory_order_relaxed);
		return; /* the next bytes could raise SIGXFSZ: no more records */
	}
	syscall(SYS_write, fd, r->buf, n);
}

static uintptr_t hex_value(const char *s, const char *end)
{
	uintptr_t v = 0;
	for (; s < end; s++)
		v = v << 4 | (uintptr_t)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
	return v;
}

/* An M record for each executable mapping with a path (first: an I record
 * for the image), and their ranges kept for new_module_in. */
static void write_map(struct image *img, bool first)
{
	char buf[2048], rec[768];
	struct audit_record r;
	int kept = 0;
	if (first) {
		start(&r, img, rec, sizeof(rec), 'I');
		emit(img, &r);
	}
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
				if (kept < RANGES_MAX) {
					ranges[kept].start = hex_value(f[0], dash);
					ranges[kept++].end = hex_value(dash + 1, f[1] - 1);
				}
				start(&r, img, rec, sizeof(rec), 'M');
				audit_field_raw(&r, f[0], (size_t)(dash - f[0]));
				audit_field_raw(&r, dash + 1, (size_t)(f[1] - 1 - dash - 1));
				audit_field_raw(&r, f[2], (size_t)(f[3] - 1 - f[2]));
				audit_field_text(&r, f[5], (size_t)(end - f[5]), 512);
				emit(img, &r);
			}
			line = i + 1;
		}
		memmove(buf, buf + line, have - line);
		have -= line;
		if (have == sizeof(buf))
			have = 0; /* a line longer than the buffer: dropped */
	}
	syscall(SYS_close, fd);
	atomic_store_explicit(&range_count, kept, memory_order_release);
}

static void map_once_per_image(struct image *img)
{
	bool no = false;
	if (!atomic_load_explicit(&img->map_written, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&img->map_written, &no, true)) {
		atomic_store_explicit(&map_writing, true, memory_order_relaxed);
		write_map(img, true);
		atomic_store_explicit(&map_writing, false, memory_order_release);
	}
}

/* Whether a return address of chain lies in no mapping the M records named
 * (a library loaded since they were written). */
static bool new_module_in(const struct call_chain *chain)
{
	int n = atomic_load_explicit(&range_count, memory_order_acquire);
	for (int i = 0; i < chain->count && i < FRAMES_MAX; i++) {
		uintptr_t a = (uintptr_t)chain->frames[i];
		bool known = false;
		for (int k = 0; k < n && !known; k++)
			known = a >= ranges[k].start && a < ranges[k].end;
		if (!known)
			return true;
	}
	return false;
}

/* The mappings again, by one thread at a time (others go on without). */
static void rewrite_map(struct image *img)
{
	bool no = false;
	if (atomic_compare_exchange_strong(&map_writing, &no, true)) {
		write_map(img, false);
		atomic_store_explicit(&map_writing, false, memory_order_release);
	}
}

/* Whether this thread runs on its signal alternate stack. */
static bool on_alternate_stack(void)
{
	stack_t ss;
	return syscall(SYS_sigaltstack, NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
}

static void put_id(struct audit_record *r, uint64_t request)
{
	char id[REQUEST_ID_MAX];
	size_t n = request ? request_table_get(request, id) : 0;
	audit_field_u64(r, request);
	audit_field_text(r, id, n, REQUEST_ID_MAX);
}

/* An L record in buf (cap bytes), with the frames of chain (NULL: none)
 * and at most text_max bytes of the line. */
static void line_record(struct image *img, char *buf, size_t cap, const struct call_chain *chain,
			size_t text_max, enum audit_verdict verdict, uint64_t request, uint64_t ctx,
			uint32_t held, const char *text, size_t len)
{
	static const char *const names[] = {"tagged", "outside", "unproven", "batch", "held",
					     "raw"};
	struct audit_record r;
	start(&r, img, buf, cap, 'L');
	audit_field_u64(&r, record_tid(img));
	audit_field_u64(&r, held);
	audit_field_raw(&r, names[verdict], __builtin_strlen(names[verdict]));
	put_id(&r, request);
	audit_field_u64(&r, ctx);
	int count = chain ? (chain->count < FRAMES_MAX ? chain->count : FRAMES_MAX) : 0;
	audit_field_addresses(&r, chain ? chain->frames : NULL, count);
	audit_field_text(&r, text, len, text_max);
	emit(img, &r);
}

/* The full record, with its return addresses: some 3.6 KiB of stack. */
static __attribute__((noinline)) void line_with_frames(struct image *img,
						       enum audit_verdict verdict,
						       uint64_t request, uint64_t ctx,
						       uint32_t held, const char *text, size_t len)
{
	struct call_chain chain;
	call_chain_take(&chain, NULL);
	if (new_module_in(&chain))
		rewrite_map(img);
	char buf[RECORD_SIZE];
	line_record(img, buf, sizeof(buf), &chain, TEXT_MAX, verdict, request, ctx, held, text,
		    len);
}

void audit_line(enum audit_verdict verdict, uint64_t request, uint64_t ctx, uint32_t held,
		const char *text, size_t len)
{
	int saved = errno;
	struct image *img = own_image();
	if (on_alternate_stack()) {
		/* A small stack may not hold the full record: no frames, and
		 * the line's first 64 bytes. */
		char buf[512];
		line_record(img, buf, sizeof(buf), NULL, 64, verdict, request, ctx, held, text,
			    len);
	} else {
		map_once_per_image(img);
		line_with_frames(img, verdict, request, ctx, held, text, len);
	}
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
	struct image *img = own_image();
	char buf[512];
	struct audit_record r;
	start(&r, img, buf, sizeof(buf), 'D');
	audit_field_u64(&r, number);
	put_id(&r, request);
	emit(img, &r);
	errno = saved;
}

void audit_request_started(uint64_t serial, const char *id, size_t id_len)
{
	int saved = errno;
	struct image *img = own_image();
	map_once_per_image(img);
	char buf[512];
	struct audit_record r;
	start(&r, img, buf, sizeof(buf), 'S');
	audit_field_u64(&r, serial);
	audit_field_text(&r, id, id_len, REQUEST_ID_MAX);
	emit(img, &r);
	errno = saved;
}

static void request_record(char kind, uint64_t serial)
{
	int saved = errno;
	struct image *img = own_image();
	char buf[128];
	struct audit_record r;
	start(&r, img, buf, sizeof(buf), kind);
	audit_field_u64(&r, serial);
	emit(img, &r);
	errno = saved;
}

void audit_request_ended(uint64_t serial)
{
	request_record('E', serial);
}

void audit_request_answered(uint64_t serial)
{
	request_record('R', serial);
}

void audit_open(void)
{
	int saved = errno;
	atomic_store_explicit(&home.pid, process.pid, memory_order_relaxed);
	channel_fd();
	errno = saved;
}

FORK_PATH bool audit_is_channel(int fd)
{
	return fd >= 0 && fd == atomic_load_explicit(&channel, memory_order_relaxed);
}

void audit_fd_closing(void)
{
	atomic_store_explicit(&channel, -1, memory_order_release);
}

void audit_after_fork(void)
{
	new_image(&home, process.pid);
	atomic_store_explicit(&other.pid, 0, memory_order_relaxed);
}
