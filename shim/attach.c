/*
 * attach.c - the shim's side of `reqid attach` and `reqid detach`.
 *
 * reqid-inject (inject/) loads the library into a running program with
 * dlopen on a thread of its own and calls reqid_attach with the settings
 * `reqid run` would have put in the environment; reqid_detach undoes it,
 * reqid_reconfigure swaps the settings. reqid_attach_status says, to anyone
 * who can read the process's memory (`reqid status`), whether it is
 * attached and with which settings.
 *
 * State from before attach: log descriptors are the configured numbers and
 * the open files whose paths match REQID_LOG_PATHS; a connection becomes
 * the shim's at its next read or write (FD_ADOPT, attach_adopt) if the
 * program has read none of its bytes; one it has read from is a connection
 * with no request (lost: its I/O ends contexts, its bytes pass untouched),
 * or with REQID_JOIN_OPEN joined mid-stream (conn_join); registrations on
 * epoll instances are read from /proc (import_registrations); threads already
 * running get contexts from their next connection I/O, and contexts left
 * from an earlier attach are dropped (ctx_generation, at detach). Such a
 * thread may be inside a wait begun before the GOT was patched, or running
 * its events, or asleep in the middle of them: until its next wait on
 * several descriptors it is certain of no request (WATCH_UNSEEN,
 * thread_ctx.h; note_unseen_threads says which threads).
 *
 * Runs only on the injector's thread, never from a hook: it may allocate,
 * take the loader's locks and block. Must never change the program's
 * environment, and never leave a GOT entry it changed unrestored on detach.
 */
#include "hooks.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "call_chain.h"
#include "client_output.h"
#include "epoll_map.h"
#include "epoll_queue.h"
#include "event_batch.h"
#include "got_patch.h"
#include "log_order.h"
#include "log_output.h"
#include "log_writer.h"
#include "map_once.h"
#include "proc_lines.h"
#include "raw_syscall.h"
#include "request_table.h"
#include "resident_return.h"
#include "signal_frames.h"
#include "thread_count.h"
#include "thread_ctx.h"
#include "thread_found.h"

#define SETTINGS_MAX 8192

/* What reqid_attach and reqid_detach answer. */
enum attach_result {
	ATTACH_OK = 0,
	ATTACH_ALREADY = 1,	/* attached before: detach first, or --reconfigure */
	ATTACH_PRELOADED = 2,	/* started under `reqid run`: the shim is in already */
	ATTACH_NO_LIBC = 3,	/* libc lacks what the hooks need */
	ATTACH_NO_GOT = 4,	/* no memory for the list of patched entries */
	ATTACH_TOO_LONG = 5,	/* settings longer than SETTINGS_MAX */
	ATTACH_NOT_ATTACHED = 6, /* detach of a process that is not attached */
	ATTACH_BUSY = 7,	/* a response still owes header bytes, or a log
				   descriptor queued bytes: try again */
	ATTACH_CHANGING = 8,	/* another attach or detach held it for 3 s */
	ATTACH_INVALID = 64	/* + the config_parse warning bits, shifted */
};

/* Read by `reqid status` through /proc/PID/mem: attached is 1 while the
 * shim is attached, settings the NAME=value lines it was given; all zero
 * when it is not (DETACH_ZEROED: detach empties it with the other tables,
 * and no hook reads it). Defined
 * under a local name, which the library's own uses bind to without a GOT
 * entry (it is linked -Bsymbolic-functions: -Bsymbolic's flag made the
 * loader search the library itself first for every one of its imports,
 * some 8,600 instructions at every start), and exported as
 * reqid_attach_status. */
static struct {
	int attached;
	int patched; /* GOT entries pointing at the shim */
	char settings[SETTINGS_MAX];
} reqid_attach_status __asm__("reqid_attach_status_local") DETACH_ZEROED;
EXPORT extern __typeof__(reqid_attach_status) reqid_attach_status_exported
	__asm__("reqid_attach_status") __attribute__((alias("reqid_attach_status_local")));

/* The settings as NUL-separated NAME=value entries, for config_parse,
 * which copies what it keeps: read only while attach or reconfigure runs
 * on the injector's thread, and emptied at detach (DETACH_ZEROED). */
static char entries[SETTINGS_MAX + 1] DETACH_ZEROED;

static const char *settings_lookup(const char *name)
{
	size_t n = strlen(name);
	for (const char *p = entries; *p; p += strlen(p) + 1)
		if (strncmp(p, name, n) == 0 && p[n] == '=')
			return p + n + 1;
	return NULL;
}

/* The NAME=value lines of settings (len bytes) into entries; false if
 * they do not fit. */
