/* Unit tests for vmm/memory.c: RAM layout around the MMIO gap, the sealed memfd, the accessor. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "layout_x86_64.h"
#include "log.h"
#include "memory.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define HUGE_2M (2 * MIB)

static void guest_memory_layout_below_gap_one_region(void **state)
{
	struct guest_memory gm;

	memset(&gm, 0xa5, sizeof(gm));
	guest_memory_layout(&gm, 128 * MIB);
	assert_int_equal(gm.size, 128 * MIB);
	assert_int_equal(gm.nr_regions, 1);
	assert_int_equal(gm.regions[0].gpa, 0);
	assert_int_equal(gm.regions[0].size, 128 * MIB);
	assert_int_equal(gm.regions[0].offset, 0);
}

static void guest_memory_layout_exactly_gap_start_one_region(void **state)
{
	struct guest_memory gm;

	guest_memory_layout(&gm, LAYOUT_MMIO_GAP_START);
	assert_int_equal(gm.nr_regions, 1);
	assert_int_equal(gm.regions[0].gpa, 0);
	assert_int_equal(gm.regions[0].size, 0xd0000000ull);
}

static void guest_memory_layout_above_gap_splits_at_4g(void **state)
{
	struct guest_memory gm;

	guest_memory_layout(&gm, 5 * GIB);
	assert_int_equal(gm.size, 5 * GIB);
	assert_int_equal(gm.nr_regions, 2);
	assert_int_equal(gm.regions[0].gpa, 0);
	assert_int_equal(gm.regions[0].size, 0xd0000000ull);
	assert_int_equal(gm.regions[0].offset, 0);
	assert_int_equal(gm.regions[1].gpa, 0x100000000ull);
	assert_int_equal(gm.regions[1].size, 5 * GIB - 0xd0000000ull);
	assert_int_equal(gm.regions[1].offset, 0xd0000000ull);
}

static void guest_memory_create_16m_returns_sealed_memfd(void **state)
{
	struct guest_memory gm;
	uint8_t byte = 0;
	int seals;

	assert_int_equal(guest_memory_create(&gm, 16 * MIB, false), 0);
	assert_true(gm.fd >= 0);
	assert_non_null(gm.host);
	assert_int_equal(gm.size, 16 * MIB);
	assert_int_equal(gm.page_size, 4096);
	assert_int_equal(gm.nr_regions, 1);
	assert_int_equal(lseek(gm.fd, 0, SEEK_END), 16 * MIB);

	seals = fcntl(gm.fd, F_GET_SEALS);
	assert_int_equal(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_int_equal(ftruncate(gm.fd, 8 * MIB), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(gm.fd, 32 * MIB), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(gm.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);

	/* The mapping is shared with the memfd: a write through one shows through the other. */
	gm.host[12345] = 0x5a;
	assert_int_equal(pread(gm.fd, &byte, 1, 12345), 1);
	assert_int_equal(byte, 0x5a);

	guest_memory_destroy(&gm);
	assert_int_equal(gm.fd, -1);
	assert_null(gm.host);
	guest_memory_destroy(&gm); /* twice is harmless */
}

static void guest_memory_create_unaligned_size_fails_einval(void **state)
{
	struct guest_memory gm;

	assert_int_equal(guest_memory_create(&gm, 16 * MIB + 100, false), -EINVAL);
	assert_int_equal(gm.fd, -1);
	assert_null(gm.host);
	guest_memory_destroy(&gm);
	assert_int_equal(guest_memory_create(&gm, 16 * MIB + 4096, true), -EINVAL);
	assert_int_equal(gm.fd, -1);
	assert_null(gm.host);
}

static void guest_memory_create_more_hugepages_than_free_fails_enomem(void **state)
{
	struct guest_memory gm;
	long nr_free = guest_memory_free_hugepages();
	uint64_t pages = nr_free > 0 ? (uint64_t)nr_free + 1 : 1;

	/* Never allocates: the free-page check runs before the memfd exists. */
	assert_int_equal(guest_memory_create(&gm, pages * HUGE_2M, true), -ENOMEM);
	assert_int_equal(gm.fd, -1);
	assert_null(gm.host);
}

static long read_nr_hugepages(void)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "re");
	long n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

static void guest_memory_create_huge_with_free_pages_succeeds(void **state)
{
	struct guest_memory gm;

	if (read_nr_hugepages() <= 0 || guest_memory_free_hugepages() < 1) {
		skip(); /* no 2 MiB hugepages reserved on this host */
		return;
	}
	assert_int_equal(guest_memory_create(&gm, HUGE_2M, true), 0);
	assert_int_equal(gm.page_size, HUGE_2M);
	assert_int_equal(gm.size, HUGE_2M);
	guest_memory_destroy(&gm);
}

static int mem16_setup(void **state)
{
	static struct guest_memory gm;

	if (guest_memory_create(&gm, 16 * MIB, false) < 0)
		return -1;
	*state = &gm;
	return 0;
}

static int mem_teardown(void **state)
{
	guest_memory_destroy(*state);
	return 0;
}

