/*
 * epoll_queue.c - events fetched beyond the one an event loop's epoll_wait
 * returns (see epoll_queue.h).
 *
 * Per-thread state only, reached through the thread's own page; must never
 * hand out an event whose descriptor changed since it was fetched, and
 * never allocate or block.
 */
#include "epoll_queue.h"

#include "epoll_map.h"

bool epoll_queue_take(struct epoll_queue *q, int epfd, struct epoll_event *ev)
{
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
		if (epoll_map_stamp(q->kept[i].fd) == q->kept[i].stamp) {
			*ev = q->kept[i].ev;
			found = true;
		}
	}
	q->busy = false;
	return found;
}

int epoll_queue_fetch_max(int max)
{
	return max > QUEUE_MAX + 1 ? QUEUE_MAX + 1 : max;
}

int epoll_queue_keep(struct epoll_queue *q, int epfd, const struct epoll_event *ev, int n)
{
	if (n <= 1 || n > QUEUE_MAX + 1 || q->busy || q->count != 0)
		return n;
	q->busy = true;
	int kept = 0;
	for (int i = 1; i < n; i++) {
		int fd = epoll_map_lookup(epfd, ev[i].data.u64);
		if (fd < 0)
			break;
		q->kept[kept].ev = ev[i];
		q->kept[kept].fd = fd;
		q->kept[kept].stamp = epoll_map_stamp(fd);
		kept++;
	}
	if (kept == n - 1) {
		q->epfd = epfd;
		q->epfd_stamp = epoll_map_stamp(epfd);
		q->next = 0;
		q->count = (uint8_t)kept;
	}
	q->busy = false;
	return kept == n - 1 ? 1 : n;
}

void epoll_queue_clear(struct epoll_queue *q)
{
	q->count = 0;
	q->busy = false;
}