static bool read_settings(const char *settings, size_t len)
{
	if (len >= SETTINGS_MAX)
		return false;
	memcpy(entries, settings, len + 1);
	entries[len + 1] = '\0';
	for (char *p = entries; *p; p++)
		if (*p == '\n')
			*p = '\0';
	return true;
}

/* The line reqid-inject -p appends to the settings (inject/resident_pages.c):
 * which pages of libc and the loader were resident before the injection. */
#define RESIDENT_BEFORE "REQID_RESIDENT_BEFORE="

/* The start of settings' RESIDENT_BEFORE line, NULL if there is none. */
static const char *resident_before_line(const char *settings)
{
	for (const char *p = settings; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, RESIDENT_BEFORE, sizeof(RESIDENT_BEFORE) - 1) == 0)
			return p;
	return NULL;
}

/* Its value, for resident_snapshot; NULL if there is none. */
static const char *resident_before_value(const char *settings)
{
	const char *line = resident_before_line(settings);
	return line ? line + sizeof(RESIDENT_BEFORE) - 1 : NULL;
}

/* How many of settings' len bytes `reqid status` shows: all but a last
 * RESIDENT_BEFORE line (and the newline before it), which is no setting. */
static size_t settings_shown(const char *settings, size_t len)
{
	const char *line = resident_before_line(settings);
	if (!line || strchr(line, '\n'))
		return len;
	size_t at = (size_t)(line - settings);
	return at > 0 ? at - 1 : 0;
}

/* Whether more than one thread runs besides the calling one (the
 * injector's, which ends after attach). */
static bool other_threads(void)
{
	unsigned n = thread_count();
	return n == 0 || n > 2;
}

/* The threads attach_thread_unseen names, found once the GOT is patched
 * (note_unseen_threads): each waits for its next wait on several
 * descriptors; every other one waits for its first hooked wait when there
 * were more than UNSEEN_MAX or the list could not be read. Written only
 * while the hooks pass through, read by ctx_start_afresh after the
 * ctx_generation change that follows. */
#define UNSEEN_MAX 256
static int32_t unseen_tids[UNSEEN_MAX];
static unsigned unseen_count;
static bool unseen_overflow;

uint8_t attach_thread_unseen(int32_t tid)
{
	for (unsigned i = 0; i < unseen_count; i++)
		if (unseen_tids[i] == tid)
			return WATCH_UNSEEN | WATCH_UNSEEN_BATCH;
	return unseen_overflow ? WATCH_UNSEEN : 0;
}

/* Reads /proc/self/task/TID/NAME into buf (room bytes, NUL-terminated):
 * its length, or -1. */
static long read_task_file(int32_t tid, const char *name, char *buf, size_t room)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long n = syscall(SYS_read, fd, buf, room - 1);
	syscall(SYS_close, fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* What thread tid was doing (thread_found.h): its /proc/self/task/TID
 * syscall file, and its wchan where that says too little. */
static enum found thread_found(int32_t tid)
{
	char syscall_text[96], wchan[96];
	bool readable = read_task_file(tid, "syscall", syscall_text, sizeof(syscall_text)) >= 0;
	bool chan = (!readable || thread_found_needs_wchan(syscall_text)) &&
		    read_task_file(tid, "wchan", wchan, sizeof(wchan)) >= 0;
	return thread_found_from(readable ? syscall_text : NULL, chan ? wchan : NULL);
}

static bool accepted_before_attach(int fd);

/* Whether the process serves several connections from one thread: it has
 * one thread besides the injector's, and two accepted connections from
 * before attach are open (a server that blocks on one connection at a
 * time holds one). A poll or select loop that was running its events at
 * attach (no epoll instance, no thread in a wait to tell) is one. */
static bool one_thread_serves_several(unsigned threads, int highest)
{
	if (threads != 1)
		return false;
	int conns = 0;
	for (int fd = 0; fd <= highest && conns < 2; fd++)
		conns += accepted_before_attach(fd);
	return conns >= 2;
}

/* Fills the table of attach_thread_unseen: every thread of the process but
 * the calling one that is not idle (thread_found), now that every wait
 * begun from here on goes through a hook: one in a wait must wait for its
 * next wait on several descriptors (WATCH_UNSEEN | WATCH_UNSEEN_BATCH), as
 * one at work must in a process that serves several connections at once
 * (an epoll instance at attach, a thread found in a wait, or one thread
 * with two connections open: one_thread_serves_several). Elsewhere (a
 * blocking server between two calls, a pool's worker taking its next
 * job) one at work is taken for idle: it may never make a hooked wait.
 * More than UNSEEN_MAX: the others wait for their first hooked wait. */
static void note_unseen_threads(bool epoll_instances, int highest)
{
	unseen_count = 0;
	unseen_overflow = false;
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		unseen_overflow = true;
		return;
	}
	int32_t self = (int32_t)syscall(SYS_gettid);
	_Alignas(8) char tasks[1024];
	long got;
	unsigned threads = 0;
	bool batches = epoll_instances;
	while ((got = syscall(SYS_getdents64, dir, tasks, sizeof(tasks))) > 0) {
		for (long at = 0; at < got;) {
			const struct dirent64 *e = (const struct dirent64 *)(tasks + at);
			at += e->d_reclen;
			const char *end;
			int32_t tid = (int32_t)proc_decimal_at(e->d_name, &end);
			if (tid <= 0 || tid == self)
				continue;
			threads++;
			enum found found = thread_found(tid);
			if (found == FOUND_IDLE)
				continue;
			batches |= found == FOUND_IN_WAIT;
			if (unseen_count == UNSEEN_MAX)
				unseen_overflow = true;
			else
				unseen_tids[unseen_count++] = tid;
		}
	}
	if (got < 0)
		unseen_overflow = true;
	syscall(SYS_close, dir);
	if (!batches && !unseen_overflow && unseen_count != 0 &&
	    !one_thread_serves_several(threads, highest))
		unseen_count = 0;
}

