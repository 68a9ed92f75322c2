/* Building the VM's virtio-mmio devices from the configuration. */
#include "vm_virtio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "layout_x86_64.h"
#include "log.h"
#include "vm.h"

/* Appends to the device command line; -E2BIG when it no longer fits. */
static int __attribute__((format(printf, 2, 3))) cmdline_add(struct vm_virtio *v, const char *fmt,
							     ...)
{
	size_t len = strlen(v->cmdline);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(v->cmdline + len, sizeof(v->cmdline) - len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(v->cmdline) - len) {
		v->cmdline[len] = '\0';
		return -E2BIG;
	}
	return 0;
}

/* The next free window and IRQ line, announced on the command line and put on the bus. */
static int claim_slot(struct vm *vm, uint64_t *base, unsigned *irq)
{
	struct vm_virtio *v = &vm->virtio;

	if (v->nr_slots >= CONFIG_MAX_VIRTIO_DEVICES)
		return -ENOSPC;
	*base = LAYOUT_VIRTIO_MMIO_BASE + v->nr_slots * LAYOUT_VIRTIO_MMIO_SIZE;
	*irq = LAYOUT_IRQ_VIRTIO_FIRST + v->nr_slots;
	v->nr_slots++;
	return cmdline_add(v, " virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)*base, *irq);
}

static int attach(struct vm *vm, struct virtio_mmio *t, const char *what)
{
	int ret = bus_register(&vm->mmio_bus, t->base, LAYOUT_VIRTIO_MMIO_SIZE,
			       &virtio_mmio_bus_ops, t, what);

	if (ret < 0)
		log_error("%s: MMIO window at 0x%llx: %s", what, (unsigned long long)t->base,
			  strerror(-ret));
	else
		log_info("%s: virtio-mmio at 0x%llx, IRQ %u", what, (unsigned long long)t->base,
			 t->irq);
	return ret;
}

static int add_drive(struct vm *vm, json_t *body, unsigned index)
{
	struct vm_virtio *v = &vm->virtio;
	struct drive_config d = { 0 };
	char err[CONFIG_ERR_LEN], where[32];
	struct virtio_blk *b;
	uint64_t base;
	unsigned irq;
	int ret;

	snprintf(where, sizeof(where), "drives[%u]", index);
	ret = config_parse_drive(&d, body, where, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		return ret;
	}
	ret = claim_slot(vm, &base, &irq);
	if (ret == 0 && d.is_root_device) {
		if (d.partuuid)
			ret = cmdline_add(v, " root=PARTUUID=%s", d.partuuid);
		else
			ret = cmdline_add(v, " root=/dev/vd%c", 'a' + v->nr_blk);
		if (ret == 0)
			ret = cmdline_add(v, d.is_read_only ? " ro" : " rw");
	}
	if (ret < 0) {
		log_error("drive %s: %s", d.drive_id, strerror(-ret));
		config_drive_free(&d);
		return ret;
	}
	b = &v->blk[v->nr_blk];
	ret = virtio_blk_init(b, &d, &vm->mem, vm->loop, vm->vm_fd, base, irq);
	if (ret == 0) {
		v->nr_blk++;
		ret = metrics_device_register(vm->metrics, &block_metrics_class, d.drive_id,
					      (void **)&b->m);
	}
	if (ret == 0) {
		snprintf(where, sizeof(where), "drive %s", b->id);
		ret = attach(vm, &b->mmio, where);
	}
	config_drive_free(&d);
	return ret;
}

static int add_net(struct vm *vm, json_t *body, unsigned index)
{
	struct vm_virtio *v = &vm->virtio;
	struct net_config n = { 0 };
	char err[CONFIG_ERR_LEN], where[64];
	uint64_t base;
	unsigned irq;
	int ret;

	snprintf(where, sizeof(where), "network-interfaces[%u]", index);
	ret = config_parse_net(&n, body, where, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		return ret;
	}
	ret = claim_slot(vm, &base, &irq);
	if (ret == 0)
		ret = virtio_net_init(&v->net[v->nr_net], &n, &vm->mem, vm->loop, vm->vm_fd, base,
				      irq);
	if (ret == 0) {
		v->nr_net++;
		snprintf(where, sizeof(where), "network interface %s", n.iface_id);
		ret = attach(vm, &v->net[v->nr_net - 1].mmio, where);
	}
	config_net_free(&n);
	return ret;
}

static int add_vsock(struct vm *vm)
{
	struct vm_virtio *v = &vm->virtio;
	struct vsock_config c = { 0 };
	char err[CONFIG_ERR_LEN];
	uint64_t base;
	unsigned irq;
	int ret = config_parse_vsock(&c, vm->cfg->vsock, "vsock", err, sizeof(err));

	if (ret < 0) {
		log_error("%s", err);
		return ret;
	}
	ret = claim_slot(vm, &base, &irq);
	if (ret == 0)
		ret = virtio_vsock_init(&v->vsock, &c, &vm->mem, vm->loop, vm->vm_fd, base, irq);
	if (ret == 0) {
		v->has_vsock = true;
		ret = attach(vm, &v->vsock.mmio, "vsock");
	}
	config_vsock_free(&c);
	return ret;
}

static int add_rng(struct vm *vm)
{
	struct vm_virtio *v = &vm->virtio;
	struct entropy_config e;
	char err[CONFIG_ERR_LEN];
	uint64_t base;
	unsigned irq;
	int ret = config_parse_entropy(&e, vm->cfg->entropy, "entropy", err, sizeof(err));

	if (ret < 0) {
		log_error("%s", err);
		return ret;
	}
	ret = claim_slot(vm, &base, &irq);
	if (ret == 0)
		ret = virtio_rng_init(&v->rng, &vm->mem, vm->loop, vm->vm_fd, base, irq);
	if (ret == 0) {
		v->has_rng = true;
		ret = metrics_device_register(vm->metrics, &entropy_metrics_class, "entropy",
					      (void **)&v->rng.m);
	}
	if (ret == 0) {
		ret = attach(vm, &v->rng.mmio, "entropy");
	}
	return ret;
}

void vm_virtio_exit(struct vm *vm)
{
	struct vm_virtio *v = &vm->virtio;

	if (v->has_rng)
		virtio_rng_destroy(&v->rng);
	if (v->has_vsock)
		virtio_vsock_destroy(&v->vsock);
	while (v->nr_net > 0)
		virtio_net_destroy(&v->net[--v->nr_net]);
	while (v->nr_blk > 0)
		virtio_blk_destroy(&v->blk[--v->nr_blk]);
	v->has_rng = v->has_vsock = false;
	v->nr_slots = 0;
	v->cmdline[0] = '\0';
}

int vm_virtio_init(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	size_t i;
	json_t *e;
	int ret = 0;

	vm->virtio.cmdline[0] = '\0';
	/* The root drive first: the guest names block devices in the order it finds them. */
	json_array_foreach(cfg->drives, i, e)
		if (ret == 0 && json_is_true(json_object_get(e, "is_root_device")))
			ret = add_drive(vm, e, (unsigned)i);
	json_array_foreach(cfg->drives, i, e)
		if (ret == 0 && !json_is_true(json_object_get(e, "is_root_device")))
			ret = add_drive(vm, e, (unsigned)i);
	json_array_foreach(cfg->network_interfaces, i, e)
		if (ret == 0)
			ret = add_net(vm, e, (unsigned)i);
	if (ret == 0 && cfg->vsock)
		ret = add_vsock(vm);
	if (ret == 0 && cfg->entropy)
		ret = add_rng(vm);
	if (ret < 0)
		vm_virtio_exit(vm);
	return ret;
}
