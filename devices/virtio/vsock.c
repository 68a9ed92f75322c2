/* virtio-vsock: config space, the three queues, packet checks, and the device's event handler;
 * connections live in vsock_conn.c, the hybrid unix socket in vsock_hybrid.c. */
#include "vsock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "le.h"
#include "log.h"
#include "virtio.h"
#include "vsock_conn.h"
#include "vsock_hybrid.h"

#define RXQ 0u
#define TXQ 1u
#define EVQ 2u
#define VSOCK_EVENT_TRANSPORT_RESET 0u /* virtio_vsock_event.id */
#define EVQ 2u
#define QUEUE_SIZE 256
#define CONFIG_LEN 8u
/* Chains taken or packets given per pass before the other handlers get a turn. */
#define BUDGET 256u
#define EVENT_BATCH 32


static void hdr_encode(const struct vsock_hdr *h, uint8_t *b)
{
	put_le(b, h->src_cid, 8);
	put_le(b + 8, h->dst_cid, 8);
	put_le(b + 16, h->src_port, 4);
	put_le(b + 20, h->dst_port, 4);
	put_le(b + 24, h->len, 4);
	put_le(b + 28, h->type, 2);
	put_le(b + 30, h->op, 2);
	put_le(b + 32, h->flags, 4);
	put_le(b + 36, h->buf_alloc, 4);
	put_le(b + 40, h->fwd_cnt, 4);
}

