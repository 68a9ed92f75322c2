/* virtio-net on a host TAP device, with checksum and segmentation offloads negotiated. */
#ifndef KILN_VIRTIO_NET_H
#define KILN_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "device_config.h"
#include "mmio.h"

struct virtio_net {
	struct virtio_mmio mmio;
	/* Written by the net device's author: TAP fd, MAC, rx/tx state, counters. */
	int tap_fd;
};

/* Opens the TAP device cfg->host_dev_name and sets the device up at base on irq; 0 or -errno
 * (logged). */
int virtio_net_init(struct virtio_net *n, const struct net_config *cfg, struct guest_memory *mem,
		    struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
	__attribute__((warn_unused_result));

void virtio_net_destroy(struct virtio_net *n);

#endif
