/* The process: the configuration, the VM once started, and the event loop thread that owns them. */
#ifndef KILN_VMM_H
#define KILN_VMM_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "event_loop.h"
#include "metrics.h"
#include "vm.h"

#define KILN_VERSION "0.1.0"

struct api;
struct snapshot_image;
struct migration;

struct vmm {
	const char *id;
	bool boot_timer;
	struct vm_config cfg;
	struct vm *vm;      /* NULL until the VM is started */
	struct snapshot_image *snapshot; /* the snapshot vm was restored from, NULL if booted */
	struct migration *mig; /* this process's migration, either side; NULL: none */
	struct event_loop loop;
	int signal_fd;      /* SIGINT, SIGTERM, SIGHUP */
	int exit_code;      /* when the loop ends before a VM exists */
	struct api *api;    /* NULL with --no-api */
	struct metrics metrics;
	int metrics_timer_fd; /* flushes the metrics every METRICS_FLUSH_INTERVAL_MS */
	bool seccomp;       /* threads filter themselves (off with --no-seccomp) */
};

/*
 * Prepares the process: blocks the signals kiln handles (threads created later inherit the
 * mask), ignores SIGPIPE, and sets up the event loop with the signal handler. Opens no KVM.
 */
int vmm_init(struct vmm *m, const char *id, bool boot_timer) __attribute__((warn_unused_result));

/*
 * Checks the configuration can boot: boot-source present, no device kiln lacks, kernel and
 * initrd readable. Returns 0 or -errno with one line in err.
 */
int vmm_check_bootable(const struct vmm *m, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Makes cfg (a restored or migrated VM's configuration, which brings the machine and its
 * devices) the process's, keeping this process's own logger, serial output and metrics; cfg is
 * then empty (moved, not to be freed again).
 */
void vmm_adopt_config(struct vmm *m, struct vm_config *cfg);

/*
 * Checks the configuration can boot (vmm_check_bootable), then builds and starts the VM (KVM is opened here).
 * On failure returns -errno with one line in err; the process keeps running without a VM.
 */
int vmm_start_vm(struct vmm *m, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Runs the event loop until the VM ends, or a signal arrives. Stops the VM and returns the
 * process exit code.
 */
int vmm_run(struct vmm *m);

/*
 * Sends the metrics to path from now on (PUT /metrics, the config file's "metrics", or
 * --metrics-path); only the first call succeeds. Returns 0 or -errno with one line in err.
 */
int vmm_set_metrics_path(struct vmm *m, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Writes one metrics line now. -ENODATA when no output is configured; a failed write is also
 * counted in the metrics' logger group, so callers without anyone to tell may ignore it.
 */
int vmm_flush_metrics(struct vmm *m);

/*
 * PUT /memory/poison, on the event loop thread with a running VM: poisons the guest-physical
 * range [gpa, gpa+len) on purpose, as a host memory error would (vmm/poison_inject.c). 0, or
 * -errno with one line in err: -EINVAL for a range kiln refuses, -EOPNOTSUPP when the host
 * cannot do it.
 */
int vmm_poison_inject(struct vmm *m, uint64_t gpa, uint64_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Frees the VM, the configuration and the loop. */
void vmm_destroy(struct vmm *m);

#endif
