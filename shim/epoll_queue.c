/*
 * epoll_queue.c - events fetched beyond the one an event loop's epoll_wait
 * returns (see epoll_queue.h).
 *
 * Per-thread state only, reached through the thread's own page; must never
 * hand out a level-triggered event whose descriptor changed since it was
 * fetched, nor one whose registration the program deleted or whose
 * descriptor it closed (unless this process still holds the file under
 * another number), never drop one the kernel reports once while its
 * registration stands (it goes back to the kernel), and never allocate or
 * block. The fdinfo parsers here also read attach's registrations.
 */
#include "epoll_queue.h"

#include "epoll_map.h"
#include "shim_init.h"

#include <stdatomic.h>
#include <string.h>

static struct lookup_memo *memo_of(struct epoll_queue *q, uint64_t data)
{
	_Static_assert(LOOKUP_MEMO == 64, "six bits of the hash");
	return &q->memo[(data * 0x9e3779b97f4a7c15ull) >> 58];
}

/* What q's memo answers for (epfd, data) in a map whose changes are
 * changes (struct lookup_memo): the fd and *events, or -1. */
static int remembered(struct epoll_queue *q, int epfd, uint64_t data, uint32_t changes,
		      uint32_t *events)
{
	const struct lookup_memo *m = memo_of(q, data);
	if (m->fd_plus_1 == 0 || m->data != data || m->epfd != epfd || m->changes != changes ||
	    atomic_load_explicit(&process.threaded, memory_order_relaxed))
		return -1;
	*events = m->events;
	return m->fd_plus_1 - 1;
}

static void remember(struct epoll_queue *q, int epfd, uint64_t data, uint32_t changes, int fd,
		     uint32_t events)
{
	struct lookup_memo *m = memo_of(q, data);
	m->data = data;
	m->epfd = epfd;
	m->events = events;
	m->changes = changes;
	m->fd_plus_1 = fd + 1;
}

LOOP_PATH bool epoll_queue_take(struct epoll_queue *q, int epfd, struct epoll_event *ev,
				epoll_rearm_fn *rearm, int *fd)
{
	*fd = -1;
	if (q->busy || q->count == 0 || q->epfd != epfd)
		return false;
	q->busy = true;
	bool found = false;
	if (epoll_map_stamp(epfd) != q->epfd_stamp)
		q->count = 0; /* the instance's number was closed or reused */
	while (q->count > 0 && !found) {
		unsigned i = q->next;
		q->next = (uint8_t)(q->next + 1);
		q->count--;
		if (q->kept[i].deleted)
			continue;
		if (epoll_map_stamp(q->kept[i].fd) == q->kept[i].stamp) {
			/* its lookup as it was kept still stands */
			if (epoll_map_changes() == q->map_changes)
				*fd = q->kept[i].fd;
			found = true;
		} else {
			found = q->kept[i].once && !rearm(epfd, q->kept[i].fd);
		}
		if (found)
			*ev = q->kept[i].ev;
	}
	q->busy = false;
	return found;
}

LOOP_PATH void epoll_queue_give_back(struct epoll_queue *q, epoll_rearm_fn *rearm)
{
	if (q->busy || q->count == 0 || !q->edge)
		return;
	q->busy = true;
	uint8_t left = 0;
	if (epoll_map_stamp(q->epfd) != q->epfd_stamp)
		q->count = 0; /* the instance's number was closed or reused */
	for (uint8_t k = 0; k < q->count; k++) {
		uint8_t i = (uint8_t)(q->next + k);
		/* A level-triggered event is reported again anyway. */
		if (q->kept[i].once && !q->kept[i].deleted && !rearm(q->epfd, q->kept[i].fd))
			q->kept[left++] = q->kept[i];
	}
	q->next = 0;
	q->count = left;
	q->busy = false;
}

LOOP_PATH int epoll_queue_fetch_max(int max)
{
	return max > QUEUE_MAX + 1 ? QUEUE_MAX + 1 : max;
}

