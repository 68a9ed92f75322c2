/* kiln.test=hostile-virtq: the agent drives every virtio-mmio device kiln gave it, from user
 * space, round after round: a reset, a feature negotiation, queues set up in the scratch huge
 * page, then descriptor chains shaped for the device (block requests, vsock packets, frames)
 * with a share of them broken (loops, indices out of range, indirect tables, buffers past RAM,
 * across its end or over the top of the address space, misaligned rings, notifications for
 * queues that do not exist), and another reset. Every buffer kiln could write to lies in the
 * scratch page or outside RAM, so whatever kiln accepts, the guest survives it; a canary page
 * that only zero-length buffers point at must stay untouched. Afterwards each device must
 * still work: random bytes from rng, the read-only drive's magic, a write read back. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "agent_hostile.h"

#define Q_AREA (64u << 10)  /* per queue: desc +0, avail +16K, used +32K, indirect +48K */
#define CANARY ((1u << 20) - PAGE) /* a page only zero-length buffers point at */
#define DATA (1u << 20)     /* buffers: the scratch page's second MiB */
#define CANARY_BYTE 0xa5
#define RO_MAGIC "kiln-ro-drive-ok"
#define FINAL_SECTOR 1
#define F_NEXT 1u
#define F_WRITE 2u
#define F_INDIRECT 4u

struct vq {
	uint16_t size;
	uint8_t *desc, *avail, *used;
	uint64_t desc_gpa;
	uint16_t published;
};

struct round {
	struct hostile *h;
	struct vdev *d;
	struct vq q[MAX_VQ];
	unsigned wild;      /* per mille: how often a descriptor or a step breaks the rules */
	uint64_t data_off;  /* bump allocation in the data MiB */
};

struct stats {
	uint64_t rounds, chains, used, needs_reset, refused;
};

static uint8_t *host_of(struct hostile *h, uint64_t gpa)
{
	return h->scratch + (gpa - h->scratch_gpa);
}

static bool chance(struct round *w, unsigned per_mille)
{
	return hostile_rand(w->h) % 1000 < per_mille;
}

/* A buffer of len bytes in the data MiB (len at most 64 KiB). */
static uint64_t alloc(struct round *w, uint32_t len)
{
	uint64_t gpa;

	if (w->data_off + len > HUGE - DATA)
		w->data_off = 0;
	gpa = w->h->scratch_gpa + DATA + w->data_off;
	w->data_off += (len + 15) & ~15u;
	return gpa;
}

/* A buffer that breaks a rule, but one kiln may only refuse or write harmlessly. */
static void wild_buf(struct round *w, uint64_t *addr, uint32_t *len)
{
	struct hostile *h = w->h;
	uint64_t r = hostile_rand(h), off, end;

	switch (r % 8) {
	case 0: /* past RAM */
		*addr = h->ram_end + (r >> 8) % (1u << 20);
		*len = 1 + (uint32_t)((r >> 32) % 8192);
		break;
	case 1: /* across the end of RAM */
		*len = 0x1000 + (uint32_t)((r >> 8) % 0x1000);
		*addr = h->ram_end - 1 - (r >> 24) % (*len - 1);
		break;
	case 2: /* over the top of the address space */
		*addr = ~0ull - (r >> 8) % 0x1000;
		*len = 0x2000;
		break;
	case 3: /* kiln's own MMIO, the LAPIC */
		*addr = (r >> 8) & 1 ? h->dev[0].base : 0xfee00000ull;
		*len = 16;
		break;
	case 4: /* zero bytes: kiln must not write even there */
		*addr = h->scratch_gpa + CANARY + (r >> 8) % PAGE;
		*len = 0;
		break;
	case 5: /* in the scratch page, but 4 GiB long */
		*addr = h->scratch_gpa + DATA + (r >> 8) % (HUGE - DATA);
		*len = 0xffffffffu;
		break;
	default: /* anywhere in the scratch page but the canary: the rings themselves too */
		off = (r >> 8) % (HUGE - PAGE);
		off += off >= CANARY ? PAGE : 0;
		end = off < CANARY ? CANARY : HUGE;
		*addr = h->scratch_gpa + off;
		*len = 1 + (uint32_t)((r >> 32) % (end - off < 8192 ? end - off : 8192));
		break;
	}
}

