/*
 * libFuzzer target for the virtio-mmio transport (devices/virtio/mmio.c) with the devices behind
 * it: the input is what a malicious guest does to one device, MMIO register reads and writes,
 * ring and buffer contents in a 64 KiB guest memory, and queue notifications. No KVM (vm_fd
 * -1): notifications are QueueNotify writes and interrupts are only counted.
 *
 * Devices, made once: 0 virtio-rng, 1 virtio-blk Sync (read-write, Writeback), 2 virtio-blk
 * Async on io_uring (read-write, Writeback), 3 virtio-blk Async (read-only, Unsafe). The drives'
 * backing file is one 8 KiB memfd: nothing reaches the disk. Async completions come back
 * through the event loop, pumped by an operation and at the end of each input.
 *
 * Input: byte 0 picks the device, then operations (see run_op). Every input starts from reset
 * devices, zeroed RAM and a zeroed drive, and ends with a reset (which waits for requests in
 * flight). Traps when a reset leaves requests in flight or the drive changed size; guard pages
 * around guest RAM turn a stray access into a crash. KILN_FUZZ_LOG=1 keeps kiln's log on and
 * prints where each input left the device.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../unit/virtio_driver.h"
#include "fuzz_input.h"
#include "blk.h"
#include "device_config.h"
#include "event_loop.h"
#include "log.h"
#include "memory.h"
#include "rng.h"
#include "virtio.h"

#define RAM (64ull << 10)
#define PAGE 4096ull
#define DRIVE_BYTES (16 * 512)
#define NR_DEVICES 4
/* Where the request helper puts a virtio-blk request's pieces. */
#define REQ_HDR 0xe000ull
#define REQ_DATA 0x8000ull
#define REQ_STATUS 0xe100ull

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz {
	struct guest_memory gm;
	struct event_loop loop;
	int drive;              /* the memfd behind the drives */
	struct virtio_rng rng;
	struct virtio_blk blk[3];
	struct virtio_mmio *dev[NR_DEVICES];
	struct vdrv_queue q;    /* the guest's view of queue 0 of the device under test */
	uint16_t next_desc;     /* where the request helper puts its next chain */
	bool log;               /* KILN_FUZZ_LOG: kiln's log and a summary of each input */
};

/* libFuzzer's entry points take no context: the harness's one state, set up once. */
static struct fuzz fz;

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "fuzz_virtio_mmio: %s\n", what);
	__builtin_trap();
}

/* A guest-physical address: mostly in RAM, sometimes at its edge or far outside. */
static uint64_t addr(struct input *in)
{
	return fuzz_addr(in, RAM);
}

static const uint64_t regs[] = {
	VDRV_MAGIC, VDRV_VERSION, VDRV_DEVICE_ID, VDRV_VENDOR_ID, VDRV_DEVICE_FEATURES,
	VDRV_DEVICE_FEATURES_SEL, VDRV_DRIVER_FEATURES, VDRV_DRIVER_FEATURES_SEL, VDRV_QUEUE_SEL,
	VDRV_QUEUE_NUM_MAX, VDRV_QUEUE_NUM, VDRV_QUEUE_READY, VDRV_QUEUE_NOTIFY,
	VDRV_INTERRUPT_STATUS, VDRV_INTERRUPT_ACK, VDRV_STATUS, VDRV_QUEUE_DESC_LOW,
	VDRV_QUEUE_DESC_HIGH, VDRV_QUEUE_DRIVER_LOW, VDRV_QUEUE_DRIVER_HIGH,
	VDRV_QUEUE_DEVICE_LOW, VDRV_QUEUE_DEVICE_HIGH, VDRV_SHM_LEN_LOW, VDRV_CONFIG_GENERATION,
};

static uint64_t reg(struct input *in)
{
	uint8_t r = (uint8_t)take(in, 1);

	if (r & 0x80)
		return take(in, 2) % 0x1100; /* anywhere in the window, and a little past it */
	return regs[r % (sizeof(regs) / sizeof(regs[0]))];
}

static uint32_t access_len(uint8_t b)
{
	return (const uint32_t[]){ 4, 1, 2, 8 }[b & 3];
}

/*
 * What the event loop does in one round. With requests in flight it waits for the next event
 * (io_uring hands reads that fault on guest pages to a worker: they finish a little later),
 * so that completions reach the device in the same input, whatever the host's timing.
 */
static void pump(void)
{
	struct epoll_event evs[8];
	bool busy = fz.blk[1].inflight || fz.blk[2].inflight;
	int n = epoll_wait(fz.loop.epfd, evs, 8, busy ? 1000 : 0);

	for (int i = 0; i < n; i++) {
		struct event_handler *h = &fz.loop.handlers[evs[i].data.u32];

		if (h->fn)
			h->fn(h->opaque, h->fd, evs[i].events);
	}
}

