/* Unit tests for vmm/cpuid_x86_64.c: per-vCPU adjustment, lookup, KVM's table (wrapped ioctl). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpuid_x86_64.h"
#include "log.h"

#define HYPERVISOR (1u << 31)
#define HTT (1u << 28)
#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

enum { E_LEAF0, E_LEAF1, E_B0, E_B1, E_B2, E_EXT8, E_LEAF7, NR_ENTRIES };

static const struct kvm_cpuid_entry2 sample[NR_ENTRIES] = {
	[E_LEAF0] = { .function = 0, .eax = 0x1f, .ebx = 0x756e6547, .ecx = 0x6c65746e,
		      .edx = 0x49656e69 },
	[E_LEAF1] = { .function = 1, .eax = 0x000806ec, .ebx = 0xaabb0800, .ecx = 0x7ffafbff,
		      .edx = 0x1f8bfbff },
	[E_B0] = { .function = 0xb, .index = 0, .flags = SIG, .eax = 0xdead, .ebx = 0xbeef,
		   .ecx = 0xffff, .edx = 0x77 },
	[E_B1] = { .function = 0xb, .index = 1, .flags = SIG, .eax = 0xdead, .ebx = 0xbeef,
		   .ecx = 0xffff, .edx = 0x77 },
	[E_B2] = { .function = 0xb, .index = 2, .flags = SIG, .eax = 0xdead, .ebx = 0xbeef,
		   .ecx = 0xffff, .edx = 0x77 },
	[E_EXT8] = { .function = 0x80000008, .eax = 0x3030, .ebx = 0x1234, .ecx = 0xffffffff,
		     .edx = 0x5678 },
	[E_LEAF7] = { .function = 7, .index = 0, .flags = SIG, .eax = 0, .ebx = 0xf1bf07ab,
		      .ecx = 0x405f5e, .edx = 0xbc000400 },
};

static struct cpuid_table *sample_table(void)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->head.nent = NR_ENTRIES;
	memcpy(t->entries, sample, sizeof(sample));
	return t;
}

/* Adjusts the sample for vcpu_id of nr; checks the leaves kiln owns and the ones it does not. */
static void check_adjust(unsigned vcpu_id, unsigned nr, unsigned bits)
{
	struct cpuid_table *t = sample_table();
	const struct kvm_cpuid_entry2 *e = t->entries;

	cpuid_adjust(t, vcpu_id, nr);
	assert_int_equal(t->head.nent, NR_ENTRIES);

	/* Leaf 1: initial APIC id, logical count, CLFLUSH kept, hypervisor, HTT. */
	assert_int_equal(e[E_LEAF1].eax, sample[E_LEAF1].eax);
	assert_int_equal(e[E_LEAF1].ebx, (vcpu_id << 24) | (nr << 16) | 0x0800);
	assert_int_equal(e[E_LEAF1].ecx, sample[E_LEAF1].ecx | HYPERVISOR);
	assert_int_equal(e[E_LEAF1].edx,
			 nr > 1 ? sample[E_LEAF1].edx | HTT : sample[E_LEAF1].edx & ~HTT);

	/* Leaf 0xB: SMT level of one thread, core level of nr, then the invalid level. */
	assert_int_equal(e[E_B0].eax, 0);
	assert_int_equal(e[E_B0].ebx, 1);
	assert_int_equal(e[E_B0].ecx, 0x100);
	assert_int_equal(e[E_B0].edx, vcpu_id);
	assert_int_equal(e[E_B1].eax, bits);
	assert_int_equal(e[E_B1].ebx, nr);
	assert_int_equal(e[E_B1].ecx, 0x201);
	assert_int_equal(e[E_B1].edx, vcpu_id);
	assert_int_equal(e[E_B2].eax, 0);
	assert_int_equal(e[E_B2].ebx, 0);
	assert_int_equal(e[E_B2].ecx, 2);
	assert_int_equal(e[E_B2].edx, vcpu_id);
	for (unsigned i = E_B0; i <= E_B2; i++) {
		assert_int_equal(e[i].flags, SIG);
		assert_int_equal(e[i].index, i - E_B0);
	}

	/* 0x80000008 ECX: NC = nr - 1, ApicIdSize = bits; all other bits and registers kept. */
	assert_int_equal(e[E_EXT8].ecx, 0xffff0f00u | (nr - 1) | (bits << 12));
	assert_int_equal(e[E_EXT8].eax, 0x3030);
	assert_int_equal(e[E_EXT8].ebx, 0x1234);
	assert_int_equal(e[E_EXT8].edx, 0x5678);

	/* Leaves kiln does not own are untouched. */
	assert_memory_equal(&e[E_LEAF0], &sample[E_LEAF0], sizeof(e[0]));
	assert_memory_equal(&e[E_LEAF7], &sample[E_LEAF7], sizeof(e[0]));
	free(t);
}

