/* Machine checks for the guest (x86_64): the banks each vCPU gets, and the error kiln injects
 * when the guest touches a poisoned page, in AMD's or Intel's terms. */
#ifndef KILN_MCE_X86_64_H
#define KILN_MCE_X86_64_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/* Banks a guest gets (QEMU's default); kiln reports its errors in the last one. */
#define MCE_BANKS 10u

/* IA32_MCG_CAP */
#define MCG_BANKS_MASK 0xffull
#define MCG_CTL_P (1ull << 8)  /* IA32_MCG_CTL present */
#define MCG_SER_P (1ull << 24) /* software error recovery */
/* IA32_MCG_STATUS */
#define MCG_STATUS_RIPV (1ull << 0) /* restart IP valid */
#define MCG_STATUS_EIPV (1ull << 1) /* error IP valid: the error is at the interrupted IP */
#define MCG_STATUS_MCIP (1ull << 2) /* machine check in progress */
/* IA32_MCi_STATUS */
#define MCI_STATUS_VAL (1ull << 63)
#define MCI_STATUS_OVER (1ull << 62)
#define MCI_STATUS_UC (1ull << 61)
#define MCI_STATUS_EN (1ull << 60)
#define MCI_STATUS_MISCV (1ull << 59)
#define MCI_STATUS_ADDRV (1ull << 58)
#define MCI_STATUS_PCC (1ull << 57)
#define MCI_STATUS_S (1ull << 56)        /* Intel: signalled (SRAR/SRAO) */
#define MCI_STATUS_AR (1ull << 55)       /* Intel: action required */
#define MCI_STATUS_DEFERRED (1ull << 44) /* AMD: deferred error */
#define MCI_STATUS_POISON (1ull << 43)   /* AMD: poisoned data consumed */
/* Intel MCA error codes (SDM vol. 3B, 16.10.3): data load (SRAR), memory scrubbing (SRAO). */
#define MCI_MCACOD_DATA_LOAD 0x134ull
#define MCI_MCACOD_SCRUB 0xc0ull
/* IA32_MCi_MISC: recoverable address LSB in bits 5:0, address mode in bits 8:6 (2: physical). */
#define MCI_MISC_ADDR_PHYS (2ull << 6)
#define MCI_MISC_LSB_4K 12ull

enum mce_kind {
	MCE_ACTION_REQUIRED, /* the guest consumed the data (SIGBUS BUS_MCEERR_AR) */
	MCE_ACTION_OPTIONAL, /* the page went bad but nobody has used it yet (BUS_MCEERR_AO) */
};

/*
 * The IA32_MCG_CAP a guest gets from what KVM supports: MCE_BANKS banks (fewer if KVM offers
 * fewer), MCG_CTL_P and MCG_SER_P when supported. 0 when KVM offers no bank. Pure.
 */
uint64_t mce_guest_cap(uint64_t supported, unsigned max_banks);

/*
 * What KVM offers: the capability bits (KVM_X86_GET_MCE_CAP_SUPPORTED, which carries no bank
 * count) and the most banks a vCPU may have (KVM_CHECK_EXTENSION(KVM_CAP_MCE), as QEMU asks).
 * 0 or -errno (logged).
 */
int mce_get_supported(int kvm_fd, uint64_t *supported, unsigned *max_banks)
	__attribute__((warn_unused_result));

/* KVM_X86_SETUP_MCE on a new vCPU: its banks, all enabled. 0 or -errno. */
int mce_setup_vcpu(int vcpu_fd, uint64_t mcg_cap) __attribute__((warn_unused_result));

/*
 * The machine check a guest gets when it touches the poisoned guest-physical address gpa,
 * reported for the 4 KiB page holding it in the last bank of mcg_cap, as QEMU's
 * kvm_mce_inject does. amd: AMD's semantics (action required: UC|POISON; optional: a deferred
 * error, DEFERRED|POISON without UC, which the guest finds when it polls its banks); otherwise
 * Intel's (S|UC plus AR with the data-load code, or the scrubbing code). Pure.
 */
void mce_build(struct kvm_x86_mce *m, uint64_t mcg_cap, bool amd, enum mce_kind kind,
	       uint64_t gpa);

/* KVM_X86_SET_MCE with m on the calling vCPU's fd. 0 or -errno. */
int mce_inject(int vcpu_fd, const struct kvm_x86_mce *m) __attribute__((warn_unused_result));

#endif