struct vdrv_seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

/* One virtio-blk request from the free descriptors: header, data, status. */
static void blk_request(struct virtio_mmio *t, struct input *in)
{
	uint8_t k = (uint8_t)take(in, 1);
	uint32_t type = (const uint32_t[]){ 0, 1, 4, 8, 0, 1, 2, 0 }[k & 7];
	uint64_t sector = k & 0x80 ? take(in, 8) : take(in, 1) % 20;
	uint32_t len = k & 0x40 ? (uint32_t)take(in, 2) : (uint32_t)(take(in, 1) % 12) * 512;
	bool split = k & 0x20, data_first = k & 0x08;
	uint16_t sz = fz.q.size, d = fz.next_desc;
	uint8_t hdr[16] = { 0 };
	struct vdrv_seg seg[4];
	uint16_t dir;
	unsigned n = 0;

	if (k & 0x10)
		type = (uint32_t)take(in, 4);
	dir = type == 1 ? 0 : VIRTQ_DESC_F_WRITE; /* OUT's data is readable */
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(fz.gm.host + REQ_HDR, hdr, 16);
	seg[n++] = (struct vdrv_seg){ REQ_HDR, 16, 0 };
	if (len && split) {
		seg[n++] = (struct vdrv_seg){ REQ_DATA, len / 2, dir };
		seg[n++] = (struct vdrv_seg){ REQ_DATA + 0x3000, len - len / 2, dir };
	} else if (len) {
		seg[n++] = (struct vdrv_seg){ REQ_DATA, len, dir };
	}
	if (!data_first || n == 1)
		seg[n++] = (struct vdrv_seg){ REQ_STATUS, 1, VIRTQ_DESC_F_WRITE };
	if (!sz)
		return;
	for (unsigned i = 0; i < n; i++) {
		uint16_t di = (uint16_t)((d + i) % sz);

		vdrv_desc(&fz.q, di, seg[i].gpa, seg[i].len,
			  (uint16_t)(seg[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			  (uint16_t)((di + 1) % sz));
	}
	fz.next_desc = (uint16_t)((d + n) % sz);
	vdrv_avail_push(&fz.q, d);
	vdrv_notify(t, 0);
}

static void run_op(struct virtio_mmio *t, struct input *in, uint8_t op)
{
	uint8_t b[8];
	uint64_t off;
	uint32_t v, len;

	switch (op % 13) {
	case 0: /* a register write */
	case 1:
		off = reg(in);
		len = access_len((uint8_t)take(in, 1));
		v = (uint32_t)take(in, 4);
		memcpy(b, &v, 4);
		memcpy(b + 4, &v, 4);
		virtio_mmio_bus_ops.write(t, off, b, len);
		break;
	case 2: /* a register read */
		off = reg(in);
		virtio_mmio_bus_ops.read(t, off, b, access_len((uint8_t)take(in, 1)));
		break;
	case 3: { /* config space */
		uint8_t k = (uint8_t)take(in, 1);

		off = VIRTIO_MMIO_CONFIG + take(in, 1) % 40;
		v = (uint32_t)take(in, 4);
		memcpy(b, &v, 4);
		memcpy(b + 4, &v, 4);
		if (k & 4)
			virtio_mmio_bus_ops.write(t, off, b, access_len(k));
		else
			virtio_mmio_bus_ops.read(t, off, b, access_len(k));
		break;
	}
	case 4: { /* a well-behaved driver's set-up, with a queue somewhere in RAM */
		uint8_t k = (uint8_t)take(in, 1), f = (uint8_t)take(in, 1);
		uint64_t base = (take(in, 2) % RAM) & ~15ull;
		uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1);

		if (f & 1)
			features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
		if (f & 2)
			features |= VIRTIO_BIT(9); /* blk FLUSH */
		if (f & 4)
			features |= VIRTIO_BIT(5); /* blk RO */
		if (f & 8)
			features |= VIRTIO_BIT(2); /* blk SEG_MAX */
		if (f & 16)
			features |= VIRTIO_BIT(f >> 5 ? 28 + (f >> 5) : 1); /* not offered */
		vdrv_queue_init(&fz.q, &fz.gm, (uint16_t)(1u << (k % 9)), base);
		fz.next_desc = 0;
		(void)vdrv_start(t, features, &fz.q, 1);
		break;
	}
	case 5: { /* a descriptor */
		uint16_t i = (uint16_t)take(in, 1);
		uint64_t gpa = addr(in);
		uint32_t dlen = (uint32_t)take(in, 2);
		uint8_t flags = (uint8_t)take(in, 1);
		uint16_t next = (uint16_t)take(in, 1);

		if (flags & 0x80)
			dlen |= (uint32_t)take(in, 2) << 16;
		if (fz.q.size)
			vdrv_desc(&fz.q, (uint16_t)(i % fz.q.size), gpa, dlen, flags & 7, next);
		break;
	}
	case 6: /* publish a head */
		if (fz.q.size)
			vdrv_avail_push(&fz.q, (uint16_t)take(in, 2));
		break;
	case 7: /* kick, usually queue 0 */
		v = (uint32_t)take(in, 1);
		vdrv_notify(t, v < 0xf0 ? 0 : v & 0xf);
		break;
	case 8: { /* the guest writes bytes anywhere in RAM */
		uint64_t o = take(in, 2) % RAM;
		size_t n = (size_t)take(in, 1);

		n = n < in->n ? n : in->n;
		n = n < RAM - o ? n : RAM - o;
		memcpy(fz.gm.host + o, in->p, n);
		in->p += n;
		in->n -= n;
		break;
	}
	case 9:
		pump();
		break;
	case 10:
		blk_request(t, in);
		break;
	case 11: /* the avail idx, used_event, flags: anything */
		v = (uint32_t)take(in, 4);
		if (!fz.q.size)
			break;
		if (v & 1)
			vdrv_set_avail_idx(&fz.q, (uint16_t)(v >> 16));
		else
			vdrv_set_used_event(&fz.q, (uint16_t)(v >> 16));
		vdrv_set_avail_flags(&fz.q, (uint16_t)((v >> 1) & 1));
		break;
	default: /* the interrupt handler */
		v = vdrv_read(t, VDRV_INTERRUPT_STATUS);
		vdrv_write(t, VDRV_INTERRUPT_ACK, v);
		break;
	}
}

static void reset_all(void)
{
	struct stat st;

	for (unsigned i = 0; i < NR_DEVICES; i++)
		vdrv_write(fz.dev[i], VDRV_STATUS, 0);
	for (unsigned i = 0; i < 3; i++)
		if (fz.blk[i].inflight)
			fail("requests in flight after a reset");
	pump(); /* completion events of requests the reset waited for */
	if (fstat(fz.drive, &st) < 0 || st.st_size != DRIVE_BYTES)
		fail("the drive changed size");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct { bool async, ro, writeback; } drives[3] = {
		{ false, false, true }, { true, false, true }, { true, true, false },
	};
	char path[64];

	(void)argc;
	(void)argv;
	fz.log = getenv("KILN_FUZZ_LOG") != NULL;
	if (log_setup(NULL, fz.log ? LOG_DEBUG : LOG_OFF, false, false) < 0 ||
	    guest_memory_create(&fz.gm, RAM, false) < 0 || event_loop_init(&fz.loop) < 0)
		fail("set-up");
	mmap(fz.gm.host - PAGE, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	     -1, 0);
	mmap(fz.gm.host + RAM, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	     -1, 0);
	fz.drive = memfd_create("kiln-fuzz-drive", MFD_CLOEXEC);
	if (fz.drive < 0 || ftruncate(fz.drive, DRIVE_BYTES) < 0)
		fail("drive memfd");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fz.drive);
	if (virtio_rng_init(&fz.rng, &fz.gm, &fz.loop, -1, 0xd0001000, 5) < 0)
		fail("virtio_rng_init");
	fz.dev[0] = &fz.rng.mmio;
	for (unsigned i = 0; i < 3; i++) {
		struct drive_config d = {
			.drive_id = "fuzz",
			.path_on_host = path,
			.is_read_only = drives[i].ro,
			.cache_type = drives[i].writeback ? CACHE_WRITEBACK : CACHE_UNSAFE,
			.io_engine = drives[i].async ? IO_ENGINE_ASYNC : IO_ENGINE_SYNC,
		};

		if (virtio_blk_init(&fz.blk[i], &d, &fz.gm, &fz.loop, -1, 0xd0002000 + 0x1000 * i,
				    6 + i) < 0)
			fail("virtio_blk_init");
		fz.dev[1 + i] = &fz.blk[i].mmio;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zero[DRIVE_BYTES];
	struct input in = { data, size };
	struct virtio_mmio *t = fz.dev[take(&in, 1) % NR_DEVICES];

	memset(fz.gm.host, 0, RAM);
	if (pwrite(fz.drive, zero, sizeof(zero), 0) != (ssize_t)sizeof(zero))
		fail("drive reset");
	vdrv_queue_init(&fz.q, &fz.gm, 16, 0x1000);
	fz.next_desc = 0;
	while (in.n)
		run_op(t, &in, (uint8_t)take(&in, 1));
	pump();
	if (fz.log)
		fprintf(stderr, "fuzz_virtio_mmio: %s: status 0x%x, used idx %u, %llu interrupts, "
			"last status byte %u\n", t->ops->name, t->status, vdrv_used_idx(&fz.q),
			t->nr_signals, fz.gm.host[REQ_STATUS]);
	reset_all();
	return 0;
}
