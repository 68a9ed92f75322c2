/* VM construction as an ordered table of steps, unwound in reverse on failure; the run loop. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "boot_x86_64.h"
#include "kvm.h"
#include "layout_x86_64.h"
#include "log.h"
#include "mce_x86_64.h"
#include "mptable_x86_64.h"
#include "seccomp_filter.h"
#include "migrate.h"
#include "snapshot.h"

#define MIB (1ull << 20)

struct vm_step {
	const char *name;
	int (*init)(struct vm *vm);
	void (*exit)(struct vm *vm);
};

/* --- KVM and the VM file descriptor --- */

static int step_kvm_init(struct vm *vm)
{
	int ret;

	vm->kvm_fd = kvm_open();
	if (vm->kvm_fd < 0)
		return vm->kvm_fd;
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		log_error("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		ret = -EIO;
		goto err;
	}
	ret = cpuid_get_supported(vm->kvm_fd, &vm->cpuid);
	if (ret < 0)
		goto err;
	vm->cpu_amd = cpuid_is_amd(&vm->cpuid);
	{
		uint64_t supported;
		unsigned banks;

		ret = mce_get_supported(vm->kvm_fd, &supported, &banks);
		if (ret < 0)
			goto err;
		vm->mcg_cap = mce_guest_cap(supported, banks);
		if (vm->mcg_cap == 0) {
			log_error("KVM offers no machine-check bank (KVM_CAP_MCE %u)", banks);
			ret = -ENOTSUP;
			goto err;
		}
		log_debug("machine checks: MCG_CAP 0x%llx (KVM offers 0x%llx and %u banks), %s "
			  "semantics", (unsigned long long)vm->mcg_cap,
			  (unsigned long long)supported, banks, vm->cpu_amd ? "AMD" : "Intel");
	}
	return 0;
err:
	close(vm->kvm_fd);
	vm->kvm_fd = -1;
	return ret;
}

static void step_kvm_exit(struct vm *vm)
{
	close(vm->kvm_fd);
	vm->kvm_fd = -1;
}

static int step_vm_init(struct vm *vm)
{
	uint64_t identity = LAYOUT_IDENTITY_MAP_ADDR;
	const char *what;
	int ret;

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return ret;
	}
	ret = kvm_check_vm(vm->vm_fd, vm->nr_vcpus);
	if (ret < 0)
		goto err;
	what = "KVM_SET_TSS_ADDR";
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS_ADDR) < 0)
		goto err_errno;
	what = "KVM_SET_IDENTITY_MAP_ADDR";
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		goto err_errno;
	what = "KVM_CREATE_IRQCHIP";
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto err_errno;
	{
		struct kvm_pit_config pit = { .flags = 0 };

		what = "KVM_CREATE_PIT2";
		if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			goto err_errno;
	}
	return 0;

err_errno:
	ret = -errno;
	log_error("%s: %s", what, strerror(errno));
err:
	close(vm->vm_fd);
	vm->vm_fd = -1;
	return ret;
}

static void step_vm_exit(struct vm *vm)
{
	close(vm->vm_fd);
	vm->vm_fd = -1;
}

/* --- the poison log, then guest memory --- */

static int step_poison_init(struct vm *vm)
{
	int ret = poison_log_init(&vm->poison);

	if (ret < 0) {
		log_error("poison log: %s", strerror(-ret));
		return ret;
	}
	if (vm->restore && (ret = snapshot_restore_poison(vm)) < 0)
		poison_log_destroy(&vm->poison);
	return ret;
}

static void step_poison_exit(struct vm *vm)
{
	poison_log_destroy(&vm->poison);
}

static uint64_t host_mem_total(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kib = 0;

	if (!f)
		return 0;
	if (fscanf(f, "MemTotal: %llu kB", &kib) != 1)
		kib = 0;
	fclose(f);
	return kib * 1024;
}

static int set_slot(struct vm *vm, unsigned i, bool log_dirty)
{
	const struct guest_region *r = &vm->mem.regions[i];
	struct kvm_userspace_memory_region slot = {
		.slot = i,
		.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + r->offset),
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
		int ret = -errno;

		log_error("KVM_SET_USER_MEMORY_REGION slot %u: %s", i, strerror(errno));
		return ret;
	}
	return 0;
}

int vm_set_dirty_logging(struct vm *vm, bool on)
{
	int ret = 0;

	for (unsigned i = 0; i < vm->mem.nr_regions && ret == 0; i++)
		ret = set_slot(vm, i, on);
	return ret;
}

