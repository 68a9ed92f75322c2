/* /dev/kvm: opening it, checking the API version and every capability kiln relies on. */
#ifndef KILN_KVM_H
#define KILN_KVM_H

/*
 * Opens /dev/kvm and checks API version 12 and the capabilities kiln needs, naming any
 * missing one. Returns the fd or -errno (logged).
 */
int kvm_open(void) __attribute__((warn_unused_result));

/* The name of the first capability kiln needs that /dev/kvm (kvm_fd) lacks, or NULL. */
const char *kvm_missing_cap(int kvm_fd);

/* Checks the VM-level capabilities on vm_fd, nr_vcpus against KVM's limit. 0 or -errno. */
int kvm_check_vm(int vm_fd, unsigned nr_vcpus) __attribute__((warn_unused_result));

#endif
