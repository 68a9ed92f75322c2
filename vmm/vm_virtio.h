/* The VM's virtio-mmio devices: built from the configuration's device sections, each given a
 * 4 KiB window and an IRQ line, and announced on the kernel command line. */
#ifndef KILN_VM_VIRTIO_H
#define KILN_VM_VIRTIO_H

#include <stdbool.h>

#include "blk.h"
#include "device_config.h"
#include "net.h"
#include "rng.h"
#include "vsock.h"

#define VM_VIRTIO_CMDLINE_MAX 2048

struct vm_virtio {
	unsigned nr_blk, nr_net, nr_slots;
	bool has_vsock, has_rng;
	struct virtio_blk blk[CONFIG_MAX_VIRTIO_DEVICES];
	struct virtio_net net[CONFIG_MAX_VIRTIO_DEVICES];
	struct virtio_vsock vsock;
	struct virtio_rng rng;
	/* " virtio_mmio.device=4K@0x...:IRQ ..." and the root= arguments, appended to boot_args. */
	char cmdline[VM_VIRTIO_CMDLINE_MAX];
};

struct vm;

/*
 * Creates every device cfg asks for, root drive first (it becomes /dev/vda), then the other
 * drives, network interfaces, vsock and entropy, registers them on the MMIO bus and fills
 * vm->virtio.cmdline. 0 or -errno, logged, with nothing left behind.
 */
int vm_virtio_init(struct vm *vm) __attribute__((warn_unused_result));

/* Destroys the devices in reverse order. */
void vm_virtio_exit(struct vm *vm);

#endif
