/* virtio-vsock with Firecracker's hybrid unix-socket backend. */
#ifndef KILN_VIRTIO_VSOCK_H
#define KILN_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "device_config.h"
#include "mmio.h"

struct virtio_vsock {
	struct virtio_mmio mmio;
	/* Written by the vsock device's author: listening socket, connections, counters. */
	int listen_fd;
};

/* Listens on cfg->uds_path and sets the device up at base on irq; 0 or -errno (logged). */
int virtio_vsock_init(struct virtio_vsock *v, const struct vsock_config *cfg,
		      struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		      unsigned irq) __attribute__((warn_unused_result));

void virtio_vsock_destroy(struct virtio_vsock *v);

#endif
