/* virtio-mmio version 2: the register file, status and feature negotiation, queue setup,
 * ioeventfd notifications and irqfd interrupts. */
#include "mmio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "virtio.h"

/* Register offsets (virtio 1.2, 4.2.2). */
enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_SHM_LEN_LOW = 0x0b0,
	REG_SHM_LEN_HIGH = 0x0b4,
	REG_CONFIG_GENERATION = 0x0fc,
};

#define MMIO_MAGIC 0x74726976u /* "virt" */
#define MMIO_VERSION 2u
#define MMIO_VENDOR 0x4e4c494bu /* "KILN" */

static uint64_t offered_features(const struct virtio_mmio *t)
{
	return t->ops->features | VIRTIO_BIT(VIRTIO_F_VERSION_1) |
	       VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
}

bool virtio_mmio_has_feature(const struct virtio_mmio *t, unsigned bit)
{
	return bit < 64 && (t->driver_features & VIRTIO_BIT(bit));
}

void virtio_mmio_lock(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(struct virtio_mmio *t)
{
	pthread_mutex_unlock(&t->lock);
}

static void raise_irq(struct virtio_mmio *t, unsigned bits)
{
	uint64_t one = 1;

	atomic_fetch_or(&t->interrupt_status, bits);
	t->nr_signals++;
	if (t->irqfd >= 0 && write(t->irqfd, &one, sizeof(one)) < 0)
		log_warn("virtio %s: irqfd: %s", t->ops->name, strerror(errno));
}

void virtio_mmio_signal_used(struct virtio_mmio *t, unsigned q)
{
	if (q < t->ops->nr_queues && virtq_should_signal(&t->queues[q], t->mem))
		raise_irq(t, VIRTIO_INT_USED_RING);
}

void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why)
{
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("virtio %s at 0x%llx: %s; the device needs a reset", t->ops->name,
		 (unsigned long long)t->base, why);
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		raise_irq(t, VIRTIO_INT_CONFIG);
}

bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned q)
{
	return t->activated && !(t->status & VIRTIO_STATUS_NEEDS_RESET) && q < t->ops->nr_queues &&
	       t->queues[q].ready;
}

static void notify_locked(struct virtio_mmio *t, unsigned q)
{
	if (virtio_mmio_queue_live(t, q))
		t->ops->notify(t, q);
}

static void device_reset(struct virtio_mmio *t)
{
	if (t->activated && t->ops->reset)
		t->ops->reset(t);
	t->activated = false;
	t->status = 0;
	t->driver_features = 0;
	t->device_features_sel = t->driver_features_sel = t->queue_sel = 0;
	atomic_store(&t->interrupt_status, 0);
	for (unsigned i = 0; i < t->ops->nr_queues; i++)
		virtq_reset(&t->queues[i]);
}

static void write_status(struct virtio_mmio *t, uint32_t v)
{
	uint32_t added = v & ~t->status;

	if (v == 0) {
		device_reset(t);
		return;
	}
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		uint64_t f = t->driver_features;

		if ((f & ~offered_features(t)) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
			v &= ~VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back and gives up */
	}
	t->status = (t->status & VIRTIO_STATUS_NEEDS_RESET) | v;
	if ((added & VIRTIO_STATUS_DRIVER_OK) && (t->status & VIRTIO_STATUS_NEEDS_RESET)) {
		/* Broken before DRIVER_OK (a bad queue): tell the driver now, and stay stopped. */
		raise_irq(t, VIRTIO_INT_CONFIG);
		return;
	}
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !t->activated &&
	    (t->status & VIRTIO_STATUS_FEATURES_OK)) {
		int ret;

		/* Each queue took EVENT_IDX from the features when it went ready. */
		ret = t->ops->activate ? t->ops->activate(t) : 0;
		if (ret < 0) {
			virtio_mmio_needs_reset(t, strerror(-ret));
			return;
		}
		t->activated = true;
		/* Buffers the driver queued before DRIVER_OK are served now: by the event loop,
		 * through the queue's ioeventfd, where there is one (a vCPU thread writes status,
		 * and its seccomp filter allows no device I/O). */
		for (unsigned i = 0; i < t->ops->nr_queues; i++) {
			uint64_t one = 1;

			if (t->notify[i].fd < 0 || write(t->notify[i].fd, &one, sizeof(one)) < 0)
				notify_locked(t, i);
		}
	}
}