/* Epoll instances the program made before attach, whose registrations
 * are read once the hooks are on (import_registrations); more than this
 * many and the rest stay unknown (their events name no fd). */
#define INSTANCES_MAX 64

struct instances {
	int count;
	int fd[INSTANCES_MAX];
};

/* The sockets listening at attach (scan_open_fds). With one there, a TCP
 * socket from before attach whose own port is no TCP listener's is one the
 * program opened itself (an upstream, a database): left alone, as `reqid
 * run` leaves outbound connections, not taken for one it accepted. A
 * program with no listener of its own (handed its connections), with a
 * transparent one (IP_TRANSPARENT: its connections carry the addresses
 * their clients asked for), or with more TCP ports than LISTENERS_MAX has
 * every TCP socket taken as accepted. */
#define LISTENERS_MAX 64
static struct {
	bool any;	/* some socket listens */
	bool every_tcp; /* every TCP socket counts as accepted */
	int ports;
	uint16_t port[LISTENERS_MAX];
} listeners;

/* fd's own TCP port, 0 if it is no TCP socket. */
static uint16_t own_port(int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	if (raw_getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
		return 0;
	if (addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&addr)->sin_port);
	if (addr.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&addr)->sin6_port);
	return 0;
}

static bool socket_option_set(int fd, int level, int name)
{
	int value = 0;
	socklen_t len = sizeof(value);
	return raw_getsockopt(fd, level, name, &value, &len) == 0 && value;
}

/* Whether a TCP socket listening at attach has this port. */
static bool listened_port(uint16_t port)
{
	for (int i = 0; i < listeners.ports; i++)
		if (listeners.port[i] == port)
			return true;
	return false;
}

static void note_listener(int fd)
{
	if (!socket_option_set(fd, SOL_SOCKET, SO_ACCEPTCONN))
		return;
	listeners.any = true;
	uint16_t port = own_port(fd);
	if (port == 0)
		return; /* a unix socket */
	if (socket_option_set(fd, SOL_IP, IP_TRANSPARENT) ||
	    socket_option_set(fd, SOL_IPV6, IPV6_TRANSPARENT))
		listeners.every_tcp = true;
	if (listened_port(port))
		return;
	if (listeners.ports < LISTENERS_MAX)
		listeners.port[listeners.ports++] = port;
	else
		listeners.every_tcp = true;
}

/* Whether fd, open since before attach, is a connection the program
 * accepted (is_accepted_socket, and for TCP one on a listener's port): not
 * a listening socket, which `reqid run` never counts among an epoll
 * instance's connections either. */
static bool accepted_before_attach(int fd)
{
	if (!is_accepted_socket(fd) || socket_option_set(fd, SOL_SOCKET, SO_ACCEPTCONN))
		return false;
	uint16_t port = own_port(fd);
	return port == 0 || !listeners.any || listeners.every_tcp || listened_port(port);
}

static bool is_epoll_instance(int fd)
{
	char path[PATH_MAX];
	return fd_path(fd, path) > 0 && strcmp(path, "anon_inode:[eventpoll]") == 0;
}

