/* vCPU setup (CPUID, machine checks, MSRs, LAPIC, boot registers), the KVM_RUN loop, and the
 * SIGBUS handler that turns a host memory error under the guest into a guest machine check. */
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
#include "mce_x86_64.h"
#include "poison_log.h"
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

/* The same guest machine check this many times in a row, with no exit in between: the guest
 * does not take it (bank disabled, MCE in progress); stop rather than spin. */
#define MCE_REPEAT_LIMIT 16

/* The vCPU the calling thread runs, for the SIGBUS handler; NULL on kiln's other threads. */
static __thread struct vcpu *this_vcpu;
/* The calling thread is poisoning guest RAM on purpose (vcpu_sigbus_expect_injection). */
static __thread const struct guest_memory *injecting;

void vcpu_sigbus_expect_injection(const struct guest_memory *gm)
{
	atomic_signal_fence(memory_order_seq_cst);
	injecting = gm;
	atomic_signal_fence(memory_order_seq_cst);
}

static void kick_handler(int sig)
{
	(void)sig; /* only there so that the signal interrupts KVM_RUN */
}

/* Async-signal-safe output for the SIGBUS handler: text, then hex. */
static void sig_puts(const char *s)
{
	ssize_t n = write(STDERR_FILENO, s, strlen(s));

	(void)n;
}

static void sig_puthex(uint64_t v)
{
	char buf[19] = "0x";
	int i;

	for (i = 0; i < 16; i++)
		buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
	buf[18] = '\0';
	sig_puts(buf);
}

/*
 * kiln's one SIGBUS handler (see vcpu_install_signal_handlers). It never takes a lock nor
 * allocates: the vCPU loop records the page and injects the machine check once KVM_RUN has
 * returned (KVM raises the signal from inside KVM_RUN, which then fails with EINTR).
 */
static void sigbus_handler(int sig, siginfo_t *si, void *ctx)
{
	struct vcpu *v = this_vcpu;
	int code = si->si_code;
	uint64_t gpa = 0;
	bool in_ram;

	(void)sig;
	(void)ctx;
	if (poison_guard_handle_at(si->si_addr, code == BUS_MCEERR_AR || code == BUS_MCEERR_AO))
		return; /* not reached: the guard jumps out of its copy */
	/* Sent as madvise returns, not raised by an instruction: returning is safe. */
	if (injecting && (code == BUS_MCEERR_AR || code == BUS_MCEERR_AO) &&
	    guest_memory_gpa_of(injecting, (uintptr_t)si->si_addr, &gpa))
		return;
	in_ram = v && guest_memory_gpa_of(&v->vm->mem, (uintptr_t)si->si_addr, &gpa);
	if (in_ram && (code == BUS_MCEERR_AR || code == BUS_ADRERR) && atomic_load(&v->in_run)) {
		atomic_store(&v->sigbus, (gpa & ~0xfffull) | (uint64_t)code);
		return;
	}
	if (in_ram && code == BUS_MCEERR_AO) {
		uint64_t none = 0;

		/* An action-required error already waiting wins; the page will fault again. */
		atomic_compare_exchange_strong(&v->sigbus, &none, (gpa & ~0xfffull) | (uint64_t)code);
		return;
	}
	if (code == BUS_MCEERR_AO) {
		sig_puts("kiln: host memory error (action optional) at host address ");
		sig_puthex((uint64_t)(uintptr_t)si->si_addr);
		sig_puts(!v ? ", not on a vCPU thread: ignored until the page is used\n"
			    : ", outside guest RAM: ignored until the page is used\n");
		return;
	}
	sig_puts(code == BUS_MCEERR_AR ? "kiln: SIGBUS (BUS_MCEERR_AR) at host address "
		 : code == BUS_ADRERR  ? "kiln: SIGBUS (BUS_ADRERR) at host address "
		 : code == BUS_ADRALN  ? "kiln: SIGBUS (BUS_ADRALN) at host address "
		 : code == BUS_OBJERR  ? "kiln: SIGBUS (BUS_OBJERR) at host address "
				       : "kiln: SIGBUS at host address ");
	sig_puthex((uint64_t)(uintptr_t)si->si_addr);
	sig_puts(v ? (in_ram ? " in guest RAM, on a vCPU thread outside KVM_RUN"
			     : " outside guest RAM, on a vCPU thread")
		   : " on a thread other than a vCPU's, outside a guarded copy");
	sig_puts(": a kiln bug, exiting 149\n");
	_exit(VM_EXIT_SIGBUS);
}

int vcpu_install_signal_handlers(void)
{
	struct sigaction kick = { .sa_handler = kick_handler };
	struct sigaction bus = { .sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO };

	sigemptyset(&kick.sa_mask);
	sigemptyset(&bus.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &kick, NULL) < 0 || sigaction(SIGBUS, &bus, NULL) < 0)
		return -errno;
	return 0;
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
	step = "KVM_X86_SETUP_MCE";
	if ((err = mce_setup_vcpu(v->fd, vm->mcg_cap)) < 0)
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

