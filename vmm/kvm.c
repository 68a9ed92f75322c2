/* KVM device checks: API version and required capabilities, each named when missing. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"

struct cap {
	int id;
	const char *name;
};

#define CAP(x) { x, #x }

static const struct cap required_caps[] = {
	CAP(KVM_CAP_IRQCHIP),        CAP(KVM_CAP_HLT),          CAP(KVM_CAP_USER_MEMORY),
	CAP(KVM_CAP_SET_TSS_ADDR),   CAP(KVM_CAP_EXT_CPUID),    CAP(KVM_CAP_PIT2),
	CAP(KVM_CAP_IRQ_ROUTING),    CAP(KVM_CAP_IRQFD),        CAP(KVM_CAP_IOEVENTFD),
	CAP(KVM_CAP_MP_STATE),       CAP(KVM_CAP_SET_IDENTITY_MAP_ADDR),
	CAP(KVM_CAP_ADJUST_CLOCK),   CAP(KVM_CAP_XSAVE),        CAP(KVM_CAP_XCRS),
	CAP(KVM_CAP_VCPU_EVENTS),    CAP(KVM_CAP_DEBUGREGS),    CAP(KVM_CAP_PIT_STATE2),
	CAP(KVM_CAP_MCE),
};

const char *kvm_missing_cap(int kvm_fd)
{
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].id) <= 0)
			return required_caps[i].name;
	return NULL;
}

int kvm_open(void)
{
	const char *missing;
	int fd, version, err;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		log_error("cannot open /dev/kvm: %s%s", strerror(errno),
			  errno == ENOENT ? " (no KVM on this host: run kiln inside tests/e2e/in-l1)"
					  : "");
		return err;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		log_error("/dev/kvm is not KVM: KVM_GET_API_VERSION: %s", strerror(errno));
		close(fd);
		return -ENODEV;
	}
	if (version != KVM_API_VERSION) {
		log_error("/dev/kvm speaks API version %d, kiln needs %d", version, KVM_API_VERSION);
		close(fd);
		return -ENOTSUP;
	}
	missing = kvm_missing_cap(fd);
	if (missing) {
		log_error("KVM lacks a capability kiln needs: %s", missing);
		close(fd);
		return -ENOTSUP;
	}
	return fd;
}

int kvm_check_vm(int vm_fd, unsigned nr_vcpus)
{
	int max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	int slots = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);

	if (max <= 0)
		max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && nr_vcpus > (unsigned)max) {
		log_error("KVM allows %d vCPUs per VM; the configuration asks for %u", max, nr_vcpus);
		return -EINVAL;
	}
	if (slots < 2) {
		log_error("KVM offers %d memory slots; kiln needs at least 2", slots);
		return -ENOTSUP;
	}
	return 0;
}