/* The open descriptors: writable files whose paths match REQID_LOG_PATHS
 * become logs, as if the program had opened them under the shim, listening
 * sockets' ports are noted (listeners), and epoll instances go into *found
 * (epoll_map_adopt_instance). Returns the highest open descriptor (-1 if
 * /proc/self/fd cannot be read). */
static void scan_open_fd(int fd, struct instances *found)
{
	struct fd_state *st;
	note_listener(fd);
	if (open_fd_is_log(fd) && (st = fd_state_made(fd)))
		atomic_fetch_or(&st->flags, FD_LOG);
	else if (found->count < INSTANCES_MAX && is_epoll_instance(fd) &&
		 epoll_map_adopt_instance(fd, process.threaded))
		found->fd[found->count++] = fd;
}

/* The directory is read by system calls into a buffer on the stack:
 * opendir's 32 KiB buffer would come from the malloc arena of the
 * injector's thread, whose pages it touched stay resident after detach. */
static int scan_open_fds(struct instances *found)
{
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -1;
	int highest = -1;
	_Alignas(8) char names[2048];
	long got;
	memset(&listeners, 0, sizeof(listeners));
	while ((got = syscall(SYS_getdents64, dir, names, sizeof(names))) > 0) {
		for (long at = 0; at < got;) {
			const struct dirent64 *e = (const struct dirent64 *)(names + at);
			const char *end;
			int fd = (int)proc_decimal_at(e->d_name, &end);
			at += e->d_reclen;
			if (e->d_name[0] == '.' || fd < 0 || fd >= (int)FD_LIMIT || fd == dir)
				continue;
			if (fd > highest)
				highest = fd;
			scan_open_fd(fd, found);
		}
	}
	syscall(SYS_close, dir);
	return highest;
}

#define REGISTRATIONS_MAX 65536

/* The registrations /proc/self/fdinfo lists for epfd of fds up to highest,
 * at most REGISTRATIONS_MAX, into out; how many, -1 if the list cannot be
 * read. Read by system calls (proc_lines.h): fopen's buffer came from the
 * injector thread's malloc arena and kept a page of it resident after
 * detach. */
static int read_registrations(int epfd, int highest, struct fdinfo_registration *out)
{
	char path[64], line[256];
	size_t len;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	struct proc_lines lines;
	if (!proc_lines_open(&lines, path))
		return -1;
	int count = 0;
	while (count < REGISTRATIONS_MAX && proc_lines_next(&lines, line, sizeof(line), &len)) {
		struct fdinfo_registration *r = &out[count];
		if (epoll_fdinfo_line(line, len, r) && r->complete && r->fd >= 0 && r->fd <= highest)
			count++;
	}
	proc_lines_close(&lines);
	return count;
}

/* The registrations of the epoll instances made before attach, as
 * /proc/self/fdinfo lists them, read after the hooks came on: each is
 * recorded unless a hooked epoll_ctl or close changed it meanwhile (the
 * stamps of every fd are taken before the list is read), and only if it
 * names the file open on its number now: a file closed while another copy
 * of it lives on stays registered under its old number, which another file
 * may have taken since (listed twice then, and skipped). Only fds up to
 * highest, the highest open when the instances were found, can have been
 * registered before the hooks came on. */
static void import_registrations(const struct instances *found, int highest)
{
	if (found->count == 0)
		return;
	size_t fds = (size_t)highest + 1;
	size_t size = fds * (sizeof(uint32_t) + 1) + 8 +
		      REGISTRATIONS_MAX * sizeof(struct fdinfo_registration);
	uint32_t *stamps = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	if (stamps == MAP_FAILED)
		return;
	uint8_t *listed = (uint8_t *)(stamps + fds); /* times each fd is listed */
	struct fdinfo_registration *list =
		(struct fdinfo_registration *)(((uintptr_t)(listed + fds) + 7) & ~(uintptr_t)7);
	for (int i = 0; i < found->count; i++) {
		int epfd = found->fd[i];
		for (size_t fd = 0; fd < fds; fd++)
			stamps[fd] = epoll_map_stamp((int)fd);
		int count = read_registrations(epfd, highest, list);
		memset(listed, 0, fds);
		for (int k = 0; k < count; k++)
			if (listed[list[k].fd] < 2)
				listed[list[k].fd]++;
		for (int k = 0; k < count; k++) {
			const struct fdinfo_registration *r = &list[k];
			struct stat st;
			if (listed[r->fd] == 1 && raw_fstat(r->fd, &st) == 0 && (uint64_t)st.st_ino == r->ino)
				epoll_map_import(epfd, stamps[epfd], r->fd, stamps[r->fd], r->data,
						 r->events, accepted_before_attach(r->fd));
		}
	}
	munmap(stamps, size);
}