static void put_desc(struct vq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *p = q->desc + 16u * i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void fill_random(struct hostile *h, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = hostile_rand(h);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* An indirect table of random descriptors at the queue's indirect area; its length. */
static uint32_t indirect_table(struct round *w, struct vq *q)
{
	uint8_t *t = q->desc + 48u * 1024;
	unsigned n = 1 + (unsigned)(hostile_rand(w->h) % 16);

	for (unsigned i = 0; i < n; i++) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags = (uint16_t)hostile_rand(w->h) & 7, next = (uint16_t)(i + 1);

		wild_buf(w, &addr, &len);
		memcpy(t + 16 * i, &addr, 8);
		memcpy(t + 16 * i + 8, &len, 4);
		memcpy(t + 16 * i + 12, &flags, 2);
		memcpy(t + 16 * i + 14, &next, 2);
	}
	return 16 * n;
}

/* Descriptor i: a buffer of len bytes (its contents already in place), next at i + 1 unless
 * last; now and then broken. */
static void chain_desc(struct round *w, struct vq *q, uint16_t head, uint16_t i, uint64_t addr,
		       uint32_t len, bool writable, bool last)
{
	uint16_t flags = (writable ? F_WRITE : 0) | (last ? 0 : F_NEXT), next = (uint16_t)(i + 1);

	if (chance(w, w->wild)) {
		uint64_t r = hostile_rand(w->h);

		switch (r % 7) {
		case 0:
			flags ^= 1u << ((r >> 8) % 3);
			break;
		case 1:
			next = (uint16_t)(r >> 8);
			break;
		case 2:
			next = i; /* a loop of one */
			break;
		case 3:
			next = head, flags |= F_NEXT; /* back to the start */
			break;
		case 4:
			flags |= F_INDIRECT;
			addr = q->desc_gpa + 48u * 1024;
			len = indirect_table(w, q);
			break;
		default:
			wild_buf(w, &addr, &len);
			break;
		}
	}
	put_desc(q, i, addr, len, flags, next);
}

/* Buffers of random sizes holding random bytes, readable or writable. */
static void plain_bufs(struct round *w, struct vq *q, uint16_t head, uint16_t *i, unsigned n,
		       uint32_t max, bool writable, bool last)
{
	for (unsigned k = 0; k < n; k++) {
		uint32_t len = 1 + (uint32_t)(hostile_rand(w->h) % max);
		uint64_t gpa = alloc(w, len);

		if (!writable)
			fill_random(w->h, host_of(w->h, gpa), len);
		chain_desc(w, q, head, *i, gpa, len, writable, last && k + 1 == n);
		(*i)++;
	}
}

/* A header of len bytes written by fill, as the chain's first readable buffer. */
static uint8_t *header(struct round *w, struct vq *q, uint16_t head, uint16_t *i, uint32_t len,
		       bool last)
{
	uint64_t gpa = alloc(w, len);

	chain_desc(w, q, head, *i, gpa, len, false, last);
	(*i)++;
	return host_of(w->h, gpa);
}

static void blk_chain(struct round *w, struct vq *q, uint16_t head, uint16_t *i)
{
	static const uint32_t types[] = { 0, 0, 0, 0, 1, 1, 1, 4, 8, 11, 13 };
	struct hostile *h = w->h;
	uint64_t cap = *(volatile uint64_t *)(w->d->regs + R_CONFIG), r = hostile_rand(h), sector;
	uint32_t type = r % 8 ? types[(r >> 3) % (sizeof(types) / sizeof(types[0]))]
			      : (uint32_t)hostile_value(h);
	unsigned nd = (unsigned)((r >> 12) % 4);
	uint8_t *hdr = header(w, q, head, i, 16, false);

	switch ((r >> 16) % 4) {
	case 0:
		sector = hostile_value(h);
		break;
	case 1:
		sector = cap - (r >> 20) % 4;
		break;
	default:
		sector = cap ? (r >> 20) % cap : 0;
		break;
	}
	memset(hdr, 0, 16);
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	for (unsigned k = 0; k < nd; k++) {
		uint32_t len = (hostile_rand(h) % 10) ? 512u * (1 + (uint32_t)(hostile_rand(h) % 8))
						      : 1 + (uint32_t)(hostile_rand(h) % 5000);
		uint64_t gpa = alloc(w, len);

		if (type != 0)
			fill_random(h, host_of(h, gpa), len);
		chain_desc(w, q, head, *i, gpa, len, type == 0, false);
		(*i)++;
	}
	plain_bufs(w, q, head, i, 1, 1, true, true); /* the status byte */
}

static void vsock_tx_chain(struct round *w, struct vq *q, uint16_t head, uint16_t *i)
{
	static const uint32_t ports[] = { 1024, 5100, 52, 0xffffffffu };
	struct hostile *h = w->h;
	uint64_t r = hostile_rand(h), src = r % 8 ? 3 : hostile_value(h), dst = r % 16 ? 2 : 1;
	uint32_t sport = (uint32_t)(hostile_rand(h) % 64) + 1000,
		 dport = r % 4 ? ports[(r >> 4) % 4] : (uint32_t)hostile_rand(h),
		 plen = (r >> 8) % 3 ? 0 : 1 + (uint32_t)((r >> 12) % 2048),
		 hlen = (r >> 24) % 8 ? plen : (uint32_t)hostile_value(h),
		 flags = (uint32_t)hostile_value(h), buf_alloc = (uint32_t)hostile_value(h),
		 fwd = (uint32_t)hostile_value(h);
	uint16_t type = (r >> 28) % 8 ? 1 : (uint16_t)hostile_value(h),
		 op = (r >> 32) % 8 ? (uint16_t)(1 + (r >> 36) % 7) : (uint16_t)hostile_value(h);
	uint8_t *p = header(w, q, head, i, 44, plen == 0);

	memcpy(p, &src, 8);
	memcpy(p + 8, &dst, 8);
	memcpy(p + 16, &sport, 4);
	memcpy(p + 20, &dport, 4);
	memcpy(p + 24, &hlen, 4);
	memcpy(p + 28, &type, 2);
	memcpy(p + 30, &op, 2);
	memcpy(p + 32, &flags, 4);
	memcpy(p + 36, &buf_alloc, 4);
	memcpy(p + 40, &fwd, 4);
	if (plen)
		plain_bufs(w, q, head, i, 1, plen, false, true);
}

/* One chain shaped for the device and queue; false when the queue has no room left. */
static bool build_chain(struct round *w, unsigned qi, uint16_t *next_free)
{
	struct vq *q = &w->q[qi];
	uint16_t head = *next_free, i = head;
	unsigned id = w->d->id;

	if ((unsigned)head + (id == ID_BLK ? 5 : 3) > q->size)
		return false;
	if (id == ID_BLK)
		blk_chain(w, q, head, &i);
	else if (id == ID_VSOCK && qi == 1)
		vsock_tx_chain(w, q, head, &i);
	else if (id == ID_NET && qi == 1) /* a virtio-net header and a frame */
		plain_bufs(w, q, head, &i, 1 + (unsigned)(hostile_rand(w->h) % 2), 1500, false, true);
	else /* rng, receive and event queues: room for the device to write */
		plain_bufs(w, q, head, &i, 1 + (unsigned)(hostile_rand(w->h) % 3),
			   id == ID_NET ? 2048 : 4096, true, true);
	*next_free = i;
	q->avail[4 + 2 * (q->published % q->size)] = (uint8_t)head;
	q->avail[5 + 2 * (q->published % q->size)] = (uint8_t)(head >> 8);
	if (chance(w, w->wild)) {
		uint16_t bad = (uint16_t)hostile_rand(w->h);

		memcpy(q->avail + 4 + 2 * (q->published % q->size), &bad, 2);
	}
	q->published++;
	return true;
}

static uint16_t used_idx(const struct vq *q)
{
	return *(volatile uint16_t *)(q->used + 2);
}

/* Queue qi of the device: size, rings in its area of the scratch page (or, when wild, rings
 * kiln must refuse), ready. */
static void setup_queue(struct round *w, unsigned qi)
{
	struct hostile *h = w->h;
	struct vq *q = &w->q[qi];
	uint64_t base = h->scratch_gpa + (uint64_t)qi * Q_AREA, r = hostile_rand(h);
	uint64_t desc = base, avail = base + 16384, used = base + 32768;
	uint32_t size = 1u << (2 + r % 7);

	while (size > w->d->qmax[qi])
		size >>= 1;
	if (chance(w, w->wild)) {
		switch ((r >> 8) % 4) {
		case 0:
			size = (uint32_t)hostile_value(h);
			break;
		case 1:
			desc += 8; /* misaligned */
			break;
		case 2:
			used = h->ram_end - 64; /* runs past RAM */
			break;
		default:
			avail = ~0ull - 15;
			break;
		}
	}
	*q = (struct vq){ .size = (uint16_t)size, .desc = host_of(h, base),
			  .avail = host_of(h, base + 16384), .used = host_of(h, base + 32768),
			  .desc_gpa = base };
	/* Whatever descriptor kiln may reach, through a broken chain or a random head, is one
	 * whose buffer it may write; the rest of the area is noise. */
	for (unsigned i = 0; i < 16384 / 16; i++) {
		uint64_t addr;
		uint32_t len;

		wild_buf(w, &addr, &len);
		put_desc(q, (uint16_t)i, addr, len, (uint16_t)hostile_rand(h) & 7,
			 (uint16_t)hostile_rand(h));
	}
	fill_random(h, q->avail, Q_AREA - 16384);
	memset(q->avail, 0, 4);
	memset(q->used, 0, 4);
	if (chance(w, w->wild))
		*(volatile uint16_t *)(q->avail + 2) = (uint16_t)hostile_rand(h);
	vreg_set(w->d, R_QUEUE_SEL, qi);
	vreg_set(w->d, R_QUEUE_NUM, size);
	vreg_set(w->d, R_DESC_LO, (uint32_t)desc);
	vreg_set(w->d, R_DESC_HI, (uint32_t)(desc >> 32));
	vreg_set(w->d, R_DRIVER_LO, (uint32_t)avail);
	vreg_set(w->d, R_DRIVER_HI, (uint32_t)(avail >> 32));
	vreg_set(w->d, R_DEVICE_LO, (uint32_t)used);
	vreg_set(w->d, R_DEVICE_HI, (uint32_t)(used >> 32));
	vreg_set(w->d, R_QUEUE_READY, 1);
	if (!(q->size && !(q->size & (q->size - 1)) && q->size <= w->d->qmax[qi]))
		q->size = 0; /* refused: nothing to publish */
}

/* Negotiates features (now and then ones never offered); false when kiln refused them. */
static bool negotiate(struct round *w, struct stats *st, bool sane)
{
	struct vdev *d = w->d;
	uint64_t f = (d->features & hostile_rand(w->h)) | 1ull << 32;

	vdev_reset(d);
	if (vreg(d, R_STATUS) != 0)
		return false;
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER);
	if (sane)
		f = 1ull << 32;
	else if (chance(w, w->wild))
		f = hostile_value(w->h);
	vreg_set(d, R_DRV_FEATURES_SEL, 0);
	vreg_set(d, R_DRV_FEATURES, (uint32_t)f);
	vreg_set(d, R_DRV_FEATURES_SEL, 1);
	vreg_set(d, R_DRV_FEATURES, (uint32_t)(f >> 32));
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(vreg(d, R_STATUS) & S_FEATURES_OK)) {
		st->refused++;
		return false;
	}
	return true;
}

