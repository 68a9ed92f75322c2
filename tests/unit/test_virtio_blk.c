/*
 * Unit tests for devices/virtio/blk.c: requests through the virtio-mmio transport on a temp file,
 * for both engines (Sync, and Async on io_uring, whose completions come back through the event
 * loop, pumped here), without KVM.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk.h"
#include "device_config.h"
#include "event_loop.h"
#include "log.h"
#include "memory.h"
#include "poison_log.h"
#include "virtio.h"
#include "virtio_driver.h"

#define RAM (1ull << 20)
#define QBASE 0x1000ull
#define HDR 0x9000ull
#define STATUS 0x9100ull
#define DATA 0x10000ull
#define PAGE 4096ull
#define DIRTY_WORDS ((RAM / PAGE + 63) / 64)
#define SECTORS 64u
#define R 0
#define W VIRTQ_DESC_F_WRITE
#define N VIRTQ_DESC_F_NEXT

/* virtio 1.2, 5.2. */
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define F_RO 5
#define F_FLUSH 9

struct engine {
	const char *name;
	bool async;
};

struct fixture {
	const struct engine *engine;
	struct guest_memory gm;
	struct poison_log poison; /* the guest memory's, empty unless a test fills it */
	struct event_loop loop;
	struct virtio_blk blk;
	struct vdrv_queue q;
	int file;       /* the backing file, already unlinked */
	char path[64];  /* /proc/self/fd/<file> */
	uint16_t next_desc;
};

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 512);
}

static int open_drive(struct fixture *f, bool ro, bool writeback)
{
	struct drive_config d = {
		.drive_id = "rootfs",
		.path_on_host = f->path,
		.is_read_only = ro,
		.cache_type = writeback ? CACHE_WRITEBACK : CACHE_UNSAFE,
		.io_engine = f->engine->async ? IO_ENGINE_ASYNC : IO_ENGINE_SYNC,
	};

	return virtio_blk_init(&f->blk, &d, &f->gm, &f->loop, -1, 0xd0001000, 5);
}

/* The driver's set-up: everything but the device's own feature bits. */
static void start(struct fixture *f)
{
	vdrv_queue_init(&f->q, &f->gm, 256, QBASE);
	f->next_desc = 0;
	assert_true(vdrv_start(&f->blk.mmio, VIRTIO_BIT(VIRTIO_F_VERSION_1), &f->q, 1) &
		    VIRTIO_STATUS_DRIVER_OK);
}

static void reopen(struct fixture *f, bool ro, bool writeback)
{
	virtio_blk_destroy(&f->blk);
	assert_int_equal(open_drive(f, ro, writeback), 0);
	start(f);
}

static int setup(void **state)
{
	const struct engine *e = *state;
	struct fixture *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/kiln-test-blk.XXXXXX";
	uint8_t buf[SECTORS * 512];

	if (!f)
		return -1;
	f->engine = e;
	f->file = mkstemp(tmpl);
	if (f->file < 0)
		return -1;
	unlink(tmpl); /* nothing left behind, whatever happens */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	if (pwrite(f->file, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		return -1;
	snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->file);
	if (guest_memory_create(&f->gm, RAM, false) < 0 || poison_log_init(&f->poison) < 0 ||
	    event_loop_init(&f->loop) < 0)
		return -1;
	f->gm.poison = &f->poison;
	if (open_drive(f, false, true) < 0)
		return -1;
	start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_blk_destroy(&f->blk);
	event_loop_destroy(&f->loop);
	guest_memory_destroy(&f->gm);
	poison_log_destroy(&f->poison);
	close(f->file);
	free(f);
	return 0;
}

/* The event loop's work for one round: dispatch what is ready within timeout_ms. */
static void run_loop_once(struct event_loop *el, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(el->epfd, evs, 16, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct event_handler *h = &el->handlers[evs[i].data.u32];

		if (h->fn)
			h->fn(h->opaque, h->fd, evs[i].events);
	}
}

/* Runs the loop until the used ring reaches want (Async), 5 s at most. */
static void pump(struct fixture *f, uint16_t want)
{
	for (int i = 0; i < 100 && vdrv_used_idx(&f->q) != want; i++)
		run_loop_once(&f->loop, 50);
}

/* Chains segs from the next free descriptors and makes the chain available (no kick). */
static uint16_t post(struct fixture *f, const struct seg *segs, unsigned n)
{
	uint16_t head = f->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((head + i) % f->q.size);

		vdrv_desc(&f->q, d, segs[i].gpa, segs[i].len,
			  (uint16_t)(segs[i].flags | (i + 1 < n ? N : 0)),
			  (uint16_t)((d + 1) % f->q.size));
	}
	f->next_desc = (uint16_t)((head + n) % f->q.size);
	vdrv_avail_push(&f->q, head);
	return head;
}