static int step_memory_init(struct vm *vm)
{
	const struct machine_config *m = &vm->cfg->machine;
	uint64_t size = (uint64_t)m->mem_size_mib * MIB, host = host_mem_total();
	int ret;

	if (host && size > host) {
		log_error("machine-config.mem_size_mib %u exceeds the host's %llu MiB of RAM",
			  m->mem_size_mib, (unsigned long long)(host / MIB));
		return -ENOMEM;
	}
	/* A migrate-in brings the memory precopy filled. */
	if (vm->restore && vm->restore->mig)
		ret = mig_in_take_memory(vm->restore->mig, &vm->mem);
	else
		ret = guest_memory_create(&vm->mem, size, m->huge_pages == HUGE_PAGES_2M);
	if (ret < 0)
		return ret;
	vm->mem.poison = &vm->poison;
	/* Before anything can touch the memory: the uffd thread serves it, poison marked first. */
	if (vm->restore && (ret = snapshot_restore_memory(vm)) < 0) {
		guest_memory_destroy(&vm->mem);
		return ret;
	}
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		/* KVM's dirty log, with kiln's record of its own writes, makes a Diff. */
		ret = set_slot(vm, i, vm->cfg->machine.track_dirty_pages);
		if (ret < 0) {
			snapshot_stop_memory(vm);
			guest_memory_destroy(&vm->mem);
			return ret;
		}
	}
	return 0;
}

static void step_memory_exit(struct vm *vm)
{
	snapshot_stop_memory(vm);
	guest_memory_destroy(&vm->mem);
}

/* --- legacy devices --- */

static void set_irq_line(struct vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
}

static void serial_irq(void *opaque, int level)
{
	set_irq_line(opaque, LAYOUT_IRQ_COM1, level);
}

static void keyboard_irq(void *opaque, int level)
{
	set_irq_line(opaque, LAYOUT_IRQ_KEYBOARD, level);
}

static void guest_reset(void *opaque)
{
	log_info("guest requested a reset through the i8042: stopping the VM");
	vm_request_exit(opaque, VM_EXIT_OK);
}

static void step_devices_exit(struct vm *vm)
{
	serial_destroy(&vm->serial);
	i8042_destroy(&vm->i8042);
	if (vm->serial_out_owned)
		close(vm->serial_out_fd);
	vm->pio_bus.nr = vm->mmio_bus.nr = 0;
}

static int step_devices_init(struct vm *vm)
{
	const char *out_path = vm->cfg->serial.serial_out_path;
	int ret;

	vm->serial_out_fd = STDOUT_FILENO;
	vm->serial_out_owned = false;
	if (out_path) {
		vm->serial_out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (vm->serial_out_fd < 0) {
			ret = -errno;
			log_error("serial.serial_out_path %s: %s", out_path, strerror(errno));
			return ret;
		}
		vm->serial_out_owned = true;
	}
	serial_init(&vm->serial, vm->serial_out_fd, serial_irq, vm);
	i8042_init(&vm->i8042, keyboard_irq, guest_reset, vm);
	ret = bus_register(&vm->pio_bus, SERIAL_PORT_BASE, SERIAL_PORT_LEN, &serial_bus_ops,
			   &vm->serial, "serial");
	if (ret == 0)
		ret = bus_register(&vm->pio_bus, I8042_PORT_BASE, I8042_PORT_LEN, &i8042_bus_ops,
				   &vm->i8042, "i8042");
	if (ret == 0 && vm->boot_timer_enabled)
		ret = bus_register(&vm->mmio_bus, LAYOUT_BOOT_TIMER_ADDR, 1, &boot_timer_bus_ops,
				   &vm->boot_timer, "boot-timer");
	if (ret < 0) {
		log_error("registering legacy devices: %s", strerror(-ret));
		step_devices_exit(vm);
		return ret;
	}
	return 0;
}

/* --- kernel, initrd, boot structures --- */

