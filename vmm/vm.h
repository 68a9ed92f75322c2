/* The VM: every piece of one microVM's state, its ordered build steps, and its run. */
#ifndef KILN_VM_H
#define KILN_VM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot_timer.h"
#include "bus.h"
#include "config.h"
#include "cpuid_x86_64.h"
#include "event_loop.h"
#include "i8042.h"
#include "loader_x86_64.h"
#include "memory.h"
#include "serial.h"
#include "terminal.h"
#include "vcpu.h"

/* Process exit codes, the same numbers as Firecracker's. */
enum vm_exit_code {
	VM_EXIT_OK = 0,
	VM_EXIT_ERROR = 1,
	VM_EXIT_UNEXPECTED = 2,
	VM_EXIT_BAD_CONFIG = 152,
	VM_EXIT_ARG_PARSING = 153,
};

enum vm_state { VM_NOT_STARTED, VM_RUNNING, VM_EXITED };

struct vm {
	const struct vm_config *cfg;
	enum vm_state state;
	bool boot_timer_enabled;

	int kvm_fd;
	int vm_fd;
	int run_size;
	struct cpuid_table cpuid; /* KVM's supported set; each vCPU adjusts a copy */

	struct guest_memory mem;
	struct kernel_image kernel;

	struct bus pio_bus;
	struct bus mmio_bus;
	struct serial serial;
	int serial_out_fd;
	bool serial_out_owned;
	struct i8042 i8042;
	struct boot_timer boot_timer;

	unsigned nr_vcpus;
	struct vcpu vcpus[CONFIG_MAX_VCPUS];

	struct event_loop loop;
	int exit_fd;              /* eventfd: a vCPU or device asks the VM to stop */
	int signal_fd;            /* SIGINT, SIGTERM, SIGHUP */
	struct terminal term;
	atomic_bool stopping;
	atomic_int exit_code;

	unsigned steps_done;      /* how many build steps ran, for unwinding */
};

/*
 * Builds the VM described by cfg, in order: KVM, VM, guest memory, irqchip, devices, kernel
 * and boot structures, vCPUs. On failure unwinds what was done and returns -errno, having
 * logged the reason once.
 */
int vm_build(struct vm *vm, const struct vm_config *cfg, bool boot_timer)
	__attribute__((warn_unused_result));

/*
 * Starts the vCPUs and runs the event loop (console input, stop requests, signals) until the
 * guest resets or powers off or kiln is told to stop. Returns the process exit code.
 */
int vm_run(struct vm *vm);

/* Tears down everything vm_build created. */
void vm_destroy(struct vm *vm);

/* Asks the VM to stop with code (the first request wins). Callable from any thread. */
void vm_request_exit(struct vm *vm, int code);

/* True once a stop was requested. */
bool vm_stopping(const struct vm *vm);

#endif
