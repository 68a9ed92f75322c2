/*
 * Unit tests for devices/virtio/mmio.c: the test acts as a driver through the transport's bus
 * ops, on a fake device (and virtio-rng for the register storm), without KVM (vm_fd -1).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "memory.h"
#include "mmio.h"
#include "rng.h"
#include "virtio.h"
#include "virtio_driver.h"

#define RAM (1ull << 20)
#define Q0 0x1000ull
#define Q1 0x4000ull
#define DATA 0x10000ull
#define FAKE_ID 42
#define FAKE_QMAX 64
#define FAKE_F_A 0  /* the fake device's own feature bits */
#define FAKE_F_B 5
#define CFG VIRTIO_MMIO_CONFIG

/* A device that records what the transport asks of it. */
struct fake {
	struct virtio_mmio t;
	uint8_t config[8];
	unsigned activations, resets, config_reads, config_writes;
	unsigned notified[VIRTIO_MMIO_MAX_QUEUES];
	int activate_ret;
};

static void fake_config_read(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len)
{
	struct fake *f = t->dev;

	assert_true(off < sizeof(f->config) && len <= sizeof(f->config) - off);
	memcpy(data, f->config + off, len);
	f->config_reads++;
}

static void fake_config_write(struct virtio_mmio *t, uint32_t off, const uint8_t *data,
			      uint32_t len)
{
	struct fake *f = t->dev;

	assert_true(off < sizeof(f->config) && len <= sizeof(f->config) - off);
	memcpy(f->config + off, data, len);
	f->config_writes++;
}

static int fake_activate(struct virtio_mmio *t)
{
	struct fake *f = t->dev;

	f->activations++;
	return f->activate_ret;
}

static void fake_reset(struct virtio_mmio *t)
{
	struct fake *f = t->dev;

	f->resets++;
}

static void fake_notify(struct virtio_mmio *t, unsigned q)
{
	struct fake *f = t->dev;

	assert_true(q < t->ops->nr_queues);
	f->notified[q]++;
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = FAKE_ID,
	.nr_queues = 2,
	.queue_max = FAKE_QMAX,
	.features = VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B),
	.config_size = 8,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.reset = fake_reset,
	.notify = fake_notify,
};

struct fixture {
	struct guest_memory gm;
	struct fake fake;
	struct virtio_rng rng;
	struct vdrv_queue q[2];
};

static const uint64_t good_features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FAKE_F_B);

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_memory_create(&f->gm, RAM, false) < 0)
		return -1;
	if (virtio_mmio_init(&f->fake.t, &fake_ops, &f->fake, &f->gm, NULL, -1, 0xd0001000, 5) < 0)
		return -1;
	if (virtio_rng_init(&f->rng, &f->gm, NULL, -1, 0xd0002000, 6) < 0)
		return -1;
	for (unsigned i = 0; i < 8; i++)
		f->fake.config[i] = (uint8_t)(0xa0 + i);
	vdrv_queue_init(&f->q[0], &f->gm, 16, Q0);
	vdrv_queue_init(&f->q[1], &f->gm, 64, Q1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_rng_destroy(&f->rng);
	virtio_mmio_destroy(&f->fake.t);
	guest_memory_destroy(&f->gm);
	free(f);
	return 0;
}

static uint32_t rd(struct fixture *f, uint64_t off)
{
	return vdrv_read(&f->fake.t, off);
}

static void wr(struct fixture *f, uint64_t off, uint32_t v)
{
	vdrv_write(&f->fake.t, off, v);
}

static uint32_t status(struct fixture *f)
{
	return rd(f, VDRV_STATUS);
}

