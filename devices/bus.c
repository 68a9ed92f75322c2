/* Address-range bus: sorted ranges, binary search, no locking after setup. */
#include "bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name)
{
	unsigned at = 0;

	if (len == 0 || base + len < base)
		return -EINVAL;
	if (bus->nr == BUS_MAX_DEVICES)
		return -ENOSPC;
	while (at < bus->nr && bus->ranges[at].base < base)
		at++;
	if (at > 0 && bus->ranges[at - 1].base + bus->ranges[at - 1].len > base)
		return -EEXIST;
	if (at < bus->nr && base + len > bus->ranges[at].base)
		return -EEXIST;
	memmove(&bus->ranges[at + 1], &bus->ranges[at], (bus->nr - at) * sizeof(bus->ranges[0]));
	bus->ranges[at] = (struct bus_range){ base, len, ops, opaque, name };
	bus->nr++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len)
{
	const struct bus_range *r = bus_find(bus, addr);

	if (!r || !r->ops->read || len > r->len - (addr - r->base)) {
		memset(data, 0xff, len);
		return 0;
	}
	r->ops->read(r->opaque, addr - r->base, data, len);
	return 1;
}

int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len)
{
	const struct bus_range *r = bus_find(bus, addr);

	if (!r || !r->ops->write || len > r->len - (addr - r->base))
		return 0;
	r->ops->write(r->opaque, addr - r->base, data, len);
	return 1;
}
