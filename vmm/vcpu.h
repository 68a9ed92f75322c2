/* vCPUs: creation and boot state, and the thread that runs each one with KVM_RUN. */
#ifndef KILN_VCPU_H
#define KILN_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
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
};

/* Installs the (empty) kick handler for the process; call once before any vCPU thread. */
int vcpu_install_kick_handler(void) __attribute__((warn_unused_result));

/*
 * Creates vCPU id of vm: KVM_CREATE_VCPU, the kvm_run mapping, CPUID (adjusted for id), the
 * boot MSRs, LINT0/LINT1 wiring, and for vCPU 0 the 64-bit boot registers entering at entry.
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