/* ACKNOWLEDGE | DRIVER, then the given features and FEATURES_OK; returns the status read back. */
static uint32_t negotiate(struct fixture *f, uint64_t features)
{
	wr(f, VDRV_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, VDRV_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vdrv_write_features(&f->fake.t, features);
	wr(f, VDRV_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_FEATURES_OK);
	return status(f);
}

static void set_driver_ok(struct fixture *f)
{
	wr(f, VDRV_STATUS, status(f) | VIRTIO_STATUS_DRIVER_OK);
}

/* --- identity and features --- */

static void virtio_mmio_identity_registers_describe_device(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, VDRV_MAGIC), 0x74726976);
	assert_int_equal(rd(f, VDRV_VERSION), 2);
	assert_int_equal(rd(f, VDRV_DEVICE_ID), FAKE_ID);
	assert_int_equal(rd(f, VDRV_VENDOR_ID), 0x4e4c494b);
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_DEVICE_ID), VIRTIO_ID_RNG);
	assert_int_equal(rd(f, VDRV_SHM_LEN_LOW), 0xffffffffu);
	assert_int_equal(rd(f, VDRV_CONFIG_GENERATION), 0);
	assert_int_equal(status(f), 0);
	assert_int_equal(rd(f, 0x0c0), 0); /* a hole in the register file */
	/* Read-only registers stay as they are. */
	wr(f, VDRV_MAGIC, 0);
	wr(f, VDRV_DEVICE_ID, 7);
	assert_int_equal(rd(f, VDRV_MAGIC), 0x74726976);
	assert_int_equal(rd(f, VDRV_DEVICE_ID), FAKE_ID);
}

static void virtio_mmio_device_features_offer_device_bits_version_1_event_idx(void **state)
{
	struct fixture *f = *state;

	wr(f, VDRV_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(f, VDRV_DEVICE_FEATURES), VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B) |
			 VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	wr(f, VDRV_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(f, VDRV_DEVICE_FEATURES), 1); /* VERSION_1 is bit 32 */
	wr(f, VDRV_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(f, VDRV_DEVICE_FEATURES), 0);
	wr(f, VDRV_DEVICE_FEATURES_SEL, 0xffffffff);
	assert_int_equal(rd(f, VDRV_DEVICE_FEATURES), 0);
}

static void virtio_mmio_features_ok_offered_subset_accepted(void **state)
{
	struct fixture *f = *state;
	uint64_t want = good_features | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);

	assert_true(negotiate(f, want) & VIRTIO_STATUS_FEATURES_OK);
	assert_true(virtio_mmio_has_feature(&f->fake.t, VIRTIO_F_VERSION_1));
	assert_true(virtio_mmio_has_feature(&f->fake.t, VIRTIO_F_RING_EVENT_IDX));
	assert_true(virtio_mmio_has_feature(&f->fake.t, FAKE_F_B));
	assert_false(virtio_mmio_has_feature(&f->fake.t, FAKE_F_A));
	assert_false(virtio_mmio_has_feature(&f->fake.t, 64));
	assert_false(virtio_mmio_has_feature(&f->fake.t, 1000));
}

static void virtio_mmio_features_ok_without_version_1_refused(void **state)
{
	struct fixture *f = *state;
	uint32_t s = negotiate(f, VIRTIO_BIT(FAKE_F_A));

	assert_false(s & VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(s, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* DRIVER_OK without FEATURES_OK does not start the device. */
	set_driver_ok(f);
	assert_int_equal(f->fake.activations, 0);
}

static void virtio_mmio_features_ok_with_features_not_offered_refused(void **state)
{
	struct fixture *f = *state;
	const unsigned bad[] = { 1, VIRTIO_F_RING_INDIRECT_DESC, 31, 33, 63 };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(f, VDRV_STATUS, 0);
		assert_false(negotiate(f, good_features | VIRTIO_BIT(bad[i])) &
			     VIRTIO_STATUS_FEATURES_OK);
	}
	/* After a reset the same driver can get it right. */
	wr(f, VDRV_STATUS, 0);
	assert_true(negotiate(f, good_features) & VIRTIO_STATUS_FEATURES_OK);
}

static void virtio_mmio_driver_features_fixed_after_features_ok(void **state)
{
	struct fixture *f = *state;

	assert_true(negotiate(f, good_features) & VIRTIO_STATUS_FEATURES_OK);
	vdrv_write_features(&f->fake.t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FAKE_F_A));
	assert_true(virtio_mmio_has_feature(&f->fake.t, FAKE_F_B));
	assert_false(virtio_mmio_has_feature(&f->fake.t, FAKE_F_A));
	/* A selector past the two words is ignored. */
	wr(f, VDRV_STATUS, 0);
	wr(f, VDRV_DRIVER_FEATURES_SEL, 2);
	wr(f, VDRV_DRIVER_FEATURES, 0xffffffff);
	assert_int_equal(f->fake.t.driver_features, 0);
}

