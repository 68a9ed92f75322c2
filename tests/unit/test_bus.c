/* Unit tests for devices/bus.c: range registration, lookup at the edges, and dispatch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"

/* What the fake device saw last. */
struct recorder {
	unsigned reads, writes;
	uint64_t offset;
	uint32_t len;
	uint8_t data[8];
};

static void rec_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct recorder *r = opaque;

	r->reads++;
	r->offset = offset;
	r->len = len;
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(0x10 + offset + i);
}

static void rec_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct recorder *r = opaque;

	r->writes++;
	r->offset = offset;
	r->len = len;
	memcpy(r->data, data, len);
}

static const struct bus_ops rec_ops = { .read = rec_read, .write = rec_write };
static const struct bus_ops no_ops = { 0 };

static void bus_register_sorted_ranges_succeeds(void **state)
{
	struct bus bus = { 0 };

	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, NULL, "com1"), 0);
	assert_int_equal(bus_register(&bus, 0x60, 5, &rec_ops, NULL, "i8042"), 0);
	assert_int_equal(bus_register(&bus, 0x400, 1, &rec_ops, NULL, "x"), 0);
	assert_int_equal(bus_register(&bus, 0x3f0, 8, &rec_ops, NULL, "adjacent-below"), 0);
	assert_int_equal(bus_register(&bus, 0x400 + 1, 0xf, &rec_ops, NULL, "adjacent-above"), 0);
	assert_int_equal(bus.nr, 5);
	assert_int_equal(bus.ranges[0].base, 0x60);
	assert_int_equal(bus.ranges[1].base, 0x3f0);
	assert_int_equal(bus.ranges[2].base, 0x3f8);
	assert_int_equal(bus.ranges[3].base, 0x400);
	assert_int_equal(bus.ranges[4].base, 0x401);
	assert_string_equal(bus.ranges[2].name, "com1");
	assert_int_equal(bus.ranges[2].len, 8);
	assert_ptr_equal(bus.ranges[2].ops, &rec_ops);
}

static void bus_register_overlap_fails_eexist(void **state)
{
	struct bus bus = { 0 };

	assert_int_equal(bus_register(&bus, 0x100, 0x10, &rec_ops, NULL, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x200, 0x10, &rec_ops, NULL, "b"), 0);
	assert_int_equal(bus_register(&bus, 0x100, 0x10, &rec_ops, NULL, "same"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x100, 1, &rec_ops, NULL, "same-base"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x10f, 1, &rec_ops, NULL, "last-byte"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0xf0, 0x11, &rec_ops, NULL, "tail-in"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x108, 0x100, &rec_ops, NULL, "both"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x80, 0x1000, &rec_ops, NULL, "around"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x1ff, 2, &rec_ops, NULL, "head-in"), -EEXIST);
	assert_int_equal(bus.nr, 2);
	assert_int_equal(bus_register(&bus, 0x110, 0xf0, &rec_ops, NULL, "gap"), 0);
	assert_int_equal(bus.nr, 3);
}

static void bus_register_zero_or_wrapping_length_fails_einval(void **state)
{
	struct bus bus = { 0 };

	assert_int_equal(bus_register(&bus, 0x100, 0, &rec_ops, NULL, "empty"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, &rec_ops, NULL, "wraps"), -EINVAL);
	assert_int_equal(bus.nr, 0);
}

static void bus_register_full_fails_enospc(void **state)
{
	struct bus bus = { 0 };

	for (unsigned i = 0; i < BUS_MAX_DEVICES; i++)
		assert_int_equal(bus_register(&bus, 0x1000 + 0x10 * i, 0x10, &rec_ops, NULL, "d"),
				 0);
	assert_int_equal(bus.nr, BUS_MAX_DEVICES);
	assert_int_equal(bus_register(&bus, 0x100000, 1, &rec_ops, NULL, "one-more"), -ENOSPC);
	assert_int_equal(bus.nr, BUS_MAX_DEVICES);
	for (unsigned i = 0; i < BUS_MAX_DEVICES; i++)
		assert_int_equal(bus.ranges[i].base, 0x1000 + 0x10 * i);
}

static void bus_find_edges_inside_only(void **state)
{
	struct bus bus = { 0 };
	const struct bus_range *r;

	assert_null(bus_find(&bus, 0));
	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, NULL, "com1"), 0);
	assert_int_equal(bus_register(&bus, 0x60, 5, &rec_ops, NULL, "i8042"), 0);
	assert_int_equal(bus_register(&bus, 0x70, 2, &rec_ops, NULL, "rtc"), 0);

	assert_null(bus_find(&bus, 0x3f7));
	r = bus_find(&bus, 0x3f8);
	assert_non_null(r);
	assert_string_equal(r->name, "com1");
	r = bus_find(&bus, 0x3ff);
	assert_non_null(r);
	assert_string_equal(r->name, "com1");
	assert_null(bus_find(&bus, 0x400));

	assert_null(bus_find(&bus, 0x5f));
	assert_string_equal(bus_find(&bus, 0x60)->name, "i8042");
	assert_string_equal(bus_find(&bus, 0x64)->name, "i8042");
	assert_null(bus_find(&bus, 0x65));
	assert_null(bus_find(&bus, 0x6f));
	assert_string_equal(bus_find(&bus, 0x70)->name, "rtc");
	assert_string_equal(bus_find(&bus, 0x71)->name, "rtc");
	assert_null(bus_find(&bus, 0x72));
	assert_null(bus_find(&bus, 0));
	assert_null(bus_find(&bus, UINT64_MAX));
}

