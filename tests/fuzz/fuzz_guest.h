/*
 * The guest side of the virtio device fuzz targets (fuzz_virtio_net, fuzz_virtio_vsock): guest
 * RAM under guard pages, the driver's queues, and the checks that hold around every turn the
 * device gets ("an action"): the device writes guest RAM only inside the device-writable
 * buffers of chains the guest made available and the used rings, and a used ring entry names a
 * chain of the queue and never claims more bytes than that chain's writable buffers hold.
 *
 * Use: fg_begin at the start of an input, fg_layout for each queue the driver sets up, then
 * fg_before / device action / fg_after around everything that lets the device run. fg_before
 * walks the chains that are available and not taken yet (what the device may pop next) and
 * adds their writable buffers to what the device may write; what a chain held when the device
 * took it was recorded by an earlier fg_before, so the permission only grows within an input.
 * When an offered writable buffer overlaps a ring, the device may legitimately rewrite
 * descriptors or ring entries under the harness's feet: the input is then "tangled" and both
 * checks stay off for the rest of it. When two chains not yet used share a descriptor (a driver
 * that reused one in flight), one chain's data may land on the other's: the input is "shared",
 * and the targets stop judging what the device wrote into buffers (the checks above go on).
 */
#ifndef KILN_FUZZ_GUEST_H
#define KILN_FUZZ_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include "../unit/virtio_driver.h"
#include "event_loop.h"
#include "fuzz_fail.h"
#include "memory.h"
#include "queue.h"
#include "virtio.h"

#define FG_MAX_QUEUES 3
#define FG_PAGE 4096ull
#define FG_CANARY 0xa5

/* What the harness knows of one descriptor head of a queue. */
struct fg_head {
	uint16_t pos;      /* the avail position it was last seen pending at */
	uint16_t offers;   /* pending or taken, not used yet; 1 when the record below is its chain */
	uint64_t wlen;     /* writable bytes of the chain when last seen pending */
	uint64_t cap;      /* the most writable bytes it ever had in this input */
	uint64_t first_gpa; /* its first writable buffer */
	uint32_t first_len;
};

struct fg_queue {
	struct vdrv_queue d;
	bool live;         /* laid out by the harness in this input */
	uint16_t seen;     /* used entries the harness has checked */
	uint16_t next_desc; /* where the chain builders put their next descriptor */
	struct fg_head heads[VIRTQ_MAX_SIZE];
	uint16_t desc_head[VIRTQ_MAX_SIZE]; /* 1 + the head whose chain last held the descriptor */
};

struct fuzz_guest {
	struct guest_memory gm;
	uint64_t ram;
	uint8_t *shadow;    /* RAM before the device's current action */
	uint8_t *may_write; /* 1: inside a writable buffer offered in this input */
	bool tangled;
	bool shared;        /* two outstanding chains shared a descriptor in this input */
	bool lost;          /* used entries went by unchecked (the ring wrapped in one action) */
	unsigned nr_queues;
	struct fg_queue q[FG_MAX_QUEUES];
};

/* Called for each new used entry of queue qi (after the generic checks, only while the input
 * is not tangled); h is what the harness knows of the chain. */
typedef void (*fg_used_fn)(void *ctx, unsigned qi, uint32_t id, uint32_t len,
			   const struct fg_head *h);