/* --- queues --- */

static void virtio_mmio_queue_num_max_per_queue_zero_beyond(void **state)
{
	struct fixture *f = *state;

	wr(f, VDRV_QUEUE_SEL, 0);
	assert_int_equal(rd(f, VDRV_QUEUE_NUM_MAX), FAKE_QMAX);
	wr(f, VDRV_QUEUE_SEL, 1);
	assert_int_equal(rd(f, VDRV_QUEUE_NUM_MAX), FAKE_QMAX);
	wr(f, VDRV_QUEUE_SEL, 2);
	assert_int_equal(rd(f, VDRV_QUEUE_NUM_MAX), 0);
	wr(f, VDRV_QUEUE_SEL, 0xffffffff);
	assert_int_equal(rd(f, VDRV_QUEUE_NUM_MAX), 0);
	/* Setting up a queue that does not exist changes nothing. */
	vdrv_setup_queue(&f->fake.t, 3, &f->q[0]);
	vdrv_setup_queue(&f->fake.t, 0xffffffff, &f->q[0]);
	assert_int_equal(rd(f, VDRV_QUEUE_READY), 0);
	assert_int_equal(status(f), 0);
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		assert_false(f->fake.t.queues[i].ready);
		assert_int_equal(f->fake.t.queues[i].size, 0);
	}
}

static void virtio_mmio_queue_setup_ready_reads_back_layout_frozen(void **state)
{
	struct fixture *f = *state;
	struct virtq *q = &f->fake.t.queues[1];

	assert_true(negotiate(f, good_features) & VIRTIO_STATUS_FEATURES_OK);
	vdrv_setup_queue(&f->fake.t, 1, &f->q[1]);
	assert_int_equal(rd(f, VDRV_QUEUE_READY), 1);
	assert_true(q->ready);
	assert_int_equal(q->size, 64);
	assert_int_equal(q->desc, Q1);
	assert_int_equal(q->avail, f->q[1].avail);
	assert_int_equal(q->used, f->q[1].used);

	/* A live queue's layout cannot change. */
	wr(f, VDRV_QUEUE_NUM, 8);
	wr(f, VDRV_QUEUE_DESC_LOW, 0x8000);
	wr(f, VDRV_QUEUE_DEVICE_HIGH, 1);
	assert_int_equal(q->size, 64);
	assert_int_equal(q->desc, Q1);
	assert_int_equal(q->used, f->q[1].used);

	/* Disabled, it can; 64-bit addresses are put together from both halves. */
	wr(f, VDRV_QUEUE_READY, 0);
	assert_int_equal(rd(f, VDRV_QUEUE_READY), 0);
	wr(f, VDRV_QUEUE_DESC_HIGH, 0x12);
	wr(f, VDRV_QUEUE_DESC_LOW, 0x3400);
	assert_int_equal(q->desc, 0x1200003400ull);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void virtio_mmio_driver_ok_activates_once_and_serves_queues(void **state)
{
	struct fixture *f = *state;

	assert_true(vdrv_start(&f->fake.t, good_features | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
			       f->q, 2) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->fake.activations, 1);
	assert_true(f->fake.t.activated);
	/* Buffers queued before DRIVER_OK: each ready queue gets one pass. */
	assert_int_equal(f->fake.notified[0], 1);
	assert_int_equal(f->fake.notified[1], 1);
	assert_true(f->fake.t.queues[0].event_idx);
	set_driver_ok(f);
	assert_int_equal(f->fake.activations, 1);
}

static void virtio_mmio_activate_failure_needs_reset_config_interrupt(void **state)
{
	struct fixture *f = *state;

	f->fake.activate_ret = -ENOMEM;
	vdrv_start(&f->fake.t, good_features, f->q, 2);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(f->fake.t.nr_signals, 1);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 0);
	/* A reset and a second try that works. */
	f->fake.activate_ret = 0;
	assert_true(vdrv_start(&f->fake.t, good_features, f->q, 2) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(f->fake.activations, 2);
}

static void virtio_mmio_queue_notify_reaches_device_only_when_live(void **state)
{
	struct fixture *f = *state;

	assert_true(negotiate(f, good_features) & VIRTIO_STATUS_FEATURES_OK);
	vdrv_setup_queue(&f->fake.t, 0, &f->q[0]);
	vdrv_notify(&f->fake.t, 0); /* before DRIVER_OK */
	assert_int_equal(f->fake.notified[0], 0);
	set_driver_ok(f);
	assert_int_equal(f->fake.notified[0], 1);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 2);
	vdrv_notify(&f->fake.t, 1); /* queue 1 never made ready */
	vdrv_notify(&f->fake.t, 2);
	vdrv_notify(&f->fake.t, 0xffffffff);
	assert_int_equal(f->fake.notified[1], 0);
	wr(f, VDRV_QUEUE_SEL, 0);
	wr(f, VDRV_QUEUE_READY, 0);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 2);
	wr(f, VDRV_QUEUE_READY, 1);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 3);
	virtio_mmio_lock(&f->fake.t);
	virtio_mmio_needs_reset(&f->fake.t, "test");
	virtio_mmio_unlock(&f->fake.t);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 3);
}