static void bus_find_near_top_of_address_space_no_wrap(void **state)
{
	struct bus bus = { 0 };

	assert_int_equal(bus_register(&bus, UINT64_MAX - 0x1f, 0x10, &rec_ops, NULL, "top"), 0);
	assert_non_null(bus_find(&bus, UINT64_MAX - 0x1f));
	assert_non_null(bus_find(&bus, UINT64_MAX - 0x10));
	assert_null(bus_find(&bus, UINT64_MAX - 0xf));
	assert_null(bus_find(&bus, UINT64_MAX));
	assert_null(bus_find(&bus, UINT64_MAX - 0x20));
}

static void bus_read_claimed_dispatches_relative_offset(void **state)
{
	struct bus bus = { 0 };
	struct recorder rec = { 0 };
	uint8_t data[4] = { 0 };

	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, &rec, "com1"), 0);
	assert_int_equal(bus_read(&bus, 0x3fd, data, 1), 1);
	assert_int_equal(rec.reads, 1);
	assert_int_equal(rec.offset, 5);
	assert_int_equal(rec.len, 1);
	assert_int_equal(data[0], 0x15);

	assert_int_equal(bus_read(&bus, 0x3fc, data, 4), 1);
	assert_int_equal(rec.reads, 2);
	assert_int_equal(rec.offset, 4);
	assert_int_equal(rec.len, 4);
	assert_int_equal(data[0], 0x14);
	assert_int_equal(data[3], 0x17);
}

static void bus_read_unclaimed_returns_all_ones(void **state)
{
	struct bus bus = { 0 };
	struct recorder rec = { 0 };
	uint8_t data[8];
	static const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	memset(data, 0, sizeof(data));
	assert_int_equal(bus_read(&bus, 0x80, data, 8), 0);
	assert_memory_equal(data, ones, 8);

	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, &rec, "com1"), 0);
	memset(data, 0, sizeof(data));
	assert_int_equal(bus_read(&bus, 0x3f7, data, 2), 0);
	assert_memory_equal(data, ones, 2);
	assert_int_equal(data[2], 0);
	assert_int_equal(rec.reads, 0);
}

static void bus_read_no_read_handler_returns_all_ones(void **state)
{
	struct bus bus = { 0 };
	uint8_t data[2] = { 0, 0 };

	assert_int_equal(bus_register(&bus, 0x80, 1, &no_ops, NULL, "post"), 0);
	assert_int_equal(bus_read(&bus, 0x80, data, 1), 0);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0);
}

static void bus_read_crossing_end_not_dispatched(void **state)
{
	struct bus bus = { 0 };
	struct recorder rec = { 0 };
	uint8_t data[4] = { 0 };

	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, &rec, "com1"), 0);
	assert_int_equal(bus_read(&bus, 0x3fe, data, 4), 0);
	assert_int_equal(rec.reads, 0);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[3], 0xff);
	assert_int_equal(bus_read(&bus, 0x3fc, data, 4), 1); /* ends on the last byte */
	assert_int_equal(rec.reads, 1);
}

static void bus_write_claimed_dispatches_relative_offset(void **state)
{
	struct bus bus = { 0 };
	struct recorder rec = { 0 };
	static const uint8_t v[2] = { 0xab, 0xcd };

	assert_int_equal(bus_register(&bus, 0xd0000000ull, 0x1000, &rec_ops, &rec, "mmio"), 0);
	assert_int_equal(bus_write(&bus, 0xd0000ffeull, v, 2), 1);
	assert_int_equal(rec.writes, 1);
	assert_int_equal(rec.offset, 0xffe);
	assert_int_equal(rec.len, 2);
	assert_memory_equal(rec.data, v, 2);
}

static void bus_write_unclaimed_or_crossing_not_dispatched(void **state)
{
	struct bus bus = { 0 };
	struct recorder rec = { 0 };
	static const uint8_t v[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	assert_int_equal(bus_write(&bus, 0x3f8, v, 1), 0);
	assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, &rec, "com1"), 0);
	assert_int_equal(bus_register(&bus, 0x80, 1, &no_ops, NULL, "post"), 0);
	assert_int_equal(bus_write(&bus, 0x3f7, v, 1), 0);
	assert_int_equal(bus_write(&bus, 0x400, v, 1), 0);
	assert_int_equal(bus_write(&bus, 0x3ff, v, 2), 0);
	assert_int_equal(bus_write(&bus, 0x3f9, v, 8), 0);
	assert_int_equal(bus_write(&bus, 0x80, v, 1), 0);
	assert_int_equal(rec.writes, 0);
	assert_int_equal(bus_write(&bus, 0x3f8, v, 8), 1);
	assert_int_equal(rec.writes, 1);
	assert_int_equal(rec.offset, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(bus_register_sorted_ranges_succeeds),
		T(bus_register_overlap_fails_eexist),
		T(bus_register_zero_or_wrapping_length_fails_einval),
		T(bus_register_full_fails_enospc),
		T(bus_find_edges_inside_only),
		T(bus_find_near_top_of_address_space_no_wrap),
		T(bus_read_claimed_dispatches_relative_offset),
		T(bus_read_unclaimed_returns_all_ones),
		T(bus_read_no_read_handler_returns_all_ones),
		T(bus_read_crossing_end_not_dispatched),
		T(bus_write_claimed_dispatches_relative_offset),
		T(bus_write_unclaimed_or_crossing_not_dispatched),
	};
#undef T

	return cmocka_run_group_tests_name("bus.c", tests, NULL, NULL);
}