/* A thread blocked in accept when the shim came in returns a connection
 * the shim never saw; so may any call that began before attach. Every
 * descriptor the shim knows nothing of, up to this far past the highest
 * open one (accept takes the lowest free number), is marked FD_ADOPT. */
#define ADOPT_SPAN 1024

static int adoptable_end(int highest)
{
	return highest + 1 + ADOPT_SPAN < (int)FD_LIMIT ? highest + 1 + ADOPT_SPAN : (int)FD_LIMIT;
}

static void mark_adoptable(int highest)
{
	int end = adoptable_end(highest);
	for (int fd = 0; fd < end; fd++) {
		struct fd_state *st;
		if (fd_flags(fd) == 0 && (st = fd_state_made(fd)))
			atomic_fetch_or(&st->flags, FD_ADOPT);
	}
}

/* A thread may have read a request past the shim (before attach, or while
 * the GOT was patched) and write its line now that the hooks are on: every
 * connection marked for adoption counts as unseen until its adoption
 * (conn_unseen_until_adopted), so that no line is named by the one request
 * with its request line the shim has counted so far. Run once the hooks
 * are on, so that one accepted while the GOT was patched counts too. */
static void count_unadopted(int highest)
{
	int end = adoptable_end(highest);
	for (int fd = 0; fd < end; fd++)
		if (fd_flags(fd) == FD_ADOPT && accepted_before_attach(fd))
			conn_unseen_until_adopted(fd);
}

/* Whether every byte connection fd ever received is still queued: the
 * program has read none of it, so its stream starts here. The queue is read
 * first: bytes arriving between the two reads make the received count
 * larger, never the queue, and make this sample say no; a few samples are
 * taken, and any one that says yes proves it. */
static bool nothing_read_yet(int fd)
{
	for (int sample = 0; sample < 3; sample++) {
		int queued = 0;
		struct tcp_info info;
		socklen_t len = sizeof(info);
		if (ioctl(fd, FIONREAD, &queued) != 0 ||
		    raw_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
		    len < offsetof(struct tcp_info, tcpi_bytes_received) +
				  sizeof(info.tcpi_bytes_received))
			return false;
		if (info.tcpi_bytes_received == (uint64_t)queued)
			return true;
	}
	return false;
}

void attach_adopt(int fd)
{
	/* Attach is patching the GOT (the hooks pass through), or detach may
	 * give up waiting: the first call after it adopts fd. Cleared then, fd
	 * would stay a connection the shim never sees, whose requests no count
	 * includes. */
	if (!__atomic_load_n(&shim.active, __ATOMIC_ACQUIRE) || shim.detaching)
		return;
	int saved = errno;
	atomic_fetch_and(&fd_state(fd)->flags, (uint8_t)~FD_ADOPT);
	if (fd_class(fd) == 0 && accepted_before_attach(fd)) {
		bool from_start = nothing_read_yet(fd);
		conn_join(fd, from_start);
		/* Not joined: still a connection, whose I/O ends a thread's
		 * context as any other's does (a worker that served a followed
		 * request and then this one must not lend it that request's
		 * id), but with no request ever, its bytes untouched. */
		if (!from_start && !shim.config.join_open)
			conn_lose(fd);
		attach_conn_opened(fd);
	}
	conn_adoption_dropped(fd); /* when it was not joined */
	errno = saved;
}

