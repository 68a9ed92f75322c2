/* vCPU setup (CPUID, MSRs, LAPIC, boot registers) and the KVM_RUN loop. */
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "boot_x86_64.h"
#include "cpuid_x86_64.h"
#include "log.h"
#include "seccomp_filter.h"
#include "vm.h"

#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 0x1ull
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MTRR_ENABLE_WB ((1ull << 11) | 6)
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4u
#define APIC_MODE_EXTINT 0x7u

static void kick_handler(int sig)
{
	(void)sig; /* only there so that the signal interrupts KVM_RUN */
}

int vcpu_install_kick_handler(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

static int set_msrs(struct vcpu *v)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e[2];
	} m = { .head.nmsrs = 2 };

	m.e[0] = (struct kvm_msr_entry){ .index = MSR_IA32_MISC_ENABLE,
					 .data = MISC_ENABLE_FAST_STRING };
	m.e[1] = (struct kvm_msr_entry){ .index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE_WB };
	return ioctl(v->fd, KVM_SET_MSRS, &m) == 2 ? 0 : -EIO;
}

static uint32_t lapic_get(const struct kvm_lapic_state *s, unsigned reg)
{
	uint32_t v;

	memcpy(&v, &s->regs[reg], sizeof(v));
	return v;
}

static void lapic_set(struct kvm_lapic_state *s, unsigned reg, uint32_t v)
{
	memcpy(&s->regs[reg], &v, sizeof(v));
}

/* LINT0 delivers ExtINT (the PIC), LINT1 delivers NMI, as the MP table says. */
static int set_lint(struct vcpu *v)
{
	struct kvm_lapic_state s;

	if (ioctl(v->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	lapic_set(&s, APIC_LVT_LINT0, (lapic_get(&s, APIC_LVT_LINT0) & ~0x700u) | (APIC_MODE_EXTINT << 8));
	lapic_set(&s, APIC_LVT_LINT1, (lapic_get(&s, APIC_LVT_LINT1) & ~0x700u) | (APIC_MODE_NMI << 8));
	return ioctl(v->fd, KVM_SET_LAPIC, &s) < 0 ? -errno : 0;
}

static int set_boot_registers(struct vcpu *v, uint64_t entry)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	boot_sregs(&sregs);
	boot_regs(&regs, entry);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int vcpu_create(struct vm *vm, unsigned id, uint64_t entry, struct vcpu *v)
{
	struct cpuid_table *cpuid;
	const char *step;
	int err;

	*v = (struct vcpu){ .vm = vm, .id = id, .fd = -1 };
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0) {
		err = -errno;
		log_error("vCPU %u: KVM_CREATE_VCPU: %s", id, strerror(errno));
		return err;
	}
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		err = -errno;
		v->run = NULL;
		step = "mapping kvm_run";
		goto err_log;
	}
	cpuid = malloc(sizeof(*cpuid));
	if (!cpuid) {
		err = -ENOMEM;
		step = "CPUID";
		goto err_log;
	}
	*cpuid = vm->cpuid;
	cpuid_adjust(cpuid, id, vm->nr_vcpus);
	err = ioctl(v->fd, KVM_SET_CPUID2, &cpuid->head) < 0 ? -errno : 0;
	free(cpuid);
	step = "KVM_SET_CPUID2";
	if (err < 0)
		goto err_log;
	step = "boot MSRs";
	if ((err = set_msrs(v)) < 0)
		goto err_log;
	step = "LAPIC LINT0/LINT1";
	if ((err = set_lint(v)) < 0)
		goto err_log;
	step = "boot registers";
	if (id == 0 && (err = set_boot_registers(v, entry)) < 0)
		goto err_log;
	return 0;

err_log:
	log_error("vCPU %u: %s: %s", id, step, strerror(-err));
	vcpu_destroy(v);
	return err;
}