LOOP_PATH int epoll_queue_keep(struct epoll_queue *q, int epfd, const struct epoll_event *ev, int n,
			       bool edge)
{
	if (n <= 1 || n > QUEUE_MAX + 1 || q->busy || q->count != 0)
		return n;
	q->busy = true;
	uint32_t map_changes = epoll_map_changes();
	/* The memo's answers first; the index slots of the others asked for
	 * then, fetched side by side, not each after the last. */
	int fds[QUEUE_MAX + 1];
	uint32_t masks[QUEUE_MAX + 1];
	uint64_t hashes[QUEUE_MAX + 1];
	for (int i = 1; i < n; i++) {
		fds[i] = remembered(q, epfd, ev[i].data.u64, map_changes, &masks[i]);
		if (fds[i] < 0)
			hashes[i] = epoll_map_prefetch(epfd, ev[i].data.u64);
	}
	int kept = 0;
	for (int i = 1; i < n; i++) {
		/* One lookup gives the fd and its registration's mask (0: not
		 * known), which only an edge queue needs. */
		int fd = fds[i];
		uint32_t events = masks[i];
		if (fd < 0) {
			fd = epoll_map_lookup_hashed(epfd, ev[i].data.u64, hashes[i], &events);
			if (fd >= 0)
				remember(q, epfd, ev[i].data.u64, map_changes, fd, events);
		}
		if (!edge)
			events = 0;
		if (fd < 0 || (edge && events == 0))
			break;
		bool once = events & (EPOLLET | EPOLLONESHOT);
		if (once && (events & EPOLLEXCLUSIVE))
			break; /* reported once, and EPOLL_CTL_MOD cannot give it back */
		q->kept[kept].ev = ev[i];
		q->kept[kept].fd = fd;
		q->kept[kept].stamp = epoll_map_stamp(fd);
		q->kept[kept].once = once;
		q->kept[kept].deleted = false;
		kept++;
	}
	if (kept == n - 1) {
		q->epfd = epfd;
		q->edge = edge;
		q->epfd_stamp = epoll_map_stamp(epfd);
		q->map_changes = map_changes;
		q->next = 0;
		q->count = (uint8_t)kept;
	}
	q->busy = false;
	return kept == n - 1 ? 1 : n;
}

void epoll_queue_deleted(struct epoll_queue *q, int epfd, int fd)
{
	if (q->busy || q->count == 0 || q->epfd != epfd)
		return;
	for (uint8_t k = 0; k < q->count; k++) {
		uint8_t i = (uint8_t)(q->next + k);
		if (q->kept[i].fd == fd)
			q->kept[i].deleted = true;
	}
}

/* The number after tag in text[i..end), in base (10 or 16), spaces and
 * tabs before it skipped: true if there is one; *at moves past it. At
 * most 16 digits, 10 in base 10. */
static bool field_after(const char *text, size_t *at, size_t end, const char *tag,
			unsigned base, uint64_t *value)
{
	size_t len = strlen(tag), i = *at;
	for (; i + len <= end && memcmp(text + i, tag, len) != 0; i++)
		;
	if (i + len > end)
		return false;
	for (i += len; i < end && (text[i] == ' ' || text[i] == '\t'); i++)
		;
	uint64_t v = 0;
	size_t digits = 0, most = base == 10 ? 10 : 16;
	for (; i < end && digits < most; i++, digits++) {
		char c = text[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : base == 16 && c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
		if (d == 16)
			break;
		v = v * base + d;
	}
	*at = i;
	*value = v;
	return digits > 0;
}

bool epoll_fdinfo_line(const char *line, size_t len, struct fdinfo_registration *r)
{
	static const char tag[] = "tfd:";
	size_t at = 0;
	uint64_t fd, events = 0, data = 0, ino = 0;
	if (len < sizeof(tag) - 1 || memcmp(line, tag, sizeof(tag) - 1) != 0 ||
	    !field_after(line, &at, len, tag, 10, &fd) ||
	    (at < len && line[at] != ' ' && line[at] != '\t'))
		return false;
	size_t rest = at;
	bool complete = field_after(line, &rest, len, " events:", 16, &events) &&
			field_after(line, &rest, len, " data:", 16, &data) &&
			field_after(line, &rest, len, " ino:", 16, &ino);
	r->fd = (int)fd;
	r->events = (uint32_t)events;
	r->data = data;
	r->ino = ino;
	r->complete = complete;
	return true;
}

bool epoll_fdinfo_lists(const char *text, size_t n, int fd, size_t *done, uint64_t *ino)
{
	size_t line = 0;
	for (size_t end = 0; end < n; end++) {
		if (text[end] != '\n')
			continue;
		struct fdinfo_registration r;
		bool listed = epoll_fdinfo_line(text + line, end - line, &r) && r.fd == fd;
		line = end + 1;
		if (listed) {
			*done = line;
			*ino = r.ino;
			return true;
		}
	}
	*done = line;
	return false;
}

uint64_t epoll_fdinfo_find(fdinfo_read_fn *read_more, void *source, char *buf, size_t size,
			   int fd)
{
	size_t have = 0, done = 0;
	uint64_t ino = 0;
	for (;;) {
		long got = read_more(source, buf + have, size - have);
		if (got <= 0)
			return 0;
		have += (size_t)got;
		if (epoll_fdinfo_lists(buf, have, fd, &done, &ino))
			return ino;
		if (done == 0 && have == size) /* a line longer than buf */
			return 0;
		memmove(buf, buf + done, have - done);
		have -= done;
	}
}

void epoll_queue_clear(struct epoll_queue *q)
{
	q->count = 0;
	q->busy = false;
}
