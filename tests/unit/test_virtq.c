/*
 * Unit tests for devices/virtio/queue.c: split virtqueues on a fake guest memory, well-formed
 * chains and every way a malicious guest can break one.
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

#include "layout_x86_64.h"
#include "log.h"
#include "memory.h"
#include "poison_log.h"
#include "queue.h"
#include "virtio.h"
#include "virtio_driver.h"

#define RAM (1ull << 20)
#define QBASE 0x1000ull
#define QSIZE 16
#define DATA 0x10000ull
#define PAGE 4096ull
#define DIRTY_WORDS ((RAM / PAGE + 63) / 64)

#define R 0
#define W VIRTQ_DESC_F_WRITE
#define N VIRTQ_DESC_F_NEXT

struct fixture {
	struct guest_memory gm;
	struct vdrv_queue d;
	struct virtq q;
	struct virtq_chain c;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_memory_create(&f->gm, RAM, false) < 0)
		return -1;
	vdrv_queue_init(&f->d, &f->gm, QSIZE, QBASE);
	f->q.max_size = VIRTQ_MAX_SIZE;
	virtq_reset(&f->q);
	vdrv_queue_apply(&f->d, &f->q);
	if (virtq_check(&f->q, &f->gm) < 0)
		return -1;
	f->q.ready = true;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	guest_memory_destroy(&f->gm);
	free(f);
	return 0;
}

static void clear_dirty(struct guest_memory *gm)
{
	uint64_t bm[DIRTY_WORDS];

	guest_memory_take_dirty(gm, bm);
}

static bool page_dirty(const uint64_t *bm, uint64_t gpa)
{
	uint64_t pg = gpa / PAGE;

	return bm[pg / 64] & (1ull << (pg % 64));
}

static unsigned nr_dirty(const uint64_t *bm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < DIRTY_WORDS; i++)
		n += (unsigned)__builtin_popcountll(bm[i]);
	return n;
}

/* --- well-formed chains --- */

static void virtq_pop_empty_ring_returns_0(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	assert_int_equal(f->q.next_avail, 0);
}

static void virtq_pop_not_ready_returns_0(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 8, R, 0);
	vdrv_avail_push(&f->d, 0);
	f->q.ready = false;
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	assert_int_equal(f->q.next_avail, 0);
}

static void virtq_pop_single_readable_buffer_one_buf(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 5, DATA, 100, R, 0);
	vdrv_avail_push(&f->d, 5);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(f->c.head, 5);
	assert_int_equal(f->c.nr, 1);
	assert_int_equal(f->c.nr_out, 1);
	assert_int_equal(f->c.out_len, 100);
	assert_int_equal(f->c.in_len, 0);
	assert_int_equal(f->c.bufs[0].gpa, DATA);
	assert_int_equal(f->c.bufs[0].len, 100);
	assert_false(f->c.bufs[0].write);
	assert_int_equal(f->q.next_avail, 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
}

static void virtq_pop_readable_then_writable_splits_parts(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 2, DATA, 16, R | N, 7);
	vdrv_desc(&f->d, 7, DATA + 0x100, 32, R | N, 3);
	vdrv_desc(&f->d, 3, DATA + 0x200, 512, W | N, 0);
	vdrv_desc(&f->d, 0, DATA + 0x400, 1, W, 9); /* next ignored without NEXT */
	vdrv_avail_push(&f->d, 2);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(f->c.head, 2);
	assert_int_equal(f->c.nr, 4);
	assert_int_equal(f->c.nr_out, 2);
	assert_int_equal(f->c.out_len, 48);
	assert_int_equal(f->c.in_len, 513);
	assert_int_equal(f->c.bufs[1].gpa, DATA + 0x100);
	assert_true(f->c.bufs[2].write);
	assert_true(f->c.bufs[3].write);
	assert_int_equal(f->c.bufs[3].len, 1);
}

static void virtq_pop_chain_as_long_as_queue_accepted(void **state)
{
	struct fixture *f = *state;

	for (uint16_t i = 0; i < QSIZE; i++)
		vdrv_desc(&f->d, i, DATA + 0x100ull * i, 0x100, (i < QSIZE / 2 ? R : W) |
			  (i + 1 < QSIZE ? N : 0), (uint16_t)(i + 1));
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(f->c.nr, QSIZE);
	assert_int_equal(f->c.nr_out, QSIZE / 2);
	assert_int_equal(f->c.out_len, 0x100 * QSIZE / 2);
	assert_int_equal(f->c.in_len, 0x100 * QSIZE / 2);
}