static void virtio_mmio_status_zero_resets_everything(void **state)
{
	struct fixture *f = *state;
	struct virtio_mmio *t = &f->fake.t;

	assert_true(vdrv_start(t, good_features, f->q, 2) & VIRTIO_STATUS_DRIVER_OK);
	virtio_mmio_lock(t);
	virtio_mmio_needs_reset(t, "test");
	virtio_mmio_unlock(t);
	wr(f, VDRV_DEVICE_FEATURES_SEL, 1);
	wr(f, VDRV_QUEUE_SEL, 1);
	wr(f, VDRV_STATUS, 0);
	assert_int_equal(f->fake.resets, 1);
	assert_int_equal(status(f), 0);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), 0);
	assert_false(t->activated);
	assert_int_equal(t->driver_features, 0);
	assert_int_equal(t->queue_sel, 0);
	assert_int_equal(t->device_features_sel, 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_false(t->queues[i].ready);
		assert_int_equal(t->queues[i].size, 0);
		assert_int_equal(t->queues[i].desc, 0);
		assert_int_equal(t->queues[i].next_avail, 0);
		assert_int_equal(t->queues[i].max_size, FAKE_QMAX);
	}
	/* A reset before the device ever started does not bother the device. */
	wr(f, VDRV_STATUS, 0);
	assert_int_equal(f->fake.resets, 1);
}

/* One bad layout for queue 0, set up before DRIVER_OK. */
struct bad_layout {
	const char *what;
	uint32_t num;
	uint64_t desc, avail, used;
};

static void virtio_mmio_queue_ready_bad_ring_sets_needs_reset(void **state)
{
	struct fixture *f = *state;
	const struct vdrv_queue *g = &f->q[0];
	const struct bad_layout bad[] = {
		{ "no size", 0, g->desc, g->avail, g->used },
		{ "size not a power of two", 12, g->desc, g->avail, g->used },
		{ "size above max", FAKE_QMAX * 2, g->desc, g->avail, g->used },
		{ "desc outside RAM", 16, RAM, g->avail, g->used },
		{ "desc spanning the end", 16, RAM - 0x80, g->avail, g->used },
		{ "desc misaligned", 16, g->desc + 8, g->avail, g->used },
		{ "avail odd", 16, g->desc, g->avail + 1, g->used },
		{ "used misaligned", 16, g->desc, g->avail, g->used + 2 },
		{ "used above 4 GiB", 16, g->desc, g->avail, g->used | (1ull << 32) },
		{ "avail near 2^64", 16, g->desc, UINT64_MAX - 1, g->used },
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vdrv_queue q = *g;

		q.desc = bad[i].desc;
		q.avail = bad[i].avail;
		q.used = bad[i].used;
		q.size = (uint16_t)bad[i].num;
		wr(f, VDRV_STATUS, 0);
		assert_true(negotiate(f, good_features) & VIRTIO_STATUS_FEATURES_OK);
		vdrv_setup_queue(&f->fake.t, 0, &q);
		if (rd(f, VDRV_QUEUE_READY) != 0 || !(status(f) & VIRTIO_STATUS_NEEDS_RESET))
			fail_msg("%s: accepted", bad[i].what);
		/* The driver goes on to DRIVER_OK: the device tells it, and does not start. */
		set_driver_ok(f);
		assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
		if (rd(f, VDRV_INTERRUPT_STATUS) != VIRTIO_INT_CONFIG)
			fail_msg("%s: no configuration interrupt at DRIVER_OK", bad[i].what);
		vdrv_notify(&f->fake.t, 0);
		assert_int_equal(f->fake.notified[0], 0);
	}
	assert_int_equal(f->fake.activations, 0);
}

