/* virtio-net over a host TAP device: frames move with readv/writev straight between the TAP and
 * guest buffers, offloads follow what the driver negotiated. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "virtio.h"

/* Feature bits, status and header fields (virtio 1.2, 5.1; linux/virtio_net.h). */
#define NET_F_CSUM 0        /* the device takes frames with a partial checksum */
#define NET_F_GUEST_CSUM 1  /* the driver takes frames with a partial checksum */
#define NET_F_MAC 5
#define NET_F_GUEST_TSO4 7
#define NET_F_GUEST_TSO6 8
#define NET_F_HOST_TSO4 11
#define NET_F_HOST_TSO6 12
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16
#define NET_S_LINK_UP 1
#define NET_HDR_FLAGS 0u       /* offset of the header's flags byte */
#define NET_HDR_NUM_BUFFERS 10u
#define NET_CONFIG_LEN 8u      /* mac[6], status */
#define NET_ETH_HLEN 14u
#define RXQ 0u
#define TXQ 1u

/*
 * What kiln offers. Checksum offload and TSO both ways, as Firecracker does, but no UFO: Linux
 * has not produced UFO frames since 4.14 and the TAP ignores TUN_F_UFO, and no ECN variants.
 * Every GUEST_ bit here needs GUEST_CSUM, every HOST_ bit needs CSUM (virtio 1.2, 5.1.3.1).
 *
 * Mergeable rx buffers are offered: the driver then posts small single buffers (a page or
 * less) and kiln spreads a frame over as many as it needs, with num_buffers in the first
 * header. Without it a driver taking TSO frames posts ~64 KiB chains of ~19 descriptors, and
 * a 256-entry ring (kiln offers no indirect descriptors) holds only 13 of them, each spent on
 * the smallest ACK. Drivers that decline it still work: each frame then fills one chain.
 */
#define NET_FEATURES                                                                        \
	(VIRTIO_BIT(NET_F_CSUM) | VIRTIO_BIT(NET_F_GUEST_CSUM) | VIRTIO_BIT(NET_F_GUEST_TSO4) | \
	 VIRTIO_BIT(NET_F_GUEST_TSO6) | VIRTIO_BIT(NET_F_HOST_TSO4) |                          \
	 VIRTIO_BIT(NET_F_HOST_TSO6) | VIRTIO_BIT(NET_F_MRG_RXBUF) | VIRTIO_BIT(NET_F_STATUS))

static void net_backend_error(struct virtio_net *n, const char *what, int err)
{
	if (n->warned)
		return;
	n->warned = true;
	log_warn("network interface %s: %s: %s (further errors are only counted)", n->id, what,
		 strerror(err));
}

/* ---- receive: TAP -> guest ---- */

/* How many chains a frame may use. */
static unsigned rx_chain_limit(const struct virtio_net *n)
{
	return n->mrg_rxbuf ? NET_QUEUE_SIZE : 1;
}

/*
 * Pops rx chains until the held ones can take the largest frame, the ring is empty or no more
 * can be held. 0, or -EINVAL when the guest broke the ring's rules or posted a chain that is
 * not write-only or cannot take a header (virtio 1.2, 5.1.6.3.1).
 */
static int rx_refill(struct virtio_net *n)
{
	struct virtio_mmio *t = &n->mmio;
	struct net_bufs *b = n->b;
	struct virtq_chain *c = &b->chain;

	while (b->cap <= NET_RX_ROOM && b->nr_chains < rx_chain_limit(n) &&
	       NET_RX_BUFS - b->nr_bufs >= VIRTQ_MAX_SIZE) {
		struct net_rx_chain *h;
		int got = virtq_pop(&t->queues[RXQ], t->mem, c);

		if (got <= 0)
			return got;
		if (c->nr_out > 0 || c->in_len < NET_HDR_LEN)
			return -EINVAL;
		h = &b->chains[b->nr_chains++];
		*h = (struct net_rx_chain){ .head = c->head, .first = (uint16_t)b->nr_bufs,
					    .cap = c->in_len };
		for (unsigned i = c->nr_out; i < c->nr; i++) {
			if (c->bufs[i].len == 0)
				continue;
			b->bufs[b->nr_bufs++] = c->bufs[i];
			h->nr++;
		}
		b->cap += c->in_len;
	}
	return 0;
}