static const char *sigbus_what(int code)
{
	switch (code) {
	case BUS_MCEERR_AR:
		return "action required";
	case BUS_MCEERR_AO:
		return "action optional";
	default:
		return "poison marker, BUS_ADRERR";
	}
}

/*
 * Takes the host memory error the SIGBUS handler left: records its page (the backing page size:
 * a host page is lost whole) as POISON_HOST, unless already recorded, and injects the guest's
 * machine check. False when the VM must stop.
 */
static bool handle_sigbus(struct vcpu *v)
{
	struct vm *vm = v->vm;
	uint64_t pending = atomic_exchange(&v->sigbus, 0);
	int code = (int)(pending & 0xfff);
	uint64_t gpa = pending & ~0xfffull, ps = vm->mem.page_size, page = gpa & ~(ps - 1);
	struct kvm_x86_mce mce;
	int err;

	if (code == BUS_ADRERR && !poison_log_contains(&vm->poison, gpa, 1)) {
		log_error("vCPU %u: SIGBUS (BUS_ADRERR) at guest-physical 0x%llx, a page kiln does "
			  "not know as poisoned: stopping", v->id, (unsigned long long)gpa);
		vm_request_exit(vm, VM_EXIT_SIGBUS);
		return false;
	}
	if (gpa == v->last_mce_gpa && ++v->same_mce_count >= MCE_REPEAT_LIMIT) {
		log_error("vCPU %u: the guest touched poisoned guest-physical 0x%llx %u times without "
			  "taking its machine check (banks disabled?): stopping", v->id,
			  (unsigned long long)gpa, v->same_mce_count);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	}
	if (gpa != v->last_mce_gpa)
		v->same_mce_count = 0;
	v->last_mce_gpa = gpa;
	err = poison_log_add(&vm->poison, page, ps, POISON_HOST);
	if (err < 0)
		log_error("vCPU %u: cannot record poisoned page 0x%llx: %s", v->id,
			  (unsigned long long)page, strerror(-err));
	mce_build(&mce, vm->mcg_cap, vm->cpu_amd,
		  code == BUS_MCEERR_AO ? MCE_ACTION_OPTIONAL : MCE_ACTION_REQUIRED, gpa);
	err = mce_inject(v->fd, &mce);
	if (err < 0) {
		log_error("vCPU %u: KVM_X86_SET_MCE: %s", v->id, strerror(-err));
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	}
	log_warn("vCPU %u: host memory error (%s) at guest-physical 0x%llx: page 0x%llx (%llu KiB) "
		 "in the poison log; machine check injected (%s, bank %u, MCi_STATUS 0x%016llx, "
		 "MCG_STATUS 0x%llx, MCi_MISC 0x%llx)", v->id, sigbus_what(code),
		 (unsigned long long)gpa, (unsigned long long)page, (unsigned long long)(ps >> 10),
		 vm->cpu_amd ? "AMD" : "Intel", mce.bank, (unsigned long long)mce.status,
		 (unsigned long long)mce.mcg_status, (unsigned long long)mce.misc);
	return true;
}

/*
 * A pause is coming: KVM finishes an exit kiln handled (a port or MMIO read's value is stored
 * into the registers) only on the next KVM_RUN. One entry with immediate_exit completes it
 * without running the guest, so the state a snapshot reads is whole. False when an exit met
 * meanwhile ends the vCPU.
 */
static bool settle_before_park(struct vcpu *v, bool ran)
{
	if (!ran || !atomic_load(&v->vm->pause_requested))
		return true;
	for (unsigned i = 0; i < 8; i++) {
		int ret;

		v->run->immediate_exit = 1;
		ret = ioctl(v->fd, KVM_RUN, 0);
		v->run->immediate_exit = 0;
		if (ret < 0)
			return true; /* EINTR: nothing pending any more */
		if (!handle_exit(v))
			return false;
	}
	return true;
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
	bool ran = false;
	int err;

	snprintf(name, sizeof(name), "kiln-vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	this_vcpu = v;

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
		int ret;

		/* Before parking: a paused VM's poison log must hold every page already hit. */
		if (atomic_load(&v->sigbus) && !handle_sigbus(v))
			break;
		if (!settle_before_park(v, ran))
			break;
		vm_vcpu_checkpoint(vm);
		ran = true;
		atomic_store(&v->in_run, true);
		ret = ioctl(v->fd, KVM_RUN, 0);
		atomic_store(&v->in_run, false);
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    (errno == EFAULT && atomic_load(&v->sigbus))) {
				eat_kick();
				continue;
			}
			log_error("vCPU %u: KVM_RUN: %s", v->id, strerror(errno));
			vm_request_exit(vm, VM_EXIT_ERROR);
			break;
		}
		v->same_mce_count = 0;
		if (!handle_exit(v))
			break;
	}
	this_vcpu = NULL;
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