static void guest_memory_ptr_past_end_or_wrapping_null(void **state)
{
	struct guest_memory *gm = *state;

	assert_ptr_equal(guest_memory_ptr(gm, 0, 1), gm->host);
	assert_ptr_equal(guest_memory_ptr(gm, 0, 16 * MIB), gm->host);
	assert_ptr_equal(guest_memory_ptr(gm, 16 * MIB - 1, 1), gm->host + 16 * MIB - 1);
	assert_ptr_equal(guest_memory_ptr(gm, 16 * MIB - 8, 8), gm->host + 16 * MIB - 8);
	assert_null(guest_memory_ptr(gm, 16 * MIB, 1));
	assert_null(guest_memory_ptr(gm, 16 * MIB - 8, 9));
	assert_null(guest_memory_ptr(gm, 0, 16 * MIB + 1));
	assert_null(guest_memory_ptr(gm, 0x1000, 0));
	assert_null(guest_memory_ptr(gm, 0x1000, UINT64_MAX));
	assert_null(guest_memory_ptr(gm, UINT64_MAX, 2));
	assert_null(guest_memory_ptr(gm, UINT64_MAX - 0xfff, 0x2000));
	assert_null(guest_memory_ptr(gm, 16 * MIB - 1, UINT64_MAX));
}

static void guest_memory_ptr_no_mapping_null(void **state)
{
	struct guest_memory gm;

	guest_memory_layout(&gm, 16 * MIB);
	gm.host = NULL;
	assert_null(guest_memory_ptr(&gm, 0, 1));
}

/* A 5 GiB layout over an inaccessible reservation: the accessor only does arithmetic on it. */
static void guest_memory_ptr_across_gap_null(void **state)
{
	struct guest_memory gm = { 0 };
	uint8_t *host = mmap(NULL, 5 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     -1, 0);

	assert_true(host != MAP_FAILED);
	guest_memory_layout(&gm, 5 * GIB);
	gm.host = host;
	assert_ptr_equal(guest_memory_ptr(&gm, 0xd0000000ull - 1, 1), host + 0xcfffffffull);
	assert_null(guest_memory_ptr(&gm, 0xd0000000ull - 1, 2));
	assert_null(guest_memory_ptr(&gm, 0xd0000000ull, 1));
	assert_null(guest_memory_ptr(&gm, 0xffffffffull, 1));
	assert_null(guest_memory_ptr(&gm, 0xd0000000ull - 4096, 0x30001000ull));
	assert_ptr_equal(guest_memory_ptr(&gm, 0x100000000ull, 1), host + 0xd0000000ull);
	assert_ptr_equal(guest_memory_ptr(&gm, 0x100000000ull + 0x70000000ull - 1, 1),
			 host + 5 * GIB - 1);
	assert_null(guest_memory_ptr(&gm, 0x100000000ull + 0x70000000ull, 1));
	assert_null(guest_memory_ptr(&gm, 0x100000000ull + 0x70000000ull - 1, 2));
	assert_null(guest_memory_ptr(&gm, 0x100000000ull, UINT64_MAX));
	munmap(host, 5 * GIB);
}

static void guest_memory_write_read_round_trip_same_bytes(void **state)
{
	struct guest_memory *gm = *state;
	static const uint8_t src[] = { 1, 2, 3, 4, 5, 6, 7, 0xff };
	uint8_t dst[sizeof(src)] = { 0 };

	assert_int_equal(guest_memory_write(gm, 0x12345, src, sizeof(src)), 0);
	assert_memory_equal(gm->host + 0x12345, src, sizeof(src));
	assert_int_equal(guest_memory_read(gm, 0x12345, dst, sizeof(dst)), 0);
	assert_memory_equal(dst, src, sizeof(src));

	assert_int_equal(guest_memory_write(gm, 16 * MIB - sizeof(src), src, sizeof(src)), 0);
	memset(dst, 0, sizeof(dst));
	assert_int_equal(guest_memory_read(gm, 16 * MIB - sizeof(src), dst, sizeof(dst)), 0);
	assert_memory_equal(dst, src, sizeof(src));
}

static void guest_memory_write_read_outside_ram_fail_efault(void **state)
{
	struct guest_memory *gm = *state;
	uint8_t buf[8] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };
	static const uint8_t ones[8] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };

	memset(gm->host + 16 * MIB - 4, 0, 4);
	assert_int_equal(guest_memory_write(gm, 16 * MIB - 4, buf, 8), -EFAULT);
	assert_int_equal(gm->host[16 * MIB - 1], 0); /* nothing partial */
	assert_int_equal(guest_memory_write(gm, 16 * MIB, buf, 1), -EFAULT);
	assert_int_equal(guest_memory_write(gm, 0, buf, 0), -EFAULT);
	assert_int_equal(guest_memory_read(gm, 16 * MIB - 4, buf, 8), -EFAULT);
	assert_memory_equal(buf, ones, sizeof(ones));
	assert_int_equal(guest_memory_read(gm, UINT64_MAX, buf, 1), -EFAULT);
}

static int group_setup(void **state)
{
	/* The failure paths log by design; keep the test output to the results. */
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
#define TM(f) cmocka_unit_test_setup_teardown(f, mem16_setup, mem_teardown)
	const struct CMUnitTest tests[] = {
		T(guest_memory_layout_below_gap_one_region),
		T(guest_memory_layout_exactly_gap_start_one_region),
		T(guest_memory_layout_above_gap_splits_at_4g),
		T(guest_memory_create_16m_returns_sealed_memfd),
		T(guest_memory_create_unaligned_size_fails_einval),
		T(guest_memory_create_more_hugepages_than_free_fails_enomem),
		T(guest_memory_create_huge_with_free_pages_succeeds),
		TM(guest_memory_ptr_past_end_or_wrapping_null),
		T(guest_memory_ptr_no_mapping_null),
		T(guest_memory_ptr_across_gap_null),
		TM(guest_memory_write_read_round_trip_same_bytes),
		TM(guest_memory_write_read_outside_ram_fail_efault),
	};
#undef T
#undef TM

	return cmocka_run_group_tests_name("memory.c", tests, group_setup, NULL);
}