static void virtq_pop_several_chains_in_avail_order(void **state)
{
	struct fixture *f = *state;
	const uint16_t heads[] = { 9, 1, 15, 0 };

	for (unsigned i = 0; i < 4; i++) {
		vdrv_desc(&f->d, heads[i], DATA + 0x1000ull * i, 10 + i, W, 0);
		vdrv_avail_push(&f->d, heads[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
		assert_int_equal(f->c.head, heads[i]);
		assert_int_equal(f->c.in_len, 10 + i);
	}
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
}

/* A zero-length buffer is never touched, so its address is not checked. */
static void virtq_pop_zero_length_buffer_anywhere_accepted_never_touched(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct iovec iov[4];

	vdrv_desc(&f->d, 0, UINT64_MAX, 0, R | N, 1);
	vdrv_desc(&f->d, 1, DATA, 4, R | N, 2);
	vdrv_desc(&f->d, 2, 0xdead00000000ull, 0, W | N, 3);
	vdrv_desc(&f->d, 3, DATA + 0x100, 4, W, 0);
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(f->c.nr, 4);
	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 0, buf, 8), 4);
	assert_memory_equal(f->gm.host + DATA + 0x100, buf, 4);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, buf, 8), 4);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, false, 0, 100, iov, 4), 1);
	assert_ptr_equal(iov[0].iov_base, f->gm.host + DATA);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, true, 0, 100, iov, 4), 1);
	assert_ptr_equal(iov[0].iov_base, f->gm.host + DATA + 0x100);
}

static void virtq_push_writes_used_elem_and_idx(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	assert_int_equal(virtq_push(&f->q, &f->gm, 11, 4242), 0);
	assert_int_equal(virtq_push(&f->q, &f->gm, 3, 1), 0);
	assert_int_equal(vdrv_used_idx(&f->d), 2);
	vdrv_used_elem(&f->d, 0, &id, &len);
	assert_int_equal(id, 11);
	assert_int_equal(len, 4242);
	vdrv_used_elem(&f->d, 1, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 1);
}

static void virtq_push_not_ready_fails_efault(void **state)
{
	struct fixture *f = *state;

	f->q.ready = false;
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), -EFAULT);
	assert_int_equal(vdrv_used_idx(&f->d), 0);
}

/* A queue the driver disabled and shrank to nothing while the device still held a chain. */
static void virtq_push_disabled_queue_of_size_0_fails_efault(void **state)
{
	struct fixture *f = *state;

	f->q.ready = false;
	f->q.size = 0;
	f->q.next_used = 5;
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), -EFAULT);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
}

/* 16-bit indices run past 65535 back to 0 on both rings. */
static void virtq_pop_push_indices_wrap_around(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	f->q.next_avail = f->q.next_used = 65530;
	vdrv_set_avail_idx(&f->d, 65530);
	for (unsigned n = 0; n < 3 * QSIZE; n++) {
		uint16_t head = (uint16_t)(n % QSIZE);

		vdrv_desc(&f->d, head, DATA + head, 1, W, 0);
		vdrv_avail_push(&f->d, head);
		assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
		assert_int_equal(f->c.head, head);
		assert_int_equal(virtq_push(&f->q, &f->gm, head, n), 0);
		assert_int_equal(vdrv_used_idx(&f->d), (uint16_t)(65531 + n));
		vdrv_used_elem(&f->d, (uint16_t)(65530 + n), &id, &len);
		assert_int_equal(id, head);
		assert_int_equal(len, n);
		assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	}
	assert_int_equal(f->q.next_avail, (uint16_t)(65530 + 3 * QSIZE));
}

/* A whole queue's worth published at once, the avail idx having wrapped. */
static void virtq_pop_full_ring_across_wrap_accepted(void **state)
{
	struct fixture *f = *state;

	f->q.next_avail = 65535 - 3;
	vdrv_set_avail_idx(&f->d, 65535 - 3);
	for (uint16_t i = 0; i < QSIZE; i++) {
		vdrv_desc(&f->d, i, DATA, 1, W, 0);
		vdrv_avail_push(&f->d, i);
	}
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
		assert_int_equal(f->c.head, i);
	}
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
}

/* --- EVENT_IDX and interrupt suppression --- */

static void virtq_pop_event_idx_empty_ring_asks_for_next_buffer(void **state)
{
	struct fixture *f = *state;

	f->q.event_idx = true;
	f->q.next_avail = 7;
	vdrv_set_avail_idx(&f->d, 7);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	assert_int_equal(vdrv_avail_event(&f->d), 7);
}

