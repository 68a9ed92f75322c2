/* Unit tests for devices/virtio/rng.c: requests through the virtio-mmio transport, without KVM. */
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
#include "rng.h"
#include "virtio.h"
#include "virtio_driver.h"

#define RAM (1ull << 20)
#define QBASE 0x1000ull
#define DATA 0x10000ull
#define PAGE 4096ull
#define DIRTY_WORDS ((RAM / PAGE + 63) / 64)
#define W VIRTQ_DESC_F_WRITE
#define N VIRTQ_DESC_F_NEXT

struct fixture {
	struct guest_memory gm;
	struct virtio_rng rng;
	struct vdrv_queue q;
};

static struct fixture *start(void **state, uint64_t features)
{
	struct fixture *f = *state;

	assert_true(vdrv_start(&f->rng.mmio, VIRTIO_BIT(VIRTIO_F_VERSION_1) | features, &f->q, 1) &
		    VIRTIO_STATUS_DRIVER_OK);
	return f;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_memory_create(&f->gm, RAM, false) < 0)
		return -1;
	if (virtio_rng_init(&f->rng, &f->gm, NULL, -1, 0xd0001000, 5) < 0)
		return -1;
	vdrv_queue_init(&f->q, &f->gm, 64, QBASE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_rng_destroy(&f->rng);
	guest_memory_destroy(&f->gm);
	free(f);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint16_t used(struct fixture *f)
{
	return vdrv_used_idx(&f->q);
}

static void virtio_rng_fills_writable_buffers_only(void **state)
{
	struct fixture *f = start(state, 0);
	uint8_t *h = f->gm.host;
	uint32_t id, len;

	memset(h + DATA, 0, 0x3000);
	memset(h + DATA, 0x77, 8);
	vdrv_desc(&f->q, 0, DATA, 8, N, 1); /* readable: left alone */
	vdrv_desc(&f->q, 1, DATA + 0x100, 100, W | N, 2);
	vdrv_desc(&f->q, 2, DATA + 0x1ff0, 200, W, 0); /* across a page */
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 1);
	vdrv_used_elem(&f->q, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 300);
	assert_int_equal(metrics_get(&f->rng.m->entropy_bytes), 300);
	for (int i = 0; i < 8; i++)
		assert_int_equal(h[DATA + i], 0x77);
	assert_true(all_zero(h + DATA + 8, 0xf8));
	assert_false(all_zero(h + DATA + 0x100, 100));
	assert_true(all_zero(h + DATA + 0x164, 0x1ff0 - 0x164));
	assert_false(all_zero(h + DATA + 0x1ff0, 200));
	assert_true(all_zero(h + DATA + 0x1ff0 + 200, 0x3000 - 0x1ff0 - 200));
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_INTERRUPT_STATUS), VIRTIO_INT_USED_RING);
	assert_int_equal(f->rng.mmio.nr_signals, 1);
}

static void virtio_rng_fill_records_dirty_pages(void **state)
{
	struct fixture *f = start(state, 0);
	uint64_t bm[DIRTY_WORDS];

	guest_memory_take_dirty(&f->gm, bm);
	vdrv_desc(&f->q, 0, DATA + 0x3ff0, 0x20, W, 0);
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	guest_memory_take_dirty(&f->gm, bm);
	assert_true(bm[(DATA + 0x3000) / PAGE / 64] & (1ull << ((DATA + 0x3000) / PAGE % 64)));
	assert_true(bm[(DATA + 0x4000) / PAGE / 64] & (1ull << ((DATA + 0x4000) / PAGE % 64)));
	assert_true(bm[QBASE / PAGE / 64] & (1ull << (QBASE / PAGE % 64))); /* the used ring */
}

static void virtio_rng_readable_only_chain_used_with_0(void **state)
{
	struct fixture *f = start(state, 0);
	uint32_t id, len;

	vdrv_desc(&f->q, 9, DATA, 64, 0, 0);
	vdrv_avail_push(&f->q, 9);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 1);
	vdrv_used_elem(&f->q, 0, &id, &len);
	assert_int_equal(id, 9);
	assert_int_equal(len, 0);
	assert_true(all_zero(f->gm.host + DATA, 64));
}

static void virtio_rng_request_above_64k_gets_short_fill(void **state)
{
	struct fixture *f = start(state, 0);
	uint32_t id, len;

	memset(f->gm.host + DATA, 0, 70000);
	vdrv_desc(&f->q, 0, DATA, 70000, W, 0);
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	vdrv_used_elem(&f->q, 0, &id, &len);
	assert_int_equal(len, 65536);
	assert_true(all_zero(f->gm.host + DATA + 65536, 70000 - 65536));
	assert_false(all_zero(f->gm.host + DATA + 65536 - 64, 64));
}

