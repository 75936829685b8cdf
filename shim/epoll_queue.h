/*
 * epoll_queue.h - events an event loop's epoll_wait fetched but has not
 * handed out yet.
 *
 * The event-loop rule (event_batch.h) needs each epoll_wait to return one
 * event. Asking the kernel for one at a time costs a system call per event;
 * where that is safe (batch_fetch_max: a level-triggered instance one thread
 * waits on) the hook fetches as many as the caller asked for (up to
 * QUEUE_MAX + 1), returns the first and keeps the rest here, per thread, and
 * the thread's next epoll_wait on the same instance returns the next kept
 * event without entering the kernel: the program sees the batch it would
 * have seen, one event per call.
 *
 * A kept event must never be handed out once the kernel would no longer
 * report it as it was: an event is dropped when its descriptor was closed,
 * replaced, or registered, modified or deleted on any epoll instance since
 * it was fetched (epoll_map_stamp changed; after a modification the kernel
 * reports the descriptor again if it is still ready), and the whole queue
 * when its instance's number was closed. Events are kept only when every
 * one of them maps to its descriptor (epoll_map_lookup): otherwise the
 * whole batch goes to the caller at once, as without the shim. A kept
 * event handed out names that descriptor while the map has not changed
 * since (epoll_map_changes), so that the wait need not look it up again. A fork
 * child starts with no kept events (they are its parent's). Never
 * allocates or blocks; a signal handler that waits while the thread is
 * inside the queue bypasses it.
 *
 * An edge-triggered or one-shot event is reported once: a batch from an
 * instance with such registrations (an edge queue) is kept only when each
 * event's registration is known (its events mask too: epoll_map_lookup_events)
 * and each such event can be given back to the kernel (not EPOLLEXCLUSIVE);
 * its level-triggered events are kept as in any queue. An event reported
 * once is never dropped:
 * where a level-triggered one would be dropped (its descriptor changed),
 * and whenever the thread is about to wait elsewhere (epoll_queue_give_back),
 * it goes back to the kernel, by rearm (an EPOLL_CTL_MOD of the registration
 * as it is now, after which the kernel reports it again if the descriptor is
 * still ready). One whose registration the program deleted, or whose
 * descriptor it closed, is dropped: it is back at its wait and may have
 * freed what the data word points to (no wait after a delete reports it;
 * after a close the kernel may, while another process, a forked helper,
 * holds the file). Only one of a file this process still holds under
 * another number (moved with dup2 or F_DUPFD and closed; the kernel keeps
 * the registration under the old number) or whose EPOLL_CTL_MOD the kernel
 * refused is handed out as it came, as the program would have had it in
 * its batch.
 */
#ifndef REQID_EPOLL_QUEUE_H
#define REQID_EPOLL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#define QUEUE_MAX 63
#define LOOKUP_MEMO 64

/* The thread's last answers of epoll_map_lookup_events, by data word: an
 * event loop's keep-alive connections bring the same words batch after
 * batch. One stands while epoll_map_changes has not moved since it was
 * looked up, and only in a process that has one thread (no change of the
 * map can be half done while this thread reads it: a signal handler's
 * runs whole). */
struct lookup_memo {
	uint64_t data;
	int epfd;
	int fd_plus_1; /* 0: nothing remembered */
	uint32_t events;
	uint32_t changes;
};

struct epoll_queue {
	bool busy;
	bool edge; /* kept from an instance with edge-triggered or one-shot
		      registrations */
	int epfd;
	uint32_t epfd_stamp;
	uint32_t map_changes; /* epoll_map_changes before its events' lookups */
	uint8_t next, count;
	struct {
		struct epoll_event ev;
		int fd;
		uint32_t stamp;
		bool once; /* its registration is edge-triggered or one-shot */
		bool deleted; /* the program deleted its registration since */
	} kept[QUEUE_MAX];
	struct lookup_memo memo[LOOKUP_MEMO];
};