/* Whether rx_refill stopped because no more chains can be held (not for lack of buffers). */
static bool rx_hold_full(const struct virtio_net *n)
{
	return n->b->nr_chains >= rx_chain_limit(n) || NET_RX_BUFS - n->b->nr_bufs < VIRTQ_MAX_SIZE;
}

/* The writable buffers of the held chains as iovecs covering len bytes; the count, or
 * -EHWPOISON when the poison log has a page of one (-EFAULT: not RAM). */
static int rx_iov(struct virtio_net *n, uint64_t len)
{
	struct net_bufs *b = n->b;
	int nr = 0;

	for (unsigned i = 0; i < b->nr_bufs && len > 0; i++) {
		uint64_t k = b->bufs[i].len < len ? b->bufs[i].len : len;
		void *p = guest_memory_ptr_mut(n->mmio.mem, b->bufs[i].gpa, k);

		if (!p)
			return guest_memory_in_ram(n->mmio.mem, b->bufs[i].gpa, k) ? -EHWPOISON
										   : -EFAULT;
		b->iov[nr++] = (struct iovec){ .iov_base = p, .iov_len = k };
		len -= k;
	}
	return nr;
}

/* Copies len bytes to offset off of held chain h's writable buffers. */
static int rx_chain_write(struct virtio_net *n, const struct net_rx_chain *h, uint64_t off,
			  const void *src, uint64_t len)
{
	const uint8_t *s = src;
	int ret;

	for (unsigned i = h->first; i < h->first + h->nr && len > 0; i++) {
		const struct virtq_buf *buf = &n->b->bufs[i];
		uint64_t k;

		if (off >= buf->len) {
			off -= buf->len;
			continue;
		}
		k = buf->len - off < len ? buf->len - off : len;
		ret = guest_memory_write(n->mmio.mem, buf->gpa + off, s, k);
		if (ret < 0)
			return ret;
		s += k;
		len -= k;
		off = 0;
	}
	return len ? -EFAULT : 0;
}

/*
 * A frame of len bytes (header included) sits in the first held chains: fix its header, put
 * the chains it filled on the used ring (every one full but the last, as virtio 1.2, 5.1.6.4
 * wants), forget them. 0, -EHWPOISON (the header's buffer is poisoned) or -EFAULT.
 */
static int rx_complete(struct virtio_net *n, uint64_t len)
{
	struct virtio_mmio *t = &n->mmio;
	struct net_bufs *b = n->b;
	uint64_t left = len;
	uint16_t used = 0, nb;
	uint8_t zero = 0;
	unsigned first;
	int ret;

	while (left > 0) {
		uint64_t k = b->chains[used].cap < left ? b->chains[used].cap : left;

		left -= k;
		used++;
	}
	nb = used;
	ret = rx_chain_write(n, &b->chains[0], NET_HDR_NUM_BUFFERS, &nb, 2);
	/* The TAP may flag DATA_VALID; without GUEST_CSUM the flags must stay zero. */
	if (ret == 0 && !n->guest_csum)
		ret = rx_chain_write(n, &b->chains[0], NET_HDR_FLAGS, &zero, 1);
	if (ret < 0)
		return ret == -EHWPOISON ? ret : -EFAULT;
	left = len;
	for (unsigned i = 0; i < used; i++) {
		uint64_t k = b->chains[i].cap < left ? b->chains[i].cap : left;

		if (virtq_push(&t->queues[RXQ], t->mem, b->chains[i].head, (uint32_t)k) < 0)
			return -EFAULT;
		left -= k;
		b->cap -= b->chains[i].cap;
	}
	first = used < b->nr_chains ? b->chains[used].first : b->nr_bufs;
	memmove(b->chains, b->chains + used, (b->nr_chains - used) * sizeof(b->chains[0]));
	b->nr_chains -= used;
	memmove(b->bufs, b->bufs + first, (b->nr_bufs - first) * sizeof(b->bufs[0]));
	b->nr_bufs -= first;
	for (unsigned i = 0; i < b->nr_chains; i++)
		b->chains[i].first = (uint16_t)(b->chains[i].first - first);
	n->rx_packets++;
	n->rx_bytes += len - NET_HDR_LEN;
	return 0;
}

