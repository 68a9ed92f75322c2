/* The process's state and its event loop: signals, the VM's start and end. */
#include "vmm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"
#include "snapshot.h"
#include "uffd_server.h"
#include "vcpu.h"

static void on_signal(void *opaque, int fd, uint32_t events)
{
	struct signalfd_siginfo si;
	struct vmm *m = opaque;

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("received signal %u: stopping", si.ssi_signo);
	if (m->vm) {
		vm_request_exit(m->vm, 128 + (int)si.ssi_signo);
	} else {
		m->exit_code = 128 + (int)si.ssi_signo;
		m->loop.stop = true;
	}
}

static uint64_t utc_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_metrics_timer(void *opaque, int fd, uint32_t events)
{
	struct vmm *m = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0)
		return;
	vmm_flush_metrics(m);
}

int vmm_set_metrics_path(struct vmm *m, const char *path, char *err, size_t errlen)
{
	char *copy;
	int ret;

	ret = metrics_set_output(&m->metrics, path, err, errlen);
	if (ret < 0)
		return ret;
	copy = strdup(path); /* before the free: path may be the configuration's own string */
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(m->cfg.metrics.metrics_path);
	m->cfg.metrics.metrics_path = copy;
	return 0;
}

int vmm_flush_metrics(struct vmm *m)
{
	if (!m->cfg.metrics.metrics_path)
		return -ENODATA;
	return metrics_flush(&m->metrics, utc_ms());
}

int vmm_init(struct vmm *m, const char *id, bool boot_timer)
{
	struct itimerspec every = {
		.it_interval = { METRICS_FLUSH_INTERVAL_MS / 1000, 0 },
		.it_value = { METRICS_FLUSH_INTERVAL_MS / 1000, 0 },
	};
	sigset_t set;
	int ret;

	*m = (struct vmm){ .id = id, .boot_timer = boot_timer, .signal_fd = -1,
			   .metrics_timer_fd = -1 };
	config_init(&m->cfg);
	ret = metrics_init(&m->metrics);
	if (ret < 0)
		return ret;
	log_set_instance_id(id);
	signal(SIGPIPE, SIG_IGN); /* a client or console that goes away is an EPIPE, not death */
	signal(SIGXFSZ, SIG_IGN); /* a file size limit makes a snapshot fail (EFBIG), not kiln die */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	/* Every thread created from here on (API, vCPUs) inherits this mask. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, VCPU_KICK_SIGNAL);
	ret = event_loop_init(&m->loop);
	if (ret < 0) {
		log_error("epoll: %s", strerror(-ret));
		return ret;
	}
	m->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->signal_fd < 0) {
		ret = -errno;
		log_error("signalfd: %s", strerror(errno));
		goto err;
	}
	m->metrics_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->metrics_timer_fd < 0 || timerfd_settime(m->metrics_timer_fd, 0, &every, NULL) < 0) {
		ret = -errno;
		log_error("metrics timer: %s", strerror(errno));
		goto err;
	}
	ret = event_loop_add(&m->loop, m->signal_fd, EPOLLIN, on_signal, m);
	if (ret == 0)
		ret = event_loop_add(&m->loop, m->metrics_timer_fd, EPOLLIN, on_metrics_timer, m);
	if (ret < 0) {
		log_error("event loop: %s", strerror(-ret));
		goto err;
	}
	return 0;
err:
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	if (m->metrics_timer_fd >= 0)
		close(m->metrics_timer_fd);
	event_loop_destroy(&m->loop);
	metrics_destroy(&m->metrics);
	return ret;
}

/* Checks that the files the configuration names can be read, before KVM is touched. */
static int check_files(const struct vm_config *cfg, char *err, size_t errlen)
{
	const struct {
		const char *field, *path;
	} files[] = {
		{ "boot-source.kernel_image_path", cfg->boot_source.kernel_image_path },
		{ "boot-source.initrd_path", cfg->boot_source.initrd_path },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path && access(files[i].path, R_OK) < 0) {
			int ret = -errno;

			snprintf(err, errlen, "%s: %s: %s", files[i].field, files[i].path,
				 strerror(errno));
			return ret;
		}
	}
	return 0;
}

