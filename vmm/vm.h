/* The VM: every piece of one microVM's state, its ordered build steps, and its run. */
#ifndef KILN_VM_H
#define KILN_VM_H

#include <pthread.h>
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
#include "metrics.h"
#include "poison_log.h"
#include "serial.h"
#include "terminal.h"
#include "vcpu.h"
#include "vm_virtio.h"

/* Process exit codes, the same numbers as Firecracker's. */
enum vm_exit_code {
	VM_EXIT_OK = 0,
	VM_EXIT_ERROR = 1,
	VM_EXIT_UNEXPECTED = 2,
	VM_EXIT_SIGBUS = 149,     /* a SIGBUS that was no guest memory error: a kiln bug */
	VM_EXIT_BAD_CONFIG = 152,
	VM_EXIT_ARG_PARSING = 153,
};

struct snapshot_image;
struct snapshot_pager;

enum vm_state { VM_NOT_STARTED, VM_RUNNING, VM_PAUSED, VM_EXITED };

struct vm {
	const struct vm_config *cfg;
	enum vm_state state;
	bool boot_timer_enabled;
	bool seccomp;             /* seccomp filters: vCPU threads load theirs, vm_start narrows main's */

	int kvm_fd;
	int vm_fd;
	int run_size;
	struct cpuid_table cpuid; /* KVM's supported set; each vCPU adjusts a copy */
	bool cpu_amd;             /* AMD's machine-check semantics (from CPUID leaf 0) */
	uint64_t mcg_cap;         /* each vCPU's IA32_MCG_CAP (KVM_X86_SETUP_MCE) */

	struct guest_memory mem;
	struct poison_log poison; /* poisoned guest-physical pages; mem.poison points here */
	struct kernel_image kernel;

	struct bus pio_bus;
	struct bus mmio_bus;
	struct serial serial;
	int serial_out_fd;
	bool serial_out_owned;
	struct i8042 i8042;
	struct boot_timer boot_timer;
	struct vm_virtio virtio;

	unsigned nr_vcpus;
	struct vcpu vcpus[CONFIG_MAX_VCPUS];

	struct event_loop *loop;  /* the process's loop (not owned); the VM adds its handlers */
	struct metrics *metrics;  /* the process's metrics (not owned) */
	int exit_fd;              /* eventfd: a vCPU or device asks the VM to stop */
	bool stdin_watched;
	struct terminal term;
	atomic_bool stopping;
	atomic_int exit_code;

	/* Pause: vCPU threads park on pause_cond while pause_requested is set. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_requested;
	unsigned nr_parked;

	unsigned steps_done;      /* how many build steps ran, for unwinding */

	/* Restoring a snapshot (migration/snapshot.h): NULL for a fresh boot. Not owned. */
	struct snapshot_image *restore;
	struct snapshot_pager *pager; /* the uffd thread serving guest memory, while it runs */
};

/*
 * Builds the VM described by cfg, in order: KVM, VM, guest memory, irqchip, devices, kernel
 * and boot structures, its handlers on loop (stop requests, console input), vCPUs. cfg, loop
 * and metrics must outlive the VM. With restore (which must outlive it too), the VM is built
 * from the snapshot instead: its poison log, its memory served by the uffd thread, no kernel,
 * and the saved state of the VM, vCPUs and devices. On failure unwinds what was done and
 * returns -errno, having logged the reason once.
 */
int vm_build(struct vm *vm, const struct vm_config *cfg, struct event_loop *loop,
	     struct metrics *metrics, bool boot_timer, struct snapshot_image *restore)
	__attribute__((warn_unused_result));

/*
 * Starts the vCPUs (parked, as by vm_pause, when paused is set); with vm->seccomp, the calling (main) thread then narrows its seccomp
 * filter to what a running VM needs. From then on, when the guest resets or powers off (or
 * vm_request_exit is called) the VM sets loop->stop; the caller then calls vm_stop. Returns 0
 * or -errno (the VM is then already asked to stop).
 */
int vm_start(struct vm *vm, bool paused) __attribute__((warn_unused_result));

/* Stops the vCPUs (waking paused ones) and waits for them. Returns the VM's exit code. */
int vm_stop(struct vm *vm);

/*
 * Parks every vCPU outside KVM_RUN and returns once all are parked (0), or -ETIMEDOUT after
 * timeout_ms (the VM then resumes), or -ESHUTDOWN if the VM is stopping. Main thread only.
 */
int vm_pause(struct vm *vm, unsigned timeout_ms) __attribute__((warn_unused_result));

/* Lets parked vCPUs run again. Main thread only. */
void vm_resume(struct vm *vm);

/* Turns KVM's dirty-page log of every memslot on or off (a migration's rounds need it while
 * the VM runs). 0, or -errno, logged. */
int vm_set_dirty_logging(struct vm *vm, bool on) __attribute__((warn_unused_result));

/* Presses Ctrl+Alt+Del on the guest's keyboard. -ENOSPC if its buffer is full. */
int vm_send_ctrl_alt_del(struct vm *vm) __attribute__((warn_unused_result));

/* Tears down everything vm_build created; the vCPUs must have been stopped. */
void vm_destroy(struct vm *vm);

/* Asks the VM to stop with code (the first request wins). Callable from any thread. */
void vm_request_exit(struct vm *vm, int code);

/* True once a stop was requested. */
bool vm_stopping(const struct vm *vm);

/* Called by a vCPU thread between KVM_RUN calls: parks it while a pause is requested. */
void vm_vcpu_checkpoint(struct vm *vm);

#endif
