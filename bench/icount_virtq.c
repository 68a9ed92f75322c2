/* icount_virtq: one virtqueue pop and push (devices/virtio/queue.c) on a fake guest memory, and
 * the same ring bytes moved with plain loads and stores, for callgrind's instruction counts
 * (bench/icount.sh). Not a timing benchmark.
 *
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=virtq_pop \
 *     --toggle-collect=virtq_push --toggle-collect='icount_*' icount_virtq N
 *
 * A 256-entry split queue with EVENT_IDX (what Linux guests negotiate) in 1 MiB of guest memory
 * from guest_memory_create, with an empty poison log attached, as a VM's is. The driver (the
 * test helpers' fake one, tests/unit/virtio_driver.h) fills the avail ring between batches, not
 * counted. Chains: one readable 512-byte buffer; or a 16-byte readable header then a 512-byte
 * writable buffer. Each figure: a dump named "-" (what came before), N pops and pushes, a dump
 * "FIGURE N". Exit 0, or 1 when a pop or push is not what the driver set up. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/callgrind.h>

#include "../tests/unit/virtio_driver.h"
#include "log.h"
#include "memory.h"
#include "poison_log.h"
#include "queue.h"
#include "virtio.h"

#define RAM (1ull << 20)
#define QSIZE 256
#define RING 0x1000ull
#define BUFS 0x10000ull
#define BUF_LEN 512
#define HDR_LEN 16
#define WARM 64

struct icount_virtq {
	struct guest_memory gm;
	struct poison_log log;
	struct vdrv_queue d;
	struct virtq q;
	struct virtq_chain c;
	uint8_t desc[2][16]; /* the floor's copy of the descriptors */
	bool bad;
};

/* kiln: one chain off the avail ring and back on the used ring. */
static void pop_push(struct icount_virtq *x, uint16_t want_nr)
{
	x->bad |= virtq_pop(&x->q, &x->gm, &x->c) != 1 || x->c.nr != want_nr;
	x->bad |= virtq_push(&x->q, &x->gm, x->c.head, BUF_LEN) != 0;
}

/* The floor: the same ring traffic as a pop and push of a chain of nr descriptors (avail idx,
 * the head, the descriptors, avail_event, the used element and used idx), as plain loads and
 * stores with the one check that the ring is not empty. */
__attribute__((noinline)) void icount_floor(struct icount_virtq *x, unsigned nr)
{
	uint8_t *h = x->gm.host;
	uint16_t idx, head, next_avail = x->q.next_avail, used_idx;
	uint32_t elem[2];

	memcpy(&idx, h + x->q.avail + 2, 2);
	if (idx == next_avail) {
		x->bad = true;
		return;
	}
	memcpy(&head, h + x->q.avail + 4 + 2 * (next_avail % QSIZE), 2);
	for (unsigned i = 0; i < nr; i++)
		memcpy(x->desc[i], h + x->q.desc + 16 * ((head + i) % QSIZE), 16);
	x->q.next_avail = ++next_avail;
	memcpy(h + x->q.used + 4 + 8 * QSIZE, &next_avail, 2);
	elem[0] = head;
	elem[1] = BUF_LEN;
	memcpy(h + x->q.used + 4 + 8 * (x->q.next_used % QSIZE), elem, 8);
	used_idx = ++x->q.next_used;
	memcpy(h + x->q.used + 2, &used_idx, 2);
}

/* kiln's pop and push, count times, the driver refilling the avail ring as it empties. */
static void run(struct icount_virtq *x, unsigned nr, unsigned long count, bool floor)
{
	uint16_t chains = QSIZE / nr;

	for (unsigned long done = 0; done < count;) {
		unsigned long batch = count - done < chains ? count - done : chains;

		for (uint16_t k = 0; k < batch; k++)
			vdrv_avail_push(&x->d, (uint16_t)(k * nr));
		for (unsigned long k = 0; k < batch; k++) {
			if (floor)
				icount_floor(x, nr);
			else
				pop_push(x, (uint16_t)nr);
		}
		done += batch;
	}
}

static void figure(struct icount_virtq *x, const char *name, unsigned nr, unsigned long n,
		   bool floor)
{
	char label[96];

	run(x, nr, WARM, floor);
	CALLGRIND_DUMP_STATS_AT("-");
	run(x, nr, n, floor);
	snprintf(label, sizeof(label), "%s %lu", name, n);
	CALLGRIND_DUMP_STATS_AT(label);
}

/* Descriptors for chains of nr: chain k starts at descriptor k*nr. */
static void lay_out(struct icount_virtq *x, unsigned nr)
{
	for (uint16_t k = 0; k < QSIZE / nr; k++) {
		uint64_t buf = BUFS + (uint64_t)k * 1024;
		uint16_t i = (uint16_t)(k * nr);

		if (nr == 1) {
			vdrv_desc(&x->d, i, buf, BUF_LEN, 0, 0);
		} else {
			vdrv_desc(&x->d, i, buf, HDR_LEN, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
			vdrv_desc(&x->d, (uint16_t)(i + 1), buf + 64, BUF_LEN, VIRTQ_DESC_F_WRITE, 0);
		}
	}
}

static int setup(struct icount_virtq *x)
{
	if (log_setup(NULL, LOG_INFO, false, false) < 0 || poison_log_init(&x->log) < 0 ||
	    guest_memory_create(&x->gm, RAM, false) < 0)
		return -1;
	x->gm.poison = &x->log;
	vdrv_queue_init(&x->d, &x->gm, QSIZE, RING);
	x->q = (struct virtq){ .max_size = VIRTQ_MAX_SIZE };
	vdrv_queue_apply(&x->d, &x->q);
	x->q.event_idx = true;
	x->q.ready = virtq_check(&x->q, &x->gm) == 0;
	return x->q.ready ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct icount_virtq x;
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;

	if (setup(&x) < 0) {
		fprintf(stderr, "icount_virtq: set-up failed\n");
		return 1;
	}
	lay_out(&x, 1);
	figure(&x, "virtq_pop_push_1desc", 1, n, false);
	figure(&x, "floor_virtq_1desc", 1, n, true);
	lay_out(&x, 2);
	figure(&x, "virtq_pop_push_2desc", 2, n, false);
	figure(&x, "floor_virtq_2desc", 2, n, true);
	guest_memory_destroy(&x.gm);
	poison_log_destroy(&x.log);
	if (x.bad) {
		fprintf(stderr, "icount_virtq: a pop or push was not what the driver set up\n");
		return 1;
	}
	return 0;
}