static void virtq_pop_event_idx_moves_avail_event_past_taken(void **state)
{
	struct fixture *f = *state;

	f->q.event_idx = true;
	vdrv_desc(&f->d, 0, DATA, 4, R, 0);
	vdrv_avail_push(&f->d, 0);
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(vdrv_avail_event(&f->d), 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(vdrv_avail_event(&f->d), 2);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	assert_int_equal(vdrv_avail_event(&f->d), 2);
}

static void virtq_pop_without_event_idx_leaves_avail_event(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 4, R, 0);
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 0);
	assert_int_equal(vdrv_avail_event(&f->d), 0);
}

static void virtq_should_signal_no_event_idx_follows_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));
	vdrv_set_avail_flags(&f->d, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_false(virtq_should_signal(&f->q, &f->gm));
	vdrv_set_avail_flags(&f->d, 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));
}

static void virtq_should_signal_event_idx_first_always_then_used_event(void **state)
{
	struct fixture *f = *state;

	f->q.event_idx = true;
	vdrv_set_used_event(&f->d, 100); /* far away: still, the first one goes out */
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));

	/* used 1 -> 2, used_event 1: the driver asked for an interrupt once entry 1 is used. */
	vdrv_set_used_event(&f->d, 1);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));

	/* used 2 -> 3, used_event still 1: already signalled for it. */
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_false(virtq_should_signal(&f->q, &f->gm));

	/* used 3 -> 6 in one go, used_event 4 lies in [3, 6). */
	vdrv_set_used_event(&f->d, 4);
	for (int i = 0; i < 3; i++)
		assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));

	/* used 6 -> 7 with used_event 6 is the edge; 7 -> 8 with used_event 9 is not yet. */
	vdrv_set_used_event(&f->d, 6);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));
	vdrv_set_used_event(&f->d, 9);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_false(virtq_should_signal(&f->q, &f->gm));

	/* The NO_INTERRUPT flag means nothing with EVENT_IDX. */
	vdrv_set_avail_flags(&f->d, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vdrv_set_used_event(&f->d, 8);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));
}

static void virtq_should_signal_event_idx_across_wrap(void **state)
{
	struct fixture *f = *state;

	f->q.event_idx = true;
	f->q.next_used = 65534;
	assert_true(virtq_should_signal(&f->q, &f->gm)); /* first: signalled_used = 65534 */
	vdrv_set_used_event(&f->d, 65535);
	for (int i = 0; i < 3; i++) /* 65534 -> 1 */
		assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	assert_true(virtq_should_signal(&f->q, &f->gm));
	vdrv_set_used_event(&f->d, 3);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0); /* 1 -> 2 */
	assert_false(virtq_should_signal(&f->q, &f->gm));
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0); /* 2 -> 3 */
	assert_false(virtq_should_signal(&f->q, &f->gm));
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0); /* 3 -> 4 */
	assert_true(virtq_should_signal(&f->q, &f->gm));
}

/* --- virtq_check --- */

static int check_with(struct fixture *f, uint16_t size, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	struct virtq q = { .max_size = 256, .size = size, .desc = desc, .avail = avail,
			   .used = used };

	return virtq_check(&q, &f->gm);
}

static void virtq_check_good_layouts_accepted(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, 0x3000), 0);
	assert_int_equal(check_with(f, 1, 0, 2, 4), 0);
	assert_int_equal(check_with(f, 256, 0x10000, 0x11002, 0x12004), 0);
	/* The avail ring ending exactly at the end of RAM, used_event included. */
	assert_int_equal(check_with(f, 16, 0x1000, RAM - (4 + 2 * 16 + 2), 0x3000), 0);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, RAM - (4 + 8 * 16 + 4)), 0);
}

static void virtq_check_bad_sizes_refused(void **state)
{
	struct fixture *f = *state;
	const uint16_t bad[] = { 0, 3, 6, 12, 100, 255, 257, 512, 65535 };
	struct virtq q = { .max_size = 64, .size = 128, .desc = 0x1000, .avail = 0x2000,
			   .used = 0x3000 };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check_with(f, bad[i], 0x10000, 0x20000, 0x30000), -EINVAL);
	assert_int_equal(virtq_check(&q, &f->gm), -EINVAL); /* above max_size */
	q.size = 64;
	assert_int_equal(virtq_check(&q, &f->gm), 0);
}

static void virtq_check_misaligned_rings_refused(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check_with(f, 16, 0x1008, 0x2000, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1001, 0x2000, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2001, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, 0x3002), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, 0x3001), -EINVAL);
}

