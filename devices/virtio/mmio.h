/* The virtio-mmio transport (version 2): registers, feature negotiation, queue setup, and the
 * fast paths: queue notifications arrive on ioeventfds, interrupts leave through an irqfd. */
#ifndef KILN_VIRTIO_MMIO_H
#define KILN_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "event_loop.h"
#include "memory.h"
#include "queue.h"

#define VIRTIO_MMIO_MAX_QUEUES 4
#define VIRTIO_MMIO_CONFIG 0x100u

struct virtio_mmio;

/*
 * What a device tells its transport. The callbacks run with the transport's lock held: on a
 * vCPU thread for config and status changes, on the event-loop thread for notify.
 */
struct virtio_device_ops {
	const char *name;
	uint32_t device_id;
	unsigned nr_queues;
	uint16_t queue_max;
	uint64_t features;   /* device-specific bits; the transport adds VERSION_1 and EVENT_IDX */
	uint32_t config_size;
	/* [off, off+len) lies inside config_size. */
	void (*config_read)(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_mmio *t, uint32_t off, const uint8_t *data,
			     uint32_t len);
	/* The driver set DRIVER_OK: start the backend. -errno makes the device need a reset. */
	int (*activate)(struct virtio_mmio *t);
	/* The driver reset the device (or it is going away): stop the backend, drop requests. */
	void (*reset)(struct virtio_mmio *t);
	/* The driver kicked queue q (or a backend asks for another pass over it). */
	void (*notify)(struct virtio_mmio *t, unsigned q);
};

struct virtio_notify_slot {
	struct virtio_mmio *t;
	unsigned queue;
	int fd; /* the queue's ioeventfd */
};

struct virtio_mmio {
	const struct virtio_device_ops *ops;
	void *dev;                /* the device's own state */
	struct guest_memory *mem;
	struct event_loop *loop;
	int vm_fd;
	uint64_t base;
	unsigned irq;
	int irqfd;

	pthread_mutex_t lock;     /* registers and queues; held by every callback */
	uint32_t status;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	atomic_uint interrupt_status;
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
	struct virtio_notify_slot notify[VIRTIO_MMIO_MAX_QUEUES];
	bool activated;
	unsigned long long nr_signals; /* interrupts raised */
};

extern const struct bus_ops virtio_mmio_bus_ops;

/*
 * Sets up the transport for one device at guest-physical base on legacy IRQ irq: its irqfd and
 * one ioeventfd per queue, watched on loop. vm_fd -1 (unit tests) skips KVM: notifications
 * then arrive only through MMIO writes and interrupts are counted, not raised. 0 or -errno
 * (logged); on failure nothing is left behind.
 */
int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_device_ops *ops, void *dev,
		     struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		     unsigned irq) __attribute__((warn_unused_result));

/* Resets the device and releases the eventfds. Safe on a zeroed transport. */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* The device has used buffers on queue q: interrupt the driver if it wants one. Lock held. */
void virtio_mmio_signal_used(struct virtio_mmio *t, unsigned q);

/* The guest broke a ring's rules or the backend failed: set DEVICE_NEEDS_RESET and tell the
 * driver through a configuration interrupt. Lock held. */
void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why);

/* Whether queue q may be processed now: the device is activated, not broken, the queue ready. */
bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned q);

/* Whether the driver negotiated feature bit. */
bool virtio_mmio_has_feature(const struct virtio_mmio *t, unsigned bit);

/*
 * After a restore wrote the transport's saved registers and queues into t (status, features,
 * selectors, interrupt status, each queue's configuration and ring positions): checks them as
 * the register writes would have (features offered, queues valid), restarts the backend of a
 * device the driver had started, lets the event loop pick up buffers queued but not taken, and
 * raises an interrupt the driver had not acknowledged. 0, or -errno with the reason in err.
 */
int virtio_mmio_restore(struct virtio_mmio *t, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* For backends' event handlers on the loop thread: run fn(t) with the lock held. */
void virtio_mmio_lock(struct virtio_mmio *t);
void virtio_mmio_unlock(struct virtio_mmio *t);

#endif
