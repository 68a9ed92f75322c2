/* vCPUs: creation and boot state, and the thread that runs each one with KVM_RUN. */
#ifndef KILN_VCPU_H
#define KILN_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

/* The signal that kicks a vCPU thread out of KVM_RUN. */
#define VCPU_KICK_SIGNAL SIGUSR2

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	uint64_t exits_io, exits_mmio;

	/*
	 * A host memory error the SIGBUS handler saw on this thread, left for the vCPU loop (which
	 * records it and injects the machine check): the guest-physical page (4 KiB aligned) ORed
	 * with the si_code, 0 when none. in_run: the thread is inside KVM_RUN.
	 */
	_Atomic uint64_t sigbus;
	atomic_bool in_run;
	uint64_t last_mce_gpa;    /* the loop's guard against a guest that never takes its MCE */
	unsigned same_mce_count;
};

/*
 * Installs the process's (empty) vCPU kick handler and its SIGBUS handler; call before any vCPU
 * thread starts (again is harmless). The SIGBUS handler first lets poison_guard_handle take a
 * fault inside a guarded copy; on a vCPU thread it leaves a host memory error in guest RAM
 * (BUS_MCEERR_AR or, for a page kiln poisoned on a kernel without CONFIG_MEMORY_FAILURE,
 * BUS_ADRERR, both inside KVM_RUN; BUS_MCEERR_AO any time) to the vCPU loop; it ignores
 * BUS_MCEERR_AO elsewhere (a later access raises BUS_MCEERR_AR) with a line on stderr. Any other
 * SIGBUS is a kiln bug: one line on stderr, and the process exits VM_EXIT_SIGBUS (149).
 */
int vcpu_install_signal_handlers(void) __attribute__((warn_unused_result));

struct guest_memory;

/*
 * Around MADV_HWPOISON of guest RAM gm (NULL ends it): the SIGBUS handler ignores, on the calling
 * thread, the BUS_MCEERR_AR/AO the kernel sends the caller for a page in gm (Linux 6.x treats
 * the madvise caller as the consumer of the page it poisons and kills it; the signal arrives as
 * madvise returns).
 */
void vcpu_sigbus_expect_injection(const struct guest_memory *gm);

/*
 * Creates vCPU id of vm: KVM_CREATE_VCPU, the kvm_run mapping, CPUID (adjusted for id), its
 * machine-check banks (vm->mcg_cap), the boot MSRs, LINT0/LINT1 wiring, and for vCPU 0 the 64-bit boot registers entering at entry.
 */
int vcpu_create(struct vm *vm, unsigned id, uint64_t entry, struct vcpu *v)
	__attribute__((warn_unused_result));

/* Starts the vCPU's thread. */
int vcpu_start(struct vcpu *v) __attribute__((warn_unused_result));

/* Makes the vCPU leave KVM_RUN soon (it then checks whether the VM is stopping). */
void vcpu_kick(struct vcpu *v);

/* Waits for the vCPU's thread to end. */
void vcpu_join(struct vcpu *v);

/* Unmaps and closes; the thread must have ended. */
void vcpu_destroy(struct vcpu *v);

#endif