static void hdr_decode(const uint8_t *b, struct vsock_hdr *h)
{
	h->src_cid = get_le(b, 8);
	h->dst_cid = get_le(b + 8, 8);
	h->src_port = (uint32_t)get_le(b + 16, 4);
	h->dst_port = (uint32_t)get_le(b + 20, 4);
	h->len = (uint32_t)get_le(b + 24, 4);
	h->type = (uint16_t)get_le(b + 28, 2);
	h->op = (uint16_t)get_le(b + 30, 2);
	h->flags = (uint32_t)get_le(b + 32, 4);
	h->buf_alloc = (uint32_t)get_le(b + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

static void vsock_config_read(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_vsock *v = t->dev;
	uint8_t cfg[CONFIG_LEN];

	put_le(cfg, v->guest_cid, 8);
	memcpy(data, cfg + off, len);
}

/* Another pass later, from the event loop. */
static void kick(struct virtio_vsock *v)
{
	uint64_t one = 1;

	if (write(v->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("vsock: kick: %s", strerror(errno));
}

/* One packet from the guest. Malformed ones are dropped; ones for a connection kiln does not
 * have are answered with an RST. */
static void handle_tx(struct virtio_vsock *v, const struct virtq_chain *chain)
{
	uint8_t raw[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	struct vsock_conn *c;

	if (chain->nr_out != chain->nr || chain->out_len < VSOCK_HDR_LEN ||
	    virtq_chain_read(v->mmio.mem, chain, 0, raw, VSOCK_HDR_LEN) != VSOCK_HDR_LEN) {
		v->stats.bad_packets++;
		return;
	}
	hdr_decode(raw, &h);
	if (h.len > chain->out_len - VSOCK_HDR_LEN || h.src_cid != v->guest_cid ||
	    h.dst_cid != VSOCK_HOST_CID) {
		v->stats.bad_packets++;
		return;
	}
	v->stats.tx_packets++;
	c = vsock_conn_find(v, h.dst_port, h.src_port);
	if (h.type != VSOCK_TYPE_STREAM) {
		v->stats.bad_packets++;
		if (h.op == VSOCK_OP_RST)
			return;
		if (c) {
			vsock_conn_reset(c);
			vsock_conn_refresh(c);
		} else {
			vsock_queue_rst(v, h.dst_port, h.src_port);
		}
		return;
	}
	if (c)
		vsock_conn_guest_packet(c, &h, chain, VSOCK_HDR_LEN);
	else if (h.op == VSOCK_OP_REQUEST)
		vsock_hybrid_guest_request(v, &h);
	else if (h.op != VSOCK_OP_RST)
		vsock_queue_rst(v, h.dst_port, h.src_port);
}

static void tx_process(struct virtio_vsock *v)
{
	struct virtio_mmio *t = &v->mmio;
	struct virtq *q = &t->queues[TXQ];
	unsigned n = 0;
	bool used = false;
	int got = 0;

	if (!virtio_mmio_queue_live(t, TXQ))
		return;
	while (n < BUDGET && (got = virtq_pop(q, t->mem, v->tx_chain)) > 0) {
		handle_tx(v, v->tx_chain);
		if (virtq_push(q, t->mem, v->tx_chain->head, 0) < 0) {
			got = -EFAULT;
			break;
		}
		used = true;
		n++;
	}
	if (used)
		virtio_mmio_signal_used(t, TXQ);
	if (got < 0)
		virtio_mmio_needs_reset(t, "the guest broke the transmit queue's rules");
	else if (n == BUDGET)
		kick(v);
}

/* Gives the guest what kiln owes it: RSTs first, then one packet per connection in turn. */
static void rx_pump(struct virtio_vsock *v)
{
	struct virtio_mmio *t = &v->mmio;
	struct virtq *q = &t->queues[RXQ];
	struct virtq_chain *chain = v->rx_chain;
	unsigned n = 0;
	bool used = false;
	int got = 0;

	if (!virtio_mmio_queue_live(t, RXQ))
		return;
	while (v->rst_len > 0 || v->rx_head) {
		uint8_t raw[VSOCK_HDR_LEN];
		struct vsock_hdr h;

		if (n++ == BUDGET) {
			kick(v);
			break;
		}
		if (!v->rx_held) {
			got = virtq_pop(q, t->mem, chain);
			if (got <= 0)
				break; /* with none, the driver's next buffer notifies the queue */
			if (chain->nr_out > 0 || chain->in_len <= VSOCK_HDR_LEN) {
				v->stats.bad_rx_bufs++;
				if (virtq_push(q, t->mem, chain->head, 0) < 0) {
					got = -EFAULT;
					break;
				}
				used = true;
				continue;
			}
			v->rx_held = true;
		}
		if (v->rst_len > 0) {
			struct vsock_rst *r = &v->rst[v->rst_head];

			h = (struct vsock_hdr){
				.src_cid = VSOCK_HOST_CID, .dst_cid = v->guest_cid,
				.src_port = r->host_port, .dst_port = r->guest_port,
				.type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RST,
			};
			v->rst_head = (v->rst_head + 1) % VSOCK_RST_RING;
			v->rst_len--;
		} else {
			struct vsock_conn *c = v->rx_head;
			bool have;

			vsock_conn_rx_remove(c);
			have = vsock_conn_rx_packet(c, chain, &h);
			vsock_conn_refresh(c); /* back at the tail if it owes more */
			if (!have)
				continue;
		}
		hdr_encode(&h, raw);
		if (virtq_chain_write(t->mem, chain, 0, raw, VSOCK_HDR_LEN) != VSOCK_HDR_LEN ||
		    virtq_push(q, t->mem, chain->head, VSOCK_HDR_LEN + h.len) < 0) {
			got = -EFAULT;
			break;
		}
		v->rx_held = false;
		used = true;
		v->stats.rx_packets++;
		if (h.op == VSOCK_OP_RST)
			v->stats.rst_sent++;
	}
	if (used)
		virtio_mmio_signal_used(t, RXQ);
	if (got < 0)
		virtio_mmio_needs_reset(t, "the guest broke the receive queue's rules");
}

static void vsock_notify(struct virtio_mmio *t, unsigned q)
{
	struct virtio_vsock *v = t->dev;

	if (q == TXQ)
		tx_process(v);
	if (q != EVQ)
		rx_pump(v); /* replies to what the guest sent, or its new receive buffers */
	vsock_conn_reap(v);
}

/* The driver reset the device: every connection is gone for the guest, so for the host too. */
static void vsock_reset(struct virtio_mmio *t)
{
	struct virtio_vsock *v = t->dev;

	vsock_conn_close_all(v);
	v->rst_head = v->rst_len = 0;
	v->rx_held = false;
}

static const struct virtio_device_ops vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.nr_queues = 3,
	.queue_max = QUEUE_SIZE,
	.config_size = CONFIG_LEN,
	.config_read = vsock_config_read,
	.reset = vsock_reset,
	.notify = vsock_notify,
};

/* The device's epoll set is ready: take what it has with the transport locked, so that no
 * connection can go away between the wait and its handling. */
static void on_events(void *opaque, int fd, uint32_t events)
{
	struct virtio_vsock *v = opaque;
	struct epoll_event evs[EVENT_BATCH];
	uint64_t count;
	int n;

	(void)fd;
	(void)events;
	virtio_mmio_lock(&v->mmio);
	n = epoll_wait(v->epfd, evs, EVENT_BATCH, 0);
	for (int i = 0; i < n; i++) {
		switch (evs[i].data.u64) {
		case VSOCK_TAG_LISTEN:
			vsock_hybrid_accept(v);
			break;
		case VSOCK_TAG_TIMER:
			if (read(v->timer_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				log_warn("vsock: timer: %s", strerror(errno));
			vsock_hybrid_tick(v);
			break;
		case VSOCK_TAG_KICK:
			if (read(v->kick_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				log_warn("vsock: kick: %s", strerror(errno));
			tx_process(v);
			break;
		default:
			vsock_conn_host_event(evs[i].data.ptr, evs[i].events);
			break;
		}
	}
	rx_pump(v);
	vsock_conn_reap(v);
	virtio_mmio_unlock(&v->mmio);
}

static int watch(struct virtio_vsock *v, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void release(struct virtio_vsock *v)
{
	if (v->slots)
		vsock_conn_close_all(v);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	if (v->bound)
		unlink(v->uds_path);
	if (v->epfd >= 0)
		close(v->epfd);
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	if (v->kick_fd >= 0)
		close(v->kick_fd);
	v->listen_fd = v->epfd = v->timer_fd = v->kick_fd = -1;
	v->bound = false;
	free(v->uds_path);
	free(v->slots);
	free(v->hash);
	free(v->rst);
	free(v->rx_chain);
	free(v->tx_chain);
	free(v->iov);
	v->uds_path = NULL;
	v->slots = v->hash = NULL;
	v->rst = NULL;
	v->rx_chain = v->tx_chain = NULL;
	v->iov = NULL;
}

int virtio_vsock_init(struct virtio_vsock *v, const struct vsock_config *cfg,
		      struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		      unsigned irq)
{
	int ret = -ENOMEM;

	*v = (struct virtio_vsock){
		.guest_cid = cfg->guest_cid, .listen_fd = -1, .epfd = -1, .timer_fd = -1,
		.kick_fd = -1, .next_port = 1u << 30,
	};
	v->uds_path = cfg->uds_path ? strdup(cfg->uds_path) : NULL;
	v->slots = calloc(VSOCK_MAX_CONNS, sizeof(*v->slots));
	v->hash = calloc(VSOCK_HASH_SIZE, sizeof(*v->hash));
	v->rst = calloc(VSOCK_RST_RING, sizeof(*v->rst));
	v->rx_chain = malloc(sizeof(*v->rx_chain));
	v->tx_chain = malloc(sizeof(*v->tx_chain));
	v->iov = calloc(VIRTQ_MAX_SIZE, sizeof(*v->iov));
	if (!v->uds_path || !v->slots || !v->hash || !v->rst || !v->rx_chain || !v->tx_chain ||
	    !v->iov) {
		log_error("vsock: out of memory");
		goto err;
	}
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	v->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->epfd < 0 || v->timer_fd < 0 || v->kick_fd < 0) {
		ret = -errno;
		log_error("vsock: %s", strerror(-ret));
		goto err;
	}
	ret = vsock_hybrid_listen(v);
	if (ret < 0)
		goto err;
	if ((ret = watch(v, v->listen_fd, VSOCK_TAG_LISTEN)) < 0 ||
	    (ret = watch(v, v->timer_fd, VSOCK_TAG_TIMER)) < 0 ||
	    (ret = watch(v, v->kick_fd, VSOCK_TAG_KICK)) < 0) {
		log_error("vsock: epoll: %s", strerror(-ret));
		goto err;
	}
	ret = virtio_mmio_init(&v->mmio, &vsock_ops, v, mem, loop, vm_fd, base, irq);
	if (ret < 0)
		goto err;
	ret = event_loop_add(loop, v->epfd, EPOLLIN, on_events, v);
	if (ret < 0) {
		log_error("vsock: event loop: %s", strerror(-ret));
		virtio_mmio_destroy(&v->mmio);
		goto err;
	}
	v->epfd_watched = true;
	return 0;

err:
	release(v);
	return ret;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (v->epfd_watched)
		event_loop_del(v->mmio.loop, v->epfd);
	v->epfd_watched = false;
	virtio_mmio_destroy(&v->mmio);
	release(v);
}

int virtio_vsock_transport_reset(struct virtio_vsock *v)
{
	struct virtio_mmio *t = &v->mmio;
	struct virtq *q = &t->queues[EVQ];
	uint8_t event[4];
	int ret;

	virtio_mmio_lock(t);
	if (!virtio_mmio_queue_live(t, EVQ)) {
		virtio_mmio_unlock(t);
		return 0; /* the driver is not running: it has no connections to drop */
	}
	ret = virtq_pop(q, t->mem, v->tx_chain);
	if (ret == 1) {
		put_le(event, VSOCK_EVENT_TRANSPORT_RESET, 4);
		if (v->tx_chain->nr_out != 0 || v->tx_chain->bufs[0].len < sizeof(event) ||
		    guest_memory_write(t->mem, v->tx_chain->bufs[0].gpa, event, sizeof(event)) < 0)
			ret = -EINVAL;
		else if (virtq_push(q, t->mem, v->tx_chain->head, sizeof(event)) < 0)
			ret = -EFAULT;
		else
			virtio_mmio_signal_used(t, EVQ);
	} else if (ret == 0) {
		ret = -ENOBUFS;
	}
	if (ret == -EINVAL || ret == -EFAULT)
		virtio_mmio_needs_reset(t, "the event queue's buffer is unusable");
	virtio_mmio_unlock(t);
	return ret < 0 ? ret : 0;
}