static void virtq_check_rings_outside_ram_refused(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check_with(f, 16, RAM, 0x2000, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 16, RAM - 0x80, 0x2000, 0x3000), -EINVAL); /* spans end */
	assert_int_equal(check_with(f, 16, 0x1000, RAM - 2, 0x3000), -EINVAL);
	/* Avail ring fits but for used_event. */
	assert_int_equal(check_with(f, 16, 0x1000, RAM - (4 + 32), 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, RAM - 4), -EINVAL);
	/* Used ring fits but for avail_event. */
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, RAM - (4 + 8 * 16)), -EINVAL);
	/* Addresses whose end overflows 64 bits. */
	assert_int_equal(check_with(f, 256, UINT64_MAX & ~15ull, 0x2000, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 256, 0x1000, UINT64_MAX & ~1ull, 0x3000), -EINVAL);
	assert_int_equal(check_with(f, 256, 0x1000, 0x2000, UINT64_MAX & ~3ull), -EINVAL);
	assert_int_equal(check_with(f, 16, 0x1000, 0x2000, 0x100000000ull), -EINVAL);
}

/* --- malformed chains: every one refused with -EINVAL, nothing used, nothing advanced --- */

static void pop_refused(struct fixture *f, uint16_t head)
{
	uint8_t before[8 * QSIZE + 6];

	memcpy(before, f->gm.host + f->d.used, sizeof(before));
	vdrv_avail_push(&f->d, head);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	assert_int_equal(f->q.next_avail, 0);
	assert_int_equal(f->q.next_used, 0);
	assert_memory_equal(f->gm.host + f->d.used, before, sizeof(before));
	/* Asking again gives the same answer: the device never gets past it on its own. */
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
}

static void virtq_pop_head_out_of_range_einval(void **state)
{
	struct fixture *f = *state;

	pop_refused(f, QSIZE);
	f->d.avail_idx = 0;
	pop_refused(f, 0xffff);
}

static void virtq_pop_next_out_of_range_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 8, R | N, 1);
	vdrv_desc(&f->d, 1, DATA, 8, R | N, QSIZE);
	pop_refused(f, 0);
}

static void virtq_pop_self_loop_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 4, DATA, 8, R | N, 4);
	pop_refused(f, 4);
}

static void virtq_pop_two_descriptor_loop_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 1, DATA, 8, R | N, 2);
	vdrv_desc(&f->d, 2, DATA, 8, R | N, 1);
	pop_refused(f, 1);
}

/* Every descriptor used once, then back to the head: one more than the queue holds. */
static void virtq_pop_chain_longer_than_queue_einval(void **state)
{
	struct fixture *f = *state;

	for (uint16_t i = 0; i < QSIZE; i++)
		vdrv_desc(&f->d, i, DATA, 1, W | N, (uint16_t)((i + 1) % QSIZE));
	pop_refused(f, 0);
}

/* The same with zero-length buffers, which cost the walk no memory check. */
static void virtq_pop_loop_of_empty_buffers_einval(void **state)
{
	struct fixture *f = *state;

	for (uint16_t i = 0; i < QSIZE; i++)
		vdrv_desc(&f->d, i, 0, 0, R | N, (uint16_t)((i + 5) % QSIZE));
	pop_refused(f, 3);
}

static void virtq_pop_buffer_outside_ram_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 8, R | N, 1);
	vdrv_desc(&f->d, 1, RAM, 1, W, 0);
	pop_refused(f, 0);
}

static void virtq_pop_buffer_spanning_end_of_ram_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, RAM - 16, 17, W, 0);
	pop_refused(f, 0);
}

static void virtq_pop_buffer_addr_plus_len_overflows_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, UINT64_MAX - 10, 100, R, 0);
	pop_refused(f, 0);
	f->d.avail_idx = 0;
	vdrv_desc(&f->d, 0, 0, UINT32_MAX, W, 0);
	pop_refused(f, 0);
}

static void virtq_pop_readable_after_writable_einval(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 8, R | N, 1);
	vdrv_desc(&f->d, 1, DATA + 8, 8, W | N, 2);
	vdrv_desc(&f->d, 2, DATA + 16, 8, R, 0);
	pop_refused(f, 0);
}