/* A queue enabled after DRIVER_OK with a bad ring: needs reset and a config interrupt. */
static void virtio_mmio_queue_ready_bad_ring_after_driver_ok_config_interrupt(void **state)
{
	struct fixture *f = *state;
	struct vdrv_queue bad = f->q[1];

	assert_true(vdrv_start(&f->fake.t, good_features, f->q, 1) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->fake.t.nr_signals, 0);
	bad.used = RAM - 8;
	vdrv_setup_queue(&f->fake.t, 1, &bad);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(f->fake.t.nr_signals, 1);
	/* Once is enough: a second error does not interrupt again. */
	vdrv_setup_queue(&f->fake.t, 1, &bad);
	assert_int_equal(f->fake.t.nr_signals, 1);
	vdrv_notify(&f->fake.t, 0);
	assert_int_equal(f->fake.notified[0], 1); /* only DRIVER_OK's pass */
	/* Status writes keep the bit until a reset clears it. */
	set_driver_ok(f);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	wr(f, VDRV_STATUS, 0);
	assert_int_equal(status(f), 0);
}

static void virtio_mmio_interrupt_ack_clears_acked_bits(void **state)
{
	struct fixture *f = *state;

	assert_true(vdrv_start(&f->fake.t, good_features, f->q, 2) & VIRTIO_STATUS_DRIVER_OK);
	atomic_store(&f->fake.t.interrupt_status, VIRTIO_INT_USED_RING);
	virtio_mmio_lock(&f->fake.t);
	virtio_mmio_needs_reset(&f->fake.t, "test");
	virtio_mmio_unlock(&f->fake.t);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), VIRTIO_INT_USED_RING | VIRTIO_INT_CONFIG);
	wr(f, VDRV_INTERRUPT_ACK, VIRTIO_INT_USED_RING);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	wr(f, VDRV_INTERRUPT_ACK, 0xfffffff0);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	wr(f, VDRV_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), 0);
	/* InterruptStatus is read-only, InterruptACK write-only. */
	wr(f, VDRV_INTERRUPT_STATUS, 3);
	assert_int_equal(rd(f, VDRV_INTERRUPT_STATUS), 0);
	assert_int_equal(rd(f, VDRV_INTERRUPT_ACK), 0);
}

/* --- config space and access sizes --- */

static void config_read_n(struct fixture *f, uint64_t off, uint8_t *out, uint32_t len)
{
	memset(out, 0x55, len);
	virtio_mmio_bus_ops.read(&f->fake.t, off, out, len);
}

