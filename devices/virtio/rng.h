/* virtio-rng (Firecracker's "entropy" device): fills the guest's buffers from getrandom(2). */
#ifndef KILN_VIRTIO_RNG_H
#define KILN_VIRTIO_RNG_H

#include "mmio.h"

struct virtio_rng {
	struct virtio_mmio mmio;
	unsigned long long bytes; /* handed to the guest */
};

/* Sets the device up at base on irq; 0 or -errno (logged). */
int virtio_rng_init(struct virtio_rng *r, struct guest_memory *mem, struct event_loop *loop,
		    int vm_fd, uint64_t base, unsigned irq) __attribute__((warn_unused_result));

void virtio_rng_destroy(struct virtio_rng *r);

#endif