void attach_conn_opened(int fd)
{
	/* Either lose_every_stream sees fd a connection, or this sees the
	 * shim off (each stores, then loads the other's). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!__atomic_load_n(&shim.active, __ATOMIC_RELAXED))
		conn_lose(fd);
}

/* Everything the shim knew while attached: connections and outbound
 * connections it stops watching may close and their numbers be reused,
 * epoll registrations likewise, and threads' contexts and the request ring
 * name requests of this attach (a later one starts afresh: ctx_generation,
 * request_table_forget_all). Descriptors without flags pass every call
 * through, even one reaching a hook by a pointer taken while attached. */
static void forget_attached_state(void)
{
	request_table_forget_all();
	__atomic_add_fetch(&ctx_generation, 1, __ATOMIC_SEQ_CST);
	int end = (int)fd_state_end();
	for (int fd = 0; fd < end; fd++) {
		uint8_t cls = fd_flags(fd);
		if (cls & FD_CONN)
			conn_forget(fd);
		if (cls & FD_CLIENT)
			client_forget(fd);
		if (cls)
			atomic_store_explicit(&fd_state(fd)->flags, 0, memory_order_relaxed);
		if (epoll_map_tracks(fd))
			epoll_map_forget(fd);
	}
	/* Zeroes are the forgotten state of these: their pages go back. */
	request_table_release();
	log_order_release();
	epoll_map_release();
	fd_state_release();
	call_chain_release_rules();
	/* The tables of the section are empty now, each as its owner empties
	 * it; their pages go back whole, those at their ends, which each
	 * release zeroed and kept, too. */
	table_release(reqid_detach_zeroed_start,
		      (size_t)(reqid_detach_zeroed_end - reqid_detach_zeroed_start));
}

/* Whether the program was started with a copy of the shim (from another
 * path: this one would have found itself active): the program's global
 * scope, which a library loaded by dlopen is not in, has reqid_attach. */
static bool preloaded_copy(void)
{
	void *program = dlopen(NULL, RTLD_LAZY);
	bool found = program && dlsym(program, "reqid_attach") != NULL;
	if (program)
		LIBC(dlclose)(program);
	return found;
}

EXPORT int reqid_attach(const char *settings);
EXPORT int reqid_detach(const char *unused);
EXPORT int reqid_reconfigure(const char *settings);

static int attach_now(const char *settings)
{
	if (shim.active || preloaded_copy())
		return ATTACH_PRELOADED;
	/* Before any hook can run: an accept that began while attached and
	 * ends after detach must still find it (fork_copies_code). */
	__atomic_store_n(&shim.loaded_by_attach, true, __ATOMIC_SEQ_CST);
	/* A vfork child of the program's may be running: own_process asks. */
	atomic_store_explicit(&memory_shared, true, memory_order_seq_cst);
	/* What a hook left behind after the last detach (a thread that was
	 * inside an accept then opened its connection after): nothing is
	 * known of any descriptor yet. */
	forget_attached_state();
	size_t len = strlen(settings);
	if (!read_settings(settings, len))
		return ATTACH_TOO_LONG;
	unsigned refused = shim_activate(settings_lookup, true);
	if (refused == ACTIVATE_NO_LIBC)
		return ATTACH_NO_LIBC;
	if (refused)
		return ATTACH_INVALID + (int)refused;
	if (!shim.active)
		return ATTACH_OK; /* REQID_DISABLE: nothing to do */
	atomic_store_explicit(&process.threaded, other_threads(), memory_order_relaxed);
	struct instances instances = {0};
	int highest = scan_open_fds(&instances);
	/* From here a closed number is marked for adoption (hook_fd.c): one
	 * an accept reuses while the GOT is patched (the hooks passing
	 * through) is adopted at its first call after, not left unseen. */
	shim.attached = true;
	mark_adoptable(highest);
	/* Chains now; libunwind too if threads run (a single-threaded
	 * process loads it at a wait, once a walk needs it). */
	if (shim.config.event_stacks) {
		call_chain_wanted();
		call_chain_load(atomic_load_explicit(&process.threaded, memory_order_relaxed));
	}
	/* Hooks pass through while entries are patched one by one, and all
	 * start at once: none reads a request past the shim that another then
	 * answers through it. No line is named by its request line until the
	 * connections not yet adopted are counted. */
	request_naming_paused(true);
	__atomic_store_n(&shim.active, false, __ATOMIC_SEQ_CST);
	int patched = got_patch_all();
	if (patched < 0) {
		shim.attached = false;
		request_naming_paused(false);
		fd_state_release(); /* the adoption marks too */
		return ATTACH_NO_GOT;
	}
	signal_handlers_wrap();
	/* Threads already inside a wait, or running its events, are known
	 * now; a thread whose context started afresh before they were is
	 * made to start again (no context is made while the hooks pass
	 * through). */
	note_unseen_threads(instances.count > 0, highest);
	__atomic_add_fetch(&ctx_generation, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&shim.active, true, __ATOMIC_SEQ_CST);
	count_unadopted(highest);
	request_naming_paused(false);
	import_registrations(&instances, highest);
	size_t shown = settings_shown(settings, len);
	memcpy(reqid_attach_status.settings, settings, shown);
	reqid_attach_status.settings[shown] = '\0';
	reqid_attach_status.patched = patched;
	reqid_attach_status.attached = 1;
	return ATTACH_OK;
}

/* Set while reqid_attach or reqid_detach changes the process. A child
 * forked meanwhile would be a copy of the change half done (its GOT half
 * patched, naming paused, no status), which no later attach or detach
 * could finish: the thread making the change is not in the child. So a
 * fork and a change exclude each other: a fork counts itself in forking
 * and goes on only if no change is being made (else it steps back and
 * waits); a change sets changing, then waits for the forks counted to end
 * (change_begin). Patching every module's GOT, a change's longest step,
 * takes milliseconds. */
static _Atomic bool changing;
static _Atomic int forking;

/* How long a fork waits for a change, or a change for forks, at most, in
 * 1 ms steps. */
#define FORK_WAIT_MS 1000

static void wait_a_millisecond(void)
{
	syscall(SYS_nanosleep, &(struct timespec){0, 1000000}, NULL);
}

/* The atfork handlers, from the first attach on. Keep errno. */
static void attach_before_fork(void)
{
	int saved = errno;
	for (int waited = 0;; waited++) {
		atomic_fetch_add_explicit(&forking, 1, memory_order_seq_cst);
		if (!atomic_load_explicit(&changing, memory_order_seq_cst) || waited == FORK_WAIT_MS)
			break;
		atomic_fetch_sub_explicit(&forking, 1, memory_order_seq_cst);
		wait_a_millisecond();
	}
	errno = saved;
}

static void attach_after_fork_parent(void)
{
	atomic_fetch_sub_explicit(&forking, 1, memory_order_release);
}

/* The child is one thread, making no change, in no fork and in no hooked
 * wait, serving no events of a wait of its parent's (WATCH_UNSEEN). */
static void attach_after_fork_child(void)
{
	ctx_current();
	thread_ctx.watch &= (uint8_t)~(WATCH_UNSEEN | WATCH_UNSEEN_BATCH);
	atomic_store_explicit(&hooked_waits, 0, memory_order_relaxed);
	atomic_store_explicit(&forking, 0, memory_order_relaxed);
	atomic_store_explicit(&changing, false, memory_order_relaxed);
}

/* A change begins: no fork starts from here on, and those under way end
 * first. */
static void change_begin(void)
{
	atomic_store_explicit(&changing, true, memory_order_seq_cst);
	for (int waited = 0;
	     waited < FORK_WAIT_MS && atomic_load_explicit(&forking, memory_order_seq_cst) > 0;
	     waited++)
		wait_a_millisecond();
}

static void change_end(void)
{
	atomic_store_explicit(&changing, false, memory_order_release);
}

/* One change at a time. reqid_attach, reqid_detach and reqid_reconfigure
 * each run on a thread of the reqid-inject that called it; two `reqid
 * attach` (or detach) reaching a process together ran two at once, both
 * found it not attached, both patched it and both answered 0 (1 pair in
 * 30 on thread_pool). The holder's thread id; 0 when free. A holder that
 * is no thread of this process (a fork child's copy of its parent's
 * holder) holds nothing. */
static _Atomic pid_t change_holder;

/* How long a change waits for the one under way, at most, in 1 ms steps:
 * a detach waits up to OWED_WAIT_MS for owed bytes, then changes. */
#define CHANGE_WAIT_MS 3000

static bool change_take(void)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	/* The injector's thread is none of the program's: with its tid
	 * cached, no fetch of it (ctx_tid_fetch) takes it for one. */
	thread_ctx.tid = self;
	for (int waited = 0;; waited++) {
		pid_t holder = 0;
		if (atomic_compare_exchange_strong(&change_holder, &holder, self))
			return true;
		if (raw_thread_gone(holder) && atomic_compare_exchange_strong(&change_holder, &holder, self))
			return true;
		if (waited == CHANGE_WAIT_MS)
			return false;
		wait_a_millisecond();
	}
}

