/* Unit tests for vmm/mptable_x86_64.c: the MP floating pointer and configuration table, decoded. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "layout_x86_64.h"
#include "log.h"
#include "memory.h"
#include "mptable_x86_64.h"

#define NR_IRQS 24
#define BUF_LEN 2048

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

/* Decodes a whole table built for nr_cpus at base and checks every field. */
static void check_table(const uint8_t *buf, size_t len, unsigned nr_cpus, uint64_t base)
{
	const uint8_t *mpc = buf + 16, *e;
	unsigned cpus = 0, buses = 0, ioapics = 0, intsrcs = 0, lints = 0;

	assert_int_equal(len, 16 + 44 + 20 * nr_cpus + 8 * (2 + NR_IRQS + 2));
	assert_int_equal(len, mptable_size(nr_cpus));

	/* Floating pointer. */
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(get32(buf + 4), base + 16);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], 4);
	assert_int_equal(sum(buf, 16), 0);
	for (unsigned i = 11; i < 16; i++)
		assert_int_equal(buf[i], 0);

	/* Configuration table header. */
	assert_memory_equal(mpc, "PCMP", 4);
	assert_int_equal(get16(mpc + 4), len - 16);
	assert_int_equal(mpc[6], 4);
	assert_int_equal(sum(mpc, len - 16), 0);
	assert_memory_equal(mpc + 8, "KILN    ", 8);
	assert_memory_equal(mpc + 16, "MICROVM     ", 12);
	assert_int_equal(get32(mpc + 28), 0);
	assert_int_equal(get16(mpc + 32), 0);
	assert_int_equal(get16(mpc + 34), nr_cpus + 1 + 1 + NR_IRQS + 2);
	assert_int_equal(get32(mpc + 36), 0xfee00000u);
	assert_int_equal(get32(mpc + 40), 0);

	/* Entries, in the order the spec asks for: processors, bus, IOAPIC, interrupts. */
	e = mpc + 44;
	for (unsigned n = 0; n < get16(mpc + 34); n++) {
		switch (e[0]) {
		case 0:
			assert_int_equal(buses + ioapics + intsrcs + lints, 0);
			assert_int_equal(e[1], cpus); /* APIC id */
			assert_int_equal(e[2], 0x14);
			assert_int_equal(e[3], cpus == 0 ? 0x3 : 0x1); /* enabled, BSP */
			assert_int_equal(get32(e + 4), 0x600);
			assert_int_equal(get32(e + 8), 0x201); /* FPU | APIC */
			assert_int_equal(get32(e + 12), 0);
			assert_int_equal(get32(e + 16), 0);
			cpus++;
			e += 20;
			break;
		case 1:
			assert_int_equal(e[1], 0);
			assert_memory_equal(e + 2, "ISA   ", 6);
			buses++;
			e += 8;
			break;
		case 2:
			assert_int_equal(e[1], nr_cpus + 1);
			assert_int_equal(e[2], 0x11);
			assert_int_equal(e[3], 1);
			assert_int_equal(get32(e + 4), 0xfec00000u);
			ioapics++;
			e += 8;
			break;
		case 3:
			assert_int_equal(e[1], 0); /* INT */
			assert_int_equal(get16(e + 2), 0);
			assert_int_equal(e[4], 0); /* ISA bus */
			assert_int_equal(e[5], intsrcs);
			assert_int_equal(e[6], nr_cpus + 1);
			assert_int_equal(e[7], intsrcs);
			intsrcs++;
			e += 8;
			break;
		case 4:
			assert_int_equal(get16(e + 2), 0);
			assert_int_equal(e[4], 0);
			assert_int_equal(e[5], 0);
			if (lints == 0) {
				assert_int_equal(e[1], 3);    /* ExtINT */
				assert_int_equal(e[6], 0);    /* BSP's APIC */
				assert_int_equal(e[7], 0);    /* LINT0 */
			} else {
				assert_int_equal(e[1], 1);    /* NMI */
				assert_int_equal(e[6], 0xff); /* every APIC */
				assert_int_equal(e[7], 1);    /* LINT1 */
			}
			lints++;
			e += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u at offset %td", e[0], e - buf);
		}
	}
	assert_ptr_equal(e, buf + len);
	assert_int_equal(cpus, nr_cpus);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(intsrcs, NR_IRQS);
	assert_int_equal(lints, 2);
}

static void build_and_check(unsigned nr_cpus, uint64_t base)
{
	uint8_t buf[BUF_LEN];
	size_t len;

	memset(buf, 0xcc, sizeof(buf));
	len = mptable_build(buf, sizeof(buf), nr_cpus, base);
	assert_int_not_equal(len, 0);
	check_table(buf, len, nr_cpus, base);
	for (size_t i = len; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xcc);
}

