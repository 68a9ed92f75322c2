/* What agent_hostile.c and agent_hostile_virtq.c share: the virtio-mmio windows kiln gave the
 * guest, mapped through /dev/mem, a scratch huge page and a seeded random source. */
#ifndef KILN_AGENT_HOSTILE_H
#define KILN_AGENT_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"

#define PAGE 4096ul
#define HUGE (2ul << 20)
#define MAX_VDEV 8
#define MAX_VQ 8

/* virtio-mmio registers (virtio 1.2, 4.2.2) and status bits. */
enum {
	R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_DEV_FEATURES = 0x010,
	R_DEV_FEATURES_SEL = 0x014, R_DRV_FEATURES = 0x020, R_DRV_FEATURES_SEL = 0x024,
	R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050, R_INT_STATUS = 0x060, R_INT_ACK = 0x064, R_STATUS = 0x070,
	R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_DRIVER_LO = 0x090, R_DRIVER_HI = 0x094,
	R_DEVICE_LO = 0x0a0, R_DEVICE_HI = 0x0a4, R_CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 0x40 };
enum { ID_NET = 1, ID_BLK = 2, ID_RNG = 4, ID_VSOCK = 19 };

struct vdev {
	uint64_t base;
	volatile uint8_t *regs; /* the 4 KiB window */
	uint32_t id;
	uint64_t features;      /* as offered */
	unsigned nq;            /* queues with a non-zero QueueNumMax */
	uint16_t qmax[MAX_VQ];
};

struct hostile {
	uint64_t rng;
	uint64_t deadline_ms;   /* kiln.secs after the start */
	int mem_fd;             /* /dev/mem */
	struct vdev dev[MAX_VDEV];
	unsigned nr_dev;
	uint64_t ram_end;       /* the first guest-physical address past RAM */
	uint8_t *scratch;       /* one locked 2 MiB huge page... */
	uint64_t scratch_gpa;   /* ...at this guest-physical address */
};

static inline uint32_t vreg(const struct vdev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->regs + off);
}

static inline void vreg_set(const struct vdev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->regs + off) = v;
}

/* Unbinds the virtio-mmio drivers, maps every window kiln announced, reserves the scratch page
 * and seeds the random source from kiln.seed; prints what it found. 0, or -1 with r failed. */
int hostile_setup(const struct agent *a, struct hostile *h, struct result *r);

/* xorshift64. */
uint64_t hostile_rand(struct hostile *h);

/* A random value biased towards edges: 0, all ones, powers of two, small numbers. */
uint64_t hostile_value(struct hostile *h);

uint64_t hostile_now_ms(void);

/* Maps the 4 KiB page at guest-physical gpa (not RAM) through /dev/mem; NULL on failure. */
void *hostile_map(struct hostile *h, uint64_t gpa);

/* Writes 0 to the device's status: kiln resets it, waiting for any request in flight. */
void vdev_reset(struct vdev *d);

/* Single-instruction accesses of 1, 2, 4 or 8 bytes at any alignment. */
uint64_t mmio_read(volatile void *p, unsigned len);
void mmio_write(volatile void *p, unsigned len, uint64_t v);

#endif