static int step_kernel_init(struct vm *vm)
{
	const struct boot_source_config *b = &vm->cfg->boot_source;
	const char *args = b->boot_args ? b->boot_args : CONFIG_DEFAULT_BOOT_ARGS;
	uint64_t initrd_addr = 0, initrd_size = 0;
	char cmdline[LAYOUT_CMDLINE_MAX + 1];
	int ret;

	if (vm->restore)
		return 0; /* the kernel is in the snapshot's memory, running */
	if ((size_t)snprintf(cmdline, sizeof(cmdline), "%s%s", args, vm->virtio.cmdline) >=
	    sizeof(cmdline)) {
		log_error("the kernel command line with the devices' arguments is longer than %u bytes",
			  LAYOUT_CMDLINE_MAX - 1);
		return -E2BIG;
	}

	ret = loader_load_kernel(&vm->mem, b->kernel_image_path, &vm->kernel);
	if (ret < 0)
		return ret;
	if (b->initrd_path) {
		ret = loader_load_initrd(&vm->mem, b->initrd_path, &vm->kernel, &initrd_addr,
					 &initrd_size);
		if (ret < 0)
			return ret;
	}
	ret = boot_setup_memory(&vm->mem, &vm->kernel, cmdline, initrd_addr, initrd_size);
	if (ret < 0)
		return ret;
	return mptable_setup(&vm->mem, vm->nr_vcpus);
}

/* --- vCPUs --- */

static void step_vcpus_exit(struct vm *vm)
{
	for (unsigned i = vm->nr_vcpus; i-- > 0;)
		vcpu_destroy(&vm->vcpus[i]);
}

static int step_vcpus_init(struct vm *vm)
{
	int ret = vcpu_install_signal_handlers();

	if (ret < 0) {
		log_error("installing the vCPU kick and SIGBUS handlers: %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_create(vm, i, vm->kernel.entry, &vm->vcpus[i]);
		if (ret < 0) {
			while (i-- > 0)
				vcpu_destroy(&vm->vcpus[i]);
			return ret;
		}
	}
	return 0;
}

/* --- the VM's handlers on the process's event loop: stop requests, console input --- */

static void on_exit_request(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("reading the exit eventfd: %s", strerror(errno));
	vm->loop->stop = true;
}

static void on_stdin(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	uint8_t buf[SERIAL_RX_FIFO];
	size_t space = serial_rx_space(&vm->serial);
	ssize_t n;

	if (space == 0) {
		/* The guest has not drained its FIFO; give it a moment rather than drop input. */
		usleep(1000);
		return;
	}
	n = read(fd, buf, space < sizeof(buf) ? space : sizeof(buf));
	if (n > 0) {
		serial_rx_push(&vm->serial, buf, (size_t)n);
		return;
	}
	if (n == 0 || (events & (EPOLLHUP | EPOLLERR))) {
		event_loop_del(vm->loop, fd);
		vm->stdin_watched = false;
	}
}

static void step_events_exit(struct vm *vm)
{
	if (vm->stdin_watched)
		event_loop_del(vm->loop, STDIN_FILENO);
	vm->stdin_watched = false;
	event_loop_del(vm->loop, vm->exit_fd);
	close(vm->exit_fd);
	vm->exit_fd = -1;
}

static int step_events_init(struct vm *vm)
{
	int ret;

	vm->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_fd < 0) {
		ret = -errno;
		log_error("eventfd: %s", strerror(errno));
		return ret;
	}
	ret = event_loop_add(vm->loop, vm->exit_fd, EPOLLIN, on_exit_request, vm);
	if (ret < 0) {
		log_error("event loop: %s", strerror(-ret));
		close(vm->exit_fd);
		vm->exit_fd = -1;
		return ret;
	}
	/* Regular files and /dev/null cannot be polled: then there is simply no console input. */
	if (!vm->cfg->serial.serial_out_path &&
	    event_loop_add(vm->loop, STDIN_FILENO, EPOLLIN, on_stdin, vm) == 0)
		vm->stdin_watched = true;
	else
		log_debug("no console input");
	return 0;
}

/* --- a snapshot's state, once vCPUs and devices exist --- */

static int step_restore_init(struct vm *vm)
{
	return vm->restore ? snapshot_restore_state(vm) : 0;
}

static const struct vm_step vm_steps[] = {
	{ "kvm", step_kvm_init, step_kvm_exit },
	{ "vm", step_vm_init, step_vm_exit },
	{ "poison", step_poison_init, step_poison_exit },
	{ "memory", step_memory_init, step_memory_exit },
	{ "devices", step_devices_init, step_devices_exit },
	{ "virtio", vm_virtio_init, vm_virtio_exit },
	{ "kernel", step_kernel_init, NULL },
	{ "events", step_events_init, step_events_exit },
	{ "vcpus", step_vcpus_init, step_vcpus_exit },
	{ "restore", step_restore_init, NULL },
};

#define NR_STEPS (sizeof(vm_steps) / sizeof(vm_steps[0]))