static void mptable_size_nr_cpus_exact_bytes(void **state)
{
	assert_int_equal(mptable_size(1), 304);
	assert_int_equal(mptable_size(2), 324);
	assert_int_equal(mptable_size(32), 924);
}

static void mptable_build_1_cpu_valid_table(void **state)
{
	build_and_check(1, LAYOUT_EBDA);
}

static void mptable_build_2_cpus_valid_table(void **state)
{
	build_and_check(2, LAYOUT_EBDA);
}

static void mptable_build_32_cpus_valid_table(void **state)
{
	build_and_check(32, LAYOUT_EBDA);
}

static void mptable_build_other_base_moves_pointer(void **state)
{
	uint8_t buf[BUF_LEN];

	assert_int_equal(mptable_build(buf, sizeof(buf), 4, 0xf0000), mptable_size(4));
	assert_int_equal(get32(buf + 4), 0xf0010);
	assert_int_equal(sum(buf, 16), 0);
	build_and_check(4, 0xf0000);
}

static void mptable_build_small_buffer_returns_0(void **state)
{
	uint8_t buf[BUF_LEN];

	memset(buf, 0xcc, sizeof(buf));
	assert_int_equal(mptable_build(buf, mptable_size(2) - 1, 2, LAYOUT_EBDA), 0);
	assert_int_equal(mptable_build(buf, 0, 1, LAYOUT_EBDA), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xcc);
	assert_int_equal(mptable_build(buf, mptable_size(2), 2, LAYOUT_EBDA), mptable_size(2));
}

static void mptable_build_bad_cpu_count_returns_0(void **state)
{
	uint8_t buf[8192];

	assert_int_equal(mptable_build(buf, sizeof(buf), 0, LAYOUT_EBDA), 0);
	assert_int_equal(mptable_build(buf, sizeof(buf), 255, LAYOUT_EBDA), 0);
	assert_int_equal(mptable_build(buf, sizeof(buf), 254, LAYOUT_EBDA), mptable_size(254));
}

static void mptable_setup_writes_table_at_ebda(void **state)
{
	struct guest_memory gm;
	uint8_t want[BUF_LEN];
	size_t len = mptable_build(want, sizeof(want), 32, LAYOUT_EBDA);

	assert_int_equal(guest_memory_create(&gm, 16 << 20, false), 0);
	assert_int_equal(mptable_setup(&gm, 32), 0);
	assert_memory_equal(gm.host + LAYOUT_EBDA, want, len);
	check_table(gm.host + LAYOUT_EBDA, len, 32, LAYOUT_EBDA);
	assert_int_equal(gm.host[LAYOUT_EBDA - 1], 0);
	assert_int_equal(gm.host[LAYOUT_EBDA + len], 0);
	guest_memory_destroy(&gm);
}

static void mptable_setup_beyond_ebda_fails_einval(void **state)
{
	struct guest_memory gm;

	assert_int_equal(guest_memory_create(&gm, 16 << 20, false), 0);
	/* 37 vCPUs fill the 1 KiB below 640 KiB exactly; 38 would spill past it. */
	assert_int_equal(mptable_size(37), 1024);
	assert_int_equal(mptable_setup(&gm, 37), 0);
	assert_int_equal(mptable_setup(&gm, 38), -EINVAL);
	assert_int_equal(mptable_setup(&gm, 0), -EINVAL);
	guest_memory_destroy(&gm);
}

static void mptable_setup_ram_below_ebda_fails_efault(void **state)
{
	struct guest_memory gm;

	assert_int_equal(guest_memory_create(&gm, 512 << 10, false), 0);
	assert_int_equal(mptable_setup(&gm, 1), -EFAULT);
	guest_memory_destroy(&gm);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(mptable_size_nr_cpus_exact_bytes),
		T(mptable_build_1_cpu_valid_table),
		T(mptable_build_2_cpus_valid_table),
		T(mptable_build_32_cpus_valid_table),
		T(mptable_build_other_base_moves_pointer),
		T(mptable_build_small_buffer_returns_0),
		T(mptable_build_bad_cpu_count_returns_0),
		T(mptable_setup_writes_table_at_ebda),
		T(mptable_setup_beyond_ebda_fails_einval),
		T(mptable_setup_ram_below_ebda_fails_efault),
	};
#undef T

	return cmocka_run_group_tests_name("mptable_x86_64.c", tests, group_setup, NULL);
}
