/* The state of kiln's emulated devices in the state format: the UART, the i8042, and each
 * virtio-mmio transport with its queues. Backends (files, taps, sockets) are reopened from the
 * configuration; only what the guest can observe is carried. */
#ifndef KILN_DEVICE_STATE_H
#define KILN_DEVICE_STATE_H

#include <stddef.h>

#include "i8042.h"
#include "mmio.h"
#include "serial.h"
#include "state.h"

#define DEVICE_STATE_VERSION 1u

void device_state_save_serial(struct serial *s, struct state_buf *b);
void device_state_save_i8042(struct i8042 *k, struct state_buf *b);
/* The transport's registers and queues; its lock is taken. */
void device_state_save_virtio(struct virtio_mmio *t, struct state_buf *b);

/*
 * Loads a payload written by the matching save into a device just created from the same
 * configuration (before any vCPU runs). The virtio load then restarts the device through
 * virtio_mmio_restore. 0, or -EINVAL with the reason in err: a truncated or oversized payload,
 * a device of another type or address, a FIFO count out of range.
 */
int device_state_load_serial(struct serial *s, struct state_cursor *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int device_state_load_i8042(struct i8042 *k, struct state_cursor *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int device_state_load_virtio(struct virtio_mmio *t, struct state_cursor *c, char *err,
			     size_t errlen) __attribute__((warn_unused_result));

#endif