static void virtq_pop_indirect_descriptor_einval(void **state)
{
	struct fixture *f = *state;

	/* A well-formed indirect table: still refused, kiln does not offer INDIRECT_DESC. */
	vdrv_desc(&f->d, 0, DATA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	memset(f->gm.host + DATA, 0, 16);
	pop_refused(f, 0);
	f->d.avail_idx = 0;
	vdrv_desc(&f->d, 0, DATA, 8, R | N, 1);
	vdrv_desc(&f->d, 1, DATA, 16, VIRTQ_DESC_F_INDIRECT | W, 0);
	pop_refused(f, 0);
}

static void virtq_pop_avail_idx_more_than_size_ahead_einval(void **state)
{
	struct fixture *f = *state;

	for (uint16_t i = 0; i < QSIZE; i++)
		vdrv_desc(&f->d, i, DATA, 1, W, 0);
	vdrv_set_avail_idx(&f->d, QSIZE + 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	vdrv_set_avail_idx(&f->d, 0x8000);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	vdrv_set_avail_idx(&f->d, 0xffff); /* "behind" the device: as far ahead as it gets */
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	assert_int_equal(f->q.next_avail, 0);
	vdrv_set_avail_idx(&f->d, QSIZE); /* exactly one queue's worth is fine */
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
}

/* A bad chain behind a good one: the good one is served, the bad one refused. */
static void virtq_pop_good_then_bad_serves_good_only(void **state)
{
	struct fixture *f = *state;

	vdrv_desc(&f->d, 0, DATA, 8, W, 0);
	vdrv_desc(&f->d, 1, DATA, 8, W | N, 1);
	vdrv_avail_push(&f->d, 0);
	vdrv_avail_push(&f->d, 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	assert_int_equal(f->q.next_avail, 1);
}

/* Rings the driver moved out of RAM behind the device's back (the check is bypassed). */
static void virtq_rings_outside_ram_fail_without_touching(void **state)
{
	struct fixture *f = *state;

	f->q.desc = RAM - 16;
	vdrv_avail_push(&f->d, 1); /* descriptor 1 lies past the end */
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	f->q.used = RAM + 0x1000;
	f->q.event_idx = true;
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), -EFAULT);
	f->q.avail = UINT64_MAX - 1;
	/* An index that cannot be read is a broken ring, not an empty one. */
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	assert_true(virtq_should_signal(&f->q, &f->gm)); /* when unsure, signal */
}

/* A buffer in a poisoned page breaks no ring rule: the chain pops, its data cannot be had. */
static void virtq_buffer_in_poisoned_page_pops_data_refused(void **state)
{
	struct fixture *f = *state;
	struct poison_log log;
	struct iovec iov[4];
	uint8_t buf[32];

	assert_int_equal(poison_log_init(&log), 0);
	f->gm.poison = &log;
	assert_int_equal(poison_log_add(&log, DATA + PAGE, PAGE, POISON_INJECTED), 0);
	vdrv_desc(&f->d, 0, DATA + PAGE - 16, 32, R | N, 1);
	vdrv_desc(&f->d, 1, DATA + 2 * PAGE, 8, W, 0);
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
	assert_int_equal(f->c.nr, 2);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, false, 0, 32, iov, 4), -EHWPOISON);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, true, 0, 8, iov, 4), 1);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, buf, 32), 0);
	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 0, buf, 8), 8);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 8), 0);
	/* The rings themselves poisoned: the queue cannot go on. */
	assert_int_equal(poison_log_add(&log, QBASE, PAGE, POISON_HOST), 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), -EINVAL);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 8), -EFAULT);
	assert_true(virtq_should_signal(&f->q, &f->gm));
	f->gm.poison = NULL;
	poison_log_destroy(&log);
}

/* The MMIO gap between 3.25 GiB and 4 GiB is not RAM, though RAM lies on both sides. */
static void virtq_pop_buffer_in_mmio_gap_einval(void **state)
{
	struct guest_memory gm;
	struct vdrv_queue d;
	struct virtq q = { .max_size = 16 };
	struct virtq_chain *c = malloc(sizeof(*c));
	const uint64_t gap = LAYOUT_MMIO_GAP_START, hi = LAYOUT_MMIO_GAP_END;
	const struct { uint64_t addr; uint32_t len; int want; } cases[] = {
		{ gap - 8, 8, 1 },   { hi, 8, 1 },          { gap - 8, 9, -EINVAL },
		{ gap, 1, -EINVAL }, { hi - 1, 2, -EINVAL }, { gap + 0x1000, 4, -EINVAL },
		{ gap - 0x1000, (uint32_t)(hi - gap) + 0x2000, -EINVAL },
	};

	assert_non_null(c);
	/* A sparse memfd: only the pages touched below are ever allocated. */
	assert_int_equal(guest_memory_create(&gm, 4ull << 30, false), 0);
	assert_int_equal(gm.nr_regions, 2);
	vdrv_queue_init(&d, &gm, 16, QBASE);
	vdrv_queue_apply(&d, &q);
	assert_int_equal(virtq_check(&q, &gm), 0);
	q.ready = true;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		q.next_avail = 0;
		d.avail_idx = 0;
		vdrv_desc(&d, 0, cases[i].addr, cases[i].len, W, 0);
		vdrv_avail_push(&d, 0);
		assert_int_equal(virtq_pop(&q, &gm, c), cases[i].want);
	}
	/* Rings in the gap are refused too; above 4 GiB they are fine. */
	q.desc = gap;
	assert_int_equal(virtq_check(&q, &gm), -EINVAL);
	q.desc = hi;
	assert_int_equal(virtq_check(&q, &gm), 0);
	guest_memory_destroy(&gm);
	free(c);
}