int vmm_check_bootable(const struct vmm *m, char *err, size_t errlen)
{
	int ret = config_check_bootable(&m->cfg, err, errlen);

	return ret < 0 ? ret : check_files(&m->cfg, err, errlen);
}

void vmm_adopt_config(struct vmm *m, struct vm_config *cfg)
{
	struct logger_config l = cfg->logger;
	struct serial_config s = cfg->serial;
	struct metrics_config mc = cfg->metrics;

	cfg->logger = m->cfg.logger, m->cfg.logger = l;
	cfg->serial = m->cfg.serial, m->cfg.serial = s;
	cfg->metrics = m->cfg.metrics, m->cfg.metrics = mc;
	config_free(&m->cfg); /* with the logger, serial and metrics cfg came with */
	m->cfg = *cfg;
	config_init(cfg);
}

int vmm_start_vm(struct vmm *m, char *err, size_t errlen)
{
	struct vm *vm;
	int ret;

	if (m->vm) {
		snprintf(err, errlen, "the microVM is already running");
		return -EEXIST;
	}
	if (migration_incoming_pending(m)) {
		snprintf(err, errlen, "this kiln waits for a migrating microVM (GET /migration)");
		return -EBUSY;
	}
	ret = vmm_check_bootable(m, err, errlen);
	if (ret < 0)
		return ret;
	log_debug("instance %s: %u vCPUs, %u MiB", m->id, m->cfg.machine.vcpu_count,
		  m->cfg.machine.mem_size_mib);
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	log_clear_last_error();
	ret = vm_build(vm, &m->cfg, &m->loop, &m->metrics, m->boot_timer, NULL);
	if (ret < 0) {
		snprintf(err, errlen, "cannot build the microVM: %s",
			 log_last_error()[0] ? log_last_error() : strerror(-ret));
		free(vm);
		return ret;
	}
	m->vm = vm;
	vm->seccomp = m->seccomp; /* each vCPU thread loads its filter before its first KVM_RUN */
	ret = vm_start(vm, false);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the vCPUs: %s", strerror(-ret));
		return ret;
	}
	log_info("microVM %s started: %u vCPUs, %u MiB", m->id, m->cfg.machine.vcpu_count,
		 m->cfg.machine.mem_size_mib);
	return 0;
}

/* Whether the uffd thread failed to bring guest memory in (a migration source or snapshot gone):
 * then the guest cannot have ended well, whatever it did with the machine checks it got. */
static bool vmm_memory_lost(struct vmm *m)
{
	struct uffd_server_stats st = { 0 };

	snapshot_pager_stats(m->vm, &st);
	if (!st.error || st.error == -ECANCELED)
		return false;
	log_error("the microVM's memory could not all be brought in (%s): it is lost",
		  strerror(-st.error));
	return true;
}

int vmm_run(struct vmm *m)
{
	int code;

	if (event_loop_run(&m->loop) < 0) {
		if (!m->vm)
			return VM_EXIT_UNEXPECTED;
		vm_request_exit(m->vm, VM_EXIT_UNEXPECTED);
	}
	if (!m->vm)
		return m->exit_code;
	code = vm_stop(m->vm);
	return code == VM_EXIT_OK && vmm_memory_lost(m) ? VM_EXIT_ERROR : code;
}

void vmm_destroy(struct vmm *m)
{
	if (m->vm) {
		if (m->vm->state == VM_RUNNING || m->vm->state == VM_PAUSED)
			vm_stop(m->vm);
		vm_destroy(m->vm);
		free(m->vm);
		m->vm = NULL;
	}
	migration_destroy(m); /* after the VM: a migrate-in's uffd thread used its socket */
	if (m->snapshot) {
		snapshot_close(m->snapshot);
		free(m->snapshot);
		m->snapshot = NULL;
	}
	event_loop_destroy(&m->loop);
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	m->signal_fd = -1;
	if (m->metrics_timer_fd >= 0)
		close(m->metrics_timer_fd);
	m->metrics_timer_fd = -1;
	vmm_flush_metrics(m); /* the last counts, as Firecracker does */
	metrics_destroy(&m->metrics);
	config_free(&m->cfg);
}