/* Inline: detach gives it back after the shim's code went back
 * (RESIDENT_LAST_CODE). */
static inline __attribute__((always_inline)) void change_give(void)
{
	atomic_store_explicit(&change_holder, 0, memory_order_release);
}

/* The pages attach makes resident are noted first, so that detach can give
 * them back (resident_return.h). */
static int attach(const char *settings)
{
	if (reqid_attach_status.attached)
		return ATTACH_ALREADY;
	/* The fork handlers are registered before the change begins, so that
	 * every fork from then on runs them. */
	static bool forks_counted;
	if (!forks_counted)
		forks_counted = fork_handlers_add(attach_before_fork, attach_after_fork_parent,
						  attach_after_fork_child);
	if (!fork_handler_registered())
		return ATTACH_NO_LIBC;
	/* The last detach's late drop has ended: its pages are not taken for
	 * the program's, nor its thread for one of the program's. */
	resident_late_drop_wait();
	change_begin();
	resident_snapshot(resident_before_value(settings));
	int r = attach_now(settings);
	if (!reqid_attach_status.attached)
		resident_forget(); /* refused, or REQID_DISABLE */
	change_end();
	return r;
}

/* Whether some response is being written with an added header (its
 * writer holds the connection's output), or has sent part of one and owes
 * the rest: its next write must still pass through the shim. */