int vm_build(struct vm *vm, const struct vm_config *cfg, struct event_loop *loop,
	     struct metrics *metrics, bool boot_timer, struct snapshot_image *restore)
{
	pthread_condattr_t attr;

	*vm = (struct vm){
		.cfg = cfg,
		.loop = loop,
		.metrics = metrics,
		.kvm_fd = -1,
		.vm_fd = -1,
		.exit_fd = -1,
		.serial_out_fd = -1,
		.boot_timer_enabled = boot_timer,
		.nr_vcpus = cfg->machine.vcpu_count,
		.mem = { .fd = -1 },
		.restore = restore,
	};
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* vm_pause's deadline */
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, &attr);
	pthread_condattr_destroy(&attr);
	boot_timer_start(&vm->boot_timer);
	for (; vm->steps_done < NR_STEPS; vm->steps_done++) {
		const struct vm_step *s = &vm_steps[vm->steps_done];
		int ret = s->init(vm);

		if (ret < 0) {
			log_debug("VM build step \"%s\" failed: %s", s->name, strerror(-ret));
			vm_destroy(vm);
			return ret;
		}
		log_debug("VM build step \"%s\" done at %.3f ms", s->name,
			  boot_timer_elapsed_ns(&vm->boot_timer) / 1e6);
	}
	return 0;
}

void vm_destroy(struct vm *vm)
{
	while (vm->steps_done > 0) {
		const struct vm_step *s = &vm_steps[--vm->steps_done];

		if (s->exit)
			s->exit(vm);
	}
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
}

void vm_request_exit(struct vm *vm, int code)
{
	bool expected = false;
	uint64_t one = 1;

	if (!atomic_compare_exchange_strong(&vm->stopping, &expected, true))
		return;
	atomic_store(&vm->exit_code, code);
	if (write(vm->exit_fd, &one, sizeof(one)) < 0)
		log_warn("signalling the exit eventfd: %s", strerror(errno));
}

bool vm_stopping(const struct vm *vm)
{
	return atomic_load(&vm->stopping);
}

int vm_start(struct vm *vm, bool paused)
{
	int ret = 0;

	if (!vm->cfg->serial.serial_out_path)
		terminal_raw(&vm->term, STDIN_FILENO);
	vm->state = VM_RUNNING;
	if (paused) {
		/* Each thread parks at its first checkpoint, before any KVM_RUN. */
		atomic_store(&vm->pause_requested, true);
		vm->state = VM_PAUSED;
	}
	for (unsigned i = 0; i < vm->nr_vcpus && ret == 0; i++)
		ret = vcpu_start(&vm->vcpus[i]);
	if (ret < 0) {
		vm_request_exit(vm, VM_EXIT_ERROR);
		return ret;
	}
	/* Nothing is built from here on: the main thread gives up what building needed
	 * (seccomp/seccomp_filter.c); the vCPU threads, created already, keep their filters. */
	if (vm->seccomp && (ret = seccomp_filter_install(SECCOMP_MAIN_RUNNING)) < 0) {
		log_error("cannot narrow the main thread's seccomp filter: %s", strerror(-ret));
		vm_request_exit(vm, VM_EXIT_ERROR);
	}
	return ret;
}

int vm_stop(struct vm *vm)
{
	vm_request_exit(vm, VM_EXIT_OK);
	vm_resume(vm); /* parked vCPUs wake, see the VM stopping and end */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	vm->state = VM_EXITED;
	terminal_restore(&vm->term);
	return atomic_load(&vm->exit_code);
}

void vm_vcpu_checkpoint(struct vm *vm)
{
	if (!atomic_load(&vm->pause_requested))
		return;
	pthread_mutex_lock(&vm->pause_lock);
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_requested) && !vm_stopping(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->nr_parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm, unsigned timeout_ms)
{
	struct timespec deadline;
	int ret = 0;

	if (vm->state == VM_PAUSED)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	atomic_store(&vm->pause_requested, true);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nr_parked < vm->nr_vcpus && ret == 0 && !vm_stopping(vm))
		ret = -pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &deadline);
	pthread_mutex_unlock(&vm->pause_lock);
	if (ret == 0 && vm_stopping(vm))
		ret = -ESHUTDOWN;
	if (ret < 0) {
		vm_resume(vm);
		return ret;
	}
	vm->state = VM_PAUSED;
	return 0;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_requested, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (vm->state == VM_PAUSED)
		vm->state = VM_RUNNING;
}

int vm_send_ctrl_alt_del(struct vm *vm)
{
	return i8042_send_ctrl_alt_del(&vm->i8042);
}
