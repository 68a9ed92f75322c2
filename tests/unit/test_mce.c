/* Unit tests for vmm/mce_x86_64.c: the guest's MCG_CAP and the bank values of injected errors
 * (QEMU's kvm_mce_inject is the reference), and the ioctls (wrapped). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "mce_x86_64.h"

#define GPA 0x12345678ull
#define BASE (MCI_STATUS_VAL | MCI_STATUS_EN | MCI_STATUS_MISCV | MCI_STATUS_ADDRV)

static void mce_guest_cap_kvm_32_banks_takes_10(void **state)
{
	/* KVM: MCG_CTL_P | MCG_SER_P (0x1000100, seen on 6.12) and KVM_MAX_MCE_BANKS (32);
	 * LMCE_P (bit 27) and stray bank bits are not taken. */
	assert_int_equal(mce_guest_cap(0x1000100, 32), MCG_CTL_P | MCG_SER_P | 10);
	assert_int_equal(mce_guest_cap(MCG_CTL_P | MCG_SER_P | (1ull << 27) | 0xff, 32),
			 MCG_CTL_P | MCG_SER_P | 10);
}

static void mce_guest_cap_few_banks_keeps_them(void **state)
{
	assert_int_equal(mce_guest_cap(MCG_CTL_P, 4), MCG_CTL_P | 4);
	assert_int_equal(mce_guest_cap(0, 1), 1);
}

static void mce_guest_cap_no_bank_zero(void **state)
{
	assert_int_equal(mce_guest_cap(MCG_CTL_P | MCG_SER_P, 0), 0);
}

static void mce_build_amd_action_required_uc_poison(void **state)
{
	struct kvm_x86_mce m;

	memset(&m, 0xff, sizeof(m));
	mce_build(&m, MCG_CTL_P | MCG_SER_P | 10, true, MCE_ACTION_REQUIRED, GPA);
	assert_int_equal(m.status, BASE | MCI_STATUS_UC | MCI_STATUS_POISON);
	assert_int_equal(m.status, 0xbc00080000000000ull);
	assert_int_equal(m.mcg_status, MCG_STATUS_MCIP | MCG_STATUS_RIPV | MCG_STATUS_EIPV);
	assert_int_equal(m.addr, 0x12345000ull);
	assert_int_equal(m.misc, 0x8c); /* physical address mode, LSB 12 */
	assert_int_equal(m.bank, 9);
	/* No PCC (the guest would panic), no Intel-only bits, padding cleared. */
	assert_int_equal(m.status & (MCI_STATUS_PCC | MCI_STATUS_S | MCI_STATUS_AR), 0);
	assert_int_equal(m.pad1[0] | m.pad1[6], 0);
	assert_int_equal(m.pad2[0] | m.pad2[2], 0);
}

static void mce_build_amd_action_optional_deferred_without_uc(void **state)
{
	struct kvm_x86_mce m;

	mce_build(&m, MCG_CTL_P | MCG_SER_P | 10, true, MCE_ACTION_OPTIONAL, GPA);
	assert_int_equal(m.status, BASE | MCI_STATUS_DEFERRED | MCI_STATUS_POISON);
	assert_int_equal(m.status & MCI_STATUS_UC, 0);
	assert_int_equal(m.mcg_status, MCG_STATUS_MCIP | MCG_STATUS_RIPV);
	assert_int_equal(m.addr, 0x12345000ull);
	assert_int_equal(m.bank, 9);
}

static void mce_build_intel_action_required_srar(void **state)
{
	struct kvm_x86_mce m;

	mce_build(&m, MCG_CTL_P | MCG_SER_P | 10, false, MCE_ACTION_REQUIRED, GPA);
	assert_int_equal(m.status, BASE | MCI_STATUS_UC | MCI_STATUS_S | MCI_STATUS_AR | 0x134);
	assert_int_equal(m.mcg_status, MCG_STATUS_MCIP | MCG_STATUS_RIPV | MCG_STATUS_EIPV);
	assert_int_equal(m.misc, 0x8c);
	assert_int_equal(m.status & (MCI_STATUS_POISON | MCI_STATUS_DEFERRED), 0);
}

static void mce_build_intel_action_optional_srao(void **state)
{
	struct kvm_x86_mce m;

	mce_build(&m, MCG_CTL_P | MCG_SER_P | 10, false, MCE_ACTION_OPTIONAL, GPA);
	assert_int_equal(m.status, BASE | MCI_STATUS_UC | MCI_STATUS_S | 0xc0);
	assert_int_equal(m.mcg_status, MCG_STATUS_MCIP | MCG_STATUS_RIPV);
}

