/* Guest machine checks (x86_64): bank setup at vCPU creation and the error kiln injects. */
#include "mce_x86_64.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

uint64_t mce_guest_cap(uint64_t supported, unsigned max_banks)
{
	uint64_t banks = max_banks > MCG_BANKS_MASK ? MCG_BANKS_MASK : max_banks;

	if (banks == 0)
		return 0;
	if (banks > MCE_BANKS)
		banks = MCE_BANKS;
	return (supported & (MCG_CTL_P | MCG_SER_P)) | banks;
}

int mce_get_supported(int kvm_fd, uint64_t *supported, unsigned *max_banks)
{
	int banks;

	*supported = 0;
	*max_banks = 0;
	banks = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MCE);
	if (banks < 0) {
		int err = -errno;

		log_error("KVM_CHECK_EXTENSION(KVM_CAP_MCE): %s", strerror(errno));
		return err;
	}
	if (ioctl(kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, supported) < 0) {
		int err = -errno;

		log_error("KVM_X86_GET_MCE_CAP_SUPPORTED: %s", strerror(errno));
		return err;
	}
	*max_banks = (unsigned)banks;
	return 0;
}

int mce_setup_vcpu(int vcpu_fd, uint64_t mcg_cap)
{
	return ioctl(vcpu_fd, KVM_X86_SETUP_MCE, &mcg_cap) < 0 ? -errno : 0;
}

void mce_build(struct kvm_x86_mce *m, uint64_t mcg_cap, bool amd, enum mce_kind kind,
	       uint64_t gpa)
{
	uint64_t status = MCI_STATUS_VAL | MCI_STATUS_EN | MCI_STATUS_MISCV | MCI_STATUS_ADDRV;
	uint64_t mcg_status = MCG_STATUS_MCIP | MCG_STATUS_RIPV;
	unsigned banks = (unsigned)(mcg_cap & MCG_BANKS_MASK);

	if (amd) {
		if (kind == MCE_ACTION_REQUIRED) {
			status |= MCI_STATUS_UC | MCI_STATUS_POISON;
			mcg_status |= MCG_STATUS_EIPV;
		} else {
			/* Without UC KVM only fills the bank; POISON tells Linux the address is
			 * usable, so an early-kill process gets BUS_MCEERR_AO (QEMU does the same). */
			status |= MCI_STATUS_DEFERRED | MCI_STATUS_POISON;
		}
	} else {
		status |= MCI_STATUS_S | MCI_STATUS_UC;
		if (kind == MCE_ACTION_REQUIRED) {
			status |= MCI_STATUS_AR | MCI_MCACOD_DATA_LOAD;
			mcg_status |= MCG_STATUS_EIPV;
		} else {
			status |= MCI_MCACOD_SCRUB;
		}
	}
	*m = (struct kvm_x86_mce){
		.status = status,
		.addr = gpa & ~0xfffull,
		.misc = MCI_MISC_ADDR_PHYS | MCI_MISC_LSB_4K,
		.mcg_status = mcg_status,
		.bank = (uint8_t)(banks ? banks - 1 : 0),
	};
}

int mce_inject(int vcpu_fd, const struct kvm_x86_mce *m)
{
	struct kvm_x86_mce copy = *m; /* KVM may set OVER in its argument */

	return ioctl(vcpu_fd, KVM_X86_SET_MCE, &copy) < 0 ? -errno : 0;
}