/* Posts one chain, kicks, waits for it; returns its used length (~0u if it was not used). */
static uint32_t run(struct fixture *f, const struct seg *segs, unsigned n)
{
	uint16_t before = vdrv_used_idx(&f->q), head;
	uint32_t id, len;

	head = post(f, segs, n);
	vdrv_notify(&f->blk.mmio, 0);
	pump(f, (uint16_t)(before + 1));
	if (vdrv_used_idx(&f->q) != (uint16_t)(before + 1))
		return ~0u;
	vdrv_used_elem(&f->q, before, &id, &len);
	assert_int_equal(id, head);
	return len;
}

static void header(struct fixture *f, uint32_t type, uint64_t sector)
{
	uint8_t h[16] = { 0 };

	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	memcpy(f->gm.host + HDR, h, 16);
	f->gm.host[STATUS] = 0xff;
}

/* A request with its header, one data buffer (none when len is 0) and a status byte. */
static uint8_t request(struct fixture *f, uint32_t type, uint64_t sector, uint64_t data,
		       uint32_t len, uint32_t *used_len)
{
	struct seg s[3] = { { HDR, 16, R } };
	unsigned n = 1;
	uint32_t ul;

	header(f, type, sector);
	if (len)
		s[n++] = (struct seg){ data, len, type == T_OUT ? R : W };
	s[n++] = (struct seg){ STATUS, 1, W };
	ul = run(f, s, n);
	assert_int_not_equal(ul, ~0u);
	if (used_len)
		*used_len = ul;
	return f->gm.host[STATUS];
}

static uint32_t status(struct fixture *f)
{
	return vdrv_read(&f->blk.mmio, VDRV_STATUS);
}

static void assert_file_pattern(struct fixture *f, uint64_t off, uint64_t len)
{
	uint8_t buf[SECTORS * 512];

	assert_int_equal(pread(f->file, buf, len, (off_t)off), (ssize_t)len);
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != pattern(off + i))
			fail_msg("file byte %llu changed", (unsigned long long)(off + i));
}

/* --- well-formed requests --- */

static void virtio_blk_config_and_features_describe_drive(void **state)
{
	struct fixture *f = *state;
	uint64_t cap;
	uint32_t seg_max, blk_size;
	uint8_t cfg[24];

	for (unsigned i = 0; i < 24; i += 4)
		virtio_mmio_bus_ops.read(&f->blk.mmio, VIRTIO_MMIO_CONFIG + i, cfg + i, 4);
	memcpy(&cap, cfg, 8);
	memcpy(&seg_max, cfg + 12, 4);
	memcpy(&blk_size, cfg + 20, 4);
	assert_int_equal(cap, SECTORS);
	assert_int_equal(seg_max, 128);
	assert_int_equal(blk_size, 512);
	virtio_mmio_bus_ops.read(&f->blk.mmio, VIRTIO_MMIO_CONFIG + 22, cfg, 4); /* past the end */
	assert_int_equal(cfg[0], 0);
	assert_int_equal(vdrv_read(&f->blk.mmio, VDRV_DEVICE_ID), VIRTIO_ID_BLOCK);
	vdrv_write(&f->blk.mmio, VDRV_DEVICE_FEATURES_SEL, 0);
	assert_true(vdrv_read(&f->blk.mmio, VDRV_DEVICE_FEATURES) & VIRTIO_BIT(F_FLUSH));
	assert_false(vdrv_read(&f->blk.mmio, VDRV_DEVICE_FEATURES) & VIRTIO_BIT(F_RO));
	reopen(f, true, false);
	assert_false(vdrv_read(&f->blk.mmio, VDRV_DEVICE_FEATURES) & VIRTIO_BIT(F_FLUSH));
	assert_true(vdrv_read(&f->blk.mmio, VDRV_DEVICE_FEATURES) & VIRTIO_BIT(F_RO));
}

