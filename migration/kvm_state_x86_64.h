/* KVM's share of a VM's state (x86_64): the in-kernel irqchips, PIT and kvmclock of the VM, and
 * each vCPU's registers, CPUID, MSRs and pending events, as the payloads of the state format's
 * KVMV and VCPU sections (docs/state-format.md). */
#ifndef KILN_KVM_STATE_X86_64_H
#define KILN_KVM_STATE_X86_64_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "cpuid_x86_64.h"
#include "state.h"

/* Section versions these payloads are written in. */
#define KVM_STATE_VM_VERSION 1u
#define KVM_STATE_VCPU_VERSION 1u

/* A VCPU payload with more entries than these is refused. */
#define KVM_STATE_MAX_CPUID CPUID_MAX_ENTRIES /* 256 */
#define KVM_STATE_MAX_MSRS 1024u

/* The VM section, decoded. Fields KVM leaves unused (padding, reserved) are zero. */
struct kvm_state_vm {
	struct kvm_pic_state pic[2];   /* master, slave */
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;   /* clock and flags only */
};

/* One VCPU section, decoded. Each table is ready for its KVM_SET_* ioctl. */
struct kvm_state_vcpu {
	uint32_t id;
	struct cpuid_table cpuid;
	uint32_t tsc_khz;              /* 0: KVM did not know the rate */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;        /* the legacy 4 KiB area: kiln enables no dynamic feature */
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry entries[KVM_STATE_MAX_MSRS];
	} msrs;
	struct kvm_vcpu_events events; /* flags as KVM gave them */
	struct kvm_mp_state mp_state;
};

/* Writes s as a VM section payload into b. Pure; b->failed reports running out of memory. */
void kvm_state_encode_vm(struct state_buf *b, const struct kvm_state_vm *s);

/*
 * Reads a whole VM section payload from c into s (zeroed first). 0, or -EINVAL with the reason in
 * err ("VM section truncated", "VM section: 3 bytes left over"). Never reads past c's end. Pure.
 */
int kvm_state_decode_vm(struct state_cursor *c, struct kvm_state_vm *s, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Writes s (its counts within the bounds above) as a VCPU section payload into b. Pure. */
void kvm_state_encode_vcpu(struct state_buf *b, const struct kvm_state_vcpu *s);

/*
 * Reads a whole VCPU section payload from c into s (zeroed first). 0, or -EINVAL with the reason
 * in err: truncated, bytes left over, or a count above its bound (KVM_STATE_MAX_CPUID CPUID
 * entries, KVM_STATE_MAX_MSRS MSRs, KVM_MAX_XCRS XCRs). Never reads past c's end. Pure.
 */
int kvm_state_decode_vcpu(struct state_cursor *c, struct kvm_state_vcpu *s, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/*
 * Appends the VM section payload of vm_fd to b: the PIC master, PIC slave and IOAPIC
 * (KVM_GET_IRQCHIP), the PIT (KVM_GET_PIT2) and kvmclock (KVM_GET_CLOCK). The vCPUs must be
 * stopped. 0, or -errno (logged; -ENOMEM when b ran out of memory).
 */
int kvm_state_save_vm(int vm_fd, struct state_buf *b) __attribute__((warn_unused_result));

/*
 * Applies a VM section payload to vm_fd, whose irqchip and PIT exist and whose vCPUs have not
 * run: irqchips, PIT, then KVM_SET_CLOCK with the saved clock and no flags (KVM 6.x refuses some
 * that KVM_GET_CLOCK reports). Nothing is applied unless the whole payload decodes. 0, or
 * -EINVAL / -errno with the reason in err, naming the ioctl that failed.
 */
int kvm_state_load_vm(int vm_fd, struct state_cursor *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Appends the VCPU section payload of vCPU id (vcpu_fd, stopped) to b. kvm_fd is /dev/kvm, for
 * the MSR list: KVM_GET_MSR_INDEX_LIST plus the machine-check MSRs of the mcg_cap the vCPU was
 * set up with (IA32_MCG_STATUS, IA32_MCG_CTL, and CTL/STATUS/ADDR/MISC of each bank). MSRs KVM
 * refuses to read are left out (log_debug), so the payload holds exactly what KVM gave.
 * MP state is read first, vCPU events last (reading them may change other state, as
 * Firecracker notes). 0, or -errno (logged; -ENOMEM when b ran out of memory).
 */
int kvm_state_save_vcpu(int kvm_fd, int vcpu_fd, unsigned id, uint64_t mcg_cap,
			struct state_buf *b) __attribute__((warn_unused_result));

/*
 * Applies a VCPU payload to vCPU id, freshly created (KVM_CREATE_VCPU and KVM_X86_SETUP_MCE with
 * the saved mcg_cap done, never run). The payload's vCPU id must be id. Nothing is applied unless
 * the whole payload decodes. Then, in Firecracker's order: CPUID (before the MSRs, which it
 * gates), TSC kHz (only when it differs from the vCPU's and is known), MP state, regs, sregs,
 * xsave, xcrs, debugregs, LAPIC, every MSR, vCPU events (flags limited to NMI pending, SIPI
 * vector, shadow and SMM). 0, or -EINVAL / -EIO / -errno with the reason in err naming the vCPU
 * and the step: "vCPU 1: KVM_SET_MSRS set 37 of 40 MSRs (first refused: 0x4b564d02)".
 */
int kvm_state_load_vcpu(int vcpu_fd, unsigned id, struct state_cursor *c, char *err,
			size_t errlen) __attribute__((warn_unused_result));

#endif