int virtio_mmio_restore(struct virtio_mmio *t, char *err, size_t errlen)
{
	uint32_t status = t->status;

	if (t->driver_features & ~offered_features(t)) {
		snprintf(err, errlen, "virtio %s: driver features 0x%llx were never offered",
			 t->ops->name, (unsigned long long)t->driver_features);
		return -EINVAL;
	}
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		struct virtq *q = &t->queues[i];

		if (i >= t->ops->nr_queues && (q->ready || q->size)) {
			snprintf(err, errlen, "virtio %s: queue %u does not exist", t->ops->name, i);
			return -EINVAL;
		}
		if (q->ready && virtq_check(q, t->mem) < 0) {
			snprintf(err, errlen, "virtio %s: queue %u: size %u or ring addresses invalid",
				 t->ops->name, i, q->size);
			return -EINVAL;
		}
		q->event_idx = q->ready && virtio_mmio_has_feature(t, VIRTIO_F_RING_EVENT_IDX);
	}
	t->activated = false;
	if ((status & VIRTIO_STATUS_DRIVER_OK) && (status & VIRTIO_STATUS_FEATURES_OK) &&
	    !(status & VIRTIO_STATUS_NEEDS_RESET)) {
		int ret = t->ops->activate ? t->ops->activate(t) : 0;

		if (ret < 0) {
			snprintf(err, errlen, "virtio %s: cannot restart its backend: %s", t->ops->name,
				 strerror(-ret));
			return ret;
		}
		t->activated = true;
		/* Buffers queued but not yet taken are served by the event loop's first pass. */
		for (unsigned i = 0; i < t->ops->nr_queues; i++) {
			uint64_t one = 1;

			if (t->notify[i].fd >= 0 && write(t->notify[i].fd, &one, sizeof(one)) < 0)
				log_warn("virtio %s: kick after restore: %s", t->ops->name,
					 strerror(errno));
		}
	}
	/* An interrupt the driver had not acknowledged is raised again. */
	if (atomic_load(&t->interrupt_status))
		raise_irq(t, 0);
	return 0;
}

static struct virtq *selected_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nr_queues ? &t->queues[t->queue_sel] : NULL;
}

static void set_half(uint64_t *v, bool high, uint32_t x)
{
	*v = high ? (*v & 0xffffffffull) | ((uint64_t)x << 32) : (*v & ~0xffffffffull) | x;
}

static void write_queue_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtq *q = selected_queue(t);

	if (!q)
		return;
	if (off == REG_QUEUE_READY) {
		if (!v) {
			q->ready = false;
			return;
		}
		if (q->ready)
			return;
		if (virtq_check(q, t->mem) < 0) {
			virtio_mmio_needs_reset(t, "a queue's size or ring addresses are invalid");
			return;
		}
		q->event_idx = virtio_mmio_has_feature(t, VIRTIO_F_RING_EVENT_IDX);
		q->next_avail = q->next_used = 0;
		q->signalled_valid = false;
		q->ready = true;
		return;
	}
	if (q->ready)
		return; /* a live queue's layout is fixed until reset */
	switch (off) {
	case REG_QUEUE_NUM:
		q->size = v <= q->max_size ? (uint16_t)v : 0;
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		set_half(&q->desc, off == REG_QUEUE_DESC_HIGH, v);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		set_half(&q->avail, off == REG_QUEUE_DRIVER_HIGH, v);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		set_half(&q->used, off == REG_QUEUE_DEVICE_HIGH, v);
		break;
	}
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = selected_queue(t);
	uint64_t f;

	switch (off) {
	case REG_MAGIC:
		return MMIO_MAGIC;
	case REG_VERSION:
		return MMIO_VERSION;
	case REG_DEVICE_ID:
		return t->ops->device_id;
	case REG_VENDOR_ID:
		return MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		f = offered_features(t);
		return t->device_features_sel == 0   ? (uint32_t)f
		       : t->device_features_sel == 1 ? (uint32_t)(f >> 32)
						     : 0;
	case REG_QUEUE_NUM_MAX:
		return q ? q->max_size : 0;
	case REG_QUEUE_READY:
		return q ? q->ready : 0;
	case REG_STATUS:
		return t->status;
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
		return 0xffffffffu; /* no shared memory regions */
	case REG_CONFIG_GENERATION:
		return 0; /* the config space never changes under the driver */
	default:
		return 0;
	}
}

static void write_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case REG_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		/* Features are fixed once the driver said FEATURES_OK. */
		if (t->driver_features_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&t->driver_features, t->driver_features_sel == 1, v);
		break;
	case REG_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case REG_QUEUE_NUM:
	case REG_QUEUE_READY:
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		write_queue_reg(t, off, v);
		break;
	case REG_QUEUE_NOTIFY:
		/* Only when no ioeventfd took it (unit tests, or a value matching no queue). */
		notify_locked(t, v);
		break;
	case REG_STATUS:
		write_status(t, v);
		break;
	}
}