static void virtio_blk_read_two_buffers_returns_file_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t bm[DIRTY_WORDS];
	const struct seg s[] = {
		{ HDR, 16, R },
		{ DATA + 0x2000, 512, W },
		{ DATA + 0x4e00, 512, W },
		{ STATUS, 1, W },
	};

	memset(f->gm.host + DATA, 0xcc, 0x6000);
	header(f, T_IN, 3);
	guest_memory_take_dirty(&f->gm, bm);
	assert_int_equal(run(f, s, 4), 1025);
	assert_int_equal(f->gm.host[STATUS], S_OK);
	for (unsigned i = 0; i < 512; i++) {
		assert_int_equal(f->gm.host[DATA + 0x2000 + i], pattern(3 * 512 + i));
		assert_int_equal(f->gm.host[DATA + 0x4e00 + i], pattern(4 * 512 + i));
	}
	/* Not a byte around them. */
	assert_int_equal(f->gm.host[DATA + 0x1fff], 0xcc);
	assert_int_equal(f->gm.host[DATA + 0x2200], 0xcc);
	assert_int_equal(f->gm.host[DATA + 0x4dff], 0xcc);
	assert_int_equal(f->gm.host[DATA + 0x5000], 0xcc);
	/* The pages kiln filled are on record for migration. */
	guest_memory_take_dirty(&f->gm, bm);
	assert_true(bm[0] & (1ull << ((DATA + 0x2000) / PAGE)));
	assert_true(bm[0] & (1ull << ((DATA + 0x4000) / PAGE)));
	assert_true(bm[0] & (1ull << (STATUS / PAGE)));
	assert_int_equal(metrics_get(&f->blk.m->read_count), 1);
	assert_int_equal(metrics_get(&f->blk.m->read_bytes), 1024);
}

/* Data and status in one writable buffer: the status is its last byte. */
static void virtio_blk_read_data_and_status_in_one_buffer(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { HDR, 16, R }, { DATA, 513, W } };

	header(f, T_IN, SECTORS - 1);
	memset(f->gm.host + DATA, 0xcc, 514);
	assert_int_equal(run(f, s, 2), 513);
	assert_int_equal(f->gm.host[DATA + 512], S_OK);
	assert_int_equal(f->gm.host[DATA + 513], 0xcc);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(f->gm.host[DATA + i], pattern((SECTORS - 1) * 512 + i));
}

static void virtio_blk_write_lands_in_file(void **state)
{
	struct fixture *f = *state;
	uint8_t back[1024];
	uint32_t ul;

	for (unsigned i = 0; i < 1024; i++)
		f->gm.host[DATA + i] = (uint8_t)(0xa0 ^ i);
	assert_int_equal(request(f, T_OUT, 10, DATA, 1024, &ul), S_OK);
	assert_int_equal(ul, 1);
	assert_int_equal(pread(f->file, back, 1024, 10 * 512), 1024);
	assert_memory_equal(back, f->gm.host + DATA, 1024);
	assert_file_pattern(f, 0, 10 * 512);
	assert_file_pattern(f, 12 * 512, (SECTORS - 12) * 512);
	/* And reads back through the device. */
	memset(f->gm.host + DATA + 0x1000, 0, 1024);
	assert_int_equal(request(f, T_IN, 10, DATA + 0x1000, 1024, &ul), S_OK);
	assert_memory_equal(f->gm.host + DATA + 0x1000, back, 1024);
	assert_int_equal(metrics_get(&f->blk.m->write_count), 1);
	assert_int_equal(metrics_get(&f->blk.m->write_bytes), 1024);
}