/* Copies the frame waiting in frame[] into the held chains. */
static int rx_copy_pending(struct virtio_net *n)
{
	struct net_bufs *b = n->b;
	uint64_t done = 0;

	for (unsigned i = 0; i < b->nr_bufs && done < b->pending; i++) {
		uint64_t k = b->bufs[i].len < b->pending - done ? b->bufs[i].len : b->pending - done;
		int ret = guest_memory_write(n->mmio.mem, b->bufs[i].gpa, b->frame + done, k);

		if (ret < 0)
			return ret;
		done += k;
	}
	return rx_complete(n, b->pending);
}

/*
 * A held buffer turned out poisoned (the log refused it, or the kernel's copy failed with
 * EFAULT): the frame is lost, and every held chain goes back to the guest empty (used length
 * 0, which its driver drops), so receiving goes on with fresh buffers. 0 or -EFAULT.
 */
static int rx_return_all(struct virtio_net *n)
{
	struct virtio_mmio *t = &n->mmio;
	struct net_bufs *b = n->b;

	for (unsigned i = 0; i < b->nr_chains; i++) {
		if (virtq_push(&t->queues[RXQ], t->mem, b->chains[i].head, 0) < 0)
			return -EFAULT;
	}
	b->nr_chains = 0;
	b->nr_bufs = 0;
	b->cap = 0;
	b->pending = 0;
	n->rx_drops++;
	return 0;
}

/*
 * Reads one frame: straight into the held chains when they can take the largest one, else into
 * frame[]. The frame's length (larger than NET_RX_ROOM when it is too big: a TAP reports the
 * whole length of a frame it cut short), 0 at the end of the backend, or -errno (-EAGAIN: no
 * frame waiting).
 */
static ssize_t rx_read(struct virtio_net *n, bool *direct)
{
	struct net_bufs *b = n->b;
	ssize_t k;

	*direct = b->cap > NET_RX_ROOM;
	do {
		if (*direct) {
			int nr = rx_iov(n, NET_RX_ROOM + 1);

			if (nr < 0)
				return nr;
			k = readv(n->tap_fd, b->iov, nr);
		} else {
			k = read(n->tap_fd, b->frame, sizeof(b->frame));
		}
	} while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : k;
}

/*
 * Moves frames from the backend to the guest until the backend is empty or the guest has no
 * buffers left. With no buffers it stops reading: the TAP is watched edge-triggered, so it
 * stays quiet until a new frame comes, and the guest's next rx buffer brings a new pass.
 */
static void rx_pass(struct virtio_net *n)
{
	struct net_bufs *b = n->b;
	const char *broken = NULL;
	bool used = false;

	for (;;) {
		bool direct;
		ssize_t k;
		int ret;

		if (rx_refill(n) < 0) {
			broken = "the guest broke the receive queue's rules";
			break;
		}
		if (b->pending == 0) {
			if (b->nr_chains == 0)
				break;
			k = rx_read(n, &direct);
			if (k == 0 || k == -EAGAIN)
				break;
			if (k == -EHWPOISON || k == -EFAULT) {
				if (rx_return_all(n) < 0) {
					broken = "the receive queue's used ring is no longer in RAM";
					break;
				}
				used = true;
				continue;
			}
			if (k < 0) {
				net_backend_error(n, "read", (int)-k);
				break;
			}
			if ((size_t)k > NET_RX_ROOM || (size_t)k < NET_HDR_LEN) {
				n->rx_drops++;
				continue;
			}
			if (!direct) {
				b->pending = (size_t)k;
				continue;
			}
			ret = rx_complete(n, (uint64_t)k);
		} else if (b->cap >= b->pending) {
			ret = rx_copy_pending(n);
			if (ret == 0)
				b->pending = 0;
		} else if (rx_hold_full(n)) {
			n->rx_drops++; /* bigger than what the guest's buffers can ever hold */
			b->pending = 0;
			continue;
		} else {
			break; /* wait for more buffers */
		}
		if (ret == -EHWPOISON)
			ret = rx_return_all(n);
		if (ret < 0) {
			broken = "a receive buffer is no longer in RAM";
			break;
		}
		used = true;
	}
	if (used)
		virtio_mmio_signal_used(&n->mmio, RXQ);
	if (broken)
		virtio_mmio_needs_reset(&n->mmio, broken);
}

