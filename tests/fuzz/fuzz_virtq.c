/*
 * libFuzzer target for devices/virtio/queue.c: the input is a queue configuration and a
 * program a malicious guest runs against one split virtqueue in a 64 KiB guest memory, with the
 * device popping, reading, writing and pushing chains in between.
 *
 * Input: 18 bytes of configuration, then operations (see run_op):
 *   [0] queue size: < 0xf0 gives 1 << (b % 9), else b itself (mostly not a power of two)
 *   [1] bit 0: EVENT_IDX negotiated
 *   [2..13] desc, avail, used: three little-endian u32, each taken modulo RAM + 256
 *   [14..17] the device's next_avail and next_used (little-endian u16)
 * The queue goes ready only if virtq_check accepts it, as the transport does. After a pop
 * returns -EINVAL the device stops using the queue until a "reset" operation.
 *
 * Traps when kiln breaks a promise: a pop result other than -EINVAL, 0 or 1; a chain with a
 * buffer outside RAM, more buffers than the queue, or a readable buffer after a writable one;
 * a chain read or write that moves a byte count other than what the chain holds; an iovec
 * outside the guest mapping; a written page missing from the dirty record. Guard pages around
 * the guest mapping turn a stray access into a crash. KILN_FUZZ_LOG=1 keeps kiln's log on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../unit/virtio_driver.h"
#include "fuzz_input.h"
#include "log.h"
#include "memory.h"
#include "queue.h"
#include "virtio.h"

#define RAM (64ull << 10)
#define PAGE 4096ull
#define DIRTY_WORDS ((RAM / PAGE + 63) / 64)
#define SCRATCH (VIRTQ_MAX_SIZE * 0x10000ull)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz {
	struct guest_memory gm;
	struct vdrv_queue d;  /* the guest's view of the queue */
	struct virtq q;       /* the device's */
	struct virtq_chain c; /* the last chain popped */
	bool have_chain;
	bool broken;          /* a pop said -EINVAL: the device needs a reset */
	uint8_t scratch[SCRATCH];
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* libFuzzer's entry points take no context: the harness's one state, set up once. */
static struct fuzz fz;

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "fuzz_virtq: %s\n", what);
	__builtin_trap();
}

/* A guest-physical address: mostly in RAM, sometimes at its edge or far outside. */
static uint64_t addr(struct input *in)
{
	return fuzz_addr(in, RAM);
}

/* The pages [gpa, gpa+len) covers are all on kiln's dirty record. */
static void check_dirty(const uint64_t *bm, uint64_t gpa, uint64_t len)
{
	for (uint64_t pg = gpa / PAGE; pg <= (gpa + len - 1) / PAGE; pg++)
		if (!(bm[pg / 64] & (1ull << (pg % 64))))
			fail("a page kiln wrote is not on the dirty record");
}

/* Checks a freshly popped chain against virtq_pop's promises. */
static void check_chain(const struct virtq_chain *c)
{
	uint64_t out = 0, in = 0;

	if (c->nr == 0 || c->nr > fz.q.size || c->nr_out > c->nr || c->head >= fz.q.size)
		fail("chain shape");
	for (unsigned i = 0; i < c->nr; i++) {
		const struct virtq_buf *b = &c->bufs[i];

		if (b->write != (i >= c->nr_out))
			fail("a readable buffer after a writable one");
		if (b->len && !guest_memory_ptr(&fz.gm, b->gpa, b->len))
			fail("a buffer outside RAM");
		*(b->write ? &in : &out) += b->len;
	}
	if (out != c->out_len || in != c->in_len)
		fail("chain lengths");
}

static uint64_t part_left(uint64_t part, uint64_t off, uint64_t len)
{
	return off >= part ? 0 : len < part - off ? len : part - off;
}

/* Reads or writes [off, off+len) of the last chain through every helper. */
static void chain_io(uint64_t off, uint64_t len, unsigned max_iov)
{
	const struct virtq_chain *c = &fz.c;
	uint64_t bm[DIRTY_WORDS], want, o;
	int n;

	if (len > SCRATCH)
		len = SCRATCH;
	want = part_left(c->out_len, off, len);
	if (virtq_chain_read(&fz.gm, c, off, fz.scratch, len) != want)
		fail("chain read moved the wrong number of bytes");

	guest_memory_take_dirty(&fz.gm, bm);
	want = part_left(c->in_len, off, len);
	if (virtq_chain_write(&fz.gm, c, off, fz.scratch, len) != want)
		fail("chain write moved the wrong number of bytes");
	guest_memory_take_dirty(&fz.gm, bm);
	/* Every page the write covered is on the record. */
	o = off;
	for (unsigned i = c->nr_out; i < c->nr && want; i++) {
		uint64_t s = c->bufs[i].len, k;

		if (o >= s) {
			o -= s;
			continue;
		}
		k = s - o < want ? s - o : want;
		check_dirty(bm, c->bufs[i].gpa + o, k);
		want -= k;
		o = 0;
	}

	for (int w = 0; w < 2; w++) {
		uint64_t total = 0;

		n = virtq_chain_iov(&fz.gm, c, w, off, len, fz.iov, (int)max_iov);
		if (n == -ENOSPC)
			continue;
		if (n < 0 || (unsigned)n > max_iov)
			fail("chain iov count");
		for (int i = 0; i < n; i++) {
			uint8_t *b = fz.iov[i].iov_base;

			if (fz.iov[i].iov_len == 0 || b < fz.gm.host || b >= fz.gm.host + RAM ||
			    fz.iov[i].iov_len > (uint64_t)(fz.gm.host + RAM - b))
				fail("an iovec outside the guest mapping");
			total += fz.iov[i].iov_len;
		}
		if (total != part_left(w ? c->in_len : c->out_len, off, len))
			fail("chain iov length");
	}
}

