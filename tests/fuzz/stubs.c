/*
 * Stand-ins, for the fuzz target only, for what a process that never runs a VM cannot reach:
 * vm.c (and through it kvm.c, vcpu.c, memory.c, the loader and the devices), and the host
 * probe behind GET /capabilities. Nothing here opens /dev/kvm, so no input can start a VM.
 */
#include <errno.h>
#include <stdio.h>

#include <jansson.h>

#include "capabilities.h"
#include "log.h"
#include "migrate.h"
#include "snapshot.h"
#include "vcpu.h"
#include "vm.h"

/*
 * InstanceStart reaches this after kiln's own checks (boot-source present, no drives or
 * network interfaces, kernel and initrd readable): fail the way a host without KVM does.
 */
int vm_build(struct vm *vm, const struct vm_config *cfg, struct event_loop *loop,
	     struct metrics *metrics, bool boot_timer, struct snapshot_image *restore)
{
	(void)restore;
	(void)vm;
	(void)cfg;
	(void)loop;
	(void)metrics;
	(void)boot_timer;
	log_error("KVM: not available to the fuzz target");
	return -ENODEV;
}

/* Everything below needs a VM that vm_build made: with the stub above, none ever exists. */

int vm_start(struct vm *vm, bool paused)
{
	(void)vm;
	(void)paused;
	__builtin_trap();
}

int vm_stop(struct vm *vm)
{
	(void)vm;
	__builtin_trap();
}

int vm_pause(struct vm *vm, unsigned timeout_ms)
{
	(void)vm;
	(void)timeout_ms;
	__builtin_trap();
}

void vm_resume(struct vm *vm)
{
	(void)vm;
	__builtin_trap();
}

int vm_send_ctrl_alt_del(struct vm *vm)
{
	(void)vm;
	__builtin_trap();
}

void vm_destroy(struct vm *vm)
{
	(void)vm;
	__builtin_trap();
}

void vm_request_exit(struct vm *vm, int code)
{
	(void)vm;
	(void)code;
	__builtin_trap();
}

/* PUT /memory/poison (poison_inject.c) reaches vcpu.c only with a running VM. */
void vcpu_sigbus_expect_injection(const struct guest_memory *gm)
{
	(void)gm;
	__builtin_trap();
}

/*
 * GET /capabilities: the real probe reads no input, takes milliseconds and differs between
 * hosts (tests/unit/test_capabilities.c covers it); the API only passes its object on. This is
 * a fixed answer of the same shape, as on a host without KVM or userfaultfd.
 */
json_t *capabilities_probe(const struct capabilities_paths *paths)
{
	(void)paths;
	return json_pack("{s:{s:b, s:n, s:s, s:b, s:n}, s:{s:b, s:s, s:I, s:n}, s:b, s:n,"
			 " s:{s:n, s:n}, s:I, s:b, s:s, s:b}",
			 "kvm", "available", 0, "api_version", "error",
			 "/dev/kvm: not probed by the fuzz target", "hardware_virtualization", 0,
			 "warning",
			 "uffd", "available", 0, "error", "not probed by the fuzz target",
			 "features", (json_int_t)0, "copy_probe_error",
			 "uffd_poison", 0, "uffd_copy_refuses_poison",
			 "hugepages_2m", "total", "free",
			 "hugepages_2m_free", (json_int_t)0, "memory_failure", 0,
			 "kernel_release", "fuzz", "memfd_hugetlb", 0);
}

/* PUT /snapshot/load stops where a snapshot file would be read: inputs never reach the disk (the
 * state-file parser has its own target, fuzz_state). PUT /snapshot/create needs a VM. */
int snapshot_open(struct snapshot_image *img, struct vm_config *cfg, const char *state_path,
		  const char *mem_path, const char *uffd_socket, char *err, size_t errlen)
{
	(void)uffd_socket;
	(void)cfg;
	(void)state_path;
	(void)mem_path;
	*img = (struct snapshot_image){ .mem_fd = -1 };
	snprintf(err, errlen, "snapshots are not available to the fuzz target");
	return -ENOENT;
}

void snapshot_close(struct snapshot_image *img)
{
	(void)img;
}

int snapshot_create(struct vm *vm, enum snapshot_type type, const char *state_path,
		    const char *mem_path, char *err, size_t errlen)
{
	(void)vm;
	(void)type;
	(void)state_path;
	(void)mem_path;
	(void)err;
	(void)errlen;
	__builtin_trap();
}

/* Live migration: its endpoints' bodies are checked by vmm/migration_api.c (linked in); the
 * migration itself would open sockets, so the fuzz target refuses it past those checks. */
int migration_start(struct vmm *m, const char *uri, enum mig_mode mode, unsigned max_downtime_ms,
		    char *err, size_t errlen)
{
	struct mig_uri u;

	(void)m;
	(void)mode;
	(void)max_downtime_ms;
	if (mig_uri_parse(&u, uri, err, errlen) < 0)
		return -EINVAL;
	snprintf(err, errlen, "there is no running microVM to migrate");
	return -EINVAL;
}

int migration_incoming(struct vmm *m, const char *uri, unsigned recover_timeout_ms,
		       json_t *overrides, char *err, size_t errlen)
{
	struct mig_uri u;

	(void)m;
	(void)recover_timeout_ms;
	(void)overrides;
	if (mig_uri_parse(&u, uri, err, errlen) < 0)
		return -EINVAL;
	snprintf(err, errlen, "the fuzz target does not listen");
	return -EOPNOTSUPP;
}

int migration_recover(struct vmm *m, const char *uri, char *err, size_t errlen)
{
	(void)m;
	(void)uri;
	snprintf(err, errlen, "there is no postcopy migration to recover");
	return -EINVAL;
}

json_t *migration_status(struct vmm *m)
{
	(void)m;
	return json_pack("{s:s}", "state", "none");
}

bool migration_holds_vm(struct vmm *m)
{
	(void)m;
	return false;
}

bool migration_incoming_pending(struct vmm *m)
{
	(void)m;
	return false;
}

void migration_destroy(struct vmm *m)
{
	(void)m;
}

void snapshot_pager_stats(struct vm *vm, struct uffd_server_stats *st)
{
	(void)vm;
	(void)st;
	__builtin_trap();
}
