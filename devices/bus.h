/* Dispatch of guest port I/O and MMIO accesses to the device that owns the address. */
#ifndef KILN_BUS_H
#define KILN_BUS_H

#include <stdint.h>

#define BUS_MAX_DEVICES 64

/* A device's handlers: offset is relative to the range's base; len is 1, 2, 4 or 8. */
struct bus_ops {
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

/* Ranges sorted by base; filled before vCPUs start and read-only after, so lookups take no lock. */
struct bus {
	unsigned nr;
	struct bus_range ranges[BUS_MAX_DEVICES];
};

/* Adds [base, base+len); -EEXIST if it overlaps a registered range, -ENOSPC if full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name) __attribute__((warn_unused_result));

/* The range holding addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatches a read: unclaimed addresses read as all ones, like an empty ISA bus.
 * Returns 1 if a device handled it, 0 if not.
 */
int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len);

/* Dispatches a write: unclaimed addresses swallow it. Returns 1 if handled, 0 if not. */
int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len);

#endif