static void virtio_mmio_config_space_inside_bounds_only(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zero[8];
	uint8_t b[8];

	config_read_n(f, CFG, b, 8);
	assert_memory_equal(b, f->fake.config, 8);
	config_read_n(f, CFG + 6, b, 2);
	assert_memory_equal(b, f->fake.config + 6, 2);
	config_read_n(f, CFG + 7, b, 1);
	assert_int_equal(b[0], 0xa7);
	assert_int_equal(f->fake.config_reads, 3);

	/* Crossing the end, past it, far past it: zeros, and the device is not asked. */
	config_read_n(f, CFG + 6, b, 4);
	assert_memory_equal(b, zero, 4);
	config_read_n(f, CFG + 1, b, 8);
	assert_memory_equal(b, zero, 8);
	config_read_n(f, CFG + 8, b, 1);
	assert_memory_equal(b, zero, 1);
	config_read_n(f, 0xffc, b, 4);
	assert_memory_equal(b, zero, 4);
	config_read_n(f, UINT64_MAX - 3, b, 4);
	assert_memory_equal(b, zero, 4);
	assert_int_equal(f->fake.config_reads, 3);

	virtio_mmio_bus_ops.write(&f->fake.t, CFG + 2, (const uint8_t *)"\x01\x02", 2);
	assert_int_equal(f->fake.config[2], 1);
	assert_int_equal(f->fake.config[3], 2);
	virtio_mmio_bus_ops.write(&f->fake.t, CFG + 5, (const uint8_t *)"\x09\x09\x09\x09", 4);
	virtio_mmio_bus_ops.write(&f->fake.t, CFG + 8, (const uint8_t *)"\x09", 1);
	virtio_mmio_bus_ops.write(&f->fake.t, UINT64_MAX, (const uint8_t *)"\x09", 1);
	assert_int_equal(f->fake.config_writes, 1);
	assert_int_equal(f->fake.config[5], 0xa5);

	/* virtio-rng has no config space at all. */
	memset(b, 0x55, 4);
	virtio_mmio_bus_ops.read(&f->rng.mmio, CFG, b, 4);
	assert_memory_equal(b, zero, 4);
	virtio_mmio_bus_ops.write(&f->rng.mmio, CFG, b, 4);
}

static void virtio_mmio_register_access_not_4_bytes_ignored(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zero[8];
	uint8_t b[8];
	const uint32_t lens[] = { 1, 2, 8 };

	for (unsigned i = 0; i < 3; i++) {
		config_read_n(f, VDRV_MAGIC, b, lens[i]);
		assert_memory_equal(b, zero, lens[i]);
		memset(b, VIRTIO_STATUS_ACKNOWLEDGE, sizeof(b));
		virtio_mmio_bus_ops.write(&f->fake.t, VDRV_STATUS, b, lens[i]);
		assert_int_equal(status(f), 0);
	}
	config_read_n(f, VDRV_MAGIC + 1, b, 4);
	assert_memory_equal(b, zero, 4);
	config_read_n(f, VDRV_STATUS + 2, b, 4);
	assert_memory_equal(b, zero, 4);
	memset(b, VIRTIO_STATUS_ACKNOWLEDGE, 4);
	virtio_mmio_bus_ops.write(&f->fake.t, VDRV_STATUS + 1, b, 4);
	virtio_mmio_bus_ops.write(&f->fake.t, VDRV_STATUS - 2, b, 4);
	assert_int_equal(status(f), 0);
	/* An unaligned QueueNotify is ignored too. */
	assert_true(vdrv_start(&f->fake.t, good_features, f->q, 1) & VIRTIO_STATUS_DRIVER_OK);
	memset(b, 0, 4);
	virtio_mmio_bus_ops.write(&f->fake.t, VDRV_QUEUE_NOTIFY + 1, b, 4);
	virtio_mmio_bus_ops.write(&f->fake.t, VDRV_QUEUE_NOTIFY, b, 2);
	assert_int_equal(f->fake.notified[0], 1);
}

/* --- virtio-rng through the transport: a working request, then a register storm --- */

/* One 64-byte request on rng queue 0; returns whether it completed with 64 bytes. */
static bool rng_request_works(struct fixture *f, struct vdrv_queue *q)
{
	static const uint8_t zero[64];
	uint16_t before = vdrv_used_idx(q);
	uint32_t id, len;

	memset(f->gm.host + DATA, 0, 64);
	vdrv_desc(q, 3, DATA, 64, VIRTQ_DESC_F_WRITE, 0);
	vdrv_avail_push(q, 3);
	vdrv_notify(&f->rng.mmio, 0);
	if (vdrv_used_idx(q) != (uint16_t)(before + 1))
		return false;
	vdrv_used_elem(q, before, &id, &len);
	return id == 3 && len == 64 && memcmp(f->gm.host + DATA, zero, 64) != 0;
}