/* --- reading and writing through a chain --- */

/* The readable part's bytes, in chain order. */
static uint8_t mixed_byte(int i)
{
	return (uint8_t)(0x40 + i);
}

/* Readable 5 + 7 + 3 bytes, writable 6 + 10 bytes, each surrounded by canaries. */
static void pop_mixed_chain(struct fixture *f)
{
	memset(f->gm.host + DATA, 0xcc, 0x1100);
	for (int i = 0; i < 15; i++)
		f->gm.host[DATA + (i < 5 ? 0x100 + i : i < 12 ? 0x200 + i - 5 : 0x300 + i - 12)] =
			mixed_byte(i);
	vdrv_desc(&f->d, 0, DATA + 0x100, 5, R | N, 1);
	vdrv_desc(&f->d, 1, DATA + 0x200, 7, R | N, 2);
	vdrv_desc(&f->d, 2, DATA + 0x300, 3, R | N, 3);
	vdrv_desc(&f->d, 3, DATA + 0x400, 6, W | N, 4);
	vdrv_desc(&f->d, 4, DATA + 0xffa, 10, W, 0); /* crosses into the next page */
	vdrv_avail_push(&f->d, 0);
	assert_int_equal(virtq_pop(&f->q, &f->gm, &f->c), 1);
}

static void virtq_chain_read_spans_buffers_stops_at_readable_end(void **state)
{
	struct fixture *f = *state;
	uint8_t out[32], want[15];

	pop_mixed_chain(f);
	for (int i = 0; i < 15; i++)
		want[i] = mixed_byte(i);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, out, sizeof(out)), 15);
	assert_memory_equal(out, want, 15);
	assert_int_equal(out[15], 0xee); /* nothing from the writable part */
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 4, out, 4), 4);
	assert_memory_equal(out, want + 4, 4);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 12, out, 10), 3);
	assert_memory_equal(out, want + 12, 3);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 15, out, 10), 0);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, UINT64_MAX, out, 10), 0);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, out, 0), 0);
}

static void virtq_chain_write_stays_in_writable_buffers(void **state)
{
	struct fixture *f = *state;
	uint8_t src[64], page[0x1100];

	pop_mixed_chain(f);
	for (int i = 0; i < 64; i++)
		src[i] = (uint8_t)(0x80 + i);
	memcpy(page, f->gm.host + DATA, sizeof(page));
	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 0, src, sizeof(src)), 16);
	assert_memory_equal(f->gm.host + DATA + 0x400, src, 6);
	assert_memory_equal(f->gm.host + DATA + 0xffa, src + 6, 10);
	/* Everything else around is as it was: readable buffers and canaries. */
	memcpy(page + 0x400, src, 6);
	memcpy(page + 0xffa, src + 6, 10);
	assert_memory_equal(f->gm.host + DATA, page, sizeof(page));

	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 5, src, 3), 3);
	assert_memory_equal(f->gm.host + DATA + 0x405, src, 1);
	assert_memory_equal(f->gm.host + DATA + 0xffa, src + 1, 2);
	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 16, src, 3), 0);
	assert_int_equal(virtq_chain_write(&f->gm, &f->c, UINT64_MAX - 1, src, 3), 0);
}

static void virtq_chain_write_records_dirty_pages(void **state)
{
	struct fixture *f = *state;
	uint64_t bm[DIRTY_WORDS];
	uint8_t src[16] = { 0 }, out[16];

	pop_mixed_chain(f);
	clear_dirty(&f->gm);
	assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, out, sizeof(out)), 15);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 0); /* reading dirties nothing */

	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 0, src, 4), 4);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 1);
	assert_true(page_dirty(bm, DATA));

	assert_int_equal(virtq_chain_write(&f->gm, &f->c, 6, src, 10), 10);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 2);
	assert_true(page_dirty(bm, DATA + 0xfff));
	assert_true(page_dirty(bm, DATA + 0x1000));
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 0); /* taken means cleared */
}

static void virtq_push_records_used_ring_page_dirty(void **state)
{
	struct fixture *f = *state;
	uint64_t bm[DIRTY_WORDS];

	clear_dirty(&f->gm);
	assert_int_equal(virtq_push(&f->q, &f->gm, 0, 0), 0);
	guest_memory_take_dirty(&f->gm, bm);
	assert_true(page_dirty(bm, f->d.used));
	assert_int_equal(nr_dirty(bm), 1);
}

