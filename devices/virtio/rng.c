/* virtio-rng: one request queue whose writable buffers are filled from getrandom(2). */
#include "rng.h"

#include <errno.h>
#include <stddef.h>
#include <sys/random.h>

#include "virtio.h"

#define RNG_QUEUE_SIZE 256
/* At most this much per buffer: a guest asking for more gets a short fill, as the spec allows. */
#define RNG_MAX_FILL 65536u

static const struct metrics_field entropy_fields[] = { ENTROPY_METRICS(METRICS_FIELD, entropy) };
const struct metrics_class entropy_metrics_class = {
	"entropy", entropy_fields, sizeof(entropy_fields) / sizeof(entropy_fields[0]),
	sizeof(struct metrics_entropy), true,
};

static void rng_notify(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_rng *r = t->dev;
	struct virtq *q = &t->queues[qi];
	struct virtq_chain c;
	bool used = false;
	int got;

	metrics_inc(&r->m->entropy_event_count);
	while ((got = virtq_pop(q, t->mem, &c)) > 0) {
		uint64_t want = c.in_len < RNG_MAX_FILL ? c.in_len : RNG_MAX_FILL, done = 0;
		uint8_t buf[4096];

		while (done < want) {
			size_t n = want - done < sizeof(buf) ? want - done : sizeof(buf);
			ssize_t k = getrandom(buf, n, 0);

			if (k <= 0) {
				metrics_inc(&r->m->host_rng_fails);
				break;
			}
			n = virtq_chain_write(t->mem, &c, done, buf, (size_t)k);
			done += n;
			if (n < (size_t)k)
				break; /* a poisoned buffer: the guest gets what went before it */
		}
		metrics_add(&r->m->entropy_bytes, done);
		if (virtq_push(q, t->mem, c.head, (uint32_t)done) < 0) {
			got = -EFAULT;
			break;
		}
		used = true;
	}
	if (used)
		virtio_mmio_signal_used(t, qi);
	if (got < 0) {
		metrics_inc(&r->m->entropy_event_fails);
		virtio_mmio_needs_reset(t, "the guest broke the request queue's rules");
	}
}

static const struct virtio_device_ops rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.nr_queues = 1,
	.queue_max = RNG_QUEUE_SIZE,
	.notify = rng_notify,
};

int virtio_rng_init(struct virtio_rng *r, struct guest_memory *mem, struct event_loop *loop,
		    int vm_fd, uint64_t base, unsigned irq)
{
	*r = (struct virtio_rng){ 0 };
	r->m = &r->own_metrics;
	return virtio_mmio_init(&r->mmio, &rng_ops, r, mem, loop, vm_fd, base, irq);
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	virtio_mmio_destroy(&r->mmio);
}