static void virtio_rng_several_requests_one_kick_one_interrupt(void **state)
{
	struct fixture *f = start(state, 0);

	for (uint16_t i = 0; i < 5; i++) {
		vdrv_desc(&f->q, i, DATA + 0x100ull * i, 16, W, 0);
		vdrv_avail_push(&f->q, i);
	}
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 5);
	assert_int_equal(f->rng.mmio.nr_signals, 1);
	assert_int_equal(metrics_get(&f->rng.m->entropy_event_count), 2); /* DRIVER_OK + kick */
}

static void virtio_rng_bad_chain_needs_reset_stops_serving(void **state)
{
	struct fixture *f = start(state, 0);

	vdrv_desc(&f->q, 0, DATA, 16, W, 0);
	vdrv_desc(&f->q, 1, DATA, 16, W | N, 2);
	vdrv_desc(&f->q, 2, DATA, 16, W | N, 1); /* a loop */
	vdrv_avail_push(&f->q, 0);
	vdrv_avail_push(&f->q, 1);
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 1); /* the good one before the loop was served */
	assert_true(vdrv_read(&f->rng.mmio, VDRV_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_INTERRUPT_STATUS),
			 VIRTIO_INT_USED_RING | VIRTIO_INT_CONFIG);
	assert_int_equal(metrics_get(&f->rng.m->entropy_event_fails), 1);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 1);

	/* The driver resets and starts over: the device works again. */
	vdrv_queue_init(&f->q, &f->gm, 64, QBASE);
	start(state, 0);
	vdrv_desc(&f->q, 0, DATA, 16, W, 0);
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 1);
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void virtio_rng_buffer_outside_ram_needs_reset(void **state)
{
	struct fixture *f = start(state, 0);

	vdrv_desc(&f->q, 0, RAM - 8, 16, W, 0);
	vdrv_avail_push(&f->q, 0);
	vdrv_notify(&f->rng.mmio, 0);
	assert_int_equal(used(f), 0);
	assert_true(vdrv_read(&f->rng.mmio, VDRV_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(vdrv_read(&f->rng.mmio, VDRV_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
}

static void serve_one(struct fixture *f, uint16_t head)
{
	vdrv_desc(&f->q, head, DATA, 4, W, 0);
	vdrv_avail_push(&f->q, head);
	vdrv_notify(&f->rng.mmio, 0);
}

static void virtio_rng_event_idx_interrupts_at_used_event(void **state)
{
	struct fixture *f = start(state, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));

	vdrv_set_used_event(&f->q, 3);
	serve_one(f, 0); /* the first always interrupts */
	assert_int_equal(f->rng.mmio.nr_signals, 1);
	assert_int_equal(vdrv_avail_event(&f->q), 1);
	serve_one(f, 1);
	serve_one(f, 2);
	assert_int_equal(f->rng.mmio.nr_signals, 1);
	serve_one(f, 3); /* used idx 3 -> 4 passes used_event 3 */
	assert_int_equal(f->rng.mmio.nr_signals, 2);
	assert_int_equal(vdrv_avail_event(&f->q), 4);
	assert_int_equal(used(f), 4);
}

static void virtio_rng_no_interrupt_flag_suppresses_without_event_idx(void **state)
{
	struct fixture *f = start(state, 0);

	vdrv_set_avail_flags(&f->q, VIRTQ_AVAIL_F_NO_INTERRUPT);
	serve_one(f, 0);
	serve_one(f, 1);
	assert_int_equal(used(f), 2);
	assert_int_equal(f->rng.mmio.nr_signals, 0);
	vdrv_set_avail_flags(&f->q, 0);
	serve_one(f, 2);
	assert_int_equal(f->rng.mmio.nr_signals, 1);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(virtio_rng_fills_writable_buffers_only),
		T(virtio_rng_fill_records_dirty_pages),
		T(virtio_rng_readable_only_chain_used_with_0),
		T(virtio_rng_request_above_64k_gets_short_fill),
		T(virtio_rng_several_requests_one_kick_one_interrupt),
		T(virtio_rng_bad_chain_needs_reset_stops_serving),
		T(virtio_rng_buffer_outside_ram_needs_reset),
		T(virtio_rng_event_idx_interrupts_at_used_event),
		T(virtio_rng_no_interrupt_flag_suppresses_without_event_idx),
	};
#undef T

	return cmocka_run_group_tests_name("rng.c", tests, group_setup, NULL);
}