static void virtio_blk_flush_ok_on_writeback_unsupp_on_unsafe(void **state)
{
	struct fixture *f = *state;
	uint32_t ul;

	assert_int_equal(request(f, T_FLUSH, 0, 0, 0, &ul), S_OK);
	assert_int_equal(ul, 1);
	assert_int_equal(metrics_get(&f->blk.m->flush_count), 1);
	reopen(f, false, false);
	assert_int_equal(request(f, T_FLUSH, 0, 0, 0, &ul), S_UNSUPP);
	assert_int_equal(ul, 1);
}

static void virtio_blk_get_id_returns_padded_drive_id(void **state)
{
	struct fixture *f = *state;
	static const uint8_t want[20] = "rootfs";
	uint32_t ul;

	memset(f->gm.host + DATA, 0xcc, 32);
	assert_int_equal(request(f, T_GET_ID, 0, DATA, 20, &ul), S_OK);
	assert_int_equal(ul, 21);
	assert_memory_equal(f->gm.host + DATA, want, 20);
	assert_int_equal(f->gm.host[DATA + 20], 0xcc);

	memset(f->gm.host + DATA, 0xcc, 32);
	assert_int_equal(request(f, T_GET_ID, 0, DATA, 4, &ul), S_OK);
	assert_int_equal(ul, 5);
	assert_memory_equal(f->gm.host + DATA, "root", 4);
	assert_int_equal(f->gm.host[DATA + 4], 0xcc);
}

/* Many requests at once: with Async, many in flight together. */
static void virtio_blk_many_requests_in_one_kick_all_complete(void **state)
{
	struct fixture *f = *state;
	const unsigned nr = 80; /* 240 of the 256 descriptors */
	const uint64_t hdrs = 0xa000, stats = 0xb000;
	uint16_t want;

	memset(f->gm.host + DATA, 0, nr * 512);
	for (unsigned i = 0; i < nr; i++) {
		uint32_t type = T_IN;
		uint64_t sector = i % SECTORS;
		struct seg s[] = { { hdrs + 16 * i, 16, R }, { DATA + 512ull * i, 512, W },
				   { stats + i, 1, W } };

		memset(f->gm.host + hdrs + 16 * i, 0, 16);
		memcpy(f->gm.host + hdrs + 16 * i, &type, 4);
		memcpy(f->gm.host + hdrs + 16 * i + 8, &sector, 8);
		f->gm.host[stats + i] = 0xff;
		post(f, s, 3);
	}
	want = (uint16_t)(vdrv_used_idx(&f->q) + nr);
	vdrv_notify(&f->blk.mmio, 0);
	pump(f, want);
	assert_int_equal(vdrv_used_idx(&f->q), want);
	for (unsigned i = 0; i < nr; i++) {
		assert_int_equal(f->gm.host[stats + i], S_OK);
		for (unsigned k = 0; k < 512; k += 97)
			assert_int_equal(f->gm.host[DATA + 512 * i + k],
					 pattern((i % SECTORS) * 512 + k));
	}
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_true(f->blk.mmio.nr_signals >= 1);
}

/* --- requests refused with a status: the device goes on --- */