static void on_tap(void *opaque, int fd, uint32_t events)
{
	struct virtio_net *n = opaque;

	(void)fd;
	(void)events;
	virtio_mmio_lock(&n->mmio);
	if (virtio_mmio_queue_live(&n->mmio, RXQ))
		rx_pass(n);
	virtio_mmio_unlock(&n->mmio);
}

/* ---- transmit: guest -> TAP ---- */

/* Sends one tx chain; a chain that is not a frame is dropped and counted. */
static void tx_one(struct virtio_net *n, const struct virtq_chain *c)
{
	struct net_bufs *b = n->b;
	ssize_t k;
	int nr;

	if (c->nr != c->nr_out || c->out_len < NET_HDR_LEN + NET_ETH_HLEN ||
	    c->out_len > NET_MAX_BUF) {
		n->tx_drops++;
		return;
	}
	nr = virtq_chain_iov(n->mmio.mem, c, false, 0, c->out_len, b->tx_iov, VIRTQ_MAX_SIZE);
	if (nr <= 0) {
		n->tx_drops++;
		return;
	}
	do
		k = writev(n->tap_fd, b->tx_iov, nr);
	while (k < 0 && errno == EINTR);
	if (k < 0 || (uint64_t)k != c->out_len) {
		/* The TAP refuses a header it cannot parse (EINVAL), or its link is down (EIO). */
		if (k < 0 && errno != EFAULT) /* EFAULT: a page poisoned since it was checked */
			net_backend_error(n, "write", errno);
		n->tx_drops++;
		return;
	}
	n->tx_packets++;
	n->tx_bytes += c->out_len - NET_HDR_LEN;
}

static void tx_pass(struct virtio_net *n)
{
	struct virtio_mmio *t = &n->mmio;
	struct virtq *q = &t->queues[TXQ];
	struct virtq_chain *c = &n->b->chain;
	bool used = false;
	int got;

	while ((got = virtq_pop(q, t->mem, c)) > 0) {
		tx_one(n, c);
		if (virtq_push(q, t->mem, c->head, 0) < 0) {
			got = -EFAULT;
			break;
		}
		used = true;
	}
	if (used)
		virtio_mmio_signal_used(t, TXQ);
	if (got < 0)
		virtio_mmio_needs_reset(t, "the guest broke the transmit queue's rules");
}

/* ---- the transport's callbacks ---- */

static void net_config_read(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = t->dev;
	uint8_t cfg[NET_CONFIG_LEN] = { 0 };
	uint16_t status = NET_S_LINK_UP;

	if (n->has_mac)
		memcpy(cfg, n->mac, 6);
	memcpy(cfg + 6, &status, 2);
	memcpy(data, cfg + off, len);
}

static void net_notify(struct virtio_mmio *t, unsigned q)
{
	struct virtio_net *n = t->dev;

	if (q == RXQ)
		rx_pass(n);
	else if (q == TXQ)
		tx_pass(n);
}