/* Settles a kept event of fd on epfd that was reported once: true if it
 * went back to the kernel (an EPOLL_CTL_MOD of its registration as
 * epoll_map_registration has it) or is to be dropped (fd was closed and
 * the kernel holds no registration under its number on epfd, or one of a
 * file this process no longer holds); false if it must be handed out. */
typedef bool epoll_rearm_fn(int epfd, int fd);

/* Moves the next kept event of epfd still valid to *ev: true if there was
 * one (the wait is answered without the kernel). An edge queue's event
 * whose descriptor changed goes to rearm, or to *ev if rearm cannot take
 * it. *fd is the descriptor the event is about, as epoll_map_lookup would
 * answer now, when the map has not changed since it was looked up as the
 * event was kept; else -1 (ask the map). */
bool epoll_queue_take(struct epoll_queue *q, int epfd, struct epoll_event *ev,
		      epoll_rearm_fn *rearm, int *fd) __attribute__((visibility("hidden")));

/* The thread is about to wait on something else than the instance its edge
 * queue holds events of: every kept event goes to rearm; those it cannot
 * take stay for the thread's next wait on the instance. A level-triggered
 * queue stays as it is. */
void epoll_queue_give_back(struct epoll_queue *q, epoll_rearm_fn *rearm)
	__attribute__((visibility("hidden")));

/* How many events to ask the kernel for when the caller asked for max. */
int epoll_queue_fetch_max(int max) __attribute__((visibility("hidden")));

/* The kernel returned n events in ev (edge: from an instance with
 * edge-triggered or one-shot registrations): keeps all but the first and
 * returns 1, or returns n when they cannot all be kept. */
int epoll_queue_keep(struct epoll_queue *q, int epfd, const struct epoll_event *ev, int n,
		     bool edge) __attribute__((visibility("hidden")));

/* The program deleted fd's registration on epfd (EPOLL_CTL_DEL): its kept
 * events go, without asking the kernel (no later wait reports them). */
void epoll_queue_deleted(struct epoll_queue *q, int epfd, int fd)
	__attribute__((visibility("hidden")));

/* One registration as an epoll instance's /proc/self/fdinfo lists it:
 * "tfd: FD events: HEX data: HEX pos:N ino:HEX sdev:HEX". */
struct fdinfo_registration {
	int fd;
	uint32_t events;
	uint64_t data, ino;
	bool complete; /* events, data and ino were all there (0 if not) */
};

/* Whether line (len bytes, without its newline) lists a registration (it
 * begins "tfd:" and a whole number), read into *r. */
bool epoll_fdinfo_line(const char *line, size_t len, struct fdinfo_registration *r)
	__attribute__((visibility("hidden")));

/* Whether the complete lines at the start of text (n bytes of an epoll
 * instance's /proc/self/fdinfo file, from a line's start) list a
 * registration under number fd ("tfd: FD ... ino:HEX ..."): whether the
 * kernel still holds one, and *ino the inode of its file. *done: the bytes
 * of those complete lines, all read when the answer is false. */
bool epoll_fdinfo_lists(const char *text, size_t n, int fd, size_t *done, uint64_t *ino)
	__attribute__((visibility("hidden")));

/* Fills up to room bytes at buf with the next part of an fdinfo file: how
 * many, 0 at its end, negative on an error. */
typedef long fdinfo_read_fn(void *source, char *buf, size_t room);

/* epoll_fdinfo_lists over the whole file read_more reads from source, in
 * parts, through buf (size bytes; a line is carried to the next part): the
 * inode of the file registered under number fd, 0 if none is listed, the
 * file cannot be read, or a line does not fit in buf. */
uint64_t epoll_fdinfo_find(fdinfo_read_fn *read_more, void *source, char *buf, size_t size,
			   int fd) __attribute__((visibility("hidden")));

/* Drops every kept event (a fork child's copy). */
void epoll_queue_clear(struct epoll_queue *q) __attribute__((visibility("hidden")));

#endif
