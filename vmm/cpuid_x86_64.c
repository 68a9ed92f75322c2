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
		case 0x80000008:
			/* AMD: cores per package minus one, and the APIC id width. */
			e->ecx = (e->ecx & ~0xf0ffu) | (nr_vcpus - 1) | (id_bits(nr_vcpus) << 12);
			break;
		default:
			break;
		}
	}
}
