/* Firecracker's boot timer: the guest writes 123 to one MMIO byte when its init is up. */
#ifndef KILN_BOOT_TIMER_H
#define KILN_BOOT_TIMER_H

#include <stdint.h>

#include "bus.h"

#define BOOT_TIMER_MAGIC 123

struct boot_timer {
	uint64_t start_ns;     /* CLOCK_MONOTONIC when the clock started */
	uint64_t start_cpu_ns; /* process CPU time then */
	uint64_t boot_ns;      /* wall time to the guest's signal, 0 until it came */
};

extern const struct bus_ops boot_timer_bus_ops;

/* Starts the clock now. */
void boot_timer_start(struct boot_timer *t);

/* Nanoseconds since boot_timer_start. */
uint64_t boot_timer_elapsed_ns(const struct boot_timer *t);

#endif