static void mmio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	memset(data, 0, len);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		pthread_mutex_lock(&t->lock);
		if (c < t->ops->config_size && len <= t->ops->config_size - c && t->ops->config_read)
			t->ops->config_read(t, (uint32_t)c, data, len);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (len != 4 || (off & 3))
		return;
	if (off == REG_INTERRUPT_STATUS) {
		v = atomic_load(&t->interrupt_status); /* the interrupt handler's path: no lock */
	} else {
		pthread_mutex_lock(&t->lock);
		v = read_reg(t, off);
		pthread_mutex_unlock(&t->lock);
	}
	memcpy(data, &v, 4);
}

static void mmio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		pthread_mutex_lock(&t->lock);
		if (c < t->ops->config_size && len <= t->ops->config_size - c && t->ops->config_write)
			t->ops->config_write(t, (uint32_t)c, data, len);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (len != 4 || (off & 3))
		return;
	memcpy(&v, data, 4);
	if (off == REG_INTERRUPT_ACK) {
		atomic_fetch_and(&t->interrupt_status, ~v);
		return;
	}
	pthread_mutex_lock(&t->lock);
	write_reg(t, off, v);
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops virtio_mmio_bus_ops = { .read = mmio_read, .write = mmio_write };

static void on_notify(void *opaque, int fd, uint32_t events)
{
	struct virtio_notify_slot *s = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("virtio %s: ioeventfd: %s", s->t->ops->name, strerror(errno));
	pthread_mutex_lock(&s->t->lock);
	notify_locked(s->t, s->queue);
	pthread_mutex_unlock(&s->t->lock);
}

static int kvm_ioeventfd(struct virtio_mmio *t, unsigned q, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = q,
		.addr = t->base + REG_QUEUE_NOTIFY,
		.len = 4,
		.fd = t->notify[q].fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(t->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static int kvm_irqfd(struct virtio_mmio *t, bool assign)
{
	struct kvm_irqfd irq = {
		.fd = (uint32_t)t->irqfd,
		.gsi = t->irq,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(t->vm_fd, KVM_IRQFD, &irq) < 0 ? -errno : 0;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (!t->ops)
		return;
	pthread_mutex_lock(&t->lock);
	device_reset(t);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->ops->nr_queues; i++) {
		if (t->notify[i].fd < 0)
			continue;
		event_loop_del(t->loop, t->notify[i].fd);
		if (t->vm_fd >= 0)
			kvm_ioeventfd(t, i, false);
		close(t->notify[i].fd);
		t->notify[i].fd = -1;
	}
	if (t->irqfd >= 0) {
		if (t->vm_fd >= 0)
			kvm_irqfd(t, false);
		close(t->irqfd);
		t->irqfd = -1;
	}
	pthread_mutex_destroy(&t->lock);
	t->ops = NULL;
}

int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_device_ops *ops, void *dev,
		     struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		     unsigned irq)
{
	int ret = 0;

	*t = (struct virtio_mmio){
		.ops = ops, .dev = dev, .mem = mem, .loop = loop, .vm_fd = vm_fd,
		.base = base, .irq = irq, .irqfd = -1,
	};
	pthread_mutex_init(&t->lock, NULL);
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		t->notify[i] = (struct virtio_notify_slot){ .t = t, .queue = i, .fd = -1 };
		t->queues[i].max_size = ops->queue_max;
	}
	if (vm_fd < 0)
		return 0;
	t->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irqfd < 0 || (ret = kvm_irqfd(t, true)) < 0) {
		ret = t->irqfd < 0 ? -errno : ret;
		log_error("virtio %s: irqfd for IRQ %u: %s", ops->name, irq, strerror(-ret));
		goto err;
	}
	for (unsigned i = 0; i < ops->nr_queues; i++) {
		t->notify[i].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->notify[i].fd < 0) {
			ret = -errno;
			goto err_queue;
		}
		ret = kvm_ioeventfd(t, i, true);
		if (ret < 0) {
			close(t->notify[i].fd);
			t->notify[i].fd = -1;
			goto err_queue;
		}
		ret = event_loop_add(loop, t->notify[i].fd, EPOLLIN, on_notify, &t->notify[i]);
		if (ret < 0) {
			kvm_ioeventfd(t, i, false);
			close(t->notify[i].fd);
			t->notify[i].fd = -1;
			goto err_queue;
		}
	}
	return 0;

err_queue:
	log_error("virtio %s: ioeventfd: %s", ops->name, strerror(-ret));
err:
	virtio_mmio_destroy(t);
	return ret;
}