static void virtio_blk_out_of_range_sectors_ioerr(void **state)
{
	struct fixture *f = *state;
	const struct { uint64_t sector; uint32_t len; } bad[] = {
		{ SECTORS, 512 }, { SECTORS - 1, 1024 }, { SECTORS + 1, 0 }, { UINT64_MAX, 512 },
		{ UINT64_MAX / 512 + 1, 512 }, { 1ull << 55, 512 },
	};
	uint32_t ul;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(f->gm.host + DATA, 0xcc, 1024);
		assert_int_equal(request(f, T_IN, bad[i].sector, DATA, bad[i].len, &ul), S_IOERR);
		assert_int_equal(ul, 1);
		assert_int_equal(f->gm.host[DATA], 0xcc);
		for (unsigned k = 0; k < 1024; k++)
			f->gm.host[DATA + k] = 0x5a;
		assert_int_equal(request(f, T_OUT, bad[i].sector, DATA, bad[i].len, &ul), S_IOERR);
	}
	assert_file_pattern(f, 0, SECTORS * 512);
	/* The last sector itself is fine. */
	assert_int_equal(request(f, T_IN, SECTORS - 1, DATA, 512, &ul), S_OK);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_true(metrics_get(&f->blk.m->invalid_reqs_count) >= 12);
}

static void virtio_blk_length_not_multiple_of_512_ioerr(void **state)
{
	struct fixture *f = *state;
	const uint32_t lens[] = { 1, 100, 511, 513, 1023 };
	uint32_t ul;

	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(f->gm.host + DATA, 0xcc, 1024);
		assert_int_equal(request(f, T_IN, 0, DATA, lens[i], &ul), S_IOERR);
		assert_int_equal(f->gm.host[DATA], 0xcc);
		assert_int_equal(request(f, T_OUT, 0, DATA, lens[i], &ul), S_IOERR);
	}
	assert_file_pattern(f, 0, SECTORS * 512);
}

static void virtio_blk_write_to_read_only_drive_ioerr(void **state)
{
	struct fixture *f = *state;
	uint32_t ul;

	reopen(f, true, true);
	memset(f->gm.host + DATA, 0x11, 512);
	assert_int_equal(request(f, T_OUT, 0, DATA, 512, &ul), S_IOERR);
	assert_int_equal(ul, 1);
	assert_file_pattern(f, 0, SECTORS * 512);
	assert_int_equal(request(f, T_IN, 0, DATA, 512, &ul), S_OK);
	assert_int_equal(f->gm.host[DATA + 1], pattern(1));
	assert_int_equal(request(f, T_GET_ID, 0, DATA, 20, &ul), S_OK);
}

static void virtio_blk_unknown_type_unsupp(void **state)
{
	struct fixture *f = *state;
	const uint32_t types[] = { 2, 3, 5, 7, 11, 13, 99, 0x80000000u, UINT32_MAX };
	uint32_t ul;

	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		memset(f->gm.host + DATA, 0xcc, 512);
		assert_int_equal(request(f, types[i], 0, DATA, 512, &ul), S_UNSUPP);
		assert_int_equal(ul, 1);
		assert_int_equal(f->gm.host[DATA], 0xcc);
	}
	assert_file_pattern(f, 0, SECTORS * 512);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* A transfer of no data is a (useless) success on either engine. */
