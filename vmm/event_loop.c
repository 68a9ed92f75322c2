/* epoll-based event loop with a fixed table of handlers. */
#include "event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"

int event_loop_init(struct event_loop *el)
{
	memset(el, 0, sizeof(*el));
	el->epfd = epoll_create1(EPOLL_CLOEXEC);
	return el->epfd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *el)
{
	if (el->epfd >= 0)
		close(el->epfd);
	el->epfd = -1;
	el->nr = 0;
}

int event_loop_add(struct event_loop *el, int fd, uint32_t events, event_fn fn, void *opaque)
{
	struct epoll_event ev = { .events = events };
	unsigned slot;

	for (slot = 0; slot < EVENT_LOOP_MAX; slot++)
		if (!el->handlers[slot].fn)
			break;
	if (slot == EVENT_LOOP_MAX)
		return -ENOSPC;
	ev.data.u32 = slot;
	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	el->handlers[slot] = (struct event_handler){ fd, fn, opaque };
	el->nr++;
	return 0;
}

void event_loop_del(struct event_loop *el, int fd)
{
	for (unsigned slot = 0; slot < EVENT_LOOP_MAX; slot++) {
		if (el->handlers[slot].fn && el->handlers[slot].fd == fd) {
			epoll_ctl(el->epfd, EPOLL_CTL_DEL, fd, NULL);
			el->handlers[slot] = (struct event_handler){ .fd = -1 };
			el->nr--;
			return;
		}
	}
}

int event_loop_mod(struct event_loop *el, int fd, uint32_t events)
{
	for (unsigned slot = 0; slot < EVENT_LOOP_MAX; slot++) {
		if (el->handlers[slot].fn && el->handlers[slot].fd == fd) {
			struct epoll_event ev = { .events = events, .data.u32 = slot };

			return epoll_ctl(el->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
		}
	}
	return -ENOENT;
}

int event_loop_run(struct event_loop *el)
{
	struct epoll_event evs[16];

	while (!el->stop) {
		int n = epoll_wait(el->epfd, evs, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !el->stop; i++) {
			struct event_handler *h = &el->handlers[evs[i].data.u32];

			if (h->fn)
				h->fn(h->opaque, h->fd, evs[i].events);
		}
	}
	return 0;
}
