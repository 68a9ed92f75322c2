/* 16550A-compatible UART (COM1): guest output to a file descriptor, host input into its FIFO. */
#ifndef KILN_SERIAL_H
#define KILN_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

#define SERIAL_PORT_BASE 0x3f8
#define SERIAL_PORT_LEN 8
#define SERIAL_RX_FIFO 64

/* Drives the UART's interrupt line to level (1 asserted, 0 deasserted). */
typedef void (*serial_irq_fn)(void *opaque, int level);

struct serial {
	pthread_mutex_t lock;
	int out_fd;
	serial_irq_fn set_irq;
	void *irq_opaque;
	int irq_level;

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_pending; /* transmitter-empty interrupt pending */
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;

	uint64_t tx_bytes, rx_bytes, tx_errors;
};

extern const struct bus_ops serial_bus_ops;

/* Resets the UART; guest output goes to out_fd, the interrupt through set_irq. */
void serial_init(struct serial *s, int out_fd, serial_irq_fn set_irq, void *irq_opaque);

/* Releases the lock; the caller owns out_fd. */
void serial_destroy(struct serial *s);

/* Bytes the receive FIFO can take now. */
size_t serial_rx_space(struct serial *s);

/* Queues up to n host bytes for the guest; returns how many were taken (never drops). */
size_t serial_rx_push(struct serial *s, const uint8_t *buf, size_t n);

#endif