/* Waits up to ms for queue qi to use want buffers, or for the device to ask for a reset;
 * sleeping, so that kiln's threads get the (maybe only) CPU. */
static bool wait_used(struct round *w, unsigned qi, uint16_t want, unsigned ms)
{
	struct timespec nap = { 0, 200 * 1000 };

	for (unsigned k = 0; k < ms * 5; k++) {
		if (used_idx(&w->q[qi]) == want)
			return true;
		if (k % 8 == 7 && (vreg(w->d, R_STATUS) & S_NEEDS_RESET))
			return false;
		nanosleep(&nap, NULL);
	}
	return used_idx(&w->q[qi]) == want;
}

static void one_round(struct hostile *h, struct stats *st)
{
	struct round w = { .h = h, .d = &h->dev[st->rounds % h->nr_dev] };
	uint64_t r = hostile_rand(h);
	uint16_t next_free[MAX_VQ] = { 0 };
	unsigned batches = 1 + (unsigned)(r % 3);

	w.wild = r % 3 == 0 ? 0 : (r >> 2) % 3 == 0 ? 200 : 15;
	w.data_off = (r >> 8) % (HUGE - DATA);
	st->rounds++;
	if (!negotiate(&w, st, false)) {
		vdev_reset(w.d);
		return;
	}
	for (unsigned qi = 0; qi < w.d->nq; qi++)
		setup_queue(&w, qi);
	if (!chance(&w, w.wild * 2))
		vreg_set(w.d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	for (unsigned b = 0; b < batches; b++) {
		unsigned qi = (unsigned)(hostile_rand(h) % w.d->nq), n = 1 + hostile_rand(h) % 6;
		struct vq *q = &w.q[qi];
		uint16_t before = q->published;

		if (!q->size)
			continue;
		for (unsigned k = 0; k < n && build_chain(&w, qi, &next_free[qi]); k++)
			st->chains++;
		*(volatile uint16_t *)(q->avail + 2) = chance(&w, w.wild) ?
			(uint16_t)(q->published + q->size + 1) : q->published;
		if (chance(&w, w.wild))
			vreg_set(w.d, R_QUEUE_SEL, (uint32_t)hostile_value(h));
		if (chance(&w, w.wild))
			vreg_set(w.d, R_QUEUE_READY, 0);
		vreg_set(w.d, R_QUEUE_NOTIFY, chance(&w, w.wild) ? (uint32_t)hostile_value(h) : qi);
		/* Receive and event queues fill only when the host has something to say. */
		if (q->published != before && (w.d->id == ID_RNG || w.d->id == ID_BLK || qi == 1))
			wait_used(&w, qi, q->published, 20);
	}
	for (unsigned qi = 0; qi < w.d->nq; qi++)
		st->used += w.q[qi].size ? used_idx(&w.q[qi]) : 0;
	if (vreg(w.d, R_STATUS) & S_NEEDS_RESET)
		st->needs_reset++;
	vreg_set(w.d, R_INT_ACK, vreg(w.d, R_INT_STATUS));
	vdev_reset(w.d);
}

/* A by-the-book request on queue 0 of a freshly set up device: n buffers (len bytes each;
 * the readable ones as given). Returns the used length, or -1 when none came back. */
static long request(struct hostile *h, struct vdev *d, const uint32_t *len, const bool *wr,
		    unsigned n, uint8_t **buf)
{
	struct stats st = { 0 };
	struct round w = { .h = h, .d = d };
	uint32_t used_len;

	if (!negotiate(&w, &st, true))
		return -1;
	w.q[0] = (struct vq){ .size = 16, .desc = host_of(h, h->scratch_gpa),
			      .avail = host_of(h, h->scratch_gpa + 16384),
			      .used = host_of(h, h->scratch_gpa + 32768), .desc_gpa = h->scratch_gpa };
	memset(w.q[0].desc, 0, Q_AREA);
	for (unsigned i = 0; i < n; i++)
		put_desc(&w.q[0], (uint16_t)i, h->scratch_gpa + DATA + i * 8192u, len[i],
			 (uint16_t)((wr[i] ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0)), (uint16_t)(i + 1));
	for (unsigned i = 0; i < n; i++)
		buf[i] = host_of(h, h->scratch_gpa + DATA + i * 8192u);
	w.q[0].avail[4] = 0;
	*(volatile uint16_t *)(w.q[0].avail + 2) = 1;
	vreg_set(d, R_QUEUE_SEL, 0);
	vreg_set(d, R_QUEUE_NUM, 16);
	vreg_set(d, R_DESC_LO, (uint32_t)h->scratch_gpa);
	vreg_set(d, R_DESC_HI, (uint32_t)(h->scratch_gpa >> 32));
	vreg_set(d, R_DRIVER_LO, (uint32_t)(h->scratch_gpa + 16384));
	vreg_set(d, R_DRIVER_HI, (uint32_t)((h->scratch_gpa + 16384) >> 32));
	vreg_set(d, R_DEVICE_LO, (uint32_t)(h->scratch_gpa + 32768));
	vreg_set(d, R_DEVICE_HI, (uint32_t)((h->scratch_gpa + 32768) >> 32));
	vreg_set(d, R_QUEUE_READY, 1);
	vreg_set(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	vreg_set(d, R_QUEUE_NOTIFY, 0);
	if (!wait_used(&w, 0, 1, 3000))
		return -1;
	memcpy(&used_len, w.q[0].used + 8, 4);
	return used_len;
}

/* After the rounds: every device still works for a driver that follows the rules. */
static void final_checks(struct hostile *h, struct result *r, unsigned long seed)
{
	for (unsigned i = 0; i < h->nr_dev; i++) {
		struct vdev *d = &h->dev[i];
		uint8_t *b[3];
		long got;

		if (d->id == ID_RNG) {
			uint32_t len[] = { 256 };
			bool wr[] = { true }, zero = true;

			memset(h->scratch + DATA, 0, 256);
			got = request(h, d, len, wr, 1, b);
			for (unsigned k = 0; got == 256 && k < 256; k++)
				zero &= b[0][k] == 0;
			if (got != 256 || zero)
				result_fail(r, "rng after the rounds: used length %ld%s", got,
					    zero ? ", all zeros" : "");
		} else if (d->id == ID_BLK) {
			bool ro = d->features & (1u << 5);
			uint32_t len[] = { 16, 512, 1 };
			bool rd[] = { false, true, true }, wrt[] = { false, false, true };
			uint64_t sector = ro ? 0 : FINAL_SECTOR;
			char pat[64];

			snprintf(pat, sizeof(pat), "kiln-hostile-virtq-final seed=%lu", seed);
			if (!ro) {
				memset(h->scratch + DATA, 0, 3 * 8192);
				memcpy(h->scratch + DATA, &(uint32_t){ 1 }, 4);
				memcpy(h->scratch + DATA + 8, &sector, 8);
				memcpy(h->scratch + DATA + 8192, pat, strlen(pat) + 1);
				h->scratch[DATA + 2 * 8192] = 0xff;
				got = request(h, d, len, wrt, 3, b);
				if (got < 0 || b[2][0] != 0)
					result_fail(r, "blk at 0x%" PRIx64 ": the final write: used %ld, "
						    "status %u", d->base, got, b[2][0]);
			}
			memset(h->scratch + DATA, 0, 3 * 8192);
			memcpy(h->scratch + DATA + 8, &sector, 8);
			h->scratch[DATA + 2 * 8192] = 0xff;
			got = request(h, d, len, rd, 3, b);
			if (got != 513 || b[2][0] != 0 ||
			    memcmp(b[1], ro ? RO_MAGIC : pat, ro ? strlen(RO_MAGIC) : strlen(pat) + 1))
				result_fail(r, "blk at 0x%" PRIx64 ": reading sector %" PRIu64 " back: "
					    "used %ld, status %u, data '%.20s'", d->base, sector, got,
					    b[2][0], (char *)b[1]);
		}
		vdev_reset(d);
		if (vreg(d, R_STATUS) != 0 || vreg(d, R_MAGIC) != 0x74726976u)
			result_fail(r, "device at 0x%" PRIx64 " does not reset", d->base);
	}
	for (unsigned k = 0; k < PAGE; k++)
		if (h->scratch[CANARY + k] != CANARY_BYTE) {
			result_fail(r, "kiln wrote 0x%02x at canary offset %u (only zero-length "
				    "buffers point there)", h->scratch[CANARY + k], k);
			break;
		}
}

void test_hostile_virtq(const struct agent *a, struct result *r)
{
	struct hostile h;
	struct stats st = { 0 };
	unsigned long seed = 0;
	uint64_t t0 = hostile_now_ms();

	if (hostile_setup(a, &h, r) < 0)
		return;
	param_ulong(a, "seed", &seed);
	memset(h.scratch + CANARY, CANARY_BYTE, PAGE);
	while (hostile_now_ms() < h.deadline_ms)
		for (unsigned k = 0; k < 16; k++)
			one_round(&h, &st);
	printf("kiln-hostile-virtq: rounds=%" PRIu64 " chains=%" PRIu64 " used=%" PRIu64
	       " needs_reset=%" PRIu64 " features_refused=%" PRIu64 " in %" PRIu64 " ms\n",
	       st.rounds, st.chains, st.used, st.needs_reset, st.refused, hostile_now_ms() - t0);
	final_checks(&h, r, seed);
	result_note(r, "rounds=%" PRIu64 " chains=%" PRIu64 " used=%" PRIu64 " needs_reset=%" PRIu64,
		    st.rounds, st.chains, st.used, st.needs_reset);
}