/* Guest RAM of ram bytes with a PROT_NONE page on each side; fails the target on error. */
static inline void fg_init(struct fuzz_guest *g, uint64_t ram, unsigned nr_queues)
{
	g->ram = ram;
	g->nr_queues = nr_queues;
	if (guest_memory_create(&g->gm, ram, false) < 0)
		fail("guest memory");
	mmap(g->gm.host - FG_PAGE, FG_PAGE, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	mmap(g->gm.host + ram, FG_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	     -1, 0);
	g->shadow = malloc(ram);
	g->may_write = malloc(ram);
	if (!g->shadow || !g->may_write)
		fail("out of memory");
}

/* A new input: RAM all canary, no queue laid out, nothing offered. */
static inline void fg_begin(struct fuzz_guest *g)
{
	memset(g->gm.host, FG_CANARY, g->ram);
	memset(g->may_write, 0, g->ram);
	g->tangled = g->shared = g->lost = false;
	for (unsigned i = 0; i < g->nr_queues; i++)
		g->q[i].live = false;
}

/* The driver lays queue qi out afresh (zeroed rings) with size entries at base. */
static inline void fg_layout(struct fuzz_guest *g, unsigned qi, uint16_t size, uint64_t base)
{
	struct fg_queue *q = &g->q[qi];

	vdrv_queue_init(&q->d, &g->gm, size, base);
	q->live = true;
	q->seen = 0;
	q->next_desc = 0;
	memset(q->heads, 0, sizeof(q->heads));
	memset(q->desc_head, 0, sizeof(q->desc_head));
}

static inline bool fg_overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The bytes of queue qi's used ring, avail_event included. */
static inline uint64_t fg_used_bytes(const struct fg_queue *q)
{
	return 6 + 8ull * q->d.size;
}

/* Whether [gpa, gpa+len) touches any live queue's rings. */
static inline bool fg_hits_rings(const struct fuzz_guest *g, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < g->nr_queues; i++) {
		const struct fg_queue *q = &g->q[i];

		if (q->live && (fg_overlaps(gpa, len, q->d.desc, 16ull * q->d.size) ||
				fg_overlaps(gpa, len, q->d.avail, 6 + 2ull * q->d.size) ||
				fg_overlaps(gpa, len, q->d.used, fg_used_bytes(q))))
			return true;
	}
	return false;
}

/* The guest stores n bytes at gpa, except into the used rings: the harness reads those as the
 * device left them. */
static inline void fg_guest_write(struct fuzz_guest *g, uint64_t gpa, const uint8_t *src,
				  uint64_t n)
{
	for (uint64_t i = 0; i < n && gpa + i < g->ram; i++) {
		bool used = false;

		for (unsigned k = 0; k < g->nr_queues; k++)
			used |= g->q[k].live &&
				fg_overlaps(gpa + i, 1, g->q[k].d.used, fg_used_bytes(&g->q[k]));
		if (!used)
			g->gm.host[gpa + i] = src[i];
	}
}

/* Walks the chain at head as the device would (NEXT links, at most size descriptors) and
 * records its writable buffers. */
static inline void fg_walk(struct fuzz_guest *g, struct fg_queue *q, uint16_t head, uint16_t pos)
{
	struct fg_head *h = &q->heads[head];
	uint64_t wlen = 0, first_gpa = 0;
	uint32_t first_len = 0;
	uint16_t i = head;

	for (unsigned n = 0; n < q->d.size && i < q->d.size; n++) {
		const uint8_t *p = vdrv_host(&q->d, q->d.desc + 16ull * i, 16);
		uint64_t a;
		uint32_t len;
		uint16_t flags, next;

		if (!p)
			break;
		if (q->desc_head[i] && q->desc_head[i] - 1 != head &&
		    q->heads[q->desc_head[i] - 1].offers)
			g->shared = true;
		q->desc_head[i] = (uint16_t)(head + 1);
		memcpy(&a, p, 8);
		memcpy(&len, p + 8, 4);
		memcpy(&flags, p + 12, 2);
		memcpy(&next, p + 14, 2);
		if ((flags & VIRTQ_DESC_F_WRITE) && len) {
			if (!wlen) {
				first_gpa = a;
				first_len = len;
			}
			wlen += len;
			if (a < g->ram) {
				uint64_t end = a + len < a || a + len > g->ram ? g->ram : a + len;

				memset(g->may_write + a, 1, end - a);
				if (fg_hits_rings(g, a, end - a))
					g->tangled = true;
			}
		}
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
		i = next;
	}
	if (h->offers && h->pos != pos)
		h->offers++; /* a second offer of the head: the record is no longer its chain's */
	else if (!h->offers)
		h->offers = 1;
	h->pos = pos;
	h->wlen = wlen;
	h->cap = wlen > h->cap ? wlen : h->cap;
	h->first_gpa = first_gpa;
	h->first_len = first_len;
}

/* Before the device's action: record what the guest has offered, and RAM as it is. vq: the
 * device's queues (their next_avail says what it has taken). */