static bool header_bytes_owed(void)
{
	int end = (int)fd_state_end();
	for (int fd = 0; fd < end; fd++) {
		if (!(fd_class(fd) & FD_CONN))
			continue;
		struct conn *c = conn_of(fd);
		if (c->owed_len > 0 || atomic_load_explicit(&c->out_busy, memory_order_acquire))
			return true;
	}
	return false;
}

/* Detach: every connection's stream is lost, so that no thread takes its
 * context again from a request the connection no longer carries (its next
 * one read past the shim through an entry already put back). */
static void lose_every_stream(void)
{
	int end = (int)fd_state_end();
	for (int fd = 0; fd < end; fd++)
		if (fd_class(fd) & FD_CONN)
			conn_lose(fd);
}

/* How long detach waits for owed header bytes, in 1 ms steps. */
#define OWED_WAIT_MS 1000

/* Detach: no new header is added; once no response owes one and no log
 * descriptor has bytes queued behind a full pipe (log_output_drain), the
 * shim stops taking new connections, naming pauses, every thread's context
 * starts afresh and every connection's stream is lost (a request read past
 * the shim through an entry already put back has its line written through
 * one not yet: it gets no id), the GOT is put back, held lines go out
 * (again a moment later, for a thread that was inside a hook meanwhile),
 * what the shim knew is forgotten, and the pages attach made resident are
 * given back, the shim's code later (resident_late_drop; this function
 * lies in RESIDENT_LAST_CODE's section, whose pages stay). */
static RESIDENT_LAST_CODE int detach(void)
{
	if (!reqid_attach_status.attached)
		return ATTACH_NOT_ATTACHED;
	__atomic_store_n(&shim.detaching, true, __ATOMIC_SEQ_CST);
	for (int waited = 0; header_bytes_owed() || !log_output_drain(); waited++) {
		if (waited == OWED_WAIT_MS) {
			__atomic_store_n(&shim.detaching, false, __ATOMIC_SEQ_CST);
			return ATTACH_BUSY;
		}
		wait_a_millisecond();
	}
	change_begin();
	__atomic_store_n(&shim.active, false, __ATOMIC_SEQ_CST);
	shim.attached = false;
	/* While the GOT is put back entry by entry, a thread may read a
	 * request past the shim and write its line through a hook still in
	 * place: that line has no request to take, neither the thread's last
	 * (its context starts afresh) nor one its request line names. */
	__atomic_add_fetch(&ctx_generation, 1, __ATOMIC_SEQ_CST);
	request_naming_paused(true); /* until request_table_release */
	lose_every_stream();
	got_restore_all();
	remove_fatal_signal_flush();
	signal_handlers_unwrap();
	log_flush_all_plain();
	nanosleep(&(struct timespec){0, 10000000}, NULL);
	log_flush_all_plain();
	log_release_free_slots();
	/* The status reads not attached from here: nothing touches its page
	 * once it has gone back. */
	forget_attached_state();
	resident_return();
	__atomic_store_n(&shim.detaching, false, __ATOMIC_SEQ_CST);
	change_end();
	return ATTACH_OK;
}

/* Detach, and once the injector's thread that calls it has exited and no
 * thread is inside a hooked wait, the shim's code and the libc code that
 * thread ran on its way out go back too (resident_late_drop). */
EXPORT RESIDENT_LAST_CODE int reqid_detach(const char *unused)
{
	(void)unused;
	if (!change_take())
		return ATTACH_CHANGING;
	int r = detach();
	if (r == ATTACH_OK)
		resident_late_drop();
	change_give();
	return r;
}

EXPORT int reqid_attach(const char *settings)
{
	if (!change_take())
		return ATTACH_CHANGING;
	int r = attach(settings);
	change_give();
	return r;
}

/* `reqid attach --reconfigure`: the new settings are checked first, and an
 * attached process refusing them keeps its old ones. */
EXPORT int reqid_reconfigure(const char *settings)
{
	static struct reqid_config scratch DETACH_ZEROED;
	size_t len = strlen(settings);
	if (!read_settings(settings, len))
		return ATTACH_TOO_LONG;
	unsigned refused = config_parse(&scratch, settings_lookup);
	if (refused)
		return ATTACH_INVALID + (int)refused;
	if (!change_take())
		return ATTACH_CHANGING;
	int r = reqid_attach_status.attached ? detach() : ATTACH_OK;
	if (r == ATTACH_OK)
		r = attach(settings);
	if (!reqid_attach_status.attached)
		resident_return_own_code(); /* detached, its attach refused */
	change_give();
	return r;
}
