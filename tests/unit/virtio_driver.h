/*
 * A fake virtio driver for the virtio unit tests and fuzz targets: lays a split virtqueue out in
 * guest memory, fills descriptors and the avail ring, reads the used ring, and speaks
 * virtio-mmio through the transport's bus ops. It writes guest RAM the way a guest does (plain
 * stores through the mapping), so kiln's record of the pages it wrote stays kiln's own.
 * Header-only, without CMocka, so that libFuzzer targets can use it too.
 */
#ifndef KILN_TEST_VIRTIO_DRIVER_H
#define KILN_TEST_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "memory.h"
#include "mmio.h"
#include "queue.h"
#include "virtio.h"

/* The transport's registers (virtio 1.2, 4.2.2). */
#define VDRV_MAGIC 0x000
#define VDRV_VERSION 0x004
#define VDRV_DEVICE_ID 0x008
#define VDRV_VENDOR_ID 0x00c
#define VDRV_DEVICE_FEATURES 0x010
#define VDRV_DEVICE_FEATURES_SEL 0x014
#define VDRV_DRIVER_FEATURES 0x020
#define VDRV_DRIVER_FEATURES_SEL 0x024
#define VDRV_QUEUE_SEL 0x030
#define VDRV_QUEUE_NUM_MAX 0x034
#define VDRV_QUEUE_NUM 0x038
#define VDRV_QUEUE_READY 0x044
#define VDRV_QUEUE_NOTIFY 0x050
#define VDRV_INTERRUPT_STATUS 0x060
#define VDRV_INTERRUPT_ACK 0x064
#define VDRV_STATUS 0x070
#define VDRV_QUEUE_DESC_LOW 0x080
#define VDRV_QUEUE_DESC_HIGH 0x084
#define VDRV_QUEUE_DRIVER_LOW 0x090
#define VDRV_QUEUE_DRIVER_HIGH 0x094
#define VDRV_QUEUE_DEVICE_LOW 0x0a0
#define VDRV_QUEUE_DEVICE_HIGH 0x0a4
#define VDRV_SHM_LEN_LOW 0x0b0
#define VDRV_CONFIG_GENERATION 0x0fc

/* The driver's view of one queue. */
struct vdrv_queue {
	struct guest_memory *gm;
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t avail_idx; /* the next avail idx the driver will publish */
};

static inline uint8_t *vdrv_host(const struct vdrv_queue *d, uint64_t gpa, uint64_t len)
{
	return guest_memory_ptr(d->gm, gpa, len);
}

static inline void vdrv_store16(const struct vdrv_queue *d, uint64_t gpa, uint16_t v)
{
	uint8_t *p = vdrv_host(d, gpa, 2);

	if (p)
		memcpy(p, &v, 2);
}

static inline uint16_t vdrv_load16(const struct vdrv_queue *d, uint64_t gpa)
{
	const uint8_t *p = vdrv_host(d, gpa, 2);
	uint16_t v = 0;

	if (p)
		memcpy(&v, p, 2);
	return v;
}

/* The bytes a queue of size entries takes from base: descriptors, avail ring, used ring. */
static inline uint64_t vdrv_queue_bytes(uint16_t size)
{
	uint64_t avail_end = 16ull * size + 6 + 2ull * size;

	return ((avail_end + 3) & ~3ull) + 6 + 8ull * size;
}

/* Lays a queue of size entries out from base (16-byte aligned) and zeroes its rings. */
static inline void vdrv_queue_init(struct vdrv_queue *d, struct guest_memory *gm, uint16_t size,
				   uint64_t base)
{
	uint8_t *p;

	*d = (struct vdrv_queue){ .gm = gm, .size = size, .desc = base };
	d->avail = base + 16ull * size;
	d->used = (d->avail + 6 + 2ull * size + 3) & ~3ull;
	p = vdrv_host(d, base, vdrv_queue_bytes(size));
	if (p)
		memset(p, 0, vdrv_queue_bytes(size));
}

/* Gives the device's struct virtq the driver's layout (what the MMIO registers would). */
static inline void vdrv_queue_apply(const struct vdrv_queue *d, struct virtq *q)
{
	q->size = d->size;
	q->desc = d->desc;
	q->avail = d->avail;
	q->used = d->used;
}

