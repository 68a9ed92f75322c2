/* CPUID for the guest: what KVM supports, adjusted per vCPU (APIC ids, topology, hypervisor). */
#ifndef KILN_CPUID_X86_64_H
#define KILN_CPUID_X86_64_H

#include <linux/kvm.h>
#include <stdbool.h>

#define CPUID_MAX_ENTRIES 256

/* Room for CPUID_MAX_ENTRIES entries after the kvm_cpuid2 header. */
struct cpuid_table {
	struct kvm_cpuid2 head;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

/* KVM_GET_SUPPORTED_CPUID on the /dev/kvm fd into t. Returns 0 or -errno (logged). */
int cpuid_get_supported(int kvm_fd, struct cpuid_table *t) __attribute__((warn_unused_result));

/*
 * Adjusts a copy of the supported table for vCPU vcpu_id of nr_vcpus: initial APIC id in leaf
 * 1 and the x2APIC leaf 0xB, logical processor counts (leaf 1, 0xB, 0x80000008), the HTT and
 * hypervisor bits. One core per vCPU, one package. On AMD, the SUCCOR and MCA overflow recovery
 * bits (leaf 0x80000007 EBX) that let the guest survive an injected machine check. Pure.
 */
void cpuid_adjust(struct cpuid_table *t, unsigned vcpu_id, unsigned nr_vcpus);

/* Whether leaf 0 names an AMD (or Hygon) CPU: AMD's machine-check semantics apply. */
bool cpuid_is_amd(const struct cpuid_table *t);

/* The entry for (function, index) or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, unsigned function, unsigned index);

#endif