static void virtio_blk_zero_length_transfer_ok(void **state)
{
	struct fixture *f = *state;
	uint32_t ul;

	assert_int_equal(request(f, T_OUT, 0, 0, 0, &ul), S_OK);
	assert_int_equal(ul, 1);
	assert_int_equal(request(f, T_IN, 5, 0, 0, &ul), S_OK);
	assert_int_equal(ul, 1);
	/* Whatever the engine did with them, the next request works. */
	assert_int_equal(request(f, T_IN, 5, DATA, 512, &ul), S_OK);
	assert_int_equal(f->gm.host[DATA + 7], pattern(5 * 512 + 7));
	assert_int_equal(request(f, T_FLUSH, 0, 0, 0, &ul), S_OK);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* More data buffers than the seg_max the device told: refused, the device goes on. */
static void virtio_blk_more_segments_than_seg_max_ioerr(void **state)
{
	struct fixture *f = *state;
	struct seg s[2 + 140];
	uint32_t ul;

	header(f, T_IN, 0);
	s[0] = (struct seg){ HDR, 16, R };
	for (unsigned i = 0; i < 140; i++) /* 140 * 128 bytes: 35 sectors */
		s[1 + i] = (struct seg){ DATA + 128ull * i, 128, W };
	s[141] = (struct seg){ STATUS, 1, W };
	assert_int_equal(run(f, s, 142), 1);
	assert_int_equal(f->gm.host[STATUS], S_IOERR);
	assert_int_equal(request(f, T_IN, 1, DATA, 512, &ul), S_OK);
	assert_int_equal(f->gm.host[DATA + 3], pattern(512 + 3));
}

/* --- poisoned guest pages: the request fails, the device goes on --- */

/* A data buffer in a poisoned page breaks no ring rule: IOERR, and kiln never touches it. */
static void virtio_blk_data_in_poisoned_page_ioerr_device_goes_on(void **state)
{
	struct fixture *f = *state;
	const struct seg split[] = {
		{ HDR, 16, R }, { DATA, 512, W }, { DATA + 0x3000, 512, W }, { STATUS, 1, W },
	};
	uint32_t ul;

	memset(f->gm.host + DATA, 0xcc, 0x4000);
	assert_int_equal(poison_log_add(&f->poison, DATA + 0x3000, PAGE, POISON_INJECTED), 0);
	assert_int_equal(request(f, T_IN, 1, DATA + 0x3000, 512, &ul), S_IOERR);
	assert_int_equal(ul, 1);
	assert_int_equal(f->gm.host[DATA + 0x3000], 0xcc);
	assert_int_equal(request(f, T_OUT, 1, DATA + 0x3200, 512, &ul), S_IOERR);
	assert_file_pattern(f, 0, SECTORS * 512);
	/* Only the second buffer poisoned: nothing is transferred through the first either. */
	header(f, T_IN, 4);
	assert_int_equal(run(f, split, 4), 1);
	assert_int_equal(f->gm.host[STATUS], S_IOERR);
	assert_int_equal(metrics_get(&f->blk.m->read_count), 0);
	assert_int_equal(metrics_get(&f->blk.m->execute_fails), 3);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(f, T_IN, 2, DATA + 0x1000, 512, &ul), S_OK);
	assert_int_equal(f->gm.host[DATA + 0x1000 + 9], pattern(2 * 512 + 9));
}

/* A poisoned header: the type is unknown, but the status byte can still say IOERR. */
static void virtio_blk_header_in_poisoned_page_ioerr(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { DATA + 0x5000, 16, R }, { DATA, 512, W }, { STATUS, 1, W } };

	f->gm.host[STATUS] = 0xff;
	assert_int_equal(poison_log_add(&f->poison, DATA + 0x5000, PAGE, POISON_HOST), 0);
	assert_int_equal(run(f, s, 3), 1);
	assert_int_equal(f->gm.host[STATUS], S_IOERR);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(f, T_IN, 3, DATA, 512, NULL), S_OK);
}

/* A poisoned status byte: the request still comes back (used length 0), for the guest to find
 * the poison itself; the queue goes on. */
static void virtio_blk_status_in_poisoned_page_used_len_0(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { HDR, 16, R }, { DATA, 512, W }, { DATA + 0x6000, 1, W } };

	header(f, T_IN, 0);
	f->gm.host[DATA + 0x6000] = 0xee;
	assert_int_equal(poison_log_add(&f->poison, DATA + 0x6000, PAGE, POISON_HOST), 0);
	assert_int_equal(run(f, s, 3), 0);
	assert_int_equal(f->gm.host[DATA + 0x6000], 0xee);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(f, T_IN, 3, DATA, 512, NULL), S_OK);
}

/* --- chains that cannot be answered: the device needs a reset --- */