static inline void vdrv_desc(const struct vdrv_queue *d, uint16_t i, uint64_t addr, uint32_t len,
			     uint16_t flags, uint16_t next)
{
	uint8_t *p = vdrv_host(d, d->desc + 16ull * i, 16);

	if (!p)
		return;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static inline void vdrv_set_avail_idx(struct vdrv_queue *d, uint16_t idx)
{
	d->avail_idx = idx;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vdrv_store16(d, d->avail + 2, idx);
}

/* Puts head in the next avail ring entry and publishes it. */
static inline void vdrv_avail_push(struct vdrv_queue *d, uint16_t head)
{
	vdrv_store16(d, d->avail + 4 + 2ull * (d->avail_idx % d->size), head);
	vdrv_set_avail_idx(d, (uint16_t)(d->avail_idx + 1));
}

static inline void vdrv_set_avail_flags(const struct vdrv_queue *d, uint16_t flags)
{
	vdrv_store16(d, d->avail, flags);
}

/* EVENT_IDX: the used index at which the driver wants its next interrupt. */
static inline void vdrv_set_used_event(const struct vdrv_queue *d, uint16_t v)
{
	vdrv_store16(d, d->avail + 4 + 2ull * d->size, v);
}

/* EVENT_IDX: the avail index at which the device wants its next notification. */
static inline uint16_t vdrv_avail_event(const struct vdrv_queue *d)
{
	return vdrv_load16(d, d->used + 4 + 8ull * d->size);
}

static inline uint16_t vdrv_used_idx(const struct vdrv_queue *d)
{
	return vdrv_load16(d, d->used + 2);
}

static inline uint16_t vdrv_used_flags(const struct vdrv_queue *d)
{
	return vdrv_load16(d, d->used);
}

/* The used ring entry for used index n: the chain's head and the length the device wrote. */
static inline void vdrv_used_elem(const struct vdrv_queue *d, uint16_t n, uint32_t *id,
				  uint32_t *len)
{
	const uint8_t *p = vdrv_host(d, d->used + 4 + 8ull * (n % d->size), 8);

	*id = *len = 0xffffffffu;
	if (!p)
		return;
	memcpy(id, p, 4);
	memcpy(len, p + 4, 4);
}

/* MMIO accesses through the transport's bus ops, as a vCPU's exit handler makes them. */
static inline uint32_t vdrv_read(struct virtio_mmio *t, uint64_t off)
{
	uint8_t b[4];
	uint32_t v;

	virtio_mmio_bus_ops.read(t, off, b, 4);
	memcpy(&v, b, 4);
	return v;
}

static inline void vdrv_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	virtio_mmio_bus_ops.write(t, off, b, 4);
}

static inline void vdrv_write_features(struct virtio_mmio *t, uint64_t features)
{
	vdrv_write(t, VDRV_DRIVER_FEATURES_SEL, 0);
	vdrv_write(t, VDRV_DRIVER_FEATURES, (uint32_t)features);
	vdrv_write(t, VDRV_DRIVER_FEATURES_SEL, 1);
	vdrv_write(t, VDRV_DRIVER_FEATURES, (uint32_t)(features >> 32));
}

/* Hands queue qi's layout to the device and enables it. */
static inline void vdrv_setup_queue(struct virtio_mmio *t, unsigned qi, const struct vdrv_queue *d)
{
	vdrv_write(t, VDRV_QUEUE_SEL, qi);
	vdrv_write(t, VDRV_QUEUE_NUM, d->size);
	vdrv_write(t, VDRV_QUEUE_DESC_LOW, (uint32_t)d->desc);
	vdrv_write(t, VDRV_QUEUE_DESC_HIGH, (uint32_t)(d->desc >> 32));
	vdrv_write(t, VDRV_QUEUE_DRIVER_LOW, (uint32_t)d->avail);
	vdrv_write(t, VDRV_QUEUE_DRIVER_HIGH, (uint32_t)(d->avail >> 32));
	vdrv_write(t, VDRV_QUEUE_DEVICE_LOW, (uint32_t)d->used);
	vdrv_write(t, VDRV_QUEUE_DEVICE_HIGH, (uint32_t)(d->used >> 32));
	vdrv_write(t, VDRV_QUEUE_READY, 1);
}

/*
 * The driver's initialisation (virtio 1.2, 3.1.1): reset, ACKNOWLEDGE, DRIVER, features,
 * FEATURES_OK (read back), the queues, DRIVER_OK. Returns the status read back at the end:
 * without DRIVER_OK (and without FEATURES_OK) when the device refused the features.
 */
static inline uint32_t vdrv_start(struct virtio_mmio *t, uint64_t features, struct vdrv_queue *qs,
				 unsigned nr)
{
	uint32_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	vdrv_write(t, VDRV_STATUS, 0);
	vdrv_write(t, VDRV_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vdrv_write(t, VDRV_STATUS, s);
	vdrv_write_features(t, features);
	vdrv_write(t, VDRV_STATUS, s | VIRTIO_STATUS_FEATURES_OK);
	if (!(vdrv_read(t, VDRV_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return vdrv_read(t, VDRV_STATUS);
	s |= VIRTIO_STATUS_FEATURES_OK;
	for (unsigned i = 0; i < nr; i++)
		vdrv_setup_queue(t, i, &qs[i]);
	vdrv_write(t, VDRV_STATUS, s | VIRTIO_STATUS_DRIVER_OK);
	return vdrv_read(t, VDRV_STATUS);
}

/* Kicks queue qi through the QueueNotify register (no ioeventfd when vm_fd is -1). */
static inline void vdrv_notify(struct virtio_mmio *t, unsigned qi)
{
	vdrv_write(t, VDRV_QUEUE_NOTIFY, qi);
}

#endif
