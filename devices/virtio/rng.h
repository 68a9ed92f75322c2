/* virtio-rng (Firecracker's "entropy" device): fills the guest's buffers from getrandom(2). */
#ifndef KILN_VIRTIO_RNG_H
#define KILN_VIRTIO_RNG_H

#include "metrics.h"
#include "mmio.h"

/* Firecracker's entropy metrics, written as one "entropy" object. */
#define ENTROPY_METRICS(X, g)                                                                      \
	X(g, activate_fails, COUNTER)                                                              \
	X(g, entropy_event_fails, COUNTER)                                                         \
	X(g, entropy_event_count, COUNTER)                                                         \
	X(g, entropy_bytes, COUNTER)                                                               \
	X(g, host_rng_fails, COUNTER)                                                              \
	X(g, entropy_rate_limiter_throttled, COUNTER)                                              \
	X(g, rate_limiter_event_count, COUNTER)
METRICS_STRUCT(entropy, ENTROPY_METRICS);
extern const struct metrics_class entropy_metrics_class;

struct virtio_rng {
	struct virtio_mmio mmio;
	/* The device's own counters until the VM points m at registered ones. */
	struct metrics_entropy own_metrics;
	struct metrics_entropy *m;
};

/* Sets the device up at base on irq; 0 or -errno (logged). */
int virtio_rng_init(struct virtio_rng *r, struct guest_memory *mem, struct event_loop *loop,
		    int vm_fd, uint64_t base, unsigned irq) __attribute__((warn_unused_result));

void virtio_rng_destroy(struct virtio_rng *r);

#endif
