/* Split virtqueues: checked descriptor-chain walking, the used ring, EVENT_IDX suppression. */
#include "queue.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "virtio.h"

/* Offsets inside the avail ring (flags, idx, ring[size], used_event) and used ring. */
#define AVAIL_IDX 2u
#define AVAIL_RING 4u
#define USED_IDX 2u
#define USED_RING 4u
#define USED_ELEM 8u

void virtq_reset(struct virtq *q)
{
	uint16_t max = q->max_size;

	*q = (struct virtq){ .max_size = max };
}

static uint64_t avail_bytes(uint16_t size)
{
	return AVAIL_RING + 2ull * size + 2;
}

static uint64_t used_bytes(uint16_t size)
{
	return USED_RING + (uint64_t)USED_ELEM * size + 2;
}

int virtq_check(const struct virtq *q, const struct guest_memory *gm)
{
	if (q->size == 0 || q->size > q->max_size || (q->size & (q->size - 1)))
		return -EINVAL;
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return -EINVAL;
	if (!guest_memory_in_ram(gm, q->desc, (uint64_t)VIRTQ_DESC_SIZE * q->size) ||
	    !guest_memory_in_ram(gm, q->avail, avail_bytes(q->size)) ||
	    !guest_memory_in_ram(gm, q->used, used_bytes(q->size)))
		return -EINVAL;
	return 0;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static int read_desc(const struct guest_memory *gm, const struct virtq *q, uint16_t i,
		     struct desc *d)
{
	uint8_t raw[VIRTQ_DESC_SIZE];

	if (guest_memory_read(gm, q->desc + (uint64_t)i * VIRTQ_DESC_SIZE, raw, sizeof(raw)))
		return -EINVAL;
	memcpy(&d->addr, raw, 8);
	memcpy(&d->len, raw + 8, 4);
	memcpy(&d->flags, raw + 12, 2);
	memcpy(&d->next, raw + 14, 2);
	return 0;
}

static int walk_chain(struct virtq *q, struct guest_memory *gm, uint16_t head,
		      struct virtq_chain *c)
{
	uint16_t i = head;
	struct desc d;

	c->head = head;
	c->nr = c->nr_out = 0;
	c->out_len = c->in_len = 0;
	for (;;) {
		struct virtq_buf *b;

		/* A chain never has more buffers than the queue has descriptors: longer is a loop. */
		if (i >= q->size || c->nr >= q->size || read_desc(gm, q, i, &d) < 0)
			return -EINVAL;
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		/* Only the bounds: a poisoned buffer breaks no rule, its request fails instead. */
		if (d.len && !guest_memory_in_ram(gm, d.addr, d.len))
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_WRITE) && c->nr > c->nr_out)
			return -EINVAL; /* readable after writable */
		b = &c->bufs[c->nr++];
		b->gpa = d.addr;
		b->len = d.len;
		b->write = d.flags & VIRTQ_DESC_F_WRITE;
		if (b->write) {
			c->in_len += d.len;
		} else {
			c->nr_out++;
			c->out_len += d.len;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct guest_memory *gm, struct virtq_chain *c)
{
	uint16_t avail_idx, head;
	uint64_t used_event = q->used + USED_RING + (uint64_t)USED_ELEM * q->size;

	if (!q->ready)
		return 0;
	if (guest_memory_load16(gm, q->avail + AVAIL_IDX, &avail_idx) < 0)
		return -EINVAL;
	if (avail_idx == q->next_avail && q->event_idx) {
		/* Ask for a notification at the next buffer, then look once more: the driver may
		 * have added one before it could see the request. */
		if (guest_memory_store16(gm, used_event, q->next_avail) < 0)
			return -EINVAL;
		atomic_thread_fence(memory_order_seq_cst);
		if (guest_memory_load16(gm, q->avail + AVAIL_IDX, &avail_idx) < 0)
			return -EINVAL;
	}
	if (avail_idx == q->next_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->next_avail) > q->size)
		return -EINVAL;
	if (guest_memory_load16(gm, q->avail + AVAIL_RING + 2ull * (q->next_avail % q->size),
				&head) < 0 ||
	    walk_chain(q, gm, head, c) < 0)
		return -EINVAL;
	q->next_avail++;
	if (q->event_idx && guest_memory_store16(gm, used_event, q->next_avail) < 0)
		return -EINVAL;
	return 1;
}

