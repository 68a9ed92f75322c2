/* Device state in the state format: fixed fields, little-endian, in the order written below. */
#include "device_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* The interrupt line levels are carried too: the irqchip state (VM section) holds the same
 * levels, so a load sets them without raising or lowering anything. */

void device_state_save_serial(struct serial *s, struct state_buf *b)
{
	pthread_mutex_lock(&s->lock);
	state_put_u8(b, s->ier);
	state_put_u8(b, s->lcr);
	state_put_u8(b, s->mcr);
	state_put_u8(b, s->scr);
	state_put_u8(b, s->dll);
	state_put_u8(b, s->dlm);
	state_put_u8(b, s->fcr);
	state_put_u8(b, s->thr_pending);
	state_put_u8(b, (uint8_t)s->irq_level);
	state_put_u32(b, s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		state_put_u8(b, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
}

static int __attribute__((format(printf, 3, 4))) refuse(char *err, size_t errlen, const char *fmt,
							 ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int device_state_load_serial(struct serial *s, struct state_cursor *c, char *err, size_t errlen)
{
	uint8_t r[9];
	uint32_t n;

	for (unsigned i = 0; i < sizeof(r); i++)
		r[i] = state_get_u8(c);
	n = state_get_u32(c);
	if (n > SERIAL_RX_FIFO)
		return refuse(err, errlen, "serial: %u bytes in a %u-byte receive FIFO", n,
			      SERIAL_RX_FIFO);
	pthread_mutex_lock(&s->lock);
	s->ier = r[0], s->lcr = r[1], s->mcr = r[2], s->scr = r[3];
	s->dll = r[4], s->dlm = r[5], s->fcr = r[6];
	s->thr_pending = r[7] != 0;
	s->irq_level = r[8] != 0;
	s->rx_head = 0;
	s->rx_count = n;
	state_get_bytes(c, s->rx, n);
	pthread_mutex_unlock(&s->lock);
	if (!state_cursor_done(c))
		return refuse(err, errlen, "serial: section is %s",
			      c->bad ? "truncated" : "longer than its fields");
	return 0;
}

void device_state_save_i8042(struct i8042 *k, struct state_buf *b)
{
	pthread_mutex_lock(&k->lock);
	state_put_u8(b, k->ctr);
	state_put_u8(b, k->status);
	state_put_u8(b, k->pending_cmd);
	state_put_u8(b, k->last);
	state_put_u8(b, (uint8_t)k->irq_level);
	state_put_u32(b, k->count);
	for (unsigned i = 0; i < k->count; i++)
		state_put_u8(b, k->buf[(k->head + i) % I8042_BUF_LEN]);
	pthread_mutex_unlock(&k->lock);
}

int device_state_load_i8042(struct i8042 *k, struct state_cursor *c, char *err, size_t errlen)
{
	uint8_t r[5];
	uint32_t n;

	for (unsigned i = 0; i < sizeof(r); i++)
		r[i] = state_get_u8(c);
	n = state_get_u32(c);
	if (n > I8042_BUF_LEN)
		return refuse(err, errlen, "i8042: %u bytes in a %u-byte buffer", n, I8042_BUF_LEN);
	pthread_mutex_lock(&k->lock);
	k->ctr = r[0], k->status = r[1], k->pending_cmd = r[2], k->last = r[3];
	k->irq_level = r[4] != 0;
	k->head = 0;
	k->count = n;
	state_get_bytes(c, k->buf, n);
	pthread_mutex_unlock(&k->lock);
	if (!state_cursor_done(c))
		return refuse(err, errlen, "i8042: section is %s",
			      c->bad ? "truncated" : "longer than its fields");
	return 0;
}

void device_state_save_virtio(struct virtio_mmio *t, struct state_buf *b)
{
	virtio_mmio_lock(t);
	state_put_u32(b, t->ops->device_id);
	state_put_u64(b, t->base);
	state_put_u32(b, t->status);
	state_put_u32(b, t->device_features_sel);
	state_put_u32(b, t->driver_features_sel);
	state_put_u64(b, t->driver_features);
	state_put_u32(b, t->queue_sel);
	state_put_u32(b, atomic_load(&t->interrupt_status));
	state_put_u32(b, t->ops->nr_queues);
	for (unsigned i = 0; i < t->ops->nr_queues; i++) {
		const struct virtq *q = &t->queues[i];

		state_put_u16(b, q->size);
		state_put_u8(b, q->ready);
		state_put_u64(b, q->desc);
		state_put_u64(b, q->avail);
		state_put_u64(b, q->used);
		state_put_u16(b, q->next_avail);
		state_put_u16(b, q->next_used);
		state_put_u16(b, q->signalled_used);
		state_put_u8(b, q->signalled_valid);
	}
	virtio_mmio_unlock(t);
}

int device_state_load_virtio(struct virtio_mmio *t, struct state_cursor *c, char *err,
			     size_t errlen)
{
	uint32_t id = state_get_u32(c), nr;
	uint64_t base = state_get_u64(c);
	int ret;

	if (c->bad)
		return refuse(err, errlen, "virtio section truncated");
	if (id != t->ops->device_id || base != t->base)
		return refuse(err, errlen, "virtio device %u at 0x%llx in the snapshot, but the "
			      "configuration puts virtio %s (%u) there at 0x%llx", id,
			      (unsigned long long)base, t->ops->name, t->ops->device_id,
			      (unsigned long long)t->base);
	virtio_mmio_lock(t);
	t->status = state_get_u32(c);
	t->device_features_sel = state_get_u32(c);
	t->driver_features_sel = state_get_u32(c);
	t->driver_features = state_get_u64(c);
	t->queue_sel = state_get_u32(c);
	atomic_store(&t->interrupt_status, state_get_u32(c));
	nr = state_get_u32(c);
	if (nr != t->ops->nr_queues) {
		virtio_mmio_unlock(t);
		return refuse(err, errlen, "virtio %s: %u queues in the snapshot, %u in the device",
			      t->ops->name, nr, t->ops->nr_queues);
	}
	for (unsigned i = 0; i < nr; i++) {
		struct virtq *q = &t->queues[i];

		q->size = state_get_u16(c);
		q->ready = state_get_u8(c) != 0;
		q->desc = state_get_u64(c);
		q->avail = state_get_u64(c);
		q->used = state_get_u64(c);
		q->next_avail = state_get_u16(c);
		q->next_used = state_get_u16(c);
		q->signalled_used = state_get_u16(c);
		q->signalled_valid = state_get_u8(c) != 0;
		if (q->size > q->max_size)
			c->bad = true;
	}
	if (!state_cursor_done(c)) {
		virtio_mmio_unlock(t);
		return refuse(err, errlen, "virtio %s: section is truncated, has a queue larger "
			      "than its maximum, or is longer than its fields", t->ops->name);
	}
	ret = virtio_mmio_restore(t, err, errlen);
	virtio_mmio_unlock(t);
	return ret;
}