static void virtio_rng_request_through_mmio_fills_and_interrupts(void **state)
{
	struct fixture *f = *state;

	assert_true(vdrv_start(&f->rng.mmio, VIRTIO_BIT(VIRTIO_F_VERSION_1), f->q, 1) &
		    VIRTIO_STATUS_DRIVER_OK);
	assert_true(rng_request_works(f, &f->q[0]));
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_INTERRUPT_STATUS), VIRTIO_INT_USED_RING);
	assert_int_equal(f->rng.mmio.nr_signals, 1);
	assert_int_equal(metrics_get(&f->rng.m->entropy_bytes), 64);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const uint64_t storm_regs[] = {
	VDRV_MAGIC, VDRV_VERSION, VDRV_DEVICE_ID, VDRV_DEVICE_FEATURES, VDRV_DEVICE_FEATURES_SEL,
	VDRV_DRIVER_FEATURES, VDRV_DRIVER_FEATURES_SEL, VDRV_QUEUE_SEL, VDRV_QUEUE_NUM_MAX,
	VDRV_QUEUE_NUM, VDRV_QUEUE_READY, VDRV_QUEUE_NOTIFY, VDRV_INTERRUPT_STATUS,
	VDRV_INTERRUPT_ACK, VDRV_STATUS, VDRV_QUEUE_DESC_LOW, VDRV_QUEUE_DESC_HIGH,
	VDRV_QUEUE_DRIVER_LOW, VDRV_QUEUE_DRIVER_HIGH, VDRV_QUEUE_DEVICE_LOW,
	VDRV_QUEUE_DEVICE_HIGH, VDRV_SHM_LEN_LOW, VDRV_CONFIG_GENERATION, CFG,
};

static uint32_t storm_value(uint64_t *s, uint64_t reg)
{
	switch (rnd(s) % 8) {
	case 0:
		return (uint32_t)rnd(s);
	case 1:
		return (uint32_t)(rnd(s) % 300);
	case 2:
		return 0;
	case 3:
		return (uint32_t)(1u << (rnd(s) % 32));
	default:
		if (reg == VDRV_STATUS)
			return (uint32_t)(rnd(s) & 0xff);
		if (reg == VDRV_QUEUE_NUM)
			return 1u << (rnd(s) % 10);
		if (reg == VDRV_QUEUE_SEL || reg == VDRV_QUEUE_NOTIFY ||
		    reg == VDRV_DRIVER_FEATURES_SEL || reg == VDRV_DEVICE_FEATURES_SEL)
			return (uint32_t)(rnd(s) % 3);
		if (reg >= VDRV_QUEUE_DESC_LOW && reg <= VDRV_QUEUE_DEVICE_HIGH)
			return reg & 4 ? 0 : (uint32_t)(rnd(s) % (RAM + 0x1000)) & ~(rnd(s) & 15);
		return (uint32_t)rnd(s);
	}
}

/*
 * Thousands of seeded register reads and writes, a proper driver set-up now and then, and
 * the rings scribbled on, against virtio-rng; then a reset and a request that must work.
 */
