/* virtio-blk: request parsing and checks shared by both engines, the Sync engine, and the
 * Async engine on io_uring. */
#include "blk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "virtio.h"

/* Feature bits, request types and status values (virtio 1.2, 5.2). */
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_FLUSH 9
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define SECTOR 512u
#define HDR_LEN 16u
#define CONFIG_LEN 24u /* capacity, size_max, seg_max, geometry, blk_size */

static void blk_config_read(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = t->dev;
	uint8_t cfg[CONFIG_LEN] = { 0 };
	uint32_t seg_max = BLK_SEG_MAX, blk_size = SECTOR;

	memcpy(cfg, &b->sectors, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memcpy(data, cfg + off, len);
}

/* A parsed request: where its data and status byte are, or why it is refused. */
struct blk_parsed {
	uint32_t type;
	uint64_t sector;
	uint64_t data_len;
	uint64_t status_gpa;
	uint8_t status;      /* BLK_S_OK when it may go ahead */
};

static int parse_request(struct virtio_blk *b, const struct virtq_chain *c, struct blk_parsed *p)
{
	const struct virtq_buf *last;
	uint8_t hdr[HDR_LEN];

	/* Without a readable header and a writable status byte the request cannot be answered. */
	if (c->nr == c->nr_out || c->in_len < 1 || c->out_len < HDR_LEN)
		return -EINVAL;
	last = &c->bufs[c->nr - 1];
	if (last->len < 1)
		return -EINVAL;
	p->status_gpa = last->gpa + last->len - 1;
	p->data_len = 0;
	if (virtq_chain_read(b->mmio.mem, c, 0, hdr, HDR_LEN) != HDR_LEN) {
		p->type = UINT32_MAX; /* a poisoned header: an I/O error, not a broken ring */
		p->status = BLK_S_IOERR;
		return 0;
	}
	memcpy(&p->type, hdr, 4);
	memcpy(&p->sector, hdr + 8, 8);
	p->status = BLK_S_OK;
	switch (p->type) {
	case BLK_T_IN:
		p->data_len = c->in_len - 1;
		break;
	case BLK_T_OUT:
		p->data_len = c->out_len - HDR_LEN;
		if (b->read_only)
			p->status = BLK_S_IOERR;
		break;
	case BLK_T_FLUSH:
		if (!b->flush)
			p->status = BLK_S_UNSUPP;
		return 0;
	case BLK_T_GET_ID:
		return 0;
	default:
		p->status = BLK_S_UNSUPP;
		return 0;
	}
	if (p->data_len % SECTOR || p->sector > b->sectors ||
	    p->data_len / SECTOR > b->sectors - p->sector)
		p->status = BLK_S_IOERR;
	return 0;
}

static const struct metrics_field block_fields[] = { BLOCK_METRICS(METRICS_FIELD, block) };
const struct metrics_class block_metrics_class = {
	"block", block_fields, sizeof(block_fields) / sizeof(block_fields[0]),
	sizeof(struct metrics_block), false,
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Counts a finished request started at start_ns (0: not timed). */
static void count(struct virtio_blk *b, uint32_t type, uint64_t bytes, bool ok, uint64_t start_ns)
{
	struct metrics_block *m = b->m;
	uint64_t us = start_ns ? (mono_ns() - start_ns) / 1000 : 0;

	if (!ok) {
		metrics_inc(&m->execute_fails);
		return;
	}
	if (type == BLK_T_IN) {
		metrics_inc(&m->read_count);
		metrics_add(&m->read_bytes, bytes);
		if (start_ns)
			metrics_latency_record(&m->read_agg, us);
	} else if (type == BLK_T_OUT) {
		metrics_inc(&m->write_count);
		metrics_add(&m->write_bytes, bytes);
		if (start_ns)
			metrics_latency_record(&m->write_agg, us);
	} else if (type == BLK_T_FLUSH) {
		metrics_inc(&m->flush_count);
	}
}

static int complete(struct virtio_blk *b, uint16_t head, uint64_t status_gpa, uint8_t status,
		    uint32_t used_len)
{
	struct virtio_mmio *t = &b->mmio;
	int ret = guest_memory_write(t->mem, status_gpa, &status, 1);

	/* A poisoned status byte: the request still goes back, the guest meets the poison. */
	if (ret < 0 && ret != -EHWPOISON)
		return -EFAULT;
	if (ret < 0)
		used_len = 0;
	else if (status != BLK_S_OK)
		used_len = 1;
	return virtq_push(&t->queues[0], t->mem, head, used_len);
}

/* Sync engine: the whole transfer, retrying short ones. */
static uint8_t sync_rw(struct virtio_blk *b, const struct virtq_chain *c,
		       const struct blk_parsed *p)
{
	struct iovec iov[BLK_SEG_MAX + 2];
	bool in = p->type == BLK_T_IN;
	uint64_t done = 0;

	while (done < p->data_len) {
		int n = virtq_chain_iov(b->mmio.mem, c, in, (in ? 0 : HDR_LEN) + done,
					p->data_len - done, iov, BLK_SEG_MAX + 2);
		off_t pos = (off_t)(p->sector * SECTOR + done);
		ssize_t k;

		if (n <= 0)
			return BLK_S_IOERR;
		k = in ? preadv(b->fd, iov, n, pos) : pwritev(b->fd, iov, n, pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return BLK_S_IOERR;
		done += (uint64_t)k;
	}
	return BLK_S_OK;
}

static uint8_t sync_execute(struct virtio_blk *b, const struct virtq_chain *c,
			    const struct blk_parsed *p, uint32_t *used_len)
{
	*used_len = 1;
	switch (p->type) {
	case BLK_T_IN:
	case BLK_T_OUT: {
		uint8_t s = sync_rw(b, c, p);

		if (p->type == BLK_T_IN && s == BLK_S_OK)
			*used_len = (uint32_t)p->data_len + 1;
		return s;
	}
	case BLK_T_FLUSH:
		return fdatasync(b->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
	case BLK_T_GET_ID: {
		uint64_t room = c->in_len - 1;
		size_t n = strnlen(b->id, BLK_ID_BYTES);

		/* The id is up to 20 bytes, NUL-padded when shorter. */
		uint8_t id[BLK_ID_BYTES] = { 0 };

		memcpy(id, b->id, n);
		n = room < BLK_ID_BYTES ? (size_t)room : BLK_ID_BYTES;
		if (virtq_chain_write(b->mmio.mem, c, 0, id, n) != n)
			return BLK_S_IOERR;
		*used_len = (uint32_t)n + 1;
		return BLK_S_OK;
	}
	}
	return BLK_S_UNSUPP;
}

/* Async engine: queue one request on the ring; it completes in on_ring_event. */
static int async_submit(struct virtio_blk *b, const struct virtq_chain *c,
			const struct blk_parsed *p, uint64_t start_ns)
{
	struct io_uring_sqe *sqe;
	struct blk_req *r = NULL;
	bool in = p->type == BLK_T_IN;

	for (unsigned i = 0; i < BLK_QUEUE_SIZE; i++) {
		if (!b->reqs[i].busy) {
			r = &b->reqs[i];
			break;
		}
	}
	if (!r)
		return -EAGAIN;
	/* The iovecs before the sqe: an sqe taken from the ring goes out with the next submit,
	 * prepared or not. */
	if (p->type != BLK_T_FLUSH) {
		r->nr_iov = virtq_chain_iov(b->mmio.mem, c, in, in ? 0 : HDR_LEN, p->data_len,
					    r->iov, BLK_SEG_MAX);
		if (r->nr_iov <= 0)
			return -EINVAL;
	}
	sqe = io_uring_get_sqe(&b->ring);
	if (!sqe)
		return -EAGAIN;
	r->head = c->head;
	r->type = (uint8_t)p->type;
	r->status_gpa = p->status_gpa;
	r->expect = p->data_len;
	r->start_ns = start_ns;
	r->used_len = in ? (uint32_t)p->data_len + 1 : 1;
	if (p->type == BLK_T_FLUSH)
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
	else if (in)
		io_uring_prep_readv(sqe, b->fd, r->iov, (unsigned)r->nr_iov, p->sector * SECTOR);
	else
		io_uring_prep_writev(sqe, b->fd, r->iov, (unsigned)r->nr_iov, p->sector * SECTOR);
	io_uring_sqe_set_data(sqe, r);
	r->busy = true;
	b->inflight++;
	return 0;
}

/* Reaps finished io_uring requests; lock held. Returns how many were completed. */
static unsigned reap(struct virtio_blk *b, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (b->inflight > 0) {
		struct blk_req *r;
		uint8_t s;
		int ret;

		/* A signal must not cut a wait short: a reset would leave requests in flight
		 * (found by fuzz_virtio_mmio, whose timer signal interrupted the wait). */
		do
			ret = wait ? io_uring_wait_cqe(&b->ring, &cqe) : io_uring_peek_cqe(&b->ring, &cqe);
		while (wait && ret == -EINTR);
		if (ret < 0)
			break;
		r = io_uring_cqe_get_data(cqe);
		s = cqe->res >= 0 && (uint64_t)cqe->res == r->expect ? BLK_S_OK : BLK_S_IOERR;
		io_uring_cqe_seen(&b->ring, cqe);
		count(b, r->type, r->expect, s == BLK_S_OK, r->start_ns);
		r->busy = false;
		b->inflight--;
		if (b->mmio.activated && complete(b, r->head, r->status_gpa, s, r->used_len) < 0)
			virtio_mmio_needs_reset(&b->mmio, "the used ring is no longer in RAM");
		n++;
	}
	return n;
}

static void blk_notify(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_blk *b = t->dev;
	struct virtq *q = &t->queues[qi];
	struct virtq_chain c;
	bool used = false, submitted = false;
	int got = 0;

	metrics_inc(&b->m->queue_event_count);
	for (;;) {
		struct blk_parsed p;
		uint32_t used_len = 1;
		uint64_t start_ns;

		/* The async ring has room for a whole queue; stop taking requests if it is full. */
		if (b->async && b->inflight >= BLK_QUEUE_SIZE) {
			metrics_inc(&b->m->io_engine_throttled_events);
			break;
		}
		got = virtq_pop(q, t->mem, &c);
		if (got <= 0)
			break;
		if (parse_request(b, &c, &p) < 0) {
			metrics_inc(&b->m->invalid_reqs_count);
			got = -EINVAL;
			break;
		}
		if (p.status != BLK_S_OK)
			metrics_inc(&b->m->invalid_reqs_count);
		start_ns = mono_ns();
		/* GET_ID and transfers of no data are done on the spot by either engine. */
		if (p.status == BLK_S_OK && b->async && p.type != BLK_T_GET_ID &&
		    (p.type == BLK_T_FLUSH || p.data_len > 0)) {
			if (async_submit(b, &c, &p, start_ns) == 0) {
				submitted = true;
				continue;
			}
			p.status = BLK_S_IOERR;
		}
		if (p.status == BLK_S_OK)
			p.status = sync_execute(b, &c, &p, &used_len);
		count(b, p.type, p.data_len, p.status == BLK_S_OK, start_ns);
		if (complete(b, c.head, p.status_gpa, p.status, used_len) < 0) {
			got = -EFAULT;
			break;
		}
		used = true;
	}
	if (submitted)
		io_uring_submit(&b->ring);
	metrics_set(&b->m->remaining_reqs_count, b->inflight);
	if (used)
		virtio_mmio_signal_used(t, qi);
	if (got < 0)
		virtio_mmio_needs_reset(t, "the guest broke the request queue's rules");
}

static void on_ring_event(void *opaque, int fd, uint32_t events)
{
	struct virtio_blk *b = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("virtio-blk %s: io_uring eventfd: %s", b->id, strerror(errno));
	virtio_mmio_lock(&b->mmio);
	if (reap(b, false) > 0 && b->mmio.activated) {
		virtio_mmio_signal_used(&b->mmio, 0);
		/* Requests left waiting for a free slot go now. */
		if (!(b->mmio.status & VIRTIO_STATUS_NEEDS_RESET))
			blk_notify(&b->mmio, 0);
	}
	virtio_mmio_unlock(&b->mmio);
}

static void blk_reset(struct virtio_mmio *t)
{
	struct virtio_blk *b = t->dev;

	/* Requests in flight finish before the queue is forgotten; their results are dropped. */
	t->activated = false;
	if (b->ring_ready)
		reap(b, true);
}

/* The four feature sets a drive can have, so the ops stay read-only. */
static const struct virtio_device_ops *blk_ops(bool ro, bool flush)
{
	static const uint64_t base = VIRTIO_BIT(BLK_F_SEG_MAX);
#define BLK_OPS(f)                                                                          \
	{ .name = "blk", .device_id = VIRTIO_ID_BLOCK, .nr_queues = 1,                     \
	  .queue_max = BLK_QUEUE_SIZE, .features = (f), .config_size = CONFIG_LEN,          \
	  .config_read = blk_config_read, .reset = blk_reset, .notify = blk_notify }
	static const struct virtio_device_ops ops[4] = {
		BLK_OPS(base),
		BLK_OPS(base | VIRTIO_BIT(BLK_F_FLUSH)),
		BLK_OPS(base | VIRTIO_BIT(BLK_F_RO)),
		BLK_OPS(base | VIRTIO_BIT(BLK_F_RO) | VIRTIO_BIT(BLK_F_FLUSH)),
	};
#undef BLK_OPS
	return &ops[(ro ? 2 : 0) + (flush ? 1 : 0)];
}

static int open_backing(struct virtio_blk *b, const char *path)
{
	struct stat st;
	uint64_t bytes;

	b->fd = open(path, (b->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0)
		return -errno;
	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0)
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else {
		return -EINVAL;
	}
	b->sectors = bytes / SECTOR;
	return 0;
}

/* io_uring_register(2) on the ring. Debian's liburing 2.3 declares
 * io_uring_register_restrictions and io_uring_enable_rings but does not export them. */
static int ring_register(struct virtio_blk *b, unsigned op, void *arg, unsigned n)
{
	return syscall(__NR_io_uring_register, b->ring.ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/*
 * io_uring operations never pass through seccomp, so the ring itself is restricted: it starts
 * disabled, gets its eventfd, then allows only the three operations the engine submits (and
 * no further io_uring_register call, no SQE flag) before it is enabled.
 */
static int start_ring(struct virtio_blk *b)
{
	struct io_uring_restriction allow[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
	};
	int ret;

	b->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*b->reqs));
	if (!b->reqs)
		return -ENOMEM;
	ret = io_uring_queue_init(BLK_QUEUE_SIZE, &b->ring, IORING_SETUP_R_DISABLED);
	if (ret < 0)
		return ret;
	b->ring_ready = true;
	b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ring_efd < 0)
		return -errno;
	ret = io_uring_register_eventfd(&b->ring, b->ring_efd);
	if (ret == 0)
		ret = ring_register(b, IORING_REGISTER_RESTRICTIONS, allow,
				    sizeof(allow) / sizeof(allow[0]));
	if (ret == 0)
		ret = ring_register(b, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		return ret;
	return event_loop_add(b->mmio.loop, b->ring_efd, EPOLLIN, on_ring_event, b);
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	virtio_mmio_destroy(&b->mmio); /* resets: waits for requests in flight */
	if (b->ring_efd >= 0) {
		event_loop_del(b->mmio.loop, b->ring_efd);
		close(b->ring_efd);
		b->ring_efd = -1;
	}
	if (b->ring_ready)
		io_uring_queue_exit(&b->ring);
	b->ring_ready = false;
	free(b->reqs);
	b->reqs = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

int virtio_blk_init(struct virtio_blk *b, const struct drive_config *d, struct guest_memory *mem,
		    struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
{
	int ret;

	*b = (struct virtio_blk){ .fd = -1, .ring_efd = -1, .read_only = d->is_read_only,
				  .flush = d->cache_type == CACHE_WRITEBACK,
				  .async = d->io_engine == IO_ENGINE_ASYNC };
	b->m = &b->own_metrics;
	snprintf(b->id, sizeof(b->id), "%s", d->drive_id);
	ret = open_backing(b, d->path_on_host);
	if (ret < 0) {
		log_error("drive %s: %s: %s", d->drive_id, d->path_on_host,
			  ret == -EINVAL ? "not a regular file or block device" : strerror(-ret));
		goto err;
	}
	ret = virtio_mmio_init(&b->mmio, blk_ops(b->read_only, b->flush), b, mem, loop, vm_fd,
			       base, irq);
	if (ret < 0)
		goto err;
	if (b->async) {
		ret = start_ring(b);
		if (ret < 0) {
			log_error("drive %s: io_engine Async: io_uring: %s", d->drive_id,
				  strerror(-ret));
			goto err;
		}
	}
	return 0;
err:
	virtio_blk_destroy(b);
	return ret;
}

void virtio_blk_drain(struct virtio_blk *b)
{
	virtio_mmio_lock(&b->mmio);
	if (b->ring_ready && reap(b, true) > 0 && b->mmio.activated)
		virtio_mmio_signal_used(&b->mmio, 0);
	if (b->fd >= 0 && fdatasync(b->fd) < 0 && errno != EINVAL)
		log_warn("virtio-blk %s: fdatasync: %s", b->id, strerror(errno));
	virtio_mmio_unlock(&b->mmio);
}