static void expect_needs_reset(struct fixture *f, const struct seg *s, unsigned n)
{
	uint16_t before = vdrv_used_idx(&f->q);

	post(f, s, n);
	vdrv_notify(&f->blk.mmio, 0); /* refused on the spot: nothing reaches the engine */
	assert_int_equal(vdrv_used_idx(&f->q), before);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(vdrv_read(&f->blk.mmio, VDRV_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* Further kicks are ignored until the driver resets the device; then it works. */
	vdrv_notify(&f->blk.mmio, 0);
	assert_int_equal(vdrv_used_idx(&f->q), before);
	start(f);
	assert_int_equal(status(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(f, T_IN, 2, DATA + 0x8000, 512, NULL), S_OK);
	assert_int_equal(f->gm.host[DATA + 0x8000 + 9], pattern(2 * 512 + 9));
}

static void virtio_blk_missing_status_byte_needs_reset(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { HDR, 16, R }, { DATA, 512, R } };

	header(f, T_OUT, 0);
	expect_needs_reset(f, s, 2);
	assert_file_pattern(f, 0, SECTORS * 512);
}

static void virtio_blk_header_too_short_needs_reset(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { HDR, 8, R }, { DATA, 512, W }, { STATUS, 1, W } };
	const struct seg none[] = { { DATA, 512, W }, { STATUS, 1, W } };

	header(f, T_IN, 0);
	expect_needs_reset(f, s, 3);
	expect_needs_reset(f, none, 2);
}

/* A header split over buffers is fine; 15 bytes of it are not. */
static void virtio_blk_header_split_accepted_short_refused(void **state)
{
	struct fixture *f = *state;
	const struct seg split[] = { { HDR, 5, R }, { HDR + 5, 11, R }, { DATA, 512, W },
				     { STATUS, 1, W } };
	const struct seg short_[] = { { HDR, 5, R }, { HDR + 5, 10, R }, { DATA, 512, W },
				      { STATUS, 1, W } };

	header(f, T_IN, 7);
	assert_int_equal(run(f, split, 4), 513);
	assert_int_equal(f->gm.host[STATUS], S_OK);
	assert_int_equal(f->gm.host[DATA + 100], pattern(7 * 512 + 100));
	expect_needs_reset(f, short_, 4);
}

static void virtio_blk_empty_last_writable_buffer_needs_reset(void **state)
{
	struct fixture *f = *state;
	const struct seg s[] = { { HDR, 16, R }, { DATA, 512, W }, { STATUS, 0, W } };

	header(f, T_IN, 0);
	expect_needs_reset(f, s, 3);
}

static void virtio_blk_looping_chain_after_good_one_needs_reset(void **state)
{
	struct fixture *f = *state;
	uint16_t before = vdrv_used_idx(&f->q);

	header(f, T_IN, 1);
	post(f, (const struct seg[]){ { HDR, 16, R }, { DATA, 512, W }, { STATUS, 1, W } }, 3);
	vdrv_desc(&f->q, 200, DATA, 16, N, 201);
	vdrv_desc(&f->q, 201, DATA, 16, N, 200);
	vdrv_avail_push(&f->q, 200);
	vdrv_notify(&f->blk.mmio, 0);
	pump(f, (uint16_t)(before + 1));
	assert_int_equal(vdrv_used_idx(&f->q), (uint16_t)(before + 1));
	assert_int_equal(f->gm.host[STATUS], S_OK);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
}

/* A reset while requests are in flight waits for them and drops their results. */
static void virtio_blk_reset_with_requests_in_flight_then_works(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < 32; i++) {
		struct seg s[] = { { HDR, 16, R }, { DATA + 1024ull * i, 1024, W },
				   { STATUS, 1, W } };

		header(f, T_IN, i);
		post(f, s, 3);
	}
	vdrv_notify(&f->blk.mmio, 0);
	vdrv_write(&f->blk.mmio, VDRV_STATUS, 0);
	assert_int_equal(f->blk.inflight, 0);
	assert_int_equal(status(f), 0);
	run_loop_once(&f->loop, 10); /* a stale completion event finds nothing to do */
	start(f);
	assert_int_equal(request(f, T_IN, 3, DATA, 512, NULL), S_OK);
	assert_int_equal(f->gm.host[DATA + 1], pattern(3 * 512 + 1));
	/* And the device can go away with requests in flight. */
	header(f, T_IN, 4);
	post(f, (const struct seg[]){ { HDR, 16, R }, { DATA, 512, W }, { STATUS, 1, W } }, 3);
	vdrv_notify(&f->blk.mmio, 0);
}