int virtq_push(struct virtq *q, struct guest_memory *gm, uint16_t head, uint32_t len)
{
	uint8_t raw[USED_ELEM];
	uint32_t id = head;
	uint64_t elem;

	/* Not ready, the size may be anything, 0 included (the driver disabled the queue). */
	if (!q->ready)
		return -EFAULT;
	elem = q->used + USED_RING + (uint64_t)USED_ELEM * (q->next_used % q->size);
	memcpy(raw, &id, 4);
	memcpy(raw + 4, &len, 4);
	if (guest_memory_write(gm, elem, raw, sizeof(raw)) < 0)
		return -EFAULT;
	q->next_used++;
	return guest_memory_store16(gm, q->used + USED_IDX, q->next_used) < 0 ? -EFAULT : 0;
}

bool virtq_should_signal(struct virtq *q, const struct guest_memory *gm)
{
	uint16_t old = q->signalled_used, now = q->next_used, event;
	bool valid = q->signalled_valid;

	atomic_thread_fence(memory_order_seq_cst);
	/* A ring field that cannot be read: signal, an interrupt too many does no harm. */
	if (!q->event_idx) {
		uint16_t flags;

		return guest_memory_load16(gm, q->avail, &flags) < 0 ||
		       !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = now;
	q->signalled_valid = true;
	if (!valid || guest_memory_load16(gm, q->avail + AVAIL_RING + 2ull * q->size, &event) < 0)
		return true;
	/* virtio 1.2, 2.7.10: signal when used_event lies in [old, now). */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

/* Walks [offset, offset+len) of one part of the chain, calling fn on each piece. */
static size_t chain_walk(const struct virtq_chain *c, bool write, uint64_t offset, uint64_t len,
			 int (*fn)(void *ctx, uint64_t gpa, uint64_t n, uint64_t done), void *ctx)
{
	unsigned first = write ? c->nr_out : 0, end = write ? c->nr : c->nr_out;
	uint64_t done = 0;

	for (unsigned i = first; i < end && done < len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		uint64_t n;

		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		n = b->len - offset;
		if (n > len - done)
			n = len - done;
		if (fn(ctx, b->gpa + offset, n, done) < 0)
			break;
		done += n;
		offset = 0;
	}
	return done;
}

struct copy_ctx {
	struct guest_memory *gm;
	uint8_t *buf;
};

static int copy_out(void *ctx, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct copy_ctx *x = ctx;

	return guest_memory_read(x->gm, gpa, x->buf + done, n);
}

static int copy_in(void *ctx, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct copy_ctx *x = ctx;

	return guest_memory_write(x->gm, gpa, x->buf + done, n);
}

size_t virtq_chain_read(const struct guest_memory *gm, const struct virtq_chain *c,
			uint64_t offset, void *dst, size_t len)
{
	struct copy_ctx x = { .gm = (struct guest_memory *)gm, .buf = dst };

	return chain_walk(c, false, offset, len, copy_out, &x);
}

size_t virtq_chain_write(struct guest_memory *gm, const struct virtq_chain *c, uint64_t offset,
			 const void *src, size_t len)
{
	struct copy_ctx x = { .gm = gm, .buf = (uint8_t *)src };

	return chain_walk(c, true, offset, len, copy_in, &x);
}

struct iov_ctx {
	struct guest_memory *gm;
	bool write;
	struct iovec *iov;
	int nr, max;
	bool full;
	int err; /* a piece refused: -EFAULT or -EHWPOISON */
};

static int add_iov(void *ctx, uint64_t gpa, uint64_t n, uint64_t done)
{
	struct iov_ctx *x = ctx;
	void *p;

	(void)done;
	if (x->nr == x->max) {
		x->full = true;
		return -ENOSPC;
	}
	p = x->write ? guest_memory_ptr_mut(x->gm, gpa, n) : guest_memory_ptr(x->gm, gpa, n);
	if (!p) {
		x->err = guest_memory_in_ram(x->gm, gpa, n) ? -EHWPOISON : -EFAULT;
		return x->err;
	}
	x->iov[x->nr++] = (struct iovec){ .iov_base = p, .iov_len = n };
	return 0;
}

int virtq_chain_iov(struct guest_memory *gm, const struct virtq_chain *c, bool write,
		    uint64_t offset, uint64_t len, struct iovec *iov, int max)
{
	struct iov_ctx x = { .gm = gm, .write = write, .iov = iov, .max = max };

	chain_walk(c, write, offset, len, add_iov, &x);
	if (x.err)
		return x.err;
	return x.full ? -ENOSPC : x.nr;
}