static void virtq_chain_iov_maps_exact_ranges(void **state)
{
	struct fixture *f = *state;
	struct iovec iov[8];
	uint64_t bm[DIRTY_WORDS];

	pop_mixed_chain(f);
	clear_dirty(&f->gm);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, false, 3, 100, iov, 8), 3);
	assert_ptr_equal(iov[0].iov_base, f->gm.host + DATA + 0x103);
	assert_int_equal(iov[0].iov_len, 2);
	assert_ptr_equal(iov[1].iov_base, f->gm.host + DATA + 0x200);
	assert_int_equal(iov[1].iov_len, 7);
	assert_ptr_equal(iov[2].iov_base, f->gm.host + DATA + 0x300);
	assert_int_equal(iov[2].iov_len, 3);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 0);

	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, true, 2, 8, iov, 8), 2);
	assert_ptr_equal(iov[0].iov_base, f->gm.host + DATA + 0x402);
	assert_int_equal(iov[0].iov_len, 4);
	assert_ptr_equal(iov[1].iov_base, f->gm.host + DATA + 0xffa);
	assert_int_equal(iov[1].iov_len, 4);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 1); /* 0xffa..0xffd: only the first page */

	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, true, 0, 16, iov, 1), -ENOSPC);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, true, 16, 16, iov, 8), 0);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, false, 0, 0, iov, 8), 0);
	assert_int_equal(virtq_chain_iov(&f->gm, &f->c, false, 0, 15, iov, 3), 3);
}

/* --- a deterministic storm of random rings --- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t random_addr(uint64_t *s)
{
	switch (rnd(s) % 6) {
	case 0:
		return rnd(s);
	case 1:
		return RAM - rnd(s) % 64;
	case 2:
		return UINT64_MAX - rnd(s) % 64;
	default:
		return DATA + rnd(s) % (RAM - DATA);
	}
}

/* Whatever the descriptors say, a popped chain lies in RAM and reads/writes stay inside it. */
static void virtq_pop_random_rings_never_escape_ram(void **state)
{
	struct fixture *f = *state;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	static uint8_t buf[QSIZE * 0x2000];
	unsigned ok = 0, bad = 0;

	for (unsigned iter = 0; iter < 20000; iter++) {
		int ret;

		for (uint16_t i = 0; i < QSIZE; i++) {
			uint64_t r = rnd(&s);
			uint16_t flags = (uint16_t)((r & 3) | (r % 64 ? 0 : VIRTQ_DESC_F_INDIRECT));
			uint16_t next = (uint16_t)(r % 32 == 1 ? r >> 16 : (r >> 16) % QSIZE);

			vdrv_desc(&f->d, i, random_addr(&s), (uint32_t)(rnd(&s) % 0x1200), flags,
				  next);
		}
		f->q.next_avail = (uint16_t)rnd(&s);
		f->q.event_idx = rnd(&s) & 1;
		vdrv_set_avail_idx(&f->d, (uint16_t)(f->q.next_avail + rnd(&s) % (QSIZE + 2)));
		for (uint16_t i = 0; i < QSIZE; i++)
			vdrv_store16(&f->d, f->d.avail + 4 + 2 * i,
				     (uint16_t)(rnd(&s) % 8 ? rnd(&s) % QSIZE : rnd(&s)));
		ret = virtq_pop(&f->q, &f->gm, &f->c);
		assert_true(ret == 0 || ret == 1 || ret == -EINVAL);
		if (ret < 0) {
			bad++;
			continue;
		}
		if (ret == 0)
			continue;
		ok++;
		assert_in_range(f->c.nr, 1, QSIZE);
		assert_true(f->c.head < QSIZE);
		for (unsigned i = 0; i < f->c.nr; i++) {
			const struct virtq_buf *b = &f->c.bufs[i];

			assert_int_equal(b->write, i >= f->c.nr_out);
			if (b->len)
				assert_non_null(guest_memory_ptr(&f->gm, b->gpa, b->len));
		}
		assert_int_equal(virtq_chain_read(&f->gm, &f->c, 0, buf, sizeof(buf)),
				 f->c.out_len);
		assert_int_equal(virtq_chain_write(&f->gm, &f->c, 0, buf, sizeof(buf)),
				 f->c.in_len);
		assert_int_equal(virtq_push(&f->q, &f->gm, f->c.head, (uint32_t)f->c.in_len), 0);
	}
	/* The storm reached both outcomes often enough to mean something. */
	assert_true(ok > 500);
	assert_true(bad > 5000);
}