static void cpuid_adjust_single_vcpu_no_htt(void **state)
{
	check_adjust(0, 1, 0);
}

static void cpuid_adjust_vcpu3_of_4_topology(void **state)
{
	check_adjust(3, 4, 2);
}

static void cpuid_adjust_vcpu5_of_6_rounds_id_bits_up(void **state)
{
	check_adjust(5, 6, 3);
}

static void cpuid_adjust_vcpu31_of_32_topology(void **state)
{
	check_adjust(31, 32, 5);
}

static void cpuid_adjust_second_vcpu_of_2_topology(void **state)
{
	check_adjust(1, 2, 1);
}

static void cpuid_adjust_htt_follows_vcpu_count(void **state)
{
	struct cpuid_table *t = sample_table();

	t->entries[E_LEAF1].edx &= ~HTT;
	cpuid_adjust(t, 0, 2);
	assert_int_equal(t->entries[E_LEAF1].edx, sample[E_LEAF1].edx);
	cpuid_adjust(t, 0, 1);
	assert_int_equal(t->entries[E_LEAF1].edx, sample[E_LEAF1].edx & ~HTT);
	/* Adjusting twice gives the same leaf as once: nothing accumulates. */
	cpuid_adjust(t, 2, 3);
	cpuid_adjust(t, 2, 3);
	assert_int_equal(t->entries[E_LEAF1].ebx, 0x02030800u);
	assert_int_equal(t->entries[E_EXT8].ecx, 0xffff2f02u);
	free(t);
}

static void cpuid_adjust_entries_past_nent_untouched(void **state)
{
	struct cpuid_table *t = sample_table();

	t->head.nent = E_LEAF1; /* leaf 0 only */
	cpuid_adjust(t, 1, 2);
	assert_memory_equal(t->entries, sample, sizeof(sample));
	free(t);
}

static void cpuid_find_plain_leaf_ignores_index(void **state)
{
	struct cpuid_table *t = sample_table();

	assert_ptr_equal(cpuid_find(t, 1, 0), &t->entries[E_LEAF1]);
	assert_ptr_equal(cpuid_find(t, 1, 7), &t->entries[E_LEAF1]);
	assert_ptr_equal(cpuid_find(t, 0x80000008, 0), &t->entries[E_EXT8]);
	assert_ptr_equal(cpuid_find(t, 0, 0), &t->entries[E_LEAF0]);
	free(t);
}

static void cpuid_find_significant_index_matches_exactly(void **state)
{
	struct cpuid_table *t = sample_table();

	assert_ptr_equal(cpuid_find(t, 0xb, 0), &t->entries[E_B0]);
	assert_ptr_equal(cpuid_find(t, 0xb, 1), &t->entries[E_B1]);
	assert_ptr_equal(cpuid_find(t, 0xb, 2), &t->entries[E_B2]);
	assert_null(cpuid_find(t, 0xb, 3));
	assert_ptr_equal(cpuid_find(t, 7, 0), &t->entries[E_LEAF7]);
	assert_null(cpuid_find(t, 7, 1));
	free(t);
}

static void cpuid_find_missing_or_past_nent_null(void **state)
{
	struct cpuid_table *t = sample_table();

	assert_null(cpuid_find(t, 0x40000000, 0));
	assert_null(cpuid_find(t, 2, 0));
	t->head.nent = E_EXT8;
	assert_null(cpuid_find(t, 0x80000008, 0));
	assert_null(cpuid_find(t, 7, 0));
	t->head.nent = 0;
	assert_null(cpuid_find(t, 0, 0));
	free(t);
}

/* Leaf 0 of vendor (ebx, edx, ecx) and leaf 0x80000007 as KVM gives it (EBX clear). */
static struct cpuid_table *ras_table(uint32_t ebx, uint32_t edx, uint32_t ecx)
{
	struct cpuid_table *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->head.nent = 2;
	t->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x10, .ebx = ebx,
						   .ecx = ecx, .edx = edx };
	t->entries[1] = (struct kvm_cpuid_entry2){ .function = 0x80000007, .ebx = 0,
						   .edx = 0x100 };
	return t;
}

static void cpuid_adjust_amd_sets_succor_and_overflow_recov(void **state)
{
	struct cpuid_table *t = ras_table(0x68747541, 0x69746e65, 0x444d4163); /* AuthenticAMD */

	assert_true(cpuid_is_amd(t));
	cpuid_adjust(t, 0, 1);
	assert_int_equal(t->entries[1].ebx, 0x3); /* OVERFLOW_RECOV | SUCCOR */
	assert_int_equal(t->entries[1].edx, 0x100);
	free(t);
}