/* The TUN_F_* flags for what the driver takes on receive (the TAP refuses TSO without CSUM). */
static unsigned offload_flags(const struct virtio_mmio *t)
{
	unsigned f = 0;

	if (!virtio_mmio_has_feature(t, NET_F_GUEST_CSUM))
		return 0;
	f |= TUN_F_CSUM;
	if (virtio_mmio_has_feature(t, NET_F_GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (virtio_mmio_has_feature(t, NET_F_GUEST_TSO6))
		f |= TUN_F_TSO6;
	return f;
}

static int net_activate(struct virtio_mmio *t)
{
	struct virtio_net *n = t->dev;
	unsigned f = offload_flags(t);

	if (n->tap && ioctl(n->tap_fd, TUNSETOFFLOAD, f) < 0) {
		int err = errno;

		log_error("network interface %s: TUNSETOFFLOAD 0x%x: %s", n->id, f, strerror(err));
		return -err;
	}
	n->tun_offload = f;
	n->mrg_rxbuf = virtio_mmio_has_feature(t, NET_F_MRG_RXBUF);
	n->guest_csum = virtio_mmio_has_feature(t, NET_F_GUEST_CSUM);
	return 0;
}

static void net_reset(struct virtio_mmio *t)
{
	struct virtio_net *n = t->dev;
	struct net_bufs *b = n->b;

	if (b->pending)
		n->rx_drops++;
	b->pending = 0;
	b->nr_chains = b->nr_bufs = 0;
	b->cap = 0;
}

static const struct virtio_device_ops *net_ops(bool mac)
{
#define NET_OPS(f)                                                                        \
	{ .name = "net", .device_id = VIRTIO_ID_NET, .nr_queues = 2,                     \
	  .queue_max = NET_QUEUE_SIZE, .features = (f), .config_size = NET_CONFIG_LEN,    \
	  .config_read = net_config_read, .activate = net_activate, .reset = net_reset,   \
	  .notify = net_notify }
	static const struct virtio_device_ops ops[2] = {
		NET_OPS(NET_FEATURES),
		NET_OPS(NET_FEATURES | VIRTIO_BIT(NET_F_MAC)),
	};
#undef NET_OPS
	return &ops[mac ? 1 : 0];
}

/* ---- setup ---- */

/* Attaches to TAP device name (creating it if it does not exist), with 12-byte headers and no
 * offloads until a driver asks. The fd, or -errno. */
static int open_tap(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr = NET_HDR_LEN, fd, err;

	if (strlen(name) >= sizeof(ifr.ifr_name))
		return -ENAMETOOLONG;
	memcpy(ifr.ifr_name, name, strlen(name));
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, 0u) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (n->watched)
		event_loop_del(n->loop, n->tap_fd);
	n->watched = false;
	if (n->b) {
		virtio_mmio_destroy(&n->mmio); /* resets the device: needs n->b */
		log_info("network interface %s: rx %llu frames %llu bytes %llu dropped, tx %llu "
			 "frames %llu bytes %llu dropped", n->id, n->rx_packets, n->rx_bytes,
			 n->rx_drops, n->tx_packets, n->tx_bytes, n->tx_drops);
	}
	free(n->b);
	n->b = NULL;
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	n->tap_fd = -1;
}

int virtio_net_init_fd(struct virtio_net *n, int fd, bool tap, const struct net_config *cfg,
		       struct guest_memory *mem, struct event_loop *loop, int vm_fd, uint64_t base,
		       unsigned irq)
{
	int ret;

	*n = (struct virtio_net){ .loop = loop, .tap_fd = fd, .tap = tap,
				  .has_mac = cfg->has_guest_mac };
	snprintf(n->id, sizeof(n->id), "%s", cfg->iface_id ? cfg->iface_id : "?");
	memcpy(n->mac, cfg->guest_mac, sizeof(n->mac));
	n->b = calloc(1, sizeof(*n->b));
	if (!n->b) {
		ret = -ENOMEM;
		goto err;
	}
	ret = virtio_mmio_init(&n->mmio, net_ops(n->has_mac), n, mem, loop, vm_fd, base, irq);
	if (ret < 0) {
		free(n->b);
		n->b = NULL;
		goto err;
	}
	/* Edge-triggered: the TAP wakes the loop once per new frame, never again for frames left
	 * waiting while the guest has no buffers. */
	ret = event_loop_add(loop, fd, EPOLLIN | EPOLLET, on_tap, n);
	if (ret < 0) {
		log_error("network interface %s: watching the backend: %s", n->id, strerror(-ret));
		goto err;
	}
	n->watched = true;
	return 0;
err:
	virtio_net_destroy(n);
	return ret;
}

int virtio_net_init(struct virtio_net *n, const struct net_config *cfg, struct guest_memory *mem,
		    struct event_loop *loop, int vm_fd, uint64_t base, unsigned irq)
{
	int fd = open_tap(cfg->host_dev_name);

	if (fd < 0) {
		*n = (struct virtio_net){ .tap_fd = -1 };
		log_error("network interface %s: TAP device %s: %s", cfg->iface_id,
			  cfg->host_dev_name, strerror(-fd));
		return fd;
	}
	return virtio_net_init_fd(n, fd, true, cfg, mem, loop, vm_fd, base, irq);
}