/* Brings the device's queue back to the guest's layout, as a reset and set-up would. */
static void setup_queue(uint16_t next_avail, uint16_t next_used, bool event_idx)
{
	virtq_reset(&fz.q);
	vdrv_queue_apply(&fz.d, &fz.q);
	fz.q.event_idx = event_idx;
	fz.q.ready = virtq_check(&fz.q, &fz.gm) == 0;
	fz.q.next_avail = next_avail;
	fz.q.next_used = next_used;
	fz.have_chain = fz.broken = false;
}

static void run_op(struct input *in, uint8_t op)
{
	uint64_t a, b;
	int ret;

	switch (op % 12) {
	case 0: { /* the guest writes bytes anywhere in RAM */
		uint64_t off = take(in, 2) % RAM;
		size_t len = (size_t)take(in, 1);

		len = len < in->n ? len : in->n;
		len = len < RAM - off ? len : RAM - off;
		memcpy(fz.gm.host + off, in->p, len);
		in->p += len;
		in->n -= len;
		break;
	}
	case 1: /* a descriptor */
	case 2: {
		uint16_t i = (uint16_t)take(in, 1);
		uint64_t gpa = addr(in);
		uint32_t len = (uint32_t)take(in, 2);
		uint8_t flags = (uint8_t)take(in, 1);
		uint16_t next = (uint16_t)take(in, 1);

		if (flags & 0x80)
			len |= (uint32_t)take(in, 2) << 16;
		if (fz.d.size)
			vdrv_desc(&fz.d, (uint16_t)(i % fz.d.size), gpa, len, flags & 7, next);
		break;
	}
	case 3: /* publish a head */
		if (fz.d.size)
			vdrv_avail_push(&fz.d, (uint16_t)take(in, 2));
		break;
	case 4: /* the avail idx, anything */
		vdrv_set_avail_idx(&fz.d, (uint16_t)take(in, 2));
		break;
	case 5: /* used_event, avail flags */
		if (fz.d.size)
			vdrv_set_used_event(&fz.d, (uint16_t)take(in, 2));
		vdrv_set_avail_flags(&fz.d, (uint16_t)take(in, 1));
		break;
	case 6: /* the device takes a chain */
	case 7:
		if (fz.broken)
			break;
		ret = virtq_pop(&fz.q, &fz.gm, &fz.c);
		if (ret < 0) {
			if (ret != -EINVAL)
				fail("pop error other than -EINVAL");
			fz.broken = true;
			fz.have_chain = false;
			break;
		}
		if (ret > 1)
			fail("pop result");
		if (ret == 1) {
			check_chain(&fz.c);
			fz.have_chain = true;
			chain_io(0, UINT64_MAX, VIRTQ_MAX_SIZE);
		}
		break;
	case 8: /* the device uses the last chain, or anything */
		a = take(in, 1);
		b = take(in, 4);
		if (fz.have_chain && !(a & 1))
			a = fz.c.head;
		if (fz.q.ready && virtq_push(&fz.q, &fz.gm, (uint16_t)a, (uint32_t)b) < 0)
			fail("push on a checked used ring");
		if (fz.q.ready)
			(void)virtq_should_signal(&fz.q, &fz.gm);
		break;
	case 9: /* a part of the chain, through a few iovecs */
		a = take(in, 3);
		b = take(in, 3);
		if (fz.have_chain)
			chain_io(a, b, 1 + (unsigned)take(in, 1) % 8);
		break;
	case 10: /* reset and set the queue up again */
		setup_queue((uint16_t)take(in, 2), (uint16_t)take(in, 2), take(in, 1) & 1);
		break;
	default:
		if (fz.q.ready)
			(void)virtq_should_signal(&fz.q, &fz.gm);
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (log_setup(NULL, getenv("KILN_FUZZ_LOG") ? LOG_DEBUG : LOG_OFF, false, false) < 0 ||
	    guest_memory_create(&fz.gm, RAM, false) < 0)
		fail("set-up");
	/* Guard pages on both sides, where the address space has room for them. */
	mmap(fz.gm.host - PAGE, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	     -1, 0);
	mmap(fz.gm.host + RAM, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	     -1, 0);
	fz.q.max_size = VIRTQ_MAX_SIZE;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint64_t bm[DIRTY_WORDS];
	uint8_t b0 = (uint8_t)take(&in, 1), flags = (uint8_t)take(&in, 1);
	uint16_t qsize = b0 < 0xf0 ? (uint16_t)(1u << (b0 % 9)) : b0;
	uint64_t desc, avail, used;
	uint16_t next_avail, next_used;

	memset(fz.gm.host, 0, RAM);
	guest_memory_take_dirty(&fz.gm, bm);
	desc = take(&in, 4) % (RAM + 256);
	avail = take(&in, 4) % (RAM + 256);
	used = take(&in, 4) % (RAM + 256);
	next_avail = (uint16_t)take(&in, 2);
	next_used = (uint16_t)take(&in, 2);
	fz.d = (struct vdrv_queue){ .gm = &fz.gm, .size = qsize, .desc = desc, .avail = avail,
				    .used = used, .avail_idx = next_avail };
	vdrv_set_avail_idx(&fz.d, next_avail);
	setup_queue(next_avail, next_used, flags & 1);
	while (in.n)
		run_op(&in, (uint8_t)take(&in, 1));
	return 0;
}