static void cpuid_adjust_hygon_is_amd(void **state)
{
	struct cpuid_table *t = ras_table(0x6f677948, 0x6e65476e, 0x656e6975); /* HygonGenuine */

	assert_true(cpuid_is_amd(t));
	cpuid_adjust(t, 0, 1);
	assert_int_equal(t->entries[1].ebx, 0x3);
	free(t);
}

static void cpuid_adjust_intel_leaves_80000007_alone(void **state)
{
	struct cpuid_table *t = ras_table(0x756e6547, 0x49656e69, 0x6c65746e); /* GenuineIntel */

	assert_false(cpuid_is_amd(t));
	cpuid_adjust(t, 0, 1);
	assert_int_equal(t->entries[1].ebx, 0);
	t->head.nent = 0;
	assert_false(cpuid_is_amd(t));
	free(t);
}

/* KVM_GET_SUPPORTED_CPUID stand-in: checks the request, then fills or fails as told. */
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
	struct kvm_cpuid2 *c;
	int err;
	va_list ap;

	va_start(ap, request);
	c = va_arg(ap, struct kvm_cpuid2 *);
	va_end(ap);
	check_expected(fd);
	check_expected(request);
	assert_int_equal(c->nent, CPUID_MAX_ENTRIES);
	assert_int_equal(c->entries[0].function, 0); /* the table was cleared first */
	assert_int_equal(c->entries[CPUID_MAX_ENTRIES - 1].eax, 0);
	err = mock_type(int);
	if (err) {
		errno = err;
		return -1;
	}
	c->nent = NR_ENTRIES;
	memcpy(c->entries, sample, sizeof(sample));
	return 0;
}

static void cpuid_get_supported_ioctl_ok_fills_table(void **state)
{
	struct cpuid_table *t = malloc(sizeof(*t));

	assert_non_null(t);
	memset(t, 0xee, sizeof(*t));
	expect_value(__wrap_ioctl, fd, 42);
	expect_value(__wrap_ioctl, request, KVM_GET_SUPPORTED_CPUID);
	will_return(__wrap_ioctl, 0);
	assert_int_equal(cpuid_get_supported(42, t), 0);
	assert_int_equal(t->head.nent, NR_ENTRIES);
	assert_memory_equal(t->entries, sample, sizeof(sample));
	assert_int_equal(t->entries[NR_ENTRIES].function, 0);
	assert_ptr_equal(cpuid_find(t, 0xb, 1), &t->entries[E_B1]);
	free(t);
}

static void cpuid_get_supported_ioctl_fails_returns_errno(void **state)
{
	struct cpuid_table *t = malloc(sizeof(*t));

	assert_non_null(t);
	memset(t, 0xee, sizeof(*t));
	expect_value(__wrap_ioctl, fd, 7);
	expect_value(__wrap_ioctl, request, KVM_GET_SUPPORTED_CPUID);
	will_return(__wrap_ioctl, E2BIG);
	assert_int_equal(cpuid_get_supported(7, t), -E2BIG);

	expect_value(__wrap_ioctl, fd, 7);
	expect_value(__wrap_ioctl, request, KVM_GET_SUPPORTED_CPUID);
	will_return(__wrap_ioctl, EBADF);
	assert_int_equal(cpuid_get_supported(7, t), -EBADF);
	free(t);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(cpuid_adjust_single_vcpu_no_htt),
		T(cpuid_adjust_second_vcpu_of_2_topology),
		T(cpuid_adjust_vcpu3_of_4_topology),
		T(cpuid_adjust_vcpu5_of_6_rounds_id_bits_up),
		T(cpuid_adjust_vcpu31_of_32_topology),
		T(cpuid_adjust_htt_follows_vcpu_count),
		T(cpuid_adjust_entries_past_nent_untouched),
		T(cpuid_adjust_amd_sets_succor_and_overflow_recov),
		T(cpuid_adjust_hygon_is_amd),
		T(cpuid_adjust_intel_leaves_80000007_alone),
		T(cpuid_find_plain_leaf_ignores_index),
		T(cpuid_find_significant_index_matches_exactly),
		T(cpuid_find_missing_or_past_nent_null),
		T(cpuid_get_supported_ioctl_ok_fills_table),
		T(cpuid_get_supported_ioctl_fails_returns_errno),
	};
#undef T

	return cmocka_run_group_tests_name("cpuid_x86_64.c", tests, group_setup, NULL);
}