/*
 * The driver disables the queue and sets its size to 0 while a request is in flight (Async: it
 * completes later, on the event loop). The completion cannot be used: the device needs a reset.
 */
static void virtio_blk_queue_disabled_with_request_in_flight_needs_reset(void **state)
{
	struct fixture *f = *state;
	uint16_t before = vdrv_used_idx(&f->q);

	header(f, T_IN, 1);
	post(f, (const struct seg[]){ { HDR, 16, R }, { DATA, 512, W }, { STATUS, 1, W } }, 3);
	vdrv_notify(&f->blk.mmio, 0);
	vdrv_write(&f->blk.mmio, VDRV_QUEUE_SEL, 0);
	vdrv_write(&f->blk.mmio, VDRV_QUEUE_READY, 0);
	vdrv_write(&f->blk.mmio, VDRV_QUEUE_NUM, 0);
	for (int i = 0; i < 20 && f->blk.inflight; i++)
		run_loop_once(&f->loop, 50);
	assert_int_equal(f->blk.inflight, 0);
	if (f->engine->async) {
		assert_int_equal(vdrv_used_idx(&f->q), before);
		assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	} else {
		assert_int_equal(vdrv_used_idx(&f->q), (uint16_t)(before + 1));
	}
	start(f);
	assert_int_equal(request(f, T_IN, 2, DATA, 512, NULL), S_OK);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

#define TESTS(e)                                                                                \
	{                                                                                       \
		T(virtio_blk_config_and_features_describe_drive, e),                            \
		T(virtio_blk_read_two_buffers_returns_file_bytes, e),                           \
		T(virtio_blk_read_data_and_status_in_one_buffer, e),                            \
		T(virtio_blk_write_lands_in_file, e),                                           \
		T(virtio_blk_flush_ok_on_writeback_unsupp_on_unsafe, e),                        \
		T(virtio_blk_get_id_returns_padded_drive_id, e),                                \
		T(virtio_blk_many_requests_in_one_kick_all_complete, e),                        \
		T(virtio_blk_out_of_range_sectors_ioerr, e),                                    \
		T(virtio_blk_length_not_multiple_of_512_ioerr, e),                              \
		T(virtio_blk_write_to_read_only_drive_ioerr, e),                                \
		T(virtio_blk_unknown_type_unsupp, e),                                           \
		T(virtio_blk_zero_length_transfer_ok, e),                                       \
		T(virtio_blk_more_segments_than_seg_max_ioerr, e),                              \
		T(virtio_blk_data_in_poisoned_page_ioerr_device_goes_on, e),                    \
		T(virtio_blk_header_in_poisoned_page_ioerr, e),                                 \
		T(virtio_blk_status_in_poisoned_page_used_len_0, e),                            \
		T(virtio_blk_missing_status_byte_needs_reset, e),                               \
		T(virtio_blk_header_too_short_needs_reset, e),                                  \
		T(virtio_blk_header_split_accepted_short_refused, e),                           \
		T(virtio_blk_empty_last_writable_buffer_needs_reset, e),                        \
		T(virtio_blk_looping_chain_after_good_one_needs_reset, e),                      \
		T(virtio_blk_reset_with_requests_in_flight_then_works, e),                      \
		T(virtio_blk_queue_disabled_with_request_in_flight_needs_reset, e),             \
	}

int main(void)
{
	static const struct engine sync_engine = { "Sync", false };
	static const struct engine async_engine = { "Async", true };
#define T(f, e) cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)(e))
	const struct CMUnitTest sync_tests[] = TESTS(&sync_engine);
	const struct CMUnitTest async_tests[] = TESTS(&async_engine);
#undef T
	int failed = 0;

	failed += cmocka_run_group_tests_name("blk.c (Sync engine)", sync_tests, group_setup, NULL);
	failed += cmocka_run_group_tests_name("blk.c (Async engine)", async_tests, group_setup,
					      NULL);
	return failed;
}
