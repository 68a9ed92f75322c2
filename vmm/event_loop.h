/* The event loop: one epoll set, one handler per file descriptor, run on one thread. */
#ifndef KILN_EVENT_LOOP_H
#define KILN_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#define EVENT_LOOP_MAX 64

/* Called on the loop's thread with the epoll events that fired for fd. */
typedef void (*event_fn)(void *opaque, int fd, uint32_t events);

struct event_handler {
	int fd;
	event_fn fn;
	void *opaque;
};

struct event_loop {
	int epfd;
	bool stop;
	unsigned nr;
	struct event_handler handlers[EVENT_LOOP_MAX];
};

int event_loop_init(struct event_loop *el) __attribute__((warn_unused_result));

void event_loop_destroy(struct event_loop *el);

/* Watches fd for events (EPOLLIN, ...). -ENOSPC when full, -errno from epoll. */
int event_loop_add(struct event_loop *el, int fd, uint32_t events, event_fn fn, void *opaque)
	__attribute__((warn_unused_result));

/* Changes the events fd is watched for. -ENOENT when it is not watched, -errno from epoll. */
int event_loop_mod(struct event_loop *el, int fd, uint32_t events)
	__attribute__((warn_unused_result));

/* Stops watching fd; a no-op if it is not watched. */
void event_loop_del(struct event_loop *el, int fd);

/* Dispatches events until a handler sets el->stop. Returns 0, or -errno if epoll fails. */
int event_loop_run(struct event_loop *el);

#endif