/* --- guest_memory's record of the pages kiln wrote --- */

static void guest_memory_take_dirty_reports_kiln_writes_only(void **state)
{
	struct fixture *f = *state;
	uint64_t bm[DIRTY_WORDS];
	uint8_t b = 1;

	clear_dirty(&f->gm);
	f->gm.host[0x5000] = 1; /* the guest's own store: KVM's log sees it, not this record */
	assert_int_equal(guest_memory_read(&f->gm, 0x6000, &b, 1), 0);
	assert_non_null(guest_memory_ptr(&f->gm, 0x7000, 1));
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 0);

	assert_int_equal(guest_memory_write(&f->gm, 0x8fff, &b, 1), 0);
	assert_non_null(guest_memory_ptr_mut(&f->gm, 0xa000, 0x2001));
	guest_memory_mark_dirty(&f->gm, RAM - 1, 1);
	guest_memory_mark_dirty(&f->gm, RAM - 1, 2);   /* past the end: ignored */
	guest_memory_mark_dirty(&f->gm, UINT64_MAX, 1); /* ignored */
	guest_memory_mark_dirty(&f->gm, 0, 0);          /* ignored */
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 5);
	assert_true(page_dirty(bm, 0x8000));
	assert_true(page_dirty(bm, 0xa000));
	assert_true(page_dirty(bm, 0xb000));
	assert_true(page_dirty(bm, 0xc000));
	assert_true(page_dirty(bm, RAM - 1));
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(nr_dirty(bm), 0);
}

static int group_setup(void **state)
{
	/* The refusals log by design; keep the test output to the results. */
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(virtq_pop_empty_ring_returns_0),
		T(virtq_pop_not_ready_returns_0),
		T(virtq_pop_single_readable_buffer_one_buf),
		T(virtq_pop_readable_then_writable_splits_parts),
		T(virtq_pop_chain_as_long_as_queue_accepted),
		T(virtq_pop_several_chains_in_avail_order),
		T(virtq_pop_zero_length_buffer_anywhere_accepted_never_touched),
		T(virtq_push_writes_used_elem_and_idx),
		T(virtq_push_not_ready_fails_efault),
		T(virtq_push_disabled_queue_of_size_0_fails_efault),
		T(virtq_pop_push_indices_wrap_around),
		T(virtq_pop_full_ring_across_wrap_accepted),
		T(virtq_pop_event_idx_empty_ring_asks_for_next_buffer),
		T(virtq_pop_event_idx_moves_avail_event_past_taken),
		T(virtq_pop_without_event_idx_leaves_avail_event),
		T(virtq_should_signal_no_event_idx_follows_no_interrupt_flag),
		T(virtq_should_signal_event_idx_first_always_then_used_event),
		T(virtq_should_signal_event_idx_across_wrap),
		T(virtq_check_good_layouts_accepted),
		T(virtq_check_bad_sizes_refused),
		T(virtq_check_misaligned_rings_refused),
		T(virtq_check_rings_outside_ram_refused),
		T(virtq_pop_head_out_of_range_einval),
		T(virtq_pop_next_out_of_range_einval),
		T(virtq_pop_self_loop_einval),
		T(virtq_pop_two_descriptor_loop_einval),
		T(virtq_pop_chain_longer_than_queue_einval),
		T(virtq_pop_loop_of_empty_buffers_einval),
		T(virtq_pop_buffer_outside_ram_einval),
		T(virtq_pop_buffer_spanning_end_of_ram_einval),
		T(virtq_pop_buffer_addr_plus_len_overflows_einval),
		T(virtq_pop_readable_after_writable_einval),
		T(virtq_pop_indirect_descriptor_einval),
		T(virtq_pop_avail_idx_more_than_size_ahead_einval),
		T(virtq_pop_good_then_bad_serves_good_only),
		T(virtq_rings_outside_ram_fail_without_touching),
		cmocka_unit_test(virtq_pop_buffer_in_mmio_gap_einval),
		T(virtq_buffer_in_poisoned_page_pops_data_refused),
		T(virtq_chain_read_spans_buffers_stops_at_readable_end),
		T(virtq_chain_write_stays_in_writable_buffers),
		T(virtq_chain_write_records_dirty_pages),
		T(virtq_push_records_used_ring_page_dirty),
		T(virtq_chain_iov_maps_exact_ranges),
		T(virtq_pop_random_rings_never_escape_ram),
		T(guest_memory_take_dirty_reports_kiln_writes_only),
	};
#undef T

	return cmocka_run_group_tests_name("queue.c", tests, group_setup, NULL);
}