static void virtio_mmio_register_storm_then_reset_works(void **state)
{
	struct fixture *f = *state;
	struct virtio_mmio *t = &f->rng.mmio;
	uint64_t s = 0x243f6a8885a308d3ull;
	unsigned needs_reset = 0;
	bool was_broken = false;
	struct vdrv_queue q;

	vdrv_queue_init(&q, &f->gm, 256, Q0);
	for (unsigned i = 0; i < 50000; i++) {
		uint64_t r = rnd(&s), reg;
		uint8_t b[8];
		uint32_t v, len = (const uint32_t[]){ 4, 4, 4, 4, 1, 2, 8, 4 }[r % 8];

		switch ((r >> 8) % 16) {
		case 0: /* a well-behaved driver starts the device, with EVENT_IDX or not */
			vdrv_queue_init(&q, &f->gm, (uint16_t)(1u << (rnd(&s) % 9)), Q0);
			vdrv_start(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				   (rnd(&s) & 1 ? VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) : 0), &q, 1);
			break;
		case 1: { /* a descriptor, an avail entry, sometimes a kick */
			uint64_t gpa = rnd(&s) % 4 ? DATA + rnd(&s) % 0x8000 : rnd(&s);

			vdrv_desc(&q, (uint16_t)(rnd(&s) % q.size), gpa, (uint32_t)(rnd(&s) % 0x12000),
				  (uint16_t)(rnd(&s) & 7),
				  (uint16_t)(rnd(&s) % 4 ? rnd(&s) % q.size : rnd(&s)));
			vdrv_avail_push(&q, (uint16_t)(rnd(&s) % 8 ? rnd(&s) % q.size : rnd(&s)));
			if (rnd(&s) & 1)
				vdrv_notify(t, 0);
			break;
		}
		case 2: /* raw bytes anywhere in the rings */
			f->gm.host[Q0 + rnd(&s) % vdrv_queue_bytes(256)] = (uint8_t)rnd(&s);
			break;
		case 3:
		case 4:
		case 5:
		case 6:
			reg = storm_regs[rnd(&s) % (sizeof(storm_regs) / sizeof(storm_regs[0]))];
			v = storm_value(&s, reg);
			memcpy(b, &v, 4);
			memcpy(b + 4, &v, 4);
			virtio_mmio_bus_ops.write(t, reg, b, len);
			break;
		case 7: /* anywhere in the 4 KiB window, or beyond it */
			reg = rnd(&s) % 8 ? rnd(&s) % 0x1000 : rnd(&s);
			v = (uint32_t)rnd(&s);
			memcpy(b, &v, 4);
			memcpy(b + 4, &v, 4);
			virtio_mmio_bus_ops.write(t, reg, b, len);
			break;
		default:
			reg = rnd(&s) % 2 ? storm_regs[rnd(&s) % (sizeof(storm_regs) /
							     sizeof(storm_regs[0]))]
					  : rnd(&s) % 0x1000;
			virtio_mmio_bus_ops.read(t, reg, b, len);
			break;
		}
		/* Count the times the device broke, not the steps it stayed broken. */
		if ((t->status & VIRTIO_STATUS_NEEDS_RESET) && !was_broken)
			needs_reset++;
		was_broken = t->status & VIRTIO_STATUS_NEEDS_RESET;
	}
	/* The storm went through the interesting states, not just past them. */
	assert_true(needs_reset > 20);
	assert_true(metrics_get(&f->rng.m->entropy_bytes) > 0);

	assert_true(vdrv_start(t, VIRTIO_BIT(VIRTIO_F_VERSION_1), f->q, 1) &
		    VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(vdrv_read(t, VDRV_INTERRUPT_STATUS), 0);
	assert_true(rng_request_works(f, &f->q[0]));
	assert_int_equal(vdrv_read(t, VDRV_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static int group_setup(void **state)
{
	/* Refusals log by design; keep the test output to the results. */
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(virtio_mmio_identity_registers_describe_device),
		T(virtio_mmio_device_features_offer_device_bits_version_1_event_idx),
		T(virtio_mmio_features_ok_offered_subset_accepted),
		T(virtio_mmio_features_ok_without_version_1_refused),
		T(virtio_mmio_features_ok_with_features_not_offered_refused),
		T(virtio_mmio_driver_features_fixed_after_features_ok),
		T(virtio_mmio_queue_num_max_per_queue_zero_beyond),
		T(virtio_mmio_queue_setup_ready_reads_back_layout_frozen),
		T(virtio_mmio_driver_ok_activates_once_and_serves_queues),
		T(virtio_mmio_activate_failure_needs_reset_config_interrupt),
		T(virtio_mmio_queue_notify_reaches_device_only_when_live),
		T(virtio_mmio_status_zero_resets_everything),
		T(virtio_mmio_queue_ready_bad_ring_sets_needs_reset),
		T(virtio_mmio_queue_ready_bad_ring_after_driver_ok_config_interrupt),
		T(virtio_mmio_interrupt_ack_clears_acked_bits),
		T(virtio_mmio_config_space_inside_bounds_only),
		T(virtio_mmio_register_access_not_4_bytes_ignored),
		T(virtio_rng_request_through_mmio_fills_and_interrupts),
		T(virtio_mmio_register_storm_then_reset_works),
	};
#undef T

	return cmocka_run_group_tests_name("mmio.c", tests, group_setup, NULL);
}
