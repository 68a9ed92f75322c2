/* virtio-blk backed by a host file, with two engines: Sync (preadv/pwritev on the event-loop
 * thread) and Async (io_uring, completions back on the event loop). */
#ifndef KILN_VIRTIO_BLK_H
#define KILN_VIRTIO_BLK_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "device_config.h"
#include "metrics.h"
#include "mmio.h"

#define BLK_QUEUE_SIZE 256
#define BLK_SEG_MAX 128          /* data buffers per request, told to the driver */
#define BLK_ID_BYTES 20

/* Firecracker's per-drive block metrics ("block_<drive_id>" and their sum "block"); kiln has no
 * rate limiter or post-boot update, so those counters stay 0. */
#define BLOCK_METRICS(X, g)                                                                        \
	X(g, activate_fails, COUNTER)                                                              \
	X(g, cfg_fails, COUNTER)                                                                   \
	X(g, no_avail_buffer, COUNTER)                                                             \
	X(g, event_fails, COUNTER)                                                                 \
	X(g, execute_fails, COUNTER)                                                               \
	X(g, invalid_reqs_count, COUNTER)                                                          \
	X(g, flush_count, COUNTER)                                                                 \
	X(g, queue_event_count, COUNTER)                                                           \
	X(g, rate_limiter_event_count, COUNTER)                                                    \
	X(g, update_count, COUNTER)                                                                \
	X(g, update_fails, COUNTER)                                                                \
	X(g, read_bytes, COUNTER)                                                                  \
	X(g, write_bytes, COUNTER)                                                                 \
	X(g, read_count, COUNTER)                                                                  \
	X(g, write_count, COUNTER)                                                                 \
	X(g, read_agg, LATENCY)                                                                    \
	X(g, write_agg, LATENCY)                                                                   \
	X(g, rate_limiter_throttled_events, COUNTER)                                               \
	X(g, io_engine_throttled_events, COUNTER)                                                  \
	X(g, remaining_reqs_count, GAUGE)
METRICS_STRUCT(block, BLOCK_METRICS);
extern const struct metrics_class block_metrics_class;

struct blk_req {
	bool busy;
	uint16_t head;
	uint8_t type;
	uint64_t start_ns;   /* when it was submitted, for read_agg / write_agg */
	uint32_t used_len;   /* what the used ring reports on success */
	uint64_t expect;     /* bytes the operation must transfer */
	uint64_t status_gpa; /* the request's status byte */
	int nr_iov;
	struct iovec iov[BLK_SEG_MAX];
};

struct virtio_blk {
	struct virtio_mmio mmio;
	char id[BLK_ID_BYTES + 1];
	int fd;
	bool read_only;
	bool flush;          /* cache_type Writeback: offer flush and honour it */
	bool async;          /* io_engine Async */
	uint64_t sectors;

	/* Async engine: the ring, its completion eventfd, one slot per queue entry. */
	struct io_uring ring;
	bool ring_ready;
	int ring_efd;
	unsigned inflight;
	struct blk_req *reqs; /* BLK_QUEUE_SIZE slots */

	/* Counters: the device's own until the VM points m at the ones registered with the
	 * process's metrics (metrics_device_register). */
	struct metrics_block own_metrics;
	struct metrics_block *m;
};

/* Opens the drive's backing file and sets the device up at base on irq; 0 or -errno (logged). */
int virtio_blk_init(struct virtio_blk *b, const struct drive_config *d, struct guest_memory *mem,
		    struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
	__attribute__((warn_unused_result));

/*
 * For a snapshot of the paused VM: waits for the requests in flight and puts them on the used
 * ring (the guest sees them done after the restore), then flushes the backing file's data to
 * stable storage.
 */
void virtio_blk_drain(struct virtio_blk *b);

/* Waits for requests in flight, then releases everything. */
void virtio_blk_destroy(struct virtio_blk *b);

#endif