/* Consumes a pending kick so that the next KVM_RUN does not return at once. */
static void eat_kick(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

/* Handles one exit; returns false when the vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;

		v->exits_io++;
		metrics_inc(run->io.direction == KVM_EXIT_IO_OUT ? &vm->metrics->vcpu.exit_io_out
								 : &vm->metrics->vcpu.exit_io_in);
		for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
			if (run->io.direction == KVM_EXIT_IO_OUT)
				bus_write(&vm->pio_bus, run->io.port, data, run->io.size);
			else
				bus_read(&vm->pio_bus, run->io.port, data, run->io.size);
		}
		return true;
	}
	case KVM_EXIT_MMIO:
		v->exits_mmio++;
		metrics_inc(run->mmio.is_write ? &vm->metrics->vcpu.exit_mmio_write
					       : &vm->metrics->vcpu.exit_mmio_read);
		if (run->mmio.len > 8)
			return true;
		if (run->mmio.is_write)
			bus_write(&vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
		else
			bus_read(&vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
		return true;
	case KVM_EXIT_SHUTDOWN:
		log_info("vCPU %u: guest shut down (triple fault or reboot=t)", v->id);
		vm_request_exit(vm, VM_EXIT_OK);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		log_info("vCPU %u: guest system event %u", v->id, run->system_event.type);
		vm_request_exit(vm, VM_EXIT_OK);
		return false;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; treat as power-off. */
		vm_request_exit(vm, VM_EXIT_OK);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		log_error("vCPU %u: VM entry failed, hardware reason 0x%llx", v->id,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		log_error("vCPU %u: KVM internal error, suberror %u", v->id,
			  run->internal.suberror);
		metrics_inc(&vm->metrics->vcpu.failures);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	default:
		metrics_inc(&vm->metrics->vcpu.failures);
		log_error("vCPU %u: unexpected exit reason %u", v->id, run->exit_reason);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct {
		struct kvm_signal_mask head;
		uint8_t mask[8];
	} run_mask = { .head.len = 8 };
	sigset_t blocked;
	char name[16];
	int err;

	snprintf(name, sizeof(name), "kiln-vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);

	/* The kick stays blocked outside KVM_RUN and is open inside it: no lost wake-up. */
	pthread_sigmask(SIG_BLOCK, NULL, &blocked);
	sigdelset(&blocked, VCPU_KICK_SIGNAL);
	memcpy(run_mask.mask, &blocked, sizeof(run_mask.mask));
	if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &run_mask) < 0) {
		log_error("vCPU %u: KVM_SET_SIGNAL_MASK: %s", v->id, strerror(errno));
		vm_request_exit(vm, VM_EXIT_ERROR);
		return NULL;
	}
	/* The guest runs only under the vCPU filter (on top of the main thread's, inherited). */
	if (vm->seccomp && (err = seccomp_filter_install(SECCOMP_VCPU)) < 0) {
		log_error("vCPU %u: cannot install its seccomp filter: %s", v->id, strerror(-err));
		vm_request_exit(vm, VM_EXIT_ERROR);
		return NULL;
	}

	while (!vm_stopping(vm)) {
		vm_vcpu_checkpoint(vm);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				eat_kick();
				continue;
			}
			log_error("vCPU %u: KVM_RUN: %s", v->id, strerror(errno));
			vm_request_exit(vm, VM_EXIT_ERROR);
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int err = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (err) {
		log_error("vCPU %u: cannot start its thread: %s", v->id, strerror(err));
		return -err;
	}
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (v->thread_started)
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
	struct kvm_regs regs;

	if (v->thread_started)
		pthread_join(v->thread, NULL);
	v->thread_started = false;
	if (log_level_get() >= LOG_DEBUG && ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		log_debug("vCPU %u stopped at rip 0x%llx after %llu PIO and %llu MMIO exits", v->id,
			  (unsigned long long)regs.rip, (unsigned long long)v->exits_io,
			  (unsigned long long)v->exits_mmio);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}