static inline void fg_before(struct fuzz_guest *g, const struct virtq *vq)
{
	for (unsigned qi = 0; qi < g->nr_queues; qi++) {
		struct fg_queue *q = &g->q[qi];
		uint16_t pos, idx, n;

		if (!q->live || !q->d.size)
			continue;
		pos = vq[qi].next_avail;
		idx = vdrv_load16(&q->d, q->d.avail + 2);
		n = (uint16_t)(idx - pos);
		if (n > q->d.size)
			n = q->d.size;
		for (uint16_t k = 0; k < n; k++, pos++) {
			uint16_t head = vdrv_load16(&q->d, q->d.avail + 4 + 2ull * (pos % q->d.size));

			if (head < q->d.size)
				fg_walk(g, q, head, pos);
		}
	}
	memcpy(g->shadow, g->gm.host, g->ram);
}

/* Whether the device may have written byte gpa: an offered buffer or a live used ring. */
static inline bool fg_writable(const struct fuzz_guest *g, uint64_t gpa)
{
	if (g->may_write[gpa])
		return true;
	for (unsigned i = 0; i < g->nr_queues; i++)
		if (g->q[i].live && fg_overlaps(gpa, 1, g->q[i].d.used, fg_used_bytes(&g->q[i])))
			return true;
	return false;
}

/* After the device's action: RAM changed only where it may, and the new used entries. */
static inline void fg_after(struct fuzz_guest *g, fg_used_fn fn, void *ctx)
{
	if (!g->tangled) {
		for (uint64_t off = 0; off < g->ram; off += 256) {
			if (!memcmp(g->gm.host + off, g->shadow + off, 256))
				continue;
			for (uint64_t i = off; i < off + 256; i++)
				if (g->gm.host[i] != g->shadow[i] && !fg_writable(g, i))
					fail("the device wrote guest RAM at 0x%llx (0x%02x -> 0x%02x), "
					     "outside every writable buffer the guest offered",
					     (unsigned long long)i, g->shadow[i], g->gm.host[i]);
		}
	}
	for (unsigned qi = 0; qi < g->nr_queues; qi++) {
		struct fg_queue *q = &g->q[qi];
		uint16_t idx, n;

		if (!q->live || !q->d.size)
			continue;
		idx = vdrv_used_idx(&q->d);
		n = (uint16_t)(idx - q->seen);
		if (n > q->d.size) {
			g->lost = true;
			q->seen = (uint16_t)(idx - q->d.size);
		}
		for (; q->seen != idx; q->seen++) {
			uint32_t id, len;
			struct fg_head *h;

			vdrv_used_elem(&q->d, q->seen, &id, &len);
			if (g->tangled)
				continue;
			if (id >= q->d.size)
				fail("queue %u: used entry %u names descriptor %u of %u", qi, q->seen, id,
				     q->d.size);
			h = &q->heads[id];
			if (len > h->cap)
				fail("queue %u: used length %u for head %u, whose chain has %llu "
				     "writable bytes", qi, len, id, (unsigned long long)h->cap);
			fn(ctx, qi, id, len, h);
			if (h->offers)
				h->offers--;
		}
	}
}

/* Chains nr descriptors from the queue's next free ones and makes the chain available. */
static inline void fg_post_chain(struct fg_queue *q, const uint64_t *gpa, const uint32_t *len,
					 const uint16_t *flags, unsigned nr)
{
	uint16_t sz = q->d.size, head = q->next_desc;

	if (!sz)
		return;
	for (unsigned i = 0; i < nr; i++) {
		uint16_t di = (uint16_t)((head + i) % sz);

		vdrv_desc(&q->d, di, gpa[i], len[i],
			  (uint16_t)(flags[i] | (i + 1 < nr ? VIRTQ_DESC_F_NEXT : 0)),
			  (uint16_t)((di + 1) % sz));
	}
	q->next_desc = (uint16_t)((head + nr) % sz);
	vdrv_avail_push(&q->d, head);
}

/*
 * What the event loop does until it goes quiet; fails the target if it never does (a handler
 * that keeps itself busy).
 */
static inline void fg_pump(struct event_loop *loop)
{
	for (int round = 0; round < 256; round++) {
		struct epoll_event evs[16];
		int n = epoll_wait(loop->epfd, evs, 16, 0);

		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct event_handler *h = &loop->handlers[evs[i].data.u32];

			if (h->fn)
				h->fn(h->opaque, h->fd, evs[i].events);
		}
	}
	fail("the event loop never went quiet");
}

#endif
