/* Minimal i8042 keyboard controller: guest reset through 0xFE and Ctrl+Alt+Del injection. */
#ifndef KILN_I8042_H
#define KILN_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_PORT_BASE I8042_DATA_PORT
#define I8042_PORT_LEN 5 /* 0x60..0x64: the bus range spans both ports */
#define I8042_BUF_LEN 16

typedef void (*i8042_irq_fn)(void *opaque, int level);
typedef void (*i8042_reset_fn)(void *opaque);

struct i8042 {
	pthread_mutex_t lock;
	i8042_irq_fn set_irq;
	i8042_reset_fn reset;
	void *opaque;
	int irq_level;

	uint8_t ctr;         /* controller configuration byte */
	uint8_t status;
	uint8_t pending_cmd; /* command waiting for its data byte, or 0 */
	uint8_t buf[I8042_BUF_LEN];
	unsigned head, count;
	uint8_t last;        /* what a read of an empty buffer returns */
	uint64_t resets;
};

extern const struct bus_ops i8042_bus_ops;

/* Resets the controller; reset() is called when the guest pulses the CPU reset line. */
void i8042_init(struct i8042 *k, i8042_irq_fn set_irq, i8042_reset_fn reset, void *opaque);

void i8042_destroy(struct i8042 *k);

/* Queues the scancodes of Ctrl+Alt+Del (set 2) and interrupts the guest. -ENOSPC if full. */
int i8042_send_ctrl_alt_del(struct i8042 *k) __attribute__((warn_unused_result));

#endif