static void mce_build_bank_is_last_of_cap(void **state)
{
	struct kvm_x86_mce m;

	mce_build(&m, 4, true, MCE_ACTION_REQUIRED, 0x1000);
	assert_int_equal(m.bank, 3);
	mce_build(&m, 1, true, MCE_ACTION_REQUIRED, 0xfff);
	assert_int_equal(m.bank, 0);
	assert_int_equal(m.addr, 0);
}

/* ioctl stand-in: checks the request and its argument, then answers as told. */
int __wrap_ioctl(int fd, unsigned long request, ...);
int __wrap_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	int err;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	check_expected(fd);
	check_expected(request);
	err = mock_type(int);
	if (request == KVM_CHECK_EXTENSION) {
		assert_int_equal((uintptr_t)arg, KVM_CAP_MCE);
		return err ? (errno = err, -1) : 32;
	}
	if (request == KVM_X86_GET_MCE_CAP_SUPPORTED && !err)
		*(uint64_t *)arg = MCG_CTL_P | MCG_SER_P;
	else if (request == KVM_X86_SETUP_MCE)
		assert_int_equal(*(uint64_t *)arg, MCG_CTL_P | MCG_SER_P | 10);
	else if (request == KVM_X86_SET_MCE)
		assert_int_equal(((struct kvm_x86_mce *)arg)->bank, 9);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

static void expect_ioctl(int fd, unsigned long request, int err)
{
	expect_value(__wrap_ioctl, fd, fd);
	expect_value(__wrap_ioctl, request, request);
	will_return(__wrap_ioctl, err);
}

static void mce_ioctls_pass_their_arguments(void **state)
{
	struct kvm_x86_mce m;
	uint64_t supported;
	unsigned banks;

	expect_ioctl(3, KVM_CHECK_EXTENSION, 0);
	expect_ioctl(3, KVM_X86_GET_MCE_CAP_SUPPORTED, 0);
	assert_int_equal(mce_get_supported(3, &supported, &banks), 0);
	assert_int_equal(supported, MCG_CTL_P | MCG_SER_P);
	assert_int_equal(banks, 32);
	expect_ioctl(5, KVM_X86_SETUP_MCE, 0);
	assert_int_equal(mce_setup_vcpu(5, mce_guest_cap(supported, banks)), 0);
	mce_build(&m, mce_guest_cap(supported, banks), true, MCE_ACTION_REQUIRED, GPA);
	expect_ioctl(5, KVM_X86_SET_MCE, 0);
	assert_int_equal(mce_inject(5, &m), 0);
}

static void mce_ioctls_fail_return_errno(void **state)
{
	struct kvm_x86_mce m;
	uint64_t supported;
	unsigned banks;

	expect_ioctl(3, KVM_CHECK_EXTENSION, EBADF);
	assert_int_equal(mce_get_supported(3, &supported, &banks), -EBADF);
	expect_ioctl(3, KVM_CHECK_EXTENSION, 0);
	expect_ioctl(3, KVM_X86_GET_MCE_CAP_SUPPORTED, EINVAL);
	assert_int_equal(mce_get_supported(3, &supported, &banks), -EINVAL);
	assert_int_equal(supported, 0);
	assert_int_equal(banks, 0);
	expect_ioctl(5, KVM_X86_SETUP_MCE, EINVAL);
	assert_int_equal(mce_setup_vcpu(5, MCG_CTL_P | MCG_SER_P | 10), -EINVAL);
	mce_build(&m, MCG_CTL_P | MCG_SER_P | 10, true, MCE_ACTION_REQUIRED, GPA);
	expect_ioctl(5, KVM_X86_SET_MCE, EBUSY);
	assert_int_equal(mce_inject(5, &m), -EBUSY);
}

static int group_setup(void **state)
{
	return log_setup(NULL, LOG_OFF, false, false);
}

int main(void)
{
#define T(f) cmocka_unit_test(f)
	const struct CMUnitTest tests[] = {
		T(mce_guest_cap_kvm_32_banks_takes_10),
		T(mce_guest_cap_few_banks_keeps_them),
		T(mce_guest_cap_no_bank_zero),
		T(mce_build_amd_action_required_uc_poison),
		T(mce_build_amd_action_optional_deferred_without_uc),
		T(mce_build_intel_action_required_srar),
		T(mce_build_intel_action_optional_srao),
		T(mce_build_bank_is_last_of_cap),
		T(mce_ioctls_pass_their_arguments),
		T(mce_ioctls_fail_return_errno),
	};
#undef T

	return cmocka_run_group_tests_name("mce_x86_64.c", tests, group_setup, NULL);
}
