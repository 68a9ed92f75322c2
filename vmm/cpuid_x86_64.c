/* Guest CPUID: KVM's supported set with per-vCPU identity and topology filled in. */
#include "cpuid_x86_64.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_HTT (1u << 28)
#define LEAFB_TYPE_SMT 1u
#define LEAFB_TYPE_CORE 2u
/* AMD RAS features: MCA overflow recovery and SUCCOR (software uncorrectable error containment
 * and recovery). KVM_GET_SUPPORTED_CPUID clears both, but Linux panics on any uncorrected
 * machine check of a CPU without SUCCOR instead of killing the process that consumed the
 * poison; kiln's injected errors are recoverable, so it offers both, as QEMU does. */
#define LEAF80000007_EBX_OVERFLOW_RECOV (1u << 0)
#define LEAF80000007_EBX_SUCCOR (1u << 1)

int cpuid_get_supported(int kvm_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->head.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &t->head) < 0) {
		int err = -errno;

		log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return err;
	}
	return 0;
}

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, unsigned function, unsigned index)
{
	for (unsigned i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

bool cpuid_is_amd(const struct cpuid_table *t)
{
	const struct kvm_cpuid_entry2 *e = cpuid_find((struct cpuid_table *)t, 0, 0);

	/* "AuthenticAMD", or Hygon's "HygonGenuine" (AMD's machine-check architecture) */
	return e && ((e->ebx == 0x68747541 && e->edx == 0x69746e65 && e->ecx == 0x444d4163) ||
		     (e->ebx == 0x6f677948 && e->edx == 0x6e65476e && e->ecx == 0x656e6975));
}

/* Bits needed to hold ids 0..n-1. */
static unsigned id_bits(unsigned n)
{
	unsigned bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

void cpuid_adjust(struct cpuid_table *t, unsigned vcpu_id, unsigned nr_vcpus)
{
	bool amd = cpuid_is_amd(t);

	for (unsigned i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		switch (e->function) {
		case 0x1:
			e->ebx = (e->ebx & 0x0000ffffu) | (vcpu_id << 24) | (nr_vcpus << 16);
			e->ecx |= LEAF1_ECX_HYPERVISOR;
			if (nr_vcpus > 1)
				e->edx |= LEAF1_EDX_HTT;
			else
				e->edx &= ~LEAF1_EDX_HTT;
			break;
		case 0xb:
			e->edx = vcpu_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (LEAFB_TYPE_SMT << 8);
			} else if (e->index == 1) {
				e->eax = id_bits(nr_vcpus);
				e->ebx = nr_vcpus;
				e->ecx = 1u | (LEAFB_TYPE_CORE << 8);
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000007:
			if (amd)
				e->ebx |= LEAF80000007_EBX_OVERFLOW_RECOV | LEAF80000007_EBX_SUCCOR;
			break;
		case 0x80000008:
			/* AMD: cores per package minus one, and the APIC id width. */
			e->ecx = (e->ecx & ~0xf0ffu) | (nr_vcpus - 1) | (id_bits(nr_vcpus) << 12);
			break;
		default:
			break;
		}
	}
}
